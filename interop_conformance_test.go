package dtls

// Conformance bugs that real peers found (issue 10, item 7), reproduced
// with the scripted peer of mbpeer_test.go so that they run without the
// peer installed: the interop module's P-384 cells and the root package's
// OpenSSL tests run the same cases against the real implementations.
//
//   - ECDSA in DTLS 1.2 does not bind the hash to the curve
//     (RFC 5246 §7.4.1.4.1): a P-384 key signs with
//     ecdsa_secp256r1_sha256 when a peer lists it first.
//   - Version negotiation (RFC 5246 Appendix E.1, RFC 6347 §4.1): a
//     ClientHello offering a version newer than 1.2 gets 1.2.
//   - SNI (RFC 6066 §3): the server acknowledges a name it used with an
//     empty server_name extension in a full handshake's ServerHello.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"slices"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// p384Cert is the test certificate with a P-384 key.
func p384Cert() *testCert { return certs(nil)["p384"] }

// signWithP384 signs the transcript so far with the P-384 key and scheme.
func signWithP384(scheme tls.SignatureScheme) func(p *mbPeer) []byte {
	return func(p *mbPeer) []byte {
		sig, err := signHandshake(rand.Reader, p384Cert().tls.PrivateKey.(crypto.Signer), scheme, p.transcript)
		if err != nil {
			panic(err)
		}
		return sig
	}
}

// offerSchemes makes the scripted client offer only schemes in its
// signature_algorithms.
func offerSchemes(schemes ...tls.SignatureScheme) func(p *mbPeer) {
	return func(p *mbPeer) {
		p.hello = p.clientHello()
		p.hello.supportedSignatureAlgorithms = schemes
	}
}

// receivedMessages splits the scripted peer's transcript (12-byte DTLS
// handshake headers and bodies) into the messages of type typ.
func receivedMessages(p *mbPeer, typ handshakeType) [][]byte {
	var out [][]byte
	s := p.transcript
	for len(s) >= handshakeHeaderLen {
		var h handshakeHeader
		if !h.unmarshal(s) || len(s) < handshakeHeaderLen+int(h.length) {
			return out
		}
		if h.typ == typ {
			out = append(out, s[handshakeHeaderLen:handshakeHeaderLen+int(h.length)])
		}
		s = s[handshakeHeaderLen+int(h.length):]
	}
	return out
}

// checkServerKeyExchange checks that our server signed its
// ServerKeyExchange with scheme, and that the signature verifies under
// the certificate it sent.
func checkServerKeyExchange(scheme tls.SignatureScheme) func(t *testing.T, r *mbResult) {
	return func(t *testing.T, r *mbResult) {
		p := r.peer
		bodies := receivedMessages(p, typeServerKeyExchange)
		if len(bodies) != 1 || p.peerCert == nil {
			t.Fatalf("the peer saw %d ServerKeyExchange messages and certificate %v", len(bodies), p.peerCert != nil)
		}
		skx := &serverKeyExchangeMsg{kind: p.suite.kx}
		if !skx.unmarshal(bodies[0]) {
			t.Fatal("malformed ServerKeyExchange")
		}
		if skx.signatureAlgorithm != scheme {
			t.Errorf("our server signed with %v, want %v", skx.signatureAlgorithm, scheme)
		}
		msg := slices.Concat(p.hello.random, p.sh.random, skx.ecdhParams())
		if err := verifyHandshakeSignature(VersionDTLS12, skx.signatureAlgorithm, p.peerCert.PublicKey, msg, skx.signature); err != nil {
			t.Errorf("our ServerKeyExchange signature: %v", err)
		}
	}
}

