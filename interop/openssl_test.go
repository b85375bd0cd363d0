package interop_test

// The OpenSSL cells the root package's TestOpenSSLServer/TestOpenSSLClient
// (and its TestOpenSSL*Resumption and TestOpenSSL*SRTP) do not cover:
// RSA certificates, client authentication, ALPN, and the features that
// cannot run.
// Same exchange as there: a line each way, then close_notify.

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dtls-go/dtls"
)

const opensslLine = "hello from openssl" // s_server/s_client read some lines starting Q, R, K... as commands

// opensslMoreCase is one such cell. Certificates are ECDSA P-256 unless
// rsa is set.
type opensslMoreCase struct {
	name       string
	rsa        bool // an RSA-2048 server certificate with ECDHE-RSA
	clientAuth bool // the server requires and verifies a client certificate
	alpn       bool // both sides configure ALPN (see alpnClientProtos)
	notYet, na string
}

var opensslMoreCases = []opensslMoreCase{
	{name: "RSA", rsa: true},
	{name: "ClientAuth", clientAuth: true},
	{name: "ALPN", alpn: true},
	{name: "RPK", na: "OpenSSL 3.0 does not implement raw public keys (RFC 7250); 3.2 does"},
	{name: "CID", na: "OpenSSL does not implement DTLS 1.2 connection IDs (RFC 9146)"},
}

// The ALPN cells: the client offers two protocols, the server supports
// one of them and one the client does not offer, so exactly one choice
// is right whichever side's preference the peer follows.
var (
	alpnClientProtos = []string{"h2", "coap"}
	alpnServerProtos = []string{"x-unused", "coap"}
)

const alpnWant = "coap"

// suite returns the cell's suite, ours and OpenSSL's name for it.
func (tc opensslMoreCase) suite() (uint16, string) {
	if tc.rsa {
		return dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "ECDHE-RSA-AES128-GCM-SHA256"
	}
	return dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ECDHE-ECDSA-AES128-GCM-SHA256"
}

func TestOpenSSLMore(t *testing.T) {
	openssl := requirePeer(t, "OpenSSL", "openssl", "version")
	pki := newTestPKI(t)

	// Our client against s_server.
	t.Run("client", func(t *testing.T) {
		for _, tc := range opensslMoreCases {
			t.Run(tc.name, func(t *testing.T) {
				skipCell(t, tc.notYet, tc.na)
				ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
				defer cancel()
				suite, cipher := tc.suite()
				certFile, keyFile := pki.serverCert, pki.serverKey
				if tc.rsa {
					certFile, keyFile = pki.rsaServerCert, pki.rsaServerKey
				}
				args := []string{"s_server", "-dtls1_2", "-naccept", "1", "-cipher", cipher, "-cert", certFile, "-key", keyFile}
				if tc.clientAuth {
					args = append(args, "-Verify", "1", "-CAfile", pki.caFile, "-verify_return_error")
				}
				if tc.alpn {
					args = append(args, "-alpn", strings.Join(alpnServerProtos, ","))
				}
				srv, port := startServerProc(ctx, t, openssl, func(port int) []string {
					return append(slices.Clip(args), "-accept", addrOf(port))
				})
				cfg := &dtls.Config{CipherSuites: []uint16{suite}, RootCAs: pki.roots, ServerName: "localhost"}
				w := want{suite: suite, peerCertCN: "localhost"}
				if tc.clientAuth {
					cfg.Certificates = []tls.Certificate{pki.client}
				}
				if tc.alpn {
					cfg.NextProtos = alpnClientProtos
					w.alpn = alpnWant
				}
				conn, err := dtls.DialContext(ctx, "udp", addrOf(port), cfg)
				if err != nil {
					t.Fatalf("DialContext: %v", err)
				}
				defer conn.Close()
				if err := w.check(conn.ConnectionState()); err != nil {
					t.Error(err)
				}
				if tc.rsa {
					checkRSA(t, conn.ConnectionState())
				}
				if tc.alpn {
					srv.waitLine(ctx, t, "ALPN protocols selected: "+alpnWant)
				}
				if _, err := conn.Write([]byte(goLine + "\n")); err != nil {
					t.Fatalf("Write: %v", err)
				}
				srv.waitLine(ctx, t, goLine)
				srv.send(t, opensslLine+"\n")
				readLine(ctx, t, conn, opensslLine+"\n")
				if err := conn.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				srv.waitExit(t, 0)
			})
		}
	})

	// s_client against our server.
	t.Run("server", func(t *testing.T) {
		for _, tc := range opensslMoreCases {
			t.Run(tc.name, func(t *testing.T) {
				skipCell(t, tc.notYet, tc.na)
				ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
				defer cancel()
				suite, cipher := tc.suite()
				cfg := &dtls.Config{CipherSuites: []uint16{suite}, Certificates: []tls.Certificate{pki.server}}
				if tc.rsa {
					cfg.Certificates = []tls.Certificate{pki.rsaServer}
				}
				w := want{suite: suite}
				if tc.clientAuth {
					cfg.ClientAuth = tls.RequireAndVerifyClientCert
					cfg.ClientCAs = pki.roots
					w.peerCertCN = "dtls-go-client"
				}
				if tc.alpn {
					cfg.NextProtos = alpnServerProtos
					w.alpn = alpnWant
				}
				l := listen(t, cfg)
				res := serveEcho(ctx, l, w, true)
				args := []string{"s_client", "-dtls1_2",
					"-connect", "127.0.0.1:" + strconv.Itoa(listenerPort(l)), "-cipher", cipher,
					"-CAfile", pki.caFile, "-servername", "localhost", "-verify_hostname", "localhost",
					"-verify_return_error"}
				if tc.clientAuth {
					args = append(args, "-cert", pki.clientCert, "-key", pki.clientKey)
				}
				if tc.alpn {
					args = append(args, "-alpn", strings.Join(alpnClientProtos, ","))
				}
				if tc.rsa {
					// s_client names the server's key in its summary.
					args = append(args, "-brief")
				}
				cli := startProc(ctx, t, openssl, args...)
				if tc.alpn {
					cli.waitLine(ctx, t, "ALPN protocol: "+alpnWant)
				}
				cli.waitLine(ctx, t, goLine)
				cli.send(t, opensslLine+"\n")
				cli.waitLine(ctx, t, opensslLine)
				cli.stdin.Close()
				cli.waitExit(t, 0)
				waitEcho(ctx, t, res, true)
				if tc.rsa && !strings.Contains(cli.output(), "RSA") {
					t.Errorf("s_client's summary does not mention RSA:\n%s", cli.output())
				}
			})
		}
	})
}

// checkRSA checks that the peer authenticated with an RSA-2048 key.
func checkRSA(t *testing.T, st dtls.ConnectionState) {
	t.Helper()
	if len(st.PeerCertificates) == 0 {
		t.Error("no peer certificate")
		return
	}
	k, ok := st.PeerCertificates[0].PublicKey.(*rsa.PublicKey)
	if !ok || k.N.BitLen() != rsaKeyBits {
		t.Errorf("peer key %T, want RSA-%d", st.PeerCertificates[0].PublicKey, rsaKeyBits)
	}
}

// readLine reads one datagram from conn, bounded, and checks it is want.
func readLine(ctx context.Context, t *testing.T, conn *dtls.Conn, want string) {
	t.Helper()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	buf := make([]byte, 1<<14)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got := string(buf[:n]); got != want {
		t.Errorf("Read %q, want %q", got, want)
	}
}
