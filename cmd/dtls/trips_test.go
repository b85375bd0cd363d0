package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"

	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
)

// TestMTUFlag: -mtu below the library's floor of 128 is a usage error in
// every command that has the flag, not silently raised to 128.
func TestMTUFlag(t *testing.T) {
	parsers := map[string]func([]string) error{
		"server": func(a []string) error { _, err := parseServerFlags(a, io.Discard); return err },
		"client": func(a []string) error { _, err := parseClientFlags(a, io.Discard); return err },
		"demo":   func(a []string) error { _, err := parseDemoFlags(a, io.Discard); return err },
	}
	for name, parse := range parsers {
		for _, bad := range []string{"1", "64", "127", "-1", "65508"} {
			err := parse([]string{"-mtu", bad})
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "-mtu "+bad) {
				t.Errorf("%s -mtu %s: err = %v, want a usage error about -mtu", name, bad, err)
			}
		}
		for _, good := range []string{"0", "128", "1200", "65507"} {
			if err := parse([]string{"-mtu", good}); err != nil {
				t.Errorf("%s -mtu %s: %v", name, good, err)
			}
		}
	}
}

// TestEmptyPSKFlag: an explicit empty -psk is a usage error, not taken
// for no -psk (the server then fell back to a certificate).
func TestEmptyPSKFlag(t *testing.T) {
	for _, args := range [][]string{{"-psk", ""}, {"-psk="}, {"-psk", "", "-psk-identity", "dev1"}} {
		if _, err := parseServerFlags(args, io.Discard); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "-psk") {
			t.Errorf("server %q: err = %v, want a usage error about -psk", args, err)
		}
		if _, err := parseClientFlags(args, io.Discard); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "-psk") {
			t.Errorf("client %q: err = %v, want a usage error about -psk", args, err)
		}
	}
	var errb strings.Builder
	code := dispatch(context.Background(), []string{"server", "-psk", ""}, stdio{strings.NewReader(""), io.Discard, &errb})
	if code != exitUsage || !strings.Contains(errb.String(), "-psk is empty") {
		t.Errorf("dtls server -psk '': exit %d, stderr %q; want a usage error", code, errb.String())
	}
}

// TestServerRefusesWeakRSA: `dtls server` with a 512-bit RSA certificate
// exits at start, saying why, instead of serving handshakes that all fail.
func TestServerRefusesWeakRSA(t *testing.T) {
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "rsa512.pem")
	if err := os.WriteFile(pemFile, []byte(rsa512PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errb strings.Builder
	code := runServer(ctx, []string{"-listen", "127.0.0.1:0", "-cert", pemFile, "-key", pemFile}, stdio{strings.NewReader(""), io.Discard, &errb})
	if code == exitOK || !strings.Contains(errb.String(), "512-bit RSA key") || strings.Contains(errb.String(), "listening on") {
		t.Errorf("exit %d, stderr %q; want a refusal naming the 512-bit key before listening", code, errb.String())
	}
}

// TestDemoFilesArePrivate: the demo's capture and key log hold session
// keys, so only their owner may read them, as with server -pcap/-keylog.
func TestDemoFilesArePrivate(t *testing.T) {
	dir, _ := runDemoForTest(t, "-messages", "1")
	for _, f := range []string{"handshake.pcapng", "keylog.txt"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if m := st.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %v, want -rw-------", f, m)
		}
	}
	// An existing file is replaced, not reused with its old mode.
	if err := os.Chmod(filepath.Join(dir, "keylog.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := createPrivate(filepath.Join(dir, "keylog.txt"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if st, _ := os.Stat(filepath.Join(dir, "keylog.txt")); st.Mode().Perm() != 0o600 || st.Size() != 0 {
		t.Errorf("recreated keylog.txt: mode %v, size %d; want -rw------- and empty", st.Mode().Perm(), st.Size())
	}
}

// TestClientFailsWhenServerClosesEarly: a server that closes after
// echoing one of three datagrams makes `dtls client` exit non-zero.
func TestClientFailsWhenServerClosesEarly(t *testing.T) {
	cert, err := selfSignedCertificate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close() // close_notify
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1<<14)
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		c.Write(buf[:n])
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb strings.Builder
	// The input ends at once: the client then waits up to -wait for the
	// replies, and the server's close_notify comes before that ends.
	code := runClient(ctx, []string{"-connect", l.Addr().String(), "-insecure", "-wait", "10s"},
		stdio{strings.NewReader("one\ntwo\nthree\n"), &out, &errb})
	<-served
	if code == exitOK || !strings.Contains(errb.String(), "the server closed the connection") {
		t.Errorf("exit %d, stdout %q, stderr %q; want a failure saying the server closed early", code, out.String(), errb.String())
	}

	// A server that echoes everything and then closes is a success.
	l2, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	served = make(chan struct{})
	go func() {
		defer close(served)
		c, err := l2.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1<<14)
		for range 3 {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
		}
	}()
	out.Reset()
	errb.Reset()
	code = runClient(ctx, []string{"-connect", l2.Addr().String(), "-insecure", "-wait", "10s"},
		stdio{strings.NewReader("one\ntwo\nthree\n"), &out, &errb})
	<-served
	if code != exitOK || out.String() != "one\ntwo\nthree\n" {
		t.Errorf("full echo: exit %d, stdout %q, stderr %q; want 0 and the three lines", code, out.String(), errb.String())
	}
}

