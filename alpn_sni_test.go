package dtls

// ALPN (RFC 7301) and SNI (RFC 6066 §3) end to end over loopback UDP:
// what each side sees in ConnectionState, the server's choice, the alerts
// when there is no agreement, and certificate selection by server name
// through Config.GetCertificate.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls/internal/dtlstest"
)

// alpnSNITimeout bounds a handshake expected to fail: the failing side
// sends an alert at once, so this is only the bound if the alert is lost.
const alpnSNITimeout = 3 * time.Second

// dialEcho dials the Listener l with config and checks an echo.
func dialEcho(t *testing.T, l *Listener, config *Config) *Conn {
	t.Helper()
	c, err := Dial("udp", l.Addr().String(), config)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	exchange(t, c, "over "+c.ConnectionState().NegotiatedProtocol)
	return c
}

// serverState returns the server side's ConnectionState from echoServer.
func serverState(t *testing.T, states chan ConnectionState) ConnectionState {
	t.Helper()
	select {
	case st := <-states:
		return st
	case <-time.After(10 * time.Second):
		t.Fatal("the server accepted no connection")
		return ConnectionState{}
	}
}

func TestALPN(t *testing.T) {
	checkNoGoroutineLeak(t)
	p256 := certs(t)["p256"]
	tests := []struct {
		name           string
		client, server []string
		want           string // negotiated on both sides
	}{
		{"one in common", []string{"coap", "h2"}, []string{"h2"}, "h2"},
		// RFC 7301 §3.2: the server picks, by its own preference.
		{"server preference", []string{"a", "b", "c"}, []string{"c", "b", "a"}, "c"},
		{"server preference skips unoffered", []string{"a", "b"}, []string{"z", "b", "a"}, "b"},
		{"client without ALPN", nil, []string{"h2"}, ""},
		{"server without ALPN", []string{"h2"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, states := echoServer(t, &Config{Certificates: []tls.Certificate{p256.tls}, NextProtos: tt.server}, nil)
			c := dialEcho(t, l, &Config{RootCAs: p256.pool, ServerName: "dtls.test", NextProtos: tt.client})
			if got := c.ConnectionState().NegotiatedProtocol; got != tt.want {
				t.Errorf("client negotiated %q, want %q", got, tt.want)
			}
			if got := serverState(t, states).NegotiatedProtocol; got != tt.want {
				t.Errorf("server negotiated %q, want %q", got, tt.want)
			}
		})
	}
}

// TestALPNNoOverlap: a client whose protocols the server supports none of
// gets no_application_protocol (RFC 7301 §3.2), and its error says so.
func TestALPNNoOverlap(t *testing.T) {
	for _, v := range []uint16{VersionDTLS12, VersionDTLS13} {
		t.Run(fmt.Sprintf("%#04x", v), func(t *testing.T) { testALPNNoOverlap(t, v) })
	}
}

