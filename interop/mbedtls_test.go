package interop_test

// Interoperability with mbedTLS 2.28 (Debian's libmbedtls-dev) through
// mbedtls/dtls_peer.c, a small client and server on its DTLS API that the
// test compiles with gcc. The mbedTLS side always sends or echoes one
// datagram, so data flows both ways in every cell; its close_notify ends
// our server's connection and ours ends its server.

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dtls-go/dtls"
)

const mbedtlsLine = "hello from mbedtls" // dtls_peer.c's CLIENT_LINE

type mbedtlsCase struct {
	name       string
	suite      uint16
	mbedSuite  string // mbedTLS's name for the same suite
	psk        bool
	clientAuth bool // the server requires and verifies a client certificate
	mtu        int
	notYet, na string // reasons for a cell that does not run (see skipCell)
}

var mbedtlsCases = []mbedtlsCase{
	{name: "ECDSA-P256", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, mbedSuite: "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"},
	{name: "PSK-CCM8", suite: dtls.TLS_PSK_WITH_AES_128_CCM_8, mbedSuite: "TLS-PSK-WITH-AES-128-CCM-8", psk: true},
	{name: "ClientAuth", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, mbedSuite: "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", clientAuth: true},
	{name: "MTU300", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, mbedSuite: "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", mtu: 300},
	{name: "RPK", na: "mbedTLS does not implement raw public keys (RFC 7250)"},
	{name: "CID", na: "Debian builds mbedTLS 2.28 without MBEDTLS_SSL_DTLS_CONNECTION_ID (and 2.28's CID is the pre-RFC 9146 draft)"},
	{name: "SRTP", notYet: "the C peer (interop/mbedtls) does not configure use_srtp yet (mbedtls_ssl_conf_dtls_srtp_protection_profiles); dtls-go has it, proven against OpenSSL, GnuTLS and pion"},
}

// buildMbedTLSPeer compiles dtls_peer.c into dir. Missing gcc or mbedTLS
// headers skip the test, or fail it under CI=true.
func buildMbedTLSPeer(t *testing.T, dir string) string {
	t.Helper()
	gcc := requirePeer(t, "gcc", "gcc")
	bin := filepath.Join(dir, "dtls_peer")
	cmd := exec.Command(gcc, "-Wall", "-O1", "-o", bin, filepath.Join("mbedtls", "dtls_peer.c"),
		"-lmbedtls", "-lmbedx509", "-lmbedcrypto")
	if out, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(out), "mbedtls/") && strings.Contains(string(out), "No such file") && os.Getenv("CI") != "true" {
			t.Skipf("mbedTLS headers not installed (libmbedtls-dev):\n%s", out)
		}
		t.Fatalf("compiling dtls_peer.c: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("dtls_peer version: %v", err)
	}
	logVersion(t, "mbedTLS", strings.TrimSpace(string(out)))
	return bin
}

func TestMbedTLS(t *testing.T) {
	peer := buildMbedTLSPeer(t, t.TempDir())
	pki := newTestPKI(t)

	// Our client, dtls_peer server.
	t.Run("client", func(t *testing.T) {
		for _, tc := range mbedtlsCases {
			t.Run(tc.name, func(t *testing.T) {
				skipCell(t, tc.notYet, tc.na)
				ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
				defer cancel()
				psk := randomPSK(t)
				args := []string{"-suite", tc.mbedSuite}
				if tc.psk {
					args = append(args, "-psk", hex.EncodeToString(psk), "-identity", pskIdentity)
				} else {
					args = append(args, "-cert", pki.serverCert, "-key", pki.serverKey)
				}
				if tc.clientAuth {
					args = append(args, "-ca", pki.caFile)
				}
				if tc.mtu != 0 {
					args = append(args, "-mtu", strconv.Itoa(tc.mtu))
				}
				srv, port := startServerProc(ctx, t, peer, func(port int) []string {
					return append([]string{"server", "-port", strconv.Itoa(port)}, args...)
				})

				w := want{suite: tc.suite, psk: tc.psk}
				cfg := &dtls.Config{CipherSuites: []uint16{tc.suite}, MTU: tc.mtu}
				if tc.psk {
					cfg = pskConfig(psk, tc.suite)
				} else {
					cfg.RootCAs, cfg.ServerName = pki.roots, "localhost"
					w.peerCertCN = "localhost"
				}
				if tc.clientAuth {
					cfg.Certificates = []tls.Certificate{pki.client}
				}
				tr := &mtuTracer{}
				cfg.Tracer = tr.trace
				dialAndExchange(ctx, t, addrOf(port), cfg, w, goLine, goLine)
				srv.waitLine(ctx, t, "received: "+goLine)
				srv.waitLine(ctx, t, "peer closed") // our close_notify
				srv.waitExit(t, 0)
				if tc.mtu != 0 {
					tr.check(t, tc.mtu, true)
				}
			})
		}
	})

	// dtls_peer client, our server.
	t.Run("server", func(t *testing.T) {
		for _, tc := range mbedtlsCases {
			t.Run(tc.name, func(t *testing.T) {
				skipCell(t, tc.notYet, tc.na)
				ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
				defer cancel()
				psk := randomPSK(t)
				w := want{suite: tc.suite, psk: tc.psk}
				cfg := &dtls.Config{CipherSuites: []uint16{tc.suite}, MTU: tc.mtu}
				if tc.psk {
					cfg = serverPSKConfig(psk, tc.suite)
				} else {
					cfg.Certificates = []tls.Certificate{pki.server}
				}
				if tc.clientAuth {
					cfg.ClientAuth = tls.RequireAndVerifyClientCert
					cfg.ClientCAs = pki.roots
					w.peerCertCN = "dtls-go-client"
				}
				tr := &mtuTracer{}
				cfg.Tracer = tr.trace
				l := listen(t, cfg)
				res := serveEcho(ctx, l, w, false)

				args := []string{"client", "-port", strconv.Itoa(listenerPort(l)), "-suite", tc.mbedSuite}
				if tc.psk {
					args = append(args, "-psk", hex.EncodeToString(psk), "-identity", pskIdentity)
				} else {
					args = append(args, "-ca", pki.caFile, "-servername", "localhost")
				}
				if tc.clientAuth {
					args = append(args, "-cert", pki.clientCert, "-key", pki.clientKey)
				}
				if tc.mtu != 0 {
					args = append(args, "-mtu", strconv.Itoa(tc.mtu))
				}
				cli := startProc(ctx, t, peer, args...)
				cli.waitLine(ctx, t, "suite: "+tc.mbedSuite)
				cli.waitLine(ctx, t, "received: "+mbedtlsLine) // our echo
				cli.waitExit(t, 0)
				waitEcho(ctx, t, res, true)
				if tc.mtu != 0 {
					tr.check(t, tc.mtu, false)
				}
			})
		}
	})
}
