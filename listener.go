package dtls

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A Listener's design, in short.
//
// Sockets. Listen binds Config.ListenerSockets sockets (GOMAXPROCS by
// default) to one address with SO_REUSEPORT on Linux; the kernel hashes
// each datagram's addresses onto one of them, so one peer's datagrams go
// to one socket while its address stays the same. Each socket has its own
// reader goroutine (listenerSocket.readLoop, listener_socket.go), and all
// of them route through one connTable, which refers to no socket: a peer
// whose address changes (a NAT rebinding, a CID migration, RFC 9146 §6)
// lands on whichever socket the hash picks and still reaches its
// connection. A connection sends on the socket its ClientHello arrived
// on; all are bound to the same address, so the peer sees replies come
// from where it sends. NewListener, and Listen elsewhere than Linux, have
// one socket.
//
// The datagram path. A socket's reader takes up to recvBatch datagrams
// per recvmmsg(2) on Linux (one per read elsewhere) and looks each up in
// the connTable, under a read lock: by the CID of a tls12_cid record,
// else by source address. A datagram for a connection is copied into a
// pooled buffer of its size class and queued for it
// (listenerConnIO.deliver, in io.go) without blocking; a full queue drops
// it. The connection's reader (the handshake goroutine, then the
// application's Read) takes it, opens its records in place and gives the
// buffer back. A datagram from an address without a connection can only
// be a ClientHello: one without a valid cookie gets a stateless
// HelloVerifyRequest (handleHello), a fragment of one waits in the
// helloPool until it is whole, and one with a valid cookie gets a
// handshake slot (admit) and a Conn.
//
// Why a reader per socket and a queue per connection, and not a Read
// that reads the socket itself (leader/follower, where a blocked Read
// takes the socket, keeps what is its own and queues the rest). With many
// peers, a datagram is read by a goroutine other than the one whose Read
// returns it in either design: the leader is one connection among many,
// so the wake-up per record that the queue costs remains, and what
// scaling across cores needs is several readers, cheap reads (recvmmsg)
// and a table that readers share without waiting for one another. What
// leader/follower saves is the hop when one peer's Read is the only one
// waiting (a lone echo: about 2 µs of a round trip here, BENCHMARKS.md),
// and only if that Read keeps the socket between its calls; a Read that
// keeps it while its application is busy elsewhere leaves every other
// peer unread, so it would need a timer to hand the socket on, a way for
// other sockets' readers, Close, deadlines and the stall timeout to wake
// a Read blocked in the kernel, and a standby reader for ClientHellos and
// for connections nobody reads. Go also lets one goroutine at a time
// wait in a socket's read (the descriptor's read lock), which only a
// deadline interrupts: a Read that wants the socket while the standby
// reader waits in it has to push it out with SetReadDeadline, a wake-up
// of its own, in place of the one it saves. That is not done: the queue
// keeps one simple owner per socket, bounded per connection, and the hop
// is the measured price (BENCHMARKS.md, the receive path).
//
// Goroutines. A reader per socket; one janitor, which once a second ends
// stalled handshakes and idle connections and advances the coarse clock
// that connections stamp their peer's last record with; and one per
// handshake in progress (serve), which hands the Conn to Accept and ends.
// An established connection has no goroutine of its own. A reader never
// waits for anything a peer controls: queues and the Accept backlog are
// sent to without blocking, and the locks it takes (the table's read lock
// per datagram; mu, the cookie generator's and hellosMu once per
// ClientHello or fragment of one) are held briefly by their other users.
//
// Ownership. A socket's reader alone uses its scratch, batch,
// helloScratch, hvrScratch and helloBuf. hellosMu guards hellos, one pool
// for every socket. mu guards the handshake slots and the established
// connections; the table has its own lock, taken after mu, never before.
// A listenerConnIO's done channel, closed once with the reason
// (shutdownWith), ends its connection: its Read and Write return that
// reason (ErrIdleTimeout, ErrEvicted, ErrPeerRestarted, ErrListenerClosed).
//
// Shutdown. Shutdown sets draining under mu, after which admit starts no
// handshake and the readers answer no new ClientHello; it ends the
// established connections with a close_notify, waits (serving, drained)
// for the serve goroutines, each of which ends a connection that
// completed meanwhile the same way instead of queueing it for Accept,
// then closes. Close is the abrupt end, and what Shutdown falls back on
// when its ctx ends.
//
// Limits. Before a cookie, nothing per peer but the hello pool (limits in
// hello_pool.go). After it: a handshake slot (MaxHandshakes,
// MaxHandshakesPerSource, the stall timeout, HandshakeTimeout), a queue
// (MaxQueuedDatagrams, MaxQueuedBytes), a place in the Accept backlog
// (AcceptBacklog, waited for up to acceptBacklogWait with the slot kept),
// then among MaxConnections until IdleTimeout. Each drop
// is counted in Stats and traced.