func TestP384WithSHA256(t *testing.T) {
	p384Server := func(c *Config) { c.Certificates = []tls.Certificate{p384Cert().tls} }
	for _, row := range []mbRow{
		// Our client against a server with a P-384 certificate that
		// picks the first ECDSA scheme we list, as OpenSSL, GnuTLS and
		// mbedTLS servers do.
		{name: "server signs with ecdsa_secp256r1_sha256", ours: oursClient, suite: ecdsaSuite,
			config: func(c *Config) { c.RootCAs = p384Cert().pool },
			peer: chain(func(p *mbPeer) { p.cert = &p384Cert().tls },
				skxEdit(func(skx *serverKeyExchangeMsg) { skx.signatureAlgorithm = tls.ECDSAWithP256AndSHA256 })),
			wantErr: mbSucceeds},
		{name: "server signs with ecdsa_secp521r1_sha512", ours: oursClient, suite: ecdsaSuite,
			config: func(c *Config) { c.RootCAs = p384Cert().pool },
			peer: chain(func(p *mbPeer) { p.cert = &p384Cert().tls },
				skxEdit(func(skx *serverKeyExchangeMsg) { skx.signatureAlgorithm = tls.ECDSAWithP521AndSHA512 })),
			wantErr: mbSucceeds},
		// The signature must still verify: a P-384 signature over the
		// SHA-384 digest claimed as SHA-256 does not.
		{name: "server claims ecdsa_secp256r1_sha256 for a SHA-384 signature", ours: oursClient, suite: ecdsaSuite,
			config: func(c *Config) { c.RootCAs = p384Cert().pool },
			peer: chain(func(p *mbPeer) { p.cert = &p384Cert().tls }, onFlight("ServerFlight", func(p *mbPeer, items []mbItem) []mbItem {
				skx := items[findMsg(items, typeServerKeyExchange)].m.(*serverKeyExchangeMsg)
				msg := slices.Concat(p.hello.random, p.sh.random, skx.ecdhParams())
				sig, err := signHandshake(rand.Reader, p384Cert().tls.PrivateKey.(crypto.Signer), tls.ECDSAWithP384AndSHA384, msg)
				if err != nil {
					panic(err)
				}
				skx.signatureAlgorithm, skx.signature = tls.ECDSAWithP256AndSHA256, sig
				return items
			})),
			wantErr: "invalid ECDSA signature", wantAlert: int(alertDecryptError)},

		// A client with a P-384 certificate that signs its
		// CertificateVerify with SHA-256, as mbedTLS's ssl_client2 does.
		{name: "client certificate signs with ecdsa_secp256r1_sha256", ours: oursServer, suite: ecdsaSuite, config: clientAuth,
			peer:    chain(withClientCert("p384"), cvBody(tls.ECDSAWithP256AndSHA256, signWithP384(tls.ECDSAWithP256AndSHA256))),
			wantErr: mbSucceeds},
		{name: "client certificate signs with ecdsa_secp256r1_sha256", ours: oursListener, suite: ecdsaSuite, config: clientAuth,
			peer:    chain(withClientCert("p384"), cvBody(tls.ECDSAWithP256AndSHA256, signWithP384(tls.ECDSAWithP256AndSHA256))),
			wantErr: mbSucceeds},

		// Our own choice with a P-384 key: the curve's own hash when the
		// peer offers it, SHA-256 when that is all it offers (RFC 7925
		// §4.4.2 clients need only ecdsa_secp256r1_sha256).
		{name: "P-384 server, client offers only ecdsa_secp256r1_sha256", ours: oursServer, suite: ecdsaSuite,
			config:  p384Server,
			peer:    offerSchemes(tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256),
			wantErr: mbSucceeds, check: checkServerKeyExchange(tls.ECDSAWithP256AndSHA256)},
		{name: "P-384 server, client offers SHA-256 before SHA-384", ours: oursServer, suite: ecdsaSuite,
			config:  p384Server,
			peer:    offerSchemes(tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384),
			wantErr: mbSucceeds, check: checkServerKeyExchange(tls.ECDSAWithP384AndSHA384)},
		{name: "P-384 server, client offers no ECDSA scheme", ours: oursServer, suite: ecdsaSuite,
			config:  p384Server,
			peer:    offerSchemes(tls.PSSWithSHA256, tls.Ed25519),
			wantErr: "no cipher suite", wantAlert: int(alertHandshakeFailure)},
	} {
		t.Run(row.ours+"/"+row.name, func(t *testing.T) { testMBRow(t, row) })
	}
}

