package dtls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls/internal/dtlstest"
)

// testCert is a self-signed certificate for "dtls.test".
type testCert struct {
	tls  tls.Certificate
	pool *x509.CertPool
}

var (
	testCertsOnce sync.Once
	testCerts     map[string]*testCert
)

// makeTestCert returns a self-signed certificate for "dtls.test"; t may
// be nil where no test is at hand.
func makeTestCert(t testing.TB, key crypto.Signer) *testCert {
	if t == nil {
		t = dtlstest.NoTest()
	}
	c := dtlstest.SelfSigned(t, dtlstest.Spec{Key: key, IsCA: true})
	return &testCert{tls: c.TLS, pool: c.Pool}
}

// certs returns the test certificates by key type: "p256", "p384",
// "ed25519", "rsa". They are valid at the real time and at a synctest
// bubble's virtual time.
func certs(t testing.TB) map[string]*testCert {
	testCertsOnce.Do(func() {
		if t == nil {
			t = dtlstest.NoTest()
		}
		testCerts = map[string]*testCert{}
		for _, kind := range []string{dtlstest.P256, dtlstest.P384, dtlstest.Ed25519, dtlstest.RSA} {
			testCerts[kind] = makeTestCert(t, dtlstest.NewKey(t, kind))
		}
	})
	return testCerts
}

var testPSK = []byte("0123456789abcdef")

func pskConfig() *Config {
	return &Config{
		PSK: func(id []byte) ([]byte, error) {
			if len(id) > 0 && string(id) != "client1" && string(id) != "hint" {
				return nil, errors.New("unknown identity")
			}
			return testPSK, nil
		},
		PSKIdentity:     []byte("client1"),
		PSKIdentityHint: []byte("hint"),
	}
}

// checkNoGoroutineLeak fails the test if goroutines started during it are
// still running at its end (after a bounded wait).
func checkNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if runtime.NumGoroutine() <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<16)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
	})
}

// echoServer runs a Listener that echoes every record; it returns the
// address and a channel with the server side's ConnectionState.
func echoServer(t *testing.T, config *Config, pc net.PacketConn) (*Listener, chan ConnectionState) {
	t.Helper()
	if pc == nil {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
	}
	l, err := NewListener(pc, config)
	if err != nil {
		t.Fatal(err)
	}
	states := make(chan ConnectionState, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			c := nc.(*Conn)
			states <- c.ConnectionState()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 1<<14)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l, states
}

func exchange(t *testing.T, c *Conn, msgs ...string) {
	t.Helper()
	buf := make([]byte, 1<<14)
	for _, m := range msgs {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatalf("write: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if string(buf[:n]) != m {
			t.Fatalf("echo: got %q, want %q", buf[:n], m)
		}
	}
}

type suiteCase struct {
	suite uint16
	cert  string // "" for PSK
}

func allSuiteCases() []suiteCase {
	var out []suiteCase
	for _, s := range cipherSuites {
		switch s.kx {
		case kxECDHEECDSA:
			out = append(out, suiteCase{s.id, "p256"})
		case kxECDHERSA:
			out = append(out, suiteCase{s.id, "rsa"})
		default:
			out = append(out, suiteCase{s.id, ""})
		}
	}
	return out
}

func configsFor(t testing.TB, sc suiteCase) (client, server *Config) {
	if sc.cert == "" {
		client, server = pskConfig(), pskConfig()
	} else {
		tc := certs(t)[sc.cert]
		server = &Config{Certificates: []tls.Certificate{tc.tls}}
		client = &Config{RootCAs: tc.pool, ServerName: "dtls.test"}
	}
	client.CipherSuites = []uint16{sc.suite}
	server.CipherSuites = []uint16{sc.suite}
	return client, server
}

