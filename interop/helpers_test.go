package interop_test

// What every interop test shares: a throwaway PKI, peers run as processes
// with every wait bounded, free loopback ports, and our side of the data
// exchange (an echo server on a Listener, a client that sends a line and
// reads the answer).
//
// Test names are the matrix: Test<Peer>/<our role>/<feature>, where our
// role is "client" or "server". A skipped cell's reason starts with
// "not yet:" (our library lacks the feature) or "n.a.:" (the peer lacks
// it); internal/matrix turns `go test -json` output into INTEROP.md.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
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
	"github.com/dtls-go/dtls/internal/dtlstest"
)

const (
	// caseTimeout bounds one matrix cell end to end. A loopback handshake
	// takes milliseconds; a lost flight costs a 1 s retransmission.
	caseTimeout = 20 * time.Second
	// startAttempts bounds the retries when a free port we picked was
	// taken by someone else before the peer bound it.
	startAttempts = 3
	// bindWait bounds how long a peer server may take to bind its port.
	bindWait = 5 * time.Second
	// exitWait bounds how long a peer process may take to exit by itself
	// once its work is done.
	exitWait = 10 * time.Second

	pskIdentity = "dtls-go-interop"
	goLine      = "hello from dtls-go"
)

// notYet and notApplicable skip a matrix cell with the reason the matrix
// prints for it.
func notYet(t *testing.T, why string) {
	t.Helper()
	t.Skip("not yet: " + why)
}

func notApplicable(t *testing.T, why string) {
	t.Helper()
	t.Skip("n.a.: " + why)
}

// skipCell skips a matrix cell that has a reason not to run: the peer
// lacking the feature (na) wins over our library lacking it (notYet),
// since the cell stays empty even once we have it.
func skipCell(t *testing.T, notYetWhy, naWhy string) {
	t.Helper()
	if naWhy != "" {
		notApplicable(t, naWhy)
	}
	if notYetWhy != "" {
		notYet(t, notYetWhy)
	}
}

// requirePeer returns the path of a peer binary, skipping the test if it is
// missing, or failing it under CI=true: CI must never pass by not running
// the interop tests. It logs the peer's version for the matrix.
func requirePeer(t *testing.T, peer, bin string, versionArgs ...string) string {
	t.Helper()
	path := dtlstest.LookPath(t, bin)
	if versionArgs != nil {
		out, _ := exec.Command(path, versionArgs...).CombinedOutput()
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		logVersion(t, peer, first)
	}
	return path
}

// logVersion records a peer's version in the test output, where
// internal/matrix finds it.
func logVersion(t *testing.T, peer, version string) {
	t.Helper()
	t.Logf("peer-version: %s: %s", peer, version)
}

// proc is a running peer process whose stdout lines the test can wait for
// and whose stdin it can type into.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout, closed at EOF
	done  chan struct{}
	err   error // from Wait, once done is closed

	mu             sync.Mutex
	stdout, stderr strings.Builder // for failure reports
}

// startProc runs bin with args until the test ends: t.Cleanup kills it if
// it is still running and logs its output if the test failed.
func startProc(ctx context.Context, t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	t.Logf("running: %s %s", filepath.Base(bin), strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = time.Second // don't let a stray pipe holder stall Wait
	p := &proc{name: filepath.Base(bin), cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
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
		t.Fatalf("starting %s: %v", p.name, err)
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
		p.stdin.Close()
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
		}
		<-p.done // bounded: the process is dead and WaitDelay caps the pipes
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.output())
		}
	})
	return p
}

// startServerProc starts a peer server on a free loopback UDP port and
// waits until the port is bound. args builds the command line for a port.
// If the port was taken in the meantime the peer exits, and we try another.
func startServerProc(ctx context.Context, t *testing.T, bin string, args func(port int) []string) (*proc, int) {
	t.Helper()
	return startServerProcOffset(ctx, t, bin, 0, args)
}

