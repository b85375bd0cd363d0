package dtls

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
)

// serverHandshakeState is the server's side of a DTLS 1.2 handshake: the
// shared handshakeState and what only a server keeps.
type serverHandshakeState struct {
	handshakeState

	// Resumption (handshake_resume.go).
	session     *sessionState // the session being resumed
	issueTicket bool          // NewSessionTicket is due
	renewTicket bool          // the resumed ticket's key is not the newest
}

func (c *Conn) serverHandshake(ctx context.Context) error {
	hs := &serverHandshakeState{handshakeState: newHandshakeState(c, ctx)}
	hello, err := hs.readClientHello()
	if err != nil {
		return err
	}
	if ch13, ok := c.select13(hello); ok {
		return c.serverHandshake13(ctx, ch13)
	}
	hs.hello = hello
	if err := hs.processClientHello(); err != nil {
		return err
	}
	if err := hs.negotiateSRTP(); err != nil {
		return err
	}
	if hs.checkForResumption() {
		return hs.doResumeHandshake()
	}
	if err := hs.prepareNewSession(); err != nil {
		return err
	}
	if err := hs.sendServerFlight(); err != nil {
		return err
	}
	if err := hs.readClientFlight(); err != nil {
		return err
	}
	if err := hs.readFinished(true); err != nil {
		return err
	}
	if err := hs.verifyConnection(); err != nil {
		return err
	}
	if err := hs.sendSessionTicket(); err != nil {
		return err
	}
	if err := hs.writeFinished(false); err != nil {
		return err
	}
	c.hs.finalFlight()
	if err := c.sendFlight(false, ""); err != nil {
		return err
	}
	hs.finish()
	hs.cacheNewSession()
	return nil
}

// readClientHello reads ClientHellos until one passes the hello gate
// (hello_gate.go). A Listener's gate admitted the ClientHello before the
// Conn existed; a Conn made by Server has its own gate, made on the first
// ClientHello, and sends the HelloVerifyRequest as a flight.
func (hs *serverHandshakeState) readClientHello() (*clientHelloMsg, error) {
	c := hs.c
	var gate *helloGate
	for hvrs := 0; ; hvrs++ {
		hello := new(clientHelloMsg)
		msg, err := c.readHandshakeMsg(hs.ctx, typeClientHello, hello.unmarshal)
		if err != nil {
			return nil, err
		}
		if c.listener != nil {
			hs.addTranscript(msg)
			return hello, nil
		}
		if _, ok := c.select13(hello); ok {
			// DTLS 1.3 has no HelloVerifyRequest: its cookie travels
			// in a HelloRetryRequest (serverHandshake13).
			return hello, nil
		}
		if gate == nil {
			if gate, err = c.helloGate(); err != nil {
				return nil, err
			}
		}
		addr := addrPort(c.io.remoteAddr())
		if gate.admit(c.config.time(), addr, hello) {
			hs.transcript = hs.transcript[:0]
			hs.addTranscript(msg)
			return hello, nil
		}
		if hvrs == maxHelloVerifyRequests {
			return nil, c.fail(alertHandshakeFailure, errors.New("dtls: client does not return our cookie"))
		}
		if err := hs.writeHandshake(gate.helloVerifyRequest(addr, hello)); err != nil {
			return nil, err
		}
		hs.transcript = hs.transcript[:0]
		c.hs.finalFlight() // not retransmitted: resent only when the ClientHello repeats
		if err := c.sendFlight(false, ""); err != nil {
			return nil, err
		}
	}
}

// helloGate returns the cookie gate of a Conn made by Server, made on
// first use (a Listener's connections use the Listener's).
func (c *Conn) helloGate() (*helloGate, error) {
	if c.listener != nil {
		return c.listener.gate, nil
	}
	if c.gate == nil {
		g, err := newHelloGate(c.config)
		if err != nil {
			return nil, err
		}
		c.gate = g
	}
	return c.gate, nil
}