// Listener limits. A Listener answers anyone who can send it a datagram, so
// everything it keeps per peer is bounded, and nothing is kept before the
// peer has shown it can receive at its address (a valid cookie). The
// defaults below are what the Config fields of the same name mean when
// zero.
const (
	// defaultMaxHandshakes bounds the handshakes a Listener runs at once,
	// each of which holds a goroutine, a Conn and up to
	// maxHandshakeBuffered bytes: 512 × 128 KiB = 64 MiB at worst.
	// A cookie-verified ClientHello beyond it takes the slot of the most
	// stalled handshake, if one is stalled (handshakeEvictableAfter);
	// otherwise it is dropped and the client retransmits later.
	defaultMaxHandshakes = 512
	// defaultMaxHandshakesPerSource bounds the handshakes in progress
	// from one source: one IPv4 address, or one IPv6 /64 (RFC 6177: what
	// one site, often one host, gets). It keeps one host from taking
	// every slot: eight are needed to fill them. A NAT with many devices
	// behind one address still gets 64 handshakes at once, hundreds per
	// second; the others retransmit.
	defaultMaxHandshakesPerSource = 64
	// handshakeStallDivisor sets the stall timeout: a handshake in
	// progress that received no new handshake message from its peer for
	// Config.HandshakeTimeout / handshakeStallDivisor ends (15 s of the
	// default 60 s), while one that keeps progressing may use all of
	// HandshakeTimeout. A peer that is there answers within a round trip;
	// one whose datagrams are lost retransmits at 1, 3, 7 and 15 s
	// (RFC 6347 §4.2.4.1, RFC 9147 §5.8.2: 1 s, doubling), so 15 s
	// without progress is five lost exchanges in a row. It scales with
	// HandshakeTimeout so that a deployment on a very lossy link, which
	// raises that, does not see its handshakes cut short.
	handshakeStallDivisor = 4
	// handshakeEvictableAfter is how long a handshake must have gone
	// without a new message from its peer before a new peer may take its
	// slot when slots are full: the RFC 9147 §5.8.2 initial timer, within
	// which a responsive peer answers. Handshakes that progress are never
	// evicted; stalled ones are, the most stalled first.
	handshakeEvictableAfter = time.Second
	// defaultListenerIdleTimeout ends a Listener's connection whose
	// peer sent no record that authenticated for this long. RFC 4787
	// REQ-5: a NAT's UDP mapping SHOULD last at least 5 minutes without
	// traffic, and may expire then; a peer without a CID that comes back
	// after that comes from a new port, as a new association, so the old
	// connection would only hold memory. Deployments with sleepy devices
	// that keep their session by CID across longer silences set
	// Config.IdleTimeout higher.
	defaultListenerIdleTimeout = 5 * time.Minute
	// defaultMaxConnections bounds the established connections of a
	// Listener, accepted or waiting for Accept. An idle one costs about
	// 10 KB (BENCHMARKS.md), so 10,000 hold about 100 MB, which a small
	// gateway can spare; reaching it evicts the longest-idle connection
	// (which is told with a close_notify and may handshake again), so a
	// deployment with more peers sees re-handshakes, not refusals, and
	// raises Config.MaxConnections.
	defaultMaxConnections = 10000
	// maxAcceptBacklog and maxQueuedDatagramsLimit bound the values
	// Config.AcceptBacklog and MaxQueuedDatagrams accept, since their
	// queues are allocated whole: a backlog of 65536 is 512 KiB, a
	// connection's queue of 4096 is 96 KiB.
	maxAcceptBacklog        = 1 << 16
	maxQueuedDatagramsLimit = 1 << 12
	// defaultReceiveBuffer is the socket receive buffer a Listener asks
	// for, as quic-go does (7 MiB there): the default (208 KiB on
	// Linux) overflows when hundreds of peers handshake at once, each
	// flight a few datagrams, and a drop there costs a retransmission
	// timeout. The kernel may grant less (net.core.rmem_max on Linux);
	// ListenerStats.ReceiveBufferSize says what it granted.
	defaultReceiveBuffer = 4 << 20
	// janitorInterval is how often a Listener's janitor looks for
	// stalled handshakes and idle connections: the precision of those
	// timeouts.
	janitorInterval = time.Second
	// defaultMaxQueuedDatagrams bounds the datagrams queued for one
	// connection that its reader has not taken yet; more are dropped, as
	// a full socket buffer would.
	defaultMaxQueuedDatagrams = 64
	// defaultMaxQueuedBytes bounds the bytes of those datagrams, counted
	// in the size-class buffers that hold them (datagramClasses): 64
	// datagrams of a 1500-byte path fit, 64 KiB ones do not.
	defaultMaxQueuedBytes = 128 << 10
	// defaultAcceptBacklog bounds handshaken connections waiting for
	// Accept; one that finds it full waits up to acceptBacklogWait for
	// room, holding its handshake slot, and is then closed with a
	// close_notify.
	defaultAcceptBacklog = 128
	// acceptBacklogWait is how long a connection that completed its
	// handshake waits for room in a full Accept backlog (enqueue). Its
	// handshake slot stays taken meanwhile, so new peers' ClientHellos
	// are dropped and retransmitted, the first time after 1 s (RFC 6347
	// §4.2.4.1, RFC 9147 §5.8.2: the initial timer). One such interval
	// is what an application that accepts, but fell behind a burst, is
	// given; one that has not taken a connection in that long has
	// stopped accepting, and holding slots longer would only keep new
	// peers out.
	acceptBacklogWait = time.Second
)

// Listener serves DTLS on one datagram socket for many peers. It answers
// a ClientHello without a valid cookie with a stateless HelloVerifyRequest
// (RFC 6347 §4.2.1), runs each cookie-verified handshake in its own
// goroutine so that a slow peer delays no one else, and hands out
// connections whose handshake completed from Accept. Config.HandshakeOutcome
// reports every handshake it ran, completed or failed; Stats counts what
// it did and dropped; Shutdown stops it gracefully, telling every peer,
// and Close at once.
type Listener struct {
	pc     net.PacketConn    // the first socket, whose address Addr returns
	socks  []*listenerSocket // every socket, each with its reader
	config *Config
	gate   *helloGate // the cookie check, shared with Server (hello_gate.go)

	table *connTable

	ctx       context.Context // cancelled by Close: aborts handshakes
	cancel    context.CancelFunc
	accept    chan *Conn
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup
	stats     listenerCounters

	// Shutdown. stopAccept, closed by Shutdown or Close, ends Accept.
	// draining, set by Shutdown under mu, stops new handshakes (admit
	// reads it under mu) and makes handshakes that complete end with a
	// close_notify instead of going to Accept.
	stopAccept     chan struct{}
	stopAcceptOnce sync.Once
	draining       atomic.Bool

	// Limits, from the Config with defaults filled in.
	queueLen      int
	queueBytes    int
	maxHandshakes int
	maxPerSource  int
	stallTimeout  time.Duration
	idleTimeout   time.Duration // 0: none
	maxConns      int

	// start is when the Listener started: stamps are nanoseconds since,
	// on the monotonic clock. clock is a coarse copy the janitor advances,
	// which a connection reads to stamp its peer's activity without a
	// clock read per record.
	start time.Time
	clock atomic.Int64

	// mu guards the handshakes in progress, their per-source counts and
	// the established connections. It is taken once per handshake and
	// per janitor sweep, never per datagram; it is taken before the
	// table's lock, never after.
	mu         sync.Mutex
	handshakes map[*listenerConnIO]struct{}
	perSource  map[netip.Prefix]int
	conns      map[*listenerConnIO]struct{}
	// serving counts the serve goroutines, which outlive their
	// handshake slot; admit adds one while not draining, so that once
	// draining is set it only goes down. drained, made by Shutdown when
	// it has to wait, is closed when serving reaches 0.
	serving int
	drained chan struct{}

	rcvbuf       int  // the first socket's receive buffer, as the kernel granted it; 0 if unknown
	rcvbufCapped bool // less than Config.ReceiveBufferSize

	// hellos reassembles fragmented ClientHellos before the cookie, for
	// every socket's reader: one pool, so that its limits (hello_pool.go)
	// hold for the Listener whatever the number of sockets. hellosMu
	// guards it; fragmented ClientHellos are rare enough for one lock.
	hellosMu sync.Mutex
	hellos   helloPool
}

