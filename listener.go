package dtls

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Listener limits. A Listener answers anyone who can send it a datagram, so
// everything it keeps per peer is bounded, and nothing is kept before the
// peer has shown it can receive at its address (a valid cookie).
const (
	// maxHandshakesInProgress bounds the handshakes a Listener runs at
	// once, each of which holds a goroutine, a Conn and up to
	// maxHandshakeBuffered bytes. ClientHellos beyond it are dropped and
	// the client retransmits later.
	maxHandshakesInProgress = 512
	// connQueueLen bounds the datagrams queued for one connection that its
	// reader has not taken yet; more are dropped, as a full socket buffer
	// would.
	connQueueLen = 64
	// acceptBacklog bounds handshaken connections waiting for Accept.
	acceptBacklog = 128
)

// Listener serves DTLS on one datagram socket for many peers. It answers
// a ClientHello without a valid cookie with a stateless HelloVerifyRequest
// (RFC 6347 §4.2.1), runs each cookie-verified handshake in its own
// goroutine so that a slow peer delays no one else, and hands out
// connections whose handshake completed from Accept.
type Listener struct {
	pc      net.PacketConn
	udp     *net.UDPConn // pc, when it is one: its AddrPort calls do not allocate
	config  *Config
	cookies *cookieGenerator

	mu    sync.Mutex
	conns map[netip.AddrPort]*listenerConnIO
	// cids routes tls12_cid records (RFC 9146) by the CID we gave each
	// connection, so that a peer whose address changes keeps its session.
	// cidLens lists the distinct lengths of those CIDs (one, with a
	// fixed-length generator), since a record does not say how long its
	// CID is.
	cids    map[string]*listenerConnIO
	cidLens []int

	ctx         context.Context // cancelled by Close: aborts handshakes
	cancel      context.CancelFunc
	handshaking atomic.Int32
	accept      chan *Conn
	done        chan struct{}
	closeOnce   sync.Once
	wg          sync.WaitGroup
	bufs        sync.Pool

	// Scratch for handleHello, which only the reader goroutine runs:
	// a spoofed ClientHello costs no garbage for its message struct or
	// its HelloVerifyRequest (TestSpoofedClientHelloFlood,
	// BenchmarkBogusClientHello).
	helloScratch clientHelloMsg
	hvrScratch   []byte
}

// Listen listens for DTLS on a UDP address.
func Listen(network, laddr string, config *Config) (*Listener, error) {
	a, err := net.ResolveUDPAddr(network, laddr)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenUDP(network, a)
	if err != nil {
		return nil, err
	}
	l, err := NewListener(pc, config)
	if err != nil {
		pc.Close()
		return nil, err
	}
	return l, nil
}

// NewListener serves DTLS on pc. The Listener owns pc: closing it closes
// pc, which ends the connections it accepted too.
func NewListener(pc net.PacketConn, config *Config) (*Listener, error) {
	if config == nil {
		config = &Config{}
	}
	cookies, err := newCookieGenerator(config.rand(), config.time())
	if err != nil {
		return nil, err
	}
	l := &Listener{
		pc:      pc,
		config:  config,
		cookies: cookies,
		conns:   make(map[netip.AddrPort]*listenerConnIO),
		cids:    make(map[string]*listenerConnIO),
		accept:  make(chan *Conn, acceptBacklog),
		done:    make(chan struct{}),
	}
	l.udp, _ = pc.(*net.UDPConn)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.bufs.New = func() any { b := make([]byte, maxDatagramSize); return &b }
	l.wg.Add(1)
	go l.readLoop()
	return l, nil
}

// Accept waits for and returns the next connection whose handshake
// completed. The net.Conn is a *Conn.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Addr returns the listener's local address.
func (l *Listener) Addr() net.Addr { return l.pc.LocalAddr() }

// Close stops the listener, aborts handshakes in progress and closes the
// socket. It waits for the listener's goroutines to end.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		l.cancel()
		err = l.pc.Close()
		l.mu.Lock()
		for _, cio := range l.conns {
			cio.shutdown()
		}
		l.mu.Unlock()
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

func (l *Listener) readFrom(b []byte) (int, netip.AddrPort, error) {
	if l.udp != nil {
		return l.udp.ReadFromUDPAddrPort(b)
	}
	n, a, err := l.pc.ReadFrom(b)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	return n, addrPort(a), nil
}

