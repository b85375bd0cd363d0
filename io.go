package dtls

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// errInterrupted wakes a blocked read when a deadline changes or a context
// is cancelled; the reader then re-evaluates.
var errInterrupted = errors.New("dtls: read interrupted")

// datagramIO is where a Conn's datagrams come from and go to: its own
// connected socket (client, or Server over a net.Conn), or a Listener's
// shared socket.
type datagramIO interface {
	// readDatagram returns the next datagram, valid until the next call.
	// A zero deadline means none.
	readDatagram(deadline time.Time) ([]byte, error)
	writeDatagram(b []byte) error
	// release says that the last datagram readDatagram returned is no
	// longer needed: its buffer goes back to a pool, so that an idle
	// connection holds none.
	release()
	// interrupt makes a blocked or the next readDatagram return
	// errInterrupted.
	interrupt()
	localAddr() net.Addr
	remoteAddr() net.Addr
	close() error
}

// peerMover is a datagramIO that can follow its peer to a new address
// (RFC 9146 §6). followPeer is called, by the Conn's reader, when a record
// of the datagram readDatagram last returned carried our CID, authenticated
// and was the newest yet: the peer then moves to that datagram's source.
type peerMover interface {
	followPeer()
}

// datagramBufs holds buffers for one datagram of any size, for the Conns
// that read their own socket: an idle connection gives its buffer back.
var datagramBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagramSize); return &b }}

// activity stamps when a connection last authenticated a record from its
// peer, for the idle timeout. A Listener's connections stamp with the
// Listener's coarse clock (nanoseconds since it started, advanced by its
// janitor once per janitorInterval), so that the record path reads no
// clock; other connections (clock nil) read the monotonic clock, and have
// an activity only when Config.IdleTimeout asks for it.
type activity struct {
	clock *atomic.Int64
	last  atomic.Int64
}

// monoBase is the origin of the stamps of connections without a Listener.
var monoBase = time.Now()

func (a *activity) touch() {
	if a.clock != nil {
		a.last.Store(a.clock.Load())
		return
	}
	a.last.Store(int64(time.Since(monoBase)))
}

// at returns the last stamp of a connection without a Listener as a time.
func (a *activity) at() time.Time { return monoBase.Add(time.Duration(a.last.Load())) }

// datagramClasses are the sizes of the buffers a Listener copies a
// received datagram into for its connection's queue: the smallest that
// fits. A 40-byte CoAP record then holds 128 bytes, not 64 KiB, while
// the queue is waiting for its reader. The classes cover small records,
// typical records, one datagram of a 1500-byte path, a jumbo frame, one
// record of the largest size (2^14 plus expansion) and the largest UDP
// payload; a datagram holds at most four times its size.
var datagramClasses = [...]int{128, 512, 2048, 9216, 20480, maxDatagramSize}

var datagramPools [len(datagramClasses)]sync.Pool

// datagramClass returns the index of the smallest class that holds n
// bytes.
func datagramClass(n int) int {
	for i, size := range datagramClasses {
		if n <= size {
			return i
		}
	}
	return len(datagramClasses) - 1
}

// datagramClassSize returns the size of the buffer getDatagramBuf(n)
// returns.
func datagramClassSize(n int) int { return datagramClasses[datagramClass(n)] }

// getDatagramBuf returns a buffer of n bytes' class, at its full length.
func getDatagramBuf(n int) *[]byte {
	i := datagramClass(n)
	if bp, ok := datagramPools[i].Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, datagramClasses[i])
	return &b
}

// putDatagramBuf gives a buffer from getDatagramBuf back.
func putDatagramBuf(bp *[]byte) {
	datagramPools[datagramClass(cap(*bp))].Put(bp)
}

