package coapdemo_test

// Interoperability of the example server and client (go-coap on dtls-go)
// with libcoap 4.3 (Debian's libcoap3-bin), whose tools come built on
// OpenSSL and on GnuTLS.
//
//	coap-client-* -> our server (role "server"): GET /hello, PUT /data,
//	observe /counter while the server notifies, and an 8 KiB PUT and GET
//	of /data with 1024-byte blocks (-b 1024).
//	our client -> coap-server-* (role "client"): GET / (libcoap's banner),
//	PUT and GET /example_data, observe /example_data while our client
//	PUTs to it, and an 8 KiB PUT and GET of /example_data.
//
// Test names are the cells of INTEROP.md's go-coap section:
// TestLibCoAP/<flavour>/<our role>/<credentials>/<exchange>.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/examples/coapdemo"
	"github.com/dtls-go/dtls/internal/dtlstest"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

const (
	// procWait bounds one libcoap process; its own -B is shorter.
	procWait = 15 * time.Second
	// bindWait bounds how long coap-server may take to bind its port.
	bindWait = 5 * time.Second
	// startAttempts bounds the retries when a free port we picked was
	// taken before coap-server bound it.
	startAttempts = 3
)

type libcoapFlavour struct {
	row            string
	client, server string
	rpk            string // why raw public keys do not run; "" runs them
}

var libcoapFlavours = []libcoapFlavour{
	{row: "libcoap-OpenSSL", client: "coap-client-openssl", server: "coap-server-openssl",
		rpk: "n.a.: libcoap has no raw public key support on OpenSSL"},
	{row: "libcoap-GnuTLS", client: "coap-client-gnutls", server: "coap-server-gnutls"},
}

// requirePeer finds bin, skips the test if it is missing, and fails it
// instead under CI=true, where .ci/run must have installed it.
func requirePeer(t *testing.T, bin string) string {
	t.Helper()
	return dtlstest.LookPath(t, bin) // Debian's libcoap3-bin
}

// libcoapVersion picks the version and TLS library lines from the usage
// text a libcoap tool prints when run without arguments.
func libcoapVersion(bin string) string {
	out, _ := exec.Command(bin).CombinedOutput()
	var v []string
	for l := range strings.Lines(string(out)) {
		l = strings.TrimSpace(l)
		if strings.Contains(l, "a small CoAP implementation") || strings.HasPrefix(l, "TLS Library:") {
			v = append(v, strings.TrimSuffix(l, " -- a small CoAP implementation"))
		}
	}
	return strings.Join(v, "; ")
}

// libcoapCred is one way to authenticate, as libcoap's flags and our
// Credentials.
type libcoapCred struct {
	name string
	rpk  bool
	// args for libcoap and our credentials, given the PKI and, with raw
	// public keys, libcoap's key and ours.
	args func(p *testPKI, theirs, ours *rpkKey, server bool) []string
	ours func(p *testPKI, theirs, ours *rpkKey) coapdemo.Credentials
}

var libcoapCreds = []libcoapCred{
	{name: "PSK-CCM8",
		args: func(_ *testPKI, _, _ *rpkKey, server bool) []string {
			if server {
				return []string{"-k", testPSK}
			}
			return []string{"-k", testPSK, "-u", "device-1"}
		},
		ours: func(*testPKI, *rpkKey, *rpkKey) coapdemo.Credentials {
			return coapdemo.Credentials{PSK: []byte(testPSK), PSKIdentity: []byte("device-1")}
		}},
	{name: "Certificates",
		// -C: libcoap verifies the peer against the CA and presents its
		// own certificate, signed by the same CA (mutual authentication).
		args: func(p *testPKI, _, _ *rpkKey, server bool) []string {
			if server {
				return []string{"-c", p.serverCert, "-j", p.serverKey, "-C", p.caFile}
			}
			return []string{"-c", p.clientCert, "-j", p.clientKey, "-C", p.caFile}
		},
		ours: func(p *testPKI, _, _ *rpkKey) coapdemo.Credentials {
			return coapdemo.Credentials{CAs: p.roots, ServerName: "localhost"}
		}},
	{name: "RPK", rpk: true,
		args: func(_ *testPKI, theirs, _ *rpkKey, _ bool) []string { return []string{"-M", theirs.file} },
		ours: func(_ *testPKI, theirs, ours *rpkKey) coapdemo.Credentials {
			return coapdemo.Credentials{RawPublicKey: true, Certificate: &tls.Certificate{PrivateKey: ours.key},
				PeerPublicKeys: []crypto.PublicKey{theirs.key.Public()}}
		}},
}

