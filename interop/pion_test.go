package interop_test

// Interoperability with pion/dtls v3 (Config struct API) and v4 (options
// API, DTLS 1.2 and 1.3), in process. Both roles: the pion side is a
// client that sends one datagram and reads it back, or a server that
// echoes one datagram. pion's Close sends close_notify, which ends our
// echo server's connection.
//
// v4 runs with its defaults, so its client offers DTLS 1.3 next to 1.2 and
// its server would take 1.3: that our server answers 1.2 and our client's
// 1.2-only hello is served with 1.2 is part of what the cells check.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/dtls-go/dtls"
	pion3 "github.com/pion/dtls/v3"
	pion4 "github.com/pion/dtls/v4"
	pion4suite "github.com/pion/dtls/v4/pkg/crypto/ciphersuite"
	pion4proto "github.com/pion/dtls/v4/pkg/protocol"
)

const pionLine = "hello from pion"

// pionCell is the configuration one cell gives the pion side.
type pionCell struct {
	suite      uint16
	psk        []byte // nil: certificates
	clientAuth bool
	mtu        int
	cid        bool // both sides ask for an 8-byte connection ID
	srtp       bool // both sides offer SRTP_AES128_CM_HMAC_SHA1_80
	rsa        bool // the server presents pki.rsaServer
	alpn       []string
	store3     *memSessionStore[pion3.Session] // resumption: pion v3's session store
	store4     *memSessionStore[pion4.Session] // resumption: pion v4's session store
	pki        *testPKI
}

// memSessionStore is an in-memory pion SessionStore (v3 and v4 have the
// same interface over different Session types). A miss is a zero Session
// and no error, as pion expects.
type memSessionStore[S any] struct {
	mu   sync.Mutex
	m    map[string]S
	sets int
}

func newMemSessionStore[S any]() *memSessionStore[S] {
	return &memSessionStore[S]{m: map[string]S{}}
}

func (s *memSessionStore[S]) Set(key []byte, v S) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[string(key)] = v
	s.sets++
	return nil
}

func (s *memSessionStore[S]) Get(key []byte) (S, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[string(key)], nil
}

func (s *memSessionStore[S]) Del(key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, string(key))
	return nil
}

func (s *memSessionStore[S]) stored() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sets
}

// pionState is what the pion side negotiated.
type pionState struct {
	suite     uint16
	peerCerts int    // certificates the other side (we) presented
	srtp      uint16 // the SRTP protection profile pion negotiated
	alpn      string // the ALPN protocol pion negotiated
}

// check compares the pion side's view with the cell's.
func (st pionState) check(tc pionCase, pionIsServer bool) error {
	if st.suite != tc.suite {
		return fmt.Errorf("pion negotiated %s, want %s", dtls.CipherSuiteName(st.suite), dtls.CipherSuiteName(tc.suite))
	}
	// After resumption pion reports the certificates of the session.
	weSendCert := !tc.psk && (!pionIsServer || tc.clientAuth)
	if weSendCert != (st.peerCerts > 0) {
		return fmt.Errorf("pion saw %d certificates from us, want some: %v", st.peerCerts, weSendCert)
	}
	if tc.srtp && st.srtp != dtls.SRTP_AES128_CM_HMAC_SHA1_80 {
		return fmt.Errorf("pion negotiated SRTP profile %#04x, want SRTP_AES128_CM_HMAC_SHA1_80", st.srtp)
	}
	if want := map[bool]string{true: alpnWant}[tc.alpn]; st.alpn != want {
		return fmt.Errorf("pion negotiated ALPN protocol %q, want %q", st.alpn, want)
	}
	return nil
}

// cidLen is the connection ID length both sides ask for in the CID cells.
// pion does not export the negotiated IDs, so our side's ConnectionState
// (want.cid) is what checks them; records of type tls12_cid flowing both
// ways is what proves pion agrees.
const cidLen = 8

// pionImpl is one major version of pion/dtls behind a common face.
type pionImpl struct {
	name   string // row name in the matrix
	module string // for the version line
	// mtuSlack is how far over its MTU the pion server's datagrams go.
	mtuSlack int
	// dial runs a handshake with a server at addr.
	dial func(ctx context.Context, addr *net.UDPAddr, c pionCell) (conn net.Conn, st pionState, err error)
	// listen serves on 127.0.0.1:0; accept returns a handshaken conn.
	listen func(c pionCell) (net.Listener, error)
	accept func(ctx context.Context, l net.Listener) (conn net.Conn, st pionState, err error)
}

