package interop_test

// Interoperability with libcoap 4.3 (Debian's libcoap3-bin), whose tools
// come built on OpenSSL and on GnuTLS: coaps:// is CoAP (RFC 7252) over
// DTLS 1.2, and CoAP's mandatory PSK suite is TLS_PSK_WITH_AES_128_CCM_8
// (RFC 7252 §9.1.3.1).
//
//	coap-client-* -> our server: a tiny CoAP responder on our Listener
//	answers GET /hello with 2.05 Content "hello from dtls-go"; the test
//	checks coap-client prints it.
//	our client -> coap-server-*: we send a confirmable GET / and must get
//	a piggybacked 2.05 with libcoap's banner.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/internal/dtlstest"
)

// CoAP message format (RFC 7252 §3).
const (
	coapVersion = 1

	coapCON = 0
	coapNON = 1
	coapACK = 2
	coapRST = 3

	coapGET        = 0x01 // 0.01
	coapContent    = 0x45 // 2.05
	coapNotFound   = 0x84 // 4.04
	coapBadMethod  = 0x85 // 4.05
	coapPayloadMrk = 0xff

	coapOptUriPath       = 11
	coapOptContentFormat = 12
)

type coapOption struct {
	num uint16
	val []byte
}

type coapMessage struct {
	typ     uint8
	code    uint8
	id      uint16
	token   []byte
	options []coapOption // in ascending order of num
	payload []byte
}

var errCoAPFormat = errors.New("malformed CoAP message")

// parseCoAP parses one CoAP message (RFC 7252 §3): a 4-byte header
// (Ver:2 T:2 TKL:4, Code, Message ID), the token, options as deltas with
// 13/14 extensions, then 0xFF and the payload.
func parseCoAP(b []byte) (coapMessage, error) {
	var m coapMessage
	if len(b) < 4 || b[0]>>6 != coapVersion {
		return m, errCoAPFormat
	}
	m.typ = b[0] >> 4 & 3
	tkl := int(b[0] & 0xf)
	m.code = b[1]
	m.id = binary.BigEndian.Uint16(b[2:4])
	b = b[4:]
	if tkl > 8 || len(b) < tkl {
		return m, errCoAPFormat
	}
	m.token, b = b[:tkl], b[tkl:]
	num := 0
	ext := func(nibble int) (int, bool) {
		switch nibble {
		case 13:
			if len(b) < 1 {
				return 0, false
			}
			v := int(b[0]) + 13
			b = b[1:]
			return v, true
		case 14:
			if len(b) < 2 {
				return 0, false
			}
			v := int(binary.BigEndian.Uint16(b)) + 269
			b = b[2:]
			return v, true
		case 15:
			return 0, false
		}
		return nibble, true
	}
	for len(b) > 0 {
		if b[0] == coapPayloadMrk {
			if len(b) == 1 {
				return m, errCoAPFormat // a marker must be followed by a payload
			}
			m.payload = b[1:]
			break
		}
		h := b[0]
		b = b[1:]
		delta, ok1 := ext(int(h >> 4))
		length, ok2 := ext(int(h & 0xf))
		if !ok1 || !ok2 || len(b) < length || num+delta > 0xffff {
			return m, errCoAPFormat
		}
		num += delta
		m.options = append(m.options, coapOption{uint16(num), b[:length]})
		b = b[length:]
	}
	return m, nil
}

func (m coapMessage) marshal() []byte {
	b := []byte{coapVersion<<6 | m.typ<<4 | uint8(len(m.token)), m.code, 0, 0}
	binary.BigEndian.PutUint16(b[2:], m.id)
	b = append(b, m.token...)
	nibble := func(v int) (uint8, []byte) {
		switch {
		case v < 13:
			return uint8(v), nil
		case v < 269:
			return 13, []byte{uint8(v - 13)}
		default:
			return 14, binary.BigEndian.AppendUint16(nil, uint16(v-269))
		}
	}
	prev := 0
	for _, o := range m.options {
		dn, dx := nibble(int(o.num) - prev)
		ln, lx := nibble(len(o.val))
		b = append(b, dn<<4|ln)
		b = append(b, dx...)
		b = append(b, lx...)
		b = append(b, o.val...)
		prev = int(o.num)
	}
	if len(m.payload) > 0 {
		b = append(b, coapPayloadMrk)
		b = append(b, m.payload...)
	}
	return b
}

func (m coapMessage) path() string {
	var segs []string
	for _, o := range m.options {
		if o.num == coapOptUriPath {
			segs = append(segs, string(o.val))
		}
	}
	return "/" + strings.Join(segs, "/")
}

const coapHello = "hello from dtls-go"

