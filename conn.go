package dtls

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on what a connection holds for its peer while the handshake runs.
const (
	// maxFutureRecords bounds records of the next epoch that arrive before
	// we can decrypt them (the peer's Finished packed behind its key
	// exchange). OpenSSL CVE-2009-1377 leaked memory buffering these.
	maxFutureRecords = 8
	// maxHeldAppData bounds the application records held for the next
	// Read (holdAppData): those that arrive after the peer's Finished but
	// before our handshake returns, and, in DTLS 1.3, those a Write
	// waiting for its new key or RequestClientCertificate read. More are
	// dropped, as a datagram lost on the way would be.
	maxHeldAppData = 16
	// maxDatagramSize is the largest UDP payload we read.
	maxDatagramSize = 65535 - 8 - 20
	// noRenegotiationInterval bounds how often a connection answers
	// renegotiation requests with a no_renegotiation warning: one per
	// burst of the peer's retransmitted ClientHello or HelloRequest
	// (RFC 9147 §5.10 asks for a new alert when the offending message
	// comes again), since a peer's timer is slower than this. gnutls-cli
	// --rehandshake answers each warning with another attempt, so
	// answering each record of a burst doubled its bursts.
	noRenegotiationInterval = 100 * time.Millisecond
)

// A Conn is a DTLS connection: it implements net.Conn with datagram
// semantics. One Write sends one record; one Read returns the data of one
// record. The handshake runs on the first Read or Write, or on Handshake.
type Conn struct {
	config   *Config
	isClient bool
	// vers is the negotiated protocol version, set once where the version
	// is decided (the client's processServerHello, the server's
	// processClientHello) and read everywhere else; 0 before.
	vers     uint16
	io       datagramIO
	listener *Listener // set for connections accepted by a Listener
	// activity stamps the last authenticated record from the peer, for
	// the idle timeout; nil when there is none.
	activity *activity

	// Handshake state, guarded by handshakeMu until the handshake is done.
	handshakeMu       sync.Mutex
	handshakeErr      error
	handshakeComplete atomic.Bool
	hs                *handshakeTransport
	rl                *recordLayer
	state             connState
	// hsStart is when the handshake started (a Listener sets it when the
	// cookie-verified ClientHello arrives), hsDuration how long it took
	// to complete or fail, for ConnectionState and HandshakeOutcome.
	hsStart    time.Time
	hsDuration time.Duration
	// alertSent is the fatal alert we sent, plus one; 0 if none.
	alertSent atomic.Uint32

	// in guards the read side after the handshake.
	in      sync.Mutex
	pending []byte // records of the current datagram not yet processed
	readErr error  // sticky: io.EOF after close_notify
	// heldAppData is application data read while no Read could take it
	// (holdAppData), handed to the next Reads first.
	heldAppData [][]byte
	// peerClosedEarly: a protected close_notify arrived before the
	// handshake completed (handleAlert); it takes effect after.
	peerClosedEarly bool

	future    [][]byte // next-epoch records waiting for keys
	peerCCS   bool     // the peer's ChangeCipherSpec has arrived
	expectCCS bool     // a ChangeCipherSpec from the peer is due
	// peerFinished: the peer's Finished verified. It holds the epoch-1
	// keys and has sent every epoch-0 message it will send.
	peerFinished bool

	// out guards the write side.
	out     sync.Mutex
	outBuf  []byte
	flights int // flights we sent, for tracing
	// lastNoRenegotiation is when we last refused a renegotiation, for
	// noRenegotiationInterval.
	lastNoRenegotiation time.Time

	readDeadline  atomic.Pointer[time.Time]
	writeDeadline atomic.Pointer[time.Time]

	blockedReads atomic.Int32 // reads waiting in c.io, for SetReadDeadline
	closed       atomic.Bool
	closeOnce    sync.Once
	expansionFn  func(uint64) int

	// fatalErr is the connection's first fatal error: an alert we sent or
	// one we received. RFC 5246 §7.2.2 ends the connection there, so
	// from then on Read and Write return it (crypto/tls's
	// setErrorLocked).
	fatalErr atomic.Pointer[error]

	drops [numDropReasons]atomic.Uint64

	// unknownPSKIdentity, on a server, says that the client's PSK
	// identity was unknown and the handshake went on with a random key
	// (Config.InsecureUnknownPSKIdentityAlert): the handshake's error
	// says so, though the client is not told.
	unknownPSKIdentity error

	// offered13: a client whose ClientHello offered DTLS 1.3, which
	// keeps early unified-header records until it knows the version.
	offered13 bool
	// ku is the DTLS 1.3 KeyUpdate state (RFC 9147 §8; conn_dtls13.go).
	ku keyUpdate13
	// pha is the DTLS 1.3 post-handshake authentication state
	// (posthandshake_auth_dtls13.go).
	pha phaState13
	// cid13 is the DTLS 1.3 CID update state (RFC 9147 §9;
	// cid_dtls13.go).
	cid13 cidState13

	// gate is the cookie gate of a Conn made by Server (hello_gate.go).
	gate *helloGate
	// admitted13 is what the cookie of the second DTLS 1.3 ClientHello
	// that started a Listener's Conn carries, verified by the Listener
	// (helloGate.check13); nil otherwise.
	admitted13 *admission13
	// lastACK is when a DTLS 1.3 server last re-ACKed a retransmitted
	// client flight, for minResendInterval.
	lastACK time.Time
	// sessionCacheKey is a client's ClientSessionCache key, where a DTLS
	// 1.3 NewSessionTicket is stored after the handshake.
	sessionCacheKey string

	// rrcNegotiated: both sides sent the rrc extension (RFC 9853 §3), set
	// by the handshake. path is the return routability check of a new
	// peer address (rrc.go); dgramLen is the size of the datagram the
	// records in pending came from, and dgramCounted whether it counted
	// toward the anti-amplification credit of the path it came on. All
	// guarded by in after the handshake.
	rrcNegotiated bool
	path          pathValidation
	dgramLen      int
	dgramCounted  bool
	// early is the DTLS 1.3 0-RTT state (early_data_dtls13.go).
	early earlyState
}

