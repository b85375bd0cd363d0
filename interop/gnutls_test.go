package interop_test

// Interoperability with GnuTLS 3.7's gnutls-serv and gnutls-cli over UDP.
//
//	our client -> gnutls-serv --udp --echo: we Write a line and must Read
//	it back, which is data both ways.
//	gnutls-cli --udp -> our server: our server greets with goLine and then
//	echoes; the test types a line into gnutls-cli's stdin and waits for it
//	to print the echo. Closing gnutls-cli's stdin makes it send
//	close_notify and exit, which our Read sees as EOF.

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dtls-go/dtls"
)

const gnutlsLine = "hello from gnutls"

type gnutlsCase struct {
	name       string
	suite      uint16
	priority   string // GnuTLS priority string selecting the same suite
	psk        bool
	clientAuth bool
	mtu        int
	srtp       bool   // both sides offer SRTP_AES128_CM_HMAC_SHA1_80
	rsa        bool   // an RSA-2048 server certificate
	alpn       bool   // ALPN on both sides (alpnClientProtos, alpnServerProtos)
	resume     bool   // a second connection resumes the first's session
	notYet     string // the cell's reason when our library lacks the feature
	na         string // the cell's reason when GnuTLS lacks it
}

const (
	gnutlsECDSAPriority = "NONE:+VERS-DTLS1.2:+ECDHE-ECDSA:+AES-128-GCM:+AEAD:+SIGN-ALL:+GROUP-ALL:+COMP-NULL"
	gnutlsPSKPriority   = "NONE:+VERS-DTLS1.2:+PSK:+AES-128-CCM-8:+AEAD:+SIGN-ALL:+GROUP-ALL:+COMP-NULL"
	gnutlsRSAPriority   = "NONE:+VERS-DTLS1.2:+ECDHE-RSA:+AES-128-GCM:+AEAD:+SIGN-ALL:+GROUP-ALL:+COMP-NULL"
)

// gnutlsResumeModes are the two ways a DTLS 1.2 session resumes: by
// RFC 5077 ticket (both sides' default) and by session ID, with tickets
// turned off on the server.
var gnutlsResumeModes = []string{"ticket", "id"}

var gnutlsCases = []gnutlsCase{
	{name: "ECDSA-P256", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, priority: gnutlsECDSAPriority},
	{name: "PSK-CCM8", suite: dtls.TLS_PSK_WITH_AES_128_CCM_8, priority: gnutlsPSKPriority, psk: true},
	{name: "ClientAuth", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, priority: gnutlsECDSAPriority, clientAuth: true},
	{name: "MTU300", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, priority: gnutlsECDSAPriority, mtu: 300},
	{name: "CID", na: "GnuTLS 3.7 does not implement DTLS 1.2 connection IDs (RFC 9146)"},
	{name: "SRTP", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, priority: gnutlsECDSAPriority, srtp: true},
	{name: "RSA", suite: dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, priority: gnutlsRSAPriority, rsa: true},
	{name: "ALPN", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, priority: gnutlsECDSAPriority, alpn: true},
	{name: "Resumption", suite: dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, priority: gnutlsECDSAPriority, resume: true},
}

func TestGnuTLS(t *testing.T) {
	serv := requirePeer(t, "GnuTLS", "gnutls-serv", "--version")
	cli := requirePeer(t, "GnuTLS", "gnutls-cli")
	pki := newTestPKI(t)

	// Our client, gnutls-serv.
	t.Run("client", func(t *testing.T) {
		for _, tc := range gnutlsCases {
			t.Run(tc.name, func(t *testing.T) {
				skipCell(t, tc.notYet, tc.na)
				if !tc.resume {
					testGnuTLSServer(t, serv, pki, tc, "")
					return
				}
				for _, mode := range gnutlsResumeModes {
					t.Run(mode, func(t *testing.T) { testGnuTLSServer(t, serv, pki, tc, mode) })
				}
			})
		}
	})

	// gnutls-cli, our server.
	t.Run("server", func(t *testing.T) {
		for _, tc := range gnutlsCases {
			t.Run(tc.name, func(t *testing.T) {
				skipCell(t, tc.notYet, tc.na)
				if !tc.resume {
					testGnuTLSClient(t, cli, pki, tc, "")
					return
				}
				for _, mode := range gnutlsResumeModes {
					t.Run(mode, func(t *testing.T) { testGnuTLSClient(t, cli, pki, tc, mode) })
				}
			})
		}
	})
}

