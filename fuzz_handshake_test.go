package dtls

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Whole-handshake fuzzing: the input is a sequence of datagrams that one
// side of ours (Server, or Client) receives over an in-memory link, in
// order, after which the link hangs up. Both sides run with a fixed
// Config.Rand, so a recorded handshake replays exactly under a PSK suite
// (no ECDHE, whose keys Go 1.26 draws from its own source): the seeds
// reach the Finished checks and application data, and mutations explore
// every parser and state on the way. Nothing may panic, hang or leak a
// goroutine.

// fuzzSeed is the fixed entropy of both sides.
func fuzzRand() *mrand.ChaCha8 {
	return mrand.NewChaCha8([32]byte{'d', 't', 'l', 's', '-', 'f', 'u', 'z', 'z'})
}

// fuzzConfig is the Config of our side under fuzzing (and of the recorded
// peer): PSK and certificate suites, client certificates requested, fast
// to give up.
func fuzzConfig(t testing.TB, server bool) *Config {
	c := pskConfig()
	c.Rand = fuzzRand()
	c.HandshakeTimeout = 2 * time.Second
	c.CipherSuites = []uint16{TLS_PSK_WITH_AES_128_GCM_SHA256, TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	// The 1.2 state machines, which the corpus under testdata/fuzz was
	// recorded with; fuzzConfig13 is 1.3's.
	c.MaxVersion = VersionDTLS12
	tc := certs(t)["p256"]
	if server {
		c.Certificates = []tls.Certificate{tc.tls}
		c.ClientAuth = tls.RequestClientCert
	} else {
		c.RootCAs, c.ServerName = tc.pool, "dtls.test"
	}
	return c
}

// encodeDatagrams frames datagrams as 2-byte length + bytes.
func encodeDatagrams(dgs [][]byte) []byte {
	var b []byte
	for _, d := range dgs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(d)))
		b = append(b, d...)
	}
	return b
}

func decodeDatagrams(b []byte) [][]byte {
	var dgs [][]byte
	for len(b) >= 2 {
		n := min(int(binary.BigEndian.Uint16(b)), len(b)-2)
		dgs = append(dgs, b[2:2+n])
		b = b[2+n:]
	}
	return dgs
}

// recordHandshake runs a real in-process handshake over the in-memory
// link with both sides' Rand fixed and returns the datagrams each side
// sent. forServer: the client offers only suite, and its datagrams replay
// against fuzzConfig's server; otherwise the server allows only suite, and
// its datagrams replay against fuzzConfig's client.
func recordHandshake(t testing.TB, suite uint16, forServer bool) (fromClient, fromServer [][]byte) {
	a, b := mbPipe()
	var mu sync.Mutex
	a.tap = func(d []byte) { mu.Lock(); fromServer = append(fromServer, bytes.Clone(d)); mu.Unlock() }
	b.tap = func(d []byte) { mu.Lock(); fromClient = append(fromClient, bytes.Clone(d)); mu.Unlock() }
	scfg, ccfg := fuzzConfig(t, true), fuzzConfig(t, false)
	if forServer {
		ccfg.CipherSuites = []uint16{suite}
	} else {
		scfg.CipherSuites = []uint16{suite}
	}
	srv, cli := Server(a, scfg), Client(b, ccfg)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 100)
		n, err := srv.Read(buf)
		if err == nil {
			_, err = srv.Write(buf[:n])
		}
		done <- err
	}()
	if _, err := cli.Write([]byte("ping")); err != nil {
		t.Fatalf("recording %s: %v", CipherSuiteName(suite), err)
	}
	buf := make([]byte, 100)
	if _, err := cli.Read(buf); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cli.Close()
	srv.Close()
	a.Close()
	b.Close()
	mu.Lock()
	defer mu.Unlock()
	return fromClient, fromServer
}

// runFuzzedSide feeds dgs to our side (server or client) and waits for it
// to give up or finish.
func runFuzzedSide(t *testing.T, server bool, dgs [][]byte) {
	runFuzzedSideWith(t, server, fuzzConfig(t, server), dgs)
}

