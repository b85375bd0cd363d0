package dtls_test

// Recorded-transcript replay tests, as crypto/tls has them
// (handshake_test.go and testdata/Client-TLSv12-* there).
//
// Each test runs one of our Conns, with deterministic randomness and
// clock, against a peer. With -update the peer is a real OpenSSL
// s_server or s_client over loopback, and every datagram our side reads
// and writes is recorded under testdata/replay/. Without -update (every
// normal run, and CI) no OpenSSL is needed: the same Conn talks to a
// replayingConn that hands it the recorded datagrams and fails on the
// first byte it writes that differs from the recording. A change of our
// bytes on the wire therefore fails the test, and -update shows it as a
// diff of the transcript in review.
//
// Determinism. Our side draws from two sources of randomness and from
// a clock:
//   - Config.Rand: randoms, session IDs, cookie secret, ticket nonces;
//     the test sets a seeded ChaCha8.
//   - crypto/ecdh and crypto/ecdsa key generation and ECDSA signing: since
//     Go 1.26 these ignore the io.Reader they are given (unless
//     GODEBUG=cryptocustomrand=1) and draw from crypto/rand's internal
//     source, so Config.Rand does not reach them. testing/cryptotest's
//     SetGlobalRandom (Go 1.26) makes that source deterministic for the
//     duration of the test; it refuses parallel tests, so these tests do
//     not call t.Parallel. Go does not promise that the way its crypto
//     uses randomness stays the same between releases: a new Go may need
//     an -update, which the failure message says.
//   - The clock: cookies carry a microsecond timestamp and tickets their
//     creation time. Config.Time cannot simply be frozen, as crypto/tls
//     does, because Conn.Handshake puts Config.Time()+HandshakeTimeout
//     on a real context (conn.go), so a fixed past time ends every
//     handshake at once. Both runs therefore happen inside a
//     testing/synctest bubble, whose clock starts at 2000-01-01 00:00 UTC
//     and moves only when every goroutine in it is durably blocked. When
//     replaying nothing blocks; when recording, our side waits on a
//     channel fed from outside the bubble, which does not count. So the
//     clock reads 2000-01-01 00:00 UTC throughout both, and no timer of
//     ours fires: a recording has no retransmission of ours in it.
//
// The certificates are fixed files in testdata/replay/ (made once, valid
// until 2100), since the transcripts contain them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"

	"crypto/tls"
	"crypto/x509"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/internal/dtlstest"
)

var update = flag.Bool("update", false, "record the testdata/replay transcripts against OpenSSL (needs openssl)")

const (
	replayDir = "testdata/replay"
	// replayPSK and replayPSKIdentity are fixed: they are in the
	// transcripts' key derivation.
	replayPSKIdentity = "dtls-go-replay"
	// replayMaxEvents bounds the events a transcript may hold.
	replayMaxEvents = 256
	// replayTimeout bounds one recording end to end.
	replayTimeout = 30 * time.Second
)

var replayPSK = []byte("dtls-go replay psk 0123456789abc")

// replayCase is one transcript: our side, the suite, and OpenSSL's
// options for it.
type replayCase struct {
	name   string // the file under testdata/replay
	client bool   // our side is the client (OpenSSL runs s_server)
	suite  uint16
	cipher string // OpenSSL's name for suite
	psk    bool
}

var replayCases = []replayCase{
	{name: "Client-DTLSv12-ECDHE-ECDSA-AES128-GCM-SHA256", client: true,
		suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, cipher: "ECDHE-ECDSA-AES128-GCM-SHA256"},
	{name: "Client-DTLSv12-PSK-AES128-CCM8", client: true,
		suite: dtls.TLS_PSK_WITH_AES_128_CCM_8, cipher: "PSK-AES128-CCM8", psk: true},
	{name: "Server-DTLSv12-ECDHE-ECDSA-AES128-GCM-SHA256",
		suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, cipher: "ECDHE-ECDSA-AES128-GCM-SHA256"},
	{name: "Server-DTLSv12-PSK-AES128-CCM8",
		suite: dtls.TLS_PSK_WITH_AES_128_CCM_8, cipher: "PSK-AES128-CCM8", psk: true},
}