// startServerProcOffset is startServerProc for peers that bind more than
// one port (coap-server: CoAP on port, CoAP over DTLS on port+1). port is
// the one we talk to; args gets it and derives the rest, and both it and
// port-offset were free a moment ago.
func startServerProcOffset(ctx context.Context, t *testing.T, bin string, offset int, args func(port int) []string) (*proc, int) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := freeUDPPort(t) + offset
		p := startProc(ctx, t, bin, args(port)...)
		if p.waitBound(ctx, port) {
			return p, port
		}
		if ctx.Err() != nil || attempt == startAttempts {
			t.Fatalf("%s did not bind UDP port %d (attempt %d):\n%s", p.name, port, attempt, p.output())
		}
		t.Logf("%s did not start on port %d, retrying:\n%s", p.name, port, p.output())
		p.cmd.Process.Kill()
	}
}

// waitBound polls the kernel's socket tables until something listens on
// 127.0.0.1:port (or any address) over UDP; false if the process exited or
// bindWait passed first.
func (p *proc) waitBound(ctx context.Context, port int) bool {
	deadline := time.Now().Add(bindWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-p.done:
			return false
		default:
		}
		bound, ok := udpPortBound(port)
		if !ok {
			// No /proc/net/udp (not Linux): give the peer a moment.
			time.Sleep(300 * time.Millisecond)
			return true
		}
		if bound {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// udpPortBound reports whether a UDP socket is bound to port, from
// /proc/net/udp{,6}; ok is false where those files do not exist.
func udpPortBound(port int) (bound, ok bool) {
	want := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		ok = true
		for l := range strings.Lines(string(b)) {
			fields := strings.Fields(l)
			if len(fields) > 2 && strings.HasSuffix(fields[1], want) {
				return true, true
			}
		}
	}
	return false, ok
}

// waitFor reads stdout until a line containing want; false if the process
// ended or ctx expired first.
func (p *proc) waitFor(ctx context.Context, want string) bool {
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return false
			}
			if strings.Contains(l, want) {
				return true
			}
		case <-ctx.Done():
			return false
		}
	}
}

func (p *proc) waitLine(ctx context.Context, t *testing.T, want string) {
	t.Helper()
	if !p.waitFor(ctx, want) {
		t.Fatalf("%s never printed %q (%v); output:\n%s", p.name, want, context.Cause(ctx), p.output())
	}
}

// valueLine reads stdout until a line starting with prefix and returns
// the rest of it; the test fails if none comes.
func (p *proc) valueLine(ctx context.Context, t *testing.T, prefix string) string {
	t.Helper()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s never printed %q; output:\n%s", p.name, prefix, p.output())
			}
			if v, found := strings.CutPrefix(l, prefix); found {
				return strings.TrimSpace(v)
			}
		case <-ctx.Done():
			t.Fatalf("%s never printed %q (%v); output:\n%s", p.name, prefix, context.Cause(ctx), p.output())
		}
	}
}

func (p *proc) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, s); err != nil {
		t.Fatalf("writing to %s's stdin: %v", p.name, err)
	}
}

// waitExit waits, bounded, for the process to end by itself with code.
func (p *proc) waitExit(t *testing.T, code int) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(exitWait):
		t.Fatalf("%s did not exit; output:\n%s", p.name, p.output())
	}
	if got := p.cmd.ProcessState.ExitCode(); got != code {
		t.Errorf("%s exited with %d (%v), want %d", p.name, got, p.err, code)
	}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "stdout:\n" + p.stdout.String() + "stderr:\n" + p.stderr.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// freeUDPPort returns a loopback UDP port that was free a moment ago:
// bound, then released for the peer to take.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func addrOf(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func randomPSK(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 16)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// testPKI is a P-256 CA, a server leaf for localhost/127.0.0.1 and a client
// leaf it signed, as PEM files for the peers and as values for us, an
// RSA-2048 server leaf for the same names from the same CA, and a server
// and a client leaf with P-384 keys.
type testPKI struct {
	caFile                        string
	serverCert, serverKey         string // files
	clientCert, clientKey         string // files
	rsaServerCert, rsaServerKey   string // files
	p384ServerCert, p384ServerKey string // files
	p384ClientCert, p384ClientKey string // files
	roots                         *x509.CertPool
	server, client, rsaServer     tls.Certificate
	p384Server, p384Client        tls.Certificate
}

