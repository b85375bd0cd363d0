package dtls_test

// Interoperability with OpenSSL 3.0's s_server and s_client over loopback.
// Each side sends a line the other must print, so data flows both ways:
//
//	our client -> openssl s_server: we Write a line, s_server prints it on
//	stdout; the test types a line into s_server's stdin, we Read it.
//	openssl s_client -> our server: our server Writes a greeting after the
//	handshake and echoes what it reads; the test types a line into
//	s_client's stdin and waits for s_client to print the echo. Closing
//	s_client's stdin makes it send close_notify, which our Read sees as EOF.
//
// (s_server's -rev echo mode refuses DTLS: "Can't use -rev with DTLS".)
// Both sides write NSS key logs; the test checks they agree, which also
// proves that our KeyLogWriter output is usable by Wireshark.
//
// A missing openssl binary skips these tests, except under CI=true where it
// is a failure: CI must never pass by not running them.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/internal/dtlstest"
)

const (
	// opensslTestTimeout bounds one interop case end to end. A loopback
	// handshake takes milliseconds; a lost flight costs a 1 s retransmit.
	opensslTestTimeout = 30 * time.Second
	// opensslStartAttempts bounds the retries when the free port we picked
	// was taken by someone else before s_server bound it.
	opensslStartAttempts = 3
	// opensslExitWait bounds how long a case waits for an openssl process
	// to exit by itself once its work is done.
	opensslExitWait = 10 * time.Second

	testPSKIdentity = "dtls-go-interop"
	goLine          = "hello from dtls-go"
	opensslLine     = "hello from openssl" // s_server/s_client treat some lines starting Q, R, K... as commands
)

// opensslCase is one configuration both directions are tested with.
type opensslCase struct {
	name   string
	suite  uint16 // ours
	cipher string // OpenSSL's name for the same suite
	psk    bool   // PSK instead of an ECDSA certificate
	mtu    int    // 0: defaults on both sides
}

var opensslCases = []opensslCase{
	{name: "ECDSA-P256", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, cipher: "ECDHE-ECDSA-AES128-GCM-SHA256"},
	{name: "PSK-CCM8", suite: dtls.TLS_PSK_WITH_AES_128_CCM_8, cipher: "PSK-AES128-CCM8", psk: true},
	// A P-256 leaf is ~450 bytes DER, so the Certificate message is
	// fragmented both ways at MTU 300.
	{name: "ECDSA-P256-MTU300", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, cipher: "ECDHE-ECDSA-AES128-GCM-SHA256", mtu: 300},
}

// TestOpenSSLServer connects our client to `openssl s_server -dtls1_2`.
func TestOpenSSLServer(t *testing.T) {
	openssl := requireOpenSSL(t)
	pki := newTestPKI(t)
	for _, tc := range opensslCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), opensslTestTimeout)
			defer cancel()
			dir := t.TempDir()
			psk := randomPSK(t)
			opensslKeys := filepath.Join(dir, "openssl.keys")

			args := []string{"s_server", "-dtls1_2", "-naccept", "1", "-cipher", tc.cipher, "-keylogfile", opensslKeys}
			if tc.psk {
				args = append(args, "-nocert", "-psk", hex.EncodeToString(psk), "-psk_identity", testPSKIdentity)
			} else {
				args = append(args, "-cert", pki.certFile, "-key", pki.keyFile)
			}
			if tc.mtu != 0 {
				args = append(args, "-mtu", strconv.Itoa(tc.mtu))
			}
			srv, addr := startOpenSSLServer(ctx, t, openssl, args)

			var keys lockedBuffer
			tr := &datagramSizes{}
			cfg := &dtls.Config{
				CipherSuites: []uint16{tc.suite},
				KeyLogWriter: &keys,
				MTU:          tc.mtu,
				Tracer:       tr.trace,
			}
			if tc.psk {
				cfg.PSK = func([]byte) ([]byte, error) { return psk, nil }
				cfg.PSKIdentity = []byte(testPSKIdentity)
			} else {
				cfg.RootCAs = pki.roots
				cfg.ServerName = "localhost"
			}
			conn, err := dtls.DialContext(ctx, "udp", addr, cfg)
			if err != nil {
				t.Fatalf("DialContext(%s): %v", addr, err)
			}
			defer conn.Close()
			if err := conn.HandshakeContext(ctx); err != nil {
				t.Fatalf("Handshake: %v", err)
			}
			checkState(t, conn.ConnectionState(), tc)

			// Us to OpenSSL.
			if _, err := conn.Write([]byte(goLine + "\n")); err != nil {
				t.Fatalf("Write: %v", err)
			}
			srv.waitLine(ctx, t, goLine)

			// OpenSSL to us.
			srv.send(t, opensslLine+"\n")
			conn.SetReadDeadline(time.Now().Add(opensslExitWait))
			buf := make([]byte, 1<<14)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if got := string(buf[:n]); got != opensslLine+"\n" {
				t.Errorf("Read %q, want %q", got, opensslLine+"\n")
			}

			// close_notify ends s_server's only connection (-naccept 1).
			if err := conn.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			srv.waitExit(t, 0)
			checkKeyLog(t, keys.String(), opensslKeys)
			tr.check(t, tc.mtu, true)
		})
	}
}

