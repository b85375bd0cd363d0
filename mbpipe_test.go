package dtls

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// This file is an in-memory datagram link for tests that need no sockets
// and want to see every datagram sent (tap): the handshake fuzz targets
// and the hostile-network tests. The misbehaving-peer table runs on
// internal/netsim in a synctest bubble instead. Each Write is
// one datagram; each Read returns one. Like UDP, a datagram that finds the
// receiver's queue full, or the receiver closed, is lost without an error.

// mbQueueLen is how many datagrams one end buffers before dropping.
const mbQueueLen = 1024

// mbConn is one end of an in-memory datagram link. It implements net.Conn
// with datagram semantics and read deadlines, so Client and Server run on
// it unchanged.
type mbConn struct {
	local, remote *net.UDPAddr
	in            chan []byte
	peer          *mbConn
	closed        chan struct{}
	closeOnce     sync.Once

	mu       sync.Mutex
	deadline time.Time
	wake     chan struct{} // closed and replaced when the deadline changes

	// tap, if set, sees every datagram this end writes, before it is
	// queued. It runs in the writer's goroutine.
	tap func([]byte)
}

// mbPipe returns two connected ends; a's address is 10.0.0.1:5684 and b's
// 10.0.0.2:40000, so cookies (which bind the address) are deterministic.
func mbPipe() (a, b *mbConn) {
	a = &mbConn{local: &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 5684}, remote: &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 40000}}
	b = &mbConn{local: a.remote, remote: a.local}
	for _, c := range []*mbConn{a, b} {
		c.in = make(chan []byte, mbQueueLen)
		c.closed = make(chan struct{})
		c.wake = make(chan struct{})
	}
	a.peer, b.peer = b, a
	return a, b
}

func (c *mbConn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		deadline, wake := c.deadline, c.wake
		c.mu.Unlock()
		var timeout <-chan time.Time
		var timer *time.Timer
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(d)
			timeout = timer.C
		}
		n, err, done := c.wait(b, wake, timeout)
		if timer != nil {
			timer.Stop()
		}
		if done {
			return n, err
		}
	}
}

// wait is one blocking step of Read; done=false means "look again" (the
// deadline changed or passed).
func (c *mbConn) wait(b []byte, wake <-chan struct{}, timeout <-chan time.Time) (int, error, bool) {
	{
		select {
		case d := <-c.in:
			return copy(b, d), nil, true
		case <-c.closed:
			return 0, net.ErrClosed, true
		case <-c.peer.closed:
			// The peer hung up: deliver what it sent before, then EOF.
			select {
			case d := <-c.in:
				return copy(b, d), nil, true
			default:
				return 0, io.EOF, true
			}
		case <-wake:
		case <-timeout:
		}
	}
	return 0, nil, false
}

func (c *mbConn) Write(b []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	if c.tap != nil {
		c.tap(b)
	}
	select {
	case c.peer.in <- append([]byte(nil), b...):
	default: // the receiver's queue is full: lost, as with UDP
	}
	return len(b), nil
}

func (c *mbConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *mbConn) LocalAddr() net.Addr  { return c.local }
func (c *mbConn) RemoteAddr() net.Addr { return c.remote }

func (c *mbConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *mbConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
	return nil
}

func (c *mbConn) SetWriteDeadline(time.Time) error { return nil }
