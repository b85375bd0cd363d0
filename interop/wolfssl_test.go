package interop_test

// Interoperability with wolfSSL 5.5.4 (Debian's libwolfssl-dev) through
// wolfssl/wolfssl_peer.c, a small client and server on its DTLS 1.2 API
// that the test compiles with gcc. The wolfSSL side sends or echoes one
// datagram, so data flows both ways; its close_notify ends our server's
// connection and ours ends its server.
//
// Debian builds wolfSSL without HAVE_SECURE_RENEGOTIATION,
// WOLFSSL_DTLS_MTU and WOLFSSL_DTLS_CH_FRAG, so it can neither renegotiate,
// nor lower its MTU, nor take a fragmented ClientHello: those cells are
// n.a.

import (
	"context"
	"crypto/tls"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dtls-go/dtls/internal/dtlstest"
)

const wolfsslLine = "hello from wolfssl" // wolfssl_peer.c's CLIENT_LINE

// buildWolfSSLPeer compiles wolfssl_peer.c into dir. Missing gcc or
// wolfSSL headers skip the test, or fail it under CI=true.
func buildWolfSSLPeer(t *testing.T, dir string) string {
	t.Helper()
	gcc := requirePeer(t, "gcc", "gcc")
	bin := filepath.Join(dir, "wolfssl_peer")
	cmd := exec.Command(gcc, "-Wall", "-O1", "-o", bin, filepath.Join("wolfssl", "wolfssl_peer.c"), "-lwolfssl")
	if out, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(out), "wolfssl/") && strings.Contains(string(out), "No such file") {
			dtlstest.Missing(t, "wolfSSL headers not installed (libwolfssl-dev):\n%s", out)
		}
		t.Fatalf("compiling wolfssl_peer.c: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("wolfssl_peer version: %v", err)
	}
	logVersion(t, "wolfSSL", strings.TrimSpace(string(out)))
	return bin
}

// wolfsslCase is one cell: certificates are P-256 unless p384 is set,
// which gives both sides P-384 certificates and client authentication.
type wolfsslCase struct {
	name       string
	clientAuth bool
	p384       bool
	na         map[string]string // by our role: why the cell cannot run
}

var wolfsslCases = []wolfsslCase{
	{name: "ECDSA-P256"},
	{name: "ClientAuth", clientAuth: true},
	{name: "P384", clientAuth: true, p384: true},
	{name: "Renegotiation", na: map[string]string{
		"client": "Debian builds wolfSSL 5.5.4 without HAVE_SECURE_RENEGOTIATION: it cannot renegotiate",
		"server": "Debian builds wolfSSL 5.5.4 without HAVE_SECURE_RENEGOTIATION: it cannot renegotiate",
	}},
	{name: "FragmentedClientHello", na: map[string]string{
		// Tried: our ClientHello at MTU 128 gets no answer. wolfSSL's
		// stateless server (dtls.c, DoClientHelloStateless) takes a
		// fragmented ClientHello only with WOLFSSL_DTLS_CH_FRAG.
		"client": "Debian's wolfSSL 5.5.4 server drops a fragmented ClientHello (built without WOLFSSL_DTLS_CH_FRAG)",
		"server": "Debian builds wolfSSL 5.5.4 without WOLFSSL_DTLS_MTU: its client cannot lower its MTU to fragment a ClientHello",
	}},
}

func TestWolfSSL(t *testing.T) {
	peer := buildWolfSSLPeer(t, t.TempDir())
	pki := newTestPKI(t)
	for _, role := range []string{"client", "server"} {
		t.Run(role, func(t *testing.T) {
			for _, tc := range wolfsslCases {
				t.Run(tc.name, func(t *testing.T) {
					if why := tc.na[role]; why != "" {
						notApplicable(t, why)
					}
					ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
					defer cancel()
					if role == "client" {
						testWolfSSLServer(ctx, t, peer, pki, tc)
					} else {
						testWolfSSLClient(ctx, t, peer, pki, tc)
					}
				})
			}
		})
	}
}

// testWolfSSLServer is our client against wolfssl_peer server.
func testWolfSSLServer(ctx context.Context, t *testing.T, peer string, pki *testPKI, tc wolfsslCase) {
	args := []string{"-suite", conformanceOpenSSL}
	cfg := plainClientConfig(pki)
	switch {
	case tc.p384:
		args = append(args, "-cert", pki.p384ServerCert, "-key", pki.p384ServerKey)
		cfg.Certificates = []tls.Certificate{pki.p384Client}
	default:
		args = append(args, "-cert", pki.serverCert, "-key", pki.serverKey)
		if tc.clientAuth {
			cfg.Certificates = []tls.Certificate{pki.client}
		}
	}
	if tc.clientAuth {
		args = append(args, "-ca", pki.caFile)
	}
	srv, port := startServerProc(ctx, t, peer, func(port int) []string {
		return append([]string{"server", "-port", strconv.Itoa(port)}, args...)
	})
	s := startSpy(t, addrOf(port))
	dialAndExchange(ctx, t, s.addr(), cfg, want{suite: conformanceSuite, peerCertCN: "localhost"}, goLine, goLine)
	srv.waitLine(ctx, t, "received: "+goLine)
	srv.waitLine(ctx, t, "peer closed")
	srv.waitExit(t, 0)
	if tc.p384 {
		s.checkP384Schemes(t, "wolfSSL", true)
	}
}

// testWolfSSLClient is wolfssl_peer client against our echo server.
func testWolfSSLClient(ctx context.Context, t *testing.T, peer string, pki *testPKI, tc wolfsslCase) {
	cfg := plainServerConfig(pki)
	w := want{suite: conformanceSuite}
	args := []string{"client", "-suite", conformanceOpenSSL, "-ca", pki.caFile, "-servername", "localhost"}
	switch {
	case tc.p384:
		cfg.Certificates = []tls.Certificate{pki.p384Server}
		args = append(args, "-cert", pki.p384ClientCert, "-key", pki.p384ClientKey)
	case tc.clientAuth:
		args = append(args, "-cert", pki.clientCert, "-key", pki.clientKey)
	}
	if tc.clientAuth {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pki.roots
		w.peerCertCN = "dtls-go-client"
	}
	l := listen(t, cfg)
	s := startSpy(t, addrOf(listenerPort(l)))
	res := serveEcho(ctx, l, w, false)
	cli := startProc(ctx, t, peer, append(args, "-port", strconv.Itoa(s.port()))...)
	cli.waitLine(ctx, t, "handshake ok")
	cli.waitLine(ctx, t, "received: "+wolfsslLine) // our echo
	cli.waitExit(t, 0)
	waitEcho(ctx, t, res, true)
	if tc.p384 {
		s.checkP384Schemes(t, "wolfSSL", false)
	}
}