// connState is what the handshake negotiated.
type connState struct {
	suite            *cipherSuite
	masterSecret     []byte
	clientRandom     []byte
	serverRandom     []byte
	ems              bool
	serverName       string
	alpn             string
	peerCertificates []*x509.Certificate
	verifiedChains   [][]*x509.Certificate
	pskIdentity      []byte
	pskIdentityHint  []byte
	curveID          tls.CurveID
	sigScheme        tls.SignatureScheme
	srtpProfile      uint16
	peerPublicKey    crypto.PublicKey // raw public key (RFC 7250)
	srtpMKI          []byte
	didResume        bool

	// DTLS 1.3: the suite (suite is nil then) and the exporter master
	// secret (RFC 8446 §7.5).
	suite13        *cipherSuite13
	exporterSecret []byte
	// ourSecret and peerSecret are the current application traffic
	// secrets of each direction, from which KeyUpdate derives the next
	// (RFC 8446 §7.2).
	ourSecret, peerSecret []byte
	// earlyData: the server accepted the client's 0-RTT data.
	earlyData bool
	// resumptionSecret is the resumption_master_secret (RFC 8446 §7.1)
	// from which the PSKs of tickets are derived; sessionCreatedAt the
	// Unix time of the full handshake whose authentication a resumed
	// session carries (0: this one), which a new ticket keeps.
	resumptionSecret []byte
	sessionCreatedAt uint64
}

// suiteName names the negotiated suite.
func (s *connState) suiteName() string {
	if s.suite13 != nil {
		return s.suite13.name
	}
	if s.suite != nil {
		return s.suite.name
	}
	return ""
}

func newConn(io datagramIO, config *Config, isClient bool) *Conn {
	if config == nil {
		config = &Config{}
	}
	c := &Conn{config: config, isClient: isClient, io: io}
	c.rl = newRecordLayer(config.replayWindow())
	initialRTO, minRTO := config.retransmitTimeouts()
	c.hs = newHandshakeTransport(config.mtu(), initialRTO, minRTO)
	c.expansionFn = c.rl.expansion
	if _, ok := io.(*netConnIO); ok && config.IdleTimeout > 0 {
		c.activity = new(activity) // a Listener's connections use the Listener's
	}
	return c
}

// Client returns a DTLS client over conn, which must be a connected
// datagram socket (such as a *net.UDPConn from net.DialUDP). The config
// needs a way to authenticate the server: ServerName (certificates), with
// RawPublicKey PeerPublicKeys or VerifyPeerCertificate (raw public keys),
// a PSK, or InsecureSkipVerify.
func Client(conn net.Conn, config *Config) *Conn {
	return newConn(newNetConnIO(conn), config, true)
}

// Server returns a DTLS server over conn, a connected datagram socket whose
// peer is the one client. To serve many clients on one socket, use
// NewListener or Listen.
func Server(conn net.Conn, config *Config) *Conn {
	c := newConn(newNetConnIO(conn), config, false)
	c.handshakeErr = c.config.checkServer() // Handshake returns it
	return c
}

// Dial connects to a DTLS server at addr over UDP ("udp", "udp4", "udp6")
// and runs the handshake.
func Dial(network, addr string, config *Config) (*Conn, error) {
	return DialContext(context.Background(), network, addr, config)
}

// DialContext is Dial with a context that bounds the connection setup and
// the handshake.
func DialContext(ctx context.Context, network, addr string, config *Config) (*Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if config == nil {
		config = &Config{}
	}
	if config.ServerName == "" && !config.InsecureSkipVerify && config.PSK == nil {
		host, _, err := net.SplitHostPort(addr)
		if err == nil {
			config = config.Clone()
			config.ServerName = host
		}
	}
	c := Client(raw, config)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.io.localAddr() }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.io.remoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for Read and for a handshake run by
// Read. A zero value means no deadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(&t)
	if c.blockedReads.Load() > 0 {
		c.io.interrupt() // a blocked Read picks up the new deadline
	}
	return nil
}

// SetWriteDeadline sets the deadline for Write.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(&t)
	return nil
}