// TestOpenSSLClient connects `openssl s_client -dtls1_2` to our Listener.
func TestOpenSSLClient(t *testing.T) {
	openssl := requireOpenSSL(t)
	pki := newTestPKI(t)
	for _, tc := range opensslCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), opensslTestTimeout)
			defer cancel()
			dir := t.TempDir()
			psk := randomPSK(t)
			opensslKeys := filepath.Join(dir, "openssl.keys")

			var keys lockedBuffer
			tr := &datagramSizes{}
			cfg := &dtls.Config{
				CipherSuites: []uint16{tc.suite},
				KeyLogWriter: &keys,
				MTU:          tc.mtu,
				Tracer:       tr.trace,
			}
			if tc.psk {
				cfg.PSK = func(identity []byte) ([]byte, error) {
					if string(identity) != testPSKIdentity {
						return nil, fmt.Errorf("unexpected PSK identity %q", identity)
					}
					return psk, nil
				}
			} else {
				cfg.Certificates = []tls.Certificate{pki.cert}
			}
			l, err := dtls.Listen("udp", "127.0.0.1:0", cfg)
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			defer l.Close()

			// Our side: greet, then echo until the peer closes.
			served := make(chan error, 1)
			go func() { served <- serveEcho(ctx, l, tc) }()

			args := []string{"s_client", "-dtls1_2", "-connect", l.Addr().String(), "-cipher", tc.cipher, "-keylogfile", opensslKeys}
			if tc.psk {
				args = append(args, "-psk", hex.EncodeToString(psk), "-psk_identity", testPSKIdentity)
			} else {
				args = append(args, "-CAfile", pki.caFile, "-servername", "localhost",
					"-verify_hostname", "localhost", "-verify_return_error")
			}
			if tc.mtu != 0 {
				args = append(args, "-mtu", strconv.Itoa(tc.mtu))
			}
			cli := startOpenSSL(ctx, t, openssl, args)

			cli.waitLine(ctx, t, goLine) // our greeting: the handshake is done
			cli.send(t, opensslLine+"\n")
			cli.waitLine(ctx, t, opensslLine) // our echo
			cli.closeStdin()                  // s_client sends close_notify and exits
			cli.waitExit(t, 0)

			select {
			case err := <-served:
				if err != nil {
					t.Error(err)
				}
			case <-ctx.Done():
				t.Fatal("our server did not see the connection end")
			}
			checkKeyLog(t, keys.String(), opensslKeys)
			tr.check(t, tc.mtu, false)
		})
	}
}