// TestReplay runs every transcript; with -update it records them first.
func TestReplay(t *testing.T) {
	var pki *replayPKI
	if *update {
		pki = writeReplayPKI(t)
	} else {
		pki = loadReplayPKI(t)
	}
	for _, rc := range replayCases {
		t.Run(rc.name, func(t *testing.T) {
			file := filepath.Join(replayDir, rc.name)
			if *update {
				tr := recordReplay(t, rc, pki)
				if err := os.WriteFile(file, tr.marshal(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (record it with go test -run TestReplay -update)", err)
			}
			tr, err := parseTranscript(b)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			rp := &replayingConn{tr: tr}
			var err2 error
			synctest.Test(t, func(t *testing.T) { err2 = runReplaySide(t, rc, pki, rp, nil) })
			if err := err2; err != nil {
				t.Fatalf("%v\n(if our bytes on the wire changed on purpose, or Go changed how its crypto draws randomness, re-record with go test -run TestReplay -update and review the diff)", err)
			}
			if rp.next != len(tr.events) {
				t.Fatalf("our side stopped after event %d of %d; next: %s", rp.next, len(tr.events), tr.events[rp.next])
			}
		})
	}
}

// replayConfig is our side's Config: everything that reaches the wire is
// fixed. It also fixes crypto/rand's source for the test. It must be
// called inside the test's synctest bubble.
func replayConfig(t *testing.T, rc replayCase, pki *replayPKI) *dtls.Config {
	cryptotest.SetGlobalRandom(t, 1)
	cfg := &dtls.Config{
		CipherSuites: []uint16{rc.suite},
		// The recordings are DTLS 1.2 handshakes with 1.2-only peers
		// (a 1.3-capable server would also mark its random with the
		// downgrade sentinel, RFC 8446 §4.1.3).
		MaxVersion: dtls.VersionDTLS12,
		Rand:       rand.NewChaCha8([32]byte{'d', 't', 'l', 's', '-', 'g', 'o'}),
		// Time is the bubble's clock: see the top of the file.
	}
	switch {
	case rc.psk:
		cfg.PSK = func(id []byte) ([]byte, error) {
			if !rc.client && string(id) != replayPSKIdentity {
				return nil, fmt.Errorf("unexpected PSK identity %q", id)
			}
			return replayPSK, nil
		}
		cfg.PSKIdentity = []byte(replayPSKIdentity)
	case rc.client:
		cfg.RootCAs, cfg.ServerName = pki.roots, "localhost"
	default:
		cfg.Certificates = []tls.Certificate{pki.cert}
	}
	return cfg
}

// goLine and opensslLine (interop_openssl_test.go) are the application
// data: ours first, then OpenSSL's.

// runReplaySide is our side's whole script, the same when recording and
// replaying: handshake, write goLine, read opensslLine, and then the
// client closes, while the server reads the peer's close_notify and
// closes. peer, when recording, makes OpenSSL do its part.
func runReplaySide(t *testing.T, rc replayCase, pki *replayPKI, conn net.Conn, peer *replayPeer) error {
	cfg := replayConfig(t, rc, pki)
	var c *dtls.Conn
	if rc.client {
		c = dtls.Client(conn, cfg)
	} else {
		c = dtls.Server(conn, cfg)
	}
	defer c.Close()
	if err := c.Handshake(); err != nil {
		return fmt.Errorf("Handshake: %w", err)
	}
	st := c.ConnectionState()
	if st.CipherSuite != rc.suite {
		return fmt.Errorf("suite %#04x, want %#04x", st.CipherSuite, rc.suite)
	}
	if _, err := c.Write([]byte(goLine + "\n")); err != nil {
		return fmt.Errorf("Write: %w", err)
	}
	if peer != nil {
		peer.proc.waitLine(peer.ctx, t, goLine)
		peer.proc.send(t, opensslLine+"\n")
	}
	buf := make([]byte, 1<<14)
	n, err := c.Read(buf)
	if err != nil {
		return fmt.Errorf("Read: %w", err)
	}
	if got := string(buf[:n]); got != opensslLine+"\n" {
		return fmt.Errorf("Read %q, want %q", got, opensslLine+"\n")
	}
	if !rc.client {
		if peer != nil {
			peer.proc.closeStdin() // s_client sends close_notify
		}
		if n, err := c.Read(buf); !errors.Is(err, io.EOF) {
			return fmt.Errorf("Read after the peer's close_notify: %d bytes, %v; want io.EOF", n, err)
		}
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("Close: %w", err)
	}
	return nil
}

// ---- transcripts ----

type eventKind byte

const (
	evWrite eventKind = '>' // our side wrote a datagram
	evRead  eventKind = '<' // our side read a datagram
)

type replayEvent struct {
	kind eventKind
	data []byte
}

func (e replayEvent) String() string {
	if e.kind == evWrite {
		return fmt.Sprintf("write of %d bytes", len(e.data))
	}
	return fmt.Sprintf("read of %d bytes", len(e.data))
}

// transcript is what our side saw, in the order it saw it.
type transcript struct {
	comments []string
	remote   string // the peer's address; the server's cookie binds it
	events   []replayEvent
}

// marshal writes the transcript as text: comment lines, the peer's
// address, then one line per event followed by its bytes in hex, 16 to a
// line, so that a change reads as a diff.
func (tr *transcript) marshal() []byte {
	var b bytes.Buffer
	for _, c := range tr.comments {
		fmt.Fprintf(&b, "# %s\n", c)
	}
	fmt.Fprintf(&b, "remote %s\n", tr.remote)
	for i, e := range tr.events {
		switch e.kind {
		case evWrite:
			fmt.Fprintf(&b, "> %d ours %d bytes\n", i, len(e.data))
		case evRead:
			fmt.Fprintf(&b, "< %d peer %d bytes\n", i, len(e.data))
		}
		for off := 0; off < len(e.data); off += 16 {
			line := e.data[off:min(off+16, len(e.data))]
			fmt.Fprintf(&b, "    %s\n", strings.TrimSpace(fmt.Sprintf("% x", line)))
		}
	}
	return b.Bytes()
}

func parseTranscript(b []byte) (*transcript, error) {
	tr := &transcript{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "":
		case strings.HasPrefix(line, "# "):
			tr.comments = append(tr.comments, line[2:])
		case strings.HasPrefix(line, "remote "):
			tr.remote = line[len("remote "):]
		case strings.HasPrefix(line, "    "):
			if len(tr.events) == 0 {
				return nil, fmt.Errorf("line %d: bytes before any event", n)
			}
			d, err := hex.DecodeString(strings.ReplaceAll(line[4:], " ", ""))
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", n, err)
			}
			e := &tr.events[len(tr.events)-1]
			e.data = append(e.data, d...)
		case line[0] == byte(evWrite) || line[0] == byte(evRead):
			if len(tr.events) == replayMaxEvents {
				return nil, fmt.Errorf("more than %d events", replayMaxEvents)
			}
			tr.events = append(tr.events, replayEvent{kind: eventKind(line[0])})
		default:
			return nil, fmt.Errorf("line %d: unknown line %q", n, line)
		}
	}
	if _, err := net.ResolveUDPAddr("udp", tr.remote); err != nil {
		return nil, fmt.Errorf("remote address: %v", err)
	}
	for i, e := range tr.events {
		if len(e.data) == 0 {
			return nil, fmt.Errorf("event %d (%s) has %d bytes", i, e, len(e.data))
		}
	}
	return tr, sc.Err()
}