// Listen listens for DTLS on a UDP address. On Linux it binds
// Config.ListenerSockets sockets to it (GOMAXPROCS by default) with
// SO_REUSEPORT, each read by its own goroutine: the kernel spreads
// peers over them by address, and every socket reaches every
// connection, so a peer whose address changes keeps its session
// whichever socket its datagrams land on. Elsewhere it binds one.
func Listen(network, laddr string, config *Config) (*Listener, error) {
	a, err := net.ResolveUDPAddr(network, laddr)
	if err != nil {
		return nil, err
	}
	pcs, err := listenUDP(network, a, config.listenerSockets())
	if err != nil {
		return nil, err
	}
	l, err := newListener(pcs, config)
	if err != nil {
		for _, pc := range pcs {
			pc.Close()
		}
		return nil, err
	}
	return l, nil
}

// NewListener serves DTLS on pc. The Listener owns pc: closing it closes
// pc, which ends the connections it accepted too (Shutdown tells their
// peers, Close does not). It refuses a Config
// with which no handshake can succeed (no Certificates, GetCertificate or
// PSK; a certificate key that cannot sign, such as an RSA key below 1024
// bits) and one whose Listener limits make no sense (see Config), and
// asks the kernel for a receive buffer of Config.ReceiveBufferSize. It
// reads pc from one goroutine, whatever Config.ListenerSockets says.
func NewListener(pc net.PacketConn, config *Config) (*Listener, error) {
	return newListener([]net.PacketConn{pc}, config)
}

// newListener serves DTLS on pcs, sockets bound to one address, with a
// reader for each.
func newListener(pcs []net.PacketConn, config *Config) (*Listener, error) {
	if config == nil {
		config = &Config{}
	}
	if err := config.checkServer(); err != nil {
		return nil, err
	}
	if err := config.checkListenerLimits(); err != nil {
		return nil, err
	}
	gate, err := newHelloGate(config)
	if err != nil {
		return nil, err
	}
	l := &Listener{
		pc:     pcs[0],
		config: config,
		gate:   gate,
		table:  newConnTable(),
		accept: make(chan *Conn, config.acceptBacklog()),
		done:   make(chan struct{}),

		stopAccept: make(chan struct{}),
	}
	for _, pc := range pcs {
		l.socks = append(l.socks, newListenerSocket(l, pc))
	}
	l.sizeReceiveBuffers()
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.queueLen, l.queueBytes = config.maxQueuedDatagrams(), config.maxQueuedBytes()
	l.maxHandshakes, l.maxPerSource = config.maxHandshakes(), config.maxHandshakesPerSource()
	l.stallTimeout = config.handshakeTimeout() / handshakeStallDivisor
	l.idleTimeout, l.maxConns = config.listenerIdleTimeout(), config.maxConnections()
	if l.idleTimeout > 0 {
		// Our handshake may complete while the peer's is still running,
		// its copy of our last flight lost: it has HandshakeTimeout to
		// get it, by retransmitting its own.
		l.idleTimeout = max(l.idleTimeout, config.handshakeTimeout())
	}
	l.start = time.Now()
	l.handshakes = make(map[*listenerConnIO]struct{})
	l.conns = make(map[*listenerConnIO]struct{})
	l.perSource = make(map[netip.Prefix]int)
	l.wg.Add(1 + len(l.socks))
	for _, s := range l.socks {
		go s.readLoop()
	}
	go l.janitor()
	return l, nil
}

// sizeReceiveBuffers asks for Config.ReceiveBufferSize on each socket,
// if it can set one, and records what the kernel granted the first.
func (l *Listener) sizeReceiveBuffers() {
	want := l.config.receiveBufferSize()
	for i, s := range l.socks {
		sc, ok := s.pc.(syscall.Conn)
		if !ok {
			continue
		}
		if rb, ok := s.pc.(interface{ SetReadBuffer(int) error }); ok && want > 0 {
			rb.SetReadBuffer(want)
		}
		if i == 0 {
			l.rcvbuf = receiveBufferSize(sc)
		}
	}
	l.rcvbufCapped = want > 0 && l.rcvbuf > 0 && l.rcvbuf < want
	if l.rcvbufCapped && l.config.Tracer != nil {
		l.traceEvent(TraceListenerEvent, netip.AddrPort{}, l.rcvbuf, "socket receive buffer capped by the kernel")
	}
}

// Accept waits for and returns the next connection whose handshake
// completed. The net.Conn is a *Conn. Once Shutdown or Close has been
// called it returns net.ErrClosed, as a net.Listener does.
func (l *Listener) Accept() (net.Conn, error) {
	return l.AcceptContext(context.Background())
}

// AcceptContext is Accept that also returns, with ctx.Err(), when ctx is
// done before a connection is ready.
func (l *Listener) AcceptContext(ctx context.Context) (net.Conn, error) {
	// A stopped Listener returns no connection, even one still queued:
	// Shutdown has sent it a close_notify.
	select {
	case <-l.stopAccept:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.stopAccept:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *Listener) stopAccepting() {
	l.stopAcceptOnce.Do(func() { close(l.stopAccept) })
}

// Shutdown shuts the Listener down gracefully, as net/http's
// Server.Shutdown does a server: it stops accepting (Accept returns
// net.ErrClosed) and answers no new ClientHello; it ends every
// established connection, accepted or waiting for Accept, with a
// close_notify, so that each peer sees the end at once (its Read returns
// io.EOF) rather than after a timeout; it lets the handshakes in progress
// finish, and ends those that complete the same way. The connections'
// own Read and Write return ErrListenerClosed. Then it closes the
// Listener and its socket, and returns Close's error.
//
// If ctx is done first, Shutdown closes the Listener at once (see Close:
// the handshakes still in progress are aborted without an alert) and
// returns ctx.Err(). The handshakes left are bounded by
// Config.HandshakeTimeout, and by a quarter of it without progress, so a
// ctx that allows that much time always sees them end.
//
// Shutdown returns when every goroutine of the Listener has ended. It
// may be called more than once, and with or after Close.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.draining.Store(true)
	if l.serving > 0 && l.drained == nil {
		l.drained = make(chan struct{})
	}
	drained := l.drained // nil: no handshake to wait for
	l.mu.Unlock()
	l.stopAccepting()
	l.endEstablished()
	if drained != nil {
		select {
		case <-drained:
		case <-ctx.Done():
			select {
			case <-drained: // both ready: nothing was cut short
			default:
				l.Close() // aborts the handshakes and waits for them
				return ctx.Err()
			}
		}
	}
	// A handshake that completed while draining ended its own
	// connection with a close_notify (serve); this catches one that
	// was established just before draining was set.
	l.endEstablished()
	return l.Close()
}

