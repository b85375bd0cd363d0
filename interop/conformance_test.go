package interop_test

// Cells for the conformance cases real peers found (issue 10, item 7),
// against OpenSSL, GnuTLS and mbedTLS's own sample programs
// (ssl_client2/ssl_server2, built by .ci/mbedtls-programs):
//
//	P384                  P-384 certificates both ways (the server's and
//	                      the client's, with client authentication): in
//	                      DTLS 1.2 a P-384 key may sign with any ECDSA
//	                      hash, and these peers pick SHA-256 when we list
//	                      it first (RFC 5246 §7.4.1.4.1).
//	Renegotiation         the peer asks to renegotiate (as client, a new
//	                      ClientHello; as server, a HelloRequest); we
//	                      refuse with a no_renegotiation warning, and the
//	                      connection goes on or the peer ends it, promptly.
//	FragmentedClientHello a ClientHello split over several datagrams: the
//	                      peer's at a small MTU to our server, ours at
//	                      MTU 128 to theirs.
//
// A spy (a UDP relay between the two sides) reads the plaintext epoch-0
// handshake records on the way, so a cell can say which signature scheme
// each side chose and whether a ClientHello really was fragmented.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/internal/dtlstest"
)

const (
	conformanceSuite       = dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	conformanceOpenSSL     = "ECDHE-ECDSA-AES128-GCM-SHA256"
	conformanceMbedTLS     = "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"
	alertNoRenegotiation   = 100 // RFC 5246 §7.2.2
	handshakeClientHello   = 1
	handshakeServerKX      = 12
	handshakeCertVerify    = 15
	recordHeaderLen        = 13
	handshakeHeaderLen     = 12
	contentTypeHandshake   = 22
	ourFragmentingMTU      = 128 // our client's ClientHello (about 200 bytes) takes two datagrams
	mbedtlsProgramsEnv     = "DTLS_MBEDTLS_PROGRAMS"
	mbedtlsResponseMarker  = "mbed TLS Test Server"                    // in ssl_server2's HTTP response
	mbedtlsRenegoRefused   = "mbedtls_ssl_renegotiate returned -27392" // -0x6B00, MBEDTLS_ERR_SSL_WAITING_SERVER_HELLO_RENEGO
	gnutlsRehandshakeToken = "**REHANDSHAKE**"                         // gnutls-serv asks to renegotiate when it reads this
)

// conformanceFeatures are the cells, in matrix order.
var conformanceFeatures = []string{"P384", "Renegotiation", "FragmentedClientHello"}

// runConformanceCell runs one cell with its time bound.
func runConformanceCell(t *testing.T, peer, role, feature string, cell func(ctx context.Context, t *testing.T)) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	cell(ctx, t)
}

// ---- the spy ----

// spy relays UDP datagrams between one client and a server over loopback
// and records what the plaintext handshake records show.
type spy struct {
	conn *net.UDPConn // where the client sends
	up   *net.UDPConn // connected to the server
	wg   sync.WaitGroup

	mu          sync.Mutex
	client      *net.UDPAddr
	chRecords   int                 // ClientHello records seen
	chFragments int                 // ClientHello records carrying part of their message
	chLength    int                 // the ClientHello's message length
	skx, cv     []uint16            // signature schemes of ServerKeyExchange and CertificateVerify
	partial     map[int]*spyMessage // by message type and message_seq
}

// startSpy relays between a client, which must send to the returned spy's
// addr(), and the server at target. t.Cleanup stops it.
func startSpy(t *testing.T, target string) *spy {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	s := &spy{partial: map[int]*spyMessage{}}
	if s.conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	if s.up, err = net.DialUDP("udp", nil, raddr); err != nil {
		t.Fatal(err)
	}
	s.wg.Add(2)
	go func() { // client to server
		defer s.wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, from, err := s.conn.ReadFromUDP(buf)
			if err != nil {
				return // closed
			}
			s.mu.Lock()
			s.client = from
			s.mu.Unlock()
			s.inspect(buf[:n])
			s.up.Write(buf[:n])
		}
	}()
	go func() { // server to client
		defer s.wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, err := s.up.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP port unreachable before the server bound
			}
			s.inspect(buf[:n])
			s.mu.Lock()
			to := s.client
			s.mu.Unlock()
			if to != nil {
				s.conn.WriteToUDP(buf[:n], to)
			}
		}
	}()
	t.Cleanup(func() {
		s.conn.Close()
		s.up.Close()
		s.wg.Wait()
	})
	return s
}

