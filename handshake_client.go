package dtls

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/subtle"
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

// handshakeState is one handshake's data, on either side.
type handshakeState struct {
	c            *Conn
	ctx          context.Context
	suite        *cipherSuite
	transcript   []byte // DTLS 1.2 transcript: 12-byte headers + bodies; starts with initialTranscriptCap
	hello        *clientHelloMsg
	serverHello  *serverHelloMsg
	ecdhKey      *ecdh.PrivateKey
	curveID      tls.CurveID
	cert         *tls.Certificate // ours
	peerCerts    []*x509.Certificate
	preMaster    []byte
	masterSecret []byte
	psk          []byte
	pskIdentity  []byte
	pskHint      []byte
	ems          bool
	certRequest  *certificateRequestMsg
	peerKey      crypto.PublicKey // from the peer's certificate or raw public key
	serverRPK    bool             // the server authenticates with a raw public key (RFC 7250)
	clientRPK    bool             // the client does

	// Resumption (handshake_resume.go).
	session       *sessionState        // server: the session being resumed; client: the one offered
	clientSession *ClientSessionState  // client: the cached session offered
	cacheKey      string               // client: its ClientSessionCache key
	ticket        *newSessionTicketMsg // client: the ticket the server sent
	issueTicket   bool                 // server: NewSessionTicket is due
	renewTicket   bool                 // server: the resumed ticket's key is not the newest
	// clientKeys and serverKeys are the epoch-1 keys, derived once.
	clientKeys, serverKeys *epochKeys
	// peerKeysInstalled: the read side has the peer's epoch-1 keys.
	peerKeysInstalled bool
}

// initialTranscriptCap is the capacity the transcript starts with: a full
// handshake with a P-256 certificate takes about 900 bytes, so that it is
// one allocation instead of growing append by append. A longer
// certificate chain still grows it.
const initialTranscriptCap = 1024

// transcriptHash appends the hash of the transcript so far, with the
// suite's PRF hash, to dst: the session hash of RFC 7627 or the hash a
// Finished covers. Callers pass a stack buffer of sha512.Size384 bytes.
func (hs *handshakeState) transcriptHash(dst []byte) []byte {
	return hashSum(hs.suite.hash, dst, hs.transcript)
}

func (hs *handshakeState) addTranscript(m inMessage) {
	hs.transcript = m.appendTranscript(hs.transcript)
}

// defaultSuites is the client's offer, or the server's preference, when
// Config.CipherSuites is nil: the PSK suites with a PSK, the certificate
// suites otherwise.
func (c *Conn) enabledSuites() []*cipherSuite {
	if ids := c.config.CipherSuites; len(ids) > 0 {
		out := make([]*cipherSuite, 0, len(ids))
		for _, id := range ids {
			if s := cipherSuiteByID(id); s != nil {
				out = append(out, s)
			}
		}
		return out
	}
	// Sized for every suite we implement, so that it does not grow append
	// by append.
	out := make([]*cipherSuite, 0, len(cipherSuites))
	for _, s := range cipherSuites {
		if s.kx.isPSK() == (c.config.PSK != nil) {
			out = append(out, s)
		}
	}
	if c.config.PSK != nil && !c.isClient && (len(c.config.Certificates) > 0 || c.config.GetCertificate != nil) {
		for _, s := range cipherSuites {
			if !s.kx.isPSK() {
				out = append(out, s)
			}
		}
	}
	return out
}