func TestHandshakeEverySuite(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, sc := range allSuiteCases() {
		t.Run(CipherSuiteName(sc.suite), func(t *testing.T) {
			cc, sc2 := configsFor(t, sc)
			cc.MaxVersion = VersionDTLS12 // the 1.2 suites; 1.3's: TestHandshake13EverySuite
			l, states := echoServer(t, sc2, nil)
			c, err := Dial("udp", l.Addr().String(), cc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			exchange(t, c, "hello", strings.Repeat("x", 1000), "")
			st := c.ConnectionState()
			if st.CipherSuite != sc.suite || !st.ExtendedMasterSecret || !st.HandshakeComplete {
				t.Errorf("client state: %+v", st)
			}
			ss := <-states
			if ss.CipherSuite != sc.suite {
				t.Errorf("server suite %x", ss.CipherSuite)
			}
			ck, err := c.ExportKeyingMaterial("EXPERIMENTAL test", nil, 32)
			if err != nil {
				t.Fatal(err)
			}
			sk, err := ss.ExportKeyingMaterial("EXPERIMENTAL test", nil, 32)
			if err != nil || !bytes.Equal(ck, sk) {
				t.Errorf("exporters differ: %x %x %v", ck, sk, err)
			}
		})
	}
}

func TestHandshakeCertificateKinds(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, kind := range []string{"p256", "p384", "ed25519", "rsa"} {
		for _, curve := range []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384} {
			t.Run(fmt.Sprintf("%s/%v", kind, curve), func(t *testing.T) {
				tc := certs(t)[kind]
				l, _ := echoServer(t, &Config{Certificates: []tls.Certificate{tc.tls}}, nil)
				c, err := Dial("udp", l.Addr().String(), &Config{RootCAs: tc.pool, ServerName: "dtls.test", CurvePreferences: []tls.CurveID{curve}})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				exchange(t, c, "ping")
				if got := c.ConnectionState().CurveID; got != curve {
					t.Errorf("curve %v, want %v", got, curve)
				}
			})
		}
	}
}

func TestHandshakeFailures(t *testing.T) {
	checkNoGoroutineLeak(t)
	p256 := certs(t)["p256"]
	other := certs(t)["p384"]
	certServer := func() *Config { return &Config{Certificates: []tls.Certificate{p256.tls}} }
	tests := []struct {
		name           string
		client, server func() *Config
		// want is what the client's error mentions in 1.2 and 1.3; an
		// empty one skips that version.
		want12, want13 string
	}{
		{"unknown CA", func() *Config { return &Config{RootCAs: other.pool, ServerName: "dtls.test"} }, certServer, "certificate", "certificate"},
		{"wrong name", func() *Config { return &Config{RootCAs: p256.pool, ServerName: "other.test"} }, certServer, "certificate", "certificate"},
		// CipherSuites' 1.2 ids do not restrict 1.3 (as in crypto/tls).
		{"no common suite", func() *Config {
			return &Config{RootCAs: p256.pool, ServerName: "dtls.test", CipherSuites: []uint16{TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}
		}, certServer, "handshake failure", ""},
		{"no common 1.3 suite", func() *Config {
			return &Config{RootCAs: p256.pool, ServerName: "dtls.test", CipherSuites: []uint16{suiteTLSAES256GCMSHA384}}
		}, func() *Config {
			return &Config{Certificates: []tls.Certificate{p256.tls}, CipherSuites: []uint16{suiteTLSAES128GCMSHA256}}
		}, "", "handshake failure"},
		// 1.2 knows a wrong PSK when the client's Finished fails to
		// authenticate (bad_record_mac), 1.3 by the binder
		// (decrypt_error).
		{"wrong PSK", func() *Config {
			c := pskConfig()
			c.PSK = func([]byte) ([]byte, error) { return []byte("wrong key!"), nil }
			return c
		}, pskConfig, "bad record MAC", "error decrypting message"},
		// Told from a wrong key only with InsecureUnknownPSKIdentityAlert
		// (psk_probe_test.go).
		{"unknown identity", func() *Config { c := pskConfig(); c.PSKIdentity = []byte("mallory"); return c }, pskConfig, "bad record MAC", "error decrypting message"},
		{"VerifyConnection refuses", func() *Config {
			return &Config{RootCAs: p256.pool, ServerName: "dtls.test", VerifyConnection: func(ConnectionState) error { return errors.New("no thanks") }}
		}, certServer, "no thanks", "no thanks"},
	}
	for _, tt := range tests {
		for _, vers := range []uint16{VersionDTLS12, VersionDTLS13} {
			want := tt.want12
			if vers == VersionDTLS13 {
				want = tt.want13
			}
			if want == "" {
				continue
			}
			t.Run(tt.name+"/"+versionName(vers), func(t *testing.T) {
				client, server := tt.client(), tt.server()
				client.MaxVersion = vers
				// A wrong PSK is known in 1.2 only when the server
				// gives up on the client's Finished, which fails
				// authentication: it then sends bad_record_mac, which
				// the client must still be waiting for.
				// The server's timeout is below the Listener's janitor
				// interval (1 s), so that the handshake times out (and
				// sends the alert) before the janitor can end it as
				// stalled, which sends nothing.
				server.HandshakeTimeout = 500 * time.Millisecond
				client.HandshakeTimeout = 3 * time.Second
				l, _ := echoServer(t, server, nil)
				c, err := Dial("udp", l.Addr().String(), client)
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded")
				}
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			})
		}
	}
}