func loadDeadline(p *atomic.Pointer[time.Time]) time.Time {
	if t := p.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// Handshake runs the handshake if it has not run yet. Most uses need not
// call it: Read and Write do.
func (c *Conn) Handshake() error { return c.HandshakeContext(context.Background()) }

// HandshakeContext runs the handshake, bounded by ctx, the read deadline and
// Config.HandshakeTimeout. Once it fails, every later call returns the
// same error.
func (c *Conn) HandshakeContext(ctx context.Context) error {
	if c.handshakeComplete.Load() {
		return nil
	}
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if c.handshakeErr != nil {
		return c.handshakeErr
	}
	if c.handshakeComplete.Load() {
		return nil
	}
	if c.closed.Load() {
		return net.ErrClosed
	}
	c.in.Lock()
	defer c.in.Unlock()
	if c.hsStart.IsZero() {
		c.hsStart = time.Now()
	}
	defer func() { c.hsDuration = time.Since(c.hsStart) }()

	// The transport's clocks (this deadline, the retransmission timer)
	// run on the wall clock, as the socket's deadlines do: Config.Time is
	// for certificates, sessions and cookies, as in crypto/tls.
	deadline := time.Now().Add(c.config.handshakeTimeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if d := loadDeadline(&c.readDeadline); !d.IsZero() && d.Before(deadline) {
		deadline = d
	}
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	stop := context.AfterFunc(hctx, c.io.interrupt)
	defer stop()

	var err error
	if c.isClient {
		err = c.clientHandshake(hctx)
	} else {
		err = c.serverHandshake(hctx)
	}
	if err == nil {
		// Our last flight needs no timer now: the peer's last flight
		// arrived whole. It is still resent if the peer repeats its own.
		// A DTLS 1.3 client's last flight is the exception: the server
		// ACKs it, and until then it is retransmitted (RFC 9147 §5.8.3),
		// by Read.
		// A 1.3 server marked its flight final itself, and may have
		// started one of post-handshake messages (NewSessionTicket).
		if c.vers != VersionDTLS13 {
			c.hs.finalFlight()
		}
		if len(c.pending) == 0 {
			c.io.release()
		}
		c.hs.shrink() // the reorder slots, unless a peer message is buffered
		c.handshakeComplete.Store(true)
		if c.peerClosedEarly {
			c.readErr = io.EOF // the peer's close_notify that came first
		}
		if c.config.Tracer != nil {
			c.trace(&TraceEvent{Kind: TraceHandshakeDone, Reason: c.state.suiteName(), Version: c.vers})
		}
		return nil
	}
	if hctx.Err() != nil && isTimeout(err) {
		if ctx.Err() != nil {
			err = fmt.Errorf("dtls: handshake: %w", ctx.Err())
		} else {
			err = fmt.Errorf("dtls: handshake timed out: %w", os.ErrDeadlineExceeded)
		}
	}
	if c.peerClosedEarly && (isTimeout(err) || errors.Is(err, errHandshakeStalled)) {
		err = fmt.Errorf("%w (its close_notify arrived, the rest of its last flight did not): %w", errPeerClosedDuringHandshake, err)
	}
	if n := c.drops[dropBadMAC].Load(); n > 0 && (isTimeout(err) || errors.Is(err, errHandshakeStalled)) {
		// The handshake timed out, gave up retransmitting or was ended
		// by its Listener for making no progress, and
		// handleRecord had dropped protected records that failed
		// authentication instead of ending the handshake on the first:
		// say so, the likely cause, and tell the peer with the alert
		// RFC 6347 §4.1.2.7 names for it.
		err = c.fail(alertBadRecordMAC, fmt.Errorf("%w; %d of the peer's protected records failed authentication (wrong PSK?)", err, n))
	}
	if c.unknownPSKIdentity != nil {
		err = fmt.Errorf("%w; %w (the client was not told: RFC 4279 §2)", err, c.unknownPSKIdentity)
	}
	if n, ok := c.io.(*netConnIO); ok && n.refused.Load() && isTimeout(err) {
		// An ICMP unreachable does not end a handshake (isICMPRefused),
		// but it is the likely reason this one timed out.
		err = fmt.Errorf("%w (the peer's address answered with ICMP unreachable: is a server listening there?)", err)
	}
	a := c.alertSent.Load()
	err = classifyHandshakeError(err, alert(a-1), a != 0)
	c.handshakeErr = err
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceHandshakeFailed, Reason: err.Error()})
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// ConnectionState returns details of the connection.
func (c *Conn) ConnectionState() ConnectionState {
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if !c.handshakeComplete.Load() {
		return ConnectionState{Version: c.vers, HandshakeStart: c.hsStart, HandshakeDuration: c.hsDuration}
	}
	// A DTLS 1.3 CID update changes the record layer's CIDs under the
	// out lock (cid_dtls13.go).
	c.out.Lock()
	cs := c.state.connectionState(c.vers, c.rl)
	c.out.Unlock()
	cs.HandshakeComplete = true
	cs.HandshakeStart, cs.HandshakeDuration = c.hsStart, c.hsDuration
	cs.ReturnRoutabilityCheck = c.rrcNegotiated
	cs.ekm = c.ekm
	return cs
}

// verifyConnection runs Config.VerifyConnection, if set, on what the
// handshake negotiated (s), before we send our Finished (1.2 and 1.3
// alike); its error fails the handshake with bad_certificate.
func (c *Conn) verifyConnection(s *connState) error {
	f := c.config.VerifyConnection
	if f == nil {
		return nil
	}
	cs := s.connectionState(c.vers, c.rl)
	cs.HandshakeStart = c.hsStart // its duration is not known yet
	cs.ReturnRoutabilityCheck = c.rrcNegotiated
	if err := f(cs); err != nil {
		return c.fail(alertBadCertificate, err)
	}
	return nil
}

// connectionState builds the public view of negotiated state s, for
// ConnectionState once the handshake is complete and for
// Config.VerifyConnection before it is: the one place a ConnectionState
// is made. The Connection IDs come from the record layer, which uses
// them.
func (s *connState) connectionState(vers uint16, rl *recordLayer) ConnectionState {
	var suite uint16
	if s.suite13 != nil {
		suite = s.suite13.id
	} else if s.suite != nil {
		suite = s.suite.id
	}
	return ConnectionState{
		Version:               vers,
		CipherSuite:           suite,
		NegotiatedProtocol:    s.alpn,
		ServerName:            s.serverName,
		PeerCertificates:      s.peerCertificates,
		VerifiedChains:        s.verifiedChains,
		ExtendedMasterSecret:  s.ems,
		PSKIdentity:           s.pskIdentity,
		PSKIdentityHint:       s.pskIdentityHint,
		CurveID:               s.curveID,
		SignatureScheme:       s.sigScheme,
		SRTPProtectionProfile: s.srtpProfile,
		PeerPublicKey:         s.peerPublicKey,
		LocalConnectionID:     rl.readCID,
		RemoteConnectionID:    rl.writeCID,
		DidResume:             s.didResume,
		EarlyDataAccepted:     s.earlyData,
	}
}

func (c *Conn) ekm(label string, context []byte, length int) ([]byte, error) {
	s := &c.state
	if s.suite13 != nil {
		// RFC 8446 §7.5, with the dtls13 label prefix (RFC 9147 §5.9).
		return exportKeyingMaterial13(s.suite13.hash, labelPrefixDTLS13, s.exporterSecret, label, context, length)
	}
	if !s.ems && !c.config.InsecureAllowNoExtendedMasterSecret {
		return nil, errors.New("dtls: exporter needs the extended master secret")
	}
	return exportKeyingMaterial(s.suite.hash, s.masterSecret, s.clientRandom, s.serverRandom, label, context, length)
}

// ExportKeyingMaterial returns length bytes of keying material from the
// connection's master secret, per RFC 5705 (used by DTLS-SRTP, RFC 5764).
func (c *Conn) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if !c.handshakeComplete.Load() {
		return nil, errHandshakeNotComplete
	}
	return c.ekm(label, context, length)
}

// Stats returns how many records the connection dropped, by reason.
func (c *Conn) Stats() Stats {
	var s Stats
	s.Dropped = make(map[string]uint64)
	for i := range c.drops {
		if n := c.drops[i].Load(); n > 0 {
			s.Dropped[dropReason(i).String()] = n
		}
	}
	return s
}

// Stats counts what a connection silently discarded (RFC 6347 §4.1.2.7).
type Stats struct {
	Dropped map[string]uint64 // records dropped, by reason
}

