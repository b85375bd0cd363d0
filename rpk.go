package dtls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// Certificate types of the client_certificate_type and
// server_certificate_type extensions (RFC 7250 §3, IANA "TLS Certificate
// Types").
const (
	certificateTypeX509         uint8 = 0
	certificateTypeRawPublicKey uint8 = 2
)

// offerRawPublicKeys fills in a ClientHello's certificate type extensions
// when Config.RawPublicKey is set: raw keys only, for the server's key,
// and for ours when we have one to present.
func (c *Conn) offerRawPublicKeys(hello *clientHelloMsg) {
	if !c.config.RawPublicKey {
		return
	}
	hello.serverCertTypes = []uint8{certificateTypeRawPublicKey}
	if c.config.hasClientCertificate() {
		hello.clientCertTypes = []uint8{certificateTypeRawPublicKey}
	}
}

// processCertificateTypes checks the server's choice of certificate types
// against what we offered. Without server_certificate_type the server
// sends X.509 (RFC 7250 §4.2), which a raw-key-only client refuses.
func (hs *clientHandshakeState) processCertificateTypes(sh *serverHelloMsg) error {
	c := hs.c
	if sh.hasServerCertType && !slices.Contains(hs.hello.serverCertTypes, sh.serverCertType) ||
		sh.hasClientCertType && !slices.Contains(hs.hello.clientCertTypes, sh.clientCertType) {
		return c.fail(alertIllegalParameter, errors.New("dtls: server chose a certificate type we did not offer"))
	}
	hs.serverRPK = sh.hasServerCertType && sh.serverCertType == certificateTypeRawPublicKey
	hs.clientRPK = sh.hasClientCertType && sh.clientCertType == certificateTypeRawPublicKey
	// A server resuming our session (it echoes the session ID we
	// offered) may leave the certificate types out, as GnuTLS does: the
	// session's apply, and we offered only a raw-key session
	// (sessionUsable).
	resuming := hs.session != nil && len(sh.sessionID) > 0 && bytes.Equal(sh.sessionID, hs.hello.sessionID)
	if c.config.RawPublicKey && !hs.serverRPK && hs.suite.kx.usesCertificates() && !resuming {
		return c.fail(alertUnsupportedCertificate, errors.New("dtls: server does not authenticate with a raw public key (RFC 7250)"))
	}
	return nil
}

// certTypeAnswer is a server's answer to a ClientHello's certificate type
// extensions (RFC 7250 §4.2): whether each side authenticates with a raw
// public key, and the extensions to send back (in the 1.2 ServerHello or
// the 1.3 EncryptedExtensions).
type certTypeAnswer struct {
	serverRPK, clientRPK bool
	hasServer, hasClient bool
	server, client       uint8
}

// answerCertificateTypes chooses certTypeAnswer for a server with
// RawPublicKey and, if not nil, the X.509 certificate cert: raw public
// keys with a client that offers them, X.509 with one that names only
// X.509; client_certificate_type only with a CertificateRequest.
func answerCertificateTypes(c *Conn, ch *clientHelloMsg, cert *tls.Certificate) (certTypeAnswer, error) {
	var a certTypeAnswer
	switch {
	case slices.Contains(ch.serverCertTypes, certificateTypeRawPublicKey):
		a.serverRPK = true
		a.hasServer, a.server = true, certificateTypeRawPublicKey
	case len(ch.serverCertTypes) > 0 && !slices.Contains(ch.serverCertTypes, certificateTypeX509):
		return a, c.fail(alertUnsupportedCertificate, errors.New("dtls: no server certificate type in common"))
	case len(ch.serverCertTypes) > 0:
		a.hasServer, a.server = true, certificateTypeX509
	}
	if !a.serverRPK && (cert == nil || len(cert.Certificate) == 0) {
		return a, c.fail(alertUnsupportedCertificate, errors.New("dtls: the client wants an X.509 certificate and we have only a raw public key"))
	}
	// client_certificate_type goes only with a CertificateRequest
	// (RFC 7250 §4.2).
	if c.config.ClientAuth >= tls.RequestClientCert {
		switch {
		case slices.Contains(ch.clientCertTypes, certificateTypeRawPublicKey):
			a.clientRPK = true
			a.hasClient, a.client = true, certificateTypeRawPublicKey
		case slices.Contains(ch.clientCertTypes, certificateTypeX509):
			a.hasClient, a.client = true, certificateTypeX509
		}
	}
	return a, nil
}