// serveEcho accepts one connection, checks its handshake, sends goLine and
// echoes datagrams until the peer's close_notify (io.EOF), which is the
// only good ending.
func serveEcho(ctx context.Context, l *dtls.Listener, tc opensslCase) error {
	c, err := l.Accept()
	if err != nil {
		return fmt.Errorf("Accept: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	dc, ok := c.(*dtls.Conn)
	if !ok {
		return fmt.Errorf("Accept returned %T, want *dtls.Conn", c)
	}
	if err := dc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("server Handshake: %w", err)
	}
	st := dc.ConnectionState()
	if err := stateError(st, tc); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if _, err := c.Write([]byte(goLine + "\n")); err != nil {
		return fmt.Errorf("server Write: %w", err)
	}
	buf := make([]byte, 1<<14)
	got := 0
	for {
		n, err := c.Read(buf)
		if errors.Is(err, io.EOF) {
			if got == 0 {
				return errors.New("server: peer closed before sending anything")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("server Read: %w", err)
		}
		got++
		if _, err := c.Write(buf[:n]); err != nil {
			return fmt.Errorf("server Write: %w", err)
		}
	}
}

func checkState(t *testing.T, st dtls.ConnectionState, tc opensslCase) {
	t.Helper()
	if err := stateError(st, tc); err != nil {
		t.Error(err)
	}
}

func stateError(st dtls.ConnectionState, tc opensslCase) error {
	var errs []error
	if !st.HandshakeComplete {
		errs = append(errs, errors.New("HandshakeComplete is false"))
	}
	if st.Version != dtls.VersionDTLS12 {
		errs = append(errs, fmt.Errorf("Version %#x, want DTLS 1.2", st.Version))
	}
	if st.CipherSuite != tc.suite {
		errs = append(errs, fmt.Errorf("CipherSuite %s, want %s", dtls.CipherSuiteName(st.CipherSuite), dtls.CipherSuiteName(tc.suite)))
	}
	if !st.ExtendedMasterSecret {
		errs = append(errs, errors.New("extended master secret not negotiated (OpenSSL 3.0 offers it)"))
	}
	if tc.psk && string(st.PSKIdentity) != testPSKIdentity {
		errs = append(errs, fmt.Errorf("PSKIdentity %q, want %q", st.PSKIdentity, testPSKIdentity))
	}
	return errors.Join(errs...)
}

// checkKeyLog compares our NSS key log with OpenSSL's: both must hold the
// same CLIENT_RANDOM line for the connection.
func checkKeyLog(t *testing.T, ours, opensslFile string) {
	t.Helper()
	theirs, err := os.ReadFile(opensslFile)
	if err != nil {
		t.Errorf("OpenSSL key log: %v", err)
		return
	}
	pick := func(s string) []string {
		var out []string
		for l := range strings.Lines(s) {
			if strings.HasPrefix(l, "CLIENT_RANDOM ") {
				out = append(out, strings.ToLower(strings.TrimSpace(l)))
			}
		}
		return out
	}
	o, th := pick(ours), pick(string(theirs))
	if len(th) != 1 || !slices.Equal(o, th) {
		t.Errorf("key logs differ:\nours:    %q\nOpenSSL: %q", o, th)
	}
}

// datagramSizes watches our side's Tracer: the largest datagram each way,
// and whether a handshake message went out or came in in fragments.
type datagramSizes struct {
	mu                  sync.Mutex
	maxSent, maxRecv    int
	fragmentedSent      bool
	largestRecvMessage  uint32
	sawDone, sawFailure bool
	failure             string
}

func (d *datagramSizes) trace(ev *dtls.TraceEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch ev.Kind {
	case dtls.TraceDatagramSent:
		d.maxSent = max(d.maxSent, ev.Length)
	case dtls.TraceDatagramReceived:
		d.maxRecv = max(d.maxRecv, ev.Length)
	case dtls.TraceHandshakeSent:
		if ev.FragmentLength < ev.MessageLength {
			d.fragmentedSent = true
		}
	case dtls.TraceHandshakeReceived:
		d.largestRecvMessage = max(d.largestRecvMessage, ev.MessageLength)
	case dtls.TraceHandshakeDone:
		d.sawDone = true
	case dtls.TraceHandshakeFailed:
		d.sawFailure, d.failure = true, ev.Reason
	}
}

// check verifies the MTU was honoured both ways and, when we are the
// server (sending the Certificate), that we fragmented.
func (d *datagramSizes) check(t *testing.T, mtu int, weAreClient bool) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.sawDone || d.sawFailure {
		t.Errorf("Tracer: handshake done %v, failed %v (%s)", d.sawDone, d.sawFailure, d.failure)
	}
	if mtu == 0 {
		return
	}
	if d.maxSent > mtu {
		t.Errorf("we sent a %d-byte datagram with MTU %d", d.maxSent, mtu)
	}
	if d.maxRecv > mtu {
		t.Errorf("OpenSSL sent a %d-byte datagram with -mtu %d", d.maxRecv, mtu)
	}
	if weAreClient {
		if d.largestRecvMessage <= uint32(mtu) {
			t.Errorf("largest handshake message received is %d bytes: nothing needed reassembly at MTU %d", d.largestRecvMessage, mtu)
		}
	} else if !d.fragmentedSent {
		t.Errorf("no handshake message was fragmented at MTU %d", mtu)
	}
}

// requireOpenSSL returns the openssl binary's path, skipping the test if
// there is none, or failing it under CI.
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	path := dtlstest.LookPath(t, "openssl")
	out, err := exec.Command(path, "version").Output()
	if err != nil {
		t.Fatalf("openssl version: %v", err)
	}
	t.Logf("using %s: %s", path, bytes.TrimSpace(out))
	return path
}