func (c *Conn) clientHandshake(ctx context.Context) error {
	hs := &handshakeState{c: c, ctx: ctx, transcript: make([]byte, 0, initialTranscriptCap)}
	if c.config.PSK == nil && !c.config.InsecureSkipVerify && c.config.ServerName == "" {
		return errors.New("dtls: either ServerName or InsecureSkipVerify must be set in the config, or a PSK")
	}
	hello, err := c.makeClientHello()
	if err != nil {
		return err
	}
	hs.hello = hello
	if err := hs.loadSession(); err != nil {
		return err
	}
	if err := c.writeHandshake(hs, hello); err != nil {
		return err
	}
	if err := c.sendFlight(false, ""); err != nil {
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
		if hvrs == maxHelloVerifyRequests {
			return c.fail(alertUnexpectedMessage, errors.New("dtls: too many HelloVerifyRequests"))
		}
		hvr := new(helloVerifyRequestMsg)
		if !hvr.unmarshal(msg.body) {
			return c.fail(alertDecodeError, errors.New("dtls: malformed HelloVerifyRequest"))
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
		if err := c.writeHandshake(hs, hello); err != nil {
			return err
		}
		if err := c.sendFlight(false, ""); err != nil {
			return err
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
	if len(hello.cipherSuites) == 0 {
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

func (hs *handshakeState) processServerHello(msg inMessage) error {
	c := hs.c
	if msg.typ != typeServerHello {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: expected ServerHello, got %v", msg.typ))
	}
	sh := new(serverHelloMsg)
	if !sh.unmarshal(msg.body) {
		return c.fail(alertDecodeError, errors.New("dtls: malformed ServerHello"))
	}
	hs.addTranscript(msg)
	hs.serverHello = sh
	if sh.vers != VersionDTLS12 {
		return c.fail(alertProtocolVersion, fmt.Errorf("dtls: server chose version %#x; only DTLS 1.2 is supported", sh.vers))
	}
	c.vers = sh.vers
	if !slices.Contains(hs.hello.cipherSuites, sh.cipherSuite) {
		return c.fail(alertIllegalParameter, fmt.Errorf("dtls: server chose cipher suite %s, which we did not offer", CipherSuiteName(sh.cipherSuite)))
	}
	hs.suite = cipherSuiteByID(sh.cipherSuite)
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
	return hs.processServerSRTP()
}

// readServerFlight reads Certificate, ServerKeyExchange,
// CertificateRequest and ServerHelloDone as the suite requires.
func (hs *handshakeState) readServerFlight() error {
	c := hs.c
	kx := hs.suite.kx
	msg, err := c.readHandshake(hs.ctx)
	if err != nil {
		return err
	}
	if kx.usesCertificates() {
		if msg.typ != typeCertificate {
			return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: expected Certificate, got %v", msg.typ))
		}
		cm := &certificateMsg{rawPublicKey: hs.serverRPK}
		if !cm.unmarshal(msg.body) {
			return c.fail(alertDecodeError, errors.New("dtls: malformed Certificate"))
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
		if !skx.unmarshal(msg.body) {
			return c.fail(alertDecodeError, errors.New("dtls: malformed ServerKeyExchange"))
		}
		hs.addTranscript(msg)
		if err := hs.processServerKeyExchange(skx); err != nil {
			return err
		}
		if msg, err = c.readHandshake(hs.ctx); err != nil {
			return err
		}
	} else if kx.isECDHE() {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: expected ServerKeyExchange, got %v", msg.typ))
	}
	if msg.typ == typeCertificateRequest {
		if !kx.usesCertificates() {
			return c.fail(alertUnexpectedMessage, errors.New("dtls: CertificateRequest under a PSK suite"))
		}
		cr := new(certificateRequestMsg)
		if !cr.unmarshal(msg.body) {
			return c.fail(alertDecodeError, errors.New("dtls: malformed CertificateRequest"))
		}
		hs.addTranscript(msg)
		hs.certRequest = cr
		if msg, err = c.readHandshake(hs.ctx); err != nil {
			return err
		}
	}
	if msg.typ != typeServerHelloDone {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: expected ServerHelloDone, got %v", msg.typ))
	}
	if len(msg.body) != 0 {
		return c.fail(alertDecodeError, errors.New("dtls: malformed ServerHelloDone"))
	}
	hs.addTranscript(msg)
	return nil
}

func (hs *handshakeState) verifyServerCertificate(raw [][]byte) error {
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
		opts := x509.VerifyOptions{
			Roots:         c.config.RootCAs,
			CurrentTime:   c.config.time(),
			DNSName:       c.config.ServerName,
			Intermediates: intermediatePool(certs[1:]),
		}
		chains, err = certs[0].Verify(opts)
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

// parsePeerChain parses the peer's certificate chain (who is "server" or
// "client", for the error) and refuses a leaf RSA key of a size we do not
// verify with (pion CVE-2026-135391), sending bad_certificate.
func (hs *handshakeState) parsePeerChain(raw [][]byte, who string) ([]*x509.Certificate, error) {
	c := hs.c
	certs := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		cert, err := parsePeerCertificate(der)
		if err != nil {
			return nil, c.fail(alertBadCertificate, fmt.Errorf("dtls: failed to parse %s certificate: %w", who, err))
		}
		certs[i] = cert
	}
	if err := checkPeerKeySize(certs[0].PublicKey); err != nil {
		return nil, c.fail(alertBadCertificate, err)
	}
	return certs, nil
}

// acceptPeerChain runs Config.VerifyPeerCertificate on a chain that passed
// our checks and records it as the peer's.
func (hs *handshakeState) acceptPeerChain(raw [][]byte, certs []*x509.Certificate, chains [][]*x509.Certificate) error {
	c := hs.c
	if f := c.config.VerifyPeerCertificate; f != nil {
		if err := f(raw, chains); err != nil {
			return c.fail(alertBadCertificate, err)
		}
	}
	hs.peerCerts = certs
	hs.peerKey = certs[0].PublicKey
	c.state.peerCertificates = certs
	c.state.verifiedChains = chains
	return nil
}

func (hs *handshakeState) processServerKeyExchange(skx *serverKeyExchangeMsg) error {
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
		c.state.sigScheme = skx.signatureAlgorithm
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
func (hs *handshakeState) sendClientFlight() error {
	c := hs.c
	kx := hs.suite.kx
	if hs.certRequest != nil {
		hs.cert = c.clientCertificate(hs.certRequest)
		cm, err := ourCertificateMsg(hs.cert, hs.clientRPK)
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		if err := c.writeHandshake(hs, cm); err != nil {
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
	if err := c.writeHandshake(hs, ckx); err != nil {
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
		if err := c.writeHandshake(hs, &certificateVerifyMsg{signatureAlgorithm: scheme, signature: sig}); err != nil {
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

// clientCertificate picks our certificate for a CertificateRequest, or nil.
func (c *Conn) clientCertificate(cr *certificateRequestMsg) *tls.Certificate {
	for i := range c.config.Certificates {
		cert := &c.config.Certificates[i]
		signer, err := certificateSigner(cert)
		if err != nil {
			continue
		}
		if _, err := selectSignatureScheme(c.vers, signer, cr.supportedSignatureAlgorithms); err == nil {
			return cert
		}
	}
	return nil
}

// deriveMasterSecret turns the premaster secret into the master secret,
// with the extended master secret's session hash when negotiated.
func (hs *handshakeState) deriveMasterSecret() {
	c := hs.c
	if hs.ems {
		var th [sha512.Size384]byte
		hs.masterSecret = extMasterFromPreMasterSecret(hs.suite.hash, hs.preMaster, hs.transcriptHash(th[:0]))
	} else {
		hs.masterSecret = masterFromPreMasterSecret(hs.suite.hash, hs.preMaster, hs.hello.random, hs.serverHello.random)
	}
	if w := c.config.KeyLogWriter; w != nil {
		writeKeyLog(w, hs.hello.random, hs.masterSecret)
	}
}

// epochKeysFor derives the epoch-1 keys of both directions, on the first
// call: writeFinished and readFinished both need them.
func (hs *handshakeState) epochKeysFor() (client, server *epochKeys, err error) {
	if hs.clientKeys != nil {
		return hs.clientKeys, hs.serverKeys, nil
	}
	p := hs.suite.params()
	ck, sk, civ, siv := keysFromMasterSecret(hs.suite.hash, hs.masterSecret, hs.hello.random, hs.serverHello.random, p.keyLen, p.fixedIVLen)
	if client, err = newEpochKeys(hs.suite.aead, ck, civ); err != nil {
		return nil, nil, err
	}
	if server, err = newEpochKeys(hs.suite.aead, sk, siv); err != nil {
		return nil, nil, err
	}
	hs.clientKeys, hs.serverKeys = client, server
	return client, server, nil
}

// writeFinished queues ChangeCipherSpec and our Finished.
func (hs *handshakeState) writeFinished(fromClient bool) error {
	c := hs.c
	ck, sk, err := hs.epochKeysFor()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	write := sk
	if fromClient {
		write = ck
	}
	c.writeChangeCipherSpec(write)
	var th [sha512.Size384]byte
	fin := &finishedMsg{verifyData: finishedVerifyData(hs.suite.hash, hs.masterSecret, fromClient, hs.transcriptHash(th[:0]))}
	return c.writeHandshake(hs, fin)
}

// installPeerKeys derives the peer's epoch-1 keys and starts reading with
// them (once per handshake).
func (hs *handshakeState) installPeerKeys(fromClient bool) error {
	c := hs.c
	if hs.peerKeysInstalled {
		return nil
	}
	ck, sk, err := hs.epochKeysFor()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	read := ck
	if !fromClient {
		read = sk
	}
	hs.peerKeysInstalled = true
	return c.installPeerKeys(read)
}

// readFinished waits for the peer's ChangeCipherSpec and Finished and
// checks verify_data in constant time.
func (hs *handshakeState) readFinished(fromClient bool) error {
	c := hs.c
	if err := hs.installPeerKeys(fromClient); err != nil {
		return err
	}
	if err := c.readChangeCipherSpec(hs.ctx); err != nil {
		return err
	}
	var th [sha512.Size384]byte
	var want [finishedVerifyLen]byte
	fillFinishedVerifyData(hs.suite.hash, want[:], hs.masterSecret, fromClient, hs.transcriptHash(th[:0]))
	msg, err := c.readHandshake(hs.ctx)
	if err != nil {
		return err
	}
	if msg.typ != typeFinished {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: expected Finished, got %v", msg.typ))
	}
	if msg.epoch != c.rl.readCur {
		// A Finished must be protected by the new keys (wolfSSL
		// CVE-2023-6937: messages spanning a key change).
		return c.fail(alertUnexpectedMessage, errors.New("dtls: Finished not protected by the negotiated keys"))
	}
	fin := new(finishedMsg)
	if !fin.unmarshal(msg.body) {
		return c.fail(alertDecodeError, errors.New("dtls: malformed Finished"))
	}
	if subtle.ConstantTimeCompare(fin.verifyData, want[:]) != 1 {
		return c.fail(alertDecryptError, errors.New("dtls: peer's Finished is wrong"))
	}
	hs.addTranscript(msg)
	// The Finished ends the peer's part of the handshake: no message
	// follows it in 1.2. One that arrived with it, authenticated, is the
	// peer's error (RFC 5246 §7.2.2: unexpected_message). One in the same
	// datagram behind it is not read yet: handlePostHandshakeMessage
	// refuses it.
	if typ, _, ok := c.hs.peekMessage(); ok {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: %v after the peer's Finished", typ))
	}
	c.peerFinished = true
	return nil
}

func (hs *handshakeState) readServerFinished() error { return hs.readFinished(false) }

// verifyConnection runs Config.VerifyConnection before we send Finished.
func (hs *handshakeState) verifyConnection() error {
	c := hs.c
	f := c.config.VerifyConnection
	if f == nil {
		return nil
	}
	cs := ConnectionState{
		Version:              c.vers,
		CipherSuite:          hs.suite.id,
		NegotiatedProtocol:   hs.serverHello.alpnProtocol,
		ServerName:           hs.hello.serverName,
		PeerCertificates:     c.state.peerCertificates,
		VerifiedChains:       c.state.verifiedChains,
		PeerPublicKey:        c.state.peerPublicKey,
		ExtendedMasterSecret: hs.ems,
		PSKIdentity:          hs.pskIdentity,
		PSKIdentityHint:      hs.pskHint,
		CurveID:              hs.curveID,
		DidResume:            c.state.didResume,
	}
	cs.SRTPProtectionProfile = c.state.srtpProfile
	if err := f(cs); err != nil {
		return c.fail(alertBadCertificate, err)
	}
	return nil
}

// finish records what was negotiated on the Conn.
func (hs *handshakeState) finish() {
	s := &hs.c.state
	s.suite = hs.suite
	s.masterSecret = hs.masterSecret
	s.clientRandom = hs.hello.random
	s.serverRandom = hs.serverHello.random
	s.ems = hs.ems
	s.alpn = hs.serverHello.alpnProtocol
	s.serverName = hs.hello.serverName
	s.curveID = hs.curveID
	if hs.suite.kx.isPSK() {
		s.pskIdentity = hs.pskIdentity
		s.pskIdentityHint = hs.pskHint
	}
	// Records of epoch 0 are of no use once the peer's Finished arrived in
	// epoch 1, except retransmissions that the transport answers.
	hs.c.expectCCS = false
}