// ---- replaying ----

// replayingConn is a net.Conn that plays the peer from a transcript: a
// Read returns the next recorded datagram, a Write must equal the next
// recorded one. Our Conn reads and writes in the caller's goroutine, so
// the order of its calls is as deterministic as its bytes.
type replayingConn struct {
	tr   *transcript
	next int
	err  error // the first mismatch; it sticks
}

var errReplayEnd = errors.New("replay: transcript ended")

func (c *replayingConn) expect(kind eventKind) (replayEvent, error) {
	if c.err != nil {
		return replayEvent{}, c.err
	}
	if c.next == len(c.tr.events) {
		c.err = fmt.Errorf("%w after %d events", errReplayEnd, c.next)
		return replayEvent{}, c.err
	}
	e := c.tr.events[c.next]
	if e.kind != kind {
		what := "writes"
		if kind == evRead {
			what = "reads"
		}
		c.err = fmt.Errorf("replay: event %d: our side %s, the transcript has a %s", c.next, what, e)
		return replayEvent{}, c.err
	}
	c.next++
	return e, nil
}

func (c *replayingConn) Read(b []byte) (int, error) {
	e, err := c.expect(evRead)
	if err != nil {
		return 0, err
	}
	if len(b) < len(e.data) {
		c.err = fmt.Errorf("replay: event %d: read buffer of %d bytes for a %d-byte datagram", c.next-1, len(b), len(e.data))
		return 0, c.err
	}
	return copy(b, e.data), nil
}