// endEstablished ends every established connection with a close_notify
// and ErrListenerClosed, and forgets it.
func (l *Listener) endEstablished() {
	l.mu.Lock()
	ended := make([]*listenerConnIO, 0, len(l.conns))
	for cio := range l.conns {
		ended = append(ended, cio)
		l.forgetLocked(cio)
	}
	l.mu.Unlock()
	for _, cio := range ended {
		l.endWithCloseNotify(cio, ErrListenerClosed)
	}
}

// endedByListener reports whether c is a Listener's connection that the
// Listener ended (Shutdown, eviction, idle timeout, a restarted peer,
// Close): its Close then has nothing to send, nor a socket to send on.
func (c *Conn) endedByListener() bool {
	cio, ok := c.io.(*listenerConnIO)
	return ok && cio.isDone()
}

// endWithCloseNotify sends a close_notify on an established connection,
// unless it is closed or failed already, and ends it with err, which its
// Read and Write then return.
func (l *Listener) endWithCloseNotify(cio *listenerConnIO, err error) {
	c := cio.conn
	c.out.Lock()
	if !c.closed.Load() && !cio.isDone() && c.fatal() == nil {
		c.sendAlertLocked(alertLevelWarning, alertCloseNotify)
	}
	c.out.Unlock()
	cio.shutdownWith(err)
}

// Addr returns the listener's local address.
func (l *Listener) Addr() net.Addr { return l.pc.LocalAddr() }

func (l *Listener) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Close stops the listener at once: it aborts the handshakes in progress
// (their peers are sent nothing), ends every connection it accepted or
// holds for Accept without sending a close_notify (their Read and Write
// return ErrListenerClosed; their peers notice only by their own
// timeouts) and closes the socket. It waits for the listener's goroutines
// to end. Accept then returns net.ErrClosed. Shutdown is the graceful
// way, which tells every peer.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.stopAccepting()
		close(l.done)
		l.cancel()
		for _, s := range l.socks {
			if cerr := s.pc.Close(); err == nil {
				err = cerr
			}
		}
		l.mu.Lock()
		for cio := range l.handshakes {
			cio.shutdownWith(ErrListenerClosed)
		}
		for cio := range l.conns {
			cio.shutdownWith(ErrListenerClosed)
		}
		l.mu.Unlock()
		for _, cio := range l.table.snapshot(nil) {
			cio.shutdownWith(ErrListenerClosed)
		}
		l.wg.Wait()
		for {
			select {
			case c := <-l.accept:
				c.Close()
			default:
				return
			}
		}
	})
	return err
}

// isHandshakeRecord reports whether d starts with an epoch-0 handshake
// record, which only a ClientHello may be from a peer without a
// connection.
func isHandshakeRecord(d []byte) bool {
	return len(d) >= recordHeaderLen && recordType(d[0]) == recordTypeHandshake && d[3] == 0 && d[4] == 0
}

// looksLikeClientHello is a cheap first test for a datagram that starts
// with an epoch-0 handshake record holding a ClientHello, so that the
// records of established connections are not parsed twice.
func looksLikeClientHello(d []byte) bool {
	return len(d) > recordHeaderLen && recordType(d[0]) == recordTypeHandshake &&
		d[3] == 0 && d[4] == 0 && handshakeType(d[recordHeaderLen]) == typeClientHello
}

// registerCID reserves cid for cio, unless another connection holds it.
func (l *Listener) registerCID(cid []byte, cio *listenerConnIO) bool {
	return l.table.registerCID(cid, cio)
}

// movePeer moves cio's peer to newAP (RFC 9146 §6), without taking the
// address from another connection.
func (l *Listener) movePeer(cio *listenerConnIO, newAP netip.AddrPort) {
	if !l.table.move(cio, newAP) && !cio.isDone() {
		l.stats.movesRefused.Add(1)
		if l.config.Tracer != nil {
			l.traceEvent(TraceListenerEvent, newAP, 0, "move refused: address in use")
		}
	}
}

// handleHello looks at a datagram that may start with a ClientHello, from
// an address without a connection (existing is nil) or from the address
// of an existing association. It reports whether it dealt with the
// datagram; if not, the caller delivers it to existing or drops it.
//
// Without a valid cookie the ClientHello is answered with a
// HelloVerifyRequest and forgotten: no state is kept, and an existing
// association is not touched, so a forged ClientHello cannot disturb it
// (mbedTLS 2.16.6's client-port-reuse advisory). A valid cookie proves the
// client receives at that address: an existing association whose
// handshake began with another ClientHello (another random) is then
// closed and a new one starts (RFC 6347 §4.2.8), as when a device reboots
// and comes back on the same port. The association's own ClientHello,
// retransmitted, is left to it (handleHello returns false).
//
// received is the number of bytes the peer sent for this ClientHello
// (more than len(d) when it was reassembled from fragments): the
// HelloVerifyRequest is never larger.
func (s *listenerSocket) handleHello(d []byte, ap netip.AddrPort, existing *listenerConnIO, received int) bool {
	return s.handleHelloSeq(d, ap, existing, received, rttSeqOwn)
}

// The rttSeq of handleHelloSeq: the record sequence number to time the
// cookie's round trip from (cookieGenerator.roundTrip), or one of these.
const (
	rttSeqOwn  = -1 // the ClientHello record's own
	rttSeqNone = -2 // no sample (helloEntry.sampleSeq)
)