// Write sends b as the payload of one application-data record. b must be
// at most 16384 bytes; nothing is sent when it is larger.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if err := c.fatal(); err != nil {
		return 0, err
	}
	if len(b) > maxPlaintext {
		return 0, errors.New("dtls: Write of more than 16384 bytes; a datagram carries one record")
	}
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if d := loadDeadline(&c.writeDeadline); !d.IsZero() && !time.Now().Before(d) {
		return 0, os.ErrDeadlineExceeded
	}
	c.out.Lock()
	if c.vers == VersionDTLS13 && c.rl.writeUsage13() == usageExhausted {
		// The key reached its limit before our KeyUpdate was ACKed:
		// wait for the next key rather than seal past it or drop b.
		c.out.Unlock()
		if err := c.waitWriteKeys13(); err != nil {
			return 0, err
		}
		c.out.Lock()
	}
	buf, err := c.rl.seal(c.outBuffer(recordHeaderLen+len(b)+c.rl.expansion(c.rl.writeCur)), c.rl.writeCur, recordTypeApplicationData, b)
	if err != nil {
		c.out.Unlock()
		return 0, err
	}
	c.traceRecordSent(buf, len(b))
	err = c.io.writeDatagram(buf)
	due := c.keyUpdateDue13()
	c.out.Unlock()
	if err != nil {
		return 0, err
	}
	if due {
		// RFC 9147 §4.5.3: update the keys before the limit.
		if err := c.requestKeyUpdate(false); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// Read reads the data of the next application record into b. If b is too
// small for the record, the rest of the record is discarded, as with a UDP
// socket. Read returns io.EOF after the peer's close_notify.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.in.Lock()
	defer c.in.Unlock()
	// Once its datagram is consumed, on every path (close_notify
	// included), a connection gives its buffer back: an idle one holds none.
	defer func() {
		if len(c.pending) == 0 {
			c.io.release()
		}
	}()
	for {
		if err := c.fatal(); err != nil {
			return 0, err
		}
		if len(c.heldAppData) > 0 {
			d := c.heldAppData[0]
			c.heldAppData[0] = nil
			c.heldAppData = c.heldAppData[1:]
			return copy(b, d), nil
		}
		if c.readErr != nil {
			return 0, c.readErr
		}
		data, err := c.readRecord(context.Background(), true)
		if err != nil {
			return 0, err
		}
		if data != nil {
			return copy(b, data), nil
		}
	}
}

// Close sends close_notify (after a completed handshake) and closes the
// connection. A Read blocked in another goroutine returns.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.handshakeComplete.Load() && c.fatal() == nil && !c.endedByListener() {
			c.out.Lock()
			c.sendAlertLocked(alertLevelWarning, alertCloseNotify)
			c.out.Unlock()
		}
		c.closed.Store(true)
		err = c.io.close()
	})
	return err
}

// holdAppData keeps a copy of application data read where no Read takes
// it, for the next Read, up to maxHeldAppData records.
func (c *Conn) holdAppData(data []byte) {
	if len(c.heldAppData) < maxHeldAppData {
		c.heldAppData = append(c.heldAppData, slices.Clone(data))
	}
}

// readRecord processes the next record, reading a datagram first when none
// is pending. It returns the record's application data (valid until the
// next call), or nil when the record carried something else. Called with
// c.in held.
func (c *Conn) readRecord(ctx context.Context, userDeadline bool) ([]byte, error) {
	if c.ku.wanted.Load() != 0 {
		// A KeyUpdate that UpdateKeys or Write asked for (conn_dtls13.go).
		if err := c.serviceKeyUpdate(); err != nil {
			return nil, err
		}
	}
	if c.pha.unsent.Load() {
		// A RequestClientCertificate (posthandshake_auth_dtls13.go).
		if err := c.serviceCertRequests(); err != nil {
			return nil, err
		}
	}
	if c.cid13.unsent.Load() {
		// RequestConnectionIDs, RotateConnectionID (cid_dtls13.go).
		if err := c.serviceCIDUpdates13(); err != nil {
			return nil, err
		}
	}
	if len(c.pending) == 0 {
		d, err := c.readDatagram(ctx, userDeadline)
		if err != nil || d == nil {
			return nil, err // nil, nil: a retransmission timer fired
		}
		c.pending = d
		c.dgramLen, c.dgramCounted = len(d), false
		c.noteDatagramReceived(len(d)) // an unproven 0-RTT client's
	}
	if len(c.pending) > 0 && classifyRecord(c.pending[0]) == classCiphertext13 {
		return c.readRecord13()
	}
	hdr, body, rest, reason := nextRecordCID(c.pending, len(c.rl.readCID))
	if reason != dropNone {
		c.pending = nil
		c.drop(reason, hdr)
		return nil, nil
	}
	c.pending = rest
	return c.handleRecord(hdr, body)
}

