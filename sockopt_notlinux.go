//go:build !linux

package dtls

import (
	"net"
	"net/netip"
)

// listenUDP binds one UDP socket to a: SO_REUSEPORT spreads datagrams
// over sockets only on Linux (elsewhere it lets sockets share a port, or
// sends everything to the last one bound), so a Listener has one socket
// and one reader here, whatever n says.
func listenUDP(network string, a *net.UDPAddr, n int) ([]net.PacketConn, error) {
	pc, err := net.ListenUDP(network, a)
	if err != nil {
		return nil, err
	}
	return []net.PacketConn{pc}, nil
}

// batchReader reads several datagrams per system call where the system
// has one for it (recvmmsg on Linux); here a Listener's sockets are read
// one datagram at a time, and newBatchReader returns nil.
type batchReader struct{ handle func(n int) }

func newBatchReader(net.PacketConn) *batchReader { return nil }

func (*batchReader) serve() error { return net.ErrClosed }

func (*batchReader) datagram(int) ([]byte, netip.AddrPort) { return nil, netip.AddrPort{} }
