package dtls

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"
)

// Limits on peer keys, so a peer cannot make us burn CPU on enormous RSA
// keys (pion CVE-2026-135391).
const (
	maxRSAKeyBits = 8192
	minRSAKeyBits = 2048
)

// supportedSignatureAlgorithms is what we accept and offer, in preference
// order (signature_algorithms, RFC 5246 §7.4.1.4.1 and RFC 8446 code points).
var supportedSignatureAlgorithms = []tls.SignatureScheme{
	tls.ECDSAWithP256AndSHA256,
	tls.Ed25519,
	tls.ECDSAWithP384AndSHA384,
	tls.ECDSAWithP521AndSHA512,
	tls.PSSWithSHA256,
	tls.PSSWithSHA384,
	tls.PSSWithSHA512,
	tls.PKCS1WithSHA256,
	tls.PKCS1WithSHA384,
	tls.PKCS1WithSHA512,
}

// schemeParams returns the hash a scheme signs with (0 for Ed25519) and
// whether it is RSA-PSS.
func schemeParams(s tls.SignatureScheme) (h crypto.Hash, pss bool, ok bool) {
	switch s {
	case tls.ECDSAWithP256AndSHA256, tls.PKCS1WithSHA256:
		return crypto.SHA256, false, true
	case tls.ECDSAWithP384AndSHA384, tls.PKCS1WithSHA384:
		return crypto.SHA384, false, true
	case tls.ECDSAWithP521AndSHA512, tls.PKCS1WithSHA512:
		return crypto.SHA512, false, true
	case tls.PSSWithSHA256:
		return crypto.SHA256, true, true
	case tls.PSSWithSHA384:
		return crypto.SHA384, true, true
	case tls.PSSWithSHA512:
		return crypto.SHA512, true, true
	case tls.Ed25519:
		return 0, false, true
	}
	return 0, false, false
}

// ecdsaBindsCurve reports whether, in protocol version vers, an ECDSA
// signature scheme names the curve of the key as well as the hash. In
// (D)TLS 1.2 it does not: RFC 5246 §7.4.1.4.1 pairs a hash with "ecdsa",
// so ecdsa_secp256r1_sha256 (0x0403) is SHA-256 with an ECDSA key on any
// curve, and a P-384 key may sign with it: OpenSSL 3.0, GnuTLS 3.7 and
// mbedTLS 2.28 do, as servers and as clients, when we list 0x0403 first
// (interop/conformance_test.go); crypto/tls accepts it too. RFC 8446 §4.2.3 binds the curve from TLS 1.3 on, and
// RFC 9147 takes that over for DTLS 1.3: the DTLS 1.3 handshake passes
// VersionDTLS13 here.
func ecdsaBindsCurve(vers uint16) bool {
	return vers == VersionDTLS13
}

// schemesForKey lists the schemes a public key can sign with in protocol
// version vers, in our preference order; callers must not modify it. An
// ECDSA key prefers the hash of its curve's strength; in DTLS 1.2 the
// other ECDSA schemes follow (see ecdsaBindsCurve).
func schemesForKey(vers uint16, pub crypto.PublicKey) []tls.SignatureScheme {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		var schemes []tls.SignatureScheme
		switch k.Curve {
		case elliptic.P256():
			schemes = ecdsaP256Schemes
		case elliptic.P384():
			schemes = ecdsaP384Schemes
		case elliptic.P521():
			schemes = ecdsaP521Schemes
		}
		if ecdsaBindsCurve(vers) && len(schemes) > 0 {
			return schemes[:1]
		}
		return schemes
	case ed25519.PublicKey:
		return ed25519Schemes
	case *rsa.PublicKey:
		if vers == VersionDTLS13 {
			// RFC 8446 §4.4.3: RSA signatures in CertificateVerify
			// MUST use RSASSA-PSS; PKCS #1 v1.5 is for certificates.
			return rsaSchemes[:3]
		}
		return rsaSchemes
	}
	return nil
}

// The schemes of each key type, for schemesForKey: an ECDSA curve's own
// scheme first, then the other ECDSA schemes in our preference order.
var (
	ecdsaP256Schemes = []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384, tls.ECDSAWithP521AndSHA512}
	ecdsaP384Schemes = []tls.SignatureScheme{tls.ECDSAWithP384AndSHA384, tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP521AndSHA512}
	ecdsaP521Schemes = []tls.SignatureScheme{tls.ECDSAWithP521AndSHA512, tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384}
	ed25519Schemes   = []tls.SignatureScheme{tls.Ed25519}
	rsaSchemes       = []tls.SignatureScheme{tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PSSWithSHA512,
		tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512}
)

// selectSignatureScheme picks, for protocol version vers, the first scheme
// our key supports (in our preference order, see schemesForKey) that the
// peer offered. A peer that sent no signature_algorithms gets nothing:
// RFC 5246's SHA-1 defaults are not supported.
func selectSignatureScheme(vers uint16, signer crypto.Signer, peer []tls.SignatureScheme) (tls.SignatureScheme, error) {
	for _, s := range schemesForKey(vers, signer.Public()) {
		for _, p := range peer {
			if s == p {
				return s, nil
			}
		}
	}
	return 0, errors.New("dtls: peer supports no signature algorithm for our key")
}

// isRSAKey reports whether a certificate's key is RSA (for ECDHE_RSA).
func isRSAKey(pub crypto.PublicKey) bool {
	_, ok := pub.(*rsa.PublicKey)
	return ok
}

