// Package netsim is an in-memory datagram network for tests: PacketConns
// and connected Conns that lose, duplicate, reorder, delay and MTU-clamp
// what they send, from a seeded random source.
//
// It is built to run inside a testing/synctest bubble: every wait is a
// channel receive or a time.Timer created by the caller's goroutine, so a
// blocked reader is durably blocked and the bubble's virtual clock jumps
// straight to the next delivery or deadline. A loss test that would take
// minutes of real time takes milliseconds, and the same seed gives the
// same run. It works outside a bubble too, in real time.
//
// Addresses are netip.AddrPorts (such as 10.0.0.1:1234) that exist only in
// the Network's table: nothing touches a real socket.
package netsim

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// QueueLen is how many datagrams a PacketConn holds for its reader; more
// are dropped, as a full socket receive buffer would.
const QueueLen = 1024

// Link describes one direction of a path. The zero Link delivers every
// datagram at once, in order, whatever its size.
type Link struct {
	Loss    float64       // probability that a datagram is dropped
	Dup     float64       // probability that a delivered datagram arrives twice
	Reorder float64       // probability that a datagram is held back by ReorderDelay
	Delay   time.Duration // one-way delay of every datagram
	Jitter  time.Duration // extra delay, uniform in [0, Jitter)
	// ReorderDelay is the extra delay of a reordered datagram, so that
	// datagrams sent up to that much later overtake it. If 0, 2×Delay +
	// 1 ms is used.
	ReorderDelay time.Duration
	// MTU is the largest datagram the path carries; larger ones are
	// dropped, as on a path that does not fragment. 0 means no limit.
	MTU int
}

// Stats counts what happened to datagrams.
type Stats struct {
	Sent       int // WriteTo/Write calls and Injects
	Bytes      int // bytes of those
	Delivered  int // datagrams queued for a reader (duplicates count twice)
	Lost       int // dropped by Link.Loss
	TooBig     int // dropped by Link.MTU
	Duplicated int
	Reordered  int
	NoListener int // no PacketConn at the destination
	QueueFull  int // the destination's queue was full
}

func (s *Stats) add(o Stats) {
	s.Sent += o.Sent
	s.Bytes += o.Bytes
	s.Delivered += o.Delivered
	s.Lost += o.Lost
	s.TooBig += o.TooBig
	s.Duplicated += o.Duplicated
	s.Reordered += o.Reordered
	s.NoListener += o.NoListener
	s.QueueFull += o.QueueFull
}

type pair struct{ from, to netip.AddrPort }

type linkState struct {
	Link
	rng *rand.Rand
}

// A Network is a set of addresses and the links between them. It is safe
// for concurrent use.
type Network struct {
	seed uint64
	def  Link

	mu    sync.Mutex
	links map[pair]*linkState
	ports map[netip.AddrPort]*PacketConn
	total Stats
	to    map[netip.AddrPort]*Stats
}

// New returns a network whose links all behave like def unless SetLink
// says otherwise. Each direction of each pair of addresses draws from its
// own random source derived from seed, so what one sender sees does not
// depend on how the goroutines of others interleave.
func New(seed uint64, def Link) *Network {
	return &Network{
		seed:  seed,
		def:   def,
		links: make(map[pair]*linkState),
		ports: make(map[netip.AddrPort]*PacketConn),
		to:    make(map[netip.AddrPort]*Stats),
	}
}

// SetLink sets how datagrams from one address to another travel. Call it
// before traffic flows on that direction; it restarts the direction's
// random source.
func (n *Network) SetLink(from, to netip.AddrPort, l Link) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.links[pair{from, to}] = n.newLink(from, to, l)
}

func (n *Network) newLink(from, to netip.AddrPort, l Link) *linkState {
	// The stream is keyed by an FNV-1a hash of the addresses' text, so
	// that runs are repeatable across processes.
	var k uint64 = 14695981039346656037
	for _, c := range []byte(from.String() + ">" + to.String()) {
		k = (k ^ uint64(c)) * 1099511628211
	}
	return &linkState{Link: l, rng: rand.New(rand.NewPCG(n.seed, k))}
}