// rsa512PEM is a self-signed certificate and its 512-bit RSA key (openssl
// req -x509 -newkey rsa:512), which crypto/rsa refuses to sign with.
const rsa512PEM = `-----BEGIN CERTIFICATE-----
MIIBezCCASWgAwIBAgIUaNP3Gzjnk14Ype/keHAZA4IIGvUwDQYJKoZIhvcNAQEL
BQAwETEPMA0GA1UEAwwGcnNhNTEyMCAXDTI2MTIwMzA3MTAxNFoYDzIxMjYxMTA5
MDcxMDE0WjARMQ8wDQYDVQQDDAZyc2E1MTIwXDANBgkqhkiG9w0BAQEFAANLADBI
AkEAtfJnwAN7GKiZ+Km7NiiJ6U8bfT5h8kZwQQAH+NAx5Kdcz8JhoTXK6ccw/IID
mcVNkRmmk8uexbnvdJ5wbyn5TwIDAQABo1MwUTAdBgNVHQ4EFgQULadca0XmH7m1
z1PrhBUuGkq1V5kwHwYDVR0jBBgwFoAULadca0XmH7m1z1PrhBUuGkq1V5kwDwYD
VR0TAQH/BAUwAwEB/zANBgkqhkiG9w0BAQsFAANBAES3Ks/TZsEJy9UNmMtEx7mG
+R9xGsk3+1AA4jorWVfO1WJT3GCY1ihHbMUw5NkZctHD+v1w8NbvXJxTDgoVDIg=
-----END CERTIFICATE-----
-----BEGIN PRIVATE KEY-----
MIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEAtfJnwAN7GKiZ+Km7
NiiJ6U8bfT5h8kZwQQAH+NAx5Kdcz8JhoTXK6ccw/IIDmcVNkRmmk8uexbnvdJ5w
byn5TwIDAQABAkBV4hlVCo+VYShktwGWm+YVSfEI2mRzbwpXtEMPEH8slYL9yyvH
xxkFmqgFMWuwvStX0xIH+3T8vAbxAraifJcBAiEA6waS7Kt4uemyRZNpAhFZrk/9
7ldWNoTsu9lqTR6brM8CIQDGLy/TE59AchyAwhq6bd/AFTyj9gGG3t7Dw4H++cUL
gQIgf/m2a1T7ihBs2GHqXgvgj4BTP0MjWNCMr8U1kwTFtBUCIGmZKvplMi28n8Nb
qbI8aUSIDE+w/Q9IIZpdyh56J6wBAiEAg5/lF8Is189L68HYZKT+gS1aXKc232Kw
JMQwsF5knm4=
-----END PRIVATE KEY-----
`
