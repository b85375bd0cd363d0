package bench

// DTLS 1.3 variants of the implementations of impl_test.go, for the rows
// of bench13_test.go: dtls-go and pion v4, both pinned to 1.3 (Min and
// MaxVersion), TLS_AES_128_GCM_SHA256, and the groups of each row. The
// certificate, PSK and base configurations are impl_test.go's.

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"

	"github.com/dtls-go/dtls"
	pion4 "github.com/pion/dtls/v4"
	pion4suite "github.com/pion/dtls/v4/pkg/crypto/ciphersuite"
	pion4curve "github.com/pion/dtls/v4/pkg/crypto/elliptic"
	pion4proto "github.com/pion/dtls/v4/pkg/protocol"
)

// kind13 selects a 1.3 row's credentials and groups.
type kind13 int

const (
	// k13ECDSA: P-256 certificate, X25519 only on both sides, so the
	// one HelloRetryRequest is the cookie's.
	k13ECDSA kind13 = iota
	// k13PSK: external PSK, psk_dhe_ke with X25519 (pion's client
	// offers no other mode; ours offers psk_dhe_ke first and our
	// server takes it, RFC 8446 §4.2.9).
	k13PSK
	// k13Hybrid: P-256 certificate; the clients prefer X25519 and send
	// its share in their first ClientHello (which then fits one
	// datagram), the servers prefer X25519MLKEM768 and ask for it in
	// the cookie's HelloRetryRequest: no extra round trip.
	k13Hybrid
	// k13Resume: the certificate handshake of k13ECDSA, then a ticket
	// from its NewSessionTicket offered as a psk_dhe_ke PSK.
	k13Resume
)

func (k kind13) base() kind {
	if k == k13PSK {
		return kindPSK
	}
	return kindECDSA
}

// impl13 is one implementation's 1.3 server and client. serve counts in
// full the handshakes in which the server used its certificate (it gets
// it from a GetCertificate callback), so that the resumption row can
// check that every handshake it times resumed. client returns a dialer
// with the client state a row keeps across handshakes (the session cache
// for k13Resume).
type impl13 struct {
	name   string
	serve  func(k kind13, handle handler, full *atomic.Int64) (addr *net.UDPAddr, stop func(), err error)
	client func(k kind13) *client13
}

type client13 struct {
	dial func(addr *net.UDPAddr) (net.Conn, error)
	// pin keeps the session the client holds now for every later
	// handshake (k13Resume), so that each iteration resumes with the
	// same ticket, whether or not the last connection's new ticket
	// arrived before it closed. A ticket without early data may be
	// offered again (RFC 8446 §C.4 advises against it for privacy
	// only); neither server keeps single-use state for such tickets.
	// pin reports false while the client has no session yet.
	pin func() bool
}

var impls13 = []impl13{
	{name: "dtls-go", serve: serveOurs13, client: clientOurs13},
	{name: "pion-v4", serve: servePion4_13, client: clientPion4_13},
}

func ourConfig13(k kind13, server bool) *dtls.Config {
	var cfg *dtls.Config
	if server {
		cfg = ourServerConfig(k.base())
	} else {
		cfg = ourClientConfig(k.base())
	}
	cfg.MinVersion, cfg.MaxVersion = dtls.VersionDTLS13, dtls.VersionDTLS13
	cfg.CipherSuites = []uint16{tls.TLS_AES_128_GCM_SHA256}
	cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	if k == k13Hybrid {
		if server {
			cfg.CurvePreferences = []tls.CurveID{tls.X25519MLKEM768, tls.X25519}
		} else {
			cfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.X25519MLKEM768}
		}
	}
	return cfg
}

func serveOurs13(k kind13, handle handler, full *atomic.Int64) (*net.UDPAddr, func(), error) {
	cfg := ourConfig13(k, true)
	if k != k13PSK {
		cfg.Certificates = nil
		cfg.GetCertificate = func(*dtls.ClientHelloInfo) (*tls.Certificate, error) {
			full.Add(1)
			return &cert, nil
		}
	}
	l, err := dtls.Listen("udp", "127.0.0.1:0", cfg)
	if err != nil {
		return nil, nil, err
	}
	return acceptLoop(l, nil, handle)
}