// signed returns what a signature of scheme hash h covers: msg itself for
// h == 0 (Ed25519), its digest appended to dst otherwise. SHA-256 and
// SHA-384, the hashes of the usual schemes, are computed with the one-shot
// functions rather than a hash.Hash, which saves an allocation.
func signed(h crypto.Hash, dst, msg []byte) []byte {
	switch h {
	case 0:
		return msg
	case crypto.SHA256, crypto.SHA384:
		return hashSum(h, dst, msg)
	}
	hh := h.New()
	hh.Write(msg)
	return hh.Sum(dst)
}

// signHandshake signs msg (ServerKeyExchange params, or the transcript for
// CertificateVerify) with a scheme.
func signHandshake(rand io.Reader, signer crypto.Signer, scheme tls.SignatureScheme, msg []byte) ([]byte, error) {
	h, pss, ok := schemeParams(scheme)
	if !ok {
		return nil, fmt.Errorf("dtls: unsupported signature scheme %v", scheme)
	}
	var opts crypto.SignerOpts = h
	if pss {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
	}
	var digest [sha512.Size]byte
	return signer.Sign(rand, signed(h, digest[:0], msg), opts)
}

// verifyHandshakeSignature checks a peer's signature in protocol version
// vers, with the scheme bound to the key's type (pion CVE-2026-135388:
// scheme confusion), and to its curve where vers asks for that
// (ecdsaBindsCurve).
func verifyHandshakeSignature(vers uint16, scheme tls.SignatureScheme, pub crypto.PublicKey, msg, sig []byte) error {
	allowed := false
	for _, s := range schemesForKey(vers, pub) {
		if s == scheme {
			allowed = true
		}
	}
	if !allowed {
		return errors.New("dtls: signature scheme does not match the peer's key")
	}
	h, pss, _ := schemeParams(scheme)
	var digest [sha512.Size]byte
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, signed(h, digest[:0], msg), sig) {
			return errors.New("dtls: invalid ECDSA signature")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(k, msg, sig) {
			return errors.New("dtls: invalid Ed25519 signature")
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n > maxRSAKeyBits || n < minRSAKeyBits {
			return fmt.Errorf("dtls: peer RSA key of %d bits refused", n)
		}
		var err error
		if pss {
			err = rsa.VerifyPSS(k, h, signed(h, digest[:0], msg), sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			err = rsa.VerifyPKCS1v15(k, h, signed(h, digest[:0], msg), sig)
		}
		if err != nil {
			return errors.New("dtls: invalid RSA signature")
		}
	default:
		return errors.New("dtls: unsupported peer key type")
	}
	return nil
}

// checkPeerKeySize refuses peer RSA keys outside the bounds before any
// expensive operation (pion CVE-2026-135391).
func checkPeerKeySize(pub crypto.PublicKey) error {
	if k, ok := pub.(*rsa.PublicKey); ok {
		if n := k.N.BitLen(); n > maxRSAKeyBits || n < minRSAKeyBits {
			return fmt.Errorf("dtls: peer RSA key of %d bits refused", n)
		}
	}
	return nil
}

// curveForID maps a TLS group to crypto/ecdh.
func curveForID(id tls.CurveID) (ecdh.Curve, bool) {
	switch id {
	case tls.X25519:
		return ecdh.X25519(), true
	case tls.CurveP256:
		return ecdh.P256(), true
	case tls.CurveP384:
		return ecdh.P384(), true
	}
	return nil, false
}

// ecdheSharedSecret runs the peer's public value against our key; the
// encoding checks (point on curve, not the identity, X25519 not all-zero)
// are crypto/ecdh's.
func ecdheSharedSecret(priv *ecdh.PrivateKey, peerPublic []byte) ([]byte, error) {
	pub, err := priv.Curve().NewPublicKey(peerPublic)
	if err != nil {
		return nil, errors.New("dtls: invalid ECDHE public key")
	}
	secret, err := priv.ECDH(pub)
	if err != nil {
		// X25519 with a low-order point: the shared secret is all zeros.
		return nil, fmt.Errorf("dtls: invalid ECDHE public key: %w", err)
	}
	return secret, nil
}

// certificateSigner returns a certificate's private key as a crypto.Signer.
func certificateSigner(cert *tls.Certificate) (crypto.Signer, error) {
	s, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("dtls: certificate private key does not implement crypto.Signer")
	}
	return s, nil
}

// requiresClientCert reports whether a server's ClientAuth fails a client
// that sends no certificate (or raw public key).
func (c *Config) requiresClientCert() bool {
	return c.ClientAuth == tls.RequireAnyClientCert || c.ClientAuth == tls.RequireAndVerifyClientCert
}

// verifiesClientCert reports whether a server's ClientAuth verifies the
// certificate (or raw public key) a client sends.
func (c *Config) verifiesClientCert() bool {
	return c.ClientAuth >= tls.VerifyClientCertIfGiven && c.ClientAuth != tls.RequireAnyClientCert
}

// verifyClientChain verifies a client's certificate chain, leaf first,
// against ClientCAs at now, for client authentication: the one set of
// options for a full handshake and for a resumed session whose chains
// must be rebuilt.
func (c *Config) verifyClientChain(certs []*x509.Certificate, now time.Time) ([][]*x509.Certificate, error) {
	return verifyChain(certs, c.ClientCAs, "", true, now)
}