// testALPNNoOverlap: in DTLS 1.3 too, the server's no_application_protocol
// reaches the client (it is sent before any key, in the clear).
func testALPNNoOverlap(t *testing.T, vers uint16) {
	checkNoGoroutineLeak(t)
	p256 := certs(t)["p256"]
	var mu sync.Mutex
	var sent []uint8
	l, _ := echoServer(t, &Config{
		Certificates:     []tls.Certificate{p256.tls},
		NextProtos:       []string{"h2", "coap"},
		HandshakeTimeout: alpnSNITimeout,
		MaxVersion:       vers,
		Tracer: func(ev *TraceEvent) {
			if ev.Kind == TraceAlertSent {
				mu.Lock()
				sent = append(sent, ev.Alert)
				mu.Unlock()
			}
		},
	}, nil)
	c, err := Dial("udp", l.Addr().String(), &Config{RootCAs: p256.pool, ServerName: "dtls.test",
		NextProtos: []string{"http/1.1"}, HandshakeTimeout: alpnSNITimeout, MaxVersion: vers})
	if err == nil {
		c.Close()
		t.Fatal("handshake succeeded without a common ALPN protocol")
	}
	if !strings.Contains(err.Error(), "no application protocol") {
		t.Errorf("client error %q does not say no application protocol", err)
	}
	var ae AlertError
	if !errors.As(err, &ae) || alert(ae) != alertNoApplicationProtocol {
		t.Errorf("client error %v (%T), want AlertError(no_application_protocol)", err, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(sent, []uint8{uint8(alertNoApplicationProtocol)}) {
		t.Errorf("server sent alerts %v, want [%d]", sent, alertNoApplicationProtocol)
	}
}

// TestALPNUnofferedProtocol: a ServerHello that selects a protocol the
// client did not offer is refused with illegal_parameter (RFC 7301 §3.2
// leaves no room for it). A proxy between the two rewrites the server's
// choice "proto-a" into "proto-z" in the plaintext ServerHello; the
// client must stop there, before the Finished would expose the change.
// DTLS 1.2 only: in 1.3 the choice travels in the encrypted
// EncryptedExtensions, out of a proxy's reach.
func TestALPNUnofferedProtocol(t *testing.T) {
	checkNoGoroutineLeak(t)
	p256 := certs(t)["p256"]
	l, _ := echoServer(t, &Config{Certificates: []tls.Certificate{p256.tls}, NextProtos: []string{"proto-a"}, HandshakeTimeout: alpnSNITimeout}, nil)
	proxy := rewritingProxy(t, l.Addr(), []byte("proto-a"), []byte("proto-z"))
	var mu sync.Mutex
	var sent []uint8
	c, err := Dial("udp", proxy.String(), &Config{RootCAs: p256.pool, ServerName: "dtls.test",
		NextProtos: []string{"proto-a", "proto-b"}, HandshakeTimeout: alpnSNITimeout, MaxVersion: VersionDTLS12,
		Tracer: func(ev *TraceEvent) {
			if ev.Kind == TraceAlertSent {
				mu.Lock()
				sent = append(sent, ev.Alert)
				mu.Unlock()
			}
		}})
	if err == nil {
		c.Close()
		t.Fatal("handshake succeeded with an unoffered ALPN protocol")
	}
	if !strings.Contains(err.Error(), "ALPN") {
		t.Errorf("client error %q does not mention ALPN", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(sent, []uint8{uint8(alertIllegalParameter)}) {
		t.Errorf("client sent alerts %v, want [%d]", sent, alertIllegalParameter)
	}
}

// rewritingProxy relays UDP between one client and server, replacing old
// with new (the same length) in what the server sends. It stops when the
// test ends.
func rewritingProxy(t *testing.T, server net.Addr, old, new []byte) net.Addr {
	t.Helper()
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, server.(*net.UDPAddr))
	if err != nil {
		front.Close()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var client net.Addr
	var mu sync.Mutex
	wg.Add(2)
	go func() { // client to server
		defer wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			client = from
			mu.Unlock()
			back.Write(buf[:n])
		}
	}()
	go func() { // server to client, rewritten
		defer wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			to := client
			mu.Unlock()
			if to != nil {
				front.WriteTo(bytes.ReplaceAll(buf[:n], old, new), to)
			}
		}
	}()
	t.Cleanup(func() {
		front.Close()
		back.Close()
		wg.Wait()
	})
	return front.LocalAddr()
}

// sniCert is a self-signed P-256 certificate for name, a DNS name or an
// IP address.
func sniCert(t *testing.T, name string) *testCert {
	t.Helper()
	c := dtlstest.SelfSigned(t, dtlstest.Spec{Names: []string{name}, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return &testCert{tls: c.TLS, pool: c.Pool}
}

// helloRecorder is a GetCertificate that records every ClientHelloInfo
// and answers with pick.
type helloRecorder struct {
	mu    sync.Mutex
	infos []ClientHelloInfo
	pick  func(*ClientHelloInfo) (*tls.Certificate, error)
}

func (h *helloRecorder) getCertificate(info *ClientHelloInfo) (*tls.Certificate, error) {
	h.mu.Lock()
	h.infos = append(h.infos, *info)
	h.mu.Unlock()
	return h.pick(info)
}

func (h *helloRecorder) last(t *testing.T) ClientHelloInfo {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.infos) == 0 {
		t.Fatal("GetCertificate was not called")
	}
	return h.infos[len(h.infos)-1]
}

// TestSNIGetCertificate: one server, two names, a certificate for each
// chosen by the server_name the client sends; each client verifies the
// one it gets against its name only.
func TestSNIGetCertificate(t *testing.T) {
	checkNoGoroutineLeak(t)
	byName := map[string]*testCert{"a.test": sniCert(t, "a.test"), "b.test": sniCert(t, "b.test")}
	h := &helloRecorder{pick: func(info *ClientHelloInfo) (*tls.Certificate, error) {
		if c := byName[info.ServerName]; c != nil {
			return &c.tls, nil
		}
		return nil, nil
	}}
	l, states := echoServer(t, &Config{GetCertificate: h.getCertificate}, nil)
	for _, name := range []string{"a.test", "b.test", "a.test"} {
		t.Run(name, func(t *testing.T) {
			// Each client trusts only its name's certificate: the wrong
			// one would fail verification.
			c := dialEcho(t, l, &Config{RootCAs: byName[name].pool, ServerName: name})
			st := c.ConnectionState()
			if len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != name {
				t.Errorf("client got a certificate for %v, want %q", st.PeerCertificates, name)
			}
			if st.ServerName != name {
				t.Errorf("client ConnectionState.ServerName %q, want %q", st.ServerName, name)
			}
			if got := serverState(t, states).ServerName; got != name {
				t.Errorf("server ConnectionState.ServerName %q, want %q", got, name)
			}
			if got := h.last(t).ServerName; got != name {
				t.Errorf("GetCertificate saw ServerName %q, want %q", got, name)
			}
		})
	}
}

// TestSNIGetCertificateFallback: GetCertificate returning nil, nil leaves
// the choice to Certificates.
func TestSNIGetCertificateFallback(t *testing.T) {
	checkNoGoroutineLeak(t)
	fallback := sniCert(t, "default.test")
	h := &helloRecorder{pick: func(*ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }}
	l, _ := echoServer(t, &Config{GetCertificate: h.getCertificate, Certificates: []tls.Certificate{fallback.tls}}, nil)
	c := dialEcho(t, l, &Config{RootCAs: fallback.pool, ServerName: "default.test"})
	if st := c.ConnectionState(); len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "default.test" {
		t.Errorf("client got %v, want the default certificate", st.PeerCertificates)
	}
	if got := h.last(t).ServerName; got != "default.test" {
		t.Errorf("GetCertificate saw ServerName %q", got)
	}
}

// TestSNIGetCertificateError: an error from GetCertificate fails the
// handshake, and the client hears about it through an alert rather than
// a timeout.
func TestSNIGetCertificateError(t *testing.T) {
	checkNoGoroutineLeak(t)
	fallback := sniCert(t, "default.test")
	h := &helloRecorder{pick: func(*ClientHelloInfo) (*tls.Certificate, error) {
		return nil, errors.New("no certificate for you")
	}}
	l, _ := echoServer(t, &Config{GetCertificate: h.getCertificate, Certificates: []tls.Certificate{fallback.tls}, HandshakeTimeout: alpnSNITimeout}, nil)
	start := time.Now()
	c, err := Dial("udp", l.Addr().String(), &Config{RootCAs: fallback.pool, ServerName: "unknown.test", HandshakeTimeout: 2 * alpnSNITimeout})
	if err == nil {
		c.Close()
		t.Fatal("handshake succeeded although GetCertificate failed")
	}
	var ae AlertError
	if !errors.As(err, &ae) {
		t.Fatalf("client error %v (%T), want an AlertError", err, err)
	}
	if alert(ae) != alertInternalError {
		t.Errorf("client got alert %v, want internal error", alert(ae))
	}
	if d := time.Since(start); d >= alpnSNITimeout {
		t.Errorf("the client took %v to fail: it timed out instead of hearing the alert", d)
	}
	if got := h.last(t).ServerName; got != "unknown.test" {
		t.Errorf("GetCertificate saw ServerName %q", got)
	}
}

// TestSNIClientHelloInfo: GetCertificate sees what the client offered, in
// both versions. A 1.3 ClientHello lists the 1.3 suites first (our
// defaults: CipherSuites' 1.2 ids do not restrict 1.3, as in crypto/tls)
// and both versions in supported_versions.
func TestSNIClientHelloInfo(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, vers := range []uint16{VersionDTLS12, VersionDTLS13} {
		t.Run(versionName(vers), func(t *testing.T) {
			cert := sniCert(t, "info.test")
			h := &helloRecorder{pick: func(*ClientHelloInfo) (*tls.Certificate, error) { return &cert.tls, nil }}
			l, _ := echoServer(t, &Config{GetCertificate: h.getCertificate, NextProtos: []string{"coap"}}, nil)
			suites := []uint16{TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
			curves := []tls.CurveID{tls.CurveP384, tls.X25519}
			protos := []string{"h2", "coap"}
			c := dialEcho(t, l, &Config{RootCAs: cert.pool, ServerName: "info.test", CipherSuites: suites, CurvePreferences: curves, NextProtos: protos, MaxVersion: vers})
			if got := c.ConnectionState().NegotiatedProtocol; got != "coap" {
				t.Errorf("negotiated %q, want coap", got)
			}
			if got := c.ConnectionState().Version; got != vers {
				t.Errorf("version %#x, want %#x", got, vers)
			}
			wantSuites, wantVersions, wantSchemes := suites, []uint16{VersionDTLS12}, supportedSignatureAlgorithms
			if vers == VersionDTLS13 {
				wantSuites = nil
				for _, s := range (&Config{}).suites13() {
					wantSuites = append(wantSuites, s.id)
				}
				wantSuites = append(wantSuites, suites...)
				wantVersions = []uint16{VersionDTLS13, VersionDTLS12}
				wantSchemes = nil // the 1.3 ClientHello's list; checked below
			}
			info := h.last(t)
			// The client may add signalling values (the renegotiation SCSV).
			var offered []uint16
			for _, s := range info.CipherSuites {
				if s != scsvRenegotiation {
					offered = append(offered, s)
				}
			}
			if !slices.Equal(offered, wantSuites) {
				t.Errorf("CipherSuites %x, want %x", info.CipherSuites, wantSuites)
			}
			if info.ServerName != "info.test" {
				t.Errorf("ServerName %q", info.ServerName)
			}
			if !slices.Equal(info.SupportedCurves, curves) {
				t.Errorf("SupportedCurves %v, want %v", info.SupportedCurves, curves)
			}
			if wantSchemes != nil && !slices.Equal(info.SignatureSchemes, wantSchemes) {
				t.Errorf("SignatureSchemes %v, want %v", info.SignatureSchemes, wantSchemes)
			}
			if !slices.Contains(info.SignatureSchemes, tls.ECDSAWithP256AndSHA256) {
				t.Errorf("SignatureSchemes %v lack ecdsa_secp256r1_sha256", info.SignatureSchemes)
			}
			if !slices.Equal(info.SupportedProtos, protos) {
				t.Errorf("SupportedProtos %q, want %q", info.SupportedProtos, protos)
			}
			if !slices.Equal(info.SupportedVersions, wantVersions) {
				t.Errorf("SupportedVersions %x, want %x", info.SupportedVersions, wantVersions)
			}
		})
	}
}

// TestSNIIPAddress: RFC 6066 §3 forbids IP addresses in server_name, so a
// client whose ServerName is one sends no SNI, yet still verifies the
// certificate against the address.
func TestSNIIPAddress(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, name := range []string{"127.0.0.1", "::1"} {
		t.Run(name, func(t *testing.T) {
			cert := sniCert(t, name)
			h := &helloRecorder{pick: func(*ClientHelloInfo) (*tls.Certificate, error) { return &cert.tls, nil }}
			var sawSNI bool
			var mu sync.Mutex
			l, states := echoServer(t, &Config{GetCertificate: h.getCertificate}, nil)
			c := dialEcho(t, l, &Config{RootCAs: cert.pool, ServerName: name, Tracer: func(ev *TraceEvent) {
				// The ClientHello is the only datagram that could carry
				// the name in the clear.
				if ev.Kind == TraceDatagramSent && bytes.Contains(ev.Datagram, []byte(name)) {
					mu.Lock()
					sawSNI = true
					mu.Unlock()
				}
			}})
			if got := h.last(t).ServerName; got != "" {
				t.Errorf("GetCertificate saw ServerName %q, want none", got)
			}
			if got := serverState(t, states).ServerName; got != "" {
				t.Errorf("server ConnectionState.ServerName %q, want empty", got)
			}
			if st := c.ConnectionState(); len(st.VerifiedChains) == 0 {
				t.Error("the client did not verify the certificate against the address")
			}
			mu.Lock()
			defer mu.Unlock()
			if sawSNI {
				t.Errorf("a datagram we sent contains %q", name)
			}
		})
	}
}