// testGnuTLSServer is our client against gnutls-serv. With a resumption
// mode it connects twice with one session cache, and the second
// connection must resume.
func testGnuTLSServer(t *testing.T, serv string, pki *testPKI, tc gnutlsCase, resumeMode string) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	psk := randomPSK(t)
	args := []string{"--udp", "--echo", "--priority", tc.priority}
	switch {
	case tc.psk:
		passwd := filepath.Join(t.TempDir(), "psk.passwd")
		if err := os.WriteFile(passwd, []byte(pskIdentity+":"+hex.EncodeToString(psk)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--pskpasswd", passwd)
	case tc.rsa:
		args = append(args, "--x509certfile", pki.rsaServerCert, "--x509keyfile", pki.rsaServerKey)
	default:
		args = append(args, "--x509certfile", pki.serverCert, "--x509keyfile", pki.serverKey)
	}
	if tc.clientAuth {
		args = append(args, "--require-client-cert", "--verify-client-cert", "--x509cafile", pki.caFile)
	}
	if tc.mtu != 0 {
		args = append(args, "--mtu", strconv.Itoa(tc.mtu))
	}
	if tc.srtp {
		args = append(args, "--srtp-profiles", "SRTP_AES128_CM_HMAC_SHA1_80")
	}
	for _, p := range alpnServerProtos {
		if tc.alpn {
			args = append(args, "--alpn", p)
		}
	}
	if resumeMode == "id" {
		args = append(args, "--noticket")
	}
	_, port := startServerProc(ctx, t, serv, func(port int) []string {
		return append([]string{"--port", strconv.Itoa(port)}, args...)
	})

	w := want{suite: tc.suite, psk: tc.psk}
	cfg := &dtls.Config{CipherSuites: []uint16{tc.suite}}
	if tc.psk {
		cfg = pskConfig(psk, tc.suite)
	} else {
		cfg.RootCAs, cfg.ServerName = pki.roots, "localhost"
		w.peerCertCN = "localhost"
	}
	if tc.clientAuth {
		cfg.Certificates = []tls.Certificate{pki.client}
	}
	cfg.MTU = tc.mtu
	if tc.srtp {
		cfg.SRTPProtectionProfiles = []uint16{dtls.SRTP_AES128_CM_HMAC_SHA1_80}
		w.srtp = dtls.SRTP_AES128_CM_HMAC_SHA1_80
	}
	if tc.alpn {
		cfg.NextProtos = alpnClientProtos
		w.alpn = alpnWant
	}
	tr := &mtuTracer{}
	cfg.Tracer = tr.trace
	var sessions *countingSessionCache
	if tc.resume {
		sessions = &countingSessionCache{ClientSessionCache: dtls.NewLRUClientSessionCache(4)}
		cfg.ClientSessionCache = sessions
	}
	// gnutls-serv serves until killed, which t.Cleanup does.
	conn := dialAndExchange(ctx, t, addrOf(port), cfg, w, goLine, goLine)
	if tc.rsa {
		checkRSA(t, conn.ConnectionState())
	}
	if tc.resume {
		if sessions.puts() == 0 {
			t.Fatal("the first connection left no session to resume")
		}
		w.resumed = true
		conn := dialAndExchange(ctx, t, addrOf(port), cfg, w, goLine, goLine)
		if st := conn.ConnectionState(); len(st.PeerCertificates) == 0 {
			t.Error("the resumed connection lost the server's certificate")
		}
	}
	if tc.mtu != 0 {
		tr.check(t, tc.mtu, true)
	}
}

// testGnuTLSClient is gnutls-cli against our server. With a resumption
// mode it runs gnutls-cli --resume, which connects, disconnects right
// after the handshake and connects again with the session.
func testGnuTLSClient(t *testing.T, cli string, pki *testPKI, tc gnutlsCase, resumeMode string) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	psk := randomPSK(t)
	w := want{suite: tc.suite, psk: tc.psk}
	cfg := &dtls.Config{CipherSuites: []uint16{tc.suite}}
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
	cfg.MTU = tc.mtu
	if tc.srtp {
		cfg.SRTPProtectionProfiles = []uint16{dtls.SRTP_AES128_CM_HMAC_SHA1_80}
		w.srtp = dtls.SRTP_AES128_CM_HMAC_SHA1_80
	}
	if tc.alpn {
		cfg.NextProtos = alpnServerProtos
		w.alpn = alpnWant
	}
	if resumeMode == "id" {
		cfg.SessionTicketsDisabled = true
	}
	tr := &mtuTracer{}
	cfg.Tracer = tr.trace
	l := listen(t, cfg)
	var first <-chan echoResult
	if tc.resume {
		// The first connection carries no data: gnutls-cli closes it
		// right after the handshake.
		first = serveEcho(ctx, l, w, false)
	} else {
		// The one connection: it greets, then echoes.
		first = serveEcho(ctx, l, w, true)
	}

	args := []string{"--udp", "--port", strconv.Itoa(listenerPort(l)), "--priority", tc.priority}
	if tc.psk {
		args = append(args, "--pskusername", pskIdentity, "--pskkey", hex.EncodeToString(psk))
	} else {
		args = append(args, "--x509cafile", pki.caFile, "--verify-hostname", "localhost")
	}
	if tc.srtp {
		args = append(args, "--srtp-profiles", "SRTP_AES128_CM_HMAC_SHA1_80")
	}
	if tc.clientAuth {
		args = append(args, "--x509certfile", pki.clientCert, "--x509keyfile", pki.clientKey)
	}
	if tc.mtu != 0 {
		args = append(args, "--mtu", strconv.Itoa(tc.mtu))
	}
	for _, p := range alpnClientProtos {
		if tc.alpn {
			args = append(args, "--alpn", p)
		}
	}
	if tc.resume {
		args = append(args, "--resume")
	}
	args = append(args, "127.0.0.1")
	p := startProc(ctx, t, cli, args...)
	res := first
	if tc.resume {
		select {
		case r := <-first:
			if r.err != nil {
				t.Fatalf("first connection: %v", r.err)
			}
		case <-ctx.Done():
			t.Fatalf("the first connection did not end; gnutls-cli:\n%s", p.output())
		}
		w.resumed = true
		res = serveEcho(ctx, l, w, true)
		p.waitLine(ctx, t, "This is a resumed session")
	}
	if tc.alpn {
		p.waitLine(ctx, t, "Application protocol: "+alpnWant)
	}
	if tc.rsa {
		p.waitLine(ctx, t, "RSA")
	}
	p.waitLine(ctx, t, goLine) // our greeting: the handshake is done
	p.send(t, gnutlsLine+"\n")
	p.waitLine(ctx, t, gnutlsLine) // our echo
	p.stdin.Close()                // gnutls-cli sends close_notify and exits
	p.waitExit(t, 0)
	waitEcho(ctx, t, res, true)
	if tc.mtu != 0 {
		tr.check(t, tc.mtu, false)
	}
}
