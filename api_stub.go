package dtls

// Placeholder bodies of the public API so the tools can be written beside
// the handshake; conn.go and listener.go replace this file.

import (
	"context"
	"errors"
	"net"
	"time"
)

var errNotYet = errors.New("dtls: not implemented yet")

// Conn is a DTLS connection: datagram semantics, one Write = one record.
type Conn struct{}

func Client(conn net.Conn, config *Config) *Conn { return &Conn{} }
func Server(conn net.Conn, config *Config) *Conn { return &Conn{} }
func Dial(network, addr string, config *Config) (*Conn, error) {
	return nil, errNotYet
}
func DialContext(ctx context.Context, network, addr string, config *Config) (*Conn, error) {
	return nil, errNotYet
}
func (c *Conn) Read(b []byte) (int, error)                 { return 0, errNotYet }
func (c *Conn) Write(b []byte) (int, error)                { return 0, errNotYet }
func (c *Conn) Close() error                               { return errNotYet }
func (c *Conn) LocalAddr() net.Addr                        { return nil }
func (c *Conn) RemoteAddr() net.Addr                       { return nil }
func (c *Conn) SetDeadline(t time.Time) error              { return errNotYet }
func (c *Conn) SetReadDeadline(t time.Time) error          { return errNotYet }
func (c *Conn) SetWriteDeadline(t time.Time) error         { return errNotYet }
func (c *Conn) Handshake() error                           { return errNotYet }
func (c *Conn) HandshakeContext(ctx context.Context) error { return errNotYet }
func (c *Conn) ConnectionState() ConnectionState           { return ConnectionState{} }
func (c *Conn) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	return nil, errNotYet
}

// Listener serves many DTLS peers on one PacketConn.
type Listener struct{}

func Listen(network, laddr string, config *Config) (*Listener, error) { return nil, errNotYet }
func NewListener(pc net.PacketConn, config *Config) (*Listener, error) {
	return nil, errNotYet
}
func (l *Listener) Accept() (net.Conn, error) { return nil, errNotYet }
func (l *Listener) Close() error              { return errNotYet }
func (l *Listener) Addr() net.Addr            { return nil }