// coapRespond answers one request: GET /hello gets 2.05 text/plain
// coapHello, other paths 4.04, other methods 4.05. A CON request gets a
// piggybacked ACK, a NON one a NON. It returns nil for messages that need
// no answer (responses, empty ACKs, RSTs).
func coapRespond(req coapMessage, nextID func() uint16) []byte {
	if req.code == 0 || req.code>>5 != 0 || req.typ == coapACK || req.typ == coapRST {
		return nil // empty message or a response
	}
	resp := coapMessage{typ: coapACK, id: req.id, token: req.token}
	if req.typ == coapNON {
		resp.typ, resp.id = coapNON, nextID()
	}
	switch {
	case req.code != coapGET:
		resp.code = coapBadMethod
	case req.path() != "/hello":
		resp.code = coapNotFound
	default:
		resp.code = coapContent
		resp.options = []coapOption{{coapOptContentFormat, nil}} // 0: text/plain; charset=utf-8
		resp.payload = []byte(coapHello)
	}
	return resp.marshal()
}

func TestCoAPCodec(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 300)
	m := coapMessage{typ: coapCON, code: coapGET, id: 0xbeef, token: []byte{1, 2, 3},
		options: []coapOption{{3, []byte("localhost")}, {coapOptUriPath, []byte("hello")}, {coapOptUriPath, long}, {2000, nil}},
		payload: []byte("p")}
	got, err := parseCoAP(m.marshal())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(m) {
		t.Errorf("round trip:\n got %v\nwant %v", got, m)
	}
	if got.path() != "/hello/"+string(long) {
		t.Errorf("path %q", got.path())
	}
	// A GET /hello assembled by hand the way coap-client sends it: CON,
	// 4-byte token, Uri-Host "127.0.0.1" (3), Uri-Path "hello" (11).
	wire := []byte{0x44, 0x01, 0x6a, 0x1c, 0xd6, 0x45, 0x3c, 0x1c, 0x39, 0x31, 0x32, 0x37, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0x85, 0x68, 0x65, 0x6c, 0x6c, 0x6f}
	req, err := parseCoAP(wire)
	if err != nil {
		t.Fatal(err)
	}
	if req.typ != coapCON || req.code != coapGET || req.path() != "/hello" || len(req.token) != 4 {
		t.Errorf("parsed %+v", req)
	}
	resp, err := parseCoAP(coapRespond(req, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.typ != coapACK || resp.id != req.id || !bytes.Equal(resp.token, req.token) || resp.code != coapContent || string(resp.payload) != coapHello {
		t.Errorf("response %+v", resp)
	}
	for _, bad := range [][]byte{{}, {0x80, 1, 0, 0}, {0x49, 1, 0, 0}, {0x40, 1, 0, 0, 0xff}, {0x40, 1, 0, 0, 0xf0}, {0x40, 1, 0, 0, 0x15}} {
		if _, err := parseCoAP(bad); err == nil {
			t.Errorf("parseCoAP(%x) succeeded", bad)
		}
	}
}

// serveCoAP accepts one connection on l and answers its CoAP requests
// until the peer closes or ctx ends. It reports how many it answered, and
// hands the connection to conns (if not nil) once its state checks out.
func serveCoAP(ctx context.Context, l *dtls.Listener, w want, conns chan<- *dtls.Conn) <-chan echoResult {
	res := make(chan echoResult, 1)
	go func() {
		var r echoResult
		defer func() { res <- r }()
		c, err := l.Accept()
		if err != nil {
			r.err = fmt.Errorf("Accept: %w", err)
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		dc := c.(*dtls.Conn)
		if err := dc.HandshakeContext(ctx); err != nil {
			r.err = fmt.Errorf("server Handshake: %w", err)
			return
		}
		if err := w.check(dc.ConnectionState()); err != nil {
			r.err = fmt.Errorf("server: %w", err)
			return
		}
		if conns != nil {
			conns <- dc
		}
		id := uint16(0x1000)
		nextID := func() uint16 { id++; return id }
		buf := make([]byte, 1<<14)
		for {
			n, err := c.Read(buf)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				r.err = fmt.Errorf("server Read after %d answers: %w", r.echoed, err)
				return
			}
			req, err := parseCoAP(buf[:n])
			if err != nil {
				r.err = fmt.Errorf("server: %w: %x", err, buf[:n])
				return
			}
			if resp := coapRespond(req, nextID); resp != nil {
				if _, err := c.Write(resp); err != nil {
					r.err = fmt.Errorf("server Write: %w", err)
					return
				}
				r.echoed++
			}
		}
	}()
	return res
}

// libcoapFlavour is libcoap built on one TLS library.
type libcoapFlavour struct {
	row            string // matrix row
	client, server string // binaries
	rpk            string // the RPK cell's reason not to run; "" runs it
}

var libcoapFlavours = []libcoapFlavour{
	{row: "libcoap-OpenSSL", client: "coap-client-openssl", server: "coap-server-openssl",
		rpk: "n.a.: libcoap has no raw public key support on OpenSSL"},
	{row: "libcoap-GnuTLS", client: "coap-client-gnutls", server: "coap-server-gnutls"},
}

type coapCase struct {
	name       string
	psk        bool
	clientAuth bool
	rpk        bool // raw public keys (RFC 7250) both ways, from -M key files
	notYet, na string
}

var coapCases = []coapCase{
	{name: "ECDSA-P256"},
	{name: "PSK-CCM8", psk: true},
	{name: "ClientAuth", clientAuth: true},
	{name: "MTU300", na: "libcoap's tools have no option to set the DTLS MTU"},
	{name: "RPK", rpk: true}, // runs only where libcoapFlavour.rpk is empty
	{name: "CID", na: "libcoap 4.3.1 does not implement connection IDs (RFC 9146); 4.3.5 does"},
	{name: "SRTP", na: "CoAP does not use DTLS-SRTP"},
}

// coapPSK is an ASCII key: libcoap's -k takes the key's bytes as text.
const coapPSK = "dtls-go-coap-secret"

func TestLibCoAP(t *testing.T) {
	for _, fl := range libcoapFlavours {
		t.Run(fl.row, func(t *testing.T) {
			client := requirePeer(t, fl.row, fl.client)
			server := requirePeer(t, fl.row, fl.server)
			logVersion(t, fl.row, libcoapVersion(client))
			pki := newTestPKI(t)

			// coap-server, our client.
			t.Run("client", func(t *testing.T) {
				for _, tc := range coapCases {
					t.Run(tc.name, func(t *testing.T) {
						skipCoAPCell(t, fl, tc)
						testCoAPServer(t, server, pki, tc)
					})
				}
			})
			// coap-client, our server.
			t.Run("server", func(t *testing.T) {
				for _, tc := range coapCases {
					t.Run(tc.name, func(t *testing.T) {
						skipCoAPCell(t, fl, tc)
						testCoAPClient(t, client, pki, tc)
					})
				}
			})
		})
	}
}

// libcoapVersion picks the version and TLS library lines from the usage
// text a libcoap tool prints when run without arguments.
func libcoapVersion(bin string) string {
	out, _ := exec.Command(bin).CombinedOutput()
	var v []string
	for l := range strings.Lines(string(out)) {
		l = strings.TrimSpace(l)
		if strings.Contains(l, "a small CoAP implementation") || strings.HasPrefix(l, "TLS Library:") {
			v = append(v, strings.TrimSuffix(l, " -- a small CoAP implementation"))
		}
	}
	return strings.Join(v, "; ")
}

func skipCoAPCell(t *testing.T, fl libcoapFlavour, tc coapCase) {
	t.Helper()
	if tc.rpk && fl.rpk != "" {
		t.Skip(fl.rpk)
	}
	skipCell(t, tc.notYet, tc.na)
}

// testCoAPClient runs coap-client against our CoAP responder.
func testCoAPClient(t *testing.T, client string, pki *testPKI, tc coapCase) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	w := want{psk: tc.psk}
	cfg := &dtls.Config{}
	var ourKey, peerKey *rpkKey
	switch {
	case tc.psk:
		w.suite = dtls.TLS_PSK_WITH_AES_128_CCM_8
		cfg = serverPSKConfig([]byte(coapPSK), dtls.TLS_PSK_WITH_AES_128_CCM_8)
	case tc.rpk:
		// We require the client's raw key and accept only the one
		// coap-client was given.
		ourKey, peerKey = newRPKKey(t, "server"), newRPKKey(t, "client")
		cfg.RawPublicKey = true
		cfg.Certificates = []tls.Certificate{{PrivateKey: ourKey.key}}
		cfg.PeerPublicKeys = []crypto.PublicKey{peerKey.key.Public()}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		cfg.Certificates = []tls.Certificate{pki.server}
	}
	if tc.clientAuth {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pki.roots
		w.peerCertCN = "dtls-go-client"
	}
	l := listen(t, cfg)
	var conns chan *dtls.Conn
	if tc.rpk {
		conns = make(chan *dtls.Conn, 1)
	}
	res := serveCoAP(ctx, l, w, conns)

	args := []string{"-m", "get", "-B", "10", "-w"}
	switch {
	case tc.psk:
		args = append(args, "-k", coapPSK, "-u", pskIdentity)
	case tc.rpk:
		args = append(args, "-M", peerKey.file)
	case tc.clientAuth:
		// -C: trust the CA for the server and present our certificate,
		// signed by the same CA (libcoap's mutual authentication).
		args = append(args, "-C", pki.caFile, "-c", pki.clientCert, "-j", pki.clientKey)
	default:
		args = append(args, "-R", pki.caFile)
	}
	args = append(args, "coaps://127.0.0.1:"+strconv.Itoa(listenerPort(l))+"/hello")
	p := startProc(ctx, t, client, args...)
	p.waitLine(ctx, t, coapHello)
	p.waitExit(t, 0)
	if tc.rpk {
		select {
		case c := <-conns:
			checkRPK(t, c.ConnectionState(), peerKey)
		case <-ctx.Done():
			t.Fatal("our server saw no handshake")
		}
	}
	// libcoap's client may end without close_notify; the answer is what
	// counts.
	cancel()
	waitEcho(context.Background(), t, res, false)
}