// readDatagram reads the next datagram, driving the retransmission timer
// while a handshake flight is outstanding, and honouring the read deadline
// when userDeadline is set. It returns nil data after a retransmission or
// an interrupt.
func (c *Conn) readDatagram(ctx context.Context, userDeadline bool) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.closed.Load() {
		return nil, net.ErrClosed
	}
	// Count ourselves as blocked before loading the deadline, so that a
	// concurrent SetReadDeadline either is seen here or interrupts us.
	c.blockedReads.Add(1)
	defer c.blockedReads.Add(-1)
	var deadline, idleAt time.Time
	if userDeadline {
		deadline = loadDeadline(&c.readDeadline)
		if c.activity != nil && c.listener == nil { // a Listener's janitor checks its own
			idleAt = c.activity.at().Add(c.config.IdleTimeout)
		}
	}
	wait := deadline
	if !idleAt.IsZero() && (wait.IsZero() || idleAt.Before(wait)) {
		wait = idleAt
	}
	rtx, armed := time.Time{}, false
	if c.hs != nil {
		rtx, armed = c.hs.deadline()
	}
	if armed && (wait.IsZero() || rtx.Before(wait)) {
		wait = rtx
	}
	pathAt, pathArmed := c.pathDeadline()
	if pathArmed && (wait.IsZero() || pathAt.Before(wait)) {
		wait = pathAt
	}
	d, err := c.io.readDatagram(wait)
	if err != nil {
		if c.closed.Load() {
			return nil, net.ErrClosed
		}
		if !idleAt.IsZero() && isTimeout(err) && !time.Now().Before(idleAt) {
			c.readErr = ErrIdleTimeout
			return nil, ErrIdleTimeout
		}
		if isTimeout(err) && pathArmed {
			// A return routability check's timer (rrc.go).
			now := time.Now()
			if !now.Before(pathAt) {
				c.pathTimer(now)
			}
			if !armed && (deadline.IsZero() || now.Before(deadline)) {
				return nil, ctx.Err() // nil unless cancelled: read again
			}
		}
		if isTimeout(err) && armed {
			now := time.Now()
			if err := c.ackTimer(now); err != nil {
				return nil, err
			}
			if c.hs.timerFired(now) {
				if c.config.Tracer != nil {
					c.trace(&TraceEvent{Kind: TraceTimerFired})
				}
				if c.hs.retransmitLimitReached() && c.ku.pending {
					return nil, c.fail(alertInternalError, fmt.Errorf("dtls: KeyUpdate not acknowledged after %d retransmissions: %w", maxRetransmissions, os.ErrDeadlineExceeded))
				}
				if c.hs.retransmitLimitReached() && c.handshakeComplete.Load() {
					// A DTLS 1.3 client's final flight that the
					// server never ACKed: the handshake is done,
					// so stop resending rather than fail.
					c.hs.finalFlight()
					return nil, nil
				}
				if c.hs.retransmitLimitReached() {
					return nil, fmt.Errorf("dtls: handshake gave up: flight %d unanswered after %d retransmissions: %w", c.flights, maxRetransmissions, os.ErrDeadlineExceeded)
				}
				if !c.handshakeComplete.Load() && c.hs.flightACKDue() {
					// DTLS 1.3: the peer has our flight and sent
					// part of its own; an ACK of that part asks for
					// the rest (transport_dtls13.go).
					if err := c.sendFlightACK(); err != nil {
						return nil, err
					}
					return nil, nil
				}
				if err := c.sendFlight(true, "timer"); err != nil {
					return nil, err
				}
				return nil, nil
			}
			if deadline.IsZero() || now.Before(deadline) {
				return nil, ctx.Err() // nil unless cancelled: read again
			}
		}
		if errors.Is(err, errInterrupted) {
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			return nil, nil // the deadline changed; read again
		}
		return nil, err
	}
	if c.config.Tracer != nil {
		ev := &TraceEvent{Kind: TraceDatagramReceived, Length: len(d), Datagram: d}
		if p, ok := c.io.(pathIO); ok {
			if src, moved := p.source(); moved {
				ev.Path = src // from a new address of the peer
			}
		}
		c.trace(ev)
	}
	if pathArmed {
		// Under steady traffic the read never times out: run the
		// check's timer here too.
		if now := time.Now(); !now.Before(pathAt) {
			c.pathTimer(now)
		}
	}
	return d, nil
}

// handleRecord processes one record. It returns application data when the
// record carries some and the handshake is complete.
//
// What unauthenticated input may do follows one rule: RFC 6347 §4.1.2.7
// asks for invalid records to be silently discarded, and nothing an
// off-path attacker can send without keys ends a connection or a handshake
// where the RFC leaves a choice. Epoch-0 records are unauthenticated; the
// README's "Security notes and limits" lists what each kind may do.
func (c *Conn) handleRecord(hdr recordHeader, body []byte) ([]byte, error) {
	if hdr.epoch == 0 && c.peerFinished {
		// The peer's Finished proved it holds the epoch-1 keys, and came
		// after every epoch-0 message it will send: from now on an
		// unprotected record carries no meaning, whatever it says (a
		// malformed ChangeCipherSpec, a ClientHello, a stateless
		// HelloVerifyRequest a Listener sent on a forged ClientHello, an
		// alert). RFC 6347 §4.1: records of an earlier epoch SHOULD be
		// discarded; only "until the handshake has completed" MUST they
		// be accepted. Nothing answers them: the peer's retransmitted
		// last flight still gets our final flight again through its
		// epoch-1 Finished.
		c.drop(dropEpoch0AfterHandshake, hdr)
		return nil, nil
	}
	data, reason := c.rl.open(&hdr, body)
	if reason == dropFutureEpoch {
		if !c.handshakeComplete.Load() && len(c.future) < maxFutureRecords {
			rec := make([]byte, 0, recordHeaderLen+len(hdr.cid)+len(body))
			rec = appendRecordHeaderCID(rec, hdr.typ, hdr.version, hdr.epoch, hdr.seq, hdr.cid, len(body))
			c.future = append(c.future, append(rec, body...))
			return nil, nil
		}
		c.drop(reason, hdr)
		return nil, nil
	}
	if reason != dropNone {
		// A protected record that fails authentication is dropped, even
		// during the handshake, where a peer with a wrong PSK sends
		// nothing else: RFC 6347 §4.1.2.1 lets us continue, and a
		// forged epoch-1 record must not end a handshake. The count
		// names the likely cause if the handshake then times out.
		c.drop(reason, hdr)
		return nil, nil
	}
	return c.handleOpened(hdr, data)
}

// handleOpened processes a record that the record layer opened (1.2 or,
// from readRecord13, 1.3).
func (c *Conn) handleOpened(hdr recordHeader, data []byte) ([]byte, error) {
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceRecordReceived, Epoch: hdr.epoch, Seq: hdr.seq, ContentType: uint8(hdr.typ), Length: len(data), Version: hdr.version})
	}
	is13 := c.vers == VersionDTLS13
	if c.activity != nil && hdr.epoch > 0 {
		c.activity.touch() // authenticated: the peer is there (idle timeout)
	}
	if hdr.cid != nil && hdr.epoch > 0 && c.handshakeComplete.Load() {
		// RFC 9146 §6: a record with our CID that authenticated and is
		// the newest yet may move the peer to the datagram's source;
		// with rrc negotiated only after a return routability check
		// of that source (RFC 9853, rrc.go).
		c.observePath(&hdr)
	}
	if is13 && hdr.epoch == 1 {
		return nil, c.handleEarlyRecord(hdr, data) // 0-RTT (early_data_dtls13.go)
	}
	switch hdr.typ {
	case recordTypeHandshake:
		if is13 || c.offered13 && c.vers == 0 {
			if c.handshakeComplete.Load() {
				return nil, c.handlePostHandshake13(hdr, data)
			}
			return nil, c.handleHandshakeRecord13(hdr, data)
		}
		if c.handshakeComplete.Load() {
			return nil, c.handlePostHandshakeMessage(hdr, data)
		}
		return nil, c.handleHandshakeRecord(hdr, data)
	case recordTypeACK:
		return nil, c.handleACK(hdr, data)
	case recordTypeRRC:
		return nil, c.handleRRC(hdr, data)
	case recordTypeChangeCipherSpec:
		if is13 {
			// No ChangeCipherSpec in DTLS 1.3 (RFC 9147 §5; the TLS
			// middlebox-compatibility one is not sent).
			c.drop(dropBadContentType, hdr)
			return nil, nil
		}
		return nil, c.handleChangeCipherSpec(hdr, data)
	case recordTypeAlert:
		return nil, c.handleAlert(hdr, data)
	case recordTypeApplicationData:
		if hdr.epoch == 0 || is13 && hdr.epoch < 3 {
			// Plaintext application data is never accepted (pion
			// CVE-2019-20786, wolfSSL CVE-2020-24585). During the
			// handshake it is dropped rather than answered with a fatal
			// unexpected_message: anyone on the path could send it, and
			// RFC 6347 §4.1.2.7 leaves the choice (issue 10 suggested
			// the alert; the project's rule on unauthenticated input
			// wins). After the handshake it never gets here.
			c.drop(dropBadContentType, hdr)
			return nil, nil
		}
		if !c.handshakeComplete.Load() {
			c.holdAppData(data)
			return nil, nil
		}
		return data, nil
	}
	c.drop(dropBadContentType, hdr)
	return nil, nil
}

