package bench

// The three implementations behind one face, with the same certificate chain,
// PSK and cipher suites, all over loopback.

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/internal/dtlstest"
	pion3 "github.com/pion/dtls/v3"
	pion4 "github.com/pion/dtls/v4"
	pion4suite "github.com/pion/dtls/v4/pkg/crypto/ciphersuite"
	pion4proto "github.com/pion/dtls/v4/pkg/protocol"
)

// kind selects the credentials and the one cipher suite both sides allow.
type kind int

const (
	kindECDSA kind = iota // ECDHE-ECDSA, P-256 certificate, X25519, AES-128-GCM
	kindPSK               // PSK, AES-128-CCM_8
	// kindECDSAFresh is kindECDSA with a server that presents a leaf
	// never presented before on each handshake (see freshLeaves): no
	// cache of parsed or verified certificates can serve the client.
	kindECDSAFresh
)

func (k kind) suite() uint16 {
	if k == kindPSK {
		return dtls.TLS_PSK_WITH_AES_128_CCM_8
	}
	return dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
}

const pskIdentity = "bench"

// serverName is the name clients verify the server's certificate for.
const serverName = "localhost"

// freshLeafCount is how many distinct leaves kindECDSAFresh rotates
// through: more than a one-second run of handshakes takes, so that a
// leaf is presented again, if at all, thousands of handshakes later.
const freshLeafCount = 4096

var (
	psk = []byte("0123456789abcdef")

	pkiOnce sync.Once
	// The chain every ECDSA benchmark uses, for every implementation: a
	// P-256 root CA, in the clients' RootCAs (roots) and never sent, signs
	// the server's P-256 leaf for localhost and 127.0.0.1 directly (no
	// intermediate). The server sends the leaf alone; a client checks the
	// root's ECDSA-SHA256 signature on it (x509.Certificate.Verify) and
	// then the ServerKeyExchange's, made with certKey.
	cert  tls.Certificate
	leaf  *x509.Certificate
	roots *x509.CertPool
	ca    *dtlstest.CA
	// certKey is the leaf's key, for the crypto floor.
	certKey *ecdsa.PrivateKey

	freshOnce sync.Once
	// freshLeaves are leaves for the same key and names as cert, issued
	// by the same CA, differing in their serial numbers only.
	freshLeaves []tls.Certificate
	freshNext   atomic.Uint64
)

func setupPKI(tb testing.TB) {
	pkiOnce.Do(func() {
		ca = dtlstest.NewCA(tb, dtlstest.Spec{Key: dtlstest.NewKey(tb, dtlstest.P256)})
		certKey = dtlstest.NewKey(tb, dtlstest.P256).(*ecdsa.PrivateKey)
		c := ca.Issue(tb, leafSpec(2))
		cert, leaf, roots = c.TLS, c.Leaf, c.Pool
	})
}