var pionImpls = []pionImpl{
	{
		name:   "PionV3",
		module: "github.com/pion/dtls/v3",
		// pion v3 applies Config.MTU to the handshake fragment's body:
		// its datagrams carry 13 bytes of record header and 12 of
		// handshake header on top (fixed in v4).
		mtuSlack: 25,
		dial: func(ctx context.Context, addr *net.UDPAddr, c pionCell) (net.Conn, pionState, error) {
			conn, err := pion3.Dial("udp", addr, pion3Config(c, true))
			if err != nil {
				return nil, pionState{}, err
			}
			if err := conn.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, pionState{}, err
			}
			st, _ := conn.ConnectionState()
			profile, _ := conn.SelectedSRTPProtectionProfile()
			return conn, pionState{uint16(st.CipherSuiteID), len(st.PeerCertificates), uint16(profile), st.NegotiatedProtocol}, nil
		},
		listen: func(c pionCell) (net.Listener, error) {
			return pion3.Listen("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, pion3Config(c, false))
		},
		accept: func(ctx context.Context, l net.Listener) (net.Conn, pionState, error) {
			nc, err := l.Accept()
			if err != nil {
				return nil, pionState{}, err
			}
			conn := nc.(*pion3.Conn)
			if err := conn.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, pionState{}, err
			}
			st, _ := conn.ConnectionState()
			profile, _ := conn.SelectedSRTPProtectionProfile()
			return conn, pionState{uint16(st.CipherSuiteID), len(st.PeerCertificates), uint16(profile), st.NegotiatedProtocol}, nil
		},
	},
	{
		name:   "PionV4",
		module: "github.com/pion/dtls/v4",
		dial: func(ctx context.Context, addr *net.UDPAddr, c pionCell) (net.Conn, pionState, error) {
			opts := pion4Options(c, true)
			copts := make([]pion4.ClientOption, 0, len(opts))
			for _, o := range opts {
				copts = append(copts, o)
			}
			conn, err := pion4.Dial("udp", addr, copts...)
			if err != nil {
				return nil, pionState{}, err
			}
			if err := conn.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, pionState{}, err
			}
			st, _ := conn.ConnectionState()
			profile, _ := conn.SelectedSRTPProtectionProfile()
			return conn, pionState{uint16(st.CipherSuiteID), len(st.PeerCertificates), uint16(profile), st.NegotiatedProtocol}, nil
		},
		listen: func(c pionCell) (net.Listener, error) {
			opts := pion4Options(c, false)
			sopts := make([]pion4.ServerOption, 0, len(opts)+2)
			for _, o := range opts {
				sopts = append(sopts, o)
			}
			if c.clientAuth {
				sopts = append(sopts, pion4.WithClientAuth(pion4.RequireAndVerifyClientCert), pion4.WithClientCAs(c.pki.roots))
			}
			return pion4.ListenAddr("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, sopts...)
		},
		accept: func(ctx context.Context, l net.Listener) (net.Conn, pionState, error) {
			nc, err := l.Accept()
			if err != nil {
				return nil, pionState{}, err
			}
			conn := nc.(*pion4.Conn)
			if err := conn.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, pionState{}, err
			}
			st, _ := conn.ConnectionState()
			profile, _ := conn.SelectedSRTPProtectionProfile()
			return conn, pionState{uint16(st.CipherSuiteID), len(st.PeerCertificates), uint16(profile), st.NegotiatedProtocol}, nil
		},
	},
}

