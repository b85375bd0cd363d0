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
	"net"
	"slices"
)

// maxHelloVerifyRequests bounds how many cookie round trips a client
// accepts before giving up on a server that never takes its cookie.
const maxHelloVerifyRequests = 4

// clientHandshakeState is the client's side of a DTLS 1.2 handshake: the
// shared handshakeState and what only a client keeps.
type clientHandshakeState struct {
	handshakeState

	// Resumption (handshake_resume.go).
	session       *sessionState        // the session offered
	clientSession *ClientSessionState  // the cached session offered
	cacheKey      string               // its ClientSessionCache key
	ticket        *newSessionTicketMsg // the ticket the server sent
	cached13      *ClientSessionState  // a cached DTLS 1.3 session, offered only to a 1.3 server

	// offered13: our ClientHello offered DTLS 1.3 as well, so a 1.2
	// ServerHello must not carry the downgrade sentinel; hs13 is the
	// 1.3 handshake that takes over if the server chooses 1.3.
	offered13 bool
	hs13      *clientHandshakeState13
}

// writeHello queues our ClientHello, the 1.3 form when we offer 1.3.
func (hs *clientHandshakeState) writeHello() error {
	if hs.hs13 != nil {
		return hs.hs13.writeHello(&hs.handshakeState)
	}
	return hs.writeHandshake(hs.hello)
}

func (c *Conn) clientHandshake(ctx context.Context) error {
	hs := &clientHandshakeState{handshakeState: newHandshakeState(c, ctx)}
	if err := c.config.checkClient(); err != nil {
		return err
	}
	hello, err := c.makeClientHello()
	if err != nil {
		return err
	}
	hs.hello = hello
	if err := hs.loadSession(); err != nil {
		return err
	}
	if c.offers13() {
		// The 1.3 ClientHello is the 1.2 one with the 1.3 extensions;
		// hs.hello points into it, so that what the 1.2 steps below
		// change (a cookie, a dropped ticket) is sent either way.
		if hs.hs13, err = c.offer13(hello, hs.cached13); err != nil {
			return err
		}
		hs.hello = &hs.hs13.hello.clientHelloMsg
		hello = hs.hello
		hs.offered13 = true
	}
	if err := hs.writeHello(); err != nil {
		return err
	}
	if err := c.sendFlight(false, ""); err != nil {
		return err
	}
	if err := c.sendEarlyData(); err != nil {
		return err
	}

	var msg inMessage
	spans := hs.ticketSpansDatagrams()
	for hvrs := 0; ; hvrs++ {
		if spans {
			// Some servers cannot reassemble a ClientHello (mbedTLS
			// 2.28 fails the handshake silently): if the first timer
			// passes without an answer, start over without the ticket.
			first, _ := c.hs.deadline()
			rctx, cancel := context.WithDeadline(ctx, first)
			msg, err = c.readHandshake(rctx)
			cancel()
			if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				spans = false
				if err := hs.restartWithoutTicket(); err != nil {
					return err
				}
				continue
			}
		} else {
			msg, err = c.readHandshake(ctx)
		}
		if err != nil {
			return err
		}
		spans = false // the server answered
		if msg.typ != typeHelloVerifyRequest {
			break
		}
		if c.offered13 {
			// A 1.2 server (RFC 9147 §5.3: 1.3 has no
			// HelloVerifyRequest); the ClientHello with its cookie
			// may no longer get 1.3 (a 1.3 server refuses a
			// legacy_cookie), so it offers 1.2 alone.
			hs.hs13.hello.supportedVersions = nil
			hs.hs13.hello.hasKeyShare = false
			hs.hs13.hello.keyShares = nil
			hs.hs13.hello.earlyData = false
			c.early.keys = nil // no 0-RTT with a 1.2 server
			// hs.offered13 stays: the first ClientHello offered 1.3,
			// so a 1.2 ServerHello from a 1.3-capable server is a
			// downgrade (a 1.3 server sends no HelloVerifyRequest to
			// a ClientHello offering 1.3 unless 1.3 was stripped).
			c.offered13 = false
			if !c.config.supports(VersionDTLS12) {
				return c.fail(alertProtocolVersion, errors.New("dtls: server speaks DTLS 1.2 only; Config.MinVersion requires 1.3"))
			}
		}
		if hvrs == maxHelloVerifyRequests {
			return c.fail(alertUnexpectedMessage, errors.New("dtls: too many HelloVerifyRequests"))
		}
		hvr := new(helloVerifyRequestMsg)
		if err := c.parseHandshakeMsg(msg, typeHelloVerifyRequest, hvr.unmarshal); err != nil {
			return err
		}
		if hvr.vers != VersionDTLS10 && hvr.vers != VersionDTLS12 {
			return c.fail(alertProtocolVersion, fmt.Errorf("dtls: HelloVerifyRequest version %#x", hvr.vers))
		}
		// The HelloVerifyRequest and the first ClientHello are not part
		// of the transcript (RFC 6347 §4.2.6).
		hello.cookie = append([]byte(nil), hvr.cookie...)
		// A stateless server numbers its records afresh after the
		// cookie exchange; handshake messages are deduplicated by
		// message_seq, so epoch 0's window can start over.
		c.rl.resetReplay(0)
		hs.transcript = hs.transcript[:0]
		if err := hs.writeHello(); err != nil {
			return err
		}
		if err := c.sendFlight(false, ""); err != nil {
			return err
		}
	}

	if hs.hs13 != nil && c.offered13 {
		if sh, ok := is13(msg); ok {
			return hs.hs13.handshake(ctx, msg, sh)
		}
	}
	if err := hs.processServerHello(msg); err != nil {
		return err
	}
	if resumed, err := hs.serverResumed(); err != nil {
		return err
	} else if resumed {
		return hs.doResumeClient()
	}
	if err := hs.readServerFlight(); err != nil {
		return err
	}
	if err := hs.sendClientFlight(); err != nil {
		return err
	}
	if err := hs.readSessionTicket(); err != nil {
		return err
	}
	if err := hs.readServerFinished(); err != nil {
		return err
	}
	hs.finish()
	hs.storeSession()
	return nil
}