// serverSuites is the server's preference list.
func (hs *serverHandshakeState) selectSuite() *cipherSuite {
	c := hs.c
	for _, s := range c.enabledSuites() {
		if !slices.Contains(hs.hello.cipherSuites, s.id) {
			continue
		}
		if s.kx.isPSK() && c.config.PSK == nil {
			continue
		}
		if s.kx.isECDHE() {
			if _, ok := hs.selectCurve(); !ok {
				continue
			}
		}
		if s.kx.usesCertificates() {
			cert := hs.cert
			if cert == nil {
				continue
			}
			signer, err := certificateSigner(cert)
			if err != nil {
				continue
			}
			if isRSAKey(signer.Public()) != (s.kx == kxECDHERSA) {
				continue
			}
			if _, err := selectSignatureScheme(c.vers, signer, hs.hello.supportedSignatureAlgorithms); err != nil {
				continue
			}
		}
		return s
	}
	return nil
}

func (hs *serverHandshakeState) selectCurve() (tls.CurveID, bool) {
	for _, id := range hs.c.config.curvePreferences() {
		if _, ok := curveForID(id); ok && slices.Contains(hs.hello.supportedCurves, id) {
			return id, true
		}
	}
	return 0, false
}

// offersDTLS12 reports whether a ClientHello's client_version (the highest
// version the client supports) lets us answer with DTLS 1.2, the version
// negotiation of RFC 5246 Appendix E.1 that RFC 6347 §4.1 keeps.
//
// DTLS versions are the one's complement of their major and minor numbers
// (1.0 is {254,255}, 1.2 is {254,253}, 1.3 {254,252}, a 2.0 would be
// {253,255}), so a newer version is a smaller number. Every value up to
// VersionDTLS12 is 1.2 or newer and gets 1.2: a DTLS 1.3 client puts 1.2
// here and its versions in supported_versions (RFC 9147 §5.3), but a
// future or careless one may put 0xfefc or 0xfdff, and refusing it would
// break the fallback that version negotiation exists for. There is no
// floor of "not DTLS at all": the record carrying the ClientHello already
// had to be a DTLS record (version 1.0 or 1.2, epoch 0); OpenSSL 3.0 and
// GnuTLS 3.7 also answer 0xfdff, 0xfefc and 0x0001 with DTLS 1.2. Values
// above it are DTLS 1.0 (0xfeff), the never-published 1.1 (0xfefe) or
// older: refused.
func offersDTLS12(clientVersion uint16) bool {
	return clientVersion <= VersionDTLS12
}

func (hs *serverHandshakeState) processClientHello() error {
	c := hs.c
	ch := hs.hello
	if !offersDTLS12(ch.vers) {
		return c.fail(alertProtocolVersion, fmt.Errorf("dtls: client offered version %#x; DTLS 1.2 is required", ch.vers))
	}
	if !c.config.supports(VersionDTLS12) {
		return c.fail(alertProtocolVersion, errors.New("dtls: client does not offer DTLS 1.3, which Config.MinVersion requires"))
	}
	c.vers = VersionDTLS12
	if !slices.Contains(ch.compressionMethods, compressionNone) {
		return c.fail(alertIllegalParameter, errors.New("dtls: client does not support uncompressed connections"))
	}
	if ch.secureRenegotiationSupported && len(ch.secureRenegotiation) != 0 {
		return c.fail(alertHandshakeFailure, errors.New("dtls: initial handshake had non-empty renegotiation extension"))
	}
	hs.ems = ch.extendedMasterSecret
	if !hs.ems && !c.config.InsecureAllowNoExtendedMasterSecret {
		return c.fail(alertHandshakeFailure, errors.New("dtls: client does not support the extended master secret (RFC 7627)"))
	}

	cert, err := hs.serverCertificate()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	hs.cert = cert
	hs.suite = hs.selectSuite()
	if hs.suite == nil {
		return c.fail(alertHandshakeFailure, errors.New("dtls: no cipher suite supported by both client and server"))
	}

	sh := &serverHelloMsg{
		vers:                         c.vers,
		random:                       make([]byte, randomLen),
		cipherSuite:                  hs.suite.id,
		extendedMasterSecret:         hs.ems,
		secureRenegotiationSupported: ch.secureRenegotiationSupported || slices.Contains(ch.cipherSuites, scsvRenegotiation),
	}
	if _, err := io.ReadFull(c.config.rand(), sh.random); err != nil {
		return c.fail(alertInternalError, err)
	}
	if c.config.serves13() {
		// RFC 8446 §4.1.3: a server that supports 1.3 and negotiates
		// 1.2 says so in the last eight bytes of its random, which a
		// 1.3-capable client checks: an attacker who stripped 1.3 from
		// the ClientHello cannot also change the signed random.
		copy(sh.random[randomLen-len(downgradeCanaryTLS12):], downgradeCanaryTLS12)
	}
	if hs.suite.kx.isECDHE() && len(ch.supportedPoints) > 0 {
		if !slices.Contains(ch.supportedPoints, pointFormatUncompressed) {
			return c.fail(alertIllegalParameter, errors.New("dtls: client does not support uncompressed points"))
		}
		sh.supportedPoints = []uint8{pointFormatUncompressed}
	}
	if len(ch.alpnProtocols) > 0 && len(c.config.NextProtos) > 0 {
		for _, p := range c.config.NextProtos {
			if slices.Contains(ch.alpnProtocols, p) {
				sh.alpnProtocol = p
				break
			}
		}
		if sh.alpnProtocol == "" {
			return c.fail(alertNoApplicationProtocol, errors.New("dtls: client offered no ALPN protocol the server supports"))
		}
	}
	if err := hs.selectCertificateTypes(sh); err != nil {
		return err
	}
	if ch.hasConnectionID && c.config.ConnectionIDGenerator != nil {
		// RFC 9146 §3: from epoch 1 on, each side sends the CID the
		// other asked for.
		cid, err := c.answerConnectionID(ch)
		if err != nil {
			return err
		}
		sh.hasConnectionID, sh.connectionID, sh.rrc = true, cid, c.rrcNegotiated
	}
	hs.serverHello = sh
	return nil
}