// netConnIO reads a connected datagram socket in the caller's goroutine.
type netConnIO struct {
	conn        net.Conn
	buf         *[]byte // from datagramBufs while a datagram is in use
	interrupted atomic.Bool
	mu          sync.Mutex // serializes deadline changes
	deadline    time.Time
	// refused is set when the socket reported ECONNREFUSED: an ICMP
	// port unreachable from the peer's address (see isICMPRefused).
	refused atomic.Bool
}

// isICMPRefused reports whether err is the error a connected UDP socket
// returns after an ICMP port (or host) unreachable arrived for it.
//
// Such an error is not allowed to end anything: ICMP is unauthenticated
// and an off-path attacker who guesses the 4-tuple can forge it, and the
// project's rule (README, "Security notes and limits") is that nothing
// sent without keys ends a connection or a handshake where the RFCs leave
// a choice. RFC 8085 §5.2 asks UDP applications to validate ICMP
// messages against off-path injection, and a socket error carries
// nothing to validate. The socket error is reported once per ICMP message,
// so skipping it costs one system call per message the attacker sends,
// as any datagram would. What remains is a hint: a handshake that then
// times out says that the peer's address refused (HandshakeContext).
func isICMPRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH)
}

// maxRefusedRetries bounds how often one write is retried after the
// socket reported an earlier ICMP error instead of sending it (Linux
// reports a pending error on the next send, which then sends nothing).
const maxRefusedRetries = 2

func newNetConnIO(conn net.Conn) *netConnIO {
	return &netConnIO{conn: conn}
}

func (n *netConnIO) readDatagram(deadline time.Time) ([]byte, error) {
	if n.interrupted.Swap(false) {
		return nil, errInterrupted
	}
	n.mu.Lock()
	if !deadline.Equal(n.deadline) {
		n.deadline = deadline
		n.conn.SetReadDeadline(deadline)
	}
	n.mu.Unlock()
	// An interrupt between the check above and SetReadDeadline would have
	// been overwritten: look again.
	if n.interrupted.Swap(false) {
		return nil, errInterrupted
	}
	if n.buf == nil {
		n.buf = datagramBufs.Get().(*[]byte)
	}
	for {
		k, err := n.conn.Read(*n.buf)
		if err == nil {
			return (*n.buf)[:k], nil
		}
		// An ICMP error is not an end (see isICMPRefused): read on,
		// until the deadline as before.
		icmp := isICMPRefused(err)
		if icmp {
			n.refused.Store(true)
		}
		if n.interrupted.Swap(false) {
			return nil, errInterrupted
		}
		if !icmp {
			return nil, err
		}
	}
}

func (n *netConnIO) release() {
	if n.buf != nil {
		datagramBufs.Put(n.buf)
		n.buf = nil
	}
}

func (n *netConnIO) interrupt() {
	n.interrupted.Store(true)
	n.mu.Lock()
	n.deadline = time.Unix(1, 0)
	n.conn.SetReadDeadline(n.deadline)
	n.mu.Unlock()
}

func (n *netConnIO) writeDatagram(b []byte) error {
	_, err := n.conn.Write(b)
	for i := 0; err != nil && isICMPRefused(err) && i < maxRefusedRetries; i++ {
		n.refused.Store(true)
		_, err = n.conn.Write(b)
	}
	if err != nil && isICMPRefused(err) {
		return nil // as a datagram lost on the way: the timers resend it
	}
	return err
}

func (n *netConnIO) localAddr() net.Addr  { return n.conn.LocalAddr() }
func (n *netConnIO) remoteAddr() net.Addr { return n.conn.RemoteAddr() }
func (n *netConnIO) close() error         { return n.conn.Close() }