func leafSpec(serial int64) dtlstest.Spec {
	return dtlstest.Spec{Key: certKey, Names: []string{serverName, "127.0.0.1"}, Serial: serial,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
}

// setupFreshLeaves issues freshLeafCount leaves (a fraction of a second
// of signing, once per process).
func setupFreshLeaves(tb testing.TB) {
	setupPKI(tb)
	freshOnce.Do(func() {
		freshLeaves = make([]tls.Certificate, freshLeafCount)
		for i := range freshLeaves {
			freshLeaves[i] = ca.Issue(tb, leafSpec(int64(3+i))).TLS
		}
	})
}

// nextFreshLeaf returns the next of freshLeaves, round robin.
func nextFreshLeaf() *tls.Certificate {
	return &freshLeaves[(freshNext.Add(1)-1)%freshLeafCount]
}

// handler gets each handshaken connection in a goroutine of its own. The
// connection is closed when it returns, unless it returns keep.
type handler func(c net.Conn) (keep bool)

// impl is one DTLS implementation: a server and a client.
type impl struct {
	name  string
	serve func(k kind, handle handler) (addr *net.UDPAddr, stop func(), err error)
	dial  func(k kind, addr *net.UDPAddr) (net.Conn, error)
}

var impls = []impl{
	{name: "dtls-go", serve: serveOurs, dial: dialOurs},
	{name: "pion-v4", serve: servePion4, dial: dialPion4},
	{name: "pion-v3", serve: servePion3, dial: dialPion3},
}

// The rows are DTLS 1.2 (BENCHMARKS.md says so), pion pinned to it as
// well: 1.3 is our default, and a 1.2 suite in CipherSuites does not turn
// it off (as in crypto/tls, CipherSuites names no 1.3 suite here).
func ourServerConfig(k kind) *dtls.Config {
	cfg := &dtls.Config{CipherSuites: []uint16{k.suite()}, MaxVersion: dtls.VersionDTLS12}
	switch k {
	case kindPSK:
		cfg.PSK = func([]byte) ([]byte, error) { return psk, nil }
	case kindECDSAFresh:
		cfg.GetCertificate = func(*dtls.ClientHelloInfo) (*tls.Certificate, error) { return nextFreshLeaf(), nil }
	default:
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

func ourClientConfig(k kind) *dtls.Config {
	cfg := &dtls.Config{CipherSuites: []uint16{k.suite()}, MaxVersion: dtls.VersionDTLS12}
	if k == kindPSK {
		cfg.PSK = func([]byte) ([]byte, error) { return psk, nil }
		cfg.PSKIdentity = []byte(pskIdentity)
	} else {
		cfg.RootCAs, cfg.ServerName = roots, serverName
	}
	return cfg
}

func serveOurs(k kind, handle handler) (*net.UDPAddr, func(), error) {
	l, err := dtls.Listen("udp", "127.0.0.1:0", ourServerConfig(k))
	if err != nil {
		return nil, nil, err
	}
	// Accept returns connections whose handshake completed.
	return acceptLoop(l, nil, handle)
}

func dialOurs(k kind, addr *net.UDPAddr) (net.Conn, error) {
	return dtls.Dial("udp", addr.String(), ourClientConfig(k))
}

// acceptLoop accepts until l is closed; handshake (nil when Accept already
// did it) and handle run in a goroutine per connection, so that a slow
// handshake delays no one. stop closes l and every connection still open
// (pion's Listener.Close leaves them open), and waits for the handlers.
func acceptLoop(l net.Listener, handshake func(net.Conn) error, handle handler) (*net.UDPAddr, func(), error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		open = map[net.Conn]bool{}
	)
	forget := func(c net.Conn) {
		c.Close()
		mu.Lock()
		delete(open, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if handshake != nil {
					if err := handshake(c); err != nil {
						forget(c)
						return
					}
				}
				if !handle(c) {
					forget(c)
				}
			}()
		}
	}()
	stop := func() {
		l.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	return l.Addr().(*net.UDPAddr), stop, nil
}

func pion4Options(k kind) []pion4.Option {
	opts := []pion4.Option{
		pion4.WithCipherSuites(pion4suite.ID(k.suite())),
		pion4.WithExtendedMasterSecret(pion4.RequireExtendedMasterSecret),
		// The row is DTLS 1.2: v4 would negotiate 1.3 with itself.
		pion4.WithMaxVersion(pion4proto.Version1_2),
	}
	if k == kindPSK {
		opts = append(opts, pion4.WithPSK(
			func() ([]pion4.PSK, error) {
				return []pion4.PSK{{Identity: []byte(pskIdentity), Key: psk}}, nil
			},
			func(ids [][]byte) (*pion4.PSK, error) {
				for _, id := range ids {
					if string(id) == pskIdentity {
						return &pion4.PSK{Identity: id, Key: psk}, nil
					}
				}
				return nil, nil
			}))
	}
	return opts
}

func servePion4(k kind, handle handler) (*net.UDPAddr, func(), error) {
	opts := pion4Options(k)
	sopts := make([]pion4.ServerOption, 0, len(opts)+1)
	for _, o := range opts {
		sopts = append(sopts, o)
	}
	switch k {
	case kindECDSA:
		sopts = append(sopts, pion4.WithCertificates(cert))
	case kindECDSAFresh:
		sopts = append(sopts, pion4.WithGetCertificate(func(*pion4.ClientHelloInfo) (*tls.Certificate, error) { return nextFreshLeaf(), nil }))
	}
	pc, err := listenUDP()
	if err != nil {
		return nil, nil, err
	}
	l, err := pion4.Listen(pc, sopts...)
	if err != nil {
		pc.Close()
		return nil, nil, err
	}
	return acceptLoop(l, func(c net.Conn) error {
		return c.(*pion4.Conn).HandshakeContext(context.Background())
	}, handle)
}

func pion4ClientOptions(k kind) []pion4.ClientOption {
	opts := pion4Options(k)
	copts := make([]pion4.ClientOption, 0, len(opts)+2)
	for _, o := range opts {
		copts = append(copts, o)
	}
	if k != kindPSK {
		copts = append(copts, pion4.WithRootCAs(roots), pion4.WithServerName(serverName))
	}
	return copts
}

func dialPion4(k kind, addr *net.UDPAddr) (net.Conn, error) {
	c, err := pion4.Dial("udp", addr, pion4ClientOptions(k)...)
	if err != nil {
		return nil, err
	}
	if err := c.HandshakeContext(context.Background()); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func pion3Config(k kind, client bool) *pion3.Config {
	cfg := &pion3.Config{
		CipherSuites:         []pion3.CipherSuiteID{pion3.CipherSuiteID(k.suite())},
		ExtendedMasterSecret: pion3.RequireExtendedMasterSecret,
	}
	switch {
	case k == kindPSK:
		cfg.PSK = func([]byte) ([]byte, error) { return psk, nil }
		if client {
			cfg.PSKIdentityHint = []byte(pskIdentity) // pion's client sends its hint as its identity
		}
	case client:
		cfg.RootCAs, cfg.ServerName = roots, serverName
	default:
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

func servePion3(k kind, handle handler) (*net.UDPAddr, func(), error) {
	l, err := pion3.Listen("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, pion3Config(k, false))
	if err != nil {
		return nil, nil, err
	}
	return acceptLoop(l, func(c net.Conn) error {
		return c.(*pion3.Conn).HandshakeContext(context.Background())
	}, handle)
}

func dialPion3(k kind, addr *net.UDPAddr) (net.Conn, error) {
	c, err := pion3.Dial("udp", addr, pion3Config(k, true))
	if err != nil {
		return nil, err
	}
	if err := c.HandshakeContext(context.Background()); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// serverReceiveBuffer is the socket receive buffer of pion v4's servers
// and of the raw UDP floors: what our Listener asks for by default
// (Config.ReceiveBufferSize), so that no server drops what another would
// have queued. pion's ListenAddr leaves the system default (208 KiB on
// Linux), which drops datagrams when 256 peers each have one in flight.
const serverReceiveBuffer = 4 << 20

// listenUDP opens a server socket on 127.0.0.1 with serverReceiveBuffer
// (or what the kernel grants of it).
func listenUDP() (*net.UDPConn, error) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	if err := pc.SetReadBuffer(serverReceiveBuffer); err != nil {
		pc.Close()
		return nil, err
	}
	return pc, nil
}

// serveUDP is the floor's server: a plain unconnected UDP socket read by
// one goroutine, as a Listener reads its socket. handle gets each datagram
// and may answer through reply.
func serveUDP(handle func(d []byte, reply func([]byte))) (*net.UDPAddr, func(), error) {
	return serveUDPReaders(1, handle)
}

// serveUDPReaders is serveUDP with readers goroutines reading the socket
// at once, each answering what it read; handle must then be safe for
// concurrent use.
func serveUDPReaders(readers int, handle func(d []byte, reply func([]byte))) (*net.UDPAddr, func(), error) {
	pc, err := listenUDP()
	if err != nil {
		return nil, nil, err
	}
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			buf := make([]byte, 65536)
			var from netip.AddrPort
			reply := func(b []byte) { pc.WriteToUDPAddrPort(b, from) }
			for {
				n, ap, err := pc.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				from = ap
				handle(buf[:n], reply)
			}
		})
	}
	return pc.LocalAddr().(*net.UDPAddr), func() { pc.Close(); wg.Wait() }, nil
}
