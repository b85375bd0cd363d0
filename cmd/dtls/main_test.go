package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
)

func TestDispatch(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string // substrings
	}{
		{nil, exitUsage, "", "Commands:"},
		{[]string{"help"}, exitOK, "server ", ""},
		{[]string{"help"}, exitOK, "client ", ""},
		{[]string{"help", "server"}, exitOK, "", "-listen"},
		{[]string{"help", "client"}, exitOK, "", "-insecure"},
		{[]string{"help", "nope"}, exitUsage, "", `unknown command "nope"`},
		{[]string{"nope"}, exitUsage, "", `unknown command "nope"`},
		{[]string{"server", "-bogus"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{[]string{"client", "-ciphers", "TLS_NOPE"}, exitUsage, "", "TLS_PSK_WITH_AES_128_CCM_8"},
		{[]string{"client", "extra"}, exitUsage, "", `unexpected argument "extra"`},
	} {
		var out, errb strings.Builder
		code := dispatch(context.Background(), tc.args, stdio{strings.NewReader(""), &out, &errb})
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("dispatch(%q) = %d, stdout %q, stderr %q; want %d, %q, %q",
				tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.err)
		}
	}
}

func TestParseCipherList(t *testing.T) {
	got, err := parseCipherList("TLS_PSK_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
	want := []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}

	_, err = parseCipherList("TLS_PSK_WITH_AES_128_CCM_8,ECDHE-ECDSA-AES128-GCM-SHA256")
	if !errors.Is(err, errUsage) {
		t.Fatalf("unknown name: err = %v, want a usage error", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, `"ECDHE-ECDSA-AES128-GCM-SHA256"`) {
		t.Errorf("error does not name the bad suite: %s", msg)
	}
	for _, s := range dtls.CipherSuites() {
		if !strings.Contains(msg, s.Name) {
			t.Errorf("error does not list %s: %s", s.Name, msg)
		}
	}

	for _, bad := range []string{",", "TLS_PSK_WITH_AES_128_CCM_8,", " "} {
		if _, err := parseCipherList(bad); !errors.Is(err, errUsage) {
			t.Errorf("parseCipherList(%q): err = %v, want a usage error", bad, err)
		}
	}
}

func TestParseServerFlags(t *testing.T) {
	o, err := parseServerFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "127.0.0.1:4433" || o.once || o.verbosity != 0 || o.psk != nil || o.suites != nil || o.mtu != 0 ||
		o.idleTimeout != 5*time.Minute || o.maxConns != 10000 || o.shutdownTimeout != 5*time.Second {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseServerFlags([]string{"-idle-timeout", "90s", "-max-conns", "50"}, io.Discard)
	if err != nil || o.idleTimeout != 90*time.Second || o.maxConns != 50 {
		t.Errorf("-idle-timeout 90s -max-conns 50: %+v, %v", o, err)
	}

	o, err = parseServerFlags([]string{"-listen", "[::1]:0", "-psk", "0A0b", "-psk-identity", "dev1",
		"-ciphers", "TLS_PSK_WITH_AES_128_CCM_8", "-mtu", "300", "-once", "-keylog", "k.log", "-v", "4"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "[::1]:0" || string(o.psk) != "\x0a\x0b" || o.pskIdentity != "dev1" || !o.once ||
		o.mtu != 300 || o.keylog != "k.log" || o.verbosity != 4 ||
		!reflect.DeepEqual(o.suites, []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8}) {
		t.Errorf("parsed: %+v", o)
	}

	for _, args := range [][]string{
		{"-cert", "c.pem"},
		{"-key", "k.pem"},
		{"-psk", "xyz"},
		{"-psk-identity", "dev1"},
		{"-v", "5"},
		{"-v", "-1"},
		{"-mtu", "-1"},
		{"-mtu", "70000"},
		{"-ciphers", "RC4"},
		{"-once=maybe"},
		{"-idle-timeout", "-1s"},
		{"-idle-timeout", "soon"},
		{"-max-conns", "0"},
		{"-shutdown-timeout", "-1s"},
		{"stray"},
	} {
		if _, err := parseServerFlags(args, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("parseServerFlags(%q): err = %v, want a usage error", args, err)
		}
	}
	if _, err := parseServerFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
}

func TestParseClientFlags(t *testing.T) {
	o, err := parseClientFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.connect != "127.0.0.1:4433" || o.insecure || o.caFile != "" || o.wait != 500*time.Millisecond ||
		o.pskIdentity != "Client_identity" || o.psk != nil {
		t.Errorf("defaults: %+v", o)
	}

	o, err = parseClientFlags([]string{"-connect", "example.test:5684", "-insecure", "-servername", "coap.test",
		"-psk", "00ff", "-psk-identity", "dev1", "-ciphers", "TLS_PSK_WITH_AES_128_CCM_8,TLS_PSK_WITH_AES_128_CCM",
		"-mtu", "500", "-wait", "2s", "-v", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.connect != "example.test:5684" || !o.insecure || o.serverName != "coap.test" || string(o.psk) != "\x00\xff" ||
		o.pskIdentity != "dev1" || len(o.suites) != 2 || o.mtu != 500 || o.wait != 2*time.Second || o.verbosity != 2 {
		t.Errorf("parsed: %+v", o)
	}

	for _, args := range [][]string{
		{"-ca", "ca.pem", "-insecure"},
		{"-psk-identity", "dev1"},
		{"-wait", "-1s"},
		{"-wait", "soon"},
		{"-connect", "no-port"},
		{"-v", "9"},
		{"-ciphers", "TLS_PSK_WITH_AES_128_CCM_8,,TLS_PSK_WITH_AES_128_CCM"},
	} {
		if _, err := parseClientFlags(args, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("parseClientFlags(%q): err = %v, want a usage error", args, err)
		}
	}
}

func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	cert, err := selfSignedCertificate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", cert.Certificate[0])
	keylog := filepath.Join(dir, "keys.log")

	o, err := parseClientFlags([]string{"-connect", "127.0.0.1:4433", "-ca", caFile, "-psk", "0102", "-keylog", keylog,
		"-mtu", "300", "-v", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, closer, err := clientConfig(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if cfg.ServerName != "127.0.0.1" || cfg.RootCAs == nil || cfg.InsecureSkipVerify || cfg.MTU != 300 ||
		string(cfg.PSKIdentity) != "Client_identity" || cfg.KeyLogWriter == nil {
		t.Errorf("config: %+v", cfg)
	}
	if k, err := cfg.PSK(nil); err != nil || string(k) != "\x01\x02" {
		t.Errorf("PSK(nil) = %x, %v", k, err)
	}
	if cfg.Tracer != nil {
		t.Error("a nil Printer made a Tracer")
	}

	o, _ = parseClientFlags([]string{"-ca", filepath.Join(dir, "missing.pem")}, io.Discard)
	if _, _, err := clientConfig(o, nil); err == nil {
		t.Error("missing -ca file: no error")
	}
}

func TestServerConfig(t *testing.T) {
	// Neither certificate nor PSK: a self-signed certificate.
	o, _ := parseServerFlags(nil, io.Discard)
	cfg, _, err := serverConfig(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 1 || cfg.PSK != nil {
		t.Fatalf("default config: %+v", cfg)
	}

	// PSK only: no certificate, identity checked.
	o, _ = parseServerFlags([]string{"-psk", "0102", "-psk-identity", "dev1"}, io.Discard)
	cfg, _, err = serverConfig(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 0 || cfg.PSK == nil {
		t.Fatalf("PSK config: %+v", cfg)
	}
	if k, err := cfg.PSK([]byte("dev1")); err != nil || string(k) != "\x01\x02" {
		t.Errorf("PSK(dev1) = %x, %v", k, err)
	}
	if _, err := cfg.PSK([]byte("dev2")); err == nil {
		t.Error("PSK(dev2): no error for an unexpected identity")
	}

	// The listener limits: the library's defaults, and 0 for "never".
	if cfg.IdleTimeout != 5*time.Minute || cfg.MaxConnections != 10000 {
		t.Errorf("default limits: IdleTimeout %v, MaxConnections %d", cfg.IdleTimeout, cfg.MaxConnections)
	}
	o, _ = parseServerFlags([]string{"-psk", "0102", "-idle-timeout", "0", "-max-conns", "3"}, io.Discard)
	if cfg, _, _ = serverConfig(o, nil); cfg.IdleTimeout >= 0 || cfg.MaxConnections != 3 {
		t.Errorf("-idle-timeout 0 -max-conns 3: IdleTimeout %v, MaxConnections %d", cfg.IdleTimeout, cfg.MaxConnections)
	}

	// PSK without identity: any identity.
	o, _ = parseServerFlags([]string{"-psk", "0102"}, io.Discard)
	cfg, _, _ = serverConfig(o, nil)
	if _, err := cfg.PSK([]byte("anyone")); err != nil {
		t.Errorf("PSK(anyone) without -psk-identity: %v", err)
	}

	// -cert/-key load a key pair.
	dir := t.TempDir()
	cert, _ := selfSignedCertificate(time.Now())
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writePEM(t, certFile, "CERTIFICATE", cert.Certificate[0])
	writePEM(t, keyFile, "PRIVATE KEY", der)
	o, _ = parseServerFlags([]string{"-cert", certFile, "-key", keyFile}, io.Discard)
	cfg, _, err = serverConfig(o, nil)
	if err != nil || len(cfg.Certificates) != 1 {
		t.Fatalf("-cert/-key: %v", err)
	}
	o, _ = parseServerFlags([]string{"-cert", keyFile, "-key", keyFile}, io.Discard)
	if _, _, err := serverConfig(o, nil); err == nil {
		t.Error("-cert with a key file: no error")
	}
}

func TestSelfSignedCertificate(t *testing.T) {
	now := time.Now()
	cert, err := selfSignedCertificate(now, "dtls.test", "192.0.2.7", "127.0.0.1", "")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if priv, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok || !priv.PublicKey.Equal(pub) {
		t.Fatal("private key does not match the certificate")
	}
	if leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("signature algorithm %v", leaf.SignatureAlgorithm)
	}
	if leaf.NotBefore.After(now) || leaf.NotAfter.Before(now.Add(24*time.Hour)) {
		t.Errorf("validity %v to %v does not cover now and the next day", leaf.NotBefore, leaf.NotAfter)
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "dtls.test", "192.0.2.7"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: now}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if len(leaf.IPAddresses) != 3 {
		t.Errorf("IP SANs %v: loopback duplicated or missing", leaf.IPAddresses)
	}

	other, _ := selfSignedCertificate(now)
	if other.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
}

func TestFingerprint(t *testing.T) {
	// sha256("abc"), RFC 6234's first test vector.
	want := "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
	if got := fingerprint([]byte("abc")); got != want {
		t.Errorf("fingerprint = %s, want %s", got, want)
	}
}

// TestServerClientEcho runs `dtls server -once` and `dtls client` in
// process against each other over loopback. It needs the library's
// handshake, so it fails until that lands.
func TestServerClientEcho(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name       string
		server     []string
		clientArgs []string
	}{
		// DTLS 1.2, which tshark 4.0 decrypts (it cannot dissect 1.3).
		{"self-signed", nil, []string{"-insecure", "-version", "1.2"}},
		{"psk", []string{"-psk", "00112233445566778899aabbccddeeff", "-psk-identity", "dev1"},
			[]string{"-psk", "00112233445566778899aabbccddeeff", "-psk-identity", "dev1", "-ciphers", "TLS_PSK_WITH_AES_128_CCM_8", "-version", "1.2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(ctx)
			srvErr, srvErrW := io.Pipe()
			srvDone := make(chan int, 1)
			logged := make(chan struct{})
			addr := make(chan string, 1)
			dir := t.TempDir()
			serverPcap, clientPcap := filepath.Join(dir, "server.pcapng"), filepath.Join(dir, "client.pcapng")
			args := append([]string{"-listen", "127.0.0.1:0", "-once", "-v", "1", "-pcap", serverPcap}, tc.server...)
			go func() {
				srvDone <- runServer(ctx, args, stdio{strings.NewReader(""), io.Discard, srvErrW})
				srvErrW.Close()
			}()
			go func() {
				defer close(logged)
				sc := bufio.NewScanner(srvErr)
				for sc.Scan() {
					t.Logf("server: %s", sc.Text())
					if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
						addr <- a
					}
				}
			}()
			// However the test ends, stop the server and its logger
			// before the test returns.
			serverExit := -1
			defer func() {
				cancel()
				if serverExit < 0 {
					<-srvDone
				}
				<-logged
			}()

			var a string
			select {
			case a = <-addr:
			case serverExit = <-srvDone:
				t.Fatalf("server exited with %d before listening", serverExit)
			case <-ctx.Done():
				t.Fatal("server not listening in time")
			}

			var out, errb strings.Builder
			cargs := append([]string{"-connect", a, "-wait", "2s", "-v", "2", "-pcap", clientPcap}, tc.clientArgs...)
			code := runClient(ctx, cargs, stdio{strings.NewReader("hello\n\nworld\n"), &out, &errb})
			t.Logf("client stderr:\n%s", errb.String())
			if code != exitOK {
				t.Fatalf("client exited with %d", code)
			}
			if out.String() != "hello\nworld\n" {
				t.Errorf("client printed %q, want the two lines echoed", out.String())
			}
			select {
			case serverExit = <-srvDone:
				if serverExit != exitOK {
					t.Errorf("server -once exited with %d", serverExit)
				}
			case <-time.After(5 * time.Second):
				t.Error("server -once did not exit after the connection closed")
			}
			// Each side's -pcap capture decrypts as it is: the server's
			// too, although it learns the keys only after recording the
			// client's key exchange.
			tshark := needTshark(t)
			for _, f := range []string{serverPcap, clientPcap} {
				var plain []string
				for _, row := range tsharkFields(t, tshark, f, "data.data") {
					for _, h := range strings.Split(row[0], ",") {
						b, _ := hex.DecodeString(h)
						plain = append(plain, string(b))
					}
				}
				if !slices.Contains(plain, "hello") || !slices.Contains(plain, "world") {
					t.Errorf("%s: tshark decrypted %q, want hello and world both ways", filepath.Base(f), plain)
				}
			}
		})
	}
}

func TestClientHandshakeFailureExitsNonZero(t *testing.T) {
	// Nothing listens on a port we bound and released.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errb strings.Builder
	code := runClient(ctx, []string{"-connect", addr, "-insecure"}, stdio{strings.NewReader("x\n"), &out, &errb})
	if code == exitOK || !strings.Contains(errb.String(), "dtls client: handshake with "+addr+" failed: ") {
		t.Errorf("exit %d, stderr %q: want a failure naming the error", code, errb.String())
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestVerboseLadders runs `dtls client -v 2` against `dtls server -v 2`
// in process and checks that each prints the ladder of the handshake as
// its end saw it, the server's headed by the client's address and
// including the Listener's stateless HelloVerifyRequest.
func TestVerboseLadders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srvErr := &syncBuffer{}
	listening := make(chan string, 1)
	srvErr.onLine = func(l string) {
		if a, ok := strings.CutPrefix(l, "listening on "); ok {
			listening <- a
		}
	}
	srvDone := make(chan int, 1)
	go func() {
		srvDone <- runServer(ctx, []string{"-listen", "127.0.0.1:0", "-once", "-v", "2"}, stdio{strings.NewReader(""), io.Discard, srvErr})
	}()
	var addr string
	select {
	case addr = <-listening:
	case code := <-srvDone:
		t.Fatalf("server exited with %d before listening", code)
	case <-ctx.Done():
		t.Fatal("server not listening in time")
	}

	var out, cliErr strings.Builder
	// The 1.2 ladder (the demo tests show 1.3's).
	code := runClient(ctx, []string{"-connect", addr, "-insecure", "-wait", "1s", "-v", "2", "-version", "1.2"},
		stdio{strings.NewReader("hello\n"), &out, &cliErr})
	if code != exitOK || out.String() != "hello\n" {
		t.Fatalf("client exited with %d, printed %q; stderr:\n%s", code, out.String(), cliErr.String())
	}
	select {
	case code := <-srvDone:
		if code != exitOK {
			t.Errorf("server exited with %d", code)
		}
	case <-time.After(5 * time.Second):
		cancel()
		<-srvDone
		t.Error("server -once did not exit after the connection closed")
	}
	t.Logf("client stderr:\n%s", cliErr.String())
	t.Logf("server stderr:\n%s", srvErr.String())

	// The rows: a message we sent begins at our lifeline, one we
	// received ends at it.
	const (
		toServer = "─▶│"
		toClient = "│◀─"
	)
	for _, tc := range []struct {
		name, stderr, head string
		thisEnd            string
		rows               [][2]string // {label, direction}
	}{
		{"client", cliErr.String(), "client: ladder of the handshake with " + addr, "client 127.0.0.1:",
			[][2]string{{"F1 ClientHello seq=0", toServer}, {"HelloVerifyRequest seq=0", toClient},
				{"F2 ClientHello seq=1", toServer}, {"ServerHello seq=1", toClient},
				{"F3 Finished seq=", toServer}, {" Finished seq=", toClient}}},
		{"server", srvErr.String(), "]: ladder of the handshake\n", "server " + addr + " (this end)",
			[][2]string{{"ClientHello seq=0", toServer}, {"F1 HelloVerifyRequest seq=0", toClient},
				{"ClientHello seq=1", toServer}, {"F2 ServerHello seq=1", toClient},
				{" Finished seq=", toServer}, {"F3 Finished seq=", toClient}}},
	} {
		if n := strings.Count(tc.stderr, "ladder of the handshake"); n != 1 {
			t.Errorf("%s: %d ladders, want 1", tc.name, n)
			continue
		}
		_, lad, _ := strings.Cut(tc.stderr, "ladder of the handshake")
		lad, _, _ = strings.Cut(lad, "\n[") // up to the next timestamped line
		if !strings.Contains(tc.stderr, tc.head) || !strings.Contains(lad, tc.thisEnd) {
			t.Errorf("%s: ladder header lacks %q or %q", tc.name, tc.head, tc.thisEnd)
		}
		for _, r := range tc.rows {
			found := false
			for l := range strings.Lines(lad) {
				if strings.Contains(l, r[0]) && strings.Contains(l, r[1]) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s: no ladder row with %q going %q", tc.name, r[0], r[1])
			}
		}
		// -v 2 shows the result, not the live per-message lines.
		if !strings.Contains(tc.stderr, "handshake done: ") || strings.Contains(tc.stderr, "-> ClientHello") {
			t.Errorf("%s: want the result line and no live message lines at -v 2", tc.name)
		}
	}
	if !strings.Contains(srvErr.String(), "server[127.0.0.1:") {
		t.Error("the server's ladder is not labelled with the peer's address")
	}
}

// syncBuffer is a strings.Builder that several goroutines may write to,
// calling onLine with each complete line.
type syncBuffer struct {
	mu     sync.Mutex
	b      strings.Builder
	part   string
	onLine func(string)
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	s.part += string(p)
	for {
		line, rest, ok := strings.Cut(s.part, "\n")
		if !ok {
			break
		}
		if s.onLine != nil {
			s.onLine(line)
		}
		s.part = rest
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServerShutdownTellsClients is what `dtls server` does on SIGINT or
// SIGTERM (its ctx ends): Listener.Shutdown sends the connected client a
// close_notify, so that the client, whose input is still open, exits at
// once saying the server closed the connection, rather than waiting.
func TestServerShutdownTellsClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	const key = "00112233445566778899aabbccddeeff"
	srvErr := &syncBuffer{}
	listening := make(chan string, 1)
	connected := make(chan struct{}, 1)
	srvErr.onLine = func(l string) {
		if a, ok := strings.CutPrefix(l, "listening on "); ok {
			listening <- a
		}
		if strings.Contains(l, ": connected in ") {
			connected <- struct{}{}
		}
	}
	srvDone := make(chan int, 1)
	go func() {
		srvDone <- runServer(srvCtx, []string{"-listen", "127.0.0.1:0", "-v", "1", "-psk", key, "-psk-identity", "dev1"},
			stdio{strings.NewReader(""), io.Discard, srvErr})
	}()
	var addr string
	select {
	case addr = <-listening:
	case code := <-srvDone:
		t.Fatalf("server exited with %d before listening", code)
	case <-ctx.Done():
		t.Fatal("server not listening in time")
	}
	defer func() {
		stopServer()
		<-srvDone
		t.Logf("server stderr:\n%s", srvErr.String())
	}()

	var cliErr strings.Builder
	pskArgs := []string{"-psk", key, "-ciphers", "TLS_PSK_WITH_AES_128_CCM_8"}

	// A client whose input stays open: only the server's shutdown ends
	// it.
	in, inW := io.Pipe()
	defer inW.Close()
	cliDone := make(chan int, 1)
	var cliErrMu sync.Mutex
	go func() {
		var b strings.Builder
		code := runClient(ctx, append([]string{"-connect", addr, "-psk-identity", "dev1", "-wait", "1m", "-v", "1"}, pskArgs...),
			stdio{in, io.Discard, &b})
		cliErrMu.Lock()
		cliErr.WriteString(b.String())
		cliErrMu.Unlock()
		cliDone <- code
	}()
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("the client did not connect")
	}
	stopServer() // as SIGTERM does
	select {
	case code := <-cliDone:
		cliErrMu.Lock()
		defer cliErrMu.Unlock()
		// Its input is still open: an echo cut short, exit 1.
		if code != exitError || !strings.Contains(cliErr.String(), "the server closed the connection (close_notify)") {
			t.Errorf("client exited %d; stderr:\n%s", code, cliErr.String())
		}
	case <-ctx.Done():
		t.Fatal("the client did not see the server shut down")
	}
	if code := <-srvDone; code != exitOK {
		t.Errorf("server exited with %d", code)
	}
	srvDone <- exitOK // for the deferred wait
	if !strings.Contains(srvErr.String(), "closed: the server is shutting down") {
		t.Error("the server did not say why the connection ended")
	}
}