func (s *spy) addr() string { return s.conn.LocalAddr().String() }

func (s *spy) port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }

// inspect reads the epoch-0 handshake records of a datagram (RFC 6347
// §4.1 and §4.2.2 headers), reassembling ServerKeyExchange and
// CertificateVerify, which peers split over datagrams.
func (s *spy) inspect(d []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(d) >= recordHeaderLen {
		typ, epoch := d[0], int(d[3])<<8|int(d[4])
		n := int(d[11])<<8 | int(d[12])
		if len(d) < recordHeaderLen+n {
			return
		}
		rec := d[recordHeaderLen : recordHeaderLen+n]
		d = d[recordHeaderLen+n:]
		if typ != contentTypeHandshake || epoch != 0 || len(rec) < handshakeHeaderLen {
			continue
		}
		msgType := rec[0]
		length := int(rec[1])<<16 | int(rec[2])<<8 | int(rec[3])
		seq := int(rec[4])<<8 | int(rec[5])
		off := int(rec[6])<<16 | int(rec[7])<<8 | int(rec[8])
		fragLen := int(rec[9])<<16 | int(rec[10])<<8 | int(rec[11])
		body := rec[handshakeHeaderLen:]
		if fragLen > len(body) || off+fragLen > length || length > spyMaxMessage {
			continue
		}
		body = body[:fragLen]
		switch msgType {
		case handshakeClientHello:
			s.chRecords++
			s.chLength = length
			if fragLen < length {
				s.chFragments++
			}
		case handshakeServerKX, handshakeCertVerify:
			key := int(msgType)<<16 | seq
			m := s.partial[key]
			if m == nil {
				m = &spyMessage{body: make([]byte, length), have: make([]bool, length)}
				s.partial[key] = m
			}
			if m.done || len(m.body) != length {
				continue
			}
			copy(m.body[off:], body)
			for i := off; i < off+fragLen; i++ {
				m.have[i] = true
			}
			if slices.Contains(m.have, false) {
				continue
			}
			m.done = true
			if msgType == handshakeCertVerify && length >= 2 {
				s.cv = append(s.cv, uint16(m.body[0])<<8|uint16(m.body[1]))
			}
			// ECParameters (curve_type 3, named_curve) and the public
			// key come before the signature's scheme (RFC 8422 §5.4).
			if b := m.body; msgType == handshakeServerKX && len(b) > 4 && b[0] == 3 {
				if i := 4 + int(b[3]); len(b) >= i+2 {
					s.skx = append(s.skx, uint16(b[i])<<8|uint16(b[i+1]))
				}
			}
		}
	}
}

// spyMessage is a handshake message the spy reassembles.
type spyMessage struct {
	body []byte
	have []bool // which bytes of body arrived
	done bool
}

// spyMaxMessage bounds the messages the spy reassembles (a
// ServerKeyExchange or CertificateVerify is a few hundred bytes).
const spyMaxMessage = 1 << 14

// schemes reports the signature schemes seen, for the matrix notes.
func (s *spy) schemes() (skx, cv []tls.SignatureScheme) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.skx {
		skx = append(skx, tls.SignatureScheme(x))
	}
	for _, x := range s.cv {
		cv = append(cv, tls.SignatureScheme(x))
	}
	return skx, cv
}

// checkP384Schemes checks that both signatures were seen and notes which
// schemes the peer and we chose with P-384 keys.
func (s *spy) checkP384Schemes(t *testing.T, peer string, weAreClient bool) {
	t.Helper()
	skx, cv := s.schemes()
	if len(skx) != 1 || len(cv) != 1 {
		t.Fatalf("the spy saw ServerKeyExchange schemes %v and CertificateVerify schemes %v, want one of each", skx, cv)
	}
	theirs, ours := skx[0], cv[0]
	what := "its ServerKeyExchange"
	if !weAreClient {
		theirs, ours = cv[0], skx[0]
		what = "its CertificateVerify"
	}
	t.Logf("interop-note: %s signed %s with %v from a P-384 key; we answered with %v", peer, what, theirs, ours)
}

