//go:build !linux

package dtls

import "net"

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