// answerConnectionID is a server's answer to a ClientHello's
// connection_id, the same in 1.2 and 1.3 (in the ServerHello of both):
// our CID, installed in the record layer with the client's, and
// c.rrcNegotiated, since rrc is answered only with connection_id, which
// the client MUST send along with it (RFC 9853 §3, §10.2).
func (c *Conn) answerConnectionID(ch *clientHelloMsg) ([]byte, error) {
	cid, err := c.newConnectionID()
	if err != nil {
		return nil, c.fail(alertInternalError, err)
	}
	c.rl.setConnectionIDs(cid, slices.Clone(ch.connectionID))
	c.rrcNegotiated = ch.rrc && c.config.rrcPolicy() != RRCOff
	return cid, nil
}

// newConnectionID asks Config.ConnectionIDGenerator for our CID. Under a
// Listener a non-empty CID routes records, so it must be unused there.
func (c *Conn) newConnectionID() ([]byte, error) {
	for range maxCIDAttempts {
		cid := slices.Clone(c.config.ConnectionIDGenerator())
		if len(cid) > maxCIDLen {
			return nil, errors.New("dtls: ConnectionIDGenerator returned a CID longer than 255 bytes")
		}
		cio, ok := c.io.(*listenerConnIO)
		if len(cid) == 0 || !ok || c.listener.registerCID(cid, cio) {
			if cid == nil {
				cid = []byte{}
			}
			return cid, nil
		}
	}
	return nil, errors.New("dtls: ConnectionIDGenerator keeps returning CIDs in use")
}

// serverCertificate returns the certificate for this ClientHello, or nil.
func (hs *serverHandshakeState) serverCertificate() (*tls.Certificate, error) {
	c := hs.c
	if f := c.config.GetCertificate; f != nil {
		cert, err := f(&ClientHelloInfo{
			CipherSuites:      hs.hello.cipherSuites,
			ServerName:        hs.hello.serverName,
			SupportedCurves:   hs.hello.supportedCurves,
			SignatureSchemes:  hs.hello.supportedSignatureAlgorithms,
			SupportedProtos:   hs.hello.alpnProtocols,
			SupportedVersions: []uint16{VersionDTLS12},
		})
		if err != nil {
			return nil, err
		}
		if cert != nil {
			return cert, nil
		}
	}
	for i := range c.config.Certificates {
		cert := &c.config.Certificates[i]
		signer, err := certificateSigner(cert)
		if err != nil {
			continue
		}
		if _, err := selectSignatureScheme(c.vers, signer, hs.hello.supportedSignatureAlgorithms); err == nil {
			return cert, nil
		}
	}
	return nil, nil
}