// handleHandshakeRecord hands a handshake record to the transport, which
// reassembles the peer's messages and reports a repeated flight of the
// peer, answered by resending ours.
func (c *Conn) handleHandshakeRecord(hdr recordHeader, data []byte) error {
	resend, dropped, why := c.hs.handleRecord(hdr.epoch, data, time.Now())
	if dropped > 0 {
		c.drops[dropBadHandshake].Add(uint64(dropped))
		if c.config.Tracer != nil {
			c.trace(&TraceEvent{Kind: TraceRecordDropped, Epoch: hdr.epoch, Seq: hdr.seq, ContentType: uint8(hdr.typ), Reason: why})
		}
	}
	if resend {
		// The peer repeated its previous flight: ours was lost. The
		// transport rate-limits these.
		return c.sendFlight(true, "peer repeated")
	}
	return nil
}

// handlePostHandshakeMessage handles a handshake record that arrives after
// the handshake. It is authenticated, in the current epoch: epoch-0
// records were dropped before. DTLS 1.2 has no post-handshake messages,
// only renegotiation, which handleRenegotiation refuses. DTLS 1.3 adds its
// branch here, a switch on the message type: KeyUpdate and
// NewSessionTicket (RFC 9147 §8, RFC 8446 §4.6), NewConnectionId and
// RequestConnectionId (RFC 9147 §9); ACKs are a record type of their own
// (§7) and never come here.
func (c *Conn) handlePostHandshakeMessage(hdr recordHeader, data []byte) error {
	return c.handleRenegotiation(hdr, data)
}

// handleRenegotiation is the DTLS 1.2 branch of handlePostHandshakeMessage.
//
// A ClientHello to a server, or a HelloRequest to a client, asks for a new
// handshake, which this package does not do: it is answered at once with
// a no_renegotiation warning in the current epoch (RFC 5246 §7.4.1.1 and
// §7.2.2: "always a warning"; the requester decides whether to go on), and
// the connection goes on. It is recognized by its type, not by its
// message_seq: a renegotiating ClientHello starts again at message_seq 0
// (RFC 6347 §4.2.2), which the transport would take for a retransmission
// and answer with our last flight, leaving the peer to time out, and a
// HelloRequest may carry any message_seq.
//
// Otherwise the transport takes the record: the peer's Finished repeated
// (our final flight was lost) gets our final flight again, and any other
// complete message is out of place, a fatal unexpected_message (RFC 5246
// §7.2.2): only the peer can have sent it.
func (c *Conn) handleRenegotiation(hdr recordHeader, data []byte) error {
	if ask, answer := renegotiationRequest(data, c.isClient); ask {
		c.out.Lock()
		defer c.out.Unlock()
		if now := c.config.time(); answer && now.Sub(c.lastNoRenegotiation) >= noRenegotiationInterval {
			c.lastNoRenegotiation = now
			c.sendAlertLocked(alertLevelWarning, alertNoRenegotiation)
		}
		return nil
	}
	if err := c.handleHandshakeRecord(hdr, data); err != nil {
		return err
	}
	if m, ok := c.hs.nextMessage(); ok {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: unexpected %v after the handshake", m.typ))
	}
	return nil
}

// renegotiationRequest reports whether a handshake record holds a
// fragment of a message that starts a renegotiation when it reaches our
// side (a ClientHello at a server, a HelloRequest at a client), and
// whether one of those fragments is the message's first, which is
// answered (once per message, not per fragment).
func renegotiationRequest(data []byte, isClient bool) (ask, answer bool) {
	want := typeClientHello
	if isClient {
		want = typeHelloRequest
	}
	// Each step consumes a header or stops, so no input can loop.
	for len(data) >= handshakeHeaderLen {
		typ := handshakeType(data[0])
		off := uint32(data[6])<<16 | uint32(data[7])<<8 | uint32(data[8])
		n := int(uint32(data[9])<<16 | uint32(data[10])<<8 | uint32(data[11]))
		if typ == want {
			ask = true
			answer = answer || off == 0
		}
		if n > len(data)-handshakeHeaderLen {
			break
		}
		data = data[handshakeHeaderLen+n:]
	}
	return ask, answer
}

// handleChangeCipherSpec takes the peer's ChangeCipherSpec.
func (c *Conn) handleChangeCipherSpec(hdr recordHeader, data []byte) error {
	if len(data) != 1 || data[0] != 1 {
		if hdr.epoch == 0 {
			// Unauthenticated and invalid: silently discarded
			// (RFC 6347 §4.1.2.7). Anyone could send it.
			c.drop(dropMalformed, hdr)
			return nil
		}
		// RFC 5246 §7.1: the message is the single byte 1.
		return c.fail(alertUnexpectedMessage, errors.New("dtls: malformed ChangeCipherSpec"))
	}
	if c.expectCCS && hdr.epoch == c.rl.readCur-1 {
		c.peerCCS = true
	} else {
		c.drop(dropBadContentType, hdr)
	}
	return nil
}