func (c *replayingConn) Write(b []byte) (int, error) {
	e, err := c.expect(evWrite)
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(b, e.data) {
		i := 0
		for i < len(b) && i < len(e.data) && b[i] == e.data[i] {
			i++
		}
		c.err = fmt.Errorf("replay: event %d: our datagram differs from the recording at byte %d of %d (recorded %d):\nours:     %x\nrecorded: %x",
			c.next-1, i, len(b), len(e.data), b, e.data)
		return 0, c.err
	}
	return len(b), nil
}

func (c *replayingConn) Close() error { return nil }
func (c *replayingConn) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4433}
}
func (c *replayingConn) RemoteAddr() net.Addr {
	a, _ := net.ResolveUDPAddr("udp", c.tr.remote)
	return a
}
func (c *replayingConn) SetDeadline(time.Time) error      { return nil }
func (c *replayingConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayingConn) SetWriteDeadline(time.Time) error { return nil }

// ---- recording ----

// recordingConn is our side's end of a real UDP socket while recording:
// it runs in the test's synctest bubble, and records what our side reads
// and writes. The datagrams it reads come from a goroutine outside the
// bubble that reads the socket: a wait on that channel does not count as
// durably blocked, so the bubble's clock stays where it started, as it
// does when replaying.
type recordingConn struct {
	uc   *net.UDPConn
	peer *net.UDPAddr // the server side writes to it; nil: uc is connected
	in   <-chan []byte

	mu sync.Mutex
	tr transcript
}

func (c *recordingConn) add(kind eventKind, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tr.events = append(c.tr.events, replayEvent{kind, bytes.Clone(b)})
}

func (c *recordingConn) Read(b []byte) (int, error) {
	d, ok := <-c.in
	if !ok {
		return 0, net.ErrClosed
	}
	n := copy(b, d)
	c.add(evRead, b[:n])
	return n, nil
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.add(evWrite, b)
	if c.peer == nil {
		return c.uc.Write(b)
	}
	return c.uc.WriteToUDP(b, c.peer)
}

func (c *recordingConn) Close() error        { return nil }
func (c *recordingConn) LocalAddr() net.Addr { return c.uc.LocalAddr() }
func (c *recordingConn) RemoteAddr() net.Addr {
	if c.peer != nil {
		return c.peer
	}
	return c.uc.RemoteAddr()
}

// Deadlines are not passed on: the bubble's clock does not move while
// recording, so no timer of ours would fire; the recording is bounded by
// replayTimeout instead, which closes the socket.
func (c *recordingConn) SetDeadline(time.Time) error      { return nil }
func (c *recordingConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }

// replayPeer is the OpenSSL process during a recording.
type replayPeer struct {
	ctx  context.Context
	proc *opensslProc
}