// opensslProc is a running openssl command whose stdout lines the test
// can wait for and whose stdin it can type into.
type opensslProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout, closed at EOF
	done  chan struct{}
	err   error // from Wait, once done is closed

	mu             sync.Mutex
	stdout, stderr strings.Builder // for failure reports
}

// startOpenSSL runs openssl with args until the test ends: t.Cleanup
// kills it if it is still running and logs its output if the test failed.
func startOpenSSL(ctx context.Context, t *testing.T, openssl string, args []string) *opensslProc {
	t.Helper()
	t.Logf("running: openssl %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, openssl, args...)
	cmd.WaitDelay = time.Second // don't let a stray pipe holder stall Wait
	p := &opensslProc{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.stderr.Write(b)
		return len(b), nil
	})
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting openssl: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for this much output
			}
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.closeStdin()
		if cmd.Process != nil {
			select {
			case <-p.done:
			default:
				cmd.Process.Kill()
			}
		}
		<-p.done // bounded: the process is dead and WaitDelay caps the pipes
		if t.Failed() {
			t.Logf("openssl %s output:\n%s", args[0], p.output())
		}
	})
	return p
}

// startOpenSSLServer starts s_server on a free loopback port, waits until
// it prints ACCEPT, and returns it and its address. If the port was taken
// in the meantime s_server exits, and we try another.
func startOpenSSLServer(ctx context.Context, t *testing.T, openssl string, args []string) (*opensslProc, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeUDPAddr(t)
		p := startOpenSSL(ctx, t, openssl, append(slices.Clip(args), "-accept", addr))
		if p.waitFor(ctx, "ACCEPT") {
			return p, addr
		}
		if ctx.Err() != nil || attempt == opensslStartAttempts {
			t.Fatalf("openssl s_server did not start (attempt %d):\n%s", attempt, p.output())
		}
		t.Logf("s_server did not start on %s, retrying:\n%s", addr, p.output())
	}
}

// waitFor reads stdout until a line equal to want; false if the process
// ended or ctx expired first.
func (p *opensslProc) waitFor(ctx context.Context, want string) bool {
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return false
			}
			if strings.TrimRight(l, "\r") == want {
				return true
			}
		case <-ctx.Done():
			return false
		}
	}
}

func (p *opensslProc) waitLine(ctx context.Context, t *testing.T, want string) {
	t.Helper()
	if !p.waitFor(ctx, want) {
		t.Fatalf("openssl %s never printed %q (%v); output:\n%s", p.cmd.Args[1], want, context.Cause(ctx), p.output())
	}
}

func (p *opensslProc) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, s); err != nil {
		t.Fatalf("writing to openssl's stdin: %v", err)
	}
}

func (p *opensslProc) closeStdin() { p.stdin.Close() }

// waitExit waits, bounded, for the process to end by itself with code.
func (p *opensslProc) waitExit(t *testing.T, code int) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(opensslExitWait):
		t.Fatalf("openssl %s did not exit", p.cmd.Args[1])
	}
	if got := p.cmd.ProcessState.ExitCode(); got != code {
		t.Errorf("openssl %s exited with %d (%v), want %d", p.cmd.Args[1], got, p.err, code)
	}
}

func (p *opensslProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "stdout:\n" + p.stdout.String() + "stderr:\n" + p.stderr.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// freeUDPAddr returns a loopback address whose UDP port was free a moment
// ago: bound, then released for openssl to take.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

func randomPSK(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 16)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testPKI is a P-256 CA and a P-256 leaf for localhost/127.0.0.1 that it
// signed, as files for openssl and as values for us.
type testPKI struct {
	caFile, certFile, keyFile string
	roots                     *x509.CertPool
	cert                      tls.Certificate // leaf chain with key
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca := dtlstest.NewCA(t, dtlstest.Spec{CommonName: "dtls-go interop test CA"})
	leaf := ca.Issue(t, dtlstest.Spec{Names: []string{"localhost", "127.0.0.1"}})
	p := &testPKI{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "cert.pem"),
		keyFile:  filepath.Join(dir, "key.pem"),
		roots:    ca.Pool,
		cert:     tls.Certificate{Certificate: leaf.TLS.Certificate, PrivateKey: leaf.Key},
	}
	ca.WriteFile(t, p.caFile)
	leaf.WriteFiles(t, p.certFile, p.keyFile)
	return p
}