func TestHandshakeClientAuth(t *testing.T) {
	checkNoGoroutineLeak(t)
	p256, rsaCert := certs(t)["p256"], certs(t)["rsa"]
	server := &Config{Certificates: []tls.Certificate{p256.tls}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: rsaCert.pool}
	l, states := echoServer(t, server, nil)
	c, err := Dial("udp", l.Addr().String(), &Config{RootCAs: p256.pool, ServerName: "dtls.test", Certificates: []tls.Certificate{rsaCert.tls}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange(t, c, "with client cert")
	if st := <-states; len(st.PeerCertificates) != 1 || len(st.VerifiedChains) != 1 {
		t.Errorf("server did not see the client certificate: %+v", st)
	}
	// Without a certificate the handshake fails: in 1.2 at the client's
	// Dial (the server's Finished never comes), in 1.3 at its first Read
	// (its handshake ends with its own Finished, RFC 8446 §2; the
	// server's certificate_required alert, RFC 8446 §4.4.2.4, follows).
	_, err = Dial("udp", l.Addr().String(), &Config{RootCAs: p256.pool, ServerName: "dtls.test", HandshakeTimeout: 3 * time.Second, MaxVersion: VersionDTLS12})
	if err == nil {
		t.Fatal("1.2 handshake without a client certificate succeeded")
	}
	c13, err := Dial("udp", l.Addr().String(), &Config{RootCAs: p256.pool, ServerName: "dtls.test", HandshakeTimeout: 3 * time.Second})
	if err == nil {
		defer c13.Close()
		if v := c13.ConnectionState().Version; v != VersionDTLS13 {
			t.Fatalf("version %#x, want 1.3", v)
		}
		c13.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err = c13.Read(make([]byte, 10))
	}
	if !errors.Is(err, AlertError(alertCertificateRequired)) {
		t.Fatalf("1.3 without a client certificate: %v, want the peer's certificate_required alert", err)
	}
}

// TestHandshakeServerOverConn runs Server on a connected socket, which does
// its own cookie exchange.
func TestHandshakeServerOverConn(t *testing.T) {
	checkNoGoroutineLeak(t)
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.DialUDP("udp", nil, a.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	sa, err := net.DialUDP("udp", a.LocalAddr().(*net.UDPAddr), b.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	srv := Server(sa, sc)
	cli := Client(b, cc)
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 100)
		n, err := srv.Read(buf)
		if err == nil {
			_, err = srv.Write(buf[:n])
		}
		errc <- err
	}()
	exchange(t, cli, "over a connected socket")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	cli.Close()
	srv.Close()
}

// lossyPacketConn drops, duplicates and reorders the datagrams it writes,
// from a seeded source.
type lossyPacketConn struct {
	net.PacketConn
	mu      sync.Mutex
	rng     *mrand.Rand
	loss    float64
	dup     float64
	reorder float64
	held    []byte
	heldTo  net.Addr
	sent    int
	dropped int
}

func (l *lossyPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	if l.rng.Float64() < l.loss {
		l.dropped++
		return len(b), nil
	}
	if l.held == nil && l.rng.Float64() < l.reorder {
		l.held, l.heldTo = bytes.Clone(b), addr
		return len(b), nil
	}
	l.PacketConn.WriteTo(b, addr)
	if l.rng.Float64() < l.dup {
		l.PacketConn.WriteTo(b, addr)
	}
	if l.held != nil {
		l.PacketConn.WriteTo(l.held, l.heldTo)
		l.held = nil
	}
	return len(b), nil
}

// lossyConn is the same for a client's connected socket.
type lossyConn struct {
	net.Conn
	pc *lossyPacketConn
}

func (l *lossyConn) Write(b []byte) (int, error) { return l.pc.WriteTo(b, nil) }

func TestHandshakeLossy(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, sc := range []suiteCase{{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"}, {TLS_PSK_WITH_AES_128_CCM_8, ""}} {
		for seed := uint64(1); seed <= 5; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", CipherSuiteName(sc.suite), seed), func(t *testing.T) {
				cc, scfg := configsFor(t, sc)
				// DTLS 1.2, as the subtest names say; 1.3 over loss:
				// TestLoss13, TestLossTable's 1.3 rows.
				cc.MaxVersion = VersionDTLS12
				cc.RetransmitTimeout = 20 * time.Millisecond
				scfg.RetransmitTimeout = 20 * time.Millisecond
				cc.MTU, scfg.MTU = 300, 300
				cc.HandshakeTimeout, scfg.HandshakeTimeout = 20*time.Second, 20*time.Second
				raw, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				spc := &lossyPacketConn{PacketConn: raw, rng: mrand.New(mrand.NewPCG(seed, 1)), loss: 0.3, dup: 0.1, reorder: 0.1}
				l, _ := echoServer(t, scfg, spc)
				uc, err := net.Dial("udp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				cpc := &lossyPacketConn{PacketConn: nil, rng: mrand.New(mrand.NewPCG(seed, 2)), loss: 0.3, dup: 0.1, reorder: 0.1}
				cpc.PacketConn = packetConnOf{uc}
				c := Client(&lossyConn{Conn: uc, pc: cpc}, cc)
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if err := c.HandshakeContext(ctx); err != nil {
					t.Fatalf("handshake over a lossy link: %v (client dropped %d/%d, server dropped %d/%d)", err, cpc.dropped, cpc.sent, spc.dropped, spc.sent)
				}
			})
		}
	}
}

// packetConnOf adapts a connected net.Conn to the WriteTo the lossy
// wrapper calls.
type packetConnOf struct{ net.Conn }

func (p packetConnOf) WriteTo(b []byte, _ net.Addr) (int, error) { return p.Conn.Write(b) }
func (p packetConnOf) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := p.Conn.Read(b)
	return n, p.Conn.RemoteAddr(), err
}