// recordReplay runs the case against OpenSSL and returns the transcript.
func recordReplay(t *testing.T, rc replayCase, pki *replayPKI) *transcript {
	openssl := requireOpenSSL(t)
	ctx, cancel := context.WithTimeout(context.Background(), replayTimeout)
	defer cancel()
	version, _ := exec.Command(openssl, "version").Output()

	var args []string
	if rc.client {
		args = []string{"s_server", "-dtls1_2", "-naccept", "1", "-cipher", rc.cipher}
		if rc.psk {
			args = append(args, "-nocert", "-psk", hex.EncodeToString(replayPSK), "-psk_identity", replayPSKIdentity)
		} else {
			args = append(args, "-cert", pki.certFile, "-key", pki.keyFile)
		}
	} else {
		args = []string{"s_client", "-dtls1_2", "-cipher", rc.cipher}
		if rc.psk {
			args = append(args, "-psk", hex.EncodeToString(replayPSK), "-psk_identity", replayPSKIdentity)
		} else {
			args = append(args, "-CAfile", pki.caFile, "-servername", "localhost",
				"-verify_hostname", "localhost", "-verify_return_error")
		}
	}
	shown := strings.Join(args, " ")

	// The socket, and the first datagram when the peer is the client.
	in := make(chan []byte, replayMaxEvents)
	var (
		uc    *net.UDPConn
		peer  *net.UDPAddr
		proc  *opensslProc
		first []byte
		err   error
	)
	if rc.client {
		var addr string
		proc, addr = startOpenSSLServer(ctx, t, openssl, args)
		raddr, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if uc, err = net.DialUDP("udp", nil, raddr); err != nil {
			t.Fatal(err)
		}
		peer = nil
	} else {
		if uc, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		proc = startOpenSSL(ctx, t, openssl, append(args, "-connect", uc.LocalAddr().String()))
		buf := make([]byte, 1<<16)
		uc.SetReadDeadline(time.Now().Add(replayTimeout))
		n, from, err := uc.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("waiting for s_client's ClientHello: %v", err)
		}
		uc.SetReadDeadline(time.Time{})
		peer, first = from, buf[:n]
		in <- first
	}
	defer uc.Close()
	stop := context.AfterFunc(ctx, func() { uc.Close() })
	defer stop()
	readerDone := make(chan struct{})
	go func() { // outside the bubble
		defer close(readerDone)
		defer close(in)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := uc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if peer != nil && from.AddrPort() != peer.AddrPort() {
				continue // not our peer
			}
			select {
			case in <- bytes.Clone(buf[:n]):
			default: // our side is not reading: lost, as on a full socket
			}
		}
	}()

	rec := &recordingConn{uc: uc, peer: peer, in: in}
	if peer != nil {
		rec.tr.remote = peer.String()
	} else {
		rec.tr.remote = uc.RemoteAddr().String()
	}
	var runErr error
	synctest.Test(t, func(t *testing.T) {
		runErr = runReplaySide(t, rc, pki, rec, &replayPeer{ctx, proc})
	})
	if runErr != nil {
		t.Fatalf("recording: %v", runErr)
	}
	uc.Close()
	<-readerDone
	rec.mu.Lock()
	defer rec.mu.Unlock()
	tr := rec.tr
	tr.comments = []string{
		"Recorded by TestReplay -update (replay_test.go) against",
		strings.TrimSpace(string(version)) + ":",
		"openssl " + shown,
		"Our side reads (<) and writes (>) these datagrams in this order.",
	}
	return &tr
}

// ---- certificates ----

// replayPKI is the fixed CA and ECDSA P-256 server certificate of the
// transcripts.
type replayPKI struct {
	caFile, certFile, keyFile string
	roots                     *x509.CertPool
	cert                      tls.Certificate
}

func replayPKIFiles() *replayPKI {
	return &replayPKI{
		caFile:   filepath.Join(replayDir, "ca.pem"),
		certFile: filepath.Join(replayDir, "server.pem"),
		keyFile:  filepath.Join(replayDir, "server.key"),
	}
}

// writeReplayPKI makes the certificates if they are not there yet: they
// are in the transcripts, so an -update keeps the old ones.
func writeReplayPKI(t *testing.T) *replayPKI {
	p := replayPKIFiles()
	if _, err := os.Stat(p.certFile); err != nil {
		if err := os.MkdirAll(replayDir, 0o755); err != nil {
			t.Fatal(err)
		}
		ca := dtlstest.NewCA(t, dtlstest.Spec{CommonName: "dtls-go replay test CA"})
		leaf := ca.Issue(t, dtlstest.Spec{Names: []string{"localhost"}})
		ca.WriteFile(t, p.caFile)
		leaf.WriteFiles(t, p.certFile, p.keyFile)
	}
	return loadReplayPKI(t)
}

func loadReplayPKI(t *testing.T) *replayPKI {
	p := replayPKIFiles()
	cert, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	p.cert = cert
	caPEM, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("%s: no certificate", p.caFile)
	}
	return p
}