// sendServerFlight sends ServerHello [Certificate] [ServerKeyExchange]
// [CertificateRequest] ServerHelloDone.
func (hs *serverHandshakeState) sendServerFlight() error {
	c := hs.c
	kx := hs.suite.kx
	// RFC 6066 §3: a server that uses the client's server_name to choose
	// its certificate answers with an empty server_name extension, except
	// when resuming, which does not come here. The name is used when
	// GetCertificate chooses; without it the name is only reported
	// (ConnectionState.ServerName) and not acknowledged, as OpenSSL 3.0
	// does (it acknowledges only with a servername callback; gnutls-serv
	// 3.7 never does). It matters: pion/dtls v3 clients cannot parse the
	// empty extension (v3.1.15's extension.ServerName requires a name
	// list) and time out.
	hs.serverHello.serverNameAck = hs.hello.serverName != "" && c.config.GetCertificate != nil
	if err := hs.writeHandshake(hs.serverHello); err != nil {
		return err
	}
	if kx.usesCertificates() {
		cm, err := ourCertificateMsg(hs.cert, hs.serverRPK)
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		if err := hs.writeHandshake(cm); err != nil {
			return err
		}
	}
	skx := &serverKeyExchangeMsg{kind: kx}
	sendSKX := kx.isECDHE()
	if kx.isPSK() {
		skx.pskIdentityHint = c.config.PSKIdentityHint
		hs.pskHint = c.config.PSKIdentityHint
		sendSKX = sendSKX || len(skx.pskIdentityHint) > 0
	}
	if kx.isECDHE() {
		id, _ := hs.selectCurve()
		curve, _ := curveForID(id)
		key, err := curve.GenerateKey(c.config.rand())
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		hs.ecdhKey = key
		hs.curveID = id
		skx.curveID = id
		skx.publicKey = key.PublicKey().Bytes()
	}
	if kx.usesCertificates() {
		signer, err := certificateSigner(hs.cert)
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		scheme, err := selectSignatureScheme(c.vers, signer, hs.hello.supportedSignatureAlgorithms)
		if err != nil {
			return c.fail(alertHandshakeFailure, err)
		}
		signedMsg := slices.Concat(hs.hello.random, hs.serverHello.random, skx.ecdhParams())
		sig, err := signHandshake(c.config.rand(), signer, scheme, signedMsg)
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		skx.signatureAlgorithm = scheme
		skx.signature = sig
		hs.state.sigScheme = scheme
	}
	if sendSKX {
		if err := hs.writeHandshake(skx); err != nil {
			return err
		}
	}
	if kx.usesCertificates() && c.config.ClientAuth >= tls.RequestClientCert {
		cr := &certificateRequestMsg{
			certificateTypes:             []uint8{certTypeECDSASign, certTypeRSASign},
			supportedSignatureAlgorithms: supportedSignatureAlgorithms,
		}
		if c.config.ClientCAs != nil {
			//lint:ignore SA1019 Subjects is fine for pools built from certificates
			cr.certificateAuthorities = c.config.ClientCAs.Subjects() //nolint:staticcheck
		}
		hs.certRequest = cr
		if err := hs.writeHandshake(cr); err != nil {
			return err
		}
	}
	if err := hs.writeHandshake(&serverHelloDoneMsg{}); err != nil {
		return err
	}
	return c.sendFlight(false, "")
}

// ClientCertificateType values for CertificateRequest (RFC 5246 §7.4.4,
// RFC 8422 §5.5).
const (
	certTypeRSASign   = 1
	certTypeECDSASign = 64
)