// handleHelloSeq is handleHello for a ClientHello reassembled from
// fragments, whose first record (rttSeq) is not its header's.
func (s *listenerSocket) handleHelloSeq(d []byte, ap netip.AddrPort, existing *listenerConnIO, received int, rttSeq int64) bool {
	l := s.l
	ch := &s.helloScratch
	hdr, msgSeq, ok := parseInitialClientHelloInto(d, ch)
	if !ok {
		return false
	}
	now := l.config.time()
	// DTLS 1.3's cookie comes in a HelloRetryRequest (check13), 1.2's
	// in a HelloVerifyRequest.
	var adm admission13
	hvr, admitted, is13 := l.gate.check13(s.hvrScratch[:0], now, ap, hdr.seq, msgSeq, l.config, ch, &adm)
	if !is13 {
		if admitted = l.gate.admit(now, ap, ch); !admitted {
			hvr = l.gate.appendHelloVerifyRequest(s.hvrScratch[:0], now, ap, hdr.seq, msgSeq, ch)
		}
	}
	if !admitted {
		// Never answer with more than was sent: no amplification. A
		// 1.3 cookie that does not verify gets no answer.
		if len(hvr) > 0 && len(hvr) <= received {
			if l.config.Tracer != nil {
				l.traceStatelessExchange(now, ap, d, hdr, msgSeq, hvr)
			}
			s.writeTo(hvr, ap)
		} else if len(hvr) > 0 {
			l.drop(dropNoAmplification, ap, len(d))
		}
		s.hvrScratch = hvr
		return true
	}
	if existing != nil {
		if string(existing.helloRandom[:]) == string(ch.random) {
			return false // its own ClientHello again: a retransmission
		}
		// The client started over: end the old association. Its
		// reader sees ErrPeerRestarted.
		existing.shutdownWith(ErrPeerRestarted)
		l.forget(existing)
		if l.config.Tracer != nil {
			l.traceEvent(TraceListenerEvent, ap, 0, "peer restarted")
		}
	}
	cio := newListenerConnIO(l, s, ap)
	if reason, ok := l.admit(cio); !ok {
		l.drop(reason, ap, len(d))
		return true
	}
	copy(cio.helloRandom[:], ch.random)
	c := newConn(cio, l.config, false)
	c.hsStart = time.Now()
	rttCookie := ch.cookie
	if adm.cookie != nil {
		// The Conn takes what the 1.3 cookie carries from here, checked
		// once (hello_gate.go).
		c.admitted13 = adm.clone()
		rttCookie = c.admitted13.cookie
	}
	if rttSeq == rttSeqOwn {
		rttSeq = int64(hdr.seq)
	}
	if rttSeq >= 0 {
		c.hs.setInitialRTT(l.gate.roundTrip(now, uint64(rttSeq), rttCookie)) // RFC 9147 §5.8.2: the cookie round trip
	}
	c.listener = l
	cio.conn = c
	c.activity = &cio.activity
	c.hs.startAt(msgSeq, msgSeq)
	if !l.config.InsecureSkipHelloVerify {
		c.flights = 1 // the stateless HelloVerifyRequest was our first flight
	}
	// Our records continue from the ClientHello's record sequence number,
	// as the stateless HelloVerifyRequest used it (RFC 6347 §4.2.1).
	c.rl.setWriteSeq(0, hdr.seq)
	if !l.table.add(ap, cio) {
		// Another socket's reader started a handshake for this address
		// at the same moment (a peer's address reaches one socket, so
		// only if the sockets changed): that one goes on, this one
		// gives its slot back.
		l.mu.Lock()
		l.releaseSlotLocked(cio)
		l.mu.Unlock()
		l.doneServing()
		cio.shutdown()
		l.drop(dropAddressTaken, ap, len(d))
		return true
	}
	cio.deliver(d, ap)
	l.stats.handshakesStarted.Add(1)
	l.wg.Add(1)
	go l.serve(c)
	return true
}

// handleHelloFragments feeds the ClientHello fragments that d, from ap,
// carries to the pool (helloPool). When one completes a ClientHello, that
// is handled as if it had arrived whole (handleHello), with the bytes of
// every datagram that carried its fragments as the budget for an answer,
// and a Conn it starts gets the whole message in one record. It reports
// whether d carried a ClientHello fragment.
func (s *listenerSocket) handleHelloFragments(d []byte, ap netip.AddrPort, existing *listenerConnIO) bool {
	l := s.l
	found := false
	budget := len(d) // counted once, for the first fragment
	for rest := d; len(rest) > 0; {
		hdr, body, next, reason := nextRecord(rest)
		if reason != dropNone {
			break
		}
		rest = next
		if hdr.typ != recordTypeHandshake || hdr.epoch != 0 ||
			(hdr.version != VersionDTLS10 && hdr.version != VersionDTLS12) {
			continue
		}
		for len(body) > 0 {
			var h handshakeHeader
			if !h.unmarshal(body) || len(body) < handshakeHeaderLen+int(h.fragmentLength) {
				break
			}
			frag := body[handshakeHeaderLen : handshakeHeaderLen+int(h.fragmentLength)]
			body = body[handshakeHeaderLen+int(h.fragmentLength):]
			if !helloFragment(&h) {
				continue
			}
			found = true
			l.hellosMu.Lock()
			e, evicted := l.hellos.add(l.nanotime(), ap, hdr.seq, &h, frag, budget)
			var whole []byte
			var received int
			rttSeq := int64(rttSeqNone)
			if e != nil {
				if seq, ok := e.sampleSeq(); ok {
					rttSeq = int64(seq)
				}
				hh := handshakeHeader{typ: typeClientHello, length: h.length, messageSeq: e.msgSeq, fragmentLength: h.length}
				whole = appendRecordHeader(s.helloBuf[:0], recordTypeHandshake, hdr.version, 0, e.recordSeq, handshakeHeaderLen+len(e.body))
				whole = append(hh.appendTo(whole), e.body...)
				s.helloBuf = whole
				received = e.received
				l.hellos.release(e)
			}
			l.hellosMu.Unlock()
			if whole == nil && l.config.Tracer != nil {
				l.traceHelloFragment(ap, d, hdr, budget != 0)
			}
			budget = 0
			for range evicted {
				l.drop(dropHelloIncomplete, ap, 0)
			}
			if whole == nil {
				continue
			}
			if !s.handleHelloSeq(whole, ap, existing, received, rttSeq) && existing == nil {
				l.drop(dropBadHello, ap, len(whole))
			}
			return true
		}
	}
	return found
}

// traceStatelessExchange reports a cookie-less ClientHello and the
// HelloVerifyRequest that answers it, which no Conn sees, so that a ladder
// of the handshake is complete.
func (l *Listener) traceStatelessExchange(now time.Time, ap netip.AddrPort, ch []byte, chHdr recordHeader, msgSeq uint16, hvr []byte) {
	local := addrPort(l.pc.LocalAddr())
	emit := func(ev TraceEvent) {
		ev.Time, ev.Local, ev.Remote = now, local, ap
		l.config.Tracer(&ev)
	}
	chLen := int(chHdr.length) - handshakeHeaderLen
	hvrLen := len(hvr) - recordHeaderLen - handshakeHeaderLen
	emit(TraceEvent{Kind: TraceDatagramReceived, Length: len(ch), Datagram: ch})
	emit(TraceEvent{Kind: TraceRecordReceived, Seq: chHdr.seq, ContentType: uint8(recordTypeHandshake), Length: int(chHdr.length)})
	emit(TraceEvent{Kind: TraceHandshakeReceived, HandshakeType: uint8(typeClientHello), MessageSeq: msgSeq, MessageLength: uint32(chLen), FragmentLength: uint32(chLen)})
	emit(TraceEvent{Kind: TraceFlightSent, Flight: 1, Reason: "stateless"})
	emit(TraceEvent{Kind: TraceRecordSent, Seq: chHdr.seq, ContentType: uint8(recordTypeHandshake), Length: len(hvr) - recordHeaderLen})
	emit(TraceEvent{Kind: TraceHandshakeSent, HandshakeType: traceHandshakeType(handshakeType(hvr[recordHeaderLen]), hvr[recordHeaderLen+handshakeHeaderLen:]), MessageSeq: msgSeq, MessageLength: uint32(hvrLen), FragmentLength: uint32(hvrLen), Flight: 1})
	emit(TraceEvent{Kind: TraceDatagramSent, Length: len(hvr), Datagram: hvr})
}

