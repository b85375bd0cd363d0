package dtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtls-go/dtls/internal/dtlstest"
)

// Config.GetClientCertificate (crypto/tls's semantics) in the DTLS 1.2 and
// 1.3 handshakes and in 1.3 post-handshake authentication.

// handshakeBoth runs a handshake on a connected pair and returns both
// errors, the server's state, and, for 1.3 where the client's handshake
// ends before the server checks its certificate, the error of a client
// Read that follows.
func handshakeBoth(t *testing.T, cc, sc *Config) (cerr, serr error, srvState ConnectionState) {
	t.Helper()
	cli, srv := connectedPair(t, cc, sc)
	defer cli.Close()
	defer srv.Close()
	errc := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err == nil {
			_, err = srv.Write([]byte("hi"))
		}
		errc <- err
	}()
	cerr = cli.Handshake()
	if cerr == nil {
		cli.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, cerr = cli.Read(make([]byte, 10))
	}
	serr = <-errc
	return cerr, serr, srv.ConnectionState()
}

func TestGetClientCertificate(t *testing.T) {
	checkNoGoroutineLeak(t)
	p256, rsaCert := certs(t)["p256"], certs(t)["rsa"]
	errNoCert := errors.New("no certificate for you")
	for _, vers := range []uint16{VersionDTLS12, VersionDTLS13} {
		for _, tc := range []struct {
			name       string
			get        func(*CertificateRequestInfo) (*tls.Certificate, error)
			clientAuth tls.ClientAuthType
			wantCert   bool
			wantErr    error // the client's
			serverFail bool
		}{
			{name: "certificate", clientAuth: tls.RequireAndVerifyClientCert, wantCert: true,
				get: func(*CertificateRequestInfo) (*tls.Certificate, error) { return &rsaCert.tls, nil }},
			{name: "error", clientAuth: tls.RequireAndVerifyClientCert, wantErr: errNoCert, serverFail: true,
				get: func(*CertificateRequestInfo) (*tls.Certificate, error) { return nil, errNoCert }},
			{name: "empty, optional", clientAuth: tls.VerifyClientCertIfGiven,
				get: func(*CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }},
			{name: "empty, required", clientAuth: tls.RequireAndVerifyClientCert, serverFail: true,
				get: func(*CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }},
		} {
			t.Run(fmt.Sprintf("%#x/%s", vers, tc.name), func(t *testing.T) {
				sc := &Config{Certificates: []tls.Certificate{p256.tls}, ClientAuth: tc.clientAuth, ClientCAs: rsaCert.pool, MaxVersion: vers, MinVersion: vers, HandshakeTimeout: 5 * time.Second}
				cc := &Config{RootCAs: p256.pool, ServerName: "dtls.test", MaxVersion: vers, MinVersion: vers, HandshakeTimeout: 5 * time.Second}
				// Certificates is ignored when GetClientCertificate is
				// set: this one would fail verification.
				cc.Certificates = []tls.Certificate{p256.tls}
				var calls atomic.Int32
				var info CertificateRequestInfo
				cc.GetClientCertificate = func(cri *CertificateRequestInfo) (*tls.Certificate, error) {
					calls.Add(1)
					info = *cri
					if cri.Context() == nil {
						t.Error("nil Context")
					}
					return tc.get(cri)
				}
				cerr, serr, st := handshakeBoth(t, cc, sc)
				if calls.Load() != 1 {
					t.Fatalf("GetClientCertificate called %d times", calls.Load())
				}
				if info.Version != vers || len(info.SignatureSchemes) == 0 {
					t.Errorf("CertificateRequestInfo %+v", info)
				}
				if info.SupportsCertificate(&rsaCert.tls) != nil {
					t.Errorf("SupportsCertificate refuses an RSA certificate the server asked for")
				}
				if tc.wantErr != nil && !errors.Is(cerr, tc.wantErr) {
					t.Fatalf("client error %v, want %v", cerr, tc.wantErr)
				}
				if tc.serverFail != (serr != nil) {
					t.Fatalf("server error %v, want failure %v (client %v)", serr, tc.serverFail, cerr)
				}
				if tc.serverFail {
					return
				}
				if cerr != nil {
					t.Fatalf("client: %v", cerr)
				}
				if got := len(st.PeerCertificates) > 0; got != tc.wantCert {
					t.Fatalf("server saw a client certificate: %v, want %v", got, tc.wantCert)
				}
				if tc.wantCert && !bytes.Equal(st.PeerCertificates[0].Raw, rsaCert.tls.Certificate[0]) {
					t.Fatal("server saw Certificates' certificate, not GetClientCertificate's")
				}
			})
		}
	}
}

// Post-handshake authentication asks GetClientCertificate at each
// CertificateRequest; its error ends the connection, an empty answer is
// an empty Certificate.
func TestGetClientCertificatePostHandshake13(t *testing.T) {
	ca := dtlstest.SelfSigned(t, dtlstest.Spec{Serial: 7, IsCA: true})
	errNoCert := errors.New("no certificate now")
	for _, tc := range []struct {
		name string
		get  func() (*tls.Certificate, error)
		want func(t *testing.T, err error, srv *Conn, cli *Conn)
	}{
		{"certificate", func() (*tls.Certificate, error) { return &ca.TLS, nil }, func(t *testing.T, err error, srv, _ *Conn) {
			if err != nil || len(srv.ConnectionState().PeerCertificates) != 1 {
				t.Fatalf("request: %v, %d certificates", err, len(srv.ConnectionState().PeerCertificates))
			}
		}},
		{"empty", func() (*tls.Certificate, error) { return &tls.Certificate{}, nil }, func(t *testing.T, err error, srv, _ *Conn) {
			if !errors.Is(err, errNoPostHandshakeCert) {
				t.Fatalf("request: %v, want the client's empty Certificate", err)
			}
		}},
		{"error", func() (*tls.Certificate, error) { return nil, errNoCert }, func(t *testing.T, err error, srv, cli *Conn) {
			if err == nil {
				t.Fatal("request succeeded")
			}
			if !errors.Is(cli.fatal(), errNoCert) {
				t.Fatalf("client error %v, want the callback's", cli.fatal())
			}
			if a := alert(cli.alertSent.Load() - 1); a != alertInternalError {
				t.Fatalf("client sent %v, want internal_error", a)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := phaConfigs(t, false)
			sc.ClientCAs = ca.Pool
			var calls atomic.Int32
			cc.GetClientCertificate = func(cri *CertificateRequestInfo) (*tls.Certificate, error) {
				calls.Add(1)
				if cri.Version != VersionDTLS13 || len(cri.SignatureSchemes) == 0 || cri.Context() == nil {
					t.Errorf("CertificateRequestInfo %+v", cri)
				}
				return tc.get()
			}
			phaRun(t, cc, sc, false, func(t *testing.T, cli, srv *Conn) {
				if calls.Load() != 0 {
					t.Fatal("GetClientCertificate called in a handshake without a CertificateRequest")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := srv.RequestClientCertificate(ctx)
				settle()
				if calls.Load() != 1 {
					t.Fatalf("GetClientCertificate called %d times", calls.Load())
				}
				tc.want(t, err, srv, cli)
			})
		})
	}
}
