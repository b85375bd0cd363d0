package dtls

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/dtlstest"
	"github.com/dtls-go/dtls/internal/netsim"
)

// Post-handshake client authentication (RFC 8446 §4.6.2) between our
// client and server, over netsim under synctest.

// phaConfigs: a server that asks for no certificate in the handshake but
// verifies one against ClientCAs on request, and a client with a
// certificate (so it offers post_handshake_auth) when withCert.
func phaConfigs(t *testing.T, withCert bool) (cc, sc *Config) {
	cc, sc = kuConfigs(t, suiteTLSAES128GCMSHA256, 1)
	ca := dtlstest.SelfSigned(t, dtlstest.Spec{Serial: 7, IsCA: true})
	sc.ClientCAs = ca.Pool
	if withCert {
		cc.Certificates = []tls.Certificate{ca.TLS}
	}
	return cc, sc
}

// phaRun makes a pair, runs the client's Read (echoing) in a goroutine,
// and calls f with the server; the server's own Read runs too when
// serverReads.
func phaRun(t *testing.T, cc, sc *Config, serverReads bool, f func(t *testing.T, cli, srv *Conn)) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: lossDelay})
		cli, srv := kuPair(t, n, cc, sc, nil)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cli.Close()
		defer srv.Close()
		wg.Go(func() {
			buf := make([]byte, 100)
			for {
				k, err := cli.Read(buf)
				if err != nil {
					return
				}
				cli.Write(buf[:k])
			}
		})
		if serverReads {
			wg.Go(func() {
				buf := make([]byte, 100)
				for {
					if _, err := srv.Read(buf); err != nil {
						return
					}
				}
			})
			settle()
		}
		f(t, cli, srv)
	})
}

