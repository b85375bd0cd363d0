//go:build linux

package dtls

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// listenUDP binds n UDP sockets to a, with SO_REUSEPORT when n > 1: the
// kernel then spreads incoming datagrams over them by a hash of their
// source and destination (Linux 3.9 and later), so that each socket's
// reader serves a share of the peers. The first socket picks the port
// when a's is 0; the others join it. Linux admits to the group only
// sockets of the same effective user, so another user cannot take a
// share of the datagrams; a process of the same user could.
func listenUDP(network string, a *net.UDPAddr, n int) ([]net.PacketConn, error) {
	if n <= 1 {
		pc, err := net.ListenUDP(network, a)
		if err != nil {
			return nil, err
		}
		return []net.PacketConn{pc}, nil
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	pcs := make([]net.PacketConn, 0, n)
	addr := a.String()
	for range n {
		pc, err := lc.ListenPacket(context.Background(), network, addr)
		if err != nil {
			for _, pc := range pcs {
				pc.Close()
			}
			return nil, err
		}
		pcs = append(pcs, pc)
		addr = pc.LocalAddr().String() // the port the first one got
	}
	return pcs, nil
}

// recvBatch is how many datagrams a Listener's socket reader takes from
// the kernel per system call (recvmmsg(2)). A system call costs about
// as much as the rest of a small record's way to its connection
// (BENCHMARKS.md, the receive path), and a busy socket has many
// datagrams waiting; each slot is a buffer for the largest datagram, so
// a socket holds recvBatch × 64 KiB of address space, of which only what
// large datagrams touched is backed by memory.
const recvBatch = 8

// batchReader reads up to recvBatch datagrams from a UDP socket per
// recvmmsg(2) call, without allocating: x/net's ipv4.PacketConn.ReadBatch
// does the same call but allocates a net.UDPAddr per datagram.
type batchReader struct {
	rc    syscall.RawConn
	hdrs  [recvBatch]unix.Mmsghdr
	iovs  [recvBatch]unix.Iovec
	names [recvBatch]unix.RawSockaddrInet6 // room for either family
	buf   []byte                           // recvBatch slots of maxDatagramSize
	// err is the last read's error; handle takes each batch (set once by
	// the socket's owner, so that serve does not allocate a method value),
	// and recv is the method value RawConn.Read calls, made once for the
	// same reason.
	err    error
	handle func(n int)
	recv   func(fd uintptr) bool
}

// newBatchReader returns a batchReader for pc, or nil if pc is not a
// UDP socket it can read that way.
func newBatchReader(pc net.PacketConn) *batchReader {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &batchReader{rc: rc, buf: make([]byte, recvBatch*maxDatagramSize)}
	r.recv = r.recvmmsg
	return r
}

// serve reads datagrams and calls r.handle with the count of each batch
// (at least one), in the RawConn.Read callback, until a batch fills all
// recvBatch slots (more may wait: serve returns nil and is called again)
// or an error.
//
// Handling a batch inside the callback saves a system call per wake-up.
// After a batch smaller than recvBatch, the socket's queue was empty when
// recvmmsg returned, so the callback asks Read to wait at once instead of
// calling recvmmsg again only to get EAGAIN. That is safe within one
// Read: Go's poller clears a socket's readiness when a Read begins
// (prepareRead) and then only when a wait consumes it, and every datagram
// that arrives after recvmmsg returned wakes the epoll edge-triggered
// descriptor again, so the wait returns at once if one came meanwhile.
// Across Reads it would not be: a new Read starts by clearing what
// arrived since. A full batch ends the Read so that the next starts by
// reading, and so that a closed socket (Read fails once closing starts)
// stops its reader under a flood too. The callback holds the socket's
// read lock while it routes, so Close waits for the batch to be routed,
// which never waits for a peer (listener.go: a reader never waits).
func (r *batchReader) serve() error {
	r.err = nil
	if err := r.rc.Read(r.recv); err != nil {
		return err
	}
	return r.err
}

// recvmmsg is the call RawConn.Read makes once the socket is readable:
// false asks it to wait again.
func (r *batchReader) recvmmsg(fd uintptr) bool {
	for i := range r.hdrs {
		r.iovs[i].Base = &r.buf[i*maxDatagramSize]
		r.iovs[i].SetLen(maxDatagramSize)
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Flags = 0
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), recvBatch, 0, 0, 0)
	switch errno {
	case 0:
		if n > 0 {
			r.handle(int(n))
		}
		return n >= recvBatch
	case unix.EAGAIN, unix.EINTR:
		return false
	default:
		r.err = errno
		return true
	}
}

// datagram returns the i-th datagram of the last read and its source. A
// source that is not an IPv4 or IPv6 address (none on a UDP socket) is
// returned invalid.
func (r *batchReader) datagram(i int) ([]byte, netip.AddrPort) {
	d := r.buf[i*maxDatagramSize : i*maxDatagramSize+int(r.hdrs[i].Len)]
	sa := &r.names[i]
	p := (*[2]byte)(unsafe.Pointer(&sa.Port)) // network byte order
	port := uint16(p[0])<<8 | uint16(p[1])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return d, netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return d, netip.AddrPortFrom(a, port)
	}
	return d, netip.AddrPort{}
}