// listenerConnIO is one peer's share of a Listener's socket: a bounded
// queue filled by the listener's reader.
type listenerConnIO struct {
	l *Listener
	// sock is the socket we send on: the one the handshake's ClientHello
	// arrived on. Every socket of a Listener is bound to the same
	// address, so the peer sees our datagrams come from where it sends,
	// whichever socket its own land on later.
	sock *listenerSocket
	// peer is where we send, and the address the Listener routes from.
	// It moves (RFC 9146 §6) in the Conn's reader while writers and
	// RemoteAddr read it, hence the atomic pointer.
	peer atomic.Pointer[peerAddr]
	// cids are our CIDs registered with the Listener, oldest first: the
	// handshake's, then those a DTLS 1.3 NewConnectionId issued (RFC
	// 9147 §9), at most maxIssuedCIDs13. Guarded by the table's mu.
	cids []string
	// helloRandom is the random of the ClientHello that created the
	// association, to tell its retransmission from a new association on
	// the same address (RFC 6347 §4.2.8).
	helloRandom [randomLen]byte
	queue       chan queuedDatagram
	queued      atomic.Int64 // bytes of the buffers in queue and cur
	cur         *[]byte
	from        netip.AddrPort // source of cur
	intr        chan struct{}
	done        chan struct{}
	err         error // why done was closed: set before
	once        sync.Once
	// stalled is closed when the Listener ends the handshake for making
	// no progress (errHandshakeStalled). Unlike done it leaves writes
	// working, so that the Conn can still tell the peer why it failed:
	// a bad_record_mac after records that failed authentication (a
	// wrong PSK) instead of silence. The Conn then closes the io.
	stalled   chan struct{}
	stallOnce sync.Once
	// src is the source prefix the per-source handshake limit counts
	// the peer under, fixed when the handshake starts.
	src netip.Prefix
	// progress is when the handshake last took a new message from the
	// peer (Listener.nanotime), for the stall timeout and eviction.
	progress atomic.Int64
	// awaitingAccept, guarded by the Listener's mu, says that the
	// handshake completed and the connection waits, holding its slot,
	// for room in the Accept backlog (Listener.enqueue): neither stalled
	// nor evictable.
	awaitingAccept bool
	// activity is when a record from the peer last authenticated, on the
	// Listener's coarse clock, for the idle timeout and MaxConnections.
	activity activity
	conn     *Conn
	timer    *time.Timer
}

type queuedDatagram struct {
	buf *[]byte
	n   int
	// from is the datagram's source when it is not the peer's current
	// address (a NAT rebinding, RFC 9146 §6), nil in the usual case: a
	// pointer keeps the queue, MaxQueuedDatagrams of these per connection, small.
	from *netip.AddrPort
}

// peerAddr is a peer's address in both forms we need.
type peerAddr struct {
	ap    netip.AddrPort
	raddr *net.UDPAddr
}

func newListenerConnIO(l *Listener, s *listenerSocket, ap netip.AddrPort) *listenerConnIO {
	c := &listenerConnIO{
		l:        l,
		sock:     s,
		activity: activity{clock: &l.clock},
		queue:    make(chan queuedDatagram, l.queueLen),
		intr:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		stalled:  make(chan struct{}),
	}
	c.setPeer(ap)
	return c
}

func (c *listenerConnIO) setPeer(ap netip.AddrPort) {
	c.peer.Store(&peerAddr{ap: ap, raddr: net.UDPAddrFromAddrPort(ap)})
}