func (n *Network) link(from, to netip.AddrPort) *linkState {
	p := pair{from, to}
	ls := n.links[p]
	if ls == nil {
		ls = n.newLink(from, to, n.def)
		n.links[p] = ls
	}
	return ls
}

// Stats returns the counts for every datagram sent on the network.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.total
}

// StatsTo returns the counts for datagrams sent to addr, whether or not
// anything listens there.
func (n *Network) StatsTo(addr netip.AddrPort) Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.to[addr]; s != nil {
		return *s
	}
	return Stats{}
}

// ListenPacket returns a PacketConn bound to addr.
func (n *Network) ListenPacket(addr netip.AddrPort) (*PacketConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.ports[addr]; ok {
		return nil, &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(addr), Err: errors.New("address already in use")}
	}
	c := &PacketConn{n: n, addr: addr, laddr: net.UDPAddrFromAddrPort(addr), wake: make(chan struct{})}
	n.ports[addr] = c
	return c, nil
}

// Dial returns a Conn bound to laddr and connected to raddr: it sends to
// raddr and receives only from raddr.
func (n *Network) Dial(laddr, raddr netip.AddrPort) (*Conn, error) {
	pc, err := n.ListenPacket(laddr)
	if err != nil {
		return nil, err
	}
	return &Conn{pc: pc, raddr: raddr, ura: net.UDPAddrFromAddrPort(raddr)}, nil
}

// Inject sends b as if from the address from, which need not have a
// PacketConn: a spoofed source. It goes through the link from→to.
func (n *Network) Inject(from, to netip.AddrPort, b []byte) {
	n.send(from, to, b)
}

func (n *Network) send(from, to netip.AddrPort, b []byte) {
	n.mu.Lock()
	var st Stats
	st.Sent, st.Bytes = 1, len(b)
	ls := n.link(from, to)
	dst := n.ports[to]
	var delays [2]time.Duration
	copies := 0
	switch {
	case ls.MTU > 0 && len(b) > ls.MTU:
		st.TooBig = 1
	case ls.Loss > 0 && ls.rng.Float64() < ls.Loss:
		st.Lost = 1
	default:
		copies = 1
		if ls.Dup > 0 && ls.rng.Float64() < ls.Dup {
			copies = 2
			st.Duplicated = 1
		}
		for i := range copies {
			d := ls.Delay
			if ls.Jitter > 0 {
				d += time.Duration(ls.rng.Int64N(int64(ls.Jitter)))
			}
			if ls.Reorder > 0 && ls.rng.Float64() < ls.Reorder {
				rd := ls.ReorderDelay
				if rd == 0 {
					rd = 2*ls.Delay + time.Millisecond
				}
				d += rd
				st.Reordered++
			}
			delays[i] = d
		}
	}
	if copies > 0 && dst == nil {
		st.NoListener = 1
		copies = 0
	}
	n.total.add(st)
	ts := n.to[to]
	if ts == nil {
		ts = new(Stats)
		n.to[to] = ts
	}
	ts.add(st)
	n.mu.Unlock()

	for i := range copies {
		p := datagram{from: from, b: append([]byte(nil), b...)}
		if delays[i] <= 0 {
			dst.enqueue(p)
		} else {
			time.AfterFunc(delays[i], func() { dst.enqueue(p) })
		}
	}
}

func (n *Network) countDelivery(to netip.AddrPort, delivered bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ts := n.to[to]
	if delivered {
		n.total.Delivered++
		ts.Delivered++
	} else {
		n.total.QueueFull++
		ts.QueueFull++
	}
}

func (n *Network) unbind(c *PacketConn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ports[c.addr] == c {
		delete(n.ports, c.addr)
	}
}

type datagram struct {
	from netip.AddrPort
	b    []byte
}

// A PacketConn is a net.PacketConn on a Network. Writes never block.
type PacketConn struct {
	n     *Network
	addr  netip.AddrPort
	laddr *net.UDPAddr

	mu       sync.Mutex
	queue    []datagram
	closed   bool
	deadline time.Time
	// wake is closed and replaced whenever a reader should look again: a
	// datagram arrived, the deadline changed, or the conn closed.
	wake chan struct{}
}