// selectCertificateTypes answers a ClientHello's certificate type
// extensions, once the suite is chosen. A server without RawPublicKey
// ignores them, as one that predates RFC 7250 would, and leaves the
// client to decide.
func (hs *serverHandshakeState) selectCertificateTypes(sh *serverHelloMsg) error {
	if !hs.suite.kx.usesCertificates() || !hs.c.config.RawPublicKey {
		return nil
	}
	a, err := answerCertificateTypes(hs.c, hs.hello, hs.cert)
	if err != nil {
		return err
	}
	hs.serverRPK, hs.clientRPK = a.serverRPK, a.clientRPK
	sh.hasServerCertType, sh.serverCertType = a.hasServer, a.server
	sh.hasClientCertType, sh.clientCertType = a.hasClient, a.client
	return nil
}

// ourCertificateMsg is the Certificate we send: our chain, or with a raw
// public key the SubjectPublicKeyInfo of our private key's public half.
func ourCertificateMsg(cert *tls.Certificate, raw bool) (*certificateMsg, error) {
	if cert == nil {
		return &certificateMsg{rawPublicKey: raw}, nil
	}
	if !raw {
		return &certificateMsg{certificates: cert.Certificate}, nil
	}
	signer, err := certificateSigner(cert)
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("dtls: encoding our raw public key: %w", err)
	}
	return &certificateMsg{rawPublicKey: true, certificates: [][]byte{spki}}, nil
}

// ourCertificateMsg13 is the 1.3 Certificate we send (RFC 8446 §4.4.2):
// a CertificateEntry per certificate of our chain or, with a raw public
// key, one entry holding its SubjectPublicKeyInfo (RFC 7250 §3); empty
// for a nil cert.
func ourCertificateMsg13(cert *tls.Certificate, raw bool) (*certificateMsg13, error) {
	m12, err := ourCertificateMsg(cert, raw)
	if err != nil {
		return nil, err
	}
	cm := &certificateMsg13{}
	for _, der := range m12.certificates {
		cm.entries = append(cm.entries, certificateEntry13{data: der})
	}
	return cm, nil
}

// verifyRawPublicKey13 checks a DTLS 1.3 peer's raw public key (RFC 7250
// §3 with RFC 8446 §4.4.2: one CertificateEntry holding a
// SubjectPublicKeyInfo) as verifyRawPublicKey does in 1.2, notes it in
// st and returns it for the CertificateVerify, whose signature scheme
// binds the key's type in 1.3 (not the suite).
func (c *Conn) verifyRawPublicKey13(raw [][]byte, fromServer bool, st *connState) (crypto.PublicKey, error) {
	if len(raw) > 1 {
		// RFC 8446 §4.4.2: "no more than one CertificateEntry".
		who := "client"
		if fromServer {
			who = "server"
		}
		return nil, c.fail(alertIllegalParameter, fmt.Errorf("dtls: %s sent more than one raw public key", who))
	}
	h12 := handshakeState{c: c}
	if err := h12.verifyRawPublicKey(raw, fromServer); err != nil {
		return nil, err
	}
	st.peerPublicKey = h12.state.peerPublicKey
	return h12.peerKey, nil
}