func TestLibCoAP(t *testing.T) {
	for _, fl := range libcoapFlavours {
		t.Run(fl.row, func(t *testing.T) {
			client := requirePeer(t, fl.client)
			server := requirePeer(t, fl.server)
			t.Logf("peer-version: %s: %s", fl.row, libcoapVersion(client))
			p := newTestPKI(t)
			t.Run("client", func(t *testing.T) {
				for _, cr := range libcoapCreds {
					t.Run(cr.name, func(t *testing.T) {
						if cr.rpk && fl.rpk != "" {
							t.Skip(fl.rpk)
						}
						testOurClient(t, server, p, cr)
					})
				}
			})
			t.Run("server", func(t *testing.T) {
				for _, cr := range libcoapCreds {
					t.Run(cr.name, func(t *testing.T) {
						if cr.rpk && fl.rpk != "" {
							t.Skip(fl.rpk)
						}
						testOurServer(t, client, p, cr)
					})
				}
			})
		})
	}
}

// testOurServer runs coap-client against the example server.
func testOurServer(t *testing.T, client string, p *testPKI, cr libcoapCred) {
	theirs, ours := newRPKKey(t, "libcoap"), newRPKKey(t, "ours")
	c := cr.ours(p, theirs, ours)
	switch cr.name {
	case "Certificates":
		c.Certificate = &p.server
	}
	cfg, err := c.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, cfg)
	base := "coaps://127.0.0.1:" + ts.port()
	auth := cr.args(p, theirs, ours, false)
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), procWait)
		defer cancel()
		args = append(append([]string{"-B", "10"}, auth...), args...)
		out, err := exec.CommandContext(ctx, client, args...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("%s %q: %v\n%s%s", filepath.Base(client), args, err, out, ee.Stderr)
			}
			t.Fatalf("%s: %v", client, err)
		}
		return string(out)
	}

	t.Run("GET", func(t *testing.T) {
		if out := run(t, "-w", base+"/hello"); strings.TrimSpace(out) != coapdemo.Hello {
			t.Errorf("coap-client printed %q, want %q", out, coapdemo.Hello)
		}
		checkServerSaw(t, ts, cr, theirs)
	})
	t.Run("PUT", func(t *testing.T) {
		run(t, "-m", "put", "-e", "put-by-libcoap", base+"/data")
		if got := ts.app.Data(); string(got) != "put-by-libcoap" {
			t.Errorf("/data holds %q after coap-client's PUT", got)
		}
	})
	t.Run("Observe", func(t *testing.T) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					ts.app.Notify()
				}
			}
		}()
		// -s 1: observe for a second, then deregister.
		out := run(t, "-w", "-s", "1", base+"/counter")
		close(stop)
		wg.Wait()
		checkRising(t, strings.Fields(out), 3)
		waitObservers(t, ts.app, 0)
	})
	t.Run("Block8K", func(t *testing.T) {
		dir := t.TempDir()
		in, back := filepath.Join(dir, "in"), filepath.Join(dir, "back")
		if err := os.WriteFile(in, payload8K, 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, "-m", "put", "-b", "1024", "-f", in, base+"/data")
		if got := ts.app.Data(); !bytes.Equal(got, payload8K) {
			t.Fatalf("/data holds %d bytes after a block-wise PUT of %d", len(got), len(payload8K))
		}
		run(t, "-b", "1024", "-o", back, base+"/data")
		got, err := os.ReadFile(back)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload8K) {
			t.Errorf("coap-client got %d bytes by a block-wise GET, want the %d PUT", len(got), len(payload8K))
		}
	})
}

// checkServerSaw checks what the server's side of the last connection
// saw of libcoap's credentials.
func checkServerSaw(t *testing.T, ts *testServer, cr libcoapCred, theirs *rpkKey) {
	t.Helper()
	var cc *udpclient.Conn
	select {
	case cc = <-ts.conns:
	default:
		t.Fatal("the server reports no connection")
	}
	st := cc.NetConn().(*dtls.Conn).ConnectionState()
	switch cr.name {
	case "PSK-CCM8":
		if st.CipherSuite != dtls.TLS_PSK_WITH_AES_128_CCM_8 || string(st.PSKIdentity) != "device-1" {
			t.Errorf("suite %s identity %q", dtls.CipherSuiteName(st.CipherSuite), st.PSKIdentity)
		}
	case "Certificates":
		if len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "dtls-go-client" {
			t.Error("libcoap's client certificate not seen")
		}
	case "RPK":
		if k, ok := st.PeerPublicKey.(*ecdsa.PublicKey); !ok || !k.Equal(theirs.key.Public()) {
			t.Errorf("peer raw key %v, want libcoap's", st.PeerPublicKey)
		}
	}
}