// testCoAPServer runs our client against coap-server.
func testCoAPServer(t *testing.T, server string, pki *testPKI, tc coapCase) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	args := []string{"-A", "127.0.0.1", "-v", "4"}
	var ourKey, peerKey *rpkKey
	switch {
	case tc.psk:
		args = append(args, "-k", coapPSK)
	case tc.rpk:
		ourKey, peerKey = newRPKKey(t, "client"), newRPKKey(t, "server")
		args = append(args, "-M", peerKey.file)
	case tc.clientAuth:
		// -C: verify clients against the CA (mutual authentication).
		args = append(args, "-c", pki.serverCert, "-j", pki.serverKey, "-C", pki.caFile)
	default:
		args = append(args, "-c", pki.serverCert, "-j", pki.serverKey, "-n")
	}
	// coap-server listens for coaps:// on its -p port plus one.
	_, port := startServerProcOffset(ctx, t, server, 1, func(port int) []string {
		return append([]string{"-p", strconv.Itoa(port - 1)}, args...)
	})

	w := want{psk: tc.psk}
	cfg := &dtls.Config{}
	switch {
	case tc.psk:
		w.suite = dtls.TLS_PSK_WITH_AES_128_CCM_8
		cfg = pskConfig([]byte(coapPSK), dtls.TLS_PSK_WITH_AES_128_CCM_8)
	case tc.rpk:
		// We pin coap-server's key and offer our own.
		cfg.RawPublicKey = true
		cfg.PeerPublicKeys = []crypto.PublicKey{peerKey.key.Public()}
		cfg.Certificates = []tls.Certificate{{PrivateKey: ourKey.key}}
	default:
		cfg.RootCAs, cfg.ServerName = pki.roots, "localhost"
		w.peerCertCN = "localhost"
	}
	if tc.clientAuth {
		cfg.Certificates = []tls.Certificate{pki.client}
	}
	conn, err := dtls.DialContext(ctx, "udp", addrOf(port), cfg)
	if err != nil {
		t.Fatalf("DialContext: %v", err)
	}
	defer conn.Close()
	if err := w.check(conn.ConnectionState()); err != nil {
		t.Error(err)
	}
	if tc.rpk {
		checkRPK(t, conn.ConnectionState(), peerKey)
	}
	req := coapMessage{typ: coapCON, code: coapGET, id: 0x2a2a, token: []byte("dtlsgo")}
	if _, err := conn.Write(req.marshal()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(exitWait))
	buf := make([]byte, 1<<14)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	resp, err := parseCoAP(buf[:n])
	if err != nil {
		t.Fatalf("response: %v: %x", err, buf[:n])
	}
	if resp.typ != coapACK || resp.id != req.id || !bytes.Equal(resp.token, req.token) || resp.code != coapContent {
		t.Errorf("response type %d id %#x token %q code %#x, want a piggybacked 2.05 ACK to %#x", resp.typ, resp.id, resp.token, resp.code, req.id)
	}
	if !strings.Contains(string(resp.payload), "libcoap") {
		t.Errorf("payload %q, want libcoap's banner", resp.payload)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// rpkKey is a P-256 key for a raw public key cell, and the file libcoap's
// -M takes: the key as a SEC 1 "EC PRIVATE KEY" PEM.
type rpkKey struct {
	key  *ecdsa.PrivateKey
	file string
}

func newRPKKey(t *testing.T, name string) *rpkKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), name+"-rpk.pem")
	dtlstest.WritePEM(t, f, "EC PRIVATE KEY", der)
	return &rpkKey{key: k, file: f}
}

// checkRPK checks that the peer authenticated with peer's raw public key
// and no certificate.
func checkRPK(t *testing.T, st dtls.ConnectionState, peer *rpkKey) {
	t.Helper()
	if len(st.PeerCertificates) != 0 {
		t.Errorf("the peer presented %d X.509 certificates, want a raw public key", len(st.PeerCertificates))
	}
	if k, ok := st.PeerPublicKey.(*ecdsa.PublicKey); !ok || !k.Equal(peer.key.Public()) {
		t.Errorf("peer raw public key %T %v, want the one given to libcoap", st.PeerPublicKey, st.PeerPublicKey)
	}
}