// fragmentedClientHello reports how the ClientHello travelled.
func (s *spy) fragmentedClientHello() (records, fragments, length int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chRecords, s.chFragments, s.chLength
}

// ---- our side's evidence ----

// renegoTracer watches our side of a renegotiation cell: the
// no_renegotiation warnings we sent, and any flight we retransmitted after
// the handshake (the old bug: a renegotiating ClientHello taken for a
// retransmission of the peer's last flight).
type renegoTracer struct {
	mu             sync.Mutex
	done           bool
	refusals       int
	retransmitted  int
	alertsReceived []uint8
}

func (r *renegoTracer) trace(ev *dtls.TraceEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev.Kind {
	case dtls.TraceHandshakeDone:
		r.done = true
	case dtls.TraceAlertSent:
		if ev.Alert == alertNoRenegotiation {
			r.refusals++
		}
	case dtls.TraceAlertReceived:
		r.alertsReceived = append(r.alertsReceived, ev.Alert)
	case dtls.TraceFlightRetransmitted:
		if r.done {
			r.retransmitted++
		}
	}
}

// check requires a refusal and no retransmitted flight.
func (r *renegoTracer) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refusals == 0 {
		t.Errorf("we sent no no_renegotiation alert")
	}
	if r.retransmitted > 0 {
		t.Errorf("we retransmitted a flight %d times after the handshake", r.retransmitted)
	}
}

// ---- configurations ----

// p384ClientConfig is our client with a P-384 certificate, trusting the
// test CA.
func p384ClientConfig(pki *testPKI) *dtls.Config {
	return &dtls.Config{CipherSuites: []uint16{conformanceSuite}, RootCAs: pki.roots, ServerName: "localhost",
		Certificates: []tls.Certificate{pki.p384Client}}
}

// p384ServerConfig is our server with a P-384 certificate that requires
// and verifies a client certificate.
func p384ServerConfig(pki *testPKI) *dtls.Config {
	return &dtls.Config{CipherSuites: []uint16{conformanceSuite}, Certificates: []tls.Certificate{pki.p384Server},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.roots}
}

func plainClientConfig(pki *testPKI) *dtls.Config {
	return &dtls.Config{CipherSuites: []uint16{conformanceSuite}, RootCAs: pki.roots, ServerName: "localhost"}
}

func plainServerConfig(pki *testPKI) *dtls.Config {
	return &dtls.Config{CipherSuites: []uint16{conformanceSuite}, Certificates: []tls.Certificate{pki.server}}
}

// checkOurFragments checks that our client's ClientHello went out in
// pieces.
func checkOurFragments(t *testing.T, s *spy) {
	t.Helper()
	records, fragments, length := s.fragmentedClientHello()
	if fragments == 0 {
		t.Fatalf("our %d-byte ClientHello went out in %d records, none of them a fragment", length, records)
	}
}

// requirePeerFragments skips the cell as n.a. when the peer did not
// fragment its ClientHello at the MTU it was given (the spy saw it whole).
func requirePeerFragments(t *testing.T, s *spy, peer, how string) {
	t.Helper()
	records, fragments, length := s.fragmentedClientHello()
	if records == 0 {
		t.Fatalf("the spy saw no ClientHello")
	}
	if fragments == 0 {
		notApplicable(t, fmt.Sprintf("%s never fragments its ClientHello (%s sent it whole, %d bytes)", peer, how, length))
	}
	t.Logf("the peer's %d-byte ClientHello came in %d fragments", length, fragments)
}

// waitOutput waits until the process's stdout or stderr (peers print
// their diagnostics on either) contains one of wants, and returns its
// index; -1 if the process ended without it or ctx expired.
func (p *proc) waitOutput(ctx context.Context, wants ...string) int {
	for {
		ended := false
		select {
		case <-p.done:
			ended = true
		default:
		}
		out := p.output()
		for i, w := range wants {
			if strings.Contains(out, w) {
				return i
			}
		}
		if ended {
			return -1
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return -1
		case <-time.After(outputPoll):
		}
	}
}

