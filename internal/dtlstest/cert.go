package dtlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// Validity of every certificate made here unless its Spec says otherwise:
// wide enough to hold both at the real time and inside a testing/synctest
// bubble, whose clock starts at 2000-01-01 00:00 UTC.
var (
	NotBefore = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)
	NotAfter  = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// RSABits is the size of the RSA keys made here: what RSA deployments
// use and what every peer accepts.
const RSABits = 2048

// Key kinds for NewKey.
const (
	P256    = "p256"
	P384    = "p384"
	P521    = "p521"
	Ed25519 = "ed25519"
	RSA     = "rsa"
)

// NewKey returns a fresh private key of the given kind (P256, P384, P521,
// Ed25519 or RSA with RSABits).
func NewKey(tb testing.TB, kind string) crypto.Signer {
	tb.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch kind {
	case P256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case P384:
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case P521:
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case Ed25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case RSA:
		k, err = rsa.GenerateKey(rand.Reader, RSABits)
	default:
		tb.Fatalf("dtlstest: unknown key kind %q", kind)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Spec describes a certificate. The zero Spec is a P-256 end-entity
// certificate for "dtls.test", valid from NotBefore to NotAfter, for
// server and client authentication.
type Spec struct {
	// Key is the subject's key; nil makes a new P-256 key.
	Key crypto.Signer
	// PublicKey, if set, is certified instead of Key's public half: a
	// certificate for a key nobody holds. Key still signs it when it is
	// self-signed, and is the private key of the result.
	PublicKey crypto.PublicKey
	// CommonName defaults to the first name, or "dtls.test".
	CommonName string
	// Names are DNS names or IP addresses for the SubjectAltName; nil
	// means "dtls.test". Go's x509 verifies names against these only.
	Names []string
	// Serial defaults to 1.
	Serial int64
	// NotBefore and NotAfter default to the package's NotBefore and
	// NotAfter.
	NotBefore, NotAfter time.Time
	// IsCA marks a CA certificate (basic constraints cA, keyCertSign).
	IsCA bool
	// ExtKeyUsage defaults to server and client authentication.
	ExtKeyUsage []x509.ExtKeyUsage
}

// Cert is a certificate with its key, ready for a Config.
type Cert struct {
	TLS  tls.Certificate // the chain (leaf only) and the private key
	Leaf *x509.Certificate
	// Pool holds the root that verifies Leaf: Leaf itself when
	// self-signed, the CA when issued.
	Pool *x509.CertPool
	Key  crypto.Signer
}

func (s *Spec) template(tb testing.TB) (*x509.Certificate, crypto.Signer, crypto.PublicKey) {
	key := s.Key
	if key == nil {
		key = NewKey(tb, P256)
	}
	pub := s.PublicKey
	if pub == nil {
		pub = key.Public()
	}
	names := s.Names
	if names == nil {
		names = []string{"dtls.test"}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(s.Serial),
		Subject:      pkix.Name{CommonName: s.CommonName},
		NotBefore:    s.NotBefore,
		NotAfter:     s.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  s.ExtKeyUsage,
	}
	if s.Serial == 0 {
		tmpl.SerialNumber = big.NewInt(1)
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = NotBefore
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = NotAfter
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if tmpl.Subject.CommonName == "" && len(names) > 0 {
		tmpl.Subject.CommonName = names[0]
	}
	if s.IsCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if _, ok := pub.(*rsa.PublicKey); ok {
		// Only ECDHE-RSA is offered anywhere here, which signs with the
		// key; peers still expect keyEncipherment on an RSA leaf.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	return tmpl, key, pub
}

// SelfSigned returns a self-signed certificate made from spec. Pool holds
// the certificate itself. Chains of one self-signed certificate verify
// with Go's x509 whether or not it is marked as a CA.
func SelfSigned(tb testing.TB, spec Spec) *Cert {
	tb.Helper()
	tmpl, key, pub := spec.template(tb)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &Cert{TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, Leaf: leaf, Pool: pool, Key: key}
}

// CA is a certificate authority for tests.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	Pool *x509.CertPool // holds Cert
}

// NewCA returns a self-signed CA made from spec (IsCA is implied). An
// empty CommonName becomes "dtls-go test CA" and an empty Names none.
func NewCA(tb testing.TB, spec Spec) *CA {
	tb.Helper()
	spec.IsCA = true
	if spec.CommonName == "" {
		spec.CommonName = "dtls-go test CA"
	}
	if spec.Names == nil {
		spec.Names = []string{}
	}
	if spec.ExtKeyUsage == nil {
		spec.ExtKeyUsage = []x509.ExtKeyUsage{}
	}
	c := SelfSigned(tb, spec)
	return &CA{Cert: c.Leaf, Key: c.Key, Pool: c.Pool}
}

// Issue returns an end-entity certificate made from spec and signed by
// the CA. Pool is the CA's.
func (ca *CA) Issue(tb testing.TB, spec Spec) *Cert {
	tb.Helper()
	if spec.Serial == 0 {
		spec.Serial = 2
	}
	tmpl, key, pub := spec.template(tb)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &Cert{TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, Leaf: leaf, Pool: ca.Pool, Key: key}
}

// WriteFile writes the CA's certificate as PEM, for a peer's CA option.
func (ca *CA) WriteFile(tb testing.TB, file string) {
	tb.Helper()
	WritePEM(tb, file, "CERTIFICATE", ca.Cert.Raw)
}

// WriteFiles writes the certificate chain and the PKCS #8 private key as
// PEM, the files OpenSSL, GnuTLS, mbedTLS and wolfSSL peers read.
func (c *Cert) WriteFiles(tb testing.TB, certFile, keyFile string) {
	tb.Helper()
	var chain []byte
	for _, der := range c.TLS.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		tb.Fatal(err)
	}
	WriteKey(tb, keyFile, c.Key)
}

// WriteKey writes key as a PKCS #8 PEM file.
func WriteKey(tb testing.TB, file string, key crypto.Signer) {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	WritePEM(tb, file, "PRIVATE KEY", der)
}

// WritePEM writes one PEM block of type typ to file.
func WritePEM(tb testing.TB, file, typ string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}