func TestConnCloseNotify(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
	l, err := Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		buf := make([]byte, 10)
		_, err = nc.Read(buf)
		nc.Close()
		done <- err
	}()
	c, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-done; err != io.EOF {
		t.Fatalf("server read after close_notify: %v, want io.EOF", err)
	}
}

func TestReadDeadline(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
	l, _ := echoServer(t, sc, nil)
	c, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	exchange(t, c, "still alive")
}

func TestWriteTooLarge(t *testing.T) {
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
	l, _ := echoServer(t, sc, nil)
	c, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(make([]byte, maxPlaintext+1)); err == nil {
		t.Fatal("oversized Write accepted")
	}
	exchange(t, c, strings.Repeat("y", maxPlaintext))
}

func BenchmarkHandshakeECDSA(b *testing.B) {
	tc := certs(b)["p256"]
	l, err := Listen("udp", "127.0.0.1:0", &Config{Certificates: []tls.Certificate{tc.tls}, CipherSuites: []uint16{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// DTLS 1.2, as the server's suite; 1.3: BenchmarkHandshake13.
	cfg := &Config{RootCAs: tc.pool, ServerName: "dtls.test", MaxVersion: VersionDTLS12}
	b.ReportAllocs()
	for b.Loop() {
		c, err := Dial("udp", l.Addr().String(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

func BenchmarkHandshakePSK(b *testing.B) {
	cc, sc := configsFor(b, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	cc.MaxVersion = VersionDTLS12 // the 1.2 PSK suite; 1.3: BenchmarkHandshake13/PSK
	l, err := Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		c, err := Dial("udp", l.Addr().String(), cc)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkRecords1000 measures 1000-byte records one way over loopback:
// the client writes, the server reads.
func BenchmarkRecords1000(b *testing.B) {
	cc, sc := configsFor(b, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	cc.MaxVersion = VersionDTLS12 // the 1.2 suite's records; 1.3: BenchmarkEcho100Listener/v=1.3
	l, err := Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	got := make(chan int, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		buf := make([]byte, 2048)
		n := 0
		for {
			nc.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := nc.Read(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	c, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte{1}, 1000)
	b.SetBytes(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close()
	b.ReportMetric(float64(<-got)/float64(b.N)*100, "%delivered")
}

// TestVerifyConnectionState checks that Config.VerifyConnection sees, on
// each side, the ConnectionState that ConnectionState returns once the
// handshake is complete (but for HandshakeComplete): one builder makes
// both, from what the handshake negotiated.
func TestVerifyConnectionState(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, vers := range []uint16{VersionDTLS12, VersionDTLS13} {
		t.Run(fmt.Sprintf("%#04x", vers), func(t *testing.T) {
			p256 := certs(t)["p256"]
			var seen [2]ConnectionState // client, server
			var calls [2]int
			verify := func(side int) func(ConnectionState) error {
				return func(cs ConnectionState) error {
					seen[side] = cs
					calls[side]++
					return nil
				}
			}
			cid := func() []byte { return []byte{1, 2, 3, 4} }
			server := &Config{Certificates: []tls.Certificate{p256.tls}, NextProtos: []string{"x"},
				ConnectionIDGenerator: cid, VerifyConnection: verify(1), MaxVersion: vers}
			client := &Config{RootCAs: p256.pool, ServerName: "dtls.test", NextProtos: []string{"x"},
				ConnectionIDGenerator: func() []byte { return []byte{9} }, VerifyConnection: verify(0)}
			l, states := echoServer(t, server, nil)
			defer l.Close()
			c := dialEcho(t, l, client)
			got := [2]ConnectionState{c.ConnectionState(), serverState(t, states)}
			for side, name := range []string{"client", "server"} {
				if calls[side] != 1 {
					t.Fatalf("%s: VerifyConnection called %d times", name, calls[side])
				}
				v, cs := seen[side], got[side]
				if v.HandshakeComplete || !cs.HandshakeComplete {
					t.Errorf("%s: HandshakeComplete %v in VerifyConnection, %v after", name, v.HandshakeComplete, cs.HandshakeComplete)
				}
				cs.HandshakeComplete, cs.ekm, v.ekm = false, nil, nil
				cs.HandshakeDuration = 0 // not known yet in VerifyConnection
				if !reflect.DeepEqual(v, cs) {
					t.Errorf("%s: VerifyConnection saw\n%+v\nConnectionState is\n%+v", name, v, cs)
				}
				if cs.Version != vers || cs.NegotiatedProtocol != "x" || len(cs.LocalConnectionID) == 0 || cs.SignatureScheme == 0 {
					t.Errorf("%s: incomplete state %+v", name, cs)
				}
			}
		})
	}
}