// rsaKeyBits is the size of the RSA server key: 2048 is what RSA
// deployments use and what every peer accepts.
const rsaKeyBits = 2048

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca := dtlstest.NewCA(t, dtlstest.Spec{CommonName: "dtls-go interop test CA"})
	p := &testPKI{caFile: filepath.Join(dir, "ca.pem"), roots: ca.Pool}
	ca.WriteFile(t, p.caFile)

	leaf := func(serial int64, kind, name string, usage x509.ExtKeyUsage, certFile, keyFile string) tls.Certificate {
		names := []string{name}
		if usage == x509.ExtKeyUsageServerAuth {
			names = append(names, "127.0.0.1")
		}
		c := ca.Issue(t, dtlstest.Spec{Key: dtlstest.NewKey(t, kind), Serial: serial, Names: names,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}})
		c.WriteFiles(t, certFile, keyFile)
		return tls.Certificate{Certificate: c.TLS.Certificate, PrivateKey: c.Key}
	}
	p.serverCert, p.serverKey = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	p.clientCert, p.clientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	p.server = leaf(2, dtlstest.P256, "localhost", x509.ExtKeyUsageServerAuth, p.serverCert, p.serverKey)
	p.client = leaf(3, dtlstest.P256, "dtls-go-client", x509.ExtKeyUsageClientAuth, p.clientCert, p.clientKey)
	p.rsaServerCert, p.rsaServerKey = filepath.Join(dir, "server-rsa.pem"), filepath.Join(dir, "server-rsa.key")
	p.rsaServer = leaf(4, dtlstest.RSA, "localhost", x509.ExtKeyUsageServerAuth, p.rsaServerCert, p.rsaServerKey)
	p.p384ServerCert, p.p384ServerKey = filepath.Join(dir, "server-p384.pem"), filepath.Join(dir, "server-p384.key")
	p.p384ClientCert, p.p384ClientKey = filepath.Join(dir, "client-p384.pem"), filepath.Join(dir, "client-p384.key")
	p.p384Server = leaf(5, dtlstest.P384, "localhost", x509.ExtKeyUsageServerAuth, p.p384ServerCert, p.p384ServerKey)
	p.p384Client = leaf(6, dtlstest.P384, "dtls-go-client", x509.ExtKeyUsageClientAuth, p.p384ClientCert, p.p384ClientKey)
	return p
}

// want is what a matrix cell expects of our side's ConnectionState.
type want struct {
	suite      uint16
	psk        bool        // PSKIdentity must be pskIdentity
	peerCertCN string      // non-empty: the peer presented this leaf
	noEMS      bool        // the peer does not negotiate the extended master secret
	cid        int         // non-zero: both connection IDs have this length
	srtp       uint16      // non-zero: the negotiated SRTP protection profile
	alpn       string      // the negotiated ALPN protocol, "" for none
	resumed    bool        // the handshake resumed a session
	v13        bool        // DTLS 1.3 (no extended master secret there)
	pskID      string      // non-empty: PSKIdentity must be this (a peer's own identity)
	noGroup    bool        // no key exchange group (DTLS 1.3 psk_ke)
	group      tls.CurveID // non-zero: the key exchange group must be this
	early      bool        // DTLS 1.3 0-RTT: EarlyDataAccepted must be set
	// srtpKM, if not nil, delivers the peer's SRTP keying material
	// (RFC 5764 §4.2), which must equal ours.
	srtpKM <-chan []byte
	// updateKeys: our side sends a KeyUpdate(update_requested) after the
	// handshake (DTLS 1.3, Conn.UpdateKeys) and reads on so that the
	// peer's ACK and its own KeyUpdate arrive.
	updateKeys bool
	// keyUpdateDone, if set, reports that the KeyUpdate exchange is over
	// (the peer ACKed ours and sent its own): afterExchange13 stops
	// reading then.
	keyUpdateDone func() bool
	// requestCert: our server requests a client certificate after the
	// handshake (DTLS 1.3, Conn.RequestClientCertificate) and must get
	// one.
	requestCert bool
}