func (c *PacketConn) enqueue(p datagram) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	ok := len(c.queue) < QueueLen
	if ok {
		c.queue = append(c.queue, p)
		c.wakeLocked()
	}
	c.mu.Unlock()
	c.n.countDelivery(c.addr, ok)
}

func (c *PacketConn) wakeLocked() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// readFrom returns the next datagram, waiting until one arrives, the read
// deadline passes or the conn closes.
func (c *PacketConn) readFrom(b []byte) (int, netip.AddrPort, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, netip.AddrPort{}, net.ErrClosed
		}
		if len(c.queue) > 0 {
			p := c.queue[0]
			c.queue[0] = datagram{}
			c.queue = c.queue[1:]
			if len(c.queue) == 0 {
				c.queue = nil // let the backing array go
			}
			c.mu.Unlock()
			return copy(b, p.b), p.from, nil
		}
		deadline, wake := c.deadline, c.wake
		c.mu.Unlock()

		var expired <-chan time.Time
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
			}
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			expired = timer.C
		}
		select {
		case <-wake:
		case <-expired:
		}
	}
}

// ReadFrom implements net.PacketConn. The address is a *net.UDPAddr.
func (c *PacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	k, from, err := c.readFrom(b)
	if err != nil {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.laddr, Err: err}
	}
	return k, net.UDPAddrFromAddrPort(from), nil
}

// ReadFromUDPAddrPort is ReadFrom without the allocation of a net.Addr.
func (c *PacketConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	k, from, err := c.readFrom(b)
	if err != nil {
		return 0, from, &net.OpError{Op: "read", Net: "udp", Source: c.laddr, Err: err}
	}
	return k, from, nil
}

// WriteTo implements net.PacketConn; addr must be a *net.UDPAddr.
func (c *PacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.laddr, Addr: addr, Err: errors.New("netsim: not a *net.UDPAddr")}
	}
	ap := ua.AddrPort()
	return c.WriteToUDPAddrPort(b, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
}

// WriteToUDPAddrPort sends b to addr.
func (c *PacketConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.laddr, Err: net.ErrClosed}
	}
	c.n.send(c.addr, addr, b)
	return len(b), nil
}

// Close implements net.PacketConn: blocked reads return net.ErrClosed and
// the address is free again.
func (c *PacketConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return &net.OpError{Op: "close", Net: "udp", Source: c.laddr, Err: net.ErrClosed}
	}
	c.closed = true
	c.queue = nil
	c.wakeLocked()
	c.mu.Unlock()
	c.n.unbind(c)
	return nil
}

// LocalAddr implements net.PacketConn.
func (c *PacketConn) LocalAddr() net.Addr { return c.laddr }

// SetDeadline implements net.PacketConn; writes never block, so it sets
// the read deadline.
func (c *PacketConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn. A blocked read sees the new
// deadline at once.
func (c *PacketConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	if !c.closed {
		c.wakeLocked()
	}
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.PacketConn; writes never block.
func (c *PacketConn) SetWriteDeadline(time.Time) error { return nil }

// A Conn is a connected datagram socket on a Network, like the result of
// net.DialUDP: Write sends to the remote address and Read returns only
// datagrams from it.
type Conn struct {
	pc    *PacketConn
	raddr netip.AddrPort
	ura   *net.UDPAddr
}

// Read implements net.Conn.
func (c *Conn) Read(b []byte) (int, error) {
	for {
		k, from, err := c.pc.readFrom(b)
		if err != nil {
			return 0, &net.OpError{Op: "read", Net: "udp", Source: c.pc.laddr, Addr: c.ura, Err: err}
		}
		if from == c.raddr {
			return k, nil
		}
	}
}

// Write implements net.Conn.
func (c *Conn) Write(b []byte) (int, error) {
	return c.pc.WriteToUDPAddrPort(b, c.raddr)
}

// Close implements net.Conn.
func (c *Conn) Close() error { return c.pc.Close() }

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.pc.laddr }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return c.ura }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error { return c.pc.SetDeadline(t) }

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.pc.SetReadDeadline(t) }

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { return nil }