// testOurClient runs the example client against coap-server.
func testOurClient(t *testing.T, server string, p *testPKI, cr libcoapCred) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	theirs, ours := newRPKKey(t, "libcoap"), newRPKKey(t, "ours")
	c := cr.ours(p, theirs, ours)
	if cr.name == "Certificates" {
		c.Certificate = &p.client
	}
	cfg, err := c.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	var rec recordCounter
	cfg.Tracer = rec.trace
	addr := startCoAPServer(ctx, t, server, append([]string{"-A", "127.0.0.1"}, cr.args(p, theirs, ours, true)...))
	cc := dialRetry(ctx, t, addr, cfg)
	st := cc.NetConn().(*dtls.Conn).ConnectionState()
	switch cr.name {
	case "PSK-CCM8":
		if st.CipherSuite != dtls.TLS_PSK_WITH_AES_128_CCM_8 {
			t.Errorf("suite %s", dtls.CipherSuiteName(st.CipherSuite))
		}
	case "Certificates":
		if len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "localhost" {
			t.Error("coap-server's certificate not seen")
		}
	case "RPK":
		if k, ok := st.PeerPublicKey.(*ecdsa.PublicKey); !ok || !k.Equal(theirs.key.Public()) {
			t.Errorf("peer raw key %v, want coap-server's", st.PeerPublicKey)
		}
	}

	t.Run("GET", func(t *testing.T) {
		got := do(ctx, t, cc, coapdemo.Request{Method: "get", Path: "/"})
		if !bytes.Contains(bytes.Join(got, nil), []byte("libcoap")) {
			t.Errorf("GET /: %q, want libcoap's banner", got)
		}
	})
	t.Run("PUT", func(t *testing.T) {
		do(ctx, t, cc, coapdemo.Request{Method: "put", Path: "/example_data", Body: []byte("put-by-go-coap")})
		if got := do(ctx, t, cc, coapdemo.Request{Method: "get", Path: "/example_data"}); len(got) != 1 || string(got[0]) != "put-by-go-coap" {
			t.Errorf("GET after PUT: %q", got)
		}
	})
	t.Run("Observe", func(t *testing.T) {
		// coap-server notifies the observers of /example_data on each
		// PUT; our client observes on the connection it PUTs on.
		var out syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- coapdemo.Do(ctx, cc, coapdemo.Request{Method: "get", Path: "/example_data", Observe: 3}, &out)
		}()
		var err error
	loop:
		for i := 0; i < 100; i++ {
			select {
			case err = <-done:
				break loop
			case <-time.After(100 * time.Millisecond):
			}
			if out.Len() == 0 {
				continue // not registered yet
			}
			do(ctx, t, cc, coapdemo.Request{Method: "put", Path: "/example_data", Body: []byte(strconv.Itoa(i))})
		}
		if err != nil {
			t.Fatalf("observe: %v (got %q)", err, out.String())
		}
		lines := strings.Fields(out.String())
		if len(lines) != 4 {
			t.Fatalf("observe: %q, want the answer and 3 notifications", lines)
		}
		checkRising(t, lines[1:], 3)
	})
	t.Run("Block8K", func(t *testing.T) {
		checkBlockwise(ctx, t, cc, &rec, "/example_data")
	})
}

// startCoAPServer starts coap-server with args on a free port and returns
// the address of its coaps:// endpoint: coap-server serves coap:// on -p
// and coaps:// on the next port.
func startCoAPServer(ctx context.Context, t *testing.T, bin string, args []string) string {
	t.Helper()
	for attempt := 0; attempt < startAttempts; attempt++ {
		port, err := freePortPair()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, append([]string{"-p", strconv.Itoa(port - 1), "-v", "4"}, args...)...)
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		// coap-server binds before it serves; wait until the coaps port
		// is taken (or the server gave up, on a port race).
		deadline := time.Now().Add(bindWait)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				t.Logf("coap-server exited at start (port %d taken?): %s", port, stderr.String())
				deadline = time.Time{}
				continue
			default:
			}
			c, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				return "127.0.0.1:" + strconv.Itoa(port) // bound by coap-server
			}
			c.Close()
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Fatalf("coap-server did not start in %d attempts", startAttempts)
	return ""
}

// freePortPair finds a UDP port p such that p-1 and p are free now.
func freePortPair() (int, error) {
	for range 20 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if p < 1025 {
			continue
		}
		if c2, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p-1)); err == nil {
			c2.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free pair of UDP ports")
}

// dialRetry dials until the handshake succeeds or ctx ends: the server
// may have bound its port before it reads from it.
func dialRetry(ctx context.Context, t *testing.T, addr string, cfg *dtls.Config) *udpclient.Conn {
	t.Helper()
	var last error
	for i := 0; i < 5 && ctx.Err() == nil; i++ {
		hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		conn, err := dtls.DialContext(hctx, "udp", addr, cfg)
		cancel()
		if err == nil {
			conn.Close()
			return dial(ctx, t, addr, cfg)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no handshake with %s: %v", addr, last)
	return nil
}

// checkRising checks that fields are at least min rising integers.
func checkRising(t *testing.T, fields []string, min int) {
	t.Helper()
	if len(fields) < min {
		t.Errorf("%q: want at least %d values", fields, min)
		return
	}
	prev := -1
	for _, f := range fields {
		n, err := strconv.Atoi(f)
		if err != nil || n <= prev {
			t.Errorf("%q: want rising numbers", fields)
			return
		}
		prev = n
	}
}

// waitObservers waits until app keeps n observations.
func waitObservers(t *testing.T, app *coapdemo.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for app.Observers() != n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := app.Observers(); got != n {
		t.Errorf("the server keeps %d observations, want %d", got, n)
	}
}

// syncBuffer is a bytes.Buffer for one writer and one reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