// handleAlert takes an alert from the peer.
//
// An epoch-0 alert during the handshake ends it when it is fatal or a
// close_notify, and until the peer's ChangeCipherSpec arrives: RFC 6347
// §4.1 requires accepting the old epoch's records until the handshake has
// completed, the peer's own alerts come in epoch 0 until it changes keys,
// and RFC 5246 §7.2.1 and §7.2.2 end the connection on a received
// close_notify or fatal alert; nothing tells a forged one from the peer's.
// That exposure is documented (README). Once the peer's ChangeCipherSpec
// has arrived, everything it sends is protected (RFC 5246 §7.1): an
// epoch-0 alert then is not the peer's, and is dropped. Warnings other
// than close_notify change nothing, whatever their epoch: no_renegotiation
// included, since we never ask to renegotiate (RFC 5246 §7.2.2 leaves the
// decision to the side that asked). A malformed epoch-0 alert is an
// invalid record, dropped; a malformed protected one is a fatal
// decode_error, since only the peer can have sent it.
func (c *Conn) handleAlert(hdr recordHeader, data []byte) error {
	if len(data) != 2 || data[0] != alertLevelWarning && data[0] != alertLevelError {
		if hdr.epoch == 0 {
			c.drop(dropMalformed, hdr)
			return nil
		}
		return c.fail(alertDecodeError, errors.New("dtls: malformed alert"))
	}
	if hdr.epoch == 0 && c.peerCCS {
		c.drop(dropPlaintextAlert, hdr)
		return nil
	}
	a := alert(data[1])
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceAlertReceived, Alert: uint8(a), Epoch: hdr.epoch})
	}
	if a == alertCloseNotify {
		if !c.handshakeComplete.Load() && hdr.epoch > 0 {
			// A protected close_notify before our handshake completed:
			// the peer sends nothing under the new keys before its
			// Finished, so this alert overtook that Finished (datagrams
			// reorder, and early records are replayed in arrival order).
			// Ending the handshake here would fail one that is about to
			// complete, as a Listener's Shutdown right after a handshake
			// showed. Hold it: once the Finished is read the connection
			// is established and at EOF; if it never comes, the
			// handshake's error says the peer closed.
			c.peerClosedEarly = true
			return nil
		}
		c.readErr = io.EOF
		if !c.handshakeComplete.Load() {
			return errPeerClosedDuringHandshake
		}
		return io.EOF
	}
	if data[0] == alertLevelWarning {
		return nil
	}
	// RFC 5246 §7.2.2: a fatal alert ends the connection, both ways.
	return c.setFatal(AlertError(a))
}

func (c *Conn) drop(reason dropReason, hdr recordHeader) {
	c.drops[reason].Add(1)
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceRecordDropped, Epoch: hdr.epoch, Seq: hdr.seq, ContentType: uint8(hdr.typ), Reason: reason.String()})
	}
}

// readHandshake returns the next handshake message, reading and
// retransmitting as needed. It returns the message by value: a pointer
// would cost an allocation per message.
func (c *Conn) readHandshake(ctx context.Context) (inMessage, error) {
	for {
		if m, ok := c.hs.nextMessage(); ok {
			if c.listener != nil {
				c.io.(*listenerConnIO).handshakeProgress() // for the stall timeout
			}
			if c.config.Tracer != nil {
				c.trace(&TraceEvent{Kind: TraceHandshakeReceived, Epoch: m.epoch, HandshakeType: traceHandshakeType(m.typ, m.body), MessageSeq: m.seq, MessageLength: uint32(len(m.body)), FragmentLength: uint32(len(m.body))})
			}
			return m, nil
		}
		if _, err := c.readRecord(ctx, false); err != nil {
			return inMessage{}, err
		}
	}
}

// installPeerKeys moves the read side to the next epoch's keys as soon as
// they are derived, and replays records of that epoch that arrived early.
// From then on the peer's protected records are read, so a Finished sent
// where another message belongs is seen as such rather than waited past;
// readChangeCipherSpec still requires the peer's ChangeCipherSpec before
// its Finished is taken. A client reading NewSessionTicket, which comes
// just before the server's ChangeCipherSpec, installs them first so that a
// ChangeCipherSpec that overtook the ticket is not dropped.
func (c *Conn) installPeerKeys(keys *epochKeys) error {
	c.rl.installReadKeys(keys)
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceEpochChanged, Epoch: c.rl.readCur, Reason: "read"})
	}
	c.expectCCS = true
	future := c.future
	c.future = nil
	for _, rec := range future {
		hdr, body, _, reason := nextRecordCID(rec, len(c.rl.readCID))
		if reason != dropNone {
			continue
		}
		if _, err := c.handleRecord(hdr, body); err != nil {
			return err
		}
	}
	return nil
}

// readChangeCipherSpec waits for the peer's ChangeCipherSpec, after
// installPeerKeys.
func (c *Conn) readChangeCipherSpec(ctx context.Context) error {
	for !c.peerCCS {
		// The next message is complete and of the old epoch: the peer
		// sent a handshake message where its ChangeCipherSpec belongs
		// (a Finished in the clear, a message repeated with a new
		// message_seq). Waiting would only end in a timeout. An epoch-1
		// Finished ahead of the CCS is reordering, and waits.
		if typ, epoch, ok := c.hs.peekMessage(); ok && epoch < c.rl.readCur {
			return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: expected ChangeCipherSpec, got %v", typ))
		}
		if _, err := c.readRecord(ctx, false); err != nil {
			return err
		}
	}
	c.expectCCS = false
	return nil
}

// writeChangeCipherSpec queues a ChangeCipherSpec and moves the write side
// to the next epoch.
func (c *Conn) writeChangeCipherSpec(keys *epochKeys) {
	c.hs.queueChangeCipherSpec(c.rl.writeCur)
	c.rl.installWriteKeys(keys)
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceEpochChanged, Epoch: c.rl.writeCur, Reason: "write"})
	}
}

