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
	// maxEarlyAppData bounds application records that arrive after the
	// peer's Finished but before our handshake returns.
	maxEarlyAppData = 16
	// maxDatagramSize is the largest UDP payload we read.
	maxDatagramSize = 65535 - 8 - 20
)

// A Conn is a DTLS connection: it implements net.Conn with datagram
// semantics. One Write sends one record; one Read returns the data of one
// record. The handshake runs on the first Read or Write, or on Handshake.
type Conn struct {
	config   *Config
	isClient bool
	io       datagramIO
	listener *Listener // set for connections accepted by a Listener

	// Handshake state, guarded by handshakeMu until the handshake is done.
	handshakeMu       sync.Mutex
	handshakeErr      error
	handshakeComplete atomic.Bool
	hs                *handshakeTransport
	rl                *recordLayer
	state             connState

	// in guards the read side after the handshake.
	in        sync.Mutex
	pending   []byte // records of the current datagram not yet processed
	readErr   error  // sticky: io.EOF after close_notify, or the fatal error
	earlyData [][]byte
	future    [][]byte // next-epoch records waiting for keys
	peerCCS   bool     // the peer's ChangeCipherSpec has arrived
	expectCCS bool     // a ChangeCipherSpec from the peer is due

	// out guards the write side.
	out     sync.Mutex
	outBuf  []byte
	flights int // flights we sent, for tracing

	readDeadline  atomic.Pointer[time.Time]
	writeDeadline atomic.Pointer[time.Time]

	blockedReads atomic.Int32 // reads waiting in c.io, for SetReadDeadline
	closed       atomic.Bool
	closeOnce    sync.Once
	expansionFn  func(uint16) int

	drops [numDropReasons]atomic.Uint64
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
	return c
}

// Client returns a DTLS client over conn, which must be a connected
// datagram socket (such as a *net.UDPConn from net.DialUDP). The config
// needs ServerName or InsecureSkipVerify, or a PSK.
func Client(conn net.Conn, config *Config) *Conn {
	return newConn(newNetConnIO(conn), config, true)
}

// Server returns a DTLS server over conn, a connected datagram socket whose
// peer is the one client. To serve many clients on one socket, use
// NewListener or Listen.
func Server(conn net.Conn, config *Config) *Conn {
	return newConn(newNetConnIO(conn), config, false)
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

	deadline := c.config.time().Add(c.config.handshakeTimeout())
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
		c.hs.finalFlight()
		if len(c.pending) == 0 {
			c.io.release()
		}
		c.handshakeComplete.Store(true)
		c.trace(&TraceEvent{Kind: TraceHandshakeDone, Reason: c.state.suite.name})
		return nil
	}
	if hctx.Err() != nil && isTimeout(err) {
		if ctx.Err() != nil {
			err = fmt.Errorf("dtls: handshake: %w", ctx.Err())
		} else {
			err = fmt.Errorf("dtls: handshake timed out: %w", os.ErrDeadlineExceeded)
		}
	}
	c.handshakeErr = err
	c.trace(&TraceEvent{Kind: TraceHandshakeFailed, Reason: err.Error()})
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
	cs := ConnectionState{
		Version:           VersionDTLS12,
		HandshakeComplete: c.handshakeComplete.Load(),
	}
	if !cs.HandshakeComplete {
		return cs
	}
	s := &c.state
	cs.CipherSuite = s.suite.id
	cs.NegotiatedProtocol = s.alpn
	cs.ServerName = s.serverName
	cs.PeerCertificates = s.peerCertificates
	cs.VerifiedChains = s.verifiedChains
	cs.ExtendedMasterSecret = s.ems
	cs.PSKIdentity = s.pskIdentity
	cs.PSKIdentityHint = s.pskIdentityHint
	cs.CurveID = s.curveID
	cs.SignatureScheme = s.sigScheme
	cs.SRTPProtectionProfile = s.srtpProfile
	cs.PeerPublicKey = s.peerPublicKey
	cs.LocalConnectionID = c.rl.readCID
	cs.RemoteConnectionID = c.rl.writeCID
	cs.DidResume = s.didResume
	cs.ekm = c.ekm
	return cs
}

func (c *Conn) ekm(label string, context []byte, length int) ([]byte, error) {
	s := &c.state
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
	defer c.out.Unlock()
	buf, err := c.rl.seal(c.outBuffer(recordHeaderLen+len(b)+c.rl.expansion(c.rl.writeCur)), c.rl.writeCur, recordTypeApplicationData, b)
	if err != nil {
		return 0, err
	}
	c.traceRecordSent(buf, len(b))
	if err := c.io.writeDatagram(buf); err != nil {
		return 0, err
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
		if len(c.earlyData) > 0 {
			d := c.earlyData[0]
			c.earlyData[0] = nil
			c.earlyData = c.earlyData[1:]
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
		if c.handshakeComplete.Load() {
			c.out.Lock()
			c.sendAlertLocked(alertLevelWarning, alertCloseNotify)
			c.out.Unlock()
		}
		c.closed.Store(true)
		err = c.io.close()
	})
	return err
}