func (l *Listener) writeTo(b []byte, ap netip.AddrPort) error {
	if l.udp != nil {
		_, err := l.udp.WriteToUDPAddrPort(b, ap)
		return err
	}
	_, err := l.pc.WriteTo(b, net.UDPAddrFromAddrPort(ap))
	return err
}

func (l *Listener) readLoop() {
	defer l.wg.Done()
	for {
		bp := l.bufs.Get().(*[]byte)
		n, ap, err := l.readFrom(*bp)
		if err != nil {
			l.bufs.Put(bp)
			select {
			case <-l.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			// The socket is gone: stop serving.
			go l.Close()
			return
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		d := (*bp)[:n]
		l.mu.Lock()
		cio := l.lookupCID(d)
		byAddr := cio == nil
		if byAddr {
			cio = l.conns[ap]
		}
		l.mu.Unlock()
		if cio != nil {
			// A fresh ClientHello from the address of an existing
			// association: the client may have restarted on the same
			// port (RFC 6347 §4.2.8). Handled unless it is the
			// association's own ClientHello again.
			if byAddr && looksLikeClientHello(d) && l.handleHello(d, ap, bp, cio) {
				continue
			}
			cio.deliver(bp, n, ap)
			continue
		}
		if !l.handleHello(d, ap, bp, nil) {
			l.bufs.Put(bp)
		}
	}
}

// looksLikeClientHello is a cheap first test for a datagram that starts
// with an epoch-0 handshake record holding a ClientHello, so that the
// records of established connections are not parsed twice.
func looksLikeClientHello(d []byte) bool {
	return len(d) > recordHeaderLen && recordType(d[0]) == recordTypeHandshake &&
		d[3] == 0 && d[4] == 0 && handshakeType(d[recordHeaderLen]) == typeClientHello
}

// lookupCID returns the connection whose CID the datagram's first record
// carries, if it is a tls12_cid record. Only the CID lengths we handed out
// are tried, each bounded by the datagram. Called with l.mu held.
func (l *Listener) lookupCID(d []byte) *listenerConnIO {
	if len(d) == 0 || recordType(d[0]) != recordTypeTLS12CID {
		return nil
	}
	for _, n := range l.cidLens {
		if len(d) < recordHeaderLen+n {
			continue
		}
		if cio := l.cids[string(d[11:11+n])]; cio != nil {
			return cio
		}
	}
	return nil
}

// registerCID reserves cid for cio, unless another connection holds it.
func (l *Listener) registerCID(cid []byte, cio *listenerConnIO) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, taken := l.cids[string(cid)]; taken {
		return false
	}
	l.cids[string(cid)] = cio
	cio.cid = string(cid)
	if !slices.Contains(l.cidLens, len(cid)) {
		l.cidLens = append(l.cidLens, len(cid))
	}
	return true
}

// movePeer moves cio's peer to newAP: we send there, and the datagrams of
// newAP are routed to cio. The lock orders it with remove.
func (l *Listener) movePeer(cio *listenerConnIO, newAP netip.AddrPort) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-cio.done:
		return // closed: remove has run or will find nothing
	default:
	}
	old := cio.peer.Load()
	if old.ap == newAP {
		return
	}
	cio.peer.Store(&peerAddr{ap: newAP, raddr: net.UDPAddrFromAddrPort(newAP)})
	if l.conns[old.ap] == cio {
		delete(l.conns, old.ap)
	}
	// Whoever held newAP before is stale: that address is now this
	// authenticated peer's.
	l.conns[newAP] = cio
}

