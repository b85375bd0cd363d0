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
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/internal/dtlstest"
)

const mbedtlsLine = "hello from mbedtls" // dtls_peer.c's CLIENT_LINE

type mbedtlsCase struct {
	name       string
	suite      uint16
	mbedSuite  string // mbedTLS's name for the same suite
	psk        bool
	clientAuth bool // the server requires and verifies a client certificate
	mtu        int
	rsa        bool   // an RSA-2048 server certificate
	alpn       bool   // ALPN on both sides (alpnClientProtos, alpnServerProtos)
	srtp       bool   // use_srtp with SRTP_AES128_CM_HMAC_SHA1_80; the SRTP keys must agree
	resume     bool   // a second connection resumes the first's session
	notYet, na string // reasons for a cell that does not run (see skipCell)
}

// mbedtlsResumeModes are dtls_peer's -resume values: by RFC 5077 ticket
// and by session ID.
var mbedtlsResumeModes = []string{"ticket", "id"}

var mbedtlsCases = []mbedtlsCase{
	{name: "ECDSA-P256", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, mbedSuite: "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"},
	{name: "PSK-CCM8", suite: dtls.TLS_PSK_WITH_AES_128_CCM_8, mbedSuite: "TLS-PSK-WITH-AES-128-CCM-8", psk: true},
	{name: "ClientAuth", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, mbedSuite: "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", clientAuth: true},
	{name: "MTU300", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, mbedSuite: "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", mtu: 300},
	{name: "RPK", na: "mbedTLS does not implement raw public keys (RFC 7250)"},
	{name: "CID", na: "Debian builds mbedTLS 2.28 without MBEDTLS_SSL_DTLS_CONNECTION_ID (and 2.28's CID is the pre-RFC 9146 draft)"},
	{name: "SRTP", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, mbedSuite: "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", srtp: true},
	{name: "RSA", suite: dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, mbedSuite: "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256", rsa: true},
	{name: "ALPN", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, mbedSuite: "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", alpn: true},
	{name: "Resumption", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, mbedSuite: "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", resume: true},
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
		if strings.Contains(string(out), "mbedtls/") && strings.Contains(string(out), "No such file") {
			dtlstest.Missing(t, "mbedTLS headers not installed (libmbedtls-dev):\n%s", out)
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
	for _, role := range []string{"client", "server"} {
		t.Run(role, func(t *testing.T) {
			for _, tc := range mbedtlsCases {
				t.Run(tc.name, func(t *testing.T) {
					skipCell(t, tc.notYet, tc.na)
					run := testMbedTLSServer // our client
					if role == "server" {
						run = testMbedTLSClient
					}
					if !tc.resume {
						run(t, peer, pki, tc, "")
						return
					}
					for _, mode := range mbedtlsResumeModes {
						t.Run(mode, func(t *testing.T) { run(t, peer, pki, tc, mode) })
					}
				})
			}
		})
	}
}

// mbedtlsArgs returns the dtls_peer options both roles share.
func mbedtlsArgs(tc mbedtlsCase, psk []byte, resumeMode string) []string {
	args := []string{"-suite", tc.mbedSuite}
	if tc.psk {
		args = append(args, "-psk", hex.EncodeToString(psk), "-identity", pskIdentity)
	}
	if tc.mtu != 0 {
		args = append(args, "-mtu", strconv.Itoa(tc.mtu))
	}
	if tc.srtp {
		args = append(args, "-srtp", "SRTP_AES128_CM_HMAC_SHA1_80")
	}
	if resumeMode != "" {
		args = append(args, "-resume", resumeMode)
	}
	return args
}

// checkMbedTLSState reads what dtls_peer prints after a handshake, up to
// its resumption verdict, and checks it against our side, conn.
func checkMbedTLSState(ctx context.Context, t *testing.T, p *proc, tc mbedtlsCase, conn *dtls.Conn, second bool) {
	t.Helper()
	p.waitLine(ctx, t, "suite: "+tc.mbedSuite)
	if tc.alpn {
		p.waitLine(ctx, t, "alpn: "+alpnWant)
	}
	if tc.srtp {
		p.waitLine(ctx, t, "srtp: MBEDTLS_TLS_SRTP_AES128_CM_HMAC_SHA1_80")
		theirs := p.valueLine(ctx, t, "srtp keys: ")
		k, err := conn.SRTPKeys()
		if err != nil {
			t.Fatalf("SRTPKeys: %v", err)
		}
		ours := hex.EncodeToString(slices.Concat(k.ClientWriteKey, k.ServerWriteKey, k.ClientWriteSalt, k.ServerWriteSalt))
		if ours != theirs {
			t.Errorf("SRTP keying material differs:\nours:    %s\nmbedTLS: %s", ours, theirs)
		}
	}
	if tc.resume && second {
		p.waitLine(ctx, t, "resumed: yes")
	}
}

// testMbedTLSServer is our client against dtls_peer server.
func testMbedTLSServer(t *testing.T, peer string, pki *testPKI, tc mbedtlsCase, resumeMode string) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	psk := randomPSK(t)
	args := mbedtlsArgs(tc, psk, resumeMode)
	switch {
	case tc.psk:
	case tc.rsa:
		args = append(args, "-cert", pki.rsaServerCert, "-key", pki.rsaServerKey)
	default:
		args = append(args, "-cert", pki.serverCert, "-key", pki.serverKey)
	}
	if tc.clientAuth {
		args = append(args, "-ca", pki.caFile)
	}
	if tc.alpn {
		args = append(args, "-alpn", strings.Join(alpnServerProtos, ","))
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
	if tc.alpn {
		cfg.NextProtos = alpnClientProtos
		w.alpn = alpnWant
	}
	if tc.srtp {
		cfg.SRTPProtectionProfiles = []uint16{dtls.SRTP_AES128_CM_HMAC_SHA1_80}
		w.srtp = dtls.SRTP_AES128_CM_HMAC_SHA1_80
	}
	var sessions *countingSessionCache
	if tc.resume {
		sessions = &countingSessionCache{ClientSessionCache: dtls.NewLRUClientSessionCache(4)}
		cfg.ClientSessionCache = sessions
		if resumeMode == "id" {
			cfg.SessionTicketsDisabled = true
		}
	}
	tr := &mtuTracer{}
	cfg.Tracer = tr.trace
	connections := 1
	if tc.resume {
		connections = 2
	}
	for i := range connections {
		if i == 1 {
			if sessions.puts() == 0 {
				t.Fatal("the first connection left no session to resume")
			}
			w.resumed = true
		}
		conn := dialAndExchange(ctx, t, addrOf(port), cfg, w, goLine, goLine)
		checkMbedTLSState(ctx, t, srv, tc, conn, i == 1)
		if tc.rsa {
			checkRSA(t, conn.ConnectionState())
		}
		srv.waitLine(ctx, t, "received: "+goLine)
		srv.waitLine(ctx, t, "peer closed") // our close_notify
	}
	srv.waitExit(t, 0)
	if tc.mtu != 0 {
		tr.check(t, tc.mtu, true)
	}
}

// testMbedTLSClient is dtls_peer client against our server.
func testMbedTLSClient(t *testing.T, peer string, pki *testPKI, tc mbedtlsCase, resumeMode string) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	psk := randomPSK(t)
	w := want{suite: tc.suite, psk: tc.psk}
	cfg := &dtls.Config{CipherSuites: []uint16{tc.suite}, MTU: tc.mtu}
	switch {
	case tc.psk:
		cfg = serverPSKConfig(psk, tc.suite)
	case tc.rsa:
		cfg.Certificates = []tls.Certificate{pki.rsaServer}
	default:
		cfg.Certificates = []tls.Certificate{pki.server}
	}
	if tc.clientAuth {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pki.roots
		w.peerCertCN = "dtls-go-client"
	}
	if tc.alpn {
		cfg.NextProtos = alpnServerProtos
		w.alpn = alpnWant
	}
	if tc.srtp {
		cfg.SRTPProtectionProfiles = []uint16{dtls.SRTP_AES128_CM_HMAC_SHA1_80}
		w.srtp = dtls.SRTP_AES128_CM_HMAC_SHA1_80
	}
	if resumeMode == "id" {
		cfg.SessionTicketsDisabled = true
	}
	tr := &mtuTracer{}
	cfg.Tracer = tr.trace
	l := listen(t, cfg)

	args := append([]string{"client", "-port", strconv.Itoa(listenerPort(l))}, mbedtlsArgs(tc, psk, resumeMode)...)
	if !tc.psk {
		args = append(args, "-ca", pki.caFile, "-servername", "localhost")
	}
	if tc.clientAuth {
		args = append(args, "-cert", pki.clientCert, "-key", pki.clientKey)
	}
	if tc.alpn {
		args = append(args, "-alpn", strings.Join(alpnClientProtos, ","))
	}
	conns := make(chan *dtls.Conn, 2)
	cli := startProc(ctx, t, peer, args...)
	connections := 1
	if tc.resume {
		connections = 2
	}
	for i := range connections {
		w.resumed = i == 1
		res := serveEchoConn(ctx, l, w, false, conns)
		var conn *dtls.Conn
		select {
		case conn = <-conns:
		case r := <-res:
			t.Fatalf("connection %d: %v; dtls_peer:\n%s", i+1, r.err, cli.output())
		case <-ctx.Done():
			t.Fatalf("connection %d: no handshake; dtls_peer:\n%s", i+1, cli.output())
		}
		checkMbedTLSState(ctx, t, cli, tc, conn, i == 1)
		cli.waitLine(ctx, t, "received: "+mbedtlsLine) // our echo
		waitEcho(ctx, t, res, true)
	}
	cli.waitExit(t, 0)
	if tc.mtu != 0 {
		tr.check(t, tc.mtu, false)
	}
}
