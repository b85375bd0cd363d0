package interop_test

// The OpenSSL cells the root package's TestOpenSSLServer/TestOpenSSLClient
// (and its TestOpenSSL*Resumption and TestOpenSSL*SRTP) do not cover:
// client authentication, and the features that cannot run.
// Same exchange as there: a line each way, then close_notify.

import (
	"context"
	"crypto/tls"
	"strconv"
	"testing"

	"github.com/dtls-go/dtls"
)

const opensslLine = "hello from openssl" // s_server/s_client read some lines starting Q, R, K... as commands

var opensslMoreCases = []struct {
	name       string
	notYet, na string
}{
	{name: "ClientAuth"},
	{name: "RPK", na: "OpenSSL 3.0 does not implement raw public keys (RFC 7250); 3.2 does"},
	{name: "CID", na: "OpenSSL does not implement DTLS 1.2 connection IDs (RFC 9146)"},
}

func TestOpenSSLMore(t *testing.T) {
	openssl := requirePeer(t, "OpenSSL", "openssl", "version")
	pki := newTestPKI(t)
	const suite, cipher = dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ECDHE-ECDSA-AES128-GCM-SHA256"
	w := want{suite: suite}

	// Our client presents a certificate to s_server -Verify.
	t.Run("client", func(t *testing.T) {
		for _, tc := range opensslMoreCases {
			t.Run(tc.name, func(t *testing.T) {
				skipCell(t, tc.notYet, tc.na)
				ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
				defer cancel()
				srv, port := startServerProc(ctx, t, openssl, func(port int) []string {
					return []string{"s_server", "-dtls1_2", "-naccept", "1", "-accept", addrOf(port),
						"-cipher", cipher, "-cert", pki.serverCert, "-key", pki.serverKey,
						"-Verify", "1", "-CAfile", pki.caFile, "-verify_return_error"}
				})
				cfg := &dtls.Config{
					CipherSuites: []uint16{suite},
					RootCAs:      pki.roots,
					ServerName:   "localhost",
					Certificates: []tls.Certificate{pki.client},
				}
				conn, err := dtls.DialContext(ctx, "udp", addrOf(port), cfg)
				if err != nil {
					t.Fatalf("DialContext: %v", err)
				}
				defer conn.Close()
				cw := w
				cw.peerCertCN = "localhost"
				if err := cw.check(conn.ConnectionState()); err != nil {
					t.Error(err)
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

	// s_client presents a certificate to our server, which requires one.
	t.Run("server", func(t *testing.T) {
		for _, tc := range opensslMoreCases {
			t.Run(tc.name, func(t *testing.T) {
				skipCell(t, tc.notYet, tc.na)
				ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
				defer cancel()
				cfg := &dtls.Config{
					CipherSuites: []uint16{suite},
					Certificates: []tls.Certificate{pki.server},
					ClientAuth:   tls.RequireAndVerifyClientCert,
					ClientCAs:    pki.roots,
				}
				l := listen(t, cfg)
				sw := w
				sw.peerCertCN = "dtls-go-client"
				res := serveEcho(ctx, l, sw, true)
				cli := startProc(ctx, t, openssl, "s_client", "-dtls1_2",
					"-connect", "127.0.0.1:"+strconv.Itoa(listenerPort(l)), "-cipher", cipher,
					"-CAfile", pki.caFile, "-servername", "localhost", "-verify_hostname", "localhost",
					"-verify_return_error", "-cert", pki.clientCert, "-key", pki.clientKey)
				cli.waitLine(ctx, t, goLine)
				cli.send(t, opensslLine+"\n")
				cli.waitLine(ctx, t, opensslLine)
				cli.stdin.Close()
				cli.waitExit(t, 0)
				waitEcho(ctx, t, res, true)
			})
		}
	})
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
