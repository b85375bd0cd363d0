package dtls_test

// Raw public keys (RFC 7250) against GnuTLS's gnutls-serv and gnutls-cli,
// both directions, with client authentication by a raw key too. Each side
// pins the other's key: gnutls-serv/-cli are given our SPKI nowhere, so
// they run without verification (--insecure, no --verify-client-cert),
// while our side checks theirs with Config.PeerPublicKeys.
//
// A missing gnutls binary skips these tests, except under CI=true where it
// is a failure (.ci/run installs gnutls-bin).

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/internal/dtlstest"
)

const (
	// gnutlsRPKTimeout bounds one case end to end.
	gnutlsRPKTimeout = 30 * time.Second
	// gnutlsRPKPriority limits GnuTLS to DTLS 1.2 with raw public keys in
	// both directions.
	gnutlsRPKPriority = "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-CTYPE-ALL:+CTYPE-SRV-RAWPK:+CTYPE-CLI-RAWPK"
	gnutlsRPKLine     = "hello over raw public keys"
)

func requireGnuTLS(t *testing.T, name string) string {
	t.Helper()
	return dtlstest.LookPath(t, name) // Debian's gnutls-bin
}

// rpkKeyFiles writes a fresh P-256 key as PKCS #8 and its public half as
// a SubjectPublicKeyInfo PEM, the two files GnuTLS's --rawpkkeyfile and
// --rawpkfile take.
func rpkKeyFiles(t *testing.T, dir, name string) (keyFile, pubFile string, key *ecdsa.PrivateKey) {
	t.Helper()
	key = dtlstest.NewKey(t, dtlstest.P256).(*ecdsa.PrivateKey)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(dir, name+".key")
	pubFile = filepath.Join(dir, name+".pub")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile, pubFile, key
}

// gnutlsProc is a running gnutls-serv or gnutls-cli with its output.
type gnutlsProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	out   bytes.Buffer
	lines chan string
	done  chan struct{}
}

func startGnuTLS(ctx context.Context, t *testing.T, path string, args ...string) *gnutlsProc {
	t.Helper()
	cmd := exec.CommandContext(ctx, path, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &gnutlsProc{cmd: cmd, stdin: stdin, lines: make(chan string, 256), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *gnutlsProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits for a line containing s.
func (p *gnutlsProc) waitFor(ctx context.Context, s string) bool {
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return false
			}
			if strings.Contains(l, s) {
				return true
			}
		case <-ctx.Done():
			return false
		}
	}
}

func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return fmt.Sprint(c.LocalAddr().(*net.UDPAddr).Port)
}

// TestGnuTLS holds the raw-public-key cells of the interop matrix (the
// other GnuTLS cells live in the interop module): our client against
// gnutls-serv, and gnutls-cli against our server.
func TestGnuTLS(t *testing.T) {
	t.Run("client/RPK", testGnuTLSRawPublicKeyServer)
	t.Run("server/RPK", testGnuTLSRawPublicKeyClient)
	t.Run("client/RPK-resumption", testGnuTLSRawPublicKeyServerResumption)
	t.Run("server/RPK-resumption", testGnuTLSRawPublicKeyClientResumption)
}

// startGnuTLSServ starts gnutls-serv with raw keys on a free port, and
// returns it and the port.
func startGnuTLSServ(ctx context.Context, t *testing.T, serv string, args ...string) (*gnutlsProc, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := freeUDPPort(t)
		p := startGnuTLS(ctx, t, serv, append([]string{"--udp", "--echo", "--port", port, "--priority", gnutlsRPKPriority}, args...)...)
		if p.waitFor(ctx, "listening") {
			return p, port
		}
		if attempt == 3 || ctx.Err() != nil {
			t.Fatalf("gnutls-serv did not start:\n%s", p.output())
		}
	}
}

