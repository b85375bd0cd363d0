package dtls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCertificateMsgRawPublicKey(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(key.Public())
	b, err := (&certificateMsg{rawPublicKey: true, certificates: [][]byte{spki}}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	// RFC 7250 §3: ASN.1_subjectPublicKeyInfo<1..2^24-1>, no list.
	want := append([]byte{0, byte(len(spki) >> 8), byte(len(spki))}, spki...)
	if !bytes.Equal(b, want) {
		t.Fatalf("marshal: %x, want %x", b, want)
	}
	m := &certificateMsg{rawPublicKey: true}
	if !m.unmarshal(b) || len(m.certificates) != 1 || !bytes.Equal(m.certificates[0], spki) {
		t.Fatalf("unmarshal: %+v", m)
	}
	// The same bytes are not a valid certificate list.
	if (&certificateMsg{}).unmarshal(b) {
		t.Error("raw public key parsed as a certificate list")
	}
	if m := (&certificateMsg{rawPublicKey: true}); !m.unmarshal([]byte{0, 0, 0}) || len(m.certificates) != 0 {
		t.Error("empty raw public key Certificate")
	}
	for _, bad := range [][]byte{{}, {0, 0}, {0, 0, 5, 1}, append(bytes.Clone(b), 0)} {
		if (&certificateMsg{rawPublicKey: true}).unmarshal(bad) {
			t.Errorf("accepted %x", bad)
		}
	}
}

// rpkKey returns a key for raw public key tests by type.
func rpkKey(t testing.TB, kind string) (tls.Certificate, crypto.PublicKey) {
	tc := certs(t)[kind]
	signer := tc.tls.PrivateKey.(crypto.Signer)
	// A tls.Certificate with only the private key is enough.
	return tls.Certificate{PrivateKey: signer}, signer.Public()
}

func TestRawPublicKeyHandshake(t *testing.T) {
	checkNoGoroutineLeak(t)
	tests := []struct {
		name  string
		suite uint16
		kind  string
	}{
		{"p256", TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"},
		{"p384", TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "p384"},
		{"ed25519", TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ed25519"},
		{"rsa", TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "rsa"},
	}
	for _, tt := range tests {
		for _, clientAuth := range []bool{false, true} {
			name := tt.name
			if clientAuth {
				name += "/client-auth"
			}
			t.Run(name, func(t *testing.T) {
				serverCert, serverPub := rpkKey(t, tt.kind)
				clientCert, clientPub := rpkKey(t, "p256")
				scfg := &Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}, CipherSuites: []uint16{tt.suite}}
				// DTLS 1.2, where the suite picks the key's kind; 1.3:
				// TestHandshake13RawPublicKey.
				ccfg := &Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{serverPub}, CipherSuites: []uint16{tt.suite}, MaxVersion: VersionDTLS12}
				if clientAuth {
					scfg.ClientAuth = tls.RequireAndVerifyClientCert
					scfg.PeerPublicKeys = []crypto.PublicKey{clientPub}
					ccfg.Certificates = []tls.Certificate{clientCert}
				}
				l, states := echoServer(t, scfg, nil)
				c, err := Dial("udp", l.Addr().String(), ccfg)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				exchange(t, c, "raw keys")
				cs := c.ConnectionState()
				if !publicKeysEqual(serverPub, cs.PeerPublicKey) || len(cs.PeerCertificates) != 0 {
					t.Errorf("client sees %T %d certificates", cs.PeerPublicKey, len(cs.PeerCertificates))
				}
				ss := <-states
				if clientAuth != (ss.PeerPublicKey != nil) || clientAuth && !publicKeysEqual(clientPub, ss.PeerPublicKey) {
					t.Errorf("server sees client key %T", ss.PeerPublicKey)
				}
			})
		}
	}
}

// TestRawPublicKeyMixed: a server with an X.509 chain and RawPublicKey
// serves both kinds of client, and VerifyPeerCertificate sees the SPKI.
func TestRawPublicKeyMixed(t *testing.T) {
	checkNoGoroutineLeak(t)
	tc := certs(t)["p256"]
	scfg := &Config{RawPublicKey: true, Certificates: []tls.Certificate{tc.tls}}
	l, _ := echoServer(t, scfg, nil)

	// DTLS 1.2 clients; 1.3: TestHandshake13RawPublicKeyMixed.
	x509Client := &Config{RootCAs: tc.pool, ServerName: "dtls.test", MaxVersion: VersionDTLS12}
	c, err := Dial("udp", l.Addr().String(), x509Client)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c, "x509")
	if cs := c.ConnectionState(); len(cs.PeerCertificates) != 1 || cs.PeerPublicKey != nil {
		t.Errorf("X.509 client state: %d certificates, raw key %T", len(cs.PeerCertificates), cs.PeerPublicKey)
	}
	c.Close()

	var seen []byte
	rpkClient := &Config{RawPublicKey: true, MaxVersion: VersionDTLS12, VerifyPeerCertificate: func(raw [][]byte, chains [][]*x509.Certificate) error {
		if len(raw) != 1 || chains != nil {
			return errors.New("unexpected arguments")
		}
		seen = raw[0]
		return nil
	}}
	c, err = Dial("udp", l.Addr().String(), rpkClient)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c, "rpk")
	c.Close()
	want, _ := x509.MarshalPKIXPublicKey(tc.tls.Leaf.PublicKey)
	if !bytes.Equal(seen, want) {
		t.Errorf("VerifyPeerCertificate saw %x, want the SPKI %x", seen, want)
	}
}