// outputPoll is how often waitOutput looks at a peer's output.
const outputPoll = 20 * time.Millisecond

// outputHas reports whether the process printed s on stdout or stderr.
func (p *proc) outputHas(s string) bool { return strings.Contains(p.output(), s) }

// waitDone waits, bounded by ctx, for the process to end by itself.
func (p *proc) waitDone(ctx context.Context, t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatalf("%s did not end; output:\n%s", p.name, p.output())
	}
}

// dial dials addr through ctx, failing the test on error.
func dial(ctx context.Context, t *testing.T, addr string, cfg *dtls.Config) *dtls.Conn {
	t.Helper()
	conn, err := dtls.DialContext(ctx, "udp", addr, cfg)
	if err != nil {
		t.Fatalf("DialContext(%s): %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readOnce reads one datagram, bounded by ctx.
func readOnce(ctx context.Context, conn *dtls.Conn) (string, error) {
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 1<<14)
	n, err := conn.Read(buf)
	return string(buf[:n]), err
}

// ---- OpenSSL ----

func TestOpenSSLConformance(t *testing.T) {
	openssl := requirePeer(t, "OpenSSL", "openssl", "version")
	pki := newTestPKI(t)
	for _, role := range []string{"client", "server"} {
		t.Run(role, func(t *testing.T) {
			for _, feature := range conformanceFeatures {
				t.Run(feature, func(t *testing.T) {
					runConformanceCell(t, "OpenSSL", role, feature, func(ctx context.Context, t *testing.T) {
						if role == "client" {
							opensslServerCell(ctx, t, openssl, pki, feature)
						} else {
							opensslClientCell(ctx, t, openssl, pki, feature)
						}
					})
				})
			}
		})
	}
}

// opensslServerCell is our client against s_server.
func opensslServerCell(ctx context.Context, t *testing.T, openssl string, pki *testPKI, feature string) {
	args := []string{"s_server", "-dtls1_2", "-naccept", "1", "-cipher", conformanceOpenSSL}
	cfg := plainClientConfig(pki)
	switch feature {
	case "P384":
		args = append(args, "-cert", pki.p384ServerCert, "-key", pki.p384ServerKey,
			"-Verify", "1", "-CAfile", pki.caFile, "-verify_return_error")
		cfg = p384ClientConfig(pki)
	default:
		args = append(args, "-cert", pki.serverCert, "-key", pki.serverKey)
	}
	if feature == "FragmentedClientHello" {
		cfg.MTU = ourFragmentingMTU
	}
	tr := &renegoTracer{}
	cfg.Tracer = tr.trace
	srv, port := startServerProc(ctx, t, openssl, func(port int) []string {
		return append(slices.Clip(args), "-accept", addrOf(port))
	})
	s := startSpy(t, addrOf(port))
	conn := dial(ctx, t, s.addr(), cfg)
	if err := (want{suite: conformanceSuite, peerCertCN: "localhost"}).check(conn.ConnectionState()); err != nil {
		t.Error(err)
	}
	if _, err := conn.Write([]byte(goLine + "\n")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	srv.waitLine(ctx, t, goLine)

	switch feature {
	case "P384":
		s.checkP384Schemes(t, "OpenSSL", true)
	case "FragmentedClientHello":
		checkOurFragments(t, s)
	case "Renegotiation":
		// s_server's "r" command sends a HelloRequest. Our Read takes
		// it in and answers; OpenSSL 3.0 takes that warning as fatal
		// (SSL_R_NO_RENEGOTIATION) and ends the connection.
		srv.send(t, "r\n")
		read := make(chan error, 1)
		go func() {
			_, err := readOnce(ctx, conn)
			read <- err
		}()
		if srv.waitOutput(ctx, "no renegotiation") != 0 {
			t.Fatalf("s_server did not report our refusal:\n%s", srv.output())
		}
		srv.waitDone(ctx, t)
		if err := <-read; err == nil {
			t.Errorf("our Read returned data after s_server ended the connection")
		} else {
			t.Logf("interop-note: OpenSSL's s_server ends the connection when a client refuses its HelloRequest (%v)", err)
		}
		tr.check(t)
		conn.Close()
		return
	}
	srv.send(t, opensslLine+"\n")
	readLine(ctx, t, conn, opensslLine+"\n")
	if err := conn.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	srv.waitExit(t, 0)
}

// opensslClientCell is s_client against our server.
func opensslClientCell(ctx context.Context, t *testing.T, openssl string, pki *testPKI, feature string) {
	cfg := plainServerConfig(pki)
	w := want{suite: conformanceSuite}
	args := []string{"s_client", "-dtls1_2",
		"-CAfile", pki.caFile, "-servername", "localhost", "-verify_hostname", "localhost", "-verify_return_error"}
	switch feature {
	case "P384":
		cfg = p384ServerConfig(pki)
		w.peerCertCN = "dtls-go-client"
		args = append(args, "-cert", pki.p384ClientCert, "-key", pki.p384ClientKey)
	case "FragmentedClientHello":
		// s_client counts IP and UDP headers in -mtu: 228 bytes of
		// payload, which its cookie-bearing ClientHello (all its
		// default suites, our 32-byte cookie) exceeds.
		args = append(args, "-mtu", "256")
	default:
		args = append(args, "-cipher", conformanceOpenSSL)
	}
	tr := &renegoTracer{}
	cfg.Tracer = tr.trace
	l := listen(t, cfg)
	s := startSpy(t, addrOf(listenerPort(l)))
	conns := make(chan *dtls.Conn, 1)
	res := serveEchoConn(ctx, l, w, true, conns)
	cli := startProc(ctx, t, openssl, append(args, "-connect", s.addr())...)
	cli.waitLine(ctx, t, goLine) // our greeting: the handshake is done

	switch feature {
	case "P384":
		s.checkP384Schemes(t, "OpenSSL", false)
	case "FragmentedClientHello":
		requirePeerFragments(t, s, "OpenSSL", "s_client -mtu 256")
	case "Renegotiation":
		// "R" makes s_client renegotiate at its next write.
		cli.send(t, "R\n")
		cli.send(t, opensslLine+"\n")
		switch cli.waitOutput(ctx, opensslLine, "no renegotiation") {
		case 0:
			// Refused and going on: the echo came back.
		case 1:
			cli.waitDone(ctx, t)
			t.Logf("interop-note: OpenSSL's s_client ends the connection when its renegotiation is refused")
		default:
			t.Fatalf("s_client neither got its echo nor reported the refusal:\n%s", cli.output())
		}
		tr.check(t)
		return
	}
	cli.send(t, opensslLine+"\n")
	cli.waitLine(ctx, t, opensslLine)
	cli.stdin.Close()
	cli.waitExit(t, 0)
	waitEcho(ctx, t, res, true)
}

// ---- GnuTLS ----

func TestGnuTLSConformance(t *testing.T) {
	serv := requirePeer(t, "GnuTLS", "gnutls-serv", "--version")
	cli := requirePeer(t, "GnuTLS", "gnutls-cli")
	pki := newTestPKI(t)
	for _, role := range []string{"client", "server"} {
		t.Run(role, func(t *testing.T) {
			for _, feature := range conformanceFeatures {
				t.Run(feature, func(t *testing.T) {
					runConformanceCell(t, "GnuTLS", role, feature, func(ctx context.Context, t *testing.T) {
						if role == "client" {
							gnutlsServerCell(ctx, t, serv, pki, feature)
						} else {
							gnutlsClientCell(ctx, t, cli, pki, feature)
						}
					})
				})
			}
		})
	}
}

// gnutlsServerCell is our client against gnutls-serv --echo.
func gnutlsServerCell(ctx context.Context, t *testing.T, serv string, pki *testPKI, feature string) {
	args := []string{"--udp", "--echo", "--priority", gnutlsECDSAPriority}
	cfg := plainClientConfig(pki)
	switch feature {
	case "P384":
		args = append(args, "--x509certfile", pki.p384ServerCert, "--x509keyfile", pki.p384ServerKey,
			"--require-client-cert", "--verify-client-cert", "--x509cafile", pki.caFile)
		cfg = p384ClientConfig(pki)
	default:
		args = append(args, "--x509certfile", pki.serverCert, "--x509keyfile", pki.serverKey)
	}
	if feature == "FragmentedClientHello" {
		cfg.MTU = ourFragmentingMTU
	}
	tr := &renegoTracer{}
	cfg.Tracer = tr.trace
	srv, port := startServerProc(ctx, t, serv, func(port int) []string {
		return append([]string{"--port", strconv.Itoa(port)}, args...)
	})
	s := startSpy(t, addrOf(port))
	conn := dial(ctx, t, s.addr(), cfg)
	if err := (want{suite: conformanceSuite, peerCertCN: "localhost"}).check(conn.ConnectionState()); err != nil {
		t.Error(err)
	}
	switch feature {
	case "P384":
		s.checkP384Schemes(t, "GnuTLS", true)
	case "FragmentedClientHello":
		checkOurFragments(t, s)
	case "Renegotiation":
		// gnutls-serv sends a HelloRequest when it reads this line.
		if _, err := conn.Write([]byte(gnutlsRehandshakeToken + "\n")); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if srv.waitOutput(ctx, "Sending rehandshake request") != 0 {
			t.Fatalf("gnutls-serv did not ask to renegotiate:\n%s", srv.output())
		}
		// Either the echo of the next line comes back (the connection
		// goes on) or gnutls-serv reports our refusal.
		if _, err := conn.Write([]byte(goLine)); err != nil {
			t.Fatalf("Write: %v", err)
		}
		echoed := make(chan error, 1)
		go func() {
			for {
				got, err := readOnce(ctx, conn)
				if err != nil || got == goLine {
					echoed <- err
					return
				}
			}
		}()
		refused := make(chan int, 1)
		go func() { refused <- srv.waitOutput(ctx, "A TLS warning alert has been received") }()
		select {
		case err := <-echoed:
			if err != nil {
				t.Fatalf("Read after the HelloRequest: %v; gnutls-serv:\n%s", err, srv.output())
			}
		case i := <-refused:
			if i != 0 {
				t.Fatalf("gnutls-serv neither echoed nor reported our refusal:\n%s", srv.output())
			}
			t.Logf("interop-note: gnutls-serv --udp stops serving a client that refuses its HelloRequest, without a close_notify")
		}
		tr.check(t)
		return
	}
	if _, err := conn.Write([]byte(goLine)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got, err := readOnce(ctx, conn); err != nil || got != goLine {
		t.Fatalf("Read %q, %v; want the echo %q", got, err, goLine)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// gnutlsClientCell is gnutls-cli against our server.
func gnutlsClientCell(ctx context.Context, t *testing.T, cli string, pki *testPKI, feature string) {
	cfg := plainServerConfig(pki)
	w := want{suite: conformanceSuite}
	args := []string{"--udp", "--priority", gnutlsECDSAPriority, "--x509cafile", pki.caFile, "--verify-hostname", "localhost"}
	greet := true
	switch feature {
	case "P384":
		cfg = p384ServerConfig(pki)
		w.peerCertCN = "dtls-go-client"
		args = append(args, "--x509certfile", pki.p384ClientCert, "--x509keyfile", pki.p384ClientKey)
	case "FragmentedClientHello":
		// --mtu is the datagram size; its ClientHello is about 200
		// bytes.
		args = append(args, "--mtu", "180")
	case "Renegotiation":
		args = append(args, "--rehandshake")
		greet = false // gnutls-cli renegotiates right after the handshake
	}
	tr := &renegoTracer{}
	cfg.Tracer = tr.trace
	l := listen(t, cfg)
	s := startSpy(t, addrOf(listenerPort(l)))
	res := serveEcho(ctx, l, w, greet)
	p := startProc(ctx, t, cli, append(args, "--port", strconv.Itoa(s.port()), "127.0.0.1")...)

	switch feature {
	case "Renegotiation":
		// gnutls-cli reports each warning alert on stderr (the alert's
		// name goes to stdout, which it flushes only at exit). It takes
		// our warning as non-fatal and keeps trying, on its own
		// retransmission schedule, until it gives up: the cell ends
		// once it has our refusal.
		switch p.waitOutput(ctx, "Non fatal error: A TLS warning alert has been received", "ReHandshake was completed") {
		case 0:
			t.Logf("interop-note: gnutls-cli --rehandshake takes the no_renegotiation warning as non-fatal and retries until its own handshake timeout")
		case 1:
			t.Fatalf("gnutls-cli says its renegotiation completed:\n%s", p.output())
		default:
			t.Fatalf("gnutls-cli never received our refusal:\n%s", p.output())
		}
		tr.check(t)
		return
	}
	p.waitLine(ctx, t, goLine) // our greeting: the handshake is done
	switch feature {
	case "P384":
		s.checkP384Schemes(t, "GnuTLS", false)
	case "FragmentedClientHello":
		requirePeerFragments(t, s, "GnuTLS", "gnutls-cli --mtu 180")
	}
	p.send(t, gnutlsLine+"\n")
	p.waitLine(ctx, t, gnutlsLine) // our echo
	p.stdin.Close()                // gnutls-cli sends close_notify and exits
	p.waitExit(t, 0)
	waitEcho(ctx, t, res, true)
}

// ---- mbedTLS's sample programs ----

// mbedtlsProgram returns the path of one of mbedTLS's sample programs,
// which .ci/mbedtls-programs builds from Debian's source package: from
// $DTLS_MBEDTLS_PROGRAMS, or the script's cache directory. Missing, it
// skips the test, or fails it under CI=true.
func mbedtlsProgram(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv(mbedtlsProgramsEnv)
	if dir == "" {
		if cache, err := os.UserCacheDir(); err == nil {
			dirs, _ := filepath.Glob(filepath.Join(cache, "dtls-go", "mbedtls-programs-*"))
			if len(dirs) > 0 {
				dir = dirs[len(dirs)-1]
			}
		}
	}
	path := filepath.Join(dir, name)
	if st, err := os.Stat(path); dir == "" || err != nil || st.Mode()&0o111 == 0 {
		msg := fmt.Sprintf("mbedTLS's %s not built (run .ci/mbedtls-programs, or set %s)", name, mbedtlsProgramsEnv)
		dtlstest.Missing(t, "%s", msg)
	}
	return path
}

func TestMbedTLSConformance(t *testing.T) {
	server2 := mbedtlsProgram(t, "ssl_server2")
	client2 := mbedtlsProgram(t, "ssl_client2")
	if out, err := exec.Command(client2, "build_version=1").CombinedOutput(); err == nil {
		t.Logf("ssl_client2: %s", strings.TrimSpace(string(out)))
	}
	pki := newTestPKI(t)
	for _, role := range []string{"client", "server"} {
		t.Run(role, func(t *testing.T) {
			for _, feature := range conformanceFeatures {
				t.Run(feature, func(t *testing.T) {
					runConformanceCell(t, "mbedTLS", role, feature, func(ctx context.Context, t *testing.T) {
						if role == "client" {
							mbedtlsServerCell(ctx, t, server2, pki, feature)
						} else {
							mbedtlsClientCell(ctx, t, client2, pki, feature)
						}
					})
				})
			}
		})
	}
}

// mbedtlsServerCell is our client against ssl_server2, which answers one
// request with an HTTP page and closes the connection.
func mbedtlsServerCell(ctx context.Context, t *testing.T, server2 string, pki *testPKI, feature string) {
	args := []string{"dtls=1", "server_addr=127.0.0.1", "force_ciphersuite=" + conformanceMbedTLS, "exchanges=1"}
	cfg := plainClientConfig(pki)
	switch feature {
	case "P384":
		args = append(args, "crt_file="+pki.p384ServerCert, "key_file="+pki.p384ServerKey,
			"ca_file="+pki.caFile, "auth_mode=required")
		cfg = p384ClientConfig(pki)
	default:
		args = append(args, "crt_file="+pki.serverCert, "key_file="+pki.serverKey, "ca_file="+pki.caFile)
	}
	switch feature {
	case "FragmentedClientHello":
		notApplicable(t, `mbedTLS 2.28's server does not reassemble a fragmented ClientHello (ssl_srv.c: "We don't support fragmentation of ClientHello (yet?)")`)
	case "Renegotiation":
		// Ask for a renegotiation after the request, before the answer.
		args = append(args, "renegotiation=1", "renegotiate=1")
	}
	tr := &renegoTracer{}
	cfg.Tracer = tr.trace
	srv, port := startServerProc(ctx, t, server2, func(port int) []string {
		return append(slices.Clip(args), "server_port="+strconv.Itoa(port))
	})
	s := startSpy(t, addrOf(port))
	conn := dial(ctx, t, s.addr(), cfg)
	if err := (want{suite: conformanceSuite, peerCertCN: "localhost"}).check(conn.ConnectionState()); err != nil {
		t.Error(err)
	}
	if _, err := conn.Write([]byte(goLine + "\r\n\r\n")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, err := readOnce(ctx, conn)
	if err != nil || !strings.Contains(got, mbedtlsResponseMarker) {
		t.Fatalf("Read %q, %v; want ssl_server2's page; ssl_server2:\n%s", got, err, srv.output())
	}
	srv.waitLine(ctx, t, goLine)
	switch feature {
	case "P384":
		s.checkP384Schemes(t, "mbedTLS", true)
	case "Renegotiation":
		tr.check(t)
	}
	// ssl_server2 closes after its answer.
	if _, err := readOnce(ctx, conn); !errors.Is(err, io.EOF) {
		t.Errorf("after the page: %v, want EOF (ssl_server2's close_notify)", err)
	}
}

// mbedtlsClientCell is ssl_client2 against our echo server: it sends an
// HTTP request, reads the echo and closes.
func mbedtlsClientCell(ctx context.Context, t *testing.T, client2 string, pki *testPKI, feature string) {
	cfg := plainServerConfig(pki)
	w := want{suite: conformanceSuite}
	args := []string{"dtls=1", "server_addr=127.0.0.1", "server_name=localhost", "force_ciphersuite=" + conformanceMbedTLS,
		"ca_file=" + pki.caFile, "auth_mode=required", "read_timeout=10000"}
	switch feature {
	case "P384":
		cfg = p384ServerConfig(pki)
		w.peerCertCN = "dtls-go-client"
		args = append(args, "crt_file="+pki.p384ClientCert, "key_file="+pki.p384ClientKey)
	case "FragmentedClientHello":
		args = append(args, "mtu=150")
	case "Renegotiation":
		args = append(args, "renegotiation=1", "renegotiate=1")
	}
	tr := &renegoTracer{}
	cfg.Tracer = tr.trace
	l := listen(t, cfg)
	s := startSpy(t, addrOf(listenerPort(l)))
	res := serveEcho(ctx, l, w, false)
	p := startProc(ctx, t, client2, append(args, "server_port="+strconv.Itoa(s.port()))...)

	switch feature {
	case "Renegotiation":
		// ssl_client2 renegotiates right after the handshake and gives
		// up when refused: MBEDTLS_ERR_SSL_WAITING_SERVER_HELLO_RENEGO
		// (-0x6B00) is the refusal, a timeout (-0x6800) would be the
		// old hang.
		p.waitDone(ctx, t)
		if !p.outputHas(mbedtlsRenegoRefused) {
			t.Fatalf("ssl_client2 did not report the refusal (%q):\n%s", mbedtlsRenegoRefused, p.output())
		}
		t.Logf("interop-note: ssl_client2 renegotiate=1 exits when its renegotiation is refused")
		tr.check(t)
		return
	case "FragmentedClientHello":
		p.waitDone(ctx, t)
		requirePeerFragments(t, s, "mbedTLS 2.28", "ssl_client2 mtu=150")
	}
	p.waitDone(ctx, t)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("ssl_client2 exited with %d:\n%s", code, p.output())
	}
	if !p.outputHas("GET / HTTP/1.0") {
		t.Errorf("ssl_client2 did not print our echo of its request:\n%s", p.output())
	}
	if feature == "P384" {
		s.checkP384Schemes(t, "mbedTLS", false)
	}
	waitEcho(ctx, t, res, true)
}
