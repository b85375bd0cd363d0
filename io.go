package dtls

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
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
}

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
	k, err := n.conn.Read(*n.buf)
	if err != nil {
		if n.interrupted.Swap(false) {
			return nil, errInterrupted
		}
		return nil, err
	}
	return (*n.buf)[:k], nil
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
	return err
}

func (n *netConnIO) localAddr() net.Addr  { return n.conn.LocalAddr() }
func (n *netConnIO) remoteAddr() net.Addr { return n.conn.RemoteAddr() }
func (n *netConnIO) close() error         { return n.conn.Close() }