func pion3Config(c pionCell, client bool) *pion3.Config {
	cfg := &pion3.Config{
		CipherSuites:         []pion3.CipherSuiteID{pion3.CipherSuiteID(c.suite)},
		ExtendedMasterSecret: pion3.RequireExtendedMasterSecret,
		MTU:                  c.mtu,
	}
	if c.cid {
		cfg.ConnectionIDGenerator = pion3.RandomCIDGenerator(cidLen)
	}
	if c.srtp {
		cfg.SRTPProtectionProfiles = []pion3.SRTPProtectionProfile{pion3.SRTP_AES128_CM_HMAC_SHA1_80}
	}
	cfg.SupportedProtocols = c.alpn
	if c.store3 != nil {
		cfg.SessionStore = c.store3
	}
	switch {
	case c.psk != nil:
		cfg.PSK = func([]byte) ([]byte, error) { return c.psk, nil }
		if client {
			cfg.PSKIdentityHint = []byte(pskIdentity) // pion's client sends its hint as its identity
		}
	case client:
		cfg.RootCAs, cfg.ServerName = c.pki.roots, "localhost"
		if c.clientAuth {
			cfg.Certificates = []tls.Certificate{c.pki.client}
		}
	default:
		cfg.Certificates = []tls.Certificate{c.pki.server}
		if c.rsa {
			cfg.Certificates = []tls.Certificate{c.pki.rsaServer}
		}
		if c.clientAuth {
			cfg.ClientAuth = pion3.RequireAndVerifyClientCert
			cfg.ClientCAs = c.pki.roots
		}
	}
	return cfg
}

// pion4Options returns the options both roles share (server-only ones are
// added by the caller).
func pion4Options(c pionCell, client bool) []pion4.Option {
	opts := []pion4.Option{
		pion4.WithCipherSuites(pion4suite.ID(c.suite)),
		pion4.WithExtendedMasterSecret(pion4.RequireExtendedMasterSecret),
		// The DTLS 1.2 matrix: pion v4 speaks 1.3 by default (a 1.2
		// suite alone keeps it on 1.2, but say so); our side keeps
		// its default, 1.3 enabled, and must fall back. Its 1.3
		// cells are dtls13_test.go's.
		pion4.WithMaxVersion(pion4proto.Version1_2),
	}
	if c.mtu != 0 {
		opts = append(opts, pion4.WithMTU(c.mtu))
	}
	if c.cid {
		opts = append(opts, pion4.WithConnectionID(pion4.RandomCIDGenerator(cidLen), pion4.CIDPathMigrationReject))
	}
	if c.srtp {
		opts = append(opts, pion4.WithSRTPProtectionProfiles(pion4.SRTP_AES128_CM_HMAC_SHA1_80))
	}
	if len(c.alpn) > 0 {
		opts = append(opts, pion4.WithSupportedProtocols(c.alpn...))
	}
	if c.store4 != nil {
		opts = append(opts, pion4.WithSessionStore(c.store4))
	}
	switch {
	case c.psk != nil:
		opts = append(opts, pion4.WithPSK(
			func() ([]pion4.PSK, error) {
				return []pion4.PSK{{Identity: []byte(pskIdentity), Key: c.psk}}, nil
			},
			func(ids [][]byte) (*pion4.PSK, error) {
				for _, id := range ids {
					if string(id) == pskIdentity {
						return &pion4.PSK{Identity: id, Key: c.psk}, nil
					}
				}
				return nil, nil
			}))
	case client:
		opts = append(opts, pion4.WithRootCAs(c.pki.roots), pion4.WithServerName("localhost"))
		if c.clientAuth {
			opts = append(opts, pion4.WithCertificates(c.pki.client))
		}
	case c.rsa:
		opts = append(opts, pion4.WithCertificates(c.pki.rsaServer))
	default:
		opts = append(opts, pion4.WithCertificates(c.pki.server))
	}
	return opts
}

type pionCase struct {
	name       string
	suite      uint16
	psk        bool
	clientAuth bool
	mtu        int
	cid        bool
	srtp       bool
	rsa        bool
	alpn       bool
	resume     bool // a second connection resumes the first's session (by ID: pion has no tickets)
	notYet, na string
}

