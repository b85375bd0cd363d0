package dtls

import (
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
)

// maxListenerSockets bounds Config.ListenerSockets, and the default
// (GOMAXPROCS): each socket holds a reader goroutine, a receive buffer of
// Config.ReceiveBufferSize in the kernel (256 MiB for 64 sockets, full, at
// the 4 MiB default) and its reader's buffers (recvBatch datagrams of the
// largest size on Linux, mostly untouched address space).
const maxListenerSockets = 64

// listenerSocket is one of a Listener's sockets, all bound to the same
// address, and what its reader goroutine owns. Every socket routes through
// the Listener's one connTable, so a peer reaches its connection whichever
// socket the kernel hands its datagrams to.
type listenerSocket struct {
	l   *Listener
	pc  net.PacketConn
	udp *net.UDPConn // pc, when it is one: its AddrPort calls do not allocate
	// batch reads several datagrams per system call, where it can
	// (batchReader); nil, the reader uses readFrom and scratch.
	batch *batchReader

	// scratch is the reader's receive buffer when it reads one datagram
	// at a time (batch is nil), large enough for any datagram; what a
	// connection queues is copied out of it (or out of batch's) into a
	// buffer of the datagram's size class.
	scratch []byte
	// Scratch for handleHello, which only this socket's reader runs:
	// a spoofed ClientHello costs no garbage for its message struct or
	// its HelloVerifyRequest (TestSpoofedClientHelloFlood,
	// BenchmarkBogusClientHello). helloBuf holds a ClientHello
	// reassembled from fragments as one whole record.
	helloScratch clientHelloMsg
	hvrScratch   []byte
	helloBuf     []byte

	// received counts the datagrams this socket's reader read.
	received atomic.Uint64
}

func newListenerSocket(l *Listener, pc net.PacketConn) *listenerSocket {
	s := &listenerSocket{l: l, pc: pc, scratch: make([]byte, maxDatagramSize)}
	s.udp, _ = pc.(*net.UDPConn)
	if s.batch = newBatchReader(pc); s.batch != nil {
		s.scratch = nil
		s.batch.handle = s.routeBatch
	}
	return s
}

// listenerSockets is the number of sockets Listen binds.
func (c *Config) listenerSockets() int {
	n := 0
	if c != nil {
		n = c.ListenerSockets
	}
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return min(n, maxListenerSockets)
}

func (s *listenerSocket) readFrom(b []byte) (int, netip.AddrPort, error) {
	if s.udp != nil {
		return s.udp.ReadFromUDPAddrPort(b)
	}
	n, a, err := s.pc.ReadFrom(b)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	return n, addrPort(a), nil
}

func (s *listenerSocket) writeTo(b []byte, ap netip.AddrPort) error {
	if s.udp != nil {
		_, err := s.udp.WriteToUDPAddrPort(b, ap)
		return err
	}
	_, err := s.pc.WriteTo(b, net.UDPAddrFromAddrPort(ap))
	return err
}

// readLoop reads the socket until the Listener closes, and routes each
// datagram: to its connection's queue, or to the hello gate.
func (s *listenerSocket) readLoop() {
	l := s.l
	defer l.wg.Done()
	for {
		var err error
		if s.batch != nil {
			err = s.batch.serve()
		} else {
			var n int
			var ap netip.AddrPort
			if n, ap, err = s.readFrom(s.scratch); err == nil {
				s.received.Add(1)
				s.route(s.scratch[:n], netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
			}
		}
		if err != nil {
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
	}
}

// routeBatch routes the n datagrams the socket's batchReader just read.
func (s *listenerSocket) routeBatch(n int) {
	s.received.Add(uint64(n))
	for i := range n {
		d, ap := s.batch.datagram(i)
		if !ap.IsValid() {
			continue // not from an IP address: nothing to answer
		}
		s.route(d, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
}

// route hands the datagram d from ap to its connection, or to the hello
// gate if it has none.
func (s *listenerSocket) route(d []byte, ap netip.AddrPort) {
	l := s.l
	cio, byAddr := l.table.lookup(d, ap)
	if cio != nil {
		// A fresh ClientHello from the address of an existing
		// association: the client may have restarted on the same
		// port (RFC 6347 §4.2.8). Handled unless it is the
		// association's own ClientHello again.
		if byAddr && looksLikeClientHello(d) && !l.draining.Load() {
			if s.handleHello(d, ap, cio, len(d)) {
				return
			}
			// A fragment: the association takes it (its own
			// ClientHello retransmitted), and the pool too, in
			// case it is a new one.
			if s.handleHelloFragments(d, ap, cio) && cio.isDone() {
				return // it was new, and ended the association
			}
		}
		cio.deliver(d, ap)
		return
	}
	if l.draining.Load() {
		// Shutting down: no new peer, not even a stateless
		// HelloVerifyRequest.
		l.drop(dropListenerClosed, ap, len(d))
		return
	}
	if !s.handleHello(d, ap, nil, len(d)) && !s.handleHelloFragments(d, ap, nil) {
		if isHandshakeRecord(d) {
			l.drop(dropBadHello, ap, len(d))
		} else {
			l.drop(dropUnknownPeer, ap, len(d))
		}
	}
}