// TestSignatureSchemesForKey pins the schemes each key signs and verifies
// with, per version: any ECDSA hash in DTLS 1.2, the curve's own in 1.3.
func TestSignatureSchemesForKey(t *testing.T) {
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	all := []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384, tls.ECDSAWithP521AndSHA512}
	for _, tt := range []struct {
		name   string
		key    crypto.Signer
		vers   uint16
		peer   []tls.SignatureScheme
		want   tls.SignatureScheme // 0: no scheme
		verify []tls.SignatureScheme
	}{
		{"P-256 1.2", certs(t)["p256"].tls.PrivateKey.(crypto.Signer), VersionDTLS12, all, tls.ECDSAWithP256AndSHA256, all},
		{"P-384 1.2", p384Cert().tls.PrivateKey.(crypto.Signer), VersionDTLS12, all, tls.ECDSAWithP384AndSHA384, all},
		{"P-384 1.2, peer has SHA-256 only", p384Cert().tls.PrivateKey.(crypto.Signer), VersionDTLS12, all[:1], tls.ECDSAWithP256AndSHA256, all},
		{"P-521 1.2, peer has SHA-256 and SHA-384", p521, VersionDTLS12, all[:2], tls.ECDSAWithP256AndSHA256, all},
		{"P-384 1.3", p384Cert().tls.PrivateKey.(crypto.Signer), VersionDTLS13, all, tls.ECDSAWithP384AndSHA384, all[1:2]},
		{"P-384 1.3, peer has SHA-256 only", p384Cert().tls.PrivateKey.(crypto.Signer), VersionDTLS13, all[:1], 0, all[1:2]},
		{"P-256 1.3", certs(t)["p256"].tls.PrivateKey.(crypto.Signer), VersionDTLS13, all, tls.ECDSAWithP256AndSHA256, all[:1]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := selectSignatureScheme(tt.vers, tt.key, tt.peer)
			if tt.want == 0 {
				if err == nil {
					t.Errorf("selectSignatureScheme = %v, want an error", got)
				}
			} else if err != nil || got != tt.want {
				t.Errorf("selectSignatureScheme = %v, %v; want %v", got, err, tt.want)
			}
			msg := []byte("signed handshake data")
			for _, s := range all {
				sig, err := signHandshake(rand.Reader, tt.key, s, msg)
				if err != nil {
					t.Fatal(err)
				}
				err = verifyHandshakeSignature(tt.vers, s, tt.key.Public(), msg, sig)
				if ok := slices.Contains(tt.verify, s); ok != (err == nil) {
					t.Errorf("verify %v: %v, want accepted %v", s, err, ok)
				}
			}
		})
	}
}

// withClientHelloBody makes the scripted client send its ClientHello (both
// of them, around a cookie exchange) through f after marshalling.
func withClientHelloBody(f func(body []byte) []byte) func(p *mbPeer) {
	edit := func(p *mbPeer, items []mbItem) []mbItem {
		items[findMsg(items, typeClientHello)].lazy = func(p *mbPeer) []byte {
			b, err := p.hello.marshal()
			if err != nil {
				panic(err)
			}
			return f(b)
		}
		return items
	}
	return chain(onFlight("ClientHello", edit), onFlight("ClientHelloCookie", edit))
}

// appendHelloExtension adds an extension at the end of a marshalled
// ClientHello body.
func appendHelloExtension(body []byte, id uint16, data []byte) []byte {
	s := cryptobyte.String(body)
	var vers uint16
	var random, sessionID, cookie, suites, compression, exts []byte
	if !s.ReadUint16(&vers) || !s.ReadBytes(&random, randomLen) ||
		!s.ReadUint8LengthPrefixed((*cryptobyte.String)(&sessionID)) ||
		!s.ReadUint8LengthPrefixed((*cryptobyte.String)(&cookie)) ||
		!s.ReadUint16LengthPrefixed((*cryptobyte.String)(&suites)) ||
		!s.ReadUint8LengthPrefixed((*cryptobyte.String)(&compression)) {
		panic("appendHelloExtension: malformed ClientHello")
	}
	if !s.Empty() && (!s.ReadUint16LengthPrefixed((*cryptobyte.String)(&exts)) || !s.Empty()) {
		panic("appendHelloExtension: malformed extensions")
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint16(vers)
	b.AddBytes(random)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sessionID) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(cookie) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(suites) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(compression) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddBytes(exts)
		b.AddUint16(id)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(data) })
	})
	return b.BytesOrPanic()
}

// testExtSupportedVersions is RFC 8446 §4.2.1's supported_versions.
const testExtSupportedVersions = 43

// dtls13SupportedVersions is the supported_versions extension of a client
// offering DTLS 1.3 and 1.2.
var dtls13SupportedVersions = []byte{4, 0xfe, 0xfc, 0xfe, 0xfd}

// helloVersion makes the scripted client send client_version v.
func helloVersion(v uint16) func(p *mbPeer) {
	return func(p *mbPeer) { p.hello = p.clientHello(); p.hello.vers = v }
}

// checkNegotiated12 checks the ServerHello the scripted client got.
func checkNegotiated12(t *testing.T, r *mbResult) {
	if r.peer.sh == nil || r.peer.sh.vers != VersionDTLS12 {
		t.Errorf("ServerHello %+v, want version DTLS 1.2", r.peer.sh)
	}
}