var pionCases = []pionCase{
	{name: "ECDSA-P256", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	{name: "PSK-CCM8", suite: dtls.TLS_PSK_WITH_AES_128_CCM_8, psk: true},
	{name: "ClientAuth", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, clientAuth: true},
	{name: "MTU300", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, mtu: 300},
	{name: "RPK", na: "pion/dtls does not implement raw public keys (RFC 7250)"},
	{name: "CID", suite: dtls.TLS_PSK_WITH_AES_128_CCM_8, psk: true, cid: true},
	{name: "SRTP", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, srtp: true},
	{name: "RSA", suite: dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, rsa: true},
	{name: "ALPN", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, alpn: true},
	{name: "Resumption", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, resume: true},
}

// newPionCell is the pion side's configuration for tc.
func newPionCell(t *testing.T, tc pionCase, pki *testPKI, pionIsServer bool) pionCell {
	pc := pionCell{suite: tc.suite, clientAuth: tc.clientAuth, mtu: tc.mtu, cid: tc.cid, srtp: tc.srtp, rsa: tc.rsa, pki: pki}
	if tc.psk {
		pc.psk = randomPSK(t)
	}
	if tc.alpn {
		pc.alpn = alpnClientProtos
		if pionIsServer {
			pc.alpn = alpnServerProtos
		}
	}
	if tc.resume {
		pc.store3 = newMemSessionStore[pion3.Session]()
		pc.store4 = newMemSessionStore[pion4.Session]()
	}
	return pc
}

// storedSessions is how many sessions pion put in the cell's store.
func (c pionCell) storedSessions() int {
	return c.store3.storedOrZero() + c.store4.storedOrZero()
}

func (s *memSessionStore[S]) storedOrZero() int {
	if s == nil {
		return 0
	}
	return s.stored()
}

// pionModuleVersion returns the version of module that go.mod requires
// (test binaries carry no module build info).
func pionModuleVersion(t *testing.T, module string) string {
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == module {
			return module + " " + f[1]
		}
		if len(f) >= 3 && f[0] == "require" && f[1] == module {
			return module + " " + f[2]
		}
	}
	t.Fatalf("go.mod does not require %s", module)
	return ""
}

func TestPion(t *testing.T) {
	for _, impl := range pionImpls {
		t.Run(impl.name, func(t *testing.T) {
			logVersion(t, impl.name, pionModuleVersion(t, impl.module))
			pki := newTestPKI(t)
			for _, role := range []string{"client", "server"} {
				t.Run(role, func(t *testing.T) {
					for _, tc := range pionCases {
						t.Run(tc.name, func(t *testing.T) {
							skipCell(t, tc.notYet, tc.na)
							if role == "client" {
								testPionServer(t, impl, pki, tc)
							} else {
								testPionClient(t, impl, pki, tc)
							}
						})
					}
				})
			}
		})
	}
}

// testPionServer is our client against a pion server: one connection, or
// two for resumption, the second resuming the first's session.
func testPionServer(t *testing.T, impl pionImpl, pki *testPKI, tc pionCase) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	pc := newPionCell(t, tc, pki, true)
	connections := 1
	if tc.resume {
		connections = 2
	}
	l, err := impl.listen(pc)
	if err != nil {
		t.Fatalf("pion listen: %v", err)
	}
	defer l.Close()

	served := make(chan error, connections)
	go func() {
		for range connections {
			served <- func() error {
				conn, st, err := impl.accept(ctx, l)
				if err != nil {
					return fmt.Errorf("pion server handshake: %w", err)
				}
				defer conn.Close()
				stop := context.AfterFunc(ctx, func() { conn.Close() })
				defer stop()
				if err := st.check(tc, true); err != nil {
					return fmt.Errorf("pion server: %w", err)
				}
				buf := make([]byte, 1<<14)
				n, err := conn.Read(buf)
				if err != nil {
					return fmt.Errorf("pion server Read: %w", err)
				}
				if _, err := conn.Write(buf[:n]); err != nil {
					return fmt.Errorf("pion server Write: %w", err)
				}
				// Our close_notify ends the connection.
				if _, err := conn.Read(buf); err == nil {
					return errors.New("pion server: a second datagram, want close_notify")
				} else if !errors.Is(err, io.EOF) {
					return fmt.Errorf("pion server: waiting for close_notify: %w", err)
				}
				return nil
			}()
		}
	}()

	w := want{suite: tc.suite, psk: tc.psk}
	cfg := &dtls.Config{CipherSuites: []uint16{tc.suite}}
	if tc.psk {
		cfg = pskConfig(pc.psk, tc.suite)
	} else {
		cfg.RootCAs, cfg.ServerName = pki.roots, "localhost"
		w.peerCertCN = "localhost"
	}
	if tc.clientAuth {
		cfg.Certificates = []tls.Certificate{pki.client}
	}
	cfg.MTU = tc.mtu
	if tc.cid {
		cfg.ConnectionIDGenerator = dtls.RandomCIDGenerator(cidLen)
		w.cid = cidLen
	}
	if tc.srtp {
		cfg.SRTPProtectionProfiles = []uint16{dtls.SRTP_AES128_CM_HMAC_SHA1_80}
		w.srtp = dtls.SRTP_AES128_CM_HMAC_SHA1_80
	}
	if tc.alpn {
		cfg.NextProtos = alpnClientProtos
		w.alpn = alpnWant
	}
	var sessions *countingSessionCache
	if tc.resume {
		sessions = &countingSessionCache{ClientSessionCache: dtls.NewLRUClientSessionCache(4)}
		cfg.ClientSessionCache = sessions
	}
	tr := &mtuTracer{peerSlack: impl.mtuSlack}
	cfg.Tracer = tr.trace
	for i := range connections {
		if i == 1 {
			if sessions.puts() == 0 || pc.storedSessions() == 0 {
				t.Fatalf("the first connection left no session to resume (ours: %d, pion's: %d)", sessions.puts(), pc.storedSessions())
			}
			w.resumed = true
		}
		conn := dialAndExchange(ctx, t, l.Addr().String(), cfg, w, goLine, goLine)
		if tc.rsa {
			checkRSA(t, conn.ConnectionState())
		}
		select {
		case err := <-served:
			if err != nil {
				t.Error(err)
			}
		case <-ctx.Done():
			t.Fatal("pion server did not finish")
		}
	}
	if tc.mtu != 0 {
		tr.check(t, tc.mtu, true)
	}
}