// opensslResumeModes are the two ways OpenSSL resumes a DTLS 1.2 session:
// by RFC 5077 ticket (its default) and by session ID (-no_ticket).
var opensslResumeModes = []struct {
	name string
	args []string
}{
	{"ticket", nil},
	{"id", []string{"-no_ticket"}},
}

// TestOpenSSLClientResumption runs `openssl s_client -sess_out` against our
// Listener, then `s_client -sess_in` with the saved session: the second
// connection must be an abbreviated handshake on both sides.
func TestOpenSSLClientResumption(t *testing.T) {
	openssl := requireOpenSSL(t)
	pki := newTestPKI(t)
	tc := opensslCases[0]
	for _, mode := range opensslResumeModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), opensslTestTimeout)
			defer cancel()
			sess := filepath.Join(t.TempDir(), "session.pem")
			var mu sync.Mutex
			var resumed []bool
			cfg := &dtls.Config{
				CipherSuites: []uint16{tc.suite},
				Certificates: []tls.Certificate{pki.cert},
				VerifyConnection: func(st dtls.ConnectionState) error {
					mu.Lock()
					resumed = append(resumed, st.DidResume)
					mu.Unlock()
					return nil
				},
			}
			if mode.name == "id" {
				cfg.SessionTicketsDisabled = true
			}
			l, err := dtls.Listen("udp", "127.0.0.1:0", cfg)
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			defer l.Close()
			for i, sessArgs := range [][]string{{"-sess_out", sess}, {"-sess_in", sess}} {
				served := make(chan error, 1)
				go func() { served <- serveEcho(ctx, l, tc) }()
				args := []string{"s_client", "-dtls1_2", "-connect", l.Addr().String(), "-cipher", tc.cipher,
					"-CAfile", pki.caFile, "-servername", "localhost", "-verify_return_error"}
				args = append(append(args, mode.args...), sessArgs...)
				cli := startOpenSSL(ctx, t, openssl, args)
				cli.waitLine(ctx, t, goLine)
				cli.send(t, opensslLine+"\n")
				cli.waitLine(ctx, t, opensslLine)
				cli.closeStdin()
				cli.waitExit(t, 0)
				if err := <-served; err != nil {
					t.Fatal(err)
				}
				want := "New, "
				if i == 1 {
					want = "Reused, "
				}
				if out := cli.output(); !strings.Contains(out, want) {
					t.Errorf("s_client connection %d did not print %q:\n%s", i+1, want, out)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(resumed, []bool{false, true}) {
				t.Errorf("our server's DidResume over the two connections: %v, want [false true]", resumed)
			}
		})
	}
}

// TestOpenSSLServerResumption connects our client twice to one
// `openssl s_server -naccept 2`: the second handshake resumes the first
// session, by ticket or by session ID.
func TestOpenSSLServerResumption(t *testing.T) {
	openssl := requireOpenSSL(t)
	pki := newTestPKI(t)
	tc := opensslCases[0]
	for _, mode := range opensslResumeModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), opensslTestTimeout)
			defer cancel()
			args := []string{"s_server", "-dtls1_2", "-naccept", "2", "-cipher", tc.cipher, "-cert", pki.certFile, "-key", pki.keyFile}
			srv, addr := startOpenSSLServer(ctx, t, openssl, append(args, mode.args...))
			cache := dtls.NewLRUClientSessionCache(4)
			for i := range 2 {
				cfg := &dtls.Config{CipherSuites: []uint16{tc.suite}, RootCAs: pki.roots, ServerName: "localhost", ClientSessionCache: cache}
				conn, err := dtls.DialContext(ctx, "udp", addr, cfg)
				if err != nil {
					t.Fatalf("DialContext %d: %v", i+1, err)
				}
				st := conn.ConnectionState()
				checkState(t, st, tc)
				if st.DidResume != (i == 1) {
					t.Errorf("connection %d: DidResume %v", i+1, st.DidResume)
				}
				if i == 1 && len(st.PeerCertificates) == 0 {
					t.Error("resumed connection lost the server's certificate")
				}
				if _, err := conn.Write([]byte(goLine + "\n")); err != nil {
					t.Fatalf("Write: %v", err)
				}
				srv.waitLine(ctx, t, goLine)
				srv.send(t, opensslLine+"\n")
				conn.SetReadDeadline(time.Now().Add(opensslExitWait))
				buf := make([]byte, 1<<14)
				if _, err := conn.Read(buf); err != nil {
					t.Fatalf("Read: %v", err)
				}
				conn.Close()
			}
			srv.waitExit(t, 0)
		})
	}
}