// handleHello looks at a datagram that may start with a ClientHello, from
// an address without a connection (existing is nil) or from the address
// of an existing association. It reports whether it took the buffer bp.
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
func (l *Listener) handleHello(d []byte, ap netip.AddrPort, bp *[]byte, existing *listenerConnIO) bool {
	ch := &l.helloScratch
	hdr, msgSeq, ok := parseInitialClientHelloInto(d, ch)
	if !ok {
		return false
	}
	now := l.config.time()
	if !l.config.InsecureSkipHelloVerify && !l.cookies.verify(now, ap, ch, ch.cookie) {
		var cookie [cookieLen]byte
		hvr := appendHelloVerifyRequest(l.hvrScratch[:0], hdr.seq, msgSeq, l.cookies.generate(cookie[:0], now, ap, hdr.seq, ch))
		// Never answer with more than was sent: no amplification.
		if len(hvr) <= len(d) {
			if l.config.Tracer != nil {
				l.traceStatelessExchange(now, ap, d, hdr, msgSeq, hvr)
			}
			l.writeTo(hvr, ap)
		}
		l.hvrScratch = hvr
		l.bufs.Put(bp)
		return true
	}
	if existing != nil {
		if string(existing.helloRandom[:]) == string(ch.random) {
			return false // its own ClientHello again: a retransmission
		}
		// The client started over: end the old association. Its
		// reader sees the connection closed.
		existing.shutdown()
		l.remove(existing)
	}
	if l.handshaking.Load() >= maxHandshakesInProgress {
		l.bufs.Put(bp)
		return true
	}
	select {
	case <-l.done:
		l.bufs.Put(bp)
		return true
	default:
	}
	cio := newListenerConnIO(l, ap)
	copy(cio.helloRandom[:], ch.random)
	c := newConn(cio, l.config, false)
	c.hs.setInitialRTT(l.cookies.roundTrip(now, hdr.seq, ch.cookie)) // RFC 9147 §5.8.2: the cookie round trip
	c.listener = l
	c.hs.startAt(msgSeq, msgSeq)
	if !l.config.InsecureSkipHelloVerify {
		c.flights = 1 // the stateless HelloVerifyRequest was our first flight
	}
	// Our records continue from the ClientHello's record sequence number,
	// as the stateless HelloVerifyRequest used it (RFC 6347 §4.2.1).
	c.rl.write[0].seq = hdr.seq
	l.mu.Lock()
	l.conns[ap] = cio
	l.mu.Unlock()
	cio.deliver(bp, len(d), ap)
	l.handshaking.Add(1)
	l.wg.Add(1)
	go l.serve(c)
	return true
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
	emit(TraceEvent{Kind: TraceHandshakeSent, HandshakeType: uint8(typeHelloVerifyRequest), MessageSeq: msgSeq, MessageLength: uint32(hvrLen), FragmentLength: uint32(hvrLen), Flight: 1})
	emit(TraceEvent{Kind: TraceDatagramSent, Length: len(hvr), Datagram: hvr})
}