// verifyRawPublicKey checks the peer's raw public key (RFC 7250): it must
// parse, have a usable type and size, and be pinned in PeerPublicKeys or
// accepted by VerifyPeerCertificate. raw is empty when a client sent none.
func (hs *handshakeState) verifyRawPublicKey(raw [][]byte, fromServer bool) error {
	c := hs.c
	if len(raw) == 0 {
		if fromServer {
			return c.fail(alertBadCertificate, errors.New("dtls: server sent no raw public key"))
		}
		if c.config.requiresClientCert() {
			return c.fail(alertBadCertificate, errors.New("dtls: client didn't provide a raw public key"))
		}
		return nil
	}
	pub, err := x509.ParsePKIXPublicKey(raw[0])
	if err != nil {
		return c.fail(alertBadCertificate, fmt.Errorf("dtls: failed to parse the peer's raw public key: %w", err))
	}
	if err := checkPeerKeySize(pub); err != nil {
		return c.fail(alertBadCertificate, err)
	}
	// In 1.2 the suite names the server's key type; in 1.3 (hs.suite
	// nil) the CertificateVerify's signature scheme binds it.
	switch pub.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
		if fromServer && hs.suite != nil && hs.suite.kx != kxECDHEECDSA {
			return c.fail(alertUnsupportedCertificate, errors.New("dtls: server's raw public key does not match the cipher suite"))
		}
	default:
		if !isRSAKey(pub) || fromServer && hs.suite != nil && hs.suite.kx != kxECDHERSA {
			return c.fail(alertUnsupportedCertificate, errors.New("dtls: peer's raw public key type is not supported here"))
		}
	}
	verified := false
	if keys := c.config.PeerPublicKeys; len(keys) > 0 {
		if !slices.ContainsFunc(keys, func(k crypto.PublicKey) bool { return publicKeysEqual(k, pub) }) {
			return c.fail(alertBadCertificate, errors.New("dtls: the peer's raw public key is not one of PeerPublicKeys"))
		}
		verified = true
	}
	if f := c.config.VerifyPeerCertificate; f != nil {
		if err := f(raw[:1], nil); err != nil {
			return c.fail(alertBadCertificate, err)
		}
		verified = true
	}
	if !verified {
		if fromServer && !c.config.InsecureSkipVerify {
			return c.fail(alertBadCertificate, errors.New("dtls: cannot verify the server's raw public key: set PeerPublicKeys or VerifyPeerCertificate"))
		}
		if !fromServer && c.config.verifiesClientCert() {
			return c.fail(alertBadCertificate, errors.New("dtls: cannot verify the client's raw public key: set PeerPublicKeys or VerifyPeerCertificate"))
		}
	}
	hs.peerKey = pub
	hs.state.peerPublicKey = pub
	return nil
}

// rawKeyResumable reports whether a session made with the peer's raw
// public key s.peerPublicKey may resume under this Config: raw keys must
// still be on, the key still pinned if PeerPublicKeys is set and, where
// the peer's key must be verified (always for a client's view of the
// server without InsecureSkipVerify; for a server, from
// VerifyClientCertIfGiven on), verified when the session was made.
// VerifyPeerCertificate is not called again, as crypto/tls does not call
// it on resumption; VerifyConnection is.
func (c *Config) rawKeyResumable(s *sessionState, ofServer bool) bool {
	if !c.RawPublicKey || s.peerPublicKey == nil {
		return false
	}
	if keys := c.PeerPublicKeys; len(keys) > 0 {
		return slices.ContainsFunc(keys, func(k crypto.PublicKey) bool { return publicKeysEqual(k, s.peerPublicKey) })
	}
	mustVerify := !c.InsecureSkipVerify
	if !ofServer {
		mustVerify = c.ClientAuth >= tls.VerifyClientCertIfGiven && c.ClientAuth != tls.RequireAnyClientCert
	}
	return !mustVerify || c.VerifyPeerCertificate != nil && s.keyVerified
}

// rawKeyVerified reports whether a peer's raw public key that passed
// verifyRawPublicKey was verified, rather than only accepted: it is
// then pinned or accepted by VerifyPeerCertificate.
func (c *Config) rawKeyVerified() bool {
	return len(c.PeerPublicKeys) > 0 || c.VerifyPeerCertificate != nil
}

// publicKeysEqual compares keys with their Equal methods, which every key
// type of crypto/x509 has.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}