// testPionClient is a pion client against our server: one connection, or
// two for resumption, the second resuming the first's session.
func testPionClient(t *testing.T, impl pionImpl, pki *testPKI, tc pionCase) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	pc := newPionCell(t, tc, pki, false)
	w := want{suite: tc.suite, psk: tc.psk}
	cfg := &dtls.Config{CipherSuites: []uint16{tc.suite}}
	switch {
	case tc.psk:
		cfg = serverPSKConfig(pc.psk, tc.suite)
	case tc.rsa:
		cfg.Certificates = []tls.Certificate{pki.rsaServer}
	default:
		cfg.Certificates = []tls.Certificate{pki.server}
	}
	if tc.clientAuth {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pki.roots
		w.peerCertCN = "dtls-go-client"
	}
	cfg.MTU = tc.mtu
	if tc.cid {
		cfg.ConnectionIDGenerator = dtls.RandomCIDGenerator(cidLen)
		w.cid = cidLen
	}
	if tc.srtp {
		cfg.SRTPProtectionProfiles = []uint16{dtls.SRTP_AES128_CM_HMAC_SHA1_80}
		w.srtp = dtls.SRTP_AES128_CM_HMAC_SHA1_80
	}
	if tc.alpn {
		cfg.NextProtos = alpnServerProtos
		w.alpn = alpnWant
	}
	tr := &mtuTracer{}
	cfg.Tracer = tr.trace
	l := listen(t, cfg)
	connections := 1
	if tc.resume {
		connections = 2
	}
	for i := range connections {
		if i == 1 {
			if pc.storedSessions() == 0 {
				t.Fatal("pion stored no session to resume")
			}
			w.resumed = true
		}
		res := serveEcho(ctx, l, w, false)
		conn, st, err := impl.dial(ctx, l.Addr().(*net.UDPAddr), pc)
		if err != nil {
			t.Fatalf("pion client handshake %d: %v", i+1, err)
		}
		if err := st.check(tc, false); err != nil {
			t.Errorf("pion client: %v", err)
		}
		pionClientExchange(ctx, t, conn)
		waitEcho(ctx, t, res, true)
	}
	if tc.mtu != 0 {
		tr.check(t, tc.mtu, false)
	}
}

// pionClientExchange writes pionLine, reads the echo and closes conn.
func pionClientExchange(ctx context.Context, t *testing.T, conn net.Conn) {
	t.Helper()
	defer conn.Close()
	if _, err := conn.Write([]byte(pionLine)); err != nil {
		t.Fatalf("pion client Write: %v", err)
	}
	buf := make([]byte, 1<<14)
	readDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	go func() {
		defer close(readDone)
		n, err := conn.Read(buf)
		if err != nil {
			t.Errorf("pion client Read: %v", err)
			return
		}
		if got := string(buf[:n]); got != pionLine {
			t.Errorf("pion client read %q, want %q", got, pionLine)
		}
	}()
	<-readDone
	if err := conn.Close(); err != nil {
		t.Errorf("pion client Close: %v", err)
	}
}