func TestVersionTolerance(t *testing.T) {
	for _, ours := range []string{oursServer, oursListener} {
		for _, row := range []mbRow{
			// RFC 9147 §5.3: a DTLS 1.3 client puts 1.2 in
			// legacy_version and its versions in supported_versions.
			{name: "DTLS 1.3 ClientHello", peer: chain(helloVersion(VersionDTLS12),
				withClientHelloBody(func(b []byte) []byte {
					return appendHelloExtension(b, testExtSupportedVersions, dtls13SupportedVersions)
				}))},
			{name: "client_version 1.3", peer: helloVersion(VersionDTLS13)},
			{name: "client_version 1.3 with supported_versions", peer: chain(helloVersion(VersionDTLS13),
				withClientHelloBody(func(b []byte) []byte {
					return appendHelloExtension(b, testExtSupportedVersions, dtls13SupportedVersions)
				}))},
			// A DTLS 2.0 ({253,255}), which must fall back to 1.2.
			{name: "client_version 0xfdff", peer: helloVersion(0xfdff)},
			{name: "client_version 0x0001", peer: helloVersion(0x0001)},
			// Older than 1.2: refused.
			{name: "client_version 1.0", peer: helloVersion(VersionDTLS10),
				wantErr: "DTLS 1.2 is required", wantAlert: int(alertProtocolVersion)},
			{name: "client_version 0xfefe", peer: helloVersion(0xfefe),
				wantErr: "DTLS 1.2 is required", wantAlert: int(alertProtocolVersion)},
		} {
			row.ours = ours
			if row.wantErr == mbSucceeds {
				row.check = checkNegotiated12
			}
			if ours == oursListener && row.wantErr != mbSucceeds {
				// A Listener reports a failed handshake through the
				// Tracer, not as an error of our side.
				row.wantErr = "DTLS 1.2 is required"
			}
			t.Run(row.ours+"/"+row.name, func(t *testing.T) { testMBRow(t, row) })
		}
	}
}

// serverNameAcked checks whether the ServerHello the scripted client got
// acknowledged its server_name.
func serverNameAcked(want bool) func(t *testing.T, r *mbResult) {
	return func(t *testing.T, r *mbResult) {
		if r.peer.sh == nil {
			t.Fatal("no ServerHello")
		}
		if r.peer.sh.serverNameAck != want {
			t.Errorf("ServerHello server_name acknowledged: %v, want %v", r.peer.sh.serverNameAck, want)
		}
	}
}

func TestSNIAcknowledged(t *testing.T) {
	withName := func(name string) func(p *mbPeer) {
		return func(p *mbPeer) { p.hello = p.clientHello(); p.hello.serverName = name }
	}
	// The scripted server's ServerHello carries a server_name extension
	// with data (RFC 6066 §3: it must be empty).
	nonEmptyAck := onFlight("ServerFlight", func(p *mbPeer, items []mbItem) []mbItem {
		i := findMsg(items, typeServerHello)
		sh := items[i].m.(*serverHelloMsg)
		sh.serverNameAck = false
		b, err := sh.marshal()
		if err != nil {
			panic(err)
		}
		items[i].body = appendServerHelloExtension(b, extensionServerName, []byte{0, 0})
		return items
	})
	// The server uses the name when GetCertificate chooses the
	// certificate by it.
	byName := func(c *Config) {
		p256 := certs(nil)["p256"].tls
		c.GetCertificate = func(info *ClientHelloInfo) (*tls.Certificate, error) {
			if info.ServerName == "dtls.test" {
				return &p256, nil
			}
			return nil, nil
		}
	}
	for _, row := range []mbRow{
		{name: "server acknowledges the name it chose a certificate by", ours: oursServer, suite: ecdsaSuite,
			config: byName, peer: withName("dtls.test"), wantErr: mbSucceeds, check: serverNameAcked(true)},
		{name: "server acknowledges the name it chose a certificate by", ours: oursListener, suite: ecdsaSuite,
			config: byName, peer: withName("dtls.test"), wantErr: mbSucceeds, check: serverNameAcked(true)},
		{name: "GetCertificate falls back to Certificates", ours: oursServer, suite: ecdsaSuite,
			config: byName, peer: withName("other.test"), wantErr: mbSucceeds, check: serverNameAcked(true)},
		{name: "name not used without GetCertificate", ours: oursServer, suite: ecdsaSuite,
			peer: withName("dtls.test"), wantErr: mbSucceeds, check: serverNameAcked(false)},
		{name: "no name, no acknowledgement", ours: oursServer, suite: ecdsaSuite,
			config: byName, wantErr: mbSucceeds, check: serverNameAcked(false)},
		{name: "client accepts the acknowledgement", ours: oursClient, suite: ecdsaSuite,
			peer: shEdit(func(sh *serverHelloMsg) { sh.serverNameAck = true }), wantErr: mbSucceeds},
		{name: "acknowledgement of a name the client did not send", ours: oursClient, suite: ecdsaSuite,
			config:  func(c *Config) { c.ServerName, c.InsecureSkipVerify = "", true },
			peer:    shEdit(func(sh *serverHelloMsg) { sh.serverNameAck = true }),
			wantErr: "which we did not offer", wantAlert: int(alertUnsupportedExtension)},
		{name: "acknowledgement with data", ours: oursClient, suite: ecdsaSuite,
			peer: nonEmptyAck, wantErr: "malformed ServerHello", wantAlert: int(alertDecodeError)},
	} {
		t.Run(row.ours+"/"+row.name, func(t *testing.T) { testMBRow(t, row) })
	}
}