// deliver queues a copy of the datagram d from the address from for the
// connection, or drops it when the queue is full or the connection closed.
// The copy goes into a buffer of d's size class, so that a small datagram
// holds little memory, and the queue is bounded in datagrams and in
// bytes: what a connection holds is a function of what its peer sent,
// bounded by Config.MaxQueuedDatagrams and MaxQueuedBytes.
func (c *listenerConnIO) deliver(d []byte, from netip.AddrPort) {
	if c.isDone() {
		c.l.drop(dropConnClosed, from, len(d))
		return
	}
	size := datagramClassSize(len(d))
	// The bytes are reserved before the check, so that the readers of
	// several sockets delivering to one connection at once (a peer whose
	// datagrams arrive on two sockets while its address changes) cannot
	// together go past MaxQueuedBytes. At least one datagram is always
	// taken, whatever MaxQueuedBytes.
	if n := c.queued.Add(int64(size)); len(c.queue) > 0 && n > int64(c.l.queueBytes) {
		c.queued.Add(-int64(size))
		c.l.drop(dropQueueBytes, from, len(d))
		return
	}
	bp := getDatagramBuf(len(d))
	copy(*bp, d)
	var fp *netip.AddrPort
	if from != c.peer.Load().ap {
		f := from // only this rare case allocates
		fp = &f
	}
	select {
	case c.queue <- queuedDatagram{bp, len(d), fp}:
	default:
		c.queued.Add(-int64(size))
		putDatagramBuf(bp)
		c.l.drop(dropQueueFull, from, len(d))
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
		return nil, c.err
	case <-c.stalled:
		return nil, errHandshakeStalled
	case <-timeout:
		return nil, errTimeout
	}
}

func (c *listenerConnIO) release() {
	if c.cur != nil {
		c.queued.Add(-int64(cap(*c.cur)))
		putDatagramBuf(c.cur)
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
	if c.isDone() {
		return c.err
	}
	return c.sock.writeTo(b, c.peer.Load().ap)
}

// handshakeProgress notes that the Conn took a new handshake message
// from its peer.
func (c *listenerConnIO) handshakeProgress() {
	c.progress.Store(c.l.nanotime())
}

// followPeer moves the peer to the source of the current datagram
// (RFC 9146 §6); the Conn calls it only for a record that carried our CID,
// authenticated and was the newest yet, when no return routability check
// (RFC 9853) was negotiated: an on-path attacker who wins a race with a
// copy of a fresh datagram then redirects our records until the peer's
// next one. With rrc the Conn validates the source first (rrc.go) and
// calls movePeerTo.
func (c *listenerConnIO) followPeer() { c.movePeerTo(c.from) }

// source returns the source of the current datagram, and whether it is
// not the peer's address.
func (c *listenerConnIO) source() (netip.AddrPort, bool) {
	if c.from.IsValid() && c.from != c.peer.Load().ap {
		return c.from, true
	}
	return c.peer.Load().ap, false
}

// writeDatagramTo sends b to ap rather than to the peer: a return
// routability check's path_challenge to a new address, or the answer to
// a challenge from one.
func (c *listenerConnIO) writeDatagramTo(b []byte, ap netip.AddrPort) error {
	if c.isDone() {
		return c.err
	}
	return c.sock.writeTo(b, ap)
}

// movePeerTo moves the peer to ap, unless it is there already: an
// address that answered a return routability check, or (followPeer) the
// source of the newest record without one.
func (c *listenerConnIO) movePeerTo(ap netip.AddrPort) {
	if ap.IsValid() && ap != c.peer.Load().ap {
		c.l.movePeer(c, ap)
	}
}

func (c *listenerConnIO) localAddr() net.Addr  { return c.sock.pc.LocalAddr() }
func (c *listenerConnIO) remoteAddr() net.Addr { return c.peer.Load().raddr }

func (c *listenerConnIO) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// shutdown ends the connection's use of the socket: its reader and
// writers get net.ErrClosed.
func (c *listenerConnIO) shutdown() { c.shutdownWith(net.ErrClosed) }

// shutdownWith is shutdown with the error the reader and writers get.
func (c *listenerConnIO) shutdownWith(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
	})
}

// stall ends the handshake in progress: the reader gets
// errHandshakeStalled, writers still work.
func (c *listenerConnIO) stall() {
	c.stallOnce.Do(func() { close(c.stalled) })
}

func (c *listenerConnIO) close() error {
	c.shutdown()
	c.l.forget(c)
	return nil
}

// errTimeout is a net.Error timeout, like a socket's.
var errTimeout error = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "dtls: i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Unwrap() error   { return nil }