func (c *Conn) makeClientHello() (*clientHelloMsg, error) {
	hello := &clientHelloMsg{
		vers:                         VersionDTLS12,
		random:                       make([]byte, randomLen),
		compressionMethods:           []uint8{compressionNone},
		supportedCurves:              implementedCurves(c.config.curvePreferences()),
		supportedPoints:              []uint8{pointFormatUncompressed},
		supportedSignatureAlgorithms: supportedSignatureAlgorithms,
		extendedMasterSecret:         true,
		secureRenegotiationSupported: true,
		alpnProtocols:                c.config.NextProtos,
	}
	if _, err := io.ReadFull(c.config.rand(), hello.random); err != nil {
		return nil, fmt.Errorf("dtls: reading random: %w", err)
	}
	suites := c.enabledSuites()
	hello.cipherSuites = make([]uint16, 0, len(suites))
	for _, s := range suites {
		hello.cipherSuites = append(hello.cipherSuites, s.id)
	}
	if len(hello.cipherSuites) == 0 && !(c.offers13() && len(c.enabledSuites13()) > 0) {
		return nil, errors.New("dtls: no cipher suite enabled for the configured credentials")
	}
	if n := c.config.ServerName; n != "" && net.ParseIP(n) == nil {
		hello.serverName = n
	}
	if gen := c.config.ConnectionIDGenerator; gen != nil {
		cid := slices.Clone(gen())
		if len(cid) > maxCIDLen {
			return nil, errors.New("dtls: ConnectionIDGenerator returned a CID longer than 255 bytes")
		}
		if cid == nil {
			cid = []byte{} // negotiated but empty, as ConnectionState reports it
		}
		hello.hasConnectionID = true
		hello.connectionID = cid
		// RFC 9853 §3: a client offering connection_id SHOULD also
		// offer rrc.
		hello.rrc = c.config.rrcPolicy() != RRCOff
	}
	c.offerRawPublicKeys(hello)
	if len(c.config.SRTPProtectionProfiles) > 0 {
		hello.srtpProtectionProfiles = c.config.SRTPProtectionProfiles
		hello.srtpMKI = c.config.SRTPMKI
	}
	return hello, nil
}

// implementedCurves keeps the groups of prefs that curveForID implements:
// offering another (P-521, a hybrid group) would let a server choose a
// group we cannot compute with.
func implementedCurves(prefs []tls.CurveID) []tls.CurveID {
	var out []tls.CurveID
	for _, id := range prefs {
		if _, ok := curveForID(id); ok {
			out = append(out, id)
		}
	}
	return out
}