// testGnuTLSRawPublicKeyServerResumption: our raw-key client resumes its
// session with gnutls-serv (by ticket, then by session ID), without a
// ServerName, and the resumed connection still reports the server's key.
// gnutls-serv leaves the certificate types out of a resuming ServerHello.
func testGnuTLSRawPublicKeyServerResumption(t *testing.T) {
	serv := requireGnuTLS(t, "gnutls-serv")
	for _, mode := range []string{"ticket", "id"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), gnutlsRPKTimeout)
			defer cancel()
			dir := t.TempDir()
			srvKey, srvPub, srvPriv := rpkKeyFiles(t, dir, "server")
			_, _, cliPriv := rpkKeyFiles(t, dir, "client")
			p, port := startGnuTLSServ(ctx, t, serv, "--rawpkkeyfile", srvKey, "--rawpkfile", srvPub, "--require-client-cert")
			defer func() {
				if t.Failed() {
					t.Logf("gnutls-serv:\n%s", p.output())
				}
			}()
			cfg := &dtls.Config{
				RawPublicKey:           true,
				PeerPublicKeys:         []crypto.PublicKey{srvPriv.Public()},
				Certificates:           []tls.Certificate{{PrivateKey: cliPriv}},
				ClientSessionCache:     dtls.NewLRUClientSessionCache(4),
				SessionTicketsDisabled: mode == "id",
				HandshakeTimeout:       10 * time.Second,
			}
			for i := range 2 {
				raw, err := net.Dial("udp", "127.0.0.1:"+port)
				if err != nil {
					t.Fatal(err)
				}
				c := dtls.Client(raw, cfg) // no ServerName: the pinned key verifies
				// gnutls-serv prints its banner before the socket is
				// ready on some builds: the first handshake may retry.
				err = c.HandshakeContext(ctx)
				for retry := 0; err != nil && i == 0 && retry < 4; retry++ {
					raw.Close()
					time.Sleep(200 * time.Millisecond)
					if raw, err = net.Dial("udp", "127.0.0.1:"+port); err != nil {
						t.Fatal(err)
					}
					c = dtls.Client(raw, cfg)
					err = c.HandshakeContext(ctx)
				}
				if err != nil {
					t.Fatalf("handshake %d: %v", i+1, err)
				}
				cs := c.ConnectionState()
				if cs.DidResume != (i == 1) {
					t.Errorf("handshake %d: DidResume %v", i+1, cs.DidResume)
				}
				if !srvPriv.PublicKey.Equal(cs.PeerPublicKey) {
					t.Errorf("handshake %d: peer key %T", i+1, cs.PeerPublicKey)
				}
				if _, err := c.Write([]byte(gnutlsRPKLine)); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 1000)
				n, err := c.Read(buf)
				if err != nil || string(buf[:n]) != gnutlsRPKLine {
					t.Fatalf("handshake %d: echo %q %v", i+1, buf[:n], err)
				}
				c.Close()
			}
		})
	}
}

// testGnuTLSRawPublicKeyClientResumption: gnutls-cli --resume, with a raw
// key, resumes its session with our Listener, which requires and pins
// the client's raw key, by ticket and by session ID.
func testGnuTLSRawPublicKeyClientResumption(t *testing.T) {
	cli := requireGnuTLS(t, "gnutls-cli")
	for _, mode := range []string{"ticket", "id"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), gnutlsRPKTimeout)
			defer cancel()
			dir := t.TempDir()
			_, _, srvPriv := rpkKeyFiles(t, dir, "server")
			cliKey, cliPub, cliPriv := rpkKeyFiles(t, dir, "client")
			l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
				RawPublicKey:     true,
				Certificates:     []tls.Certificate{{PrivateKey: srvPriv}},
				ClientAuth:       tls.RequireAndVerifyClientCert,
				PeerPublicKeys:   []crypto.PublicKey{cliPriv.Public()},
				HandshakeTimeout: 10 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			states := make(chan dtls.ConnectionState, 2)
			go func() {
				for {
					nc, err := l.Accept()
					if err != nil {
						return
					}
					c := nc.(*dtls.Conn)
					states <- c.ConnectionState()
					go func() {
						defer c.Close()
						buf := make([]byte, 1000)
						for {
							n, err := c.Read(buf)
							if err != nil {
								return
							}
							c.Write(buf[:n])
						}
					}()
				}
			}()
			args := []string{"--udp", "--port", fmt.Sprint(l.Addr().(*net.UDPAddr).Port), "--priority", gnutlsRPKPriority,
				"--rawpkkeyfile", cliKey, "--rawpkfile", cliPub, "--insecure", "--resume"}
			if mode == "id" {
				args = append(args, "--noticket")
			}
			p := startGnuTLS(ctx, t, cli, append(args, "127.0.0.1")...)
			if !p.waitFor(ctx, "This is a resumed session") {
				t.Fatalf("gnutls-cli did not resume:\n%s", p.output())
			}
			for i := range 2 {
				select {
				case st := <-states:
					if st.DidResume != (i == 1) {
						t.Errorf("connection %d: DidResume %v", i+1, st.DidResume)
					}
					if !cliPriv.PublicKey.Equal(st.PeerPublicKey) {
						t.Errorf("connection %d: server saw client key %T", i+1, st.PeerPublicKey)
					}
				case <-ctx.Done():
					t.Fatalf("connection %d not accepted:\n%s", i+1, p.output())
				}
			}
			if _, err := io.WriteString(p.stdin, gnutlsRPKLine+"\n"); err != nil {
				t.Fatal(err)
			}
			if !p.waitFor(ctx, gnutlsRPKLine) {
				t.Fatalf("gnutls-cli did not print the echo on the resumed session:\n%s", p.output())
			}
		})
	}
}