// runFuzzedSideWith is runFuzzedSide with our side's Config.
func runFuzzedSideWith(t *testing.T, server bool, cfg *Config, dgs [][]byte) {
	checkNoGoroutineLeak(t)
	ours, driver := mbPipe()
	var c *Conn
	if server {
		c = Server(ours, cfg)
	} else {
		c = Client(ours, cfg)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Handshake(); err != nil {
			return
		}
		if !server {
			c.Write([]byte("ping"))
		}
		buf := make([]byte, 1<<14)
		for i := 0; i < len(dgs)+1; i++ {
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	for _, d := range dgs {
		driver.Write(d)
	}
	driver.Close() // our side sees the datagrams, then EOF
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("our side hangs on this input")
	}
	c.Close()
	ours.Close()
}

// TestHandshakeRecordingReplays checks what the fuzz seeds rely on: a
// recorded PSK handshake replays exactly, through the Finished checks.
func TestHandshakeRecordingReplays(t *testing.T) {
	checkNoGoroutineLeak(t)
	fromClient, _ := recordHandshake(t, TLS_PSK_WITH_AES_128_GCM_SHA256, true)
	_, fromServer := recordHandshake(t, TLS_PSK_WITH_AES_128_GCM_SHA256, false)
	again, _ := recordHandshake(t, TLS_PSK_WITH_AES_128_GCM_SHA256, true)
	if len(again) != len(fromClient) {
		t.Fatalf("two recordings differ: %d and %d datagrams", len(fromClient), len(again))
	}
	for i := range again {
		if !bytes.Equal(again[i], fromClient[i]) {
			t.Fatalf("two recordings differ at datagram %d", i)
		}
	}
	// Replaying the client's side against a fresh server completes the
	// handshake and the server reads the application data.
	for _, side := range []struct {
		server bool
		dgs    [][]byte
	}{{true, fromClient}, {false, fromServer}} {
		a, b := mbPipe()
		cfg := fuzzConfig(t, side.server)
		var c *Conn
		if side.server {
			c = Server(a, cfg)
		} else {
			c = Client(a, cfg)
		}
		for _, d := range side.dgs {
			b.Write(d)
		}
		if err := c.Handshake(); err != nil {
			t.Fatalf("replay to server=%v: %v", side.server, err)
		}
		c.Close()
		a.Close()
		b.Close()
	}
}

func fuzzSeeds(f *testing.F, server bool) {
	for _, suite := range []uint16{TLS_PSK_WITH_AES_128_GCM_SHA256, TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256} {
		fromClient, fromServer := recordHandshake(f, suite, server)
		dgs := fromServer
		if server {
			dgs = fromClient
		}
		f.Add(encodeDatagrams(dgs))
	}
}

// FuzzServerHandshake drives our Server with the datagrams of a client.
func FuzzServerHandshake(f *testing.F) {
	fuzzSeeds(f, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		runFuzzedSide(t, true, decodeDatagrams(data))
	})
}

// FuzzClientHandshake drives our Client with the datagrams of a server.
func FuzzClientHandshake(f *testing.F) {
	fuzzSeeds(f, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		runFuzzedSide(t, false, decodeDatagrams(data))
	})
}

// FuzzParseInitialClientHello is the Listener's stateless first look at a
// datagram from an unknown address: it must not panic, and what it
// accepts must be a whole epoch-0 ClientHello whose HelloVerifyRequest
// parses.
func FuzzParseInitialClientHello(f *testing.F) {
	fromClient, _ := recordHandshake(f, TLS_PSK_WITH_AES_128_GCM_SHA256, true)
	for _, d := range fromClient[:2] {
		f.Add(d)
	}
	if ch, err := os.ReadFile(filepath.Join("testdata", "openssl_clienthello.bin")); err == nil {
		f.Add(ch)
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		hdr, ch, msgSeq, ok := parseInitialClientHello(d)
		if !ok {
			return
		}
		if hdr.epoch != 0 || hdr.typ != recordTypeHandshake || ch == nil {
			t.Fatalf("accepted %+v", hdr)
		}
		hvr := appendHelloVerifyRequest(nil, hdr.seq, msgSeq, bytes.Repeat([]byte{1}, cookieLen))
		h, body, rest, reason := nextRecord(hvr)
		var hh handshakeHeader
		var m helloVerifyRequestMsg
		if reason != dropNone || len(rest) != 0 || h.seq != hdr.seq || !hh.unmarshal(body) ||
			hh.messageSeq != msgSeq || !m.unmarshal(body[handshakeHeaderLen:]) {
			t.Fatalf("HelloVerifyRequest for an accepted ClientHello does not parse: %x", hvr)
		}
	})
}