func (hs *clientHandshakeState) processServerHello(msg inMessage) error {
	c := hs.c
	sh := new(serverHelloMsg)
	if err := c.parseHandshakeMsg(msg, typeServerHello, sh.unmarshal); err != nil {
		return err
	}
	hs.addTranscript(msg)
	hs.serverHello = sh
	if sh.vers != VersionDTLS12 {
		return c.fail(alertProtocolVersion, fmt.Errorf("dtls: server chose version %#x; only DTLS 1.2 is supported", sh.vers))
	}
	if !c.config.supports(VersionDTLS12) {
		return c.fail(alertProtocolVersion, errors.New("dtls: server chose DTLS 1.2; Config.MinVersion requires 1.3"))
	}
	if hs.offered13 {
		// RFC 8446 §4.1.3: a 1.3 client that gets 1.2 from a server
		// that marked the random as a downgrade "MUST abort the
		// handshake with an illegal_parameter alert".
		if downgradeProtected(sh.random) {
			return c.fail(alertIllegalParameter, errors.New("dtls: downgrade from DTLS 1.3 detected (RFC 8446 §4.1.3 sentinel in ServerHello.random)"))
		}
	}
	c.vers = sh.vers
	// A ClientHello offering 1.3 lists the 1.3 suites too: a 1.2
	// ServerHello choosing one of them chose a suite we did not offer
	// for 1.2, and cipherSuiteByID knows only the 1.2 ones.
	hs.suite = cipherSuiteByID(sh.cipherSuite)
	if hs.suite == nil || !slices.Contains(hs.hello.cipherSuites, sh.cipherSuite) {
		return c.fail(alertIllegalParameter, fmt.Errorf("dtls: server chose cipher suite %s, which we did not offer", CipherSuiteName(sh.cipherSuite)))
	}
	if sh.compressionMethod != compressionNone {
		return c.fail(alertIllegalParameter, errors.New("dtls: server chose compression"))
	}
	// offered reports whether our ClientHello carried extension e (a
	// switch rather than a map, which would cost three allocations).
	offered := func(e uint16) bool {
		switch e {
		case extensionSupportedPoints, extensionExtendedMasterSecret, extensionRenegotiationInfo:
			return true
		case extensionServerName:
			return hs.hello.serverName != ""
		case extensionALPN:
			return len(hs.hello.alpnProtocols) > 0
		case extensionConnectionID:
			return hs.hello.hasConnectionID
		case extensionRRC:
			return hs.hello.rrc
		case extensionServerCertType:
			return len(hs.hello.serverCertTypes) > 0
		case extensionClientCertType:
			return len(hs.hello.clientCertTypes) > 0
		case extensionSessionTicket:
			return hs.hello.ticketSupported
		case extensionUseSRTP:
			return len(hs.hello.srtpProtectionProfiles) > 0
		}
		return false
	}
	for _, e := range sh.extensions {
		if !offered(e) {
			return c.fail(alertUnsupportedExtension, fmt.Errorf("dtls: server sent extension %d, which we did not offer", e))
		}
	}
	if sh.secureRenegotiationSupported && len(sh.secureRenegotiation) != 0 {
		return c.fail(alertHandshakeFailure, errors.New("dtls: initial handshake had non-empty renegotiation extension"))
	}
	if sh.alpnProtocol != "" && !slices.Contains(hs.hello.alpnProtocols, sh.alpnProtocol) {
		return c.fail(alertIllegalParameter, errors.New("dtls: server chose an unoffered ALPN protocol"))
	}
	if err := hs.processCertificateTypes(sh); err != nil {
		return err
	}
	hs.ems = sh.extendedMasterSecret
	if !hs.ems && !c.config.InsecureAllowNoExtendedMasterSecret {
		return c.fail(alertHandshakeFailure, errors.New("dtls: server does not support the extended master secret (RFC 7627)"))
	}
	if sh.hasConnectionID {
		// RFC 9146 §3: from epoch 1 on, each side sends the CID the
		// other asked for.
		c.rl.setConnectionIDs(hs.hello.connectionID, slices.Clone(sh.connectionID))
	}
	// RFC 9853 §3: RRC is used only when both sides sent rrc; it goes
	// with the CID, without which no record moves the peer.
	c.rrcNegotiated = hs.hello.rrc && sh.rrc && sh.hasConnectionID
	return hs.processServerSRTP()
}