func TestRawPublicKeyFailures(t *testing.T) {
	checkNoGoroutineLeak(t)
	serverCert, serverPub := rpkKey(t, "p256")
	_, otherPub := rpkKey(t, "p384")
	clientCert, _ := rpkKey(t, "ed25519")
	tc := certs(t)["p256"]
	tests := []struct {
		name    string
		server  *Config
		client  *Config
		wantErr string // in the client's error
	}{
		{"wrong pinned key",
			&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}},
			&Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{otherPub}},
			"not one of PeerPublicKeys"},
		{"no way to verify",
			&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}},
			&Config{RawPublicKey: true, InsecureSkipVerify: false, ServerName: "x"},
			"cannot verify the server's raw public key"},
		{"callback refuses",
			&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}},
			&Config{RawPublicKey: true, VerifyPeerCertificate: func([][]byte, [][]*x509.Certificate) error { return errors.New("nope") }},
			"nope"},
		{"server without raw public keys",
			&Config{Certificates: []tls.Certificate{tc.tls}},
			&Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{serverPub}},
			"does not authenticate with a raw public key"},
		{"X.509 client, raw-key-only server",
			&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}},
			&Config{RootCAs: tc.pool, ServerName: "dtls.test"},
			"unsupported certificate"},
		{"client key not pinned by the server",
			&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, PeerPublicKeys: []crypto.PublicKey{otherPub}},
			&Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{serverPub}, Certificates: []tls.Certificate{clientCert}},
			"bad certificate"},
		// RFC 8446 §4.4.2.4: certificate_required in 1.3 (the default);
		// 1.2 has no such alert.
		{"client without a key, server requires one",
			&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, PeerPublicKeys: []crypto.PublicKey{otherPub}},
			&Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{serverPub}},
			"certificate required"},
		{"client without a key, server requires one, 1.2",
			&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, PeerPublicKeys: []crypto.PublicKey{otherPub}, MaxVersion: VersionDTLS12},
			&Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{serverPub}},
			"bad certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.server.HandshakeTimeout = 5 * time.Second
			tt.client.HandshakeTimeout = 5 * time.Second
			l, _ := echoServer(t, tt.server, nil)
			c, err := Dial("udp", l.Addr().String(), tt.client)
			if err == nil {
				// A client-auth failure may surface on the first read.
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("x"))
				_, err = c.Read(make([]byte, 10))
				c.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestClientCertificateBareKey: a bare key in Certificates answers a
// CertificateRequest only when raw public keys were chosen for the
// client; for X.509 it is skipped (the next entry with a chain, or an
// empty Certificate), in 1.2 and 1.3 alike. 1.2 used to pick it and send
// an empty Certificate followed by a CertificateVerify.
func TestClientCertificateBareKey(t *testing.T) {
	bare, _ := rpkKey(t, "p256")
	chain := certs(t)["p256"].tls
	schemes := []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}
	for _, vers := range []uint16{VersionDTLS12, VersionDTLS13} {
		for _, tt := range []struct {
			certs []tls.Certificate
			rpk   bool
			want  int // index into certs, -1 for none
		}{
			{[]tls.Certificate{bare, chain}, true, 0},
			{[]tls.Certificate{bare, chain}, false, 1},
			{[]tls.Certificate{bare}, false, -1},
		} {
			c := &Conn{config: &Config{Certificates: tt.certs}, vers: vers}
			got, err := c.clientCertificate(&CertificateRequestInfo{SignatureSchemes: schemes, Version: vers}, tt.rpk)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want < 0 && got != nil:
				t.Errorf("%#04x rpk=%v: got a certificate, want none", vers, tt.rpk)
			case tt.want >= 0 && got != &c.config.Certificates[tt.want]:
				t.Errorf("%#04x rpk=%v: got %p, want Certificates[%d]", vers, tt.rpk, got, tt.want)
			}
		}
	}
}