// readClientFlight reads [Certificate] ClientKeyExchange
// [CertificateVerify].
func (hs *serverHandshakeState) readClientFlight() error {
	c := hs.c
	kx := hs.suite.kx
	msg, err := c.readHandshake(hs.ctx)
	if err != nil {
		return err
	}
	var clientCerts [][]byte
	if hs.certRequest != nil {
		cm := &certificateMsg{rawPublicKey: hs.clientRPK}
		if err := c.parseHandshakeMsg(msg, typeCertificate, cm.unmarshal); err != nil {
			return err
		}
		hs.addTranscript(msg)
		clientCerts = cm.certificates
		if hs.clientRPK {
			err = hs.verifyRawPublicKey(clientCerts, false)
		} else {
			err = hs.verifyClientCertificate(clientCerts)
		}
		if err != nil {
			return err
		}
		if msg, err = c.readHandshake(hs.ctx); err != nil {
			return err
		}
	}
	ckx := &clientKeyExchangeMsg{kind: kx}
	if err := c.parseHandshakeMsg(msg, typeClientKeyExchange, ckx.unmarshal); err != nil {
		return err
	}
	hs.addTranscript(msg)
	if kx.isECDHE() {
		secret, err := ecdheSharedSecret(hs.ecdhKey, ckx.publicKey)
		if err != nil {
			return c.fail(alertIllegalParameter, err)
		}
		hs.preMaster = secret
	}
	if kx.isPSK() {
		psk, err := c.config.PSK(ckx.pskIdentity)
		if err != nil || len(psk) == 0 {
			unknown := fmt.Errorf("%w %q", ErrUnknownPSKIdentity, ckx.pskIdentity)
			c.state.pskIdentity = append([]byte(nil), ckx.pskIdentity...) // for HandshakeOutcome
			if c.config.InsecureUnknownPSKIdentityAlert {
				return c.fail(alertUnknownPSKIdentity, unknown)
			}
			// RFC 4279 §2: a server that hides whether an identity
			// exists "MAY continue the protocol as if the PSK identity
			// existed but the key was incorrect". With a random key the
			// client's Finished fails to authenticate, exactly as with a
			// known identity and a wrong key.
			psk = make([]byte, hiddenPSKLen)
			if _, err := io.ReadFull(c.config.rand(), psk); err != nil {
				return c.fail(alertInternalError, err)
			}
			c.unknownPSKIdentity = unknown
		}
		hs.pskIdentity = append([]byte(nil), ckx.pskIdentity...)
		if kx == kxECDHEPSK {
			hs.preMaster = ecdhePSKPreMasterSecret(hs.preMaster, psk)
		} else {
			hs.preMaster = pskPreMasterSecret(psk)
		}
	}
	hs.deriveMasterSecret()

	if hs.peerKey != nil {
		// A client that sent a certificate must prove it holds the key
		// (pion CVE-2022-29222). Its epoch-1 records are read from now
		// on, so that a Finished in place of the CertificateVerify is
		// refused at once instead of waited past.
		if err := hs.installPeerKeys(true); err != nil {
			return err
		}
		cv := new(certificateVerifyMsg)
		msg, err := c.readHandshakeMsg(hs.ctx, typeCertificateVerify, cv.unmarshal)
		if err != nil {
			return err
		}
		if msg.epoch == c.rl.readCur {
			// wolfSSL CVE-2023-6937: only the Finished comes under
			// the new keys.
			return c.fail(alertUnexpectedMessage, errors.New("dtls: CertificateVerify protected by the new keys"))
		}
		if !slices.Contains(hs.certRequest.supportedSignatureAlgorithms, cv.signatureAlgorithm) {
			return c.fail(alertIllegalParameter, errors.New("dtls: client signed with an unrequested scheme"))
		}
		if err := verifyHandshakeSignature(c.vers, cv.signatureAlgorithm, hs.peerKey, hs.transcript, cv.signature); err != nil {
			return c.fail(alertDecryptError, err)
		}
		hs.addTranscript(msg)
	}
	return nil
}

func (hs *serverHandshakeState) verifyClientCertificate(raw [][]byte) error {
	c := hs.c
	if len(raw) == 0 {
		if c.config.requiresClientCert() {
			return c.fail(alertBadCertificate, errors.New("dtls: client didn't provide a certificate"))
		}
		return nil
	}
	certs, err := hs.parsePeerChain(raw, "client")
	if err != nil {
		return err
	}
	switch certs[0].PublicKey.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		if !isRSAKey(certs[0].PublicKey) {
			return c.fail(alertUnsupportedCertificate, errors.New("dtls: client certificate key type not supported"))
		}
	}
	var chains [][]*x509.Certificate
	if c.config.verifiesClientCert() {
		chains, err = c.config.verifyClientChain(certs, c.config.time())
		if err != nil {
			return c.fail(alertBadCertificate, &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err})
		}
	}
	return hs.acceptPeerChain(raw, certs, chains)
}