func TestPostHandshakeAuth13(t *testing.T) {
	cc, sc := phaConfigs(t, true)
	phaRun(t, cc, sc, false, func(t *testing.T, cli, srv *Conn) {
		if n := len(srv.ConnectionState().PeerCertificates); n != 0 {
			t.Fatalf("%d client certificates before the request", n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.RequestClientCertificate(ctx); err != nil {
			t.Fatal(err)
		}
		st := srv.ConnectionState()
		if len(st.PeerCertificates) != 1 || len(st.VerifiedChains) != 1 {
			t.Fatalf("after the request: %d certificates, %d verified chains", len(st.PeerCertificates), len(st.VerifiedChains))
		}
		// The connection carries on: an echo.
		if _, err := srv.Write([]byte("after")); err != nil {
			t.Fatal(err)
		}
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		if k, err := srv.Read(buf); err != nil || string(buf[:k]) != "after" {
			t.Fatalf("echo after the request: %q, %v", buf[:k], err)
		}
	})
}

// TestPostHandshakeAuth13Several: requests from several goroutines are
// outstanding together, while the server's Read runs (it sends them and
// takes the answers); one past maxCertRequests13 is refused.
func TestPostHandshakeAuth13Several(t *testing.T) {
	cc, sc := phaConfigs(t, true)
	phaRun(t, cc, sc, true, func(t *testing.T, cli, srv *Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		var failed atomic.Int32
		for range 3 {
			wg.Go(func() {
				if err := srv.RequestClientCertificate(ctx); err != nil {
					t.Error(err)
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if failed.Load() == 0 && len(srv.ConnectionState().PeerCertificates) != 1 {
			t.Error("no client certificate after the requests")
		}
		srv.pha.mu.Lock()
		for range maxCertRequests13 {
			srv.pha.reqs = append(srv.pha.reqs, &certRequest13{sent: true, done: make(chan struct{})})
		}
		srv.pha.mu.Unlock()
		if err := srv.RequestClientCertificate(ctx); err == nil || !strings.Contains(err.Error(), "outstanding") {
			t.Errorf("request past the bound: %v", err)
		}
	})
}

func TestPostHandshakeAuth13Refusals(t *testing.T) {
	t.Run("client did not offer", func(t *testing.T) {
		cc, sc := phaConfigs(t, false)
		phaRun(t, cc, sc, false, func(t *testing.T, cli, srv *Conn) {
			if err := srv.RequestClientCertificate(context.Background()); !errors.Is(err, errNoPostHandshakeAuth) {
				t.Errorf("got %v", err)
			}
		})
	})
	t.Run("certificate from an unknown CA", func(t *testing.T) {
		cc, sc := phaConfigs(t, true)
		other := dtlstest.SelfSigned(t, dtlstest.Spec{Serial: 8, IsCA: true})
		sc.ClientCAs = other.Pool
		phaRun(t, cc, sc, false, func(t *testing.T, cli, srv *Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.RequestClientCertificate(ctx); err == nil {
				t.Fatal("a certificate from an unknown CA was accepted")
			}
			if a := alert(srv.alertSent.Load() - 1); a != alertBadCertificate {
				t.Errorf("server sent %v, want bad_certificate", a)
			}
		})
	})
	t.Run("CertificateRequest to a client that did not offer", func(t *testing.T) {
		cc, sc := phaConfigs(t, false)
		phaRun(t, cc, sc, false, func(t *testing.T, cli, srv *Conn) {
			body, _ := (&certificateRequestMsg13{context: []byte{1}, supportedSignatureAlgorithms: supportedSignatureAlgorithms13()}).marshal()
			h := handshakeHeader{typ: typeCertificateRequest, length: uint32(len(body)), messageSeq: srv.hs.sendSeq, fragmentLength: uint32(len(body))}
			srv.hs.sendSeq++
			if err := testSendRaw13(srv, recordTypeHandshake, append(h.appendTo(nil), body...)); err != nil {
				t.Fatal(err)
			}
			settle()
			if a := alert(cli.alertSent.Load() - 1); cli.alertSent.Load() == 0 || a != alertUnexpectedMessage {
				t.Errorf("client sent %v, want unexpected_message", a)
			}
		})
	})
	t.Run("CertificateRequest flood", func(t *testing.T) {
		cc, sc := phaConfigs(t, true)
		phaRun(t, cc, sc, false, func(t *testing.T, cli, srv *Conn) {
			for i := range maxCertRequests13 + 2 {
				testSendHandshake13(t, srv, typeCertificateRequest, &certificateRequestMsg13{context: []byte{byte(i + 1)}, supportedSignatureAlgorithms: supportedSignatureAlgorithms13()})
			}
			settle()
			if a := alert(cli.alertSent.Load() - 1); cli.alertSent.Load() == 0 || a != alertUnexpectedMessage {
				t.Errorf("client sent %v, want unexpected_message", a)
			}
		})
	})
	t.Run("answer with a context never sent", func(t *testing.T) {
		cc, sc := phaConfigs(t, true)
		phaRun(t, cc, sc, false, func(t *testing.T, cli, srv *Conn) {
			// The client's Read sends nothing meanwhile: its message
			// sequence is the test's to use.
			testSendHandshake13(t, cli, typeCertificate, &certificateMsg13{context: []byte{9, 9}})
			srv.SetReadDeadline(time.Now().Add(time.Second))
			srv.Read(make([]byte, 10))
			if a := alert(srv.alertSent.Load() - 1); srv.alertSent.Load() == 0 || a != alertIllegalParameter {
				t.Errorf("server sent %v, want illegal_parameter", a)
			}
		})
	})
	t.Run("not on DTLS 1.2 nor a client", func(t *testing.T) {
		c := Client(nil, &Config{})
		c.handshakeComplete.Store(true)
		c.vers = VersionDTLS13
		if err := c.RequestClientCertificate(context.Background()); err == nil {
			t.Error("a client requested a certificate")
		}
	})
}

// testSendHandshake13 sends msg as c's next handshake message, in one
// record of its current write epoch, outside any rule.
func testSendHandshake13(t *testing.T, c *Conn, typ handshakeType, msg interface{ marshal() ([]byte, error) }) {
	t.Helper()
	body, err := msg.marshal()
	if err != nil {
		t.Fatal(err)
	}
	h := handshakeHeader{typ: typ, length: uint32(len(body)), messageSeq: c.hs.sendSeq, fragmentLength: uint32(len(body))}
	c.hs.sendSeq++
	if err := testSendRaw13(c, recordTypeHandshake, append(h.appendTo(nil), body...)); err != nil {
		t.Fatal(err)
	}
}