// keyingMaterial waits for the "Keying material: HEX" line that s_server
// and s_client print with -keymatexport.
func (p *opensslProc) keyingMaterial(ctx context.Context, t *testing.T) []byte {
	t.Helper()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("openssl %s printed no keying material:\n%s", p.cmd.Args[1], p.output())
			}
			if v, found := strings.CutPrefix(strings.TrimSpace(l), "Keying material: "); found {
				b, err := hex.DecodeString(v)
				if err != nil {
					t.Fatalf("keying material %q: %v", v, err)
				}
				return b
			}
		case <-ctx.Done():
			t.Fatalf("openssl %s printed no keying material:\n%s", p.cmd.Args[1], p.output())
		}
	}
}

// srtpOpenSSLArgs makes OpenSSL negotiate SRTP_AES128_CM_SHA1_80 and print
// the 60 bytes of SRTP keying material (RFC 5764 §4.2: 2×(16+14)).
var srtpOpenSSLArgs = []string{"-use_srtp", "SRTP_AES128_CM_SHA1_80", "-keymatexport", "EXTRACTOR-dtls_srtp", "-keymatexportlen", "60"}

// checkSRTPKeys compares our SRTP keys with the keying material OpenSSL
// exported.
func checkSRTPKeys(t *testing.T, k *dtls.SRTPKeys, theirs []byte) {
	t.Helper()
	if k.Profile != dtls.SRTP_AES128_CM_HMAC_SHA1_80 {
		t.Errorf("profile %#x", k.Profile)
	}
	ours := slices.Concat(k.ClientWriteKey, k.ServerWriteKey, k.ClientWriteSalt, k.ServerWriteSalt)
	if !bytes.Equal(ours, theirs) {
		t.Errorf("SRTP keying material differs:\nours:    %x\nOpenSSL: %x", ours, theirs)
	}
}

// TestOpenSSLServerSRTP negotiates DTLS-SRTP with `openssl s_server
// -use_srtp` and compares the exported SRTP keys.
func TestOpenSSLServerSRTP(t *testing.T) {
	openssl := requireOpenSSL(t)
	pki := newTestPKI(t)
	tc := opensslCases[0]
	ctx, cancel := context.WithTimeout(context.Background(), opensslTestTimeout)
	defer cancel()
	args := []string{"s_server", "-dtls1_2", "-naccept", "1", "-cipher", tc.cipher, "-cert", pki.certFile, "-key", pki.keyFile}
	srv, addr := startOpenSSLServer(ctx, t, openssl, append(args, srtpOpenSSLArgs...))
	cfg := &dtls.Config{CipherSuites: []uint16{tc.suite}, RootCAs: pki.roots, ServerName: "localhost",
		SRTPProtectionProfiles: []uint16{dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80}}
	conn, err := dtls.DialContext(ctx, "udp", addr, cfg)
	if err != nil {
		t.Fatalf("DialContext: %v", err)
	}
	defer conn.Close()
	k, err := conn.SRTPKeys()
	if err != nil {
		t.Fatalf("SRTPKeys: %v", err)
	}
	checkSRTPKeys(t, k, srv.keyingMaterial(ctx, t))
	conn.Close()
	srv.waitExit(t, 0)
}