// traceHelloFragment reports the receipt of a record carrying a
// ClientHello fragment that the pool keeps (one that does not complete
// the message: the Conn that the completing one starts reports that), and
// of its datagram when first, so that a ladder does not draw it as lost.
// The second ClientHello with an X25519MLKEM768 share takes two records
// at MTU 1200.
func (l *Listener) traceHelloFragment(ap netip.AddrPort, d []byte, hdr recordHeader, first bool) {
	ev := TraceEvent{Time: l.config.time(), Local: addrPort(l.pc.LocalAddr()), Remote: ap}
	if first {
		ev.Kind, ev.Length, ev.Datagram = TraceDatagramReceived, len(d), d
		l.config.Tracer(&ev)
	}
	ev.Kind, ev.Length, ev.Datagram = TraceRecordReceived, int(hdr.length), nil
	ev.Seq, ev.ContentType = hdr.seq, uint8(recordTypeHandshake)
	l.config.Tracer(&ev)
}

func (l *Listener) serve(c *Conn) {
	defer l.wg.Done()
	defer l.doneServing()
	err := c.HandshakeContext(l.ctx)
	cio := c.io.(*listenerConnIO)
	var evicted *listenerConnIO
	l.mu.Lock()
	if err == nil && cio.isDone() {
		err = cio.err // ended as the handshake completed
	}
	if err != nil {
		l.releaseSlotLocked(cio)
	} else {
		if len(l.conns) >= l.maxConns {
			evicted = l.longestIdleLocked()
			l.forgetLocked(evicted)
		}
		cio.activity.touch()
		l.conns[cio] = struct{}{}
		// It keeps its handshake slot until it is in the backlog
		// (enqueue): a slot is what bounds the connections waiting.
		cio.awaitingAccept = true
	}
	l.mu.Unlock()
	if evicted != nil {
		l.evict(evicted)
	}
	if err != nil {
		l.stats.handshakesFailed.Add(1)
		l.reportOutcome(c, err)
		c.Close()
		return
	}
	l.stats.handshakesCompleted.Add(1)
	l.reportOutcome(c, nil)
	if l.isClosed() || l.draining.Load() {
		l.releaseSlot(cio)
		c.Close() // with a close_notify: the handshake completed
		return
	}
	l.enqueue(c, cio)
}

// enqueue puts c, whose handshake just completed, in the Accept backlog.
//
// A full backlog is usually a burst, not an application that stopped
// accepting: hundreds of handshakes completing at once on a few cores
// can leave the goroutine that calls Accept runnable but not yet run
// while AcceptBacklog more complete. Closing c at once then loses a
// connection the peer believes established, and with it the first
// datagram it sends. So c waits up to acceptBacklogWait for room,
// holding the handshake slot it took (MaxHandshakes,
// MaxHandshakesPerSource): that bounds the connections waiting, and
// while the slots are taken, new peers' ClientHellos are dropped
// ("handshake limit") and retransmitted, before any work was done for
// them. A wait is not evicted for a new peer nor ended as stalled.
// After acceptBacklogWait, or if the Listener stops accepting, c is
// closed with a close_notify and the peer may try again.
func (l *Listener) enqueue(c *Conn, cio *listenerConnIO) {
	select {
	case l.accept <- c:
		l.releaseSlot(cio)
		return
	default:
	}
	wait := time.NewTimer(acceptBacklogWait)
	defer wait.Stop()
	select {
	case l.accept <- c:
		l.releaseSlot(cio)
		return
	case <-cio.done:
		// Ended meanwhile, and forgotten (Shutdown's close_notify,
		// MaxConnections, a restarted peer, Close).
	case <-l.stopAccept:
		// Shutdown or Close: Close sends a close_notify unless the
		// Listener already ended the connection.
	case <-wait.C:
		l.stats.backlogFull.Add(1)
		if l.config.Tracer != nil {
			l.traceEvent(TraceListenerEvent, cio.peer.Load().ap, 0, "accept backlog full")
		}
	}
	c.Close() // forgets cio, its slot with it
}

// releaseSlot frees the handshake slot that cio, established, held while
// it waited for the Accept backlog.
func (l *Listener) releaseSlot(cio *listenerConnIO) {
	l.mu.Lock()
	cio.awaitingAccept = false
	l.releaseSlotLocked(cio)
	l.mu.Unlock()
}

// HandshakeOutcome describes a handshake that a Listener ran to its end,
// completed or failed, for Config.HandshakeOutcome.
//
// Why a callback rather than an Accept that returns connections before
// their handshake, as crypto/tls's Listener does: the Listener runs
// handshakes itself so that it can bound them (MaxHandshakes,
// MaxHandshakesPerSource, the stall timeout, AcceptBacklog) against
// peers that get past the cookie, which costs an attacker only a round
// trip. Handing out connections before their handshake would move that
// job, and a goroutine per handshake, to every application, and let
// unauthenticated connections fill the Accept backlog. The callback costs
// nothing when nil, sees failures that never reach Accept, and leaves
// Accept returning only authenticated peers.
type HandshakeOutcome struct {
	// RemoteAddr is the peer's address.
	RemoteAddr net.Addr
	// Start is when the ClientHello with a valid cookie arrived, and
	// Duration how long the handshake ran from then, as in
	// ConnectionState.HandshakeStart and HandshakeDuration.
	Start    time.Time
	Duration time.Duration
	// Err is nil when the handshake completed. Otherwise it says why it
	// failed and matches (errors.Is) ErrUnknownPSKIdentity,
	// ErrBadCertificate or ErrHandshakeTimeout when one applies, an
	// AlertError when the peer sent a fatal alert (errors.As), and
	// ErrListenerClosed when the Listener was closed during the
	// handshake.
	Err error
	// PSKIdentity is the identity the client sent with a PSK suite, also
	// when the handshake failed because Config.PSK did not know it.
	PSKIdentity []byte
	// PeerCertificates is the client's certificate chain, when it sent
	// one and the handshake got that far: also a chain that failed
	// verification (Err then wraps a *tls.CertificateVerificationError
	// with the chain).
	PeerCertificates []*x509.Certificate
	// PeerPublicKey is the client's raw public key (RFC 7250), when it
	// authenticated with one.
	PeerPublicKey crypto.PublicKey
	// State is the connection's state when the handshake completed; its
	// HandshakeComplete is false when Err is not nil.
	State ConnectionState
}

