//go:build linux

package dtls

import (
	"context"
	"net"
	"syscall"

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