// readRecord processes the next record, reading a datagram first when none
// is pending. It returns the record's application data (valid until the
// next call), or nil when the record carried something else. Called with
// c.in held.
func (c *Conn) readRecord(ctx context.Context, userDeadline bool) ([]byte, error) {
	if len(c.pending) == 0 {
		d, err := c.readDatagram(ctx, userDeadline)
		if err != nil || d == nil {
			return nil, err // nil, nil: a retransmission timer fired
		}
		c.pending = d
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
	var deadline time.Time
	if userDeadline {
		deadline = loadDeadline(&c.readDeadline)
	}
	wait := deadline
	rtx, armed := time.Time{}, false
	if c.hs != nil {
		rtx, armed = c.hs.deadline()
	}
	if armed && (wait.IsZero() || rtx.Before(wait)) {
		wait = rtx
	}
	d, err := c.io.readDatagram(wait)
	if err != nil {
		if c.closed.Load() {
			return nil, net.ErrClosed
		}
		if isTimeout(err) && armed {
			now := c.config.time()
			if c.hs.timerFired(now) {
				c.trace(&TraceEvent{Kind: TraceTimerFired})
				if c.hs.retransmitLimitReached() {
					return nil, fmt.Errorf("dtls: handshake gave up: flight %d unanswered after %d retransmissions: %w", c.flights, maxRetransmissions, os.ErrDeadlineExceeded)
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
		c.trace(&TraceEvent{Kind: TraceDatagramReceived, Length: len(d), Datagram: d})
	}
	return d, nil
}

// handleRecord processes one record. It returns application data when the
// record carries some and the handshake is complete.
func (c *Conn) handleRecord(hdr recordHeader, body []byte) ([]byte, error) {
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
		c.drop(reason, hdr)
		if reason == dropBadMAC && hdr.epoch > 0 && hdr.typ == recordTypeHandshake && !c.handshakeComplete.Load() {
			// The peer's first protected record, its Finished, fails:
			// it derived other keys (a wrong PSK, say). Waiting would
			// only end in a timeout, so fail now. A forger could do the
			// same with an epoch-0 alert, so this gives nothing away.
			// Other content types are dropped: a client port reused
			// right after a connection closed receives that
			// connection's late epoch-1 close_notify, buffered as a
			// future-epoch record, and must not fail on it.
			return nil, c.fail(alertBadRecordMAC, errors.New("dtls: the peer's protected handshake records fail authentication (wrong PSK?)"))
		}
		return nil, nil
	}
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceRecordReceived, Epoch: hdr.epoch, Seq: hdr.seq, ContentType: uint8(hdr.typ), Length: len(data)})
	}
	if hdr.newest && hdr.cid != nil && c.handshakeComplete.Load() {
		// RFC 9146 §6: a record with our CID that authenticated and is
		// the newest yet may move the peer to the datagram's source.
		if m, ok := c.io.(peerMover); ok {
			m.followPeer()
		}
	}
	switch hdr.typ {
	case recordTypeHandshake:
		if c.hs == nil {
			c.drop(dropBadHandshake, hdr)
			return nil, nil
		}
		resend, dropped, why := c.hs.handleRecord(hdr.epoch, data, c.config.time())
		if dropped > 0 {
			c.drops[dropBadHandshake].Add(uint64(dropped))
			c.trace(&TraceEvent{Kind: TraceRecordDropped, Epoch: hdr.epoch, Seq: hdr.seq, ContentType: uint8(hdr.typ), Reason: why})
		}
		if resend {
			// The peer repeated its previous flight: ours was lost.
			// The transport rate-limits these.
			if err := c.sendFlight(true, "peer repeated"); err != nil {
				return nil, err
			}
		}
		if c.handshakeComplete.Load() {
			// A new handshake message after the handshake is a
			// renegotiation attempt: refused (RFC 5746 §4.2, §4.4).
			if _, ok := c.hs.nextMessage(); ok {
				c.out.Lock()
				c.sendAlertLocked(alertLevelWarning, alertNoRenegotiation)
				c.out.Unlock()
			}
		}
		return nil, nil
	case recordTypeChangeCipherSpec:
		if len(data) != 1 || data[0] != 1 {
			return nil, c.sendAlert(alertUnexpectedMessage)
		}
		if c.expectCCS && hdr.epoch == c.rl.readCur-1 {
			c.peerCCS = true
		} else {
			c.drop(dropBadContentType, hdr)
		}
		return nil, nil
	case recordTypeAlert:
		if hdr.epoch == 0 && c.handshakeComplete.Load() {
			// Unauthenticated alerts after the handshake could be
			// forged by anyone on the path. During the handshake the
			// peer's alerts come in epoch 0 until it changes keys.
			c.drop(dropBadContentType, hdr)
			return nil, nil
		}
		if len(data) != 2 {
			return nil, c.sendAlert(alertDecodeError)
		}
		a := alert(data[1])
		c.trace(&TraceEvent{Kind: TraceAlertReceived, Alert: uint8(a), Epoch: hdr.epoch})
		if a == alertCloseNotify {
			c.readErr = io.EOF
			if !c.handshakeComplete.Load() {
				return nil, errors.New("dtls: peer closed the connection during the handshake")
			}
			return nil, io.EOF
		}
		if data[0] == alertLevelWarning && a != alertNoRenegotiation {
			return nil, nil
		}
		c.readErr = AlertError(a)
		return nil, c.readErr
	case recordTypeApplicationData:
		if hdr.epoch == 0 {
			// Plaintext application data is never accepted
			// (pion CVE-2019-20786, wolfSSL CVE-2020-24585).
			c.drop(dropBadContentType, hdr)
			return nil, nil
		}
		if !c.handshakeComplete.Load() {
			if len(c.earlyData) < maxEarlyAppData {
				c.earlyData = append(c.earlyData, append([]byte(nil), data...))
			}
			return nil, nil
		}
		return data, nil
	}
	c.drop(dropBadContentType, hdr)
	return nil, nil
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
			if c.config.Tracer != nil {
				c.trace(&TraceEvent{Kind: TraceHandshakeReceived, Epoch: m.epoch, HandshakeType: uint8(m.typ), MessageSeq: m.seq, MessageLength: uint32(len(m.body)), FragmentLength: uint32(len(m.body))})
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
	c.trace(&TraceEvent{Kind: TraceEpochChanged, Epoch: c.rl.readCur, Reason: "read"})
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

// writeHandshake queues a message into the flight being built and adds it
// to the transcript.
func (c *Conn) writeHandshake(hs *handshakeState, msg handshakeMessage) error {
	body, err := msg.marshal()
	if err != nil {
		return c.sendAlert(alertInternalError)
	}
	t := c.hs.queueMessage(c.rl.writeCur, msg.messageType(), body)
	hs.transcript = append(hs.transcript, t...)
	return nil
}

// writeChangeCipherSpec queues a ChangeCipherSpec and moves the write side
// to the next epoch.
func (c *Conn) writeChangeCipherSpec(keys *epochKeys) {
	c.hs.queueChangeCipherSpec(c.rl.writeCur)
	c.rl.installWriteKeys(keys)
	c.trace(&TraceEvent{Kind: TraceEpochChanged, Epoch: c.rl.writeCur, Reason: "write"})
}

// sendFlight seals and sends the current flight.
func (c *Conn) sendFlight(retransmit bool, why string) error {
	c.out.Lock()
	defer c.out.Unlock()
	if !retransmit {
		c.flights++
	}
	now := c.config.time()
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
			if err != nil {
				return err
			}
			if c.config.Tracer != nil {
				c.traceRecordSent(buf[start:], len(rec.data))
				if rec.typ == recordTypeHandshake {
					var h handshakeHeader
					if h.unmarshal(rec.data) {
						c.trace(&TraceEvent{Kind: TraceHandshakeSent, Epoch: rec.epoch, HandshakeType: uint8(h.typ), MessageSeq: h.messageSeq, FragmentOffset: h.fragmentOffset, FragmentLength: h.fragmentLength, MessageLength: h.length, Flight: c.flights})
					}
				}
			}
		}
		if c.config.Tracer != nil {
			c.trace(&TraceEvent{Kind: TraceDatagramSent, Length: len(buf), Datagram: buf})
		}
		if err := c.io.writeDatagram(buf); err != nil {
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
	hdr, _ := parseRecordHeader(rec)
	c.trace(&TraceEvent{Kind: TraceRecordSent, Epoch: hdr.epoch, Seq: hdr.seq, ContentType: uint8(hdr.typ), Length: plainLen})
	if hdr.typ == recordTypeApplicationData {
		c.trace(&TraceEvent{Kind: TraceDatagramSent, Length: len(rec), Datagram: rec})
	}
}

// sendAlert sends a fatal alert and returns it as the handshake's error.
func (c *Conn) sendAlert(a alert) error {
	c.out.Lock()
	defer c.out.Unlock()
	c.sendAlertLocked(alertLevelError, a)
	return a
}

func (c *Conn) sendAlertLocked(level uint8, a alert) {
	buf, err := c.rl.seal(c.outBuffer(recordHeaderLen+2+c.rl.expansion(c.rl.writeCur)), c.rl.writeCur, recordTypeAlert, []byte{level, byte(a)})
	if err != nil {
		return
	}
	c.trace(&TraceEvent{Kind: TraceAlertSent, Alert: uint8(a), Epoch: c.rl.writeCur})
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceDatagramSent, Length: len(buf), Datagram: buf})
	}
	c.io.writeDatagram(buf)
}

// fail sends a fatal alert and returns err (or the alert when err is nil).
func (c *Conn) fail(a alert, err error) error {
	c.sendAlert(a)
	if err == nil {
		return a
	}
	return err
}

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