// reportOutcome calls Config.HandshakeOutcome, if set, for c's handshake,
// which ended with err. It runs in c's serve goroutine, after the
// handshake, when no one else uses c.
func (l *Listener) reportOutcome(c *Conn, err error) {
	f := l.config.HandshakeOutcome
	if f == nil {
		return
	}
	o := HandshakeOutcome{
		RemoteAddr:       c.RemoteAddr(),
		Start:            c.hsStart,
		Duration:         c.hsDuration,
		Err:              err,
		PSKIdentity:      c.state.pskIdentity,
		PeerCertificates: c.state.peerCertificates,
		PeerPublicKey:    c.state.peerPublicKey,
	}
	var cve *tls.CertificateVerificationError
	if len(o.PeerCertificates) == 0 && errors.As(err, &cve) {
		o.PeerCertificates = cve.UnverifiedCertificates
	}
	if err == nil {
		o.State = c.ConnectionState()
	}
	f(o)
}

// doneServing counts a serve goroutine out, and tells a Shutdown waiting
// for the last one.
func (l *Listener) doneServing() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.serving--; l.serving == 0 && l.drained != nil {
		close(l.drained)
		l.drained = nil
	}
}

// forget drops everything the Listener keeps for cio: its handshake slot
// or its place among the established connections, and its routes.
func (l *Listener) forget(cio *listenerConnIO) {
	l.mu.Lock()
	l.forgetLocked(cio)
	l.mu.Unlock()
}

func (l *Listener) forgetLocked(cio *listenerConnIO) {
	l.releaseSlotLocked(cio)
	delete(l.conns, cio)
	l.table.remove(cio)
}

// longestIdleLocked returns the established connection whose peer sent
// nothing for the longest time.
func (l *Listener) longestIdleLocked() *listenerConnIO {
	var victim *listenerConnIO
	var oldest int64
	for cio := range l.conns {
		if t := cio.activity.last.Load(); victim == nil || t < oldest {
			victim, oldest = cio, t
		}
	}
	return victim
}

// evict ends an established connection, already forgotten, to make room
// under MaxConnections. Its peer is probably there, so it gets a
// close_notify and may handshake again at once.
func (l *Listener) evict(cio *listenerConnIO) {
	l.endWithCloseNotify(cio, ErrEvicted)
	l.stats.evicted.Add(1)
	if l.config.Tracer != nil {
		l.traceEvent(TraceListenerEvent, cio.peer.Load().ap, 0, "evicted for MaxConnections")
	}
}

// sourcePrefix is the source a per-source limit counts by: the IPv4
// address, or the IPv6 /64.
func sourcePrefix(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// nanotime is the time since the Listener started, for stamps.
func (l *Listener) nanotime() int64 { return int64(time.Since(l.start)) }

// admit gives a handshake slot to cio, whose peer sent a cookie-verified
// ClientHello. When its source, or the Listener, has no slot left, the
// most stalled handshake there (none for handshakeEvictableAfter) is
// ended to make room: new peers are preferred to stalled ones, and
// handshakes that progress keep their slots.
func (l *Listener) admit(cio *listenerConnIO) (listenerDrop, bool) {
	now := l.nanotime()
	cio.progress.Store(now)
	cio.src = sourcePrefix(cio.peer.Load().ap.Addr())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isClosed() || l.draining.Load() {
		return dropListenerClosed, false
	}
	if l.perSource[cio.src] >= l.maxPerSource {
		v := l.mostStalledLocked(now, cio.src, true)
		if v == nil {
			return dropSourceLimit, false
		}
		l.endHandshakeLocked(v, errHandshakeEvicted)
	}
	if len(l.handshakes) >= l.maxHandshakes {
		v := l.mostStalledLocked(now, cio.src, false)
		if v == nil {
			return dropHandshakeLimit, false
		}
		l.endHandshakeLocked(v, errHandshakeEvicted)
	}
	l.handshakes[cio] = struct{}{}
	l.perSource[cio.src]++
	l.serving++ // its serve goroutine, which handleHello starts
	return 0, true
}

// mostStalledLocked returns the handshake that has gone longest without
// a new message from its peer, if that is at least
// handshakeEvictableAfter, among those from src if onlySrc.
func (l *Listener) mostStalledLocked(now int64, src netip.Prefix, onlySrc bool) *listenerConnIO {
	var victim *listenerConnIO
	oldest := now - int64(handshakeEvictableAfter)
	for cio := range l.handshakes {
		if (onlySrc && cio.src != src) || cio.awaitingAccept {
			continue
		}
		if p := cio.progress.Load(); p <= oldest {
			victim, oldest = cio, p
		}
	}
	return victim
}

// endHandshakeLocked ends a handshake in progress with err, which its
// Conn's reader then sees, and frees its slot at once.
func (l *Listener) endHandshakeLocked(cio *listenerConnIO, err error) {
	if err == errHandshakeStalled {
		// Its goroutine ends it and may send an alert first; the slot
		// and the table entry are freed now.
		cio.stall()
	} else {
		cio.shutdownWith(err)
	}
	l.releaseSlotLocked(cio)
	l.table.remove(cio)
	if err == errHandshakeEvicted {
		l.stats.handshakesEvicted.Add(1)
	} else {
		l.stats.handshakesStalled.Add(1)
	}
	if l.config.Tracer != nil {
		l.traceEvent(TraceListenerEvent, cio.peer.Load().ap, 0, err.Error())
	}
}

// releaseSlotLocked frees cio's handshake slot, if it holds one.
func (l *Listener) releaseSlotLocked(cio *listenerConnIO) {
	if _, ok := l.handshakes[cio]; !ok {
		return
	}
	delete(l.handshakes, cio)
	if l.perSource[cio.src]--; l.perSource[cio.src] <= 0 {
		delete(l.perSource, cio.src)
	}
}

// janitor ends handshakes that stalled and connections that went idle,
// once per janitorInterval, and advances the coarse clock. It is
// the Listener's only goroutine besides the reader and one per handshake
// in progress: established connections have none.
func (l *Listener) janitor() {
	defer l.wg.Done()
	tick := time.NewTicker(janitorInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-tick.C:
		}
		l.sweep()
	}
}

// sweep ends the handshakes that made no progress for the stall timeout
// and the connections idle for the idle timeout.
func (l *Listener) sweep() {
	now := l.nanotime()
	l.clock.Store(now)
	stalled, idle := now-int64(l.stallTimeout), now-int64(l.idleTimeout)
	var ended []*listenerConnIO
	l.mu.Lock()
	for cio := range l.handshakes {
		if cio.progress.Load() <= stalled && !cio.awaitingAccept {
			l.endHandshakeLocked(cio, errHandshakeStalled)
		}
	}
	if l.idleTimeout > 0 {
		for cio := range l.conns {
			if cio.activity.last.Load() <= idle {
				ended = append(ended, cio)
				l.forgetLocked(cio)
			}
		}
	}
	l.mu.Unlock()
	for _, cio := range ended {
		// The peer is presumably gone, or behind a NAT mapping that
		// expired: no close_notify.
		cio.shutdownWith(ErrIdleTimeout)
		l.stats.idleTimeouts.Add(1)
		if l.config.Tracer != nil {
			l.traceEvent(TraceListenerEvent, cio.peer.Load().ap, 0, "idle timeout")
		}
	}
}