// appendServerHelloExtension adds an extension at the end of a marshalled
// ServerHello body.
func appendServerHelloExtension(body []byte, id uint16, data []byte) []byte {
	s := cryptobyte.String(body)
	var head, sessionID, exts []byte
	if !s.ReadBytes(&head, 2+randomLen) || !s.ReadUint8LengthPrefixed((*cryptobyte.String)(&sessionID)) {
		panic("appendServerHelloExtension: malformed ServerHello")
	}
	var tail []byte
	if !s.ReadBytes(&tail, 3) {
		panic("appendServerHelloExtension: malformed ServerHello")
	}
	if !s.Empty() && (!s.ReadUint16LengthPrefixed((*cryptobyte.String)(&exts)) || !s.Empty()) {
		panic("appendServerHelloExtension: malformed extensions")
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddBytes(head)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sessionID) })
	b.AddBytes(tail)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddBytes(exts)
		b.AddUint16(id)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(data) })
	})
	return b.BytesOrPanic()
}

// TestSNINotAcknowledgedOnResumption: RFC 6066 §3, "When resuming a
// session, the server MUST NOT include a server_name extension in the
// server hello." Our client and server over loopback; the client's Tracer
// hands over the plaintext ServerHellos. DTLS 1.2: a 1.3 server
// acknowledges the name in its encrypted EncryptedExtensions.
func TestSNINotAcknowledgedOnResumption(t *testing.T) {
	p256 := certs(t)["p256"]
	l, _ := echoServer(t, &Config{GetCertificate: func(*ClientHelloInfo) (*tls.Certificate, error) { return &p256.tls, nil }}, nil)
	cache := NewLRUClientSessionCache(4)
	for i, wantAck := range []bool{true, false} {
		var hellos []*serverHelloMsg
		cfg := &Config{RootCAs: p256.pool, ServerName: "dtls.test", ClientSessionCache: cache, MaxVersion: VersionDTLS12,
			Tracer: func(ev *TraceEvent) {
				if ev.Kind == TraceDatagramReceived {
					hellos = append(hellos, serverHellosIn(ev.Datagram)...)
				}
			}}
		c, err := Dial("udp", l.Addr().String(), cfg)
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		resumed := c.ConnectionState().DidResume
		c.Close()
		if resumed != (i == 1) {
			t.Fatalf("connection %d: DidResume %v", i+1, resumed)
		}
		if len(hellos) == 0 {
			t.Fatalf("connection %d: no ServerHello seen", i+1)
		}
		for _, sh := range hellos {
			if sh.serverNameAck != wantAck {
				t.Errorf("connection %d (resumed %v): server_name acknowledged %v, want %v", i+1, resumed, sh.serverNameAck, wantAck)
			}
		}
	}
}

// serverHellosIn returns the ServerHellos in a datagram's epoch-0 records.
func serverHellosIn(d []byte) []*serverHelloMsg {
	var out []*serverHelloMsg
	for len(d) > 0 {
		hdr, body, rest, reason := nextRecord(d)
		if reason != dropNone {
			return out
		}
		d = rest
		if hdr.typ != recordTypeHandshake || hdr.epoch != 0 {
			continue
		}
		var h handshakeHeader
		if !h.unmarshal(body) || h.typ != typeServerHello || h.fragmentOffset != 0 ||
			h.fragmentLength != h.length || len(body) < handshakeHeaderLen+int(h.length) {
			continue
		}
		sh := new(serverHelloMsg)
		if sh.unmarshal(body[handshakeHeaderLen : handshakeHeaderLen+int(h.length)]) {
			out = append(out, sh)
		}
	}
	return out
}