func (l *Listener) serve(c *Conn) {
	defer l.wg.Done()
	err := c.HandshakeContext(l.ctx)
	l.handshaking.Add(-1)
	if err != nil {
		c.Close()
		return
	}
	select {
	case l.accept <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *Listener) remove(cio *listenerConnIO) {
	l.mu.Lock()
	ap := cio.peer.Load().ap
	if l.conns[ap] == cio {
		delete(l.conns, ap)
	}
	if cio.cid != "" && l.cids[cio.cid] == cio {
		delete(l.cids, cio.cid)
	}
	l.mu.Unlock()
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

// appendHelloVerifyRequest builds a whole HelloVerifyRequest record. Its
// record sequence number is the ClientHello's (RFC 6347 §4.2.1), so that
// no state is needed to number it.
func appendHelloVerifyRequest(dst []byte, recordSeq uint64, msgSeq uint16, cookie []byte) []byte {
	bodyLen := 3 + len(cookie) // server_version, cookie<0..2^8-1>
	h := handshakeHeader{typ: typeHelloVerifyRequest, length: uint32(bodyLen), messageSeq: msgSeq, fragmentLength: uint32(bodyLen)}
	dst = appendRecordHeader(dst, recordTypeHandshake, VersionDTLS12, 0, recordSeq, handshakeHeaderLen+bodyLen)
	dst = h.appendTo(dst)
	dst = append(dst, byte(VersionDTLS12>>8), byte(VersionDTLS12&0xff), byte(len(cookie)))
	return append(dst, cookie...)
}

// listenerConnIO is one peer's share of a Listener's socket: a bounded
// queue filled by the listener's reader.
type listenerConnIO struct {
	l *Listener
	// peer is where we send, and the address the Listener routes from.
	// It moves (RFC 9146 §6) in the Conn's reader while writers and
	// RemoteAddr read it, hence the atomic pointer.
	peer atomic.Pointer[peerAddr]
	cid  string // our CID registered with the Listener, guarded by l.mu
	// helloRandom is the random of the ClientHello that created the
	// association, to tell its retransmission from a new association on
	// the same address (RFC 6347 §4.2.8).
	helloRandom [randomLen]byte
	queue       chan queuedDatagram
	cur         *[]byte
	from        netip.AddrPort // source of cur
	intr        chan struct{}
	done        chan struct{}
	once        sync.Once
	timer       *time.Timer
}

type queuedDatagram struct {
	buf *[]byte
	n   int
	// from is the datagram's source when it is not the peer's current
	// address (a NAT rebinding, RFC 9146 §6), nil in the usual case: a
	// pointer keeps the queue, connQueueLen of these per connection, small.
	from *netip.AddrPort
}

// peerAddr is a peer's address in both forms we need.
type peerAddr struct {
	ap    netip.AddrPort
	raddr *net.UDPAddr
}

func newListenerConnIO(l *Listener, ap netip.AddrPort) *listenerConnIO {
	c := &listenerConnIO{
		l:     l,
		queue: make(chan queuedDatagram, connQueueLen),
		intr:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	c.peer.Store(&peerAddr{ap: ap, raddr: net.UDPAddrFromAddrPort(ap)})
	return c
}

// deliver hands a datagram from the address from to the connection, or
// drops it when the queue is full or the connection closed.
func (c *listenerConnIO) deliver(bp *[]byte, n int, from netip.AddrPort) {
	select {
	case <-c.done:
		c.l.bufs.Put(bp)
		return
	default:
	}
	var fp *netip.AddrPort
	if from != c.peer.Load().ap {
		f := from // only this rare case allocates
		fp = &f
	}
	select {
	case c.queue <- queuedDatagram{bp, n, fp}:
	default:
		c.l.bufs.Put(bp)
	}
}

func (c *listenerConnIO) readDatagram(deadline time.Time) ([]byte, error) {
	c.release()
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return nil, errTimeout
		}
		if c.timer == nil {
			c.timer = time.NewTimer(d)
		} else {
			c.timer.Reset(d)
		}
		defer c.timer.Stop()
		timeout = c.timer.C
	}
	select {
	case q := <-c.queue:
		c.cur, c.from = q.buf, netip.AddrPort{}
		if q.from != nil {
			c.from = *q.from
		}
		return (*q.buf)[:q.n], nil
	case <-c.intr:
		return nil, errInterrupted
	case <-c.done:
		return nil, net.ErrClosed
	case <-timeout:
		return nil, errTimeout
	}
}

func (c *listenerConnIO) release() {
	if c.cur != nil {
		c.l.bufs.Put(c.cur)
		c.cur = nil
	}
}

func (c *listenerConnIO) interrupt() {
	select {
	case c.intr <- struct{}{}:
	default:
	}
}

func (c *listenerConnIO) writeDatagram(b []byte) error {
	select {
	case <-c.done:
		return net.ErrClosed
	default:
	}
	return c.l.writeTo(b, c.peer.Load().ap)
}

// followPeer moves the peer to the source of the current datagram
// (RFC 9146 §6); the Conn calls it only for a record that carried our CID,
// authenticated and was the newest yet. The third condition of §6, a
// return routability check (RFC 9853), is not implemented: an on-path
// attacker who wins a race with a copy of a fresh datagram can redirect
// our records until the peer's next one.
func (c *listenerConnIO) followPeer() {
	if c.from.IsValid() && c.from != c.peer.Load().ap {
		c.l.movePeer(c, c.from)
	}
}

func (c *listenerConnIO) localAddr() net.Addr  { return c.l.pc.LocalAddr() }
func (c *listenerConnIO) remoteAddr() net.Addr { return c.peer.Load().raddr }

func (c *listenerConnIO) shutdown() {
	c.once.Do(func() { close(c.done) })
}

func (c *listenerConnIO) close() error {
	c.shutdown()
	c.l.remove(c)
	return nil
}

// errTimeout is a net.Error timeout, like a socket's.
var errTimeout error = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "dtls: i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Unwrap() error   { return nil }