// afterExchange13 reads on after a client's exchange when w.updateKeys,
// so that the peer's ACK of our KeyUpdate (which moves our write keys)
// and its KeyUpdate in answer are processed: until w.keyUpdateDone says
// both came (or for a second without it, up to exitWait with it, since
// a peer answers from its own goroutine when it gets to it); it stops at
// the peer's close_notify or any error.
func afterExchange13(conn *dtls.Conn, w want) {
	if !w.updateKeys {
		return
	}
	buf := make([]byte, 1<<14)
	reads := 10
	if w.keyUpdateDone != nil {
		reads = int(exitWait / (100 * time.Millisecond))
	}
	for range reads {
		if w.keyUpdateDone != nil && w.keyUpdateDone() {
			return
		}
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := conn.Read(buf); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return
			}
		}
	}
}

// startUpdateKeys13 sends our KeyUpdate when w asks for one.
func startUpdateKeys13(conn *dtls.Conn, w want) error {
	if !w.updateKeys {
		return nil
	}
	if err := conn.UpdateKeys(true); err != nil {
		return fmt.Errorf("UpdateKeys: %w", err)
	}
	return nil
}

func (w want) check(st dtls.ConnectionState) error {
	var errs []error
	if !st.HandshakeComplete {
		errs = append(errs, errors.New("HandshakeComplete is false"))
	}
	if w.v13 {
		if st.Version != dtls.VersionDTLS13 {
			errs = append(errs, fmt.Errorf("Version %#x, want DTLS 1.3", st.Version))
		}
		w.noEMS = true // RFC 8446 has no extended master secret: its key schedule covers the transcript
	} else if st.Version != dtls.VersionDTLS12 {
		errs = append(errs, fmt.Errorf("Version %#x, want DTLS 1.2", st.Version))
	}
	if w.suite != 0 && st.CipherSuite != w.suite {
		errs = append(errs, fmt.Errorf("CipherSuite %s, want %s", dtls.CipherSuiteName(st.CipherSuite), dtls.CipherSuiteName(w.suite)))
	}
	if !w.noEMS && !st.ExtendedMasterSecret {
		errs = append(errs, errors.New("extended master secret not negotiated"))
	}
	if w.noGroup && st.CurveID != 0 {
		errs = append(errs, fmt.Errorf("key exchange over %v, want none (psk_ke)", st.CurveID))
	}
	if w.group != 0 && st.CurveID != w.group {
		errs = append(errs, fmt.Errorf("key exchange over %v, want %v", st.CurveID, w.group))
	}
	if w.pskID != "" && string(st.PSKIdentity) != w.pskID {
		errs = append(errs, fmt.Errorf("PSKIdentity %q, want %q", st.PSKIdentity, w.pskID))
	}
	if w.psk && string(st.PSKIdentity) != pskIdentity {
		errs = append(errs, fmt.Errorf("PSKIdentity %q, want %q", st.PSKIdentity, pskIdentity))
	}
	if w.srtp != 0 && st.SRTPProtectionProfile != w.srtp {
		errs = append(errs, fmt.Errorf("SRTP profile %#04x, want %#04x", st.SRTPProtectionProfile, w.srtp))
	}
	if st.NegotiatedProtocol != w.alpn {
		errs = append(errs, fmt.Errorf("ALPN protocol %q, want %q", st.NegotiatedProtocol, w.alpn))
	}
	if w.early && !st.EarlyDataAccepted {
		errs = append(errs, errors.New("EarlyDataAccepted is false: the 0-RTT data was rejected"))
	}
	if st.DidResume != w.resumed {
		errs = append(errs, fmt.Errorf("DidResume %v, want %v", st.DidResume, w.resumed))
	}
	if w.cid != 0 && (len(st.LocalConnectionID) != w.cid || len(st.RemoteConnectionID) != w.cid) {
		errs = append(errs, fmt.Errorf("connection IDs %x (local) and %x (remote), want %d bytes each", st.LocalConnectionID, st.RemoteConnectionID, w.cid))
	}
	if w.srtpKM != nil {
		select {
		case peer := <-w.srtpKM:
			ours, err := st.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, len(peer))
			if err != nil || !bytes.Equal(ours, peer) {
				errs = append(errs, fmt.Errorf("SRTP keying material differs from the peer's (%v)", err))
			}
		case <-time.After(exitWait):
			errs = append(errs, errors.New("no SRTP keying material from the peer"))
		}
	}
	if w.peerCertCN != "" {
		if len(st.PeerCertificates) == 0 {
			errs = append(errs, errors.New("the peer presented no certificate"))
		} else if cn := st.PeerCertificates[0].Subject.CommonName; cn != w.peerCertCN {
			errs = append(errs, fmt.Errorf("peer certificate CN %q, want %q", cn, w.peerCertCN))
		}
	}
	return errors.Join(errs...)
}