var (
	errHandshakeEvicted = errors.New("dtls: handshake ended: stalled while every slot was taken, and a new peer needed one")
	errHandshakeStalled = errors.New("dtls: handshake ended: no new message from the peer for a quarter of HandshakeTimeout")
)

func (c *Config) maxQueuedDatagrams() int {
	if c == nil || c.MaxQueuedDatagrams <= 0 {
		return defaultMaxQueuedDatagrams
	}
	return c.MaxQueuedDatagrams
}

func (c *Config) maxQueuedBytes() int {
	if c == nil || c.MaxQueuedBytes <= 0 {
		return defaultMaxQueuedBytes
	}
	return c.MaxQueuedBytes
}

func (c *Config) acceptBacklog() int {
	if c == nil || c.AcceptBacklog <= 0 {
		return defaultAcceptBacklog
	}
	return c.AcceptBacklog
}

func (c *Config) maxHandshakes() int {
	if c == nil || c.MaxHandshakes <= 0 {
		return defaultMaxHandshakes
	}
	return c.MaxHandshakes
}

// maxHandshakesPerSource is at most maxHandshakes.
func (c *Config) maxHandshakesPerSource() int {
	n := defaultMaxHandshakesPerSource
	if c != nil && c.MaxHandshakesPerSource > 0 {
		n = c.MaxHandshakesPerSource
	}
	return min(n, c.maxHandshakes())
}

// receiveBufferSize is the receive buffer to ask for; 0 means leave it.
func (c *Config) receiveBufferSize() int {
	switch {
	case c == nil || c.ReceiveBufferSize == 0:
		return defaultReceiveBuffer
	case c.ReceiveBufferSize < 0:
		return 0
	}
	return c.ReceiveBufferSize
}

// checkListenerLimits refuses Listener limits that make no sense, so that
// a typo fails at Listen rather than under load.
func (c *Config) checkListenerLimits() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxHandshakes", c.MaxHandshakes},
		{"MaxHandshakesPerSource", c.MaxHandshakesPerSource},
		{"MaxQueuedDatagrams", c.MaxQueuedDatagrams},
		{"MaxQueuedBytes", c.MaxQueuedBytes},
		{"AcceptBacklog", c.AcceptBacklog},
		{"MaxConnections", c.MaxConnections},
		{"SessionCacheSize", c.SessionCacheSize},
		{"ListenerSockets", c.ListenerSockets},
	} {
		if f.v < 0 {
			return fmt.Errorf("dtls: Config.%s is negative (%d); 0 means the default", f.name, f.v)
		}
	}
	switch {
	case c.MaxHandshakes > 0 && c.MaxHandshakesPerSource > c.MaxHandshakes:
		return fmt.Errorf("dtls: Config.MaxHandshakesPerSource (%d) is more than MaxHandshakes (%d)", c.MaxHandshakesPerSource, c.MaxHandshakes)
	case c.ListenerSockets > maxListenerSockets:
		return fmt.Errorf("dtls: Config.ListenerSockets (%d) is more than %d", c.ListenerSockets, maxListenerSockets)
	case c.AcceptBacklog > maxAcceptBacklog:
		return fmt.Errorf("dtls: Config.AcceptBacklog (%d) is more than %d", c.AcceptBacklog, maxAcceptBacklog)
	case c.MaxQueuedDatagrams > maxQueuedDatagramsLimit:
		return fmt.Errorf("dtls: Config.MaxQueuedDatagrams (%d) is more than %d", c.MaxQueuedDatagrams, maxQueuedDatagramsLimit)
	case c.SessionCacheSize > maxServerSessions:
		return fmt.Errorf("dtls: Config.SessionCacheSize (%d) is more than %d", c.SessionCacheSize, maxServerSessions)
	case c.SessionLifetime < 0:
		return fmt.Errorf("dtls: Config.SessionLifetime is negative (%v); 0 means the default", c.SessionLifetime)
	case c.SessionLifetime > maxSessionLifetime:
		return fmt.Errorf("dtls: Config.SessionLifetime (%v) is more than %v", c.SessionLifetime, maxSessionLifetime)
	case c.MaxEarlyData > maxEarlyDataLimit:
		return fmt.Errorf("dtls: Config.MaxEarlyData (%d) is more than %d", c.MaxEarlyData, maxEarlyDataLimit)
	}
	return nil
}

// listenerIdleTimeout is IdleTimeout for a Listener's connections: 0 means
// none.
func (c *Config) listenerIdleTimeout() time.Duration {
	switch {
	case c == nil || c.IdleTimeout == 0:
		return defaultListenerIdleTimeout
	case c.IdleTimeout < 0:
		return 0
	}
	return c.IdleTimeout
}

func (c *Config) maxConnections() int {
	if c == nil || c.MaxConnections <= 0 {
		return defaultMaxConnections
	}
	return c.MaxConnections
}

// parseInitialClientHello recognizes a datagram that starts with a whole,
// unfragmented ClientHello in epoch 0.
func parseInitialClientHello(d []byte) (recordHeader, *clientHelloMsg, uint16, bool) {
	ch := new(clientHelloMsg)
	hdr, msgSeq, ok := parseInitialClientHelloInto(d, ch)
	if !ok {
		return hdr, nil, 0, false
	}
	return hdr, ch, msgSeq, true
}

// parseInitialClientHelloInto is parseInitialClientHello into a caller's
// message struct.
func parseInitialClientHelloInto(d []byte, ch *clientHelloMsg) (recordHeader, uint16, bool) {
	hdr, body, _, reason := nextRecord(d)
	if reason != dropNone || hdr.typ != recordTypeHandshake || hdr.epoch != 0 ||
		(hdr.version != VersionDTLS10 && hdr.version != VersionDTLS12) {
		return hdr, 0, false
	}
	var hh handshakeHeader
	if !hh.unmarshal(body) || hh.typ != typeClientHello || hh.fragmentOffset != 0 ||
		hh.fragmentLength != hh.length || len(body) < handshakeHeaderLen+int(hh.length) {
		return hdr, 0, false
	}
	if !ch.unmarshal(body[handshakeHeaderLen : handshakeHeaderLen+int(hh.length)]) {
		return hdr, 0, false
	}
	return hdr, hh.messageSeq, true
}