// readServerFlight reads Certificate, ServerKeyExchange,
// CertificateRequest and ServerHelloDone as the suite requires.
func (hs *clientHandshakeState) readServerFlight() error {
	c := hs.c
	kx := hs.suite.kx
	msg, err := c.readHandshake(hs.ctx)
	if err != nil {
		return err
	}
	if kx.usesCertificates() {
		cm := &certificateMsg{rawPublicKey: hs.serverRPK}
		if err := c.parseHandshakeMsg(msg, typeCertificate, cm.unmarshal); err != nil {
			return err
		}
		hs.addTranscript(msg)
		if hs.serverRPK {
			err = hs.verifyRawPublicKey(cm.certificates, true)
		} else {
			err = hs.verifyServerCertificate(cm.certificates)
		}
		if err != nil {
			return err
		}
		if msg, err = c.readHandshake(hs.ctx); err != nil {
			return err
		}
	}
	if msg.typ == typeServerKeyExchange {
		skx := &serverKeyExchangeMsg{kind: kx}
		if err := c.parseHandshakeMsg(msg, typeServerKeyExchange, skx.unmarshal); err != nil {
			return err
		}
		hs.addTranscript(msg)
		if err := hs.processServerKeyExchange(skx); err != nil {
			return err
		}
		if msg, err = c.readHandshake(hs.ctx); err != nil {
			return err
		}
	} else if kx.isECDHE() {
		return c.unexpectedMessage(typeServerKeyExchange, msg.typ)
	}
	if msg.typ == typeCertificateRequest {
		if !kx.usesCertificates() {
			return c.fail(alertUnexpectedMessage, errors.New("dtls: CertificateRequest under a PSK suite"))
		}
		cr := new(certificateRequestMsg)
		if err := c.parseHandshakeMsg(msg, typeCertificateRequest, cr.unmarshal); err != nil {
			return err
		}
		hs.addTranscript(msg)
		hs.certRequest = cr
		if msg, err = c.readHandshake(hs.ctx); err != nil {
			return err
		}
	}
	var done serverHelloDoneMsg
	if err := c.parseHandshakeMsg(msg, typeServerHelloDone, done.unmarshal); err != nil {
		return err
	}
	hs.addTranscript(msg)
	return nil
}

func (hs *clientHandshakeState) verifyServerCertificate(raw [][]byte) error {
	c := hs.c
	if len(raw) == 0 {
		return c.fail(alertBadCertificate, errors.New("dtls: server sent no certificate"))
	}
	certs, err := hs.parsePeerChain(raw, "server")
	if err != nil {
		return err
	}
	var chains [][]*x509.Certificate
	if !c.config.InsecureSkipVerify {
		chains, err = verifyChain(certs, c.config.RootCAs, c.config.ServerName, false, c.config.time())
		if err != nil {
			return c.fail(alertBadCertificate, &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err})
		}
	}
	switch certs[0].PublicKey.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
		if hs.suite.kx != kxECDHEECDSA {
			return c.fail(alertUnsupportedCertificate, errors.New("dtls: server's certificate key does not match the cipher suite"))
		}
	default:
		if !isRSAKey(certs[0].PublicKey) || hs.suite.kx != kxECDHERSA {
			return c.fail(alertUnsupportedCertificate, errors.New("dtls: server's certificate key does not match the cipher suite"))
		}
	}
	return hs.acceptPeerChain(raw, certs, chains)
}

func (hs *clientHandshakeState) processServerKeyExchange(skx *serverKeyExchangeMsg) error {
	c := hs.c
	if skx.kind.isPSK() {
		hs.pskHint = append([]byte(nil), skx.pskIdentityHint...)
	}
	if !skx.kind.isECDHE() {
		return nil
	}
	curve, ok := curveForID(skx.curveID)
	if !ok || !slices.Contains(hs.hello.supportedCurves, skx.curveID) {
		return c.fail(alertIllegalParameter, fmt.Errorf("dtls: server chose group %v, which we did not offer", skx.curveID))
	}
	if skx.kind.usesCertificates() {
		if !slices.Contains(hs.hello.supportedSignatureAlgorithms, skx.signatureAlgorithm) {
			return c.fail(alertIllegalParameter, fmt.Errorf("dtls: server signed with %v, which we did not offer", skx.signatureAlgorithm))
		}
		signedMsg := slices.Concat(hs.hello.random, hs.serverHello.random, skx.ecdhParams())
		if err := verifyHandshakeSignature(c.vers, skx.signatureAlgorithm, hs.peerKey, signedMsg, skx.signature); err != nil {
			return c.fail(alertDecryptError, err)
		}
		hs.state.sigScheme = skx.signatureAlgorithm
	}
	key, err := curve.GenerateKey(c.config.rand())
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	secret, err := ecdheSharedSecret(key, skx.publicKey)
	if err != nil {
		return c.fail(alertIllegalParameter, err)
	}
	hs.ecdhKey = key
	hs.curveID = skx.curveID
	hs.preMaster = secret
	return nil
}