// pskConfig returns our Config for PSK with suite, identity checked on the
// server side.
func pskConfig(psk []byte, suite uint16) *dtls.Config {
	return &dtls.Config{
		CipherSuites: []uint16{suite},
		PSK: func(identity []byte) ([]byte, error) {
			return psk, nil
		},
		PSKIdentity: []byte(pskIdentity),
	}
}

// serverPSKConfig is pskConfig for a server, which accepts only pskIdentity.
func serverPSKConfig(psk []byte, suite uint16) *dtls.Config {
	cfg := pskConfig(psk, suite)
	cfg.PSKIdentity = nil
	cfg.PSK = func(identity []byte) ([]byte, error) {
		if string(identity) != pskIdentity {
			return nil, fmt.Errorf("unexpected PSK identity %q", identity)
		}
		return psk, nil
	}
	return cfg
}

// listen starts our Listener on a free loopback port, closed by t.Cleanup.
func listen(t *testing.T, cfg *dtls.Config) *dtls.Listener {
	t.Helper()
	l, err := dtls.Listen("udp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func listenerPort(l *dtls.Listener) int { return l.Addr().(*net.UDPAddr).Port }

// echoResult is how our echo server's connection went.
type echoResult struct {
	echoed int   // datagrams echoed
	err    error // nil after the peer's close_notify
}

// serveEcho accepts one connection on l, checks its state with w, then
// echoes every datagram until the peer's close_notify (or ctx ends, which
// the result reports as an error). If greet is set it first sends goLine.
func serveEcho(ctx context.Context, l *dtls.Listener, w want, greet bool) <-chan echoResult {
	return serveEchoConn(ctx, l, w, greet, nil)
}

// serveEchoConn is serveEcho that also hands the connection, once its
// state checks out, to conns (if not nil), for checks of its own.
func serveEchoConn(ctx context.Context, l *dtls.Listener, w want, greet bool, conns chan<- *dtls.Conn) <-chan echoResult {
	res := make(chan echoResult, 1)
	go func() {
		var r echoResult
		defer func() { res <- r }()
		c, err := l.Accept()
		if err != nil {
			r.err = fmt.Errorf("Accept: %w", err)
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		dc := c.(*dtls.Conn)
		if err := dc.HandshakeContext(ctx); err != nil {
			r.err = fmt.Errorf("server Handshake: %w", err)
			return
		}
		if err := w.check(dc.ConnectionState()); err != nil {
			r.err = fmt.Errorf("server: %w", err)
			return
		}
		if conns != nil {
			conns <- dc
		}
		if err := startUpdateKeys13(dc, w); err != nil {
			r.err = fmt.Errorf("server: %w", err)
			return
		}
		if w.requestCert {
			if err := dc.RequestClientCertificate(ctx); err != nil {
				r.err = fmt.Errorf("server RequestClientCertificate: %w", err)
				return
			}
			if n := len(dc.ConnectionState().PeerCertificates); n == 0 {
				r.err = errors.New("server: no client certificate after RequestClientCertificate")
				return
			}
		}
		if greet {
			if _, err := c.Write([]byte(goLine + "\n")); err != nil {
				r.err = fmt.Errorf("server Write: %w", err)
				return
			}
		}
		buf := make([]byte, 1<<14)
		for {
			n, err := c.Read(buf)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				r.err = fmt.Errorf("server Read after %d echoes: %w", r.echoed, err)
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				r.err = fmt.Errorf("server Write: %w", err)
				return
			}
			r.echoed++
		}
	}()
	return res
}

// waitEcho waits for serveEcho's result; it must have echoed at least once
// and, if wantClose, ended with the peer's close_notify.
func waitEcho(ctx context.Context, t *testing.T, res <-chan echoResult, wantClose bool) {
	t.Helper()
	select {
	case r := <-res:
		if r.echoed == 0 {
			t.Errorf("our server echoed nothing (%v)", r.err)
		} else if r.err != nil && wantClose {
			t.Errorf("our server: %v", r.err)
		}
	case <-ctx.Done():
		t.Fatal("our server did not see the connection end")
	}
}

// dialAndExchange dials addr with cfg, checks the state with w, writes
// line and waits for reply (the peer's echo or answer), then closes. It
// returns the closed Conn, for more checks of its ConnectionState.
func dialAndExchange(ctx context.Context, t *testing.T, addr string, cfg *dtls.Config, w want, line, reply string) *dtls.Conn {
	t.Helper()
	conn, err := dtls.DialContext(ctx, "udp", addr, cfg)
	if err != nil {
		t.Fatalf("DialContext(%s): %v", addr, err)
	}
	defer conn.Close()
	if err := w.check(conn.ConnectionState()); err != nil {
		t.Error(err)
	}
	if err := startUpdateKeys13(conn, w); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(line)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(exitWait))
	buf := make([]byte, 1<<14)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got := string(buf[:n]); got != reply {
		t.Errorf("Read %q, want %q", got, reply)
	}
	afterExchange13(conn, w)
	if err := conn.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	return conn
}

// countingSessionCache is a ClientSessionCache that counts the sessions
// stored in it, so that a resumption cell can tell "no session to resume"
// from "the peer refused to resume".
type countingSessionCache struct {
	dtls.ClientSessionCache
	mu sync.Mutex
	n  int
}

func (c *countingSessionCache) Put(key string, cs *dtls.ClientSessionState) {
	c.mu.Lock()
	if cs != nil {
		c.n++
	}
	c.mu.Unlock()
	c.ClientSessionCache.Put(key, cs)
}

func (c *countingSessionCache) puts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// mtuTracer checks, through our Tracer, that no datagram either way was
// larger than mtu and that something was fragmented.
type mtuTracer struct {
	// peerSlack is how far over the MTU the peer's datagrams may be,
	// for peers known to count the MTU differently.
	peerSlack int

	mu                 sync.Mutex
	maxSent, maxRecv   int
	fragmentedSent     bool
	largestRecvMessage uint32
}

func (m *mtuTracer) trace(ev *dtls.TraceEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch ev.Kind {
	case dtls.TraceDatagramSent:
		m.maxSent = max(m.maxSent, ev.Length)
	case dtls.TraceDatagramReceived:
		m.maxRecv = max(m.maxRecv, ev.Length)
	case dtls.TraceHandshakeSent:
		if ev.FragmentLength < ev.MessageLength {
			m.fragmentedSent = true
		}
	case dtls.TraceHandshakeReceived:
		m.largestRecvMessage = max(m.largestRecvMessage, ev.MessageLength)
	}
}

func (m *mtuTracer) check(t *testing.T, mtu int, weAreClient bool) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.maxSent > mtu {
		t.Errorf("we sent a %d-byte datagram with MTU %d", m.maxSent, mtu)
	}
	if m.maxRecv > mtu+m.peerSlack {
		t.Errorf("the peer sent a %d-byte datagram with MTU %d", m.maxRecv, mtu)
	} else if m.maxRecv > mtu {
		t.Logf("interop-note: the peer sent a %d-byte datagram with MTU %d, within its known slack of %d bytes", m.maxRecv, mtu, m.peerSlack)
	}
	if weAreClient {
		if m.largestRecvMessage <= uint32(mtu) {
			t.Errorf("largest handshake message received is %d bytes: nothing needed reassembly at MTU %d", m.largestRecvMessage, mtu)
		}
	} else if !m.fragmentedSent {
		t.Errorf("no handshake message was fragmented at MTU %d", mtu)
	}
}
