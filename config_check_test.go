package dtls

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// rsa512PEM is a self-signed certificate with a 512-bit RSA key (openssl
// req -x509 -newkey rsa:512), which crypto/rsa refuses to sign with.
const rsa512PEM = `-----BEGIN CERTIFICATE-----
MIIBezCCASWgAwIBAgIUaNP3Gzjnk14Ype/keHAZA4IIGvUwDQYJKoZIhvcNAQEL
BQAwETEPMA0GA1UEAwwGcnNhNTEyMCAXDTI2MTIwMzA3MTAxNFoYDzIxMjYxMTA5
MDcxMDE0WjARMQ8wDQYDVQQDDAZyc2E1MTIwXDANBgkqhkiG9w0BAQEFAANLADBI
AkEAtfJnwAN7GKiZ+Km7NiiJ6U8bfT5h8kZwQQAH+NAx5Kdcz8JhoTXK6ccw/IID
mcVNkRmmk8uexbnvdJ5wbyn5TwIDAQABo1MwUTAdBgNVHQ4EFgQULadca0XmH7m1
z1PrhBUuGkq1V5kwHwYDVR0jBBgwFoAULadca0XmH7m1z1PrhBUuGkq1V5kwDwYD
VR0TAQH/BAUwAwEB/zANBgkqhkiG9w0BAQsFAANBAES3Ks/TZsEJy9UNmMtEx7mG
+R9xGsk3+1AA4jorWVfO1WJT3GCY1ihHbMUw5NkZctHD+v1w8NbvXJxTDgoVDIg=
-----END CERTIFICATE-----
-----BEGIN PRIVATE KEY-----
MIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEAtfJnwAN7GKiZ+Km7
NiiJ6U8bfT5h8kZwQQAH+NAx5Kdcz8JhoTXK6ccw/IIDmcVNkRmmk8uexbnvdJ5w
byn5TwIDAQABAkBV4hlVCo+VYShktwGWm+YVSfEI2mRzbwpXtEMPEH8slYL9yyvH
xxkFmqgFMWuwvStX0xIH+3T8vAbxAraifJcBAiEA6waS7Kt4uemyRZNpAhFZrk/9
7ldWNoTsu9lqTR6brM8CIQDGLy/TE59AchyAwhq6bd/AFTyj9gGG3t7Dw4H++cUL
gQIgf/m2a1T7ihBs2GHqXgvgj4BTP0MjWNCMr8U1kwTFtBUCIGmZKvplMi28n8Nb
qbI8aUSIDE+w/Q9IIZpdyh56J6wBAiEAg5/lF8Is189L68HYZKT+gS1aXKc232Kw
JMQwsF5knm4=
-----END PRIVATE KEY-----
`

func rsa512Cert(t *testing.T) tls.Certificate {
	t.Helper()
	cert, err := tls.X509KeyPair([]byte(rsa512PEM), []byte(rsa512PEM))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestListenChecksServerConfig: a Config with which no handshake can
// succeed is refused by NewListener (and Server's handshake) at once,
// rather than failing every handshake later.
func TestListenChecksServerConfig(t *testing.T) {
	p256 := certs(t)["p256"]
	rpkOnly := tls.Certificate{PrivateKey: p256.tls.PrivateKey}
	tests := []struct {
		name    string
		config  *Config
		wantErr string // "" for a Config that must be accepted
	}{
		{"nil Config", nil, "needs a credential"},
		{"empty Config", &Config{}, "needs a credential"},
		{"only client settings", &Config{ServerName: "dtls.test", RootCAs: p256.pool}, "needs a credential"},
		{"512-bit RSA certificate", &Config{Certificates: []tls.Certificate{rsa512Cert(t)}}, "512-bit RSA key"},
		{"certificate without a key", &Config{Certificates: []tls.Certificate{{Certificate: p256.tls.Certificate}}}, "no private key"},
		{"certificate", &Config{Certificates: []tls.Certificate{p256.tls}}, ""},
		{"2048-bit RSA certificate", &Config{Certificates: []tls.Certificate{certs(t)["rsa"].tls}}, ""},
		{"PSK", pskConfig(), ""},
		{"GetCertificate", &Config{GetCertificate: func(*ClientHelloInfo) (*tls.Certificate, error) { return &p256.tls, nil }}, ""},
		{"raw public key", &Config{RawPublicKey: true, Certificates: []tls.Certificate{rpkOnly}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			l, err := NewListener(pc, tt.config)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewListener: %v", err)
				}
				l.Close()
				return
			}
			if err == nil {
				l.Close()
				t.Fatalf("NewListener accepted the Config; want an error mentioning %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "dtls: ") {
				t.Errorf("NewListener: %v; want an error mentioning %q", err, tt.wantErr)
			}

			// Server fails its handshake with the same error, before
			// reading anything.
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			c := Server(a, tt.config)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if err := c.Handshake(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Server handshake: %v; want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}