// sendClientFlight sends [Certificate] ClientKeyExchange
// [CertificateVerify] ChangeCipherSpec Finished.
func (hs *clientHandshakeState) sendClientFlight() error {
	c := hs.c
	kx := hs.suite.kx
	if hs.certRequest != nil {
		cr := hs.certRequest
		var err error
		hs.cert, err = c.clientCertificate(&CertificateRequestInfo{
			AcceptableCAs:    cr.certificateAuthorities,
			SignatureSchemes: cr.supportedSignatureAlgorithms,
			Version:          c.vers,
			ctx:              hs.ctx,
		}, hs.clientRPK)
		if err != nil {
			return err
		}
		cm, err := ourCertificateMsg(hs.cert, hs.clientRPK)
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		if err := hs.writeHandshake(cm); err != nil {
			return err
		}
	}
	ckx := &clientKeyExchangeMsg{kind: kx}
	if kx.isECDHE() {
		ckx.publicKey = hs.ecdhKey.PublicKey().Bytes()
	}
	if kx.isPSK() {
		psk, err := c.config.PSK(hs.pskHint)
		if err != nil || len(psk) == 0 {
			return c.fail(alertInternalError, fmt.Errorf("dtls: no PSK for the server's hint %q: %v", hs.pskHint, err))
		}
		hs.psk = psk
		hs.pskIdentity = c.config.PSKIdentity
		ckx.pskIdentity = c.config.PSKIdentity
		if kx == kxECDHEPSK {
			hs.preMaster = ecdhePSKPreMasterSecret(hs.preMaster, psk)
		} else {
			hs.preMaster = pskPreMasterSecret(psk)
		}
	}
	if err := hs.writeHandshake(ckx); err != nil {
		return err
	}
	hs.deriveMasterSecret()
	if hs.cert != nil {
		signer, err := certificateSigner(hs.cert)
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		scheme, err := selectSignatureScheme(c.vers, signer, hs.certRequest.supportedSignatureAlgorithms)
		if err != nil {
			return c.fail(alertHandshakeFailure, err)
		}
		sig, err := signHandshake(c.config.rand(), signer, scheme, hs.transcript)
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		if err := hs.writeHandshake(&certificateVerifyMsg{signatureAlgorithm: scheme, signature: sig}); err != nil {
			return err
		}
	}
	if err := hs.verifyConnection(); err != nil {
		return err
	}
	if err := hs.writeFinished(true); err != nil {
		return err
	}
	return c.sendFlight(false, "")
}

// clientCertificate picks our certificate for a server's CertificateRequest,
// or nil to send an empty Certificate: GetClientCertificate's answer when
// it is set (crypto/tls's semantics: Certificates is then ignored, and an
// answer with no certificate chain is no certificate, unless rpk, where a
// private key alone is a raw public key, RFC 7250), else the first of
// Certificates that can sign with one of the server's signature schemes
// (and, unless rpk, has a chain: a bare key is no X.509 certificate).
// An error of GetClientCertificate is returned after sending
// internal_error, as crypto/tls does: the handshake, or after it the
// connection, fails with it.
func (c *Conn) clientCertificate(info *CertificateRequestInfo, rpk bool) (*tls.Certificate, error) {
	if c.config.GetClientCertificate != nil {
		cert, err := c.config.GetClientCertificate(info)
		if err != nil {
			return nil, c.fail(alertInternalError, err)
		}
		if cert == nil || len(cert.Certificate) == 0 && (!rpk || cert.PrivateKey == nil) {
			return nil, nil
		}
		return cert, nil
	}
	for i := range c.config.Certificates {
		cert := &c.config.Certificates[i]
		if len(cert.Certificate) == 0 && !rpk {
			continue
		}
		signer, err := certificateSigner(cert)
		if err != nil {
			continue
		}
		if _, err := selectSignatureScheme(c.vers, signer, info.SignatureSchemes); err == nil {
			return cert, nil
		}
	}
	return nil, nil
}

func (hs *clientHandshakeState) readServerFinished() error { return hs.readFinished(false) }