// sendFlight seals and sends the current flight.
func (c *Conn) sendFlight(retransmit bool, why string) error {
	c.out.Lock()
	defer c.out.Unlock()
	if !retransmit {
		c.flights++
		c.hs.implicitACK() // DTLS 1.3: our flight acknowledges the peer's
	}
	now := time.Now()
	if c.config.Tracer != nil {
		kind := TraceFlightSent
		if retransmit {
			kind = TraceFlightRetransmitted
		}
		c.trace(&TraceEvent{Kind: kind, Flight: c.flights, Reason: why})
	}
	var dgs [8][]outRecord // a flight is rarely more datagrams; more grow it
	for _, dgram := range c.hs.appendFlightDatagrams(dgs[:0], c.expansionFn) {
		buf := c.outBuffer(c.hs.mtu)
		for _, rec := range dgram {
			start := len(buf)
			var err error
			buf, err = c.rl.seal(buf, rec.epoch, rec.typ, rec.data)
			if retransmit && errors.Is(err, errLimitReached) {
				// A DTLS 1.3 key past its confidentiality limit
				// (RFC 9147 §4.5.3) cannot resend its KeyUpdate; the
				// timer runs on, and the retransmission limit ends
				// the connection if no ACK comes.
				c.hs.flightSent(now)
				return nil
			}
			if err != nil {
				return err
			}
			if rec.epoch != 0 && c.vers == VersionDTLS13 || c.hs.ack13 != nil && rec.epoch == 0 {
				rn := c.rl.lastSealed
				if rec.epoch == 0 {
					rn = recordNumber{0, c.rl.writeState(0).seq - 1}
				}
				c.hs.noteSent13(rn, rec.entry, rec.off, rec.off+uint32(len(rec.data)-handshakeHeaderLen))
			}
			if c.config.Tracer != nil {
				c.traceRecordSent(buf[start:], len(rec.data))
				if rec.typ == recordTypeHandshake {
					var h handshakeHeader
					if h.unmarshal(rec.data) {
						c.trace(&TraceEvent{Kind: TraceHandshakeSent, Epoch: rec.epoch, HandshakeType: traceHandshakeType(h.typ, rec.data[handshakeHeaderLen:]), MessageSeq: h.messageSeq, FragmentOffset: h.fragmentOffset, FragmentLength: h.fragmentLength, MessageLength: h.length, Flight: c.flights})
					}
				}
			}
		}
		if !c.budgetAllows(len(buf)) {
			continue // held back: an unproven 0-RTT client's address
		}
		if c.config.Tracer != nil {
			c.trace(&TraceEvent{Kind: TraceDatagramSent, Length: len(buf), Datagram: buf})
		}
		if err := c.io.writeDatagram(buf); err != nil {
			return err
		}
	}
	if retransmit {
		// A client's 0-RTT data goes with its ClientHello again.
		if err := c.resendEarlyData(); err != nil {
			return err
		}
	}
	c.hs.flightSent(now)
	if c.config.Tracer != nil {
		if d, ok := c.hs.deadline(); ok {
			c.trace(&TraceEvent{Kind: TraceTimerArmed, Timeout: d.Sub(now)})
		}
	}
	return nil
}

// outBuffer returns c.outBuf, empty, with room for n bytes. It grows only
// when needed, so that a connection that sends small records keeps a small
// buffer. Called with c.out held.
func (c *Conn) outBuffer(n int) []byte {
	if cap(c.outBuf) < n {
		c.outBuf = make([]byte, 0, max(n, 2*cap(c.outBuf)))
	}
	return c.outBuf[:0]
}

func (c *Conn) traceRecordSent(rec []byte, plainLen int) {
	if c.config.Tracer == nil {
		return
	}
	var hdr recordHeader
	if classifyRecord(rec[0]) == classCiphertext13 {
		// The unified header hides the type and sequence number: the
		// record layer remembers what it sealed.
		hdr = recordHeader{typ: c.rl.lastSealedType, version: VersionDTLS13, epoch: c.rl.lastSealed.epoch, seq: c.rl.lastSealed.seq}
	} else {
		hdr, _ = parseRecordHeader(rec)
	}
	c.trace(&TraceEvent{Kind: TraceRecordSent, Epoch: hdr.epoch, Seq: hdr.seq, ContentType: uint8(hdr.typ), Length: plainLen, Version: hdr.version})
	if hdr.typ == recordTypeApplicationData {
		c.trace(&TraceEvent{Kind: TraceDatagramSent, Length: len(rec), Datagram: rec})
	}
}

// sendAlert sends a fatal alert and returns it as the connection's error.
func (c *Conn) sendAlert(a alert) error { return c.fail(a, nil) }

// sendAlertLocked sends an alert in the current write epoch, so that a
// peer holding our keys can tell it is ours. Errors are not returned: an
// alert is sent on the way out of a failure, or as a warning the peer may
// lose anyway (RFC 9147 §5.10: alerts are not reliably transmitted), and
// the caller's own error is the one that matters.
func (c *Conn) sendAlertLocked(level uint8, a alert) {
	buf, err := c.rl.seal(c.outBuffer(recordHeaderLen+2+c.rl.expansion(c.rl.writeCur)), c.rl.writeCur, recordTypeAlert, []byte{level, byte(a)})
	if err != nil {
		return
	}
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceAlertSent, Alert: uint8(a), Epoch: c.rl.writeCur})
		c.trace(&TraceEvent{Kind: TraceDatagramSent, Length: len(buf), Datagram: buf})
	}
	_ = c.io.writeDatagram(buf) // not returned, as said above
}

// fail sends a fatal alert and returns err (or the alert when err is nil),
// which becomes the connection's error: Read and Write return it from now
// on. After a fatal error, sent or received, nothing more is sent.
func (c *Conn) fail(a alert, err error) error {
	if err == nil {
		err = a
	}
	if !c.fatalErr.CompareAndSwap(nil, &err) {
		return c.fatal()
	}
	c.alertSent.Store(uint32(a) + 1)
	c.out.Lock()
	defer c.out.Unlock()
	c.sendAlertLocked(alertLevelError, a)
	return err
}

// setFatal makes err the connection's error unless it already has one, and
// returns the one it has.
func (c *Conn) setFatal(err error) error {
	if c.fatalErr.CompareAndSwap(nil, &err) {
		return err
	}
	return c.fatal()
}

// fatal returns the connection's fatal error, or nil.
func (c *Conn) fatal() error {
	if p := c.fatalErr.Load(); p != nil {
		return *p
	}
	return nil
}

// trace delivers ev to the Tracer. Callers check c.config.Tracer first:
// the event escapes to the heap, so one built without the check costs an
// allocation even when there is no Tracer.
func (c *Conn) trace(ev *TraceEvent) {
	if c.config.Tracer == nil {
		return
	}
	ev.Time = c.config.time()
	ev.Client = c.isClient
	ev.Local = addrPort(c.io.localAddr())
	ev.Remote = addrPort(c.io.remoteAddr())
	c.config.Tracer(ev)
}

func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort()
	}
	return netip.AddrPort{}
}