// testGnuTLSRawPublicKeyServer: our client, with a raw key of its own,
// against gnutls-serv that echoes and asks for a client certificate.
func testGnuTLSRawPublicKeyServer(t *testing.T) {
	serv := requireGnuTLS(t, "gnutls-serv")
	ctx, cancel := context.WithTimeout(context.Background(), gnutlsRPKTimeout)
	defer cancel()
	dir := t.TempDir()
	srvKey, srvPub, srvPriv := rpkKeyFiles(t, dir, "server")
	_, _, cliPriv := rpkKeyFiles(t, dir, "client")

	var p *gnutlsProc
	var port string
	for attempt := 1; ; attempt++ {
		port = freeUDPPort(t)
		p = startGnuTLS(ctx, t, serv, "--udp", "--echo", "--port", port, "--priority", gnutlsRPKPriority,
			"--rawpkkeyfile", srvKey, "--rawpkfile", srvPub, "--require-client-cert")
		if p.waitFor(ctx, "listening") {
			break
		}
		if attempt == 3 || ctx.Err() != nil {
			t.Fatalf("gnutls-serv did not start:\n%s", p.output())
		}
	}

	cfg := &dtls.Config{
		RawPublicKey:     true,
		PeerPublicKeys:   []crypto.PublicKey{srvPriv.Public()},
		Certificates:     []tls.Certificate{{PrivateKey: cliPriv}},
		HandshakeTimeout: 10 * time.Second,
	}
	var c *dtls.Conn
	var err error
	// gnutls-serv prints its banner before the socket is ready on some
	// builds: retry the handshake briefly.
	for i := 0; i < 5; i++ {
		c, err = dtls.DialContext(ctx, "udp", "127.0.0.1:"+port, cfg)
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("handshake: %v\ngnutls-serv:\n%s", err, p.output())
	}
	defer c.Close()
	cs := c.ConnectionState()
	if cs.PeerPublicKey == nil || !srvPriv.PublicKey.Equal(cs.PeerPublicKey) {
		t.Errorf("peer key %T", cs.PeerPublicKey)
	}
	t.Logf("negotiated %s with gnutls-serv", dtls.CipherSuiteName(cs.CipherSuite))
	defer func() { t.Logf("gnutls-serv:\n%s", p.output()) }()
	if _, err := c.Write([]byte(gnutlsRPKLine)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1000)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != gnutlsRPKLine {
		t.Fatalf("echo: %q %v\ngnutls-serv:\n%s", buf[:n], err, p.output())
	}
}

// TestGnuTLSRawPublicKeyClient: gnutls-cli with a raw key against our
// Listener, which requires and pins the client's raw key.
func testGnuTLSRawPublicKeyClient(t *testing.T) {
	cli := requireGnuTLS(t, "gnutls-cli")
	ctx, cancel := context.WithTimeout(context.Background(), gnutlsRPKTimeout)
	defer cancel()
	dir := t.TempDir()
	_, _, srvPriv := rpkKeyFiles(t, dir, "server")
	cliKey, cliPub, cliPriv := rpkKeyFiles(t, dir, "client")

	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
		RawPublicKey:     true,
		Certificates:     []tls.Certificate{{PrivateKey: srvPriv}},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		PeerPublicKeys:   []crypto.PublicKey{cliPriv.Public()},
		HandshakeTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	states := make(chan dtls.ConnectionState, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		c := nc.(*dtls.Conn)
		defer c.Close()
		states <- c.ConnectionState()
		buf := make([]byte, 1000)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
		}
	}()

	port := fmt.Sprint(l.Addr().(*net.UDPAddr).Port)
	p := startGnuTLS(ctx, t, cli, "--udp", "--port", port, "--priority", gnutlsRPKPriority,
		"--rawpkkeyfile", cliKey, "--rawpkfile", cliPub, "--insecure", "127.0.0.1")
	if !p.waitFor(ctx, "Handshake was completed") {
		t.Fatalf("gnutls-cli handshake:\n%s", p.output())
	}
	if _, err := io.WriteString(p.stdin, gnutlsRPKLine+"\n"); err != nil {
		t.Fatal(err)
	}
	if !p.waitFor(ctx, gnutlsRPKLine) {
		t.Fatalf("gnutls-cli did not print the echo:\n%s", p.output())
	}
	select {
	case st := <-states:
		if st.PeerPublicKey == nil || !cliPriv.PublicKey.Equal(st.PeerPublicKey) {
			t.Errorf("server saw client key %T", st.PeerPublicKey)
		}
		t.Logf("negotiated %s with gnutls-cli", dtls.CipherSuiteName(st.CipherSuite))
	case <-ctx.Done():
		t.Fatal("no connection accepted")
	}
	out := p.output()
	if !strings.Contains(out, "Raw Public Key") && !strings.Contains(out, "RAWPK") && !strings.Contains(strings.ToLower(out), "raw public") {
		t.Logf("gnutls-cli output does not name the certificate type:\n%s", out)
	}
}