func clientOurs13(k kind13) *client13 {
	cfg := ourConfig13(k, false)
	cl := &client13{pin: func() bool { return true }}
	if k == k13Resume {
		cache := &pinnedCache{}
		cfg.ClientSessionCache = cache
		cl.pin = cache.pin
	}
	cl.dial = func(addr *net.UDPAddr) (net.Conn, error) {
		return dtls.Dial("udp", addr.String(), cfg)
	}
	return cl
}

// pinnedCache is a dtls.ClientSessionCache of one session that, once
// pinned, keeps it.
type pinnedCache struct {
	mu     sync.Mutex
	s      *dtls.ClientSessionState
	pinned bool
}

func (p *pinnedCache) Get(string) (*dtls.ClientSessionState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.s, p.s != nil
}

func (p *pinnedCache) Put(_ string, s *dtls.ClientSessionState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.pinned {
		p.s = s
	}
}

func (p *pinnedCache) pin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pinned = p.s != nil
	return p.pinned
}

func pion4Options13(k kind13, server bool) []pion4.Option {
	opts := append(pion4Options(k.base()),
		pion4.WithCipherSuites(pion4suite.TLS_AES_128_GCM_SHA256),
		pion4.WithMinVersion(pion4proto.Version1_3),
		pion4.WithMaxVersion(pion4proto.Version1_3),
		pion4.WithEllipticCurves(pion4curve.X25519))
	if k == k13Hybrid {
		if server {
			opts = append(opts, pion4.WithEllipticCurves(pion4curve.X25519MLKEM768, pion4curve.X25519))
		} else {
			opts = append(opts, pion4.WithEllipticCurves(pion4curve.X25519, pion4curve.X25519MLKEM768))
		}
	}
	return opts
}

func servePion4_13(k kind13, handle handler, full *atomic.Int64) (*net.UDPAddr, func(), error) {
	opts := pion4Options13(k, true)
	sopts := make([]pion4.ServerOption, 0, len(opts)+2)
	for _, o := range opts {
		sopts = append(sopts, o)
	}
	if k != k13PSK {
		sopts = append(sopts, pion4.WithGetCertificate(func(*pion4.ClientHelloInfo) (*tls.Certificate, error) {
			full.Add(1)
			return &cert, nil
		}))
	}
	if k == k13Resume {
		// pion's 1.3 tickets are identities of sessions its server
		// keeps in this store.
		sopts = append(sopts, pion4.WithSessionStore(&pion4Store{m: map[string]pion4.Session{}}))
	}
	l, err := pion4.ListenAddr("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, sopts...)
	if err != nil {
		return nil, nil, err
	}
	return acceptLoop(l, func(c net.Conn) error {
		return c.(*pion4.Conn).HandshakeContext(context.Background())
	}, handle)
}

func clientPion4_13(k kind13) *client13 {
	opts := pion4Options13(k, false)
	copts := make([]pion4.ClientOption, 0, len(opts)+3)
	for _, o := range opts {
		copts = append(copts, o)
	}
	if k != k13PSK {
		copts = append(copts, pion4.WithRootCAs(roots), pion4.WithServerName("localhost"))
	}
	cl := &client13{pin: func() bool { return true }}
	if k == k13Resume {
		store := &pion4Store{m: map[string]pion4.Session{}}
		copts = append(copts, pion4.WithSessionStore(store))
		cl.pin = store.pin
	}
	cl.dial = func(addr *net.UDPAddr) (net.Conn, error) {
		c, err := pion4.Dial("udp", addr, copts...)
		if err != nil {
			return nil, err
		}
		if err := c.HandshakeContext(context.Background()); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	return cl
}

// pion4Store is an in-memory pion SessionStore: a client's tickets by
// server name, a server's sessions by ticket identity. Once pinned it
// keeps what it holds.
type pion4Store struct {
	mu     sync.Mutex
	m      map[string]pion4.Session
	pinned bool
}

func (s *pion4Store) Set(key []byte, sess pion4.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pinned {
		s.m[string(key)] = sess
	}
	return nil
}

func (s *pion4Store) Get(key []byte) (pion4.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[string(key)], nil
}

func (s *pion4Store) Del(key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pinned {
		delete(s.m, string(key))
	}
	return nil
}

func (s *pion4Store) pin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pinned = len(s.m) > 0
	return s.pinned
}