// TestOpenSSLClientSRTP negotiates DTLS-SRTP with `openssl s_client
// -use_srtp` against our Listener and compares the exported SRTP keys.
func TestOpenSSLClientSRTP(t *testing.T) {
	openssl := requireOpenSSL(t)
	pki := newTestPKI(t)
	tc := opensslCases[0]
	ctx, cancel := context.WithTimeout(context.Background(), opensslTestTimeout)
	defer cancel()
	cfg := &dtls.Config{CipherSuites: []uint16{tc.suite}, Certificates: []tls.Certificate{pki.cert},
		SRTPProtectionProfiles: []uint16{dtls.SRTP_AES128_CM_HMAC_SHA1_80}}
	l, err := dtls.Listen("udp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer l.Close()
	keys := make(chan *dtls.SRTPKeys, 1)
	go func() {
		defer close(keys)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if k, err := c.(*dtls.Conn).SRTPKeys(); err == nil {
			keys <- k
		}
		c.Write([]byte(goLine + "\n"))
		c.SetReadDeadline(time.Now().Add(opensslExitWait))
		c.Read(make([]byte, 100)) // until close_notify
	}()
	args := []string{"s_client", "-dtls1_2", "-connect", l.Addr().String(), "-cipher", tc.cipher, "-CAfile", pki.caFile, "-servername", "localhost"}
	cli := startOpenSSL(ctx, t, openssl, append(args, srtpOpenSSLArgs...))
	theirs := cli.keyingMaterial(ctx, t)
	cli.waitLine(ctx, t, goLine)
	cli.closeStdin()
	cli.waitExit(t, 0)
	k := <-keys
	if k == nil {
		t.Fatal("our server negotiated no SRTP profile")
	}
	checkSRTPKeys(t, k, theirs)
}

// TestOpenSSLClientFragmentedHello connects `openssl s_client -mtu 256`,
// with its default cipher list, to our Listener: its ClientHello, the
// cookie-bearing one at least, spans datagrams and used to be dropped
// silently. Then s_client resumes the session with its ticket, a still
// longer ClientHello.
func TestOpenSSLClientFragmentedHello(t *testing.T) {
	openssl := requireOpenSSL(t)
	pki := newTestPKI(t)
	const mtu = 256
	tc := opensslCases[0]
	ctx, cancel := context.WithTimeout(context.Background(), opensslTestTimeout)
	defer cancel()
	var mu sync.Mutex
	var helloLens []int
	var resumed []bool
	cfg := &dtls.Config{
		Certificates: []tls.Certificate{pki.cert},
		MTU:          mtu,
		Tracer: func(ev *dtls.TraceEvent) {
			if ev.Kind == dtls.TraceHandshakeReceived && !ev.Client && ev.HandshakeType == 1 {
				mu.Lock()
				helloLens = append(helloLens, int(ev.MessageLength))
				mu.Unlock()
			}
		},
		VerifyConnection: func(st dtls.ConnectionState) error {
			mu.Lock()
			resumed = append(resumed, st.DidResume)
			mu.Unlock()
			return nil
		},
	}
	l, err := dtls.Listen("udp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sess := filepath.Join(t.TempDir(), "session.pem")
	for i, sessArgs := range [][]string{{"-sess_out", sess}, {"-sess_in", sess}} {
		served := make(chan error, 1)
		go func() { served <- serveEcho(ctx, l, tc) }()
		args := append([]string{"s_client", "-dtls1_2", "-connect", l.Addr().String(), "-mtu", strconv.Itoa(mtu),
			"-CAfile", pki.caFile, "-servername", "localhost", "-verify_return_error"}, sessArgs...)
		cli := startOpenSSL(ctx, t, openssl, args)
		cli.waitLine(ctx, t, goLine)
		cli.send(t, opensslLine+"\n")
		cli.waitLine(ctx, t, opensslLine)
		cli.closeStdin()
		cli.waitExit(t, 0)
		if err := <-served; err != nil {
			t.Fatal(err)
		}
		if want := []string{"New, ", "Reused, "}[i]; !strings.Contains(cli.output(), want) {
			t.Errorf("s_client connection %d did not print %q:\n%s", i+1, want, cli.output())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("ClientHello lengths our connections received: %v", helloLens)
	fragmented := 0
	for _, n := range helloLens {
		// A record and handshake header (25 bytes) with the message
		// did not fit one 256-byte datagram.
		if n+25 > mtu {
			fragmented++
		}
	}
	if fragmented < 2 {
		t.Errorf("only %d of the ClientHellos were fragmented: the test does not test reassembly", fragmented)
	}
	if !slices.Equal(resumed, []bool{false, true}) {
		t.Errorf("DidResume over the two connections: %v, want [false true]", resumed)
	}
	if s := l.Stats(); len(s.Dropped) != 0 {
		t.Errorf("Listener drops: %v", s.Dropped)
	}
}