var updateHandshakeCorpus = flag.Bool("update-handshake-corpus", false, "write the handshake fuzz seeds under testdata/fuzz")

// TestWriteHandshakeFuzzCorpus writes the recorded handshakes as committed
// seeds:
//
//	go test -run TestWriteHandshakeFuzzCorpus -update-handshake-corpus .
func TestWriteHandshakeFuzzCorpus(t *testing.T) {
	if !*updateHandshakeCorpus {
		t.Skip("run with -update-handshake-corpus to rewrite the seeds")
	}
	write := func(target, name string, data []byte) {
		path := filepath.Join("testdata", "fuzz", target, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, suite := range []uint16{TLS_PSK_WITH_AES_128_GCM_SHA256, TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256} {
		fromClient, _ := recordHandshake(t, suite, true)
		_, fromServer := recordHandshake(t, suite, false)
		name := "recorded-" + CipherSuiteName(suite)
		write("FuzzServerHandshake", name, encodeDatagrams(fromClient))
		write("FuzzClientHandshake", name, encodeDatagrams(fromServer))
		if suite == TLS_PSK_WITH_AES_128_GCM_SHA256 {
			write("FuzzParseInitialClientHello", "first-clienthello", fromClient[0])
			write("FuzzParseInitialClientHello", "cookie-clienthello", fromClient[1])
		}
	}
}

// fuzzConfig13 is fuzzConfig for DTLS 1.3: certificates (1.3 has no PSK
// here yet), client certificates requested, and a fixed clock, so that
// the server's HelloRetryRequest cookie, and with it a recorded second
// ClientHello, replays. The key exchange still draws fresh keys (Go's
// crypto/ecdh ignores Rand), so a replay stops at the first encrypted
// message: the seeds cover the hellos, the HelloRetryRequest, the cookie
// and the unified-header path, and mutations the rest.
func fuzzConfig13(t testing.TB, server bool) *Config {
	c := fuzzConfig(t, server)
	c.PSK, c.PSKIdentity, c.PSKIdentityHint = nil, nil, nil
	c.CipherSuites = nil
	c.MinVersion, c.MaxVersion = VersionDTLS13, VersionDTLS13
	fixed := time.Now()
	c.Time = func() time.Time { return fixed }
	return c
}

// recordHandshake13 is recordHandshake for DTLS 1.3 with fuzzConfig13.
func recordHandshake13(t testing.TB) (fromClient, fromServer [][]byte) {
	a, b := mbPipe()
	var mu sync.Mutex
	a.tap = func(d []byte) { mu.Lock(); fromServer = append(fromServer, bytes.Clone(d)); mu.Unlock() }
	b.tap = func(d []byte) { mu.Lock(); fromClient = append(fromClient, bytes.Clone(d)); mu.Unlock() }
	srv, cli := Server(a, fuzzConfig13(t, true)), Client(b, fuzzConfig13(t, false))
	done := make(chan error, 1)
	go func() { done <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatalf("recording DTLS 1.3: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cli.Close()
	srv.Close()
	a.Close()
	b.Close()
	mu.Lock()
	defer mu.Unlock()
	return fromClient, fromServer
}

// FuzzServerHandshake13 drives our DTLS 1.3 Server with a client's
// datagrams.
func FuzzServerHandshake13(f *testing.F) {
	fromClient, _ := recordHandshake13(f)
	f.Add(encodeDatagrams(fromClient))
	f.Fuzz(func(t *testing.T, data []byte) {
		runFuzzedSideWith(t, true, fuzzConfig13(t, true), decodeDatagrams(data))
	})
}

// FuzzClientHandshake13 drives our DTLS 1.3 Client with a server's
// datagrams.
func FuzzClientHandshake13(f *testing.F) {
	_, fromServer := recordHandshake13(f)
	f.Add(encodeDatagrams(fromServer))
	f.Fuzz(func(t *testing.T, data []byte) {
		runFuzzedSideWith(t, false, fuzzConfig13(t, false), decodeDatagrams(data))
	})
}
