package dtls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"slices"
)

// The client's DTLS 1.3 handshake (RFC 9147 §5, RFC 8446 §4), entered
// from clientHandshake when the server's answer to a ClientHello that
// offered 1.3 selects it. The ClientHello itself is built and sent by the
// 1.2 code with the 1.3 extensions added here (offer13), so that a 1.2
// server, its HelloVerifyRequest included, is answered as before.

// clientHandshakeState13 is one DTLS 1.3 handshake's client state.
type clientHandshakeState13 struct {
	c     *Conn
	ctx   context.Context
	hello *clientHelloMsg13
	// chBody is the ClientHello body as last sent, for the transcript.
	chBody   []byte
	keyShare *keySharePrivate13

	suite       *cipherSuite13
	transcript  hash.Hash
	serverHello *serverHelloMsg13

	hsSecret                       *keySchedule13
	clientHSSecret, serverHSSecret []byte
	master                         *keySchedule13
	clientAPSecret, serverAPSecret []byte

	peerKey any
	certReq *certificateRequestMsg13
	sentHRR bool
	state   connState
	// serverRPK and clientRPK: the server's EncryptedExtensions chose
	// raw public keys (RFC 7250 §4.2) for its Certificate or ours.
	serverRPK, clientRPK bool

	// The PSKs we offer (RFC 8446 §4.2.11), in the order of the
	// ClientHello's identities: a ticket (resume_dtls13.go) and the
	// external PSK; and whether the server selected one.
	psks    []offeredPSK13
	usedPSK bool
	// trPrefix is what the transcript holds before the ClientHello being
	// written: message_hash(ClientHello1) and the HelloRetryRequest after
	// one, for the PSK binder (§4.2.11.2).
	trPrefix []byte
}

// offers13 reports whether this client offers DTLS 1.3: enabled by
// MaxVersion, and with credentials the 1.3 handshake implements
// (certificates, raw public keys, an external PSK with an identity). Raw
// public keys, DTLS-SRTP and CIDs go in the 1.3 handshake as in 1.2:
// the ClientHello's extensions are shared, the server answers them in
// EncryptedExtensions (certificate types, use_srtp) or its ServerHello
// (connection_id).
func (c *Conn) offers13() bool {
	cfg := c.config
	return cfg.supports(VersionDTLS13) && (cfg.PSK == nil || len(cfg.PSKIdentity) > 0)
}

// enabledSuites13 is the 1.3 suite list: Config.CipherSuites' 1.3 ids in
// its order, or our default order without CCM_8 (RFC 9147 Appendix B.3
// asks for safeguards we leave to whoever names it).
func (c *Conn) enabledSuites13() []*cipherSuite13 { return c.config.suites13() }

func (cfg *Config) suites13() []*cipherSuite13 {
	var out []*cipherSuite13
	if ids := cfg.CipherSuites; len(ids) > 0 {
		for _, id := range ids {
			if s := cipherSuite13ByID(id); s != nil {
				out = append(out, s)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	for _, s := range cipherSuites13 {
		if !s.ccm8 {
			out = append(out, s)
		}
	}
	return out
}

// groups13 is our key exchange groups for 1.3 in preference order: the
// configured ones we implement for 1.3, the hybrids among them
// (X25519MLKEM768 first by default).
func (c *Conn) groups13() []tls.CurveID { return c.config.groups13() }

func (cfg *Config) groups13() []tls.CurveID {
	var out []tls.CurveID
	for _, id := range cfg.curvePreferences() {
		if keyShareSupported(id) {
			out = append(out, id)
		}
	}
	return out
}

// offer13 turns the 1.2 ClientHello into one that offers DTLS 1.3 too:
// supported_versions (1.3 first), the 1.3 suites before the 1.2 ones, the
// hybrid groups in supported_groups (X25519MLKEM768 by default), and one
// key share (firstShareGroup). One classical share keeps the ClientHello
// in one datagram (an X25519MLKEM768 share is 1216 bytes); a server
// preferring another group asks for it in a HelloRetryRequest, which its
// cookie exchange costs anyway (DTLS13-NOTES §3).
func (c *Conn) offer13(hello *clientHelloMsg, cached *ClientSessionState) (*clientHandshakeState13, error) {
	hs := &clientHandshakeState13{c: c}
	m := &clientHelloMsg13{clientHelloMsg: *hello}
	// post_handshake_auth (RFC 8446 §4.2.6) when we have a certificate
	// to offer (posthandshake_auth_dtls13.go).
	m.postHandshakeAuth = c.config.hasClientCertificate()
	m.supportedVersions = []uint16{VersionDTLS13}
	if c.config.supports(VersionDTLS12) {
		m.supportedVersions = append(m.supportedVersions, VersionDTLS12)
	}
	suites := make([]uint16, 0, len(hello.cipherSuites)+len(cipherSuites13))
	for _, s := range c.enabledSuites13() {
		suites = append(suites, s.id)
	}
	if c.config.supports(VersionDTLS12) {
		suites = append(suites, hello.cipherSuites...)
	}
	m.cipherSuites = suites
	groups := c.groups13()
	if len(groups) == 0 {
		return nil, errors.New("dtls: no DTLS 1.3 key exchange group in Config.CurvePreferences")
	}
	m.supportedCurves = groups
	if !c.config.supports(VersionDTLS12) {
		m.supportedPoints = nil
		m.extendedMasterSecret = false
		m.secureRenegotiationSupported = false
	}
	m.supportedSignatureAlgorithms = supportedSignatureAlgorithms
	// legacy_session_id stays what the 1.2 code put there: the cached
	// 1.2 session's id, which RFC 8446 §4.1.2 (kept by RFC 9147 §5.3)
	// has a client send, or empty. A 1.3 server does not echo it.
	if err := hs.newKeyShare(m, firstShareGroup(groups)); err != nil {
		return nil, err
	}
	// A ticket from an earlier 1.3 connection first (resumption,
	// psk_dhe_ke only: a resumed session keeps forward secrecy).
	hs.offerTicket(m, cached)
	hs.offerEarlyData(m)
	if c.config.PSK != nil {
		// An external PSK (RFC 8446 §4.2.11), SHA-256 as §4.2.11 has
		// it when nothing else is agreed; psk_dhe_ke first, for
		// forward secrecy. There is no hint in 1.3: PSK gets nil.
		psk, err := c.config.PSK(nil)
		if err != nil || len(psk) == 0 {
			return nil, fmt.Errorf("dtls: no PSK for DTLS 1.3: %v", err)
		}
		hs.psks = append(hs.psks, offeredPSK13{key: psk, hash: crypto.SHA256, external: true})
		m.pskModes = []uint8{pskModeDHE, pskModePlain}
		m.pskIdentities = append(m.pskIdentities, pskIdentity13{label: c.config.PSKIdentity})
		m.pskBinders = append(m.pskBinders, make([]byte, crypto.SHA256.Size()))
	}
	if len(m.pskModes) == 0 && c.config.ClientSessionCache != nil && !c.config.SessionTicketsDisabled {
		// RFC 8446 §4.2.9: the modes also say which tickets we can use;
		// a server sends none to a client that lists no mode (crypto/tls,
		// pion), so a client that would store one lists psk_dhe_ke.
		m.pskModes = []uint8{pskModeDHE}
	}
	hs.hello = m
	c.offered13 = true
	return hs, nil
}

// firstShareGroup is the group of the one key share in our first
// ClientHello: the first group whose share keeps the ClientHello in one
// datagram, so not a hybrid's 1216 or 1249 bytes when a classical group
// is configured too. wolfSSL refuses a fragmented first ClientHello
// (wolfSSL #9266), and no server reassembles one before checking the
// address; a server that prefers the hybrid asks for it in the
// HelloRetryRequest that its cookie costs anyway (DTLS13-NOTES §3).
func firstShareGroup(groups []tls.CurveID) tls.CurveID {
	for _, g := range groups {
		if !isHybrid(g) {
			return g
		}
	}
	return groups[0]
}

// newKeyShare makes our key share for group and puts it in the hello.
func (hs *clientHandshakeState13) newKeyShare(m *clientHelloMsg13, group tls.CurveID) error {
	priv, share, err := generateKeyShare13(hs.c.config.rand(), group)
	if err != nil {
		return err
	}
	hs.keyShare = priv
	m.hasKeyShare = true
	m.keyShares = []keyShare13{{group: group, data: share}}
	return nil
}

// writeHello queues the ClientHello (1.3 form) and keeps its body.
func (hs *clientHandshakeState13) writeHello(hs12 *handshakeState) error {
	c := hs.c
	body, err := hs.hello.marshal()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	if len(hs.hello.pskIdentities) > 0 {
		if body, err = hs.bindPSK(body); err != nil {
			return c.fail(alertInternalError, err)
		}
	}
	hs.chBody = body
	if hs.hello.earlyData {
		if err := hs.deriveEarlyKeys(body); err != nil {
			return c.fail(alertInternalError, err)
		}
	}
	t := c.hs.queueMessage(c.rl.writeCur, typeClientHello, body)
	if t == nil {
		return c.fail(alertInternalError, errors.New("dtls: ClientHello too long"))
	}
	hs12.transcript = append(hs12.transcript, t...)
	return nil
}

// bindPSK fills the PSK binders of the marshaled ClientHello body (RFC
// 8446 §4.2.11.2): each an HMAC under its PSK's binder key over the
// transcript up to the binders list, hs.trPrefix included. The binders
// keep their lengths, so the truncated body they cover does not change.
func (hs *clientHandshakeState13) bindPSK(body []byte) ([]byte, error) {
	truncated, err := hs.hello.truncatedForBinders(body)
	if err != nil {
		return nil, err
	}
	binders := make([][]byte, len(hs.psks))
	for i := range hs.psks {
		// The Early Secret and the binder's finished_key depend on
		// the PSK alone: made for the first ClientHello, kept for the
		// second (and the Early Secret for the key schedule).
		p := &hs.psks[i]
		if p.binderKey == nil {
			if p.early, err = newEarlySecret13(p.hash, p.key); err != nil {
				return nil, err
			}
			bk, err := p.early.binderKey(p.external)
			if err != nil {
				return nil, err
			}
			if p.binderKey, err = finishedKey13(p.hash, labelPrefixDTLS13, bk); err != nil {
				return nil, err
			}
		}
		binders[i] = finishedMAC13(p.hash, p.binderKey, binderTranscript13(p.hash, hs.trPrefix, truncated, len(body)))
	}
	hs.hello.pskBinders = binders
	return hs.hello.marshal()
}

// pskBinder13 is the binder of a PSK of hash h (external, or resumption)
// over prefix and a ClientHello truncated before its binders, whose whole
// body is bodyLen bytes: the TLS-style header in the transcript carries
// the full length (RFC 8446 §4.2.11.2).
func pskBinder13(h crypto.Hash, external bool, psk, prefix, truncated []byte, bodyLen int) ([]byte, error) {
	early, err := newEarlySecret13(h, psk)
	if err != nil {
		return nil, err
	}
	return pskBinderWith13(early, external, prefix, truncated, bodyLen)
}

// pskBinderWith13 is pskBinder13 with the PSK's Early Secret already
// extracted.
func pskBinderWith13(early *keySchedule13, external bool, prefix, truncated []byte, bodyLen int) ([]byte, error) {
	bk, err := early.binderKey(external)
	if err != nil {
		return nil, err
	}
	return finishedVerifyData13(early.hash, labelPrefixDTLS13, bk, binderTranscript13(early.hash, prefix, truncated, bodyLen))
}

// binderTranscript13 is the transcript hash a binder covers: prefix, then
// the ClientHello truncated before its binders under the TLS-style header
// of its whole body (bodyLen bytes).
func binderTranscript13(h crypto.Hash, prefix, truncated []byte, bodyLen int) []byte {
	th := h.New()
	th.Write(prefix)
	th.Write([]byte{byte(typeClientHello), byte(bodyLen >> 16), byte(bodyLen >> 8), byte(bodyLen)})
	th.Write(truncated)
	return th.Sum(nil)
}

func (hs *clientHandshakeState13) addTranscript(typ handshakeType, body []byte) {
	writeTranscriptMessage13(hs.transcript, typ, body)
}

func (hs *clientHandshakeState13) transcriptHash() []byte {
	return hs.transcript.Sum(nil)
}

// is13 reports whether a ServerHello-typed message selects DTLS 1.3 (a
// 1.3 ServerHello or a HelloRetryRequest).
func is13(msg inMessage) (*serverHelloMsg13, bool) {
	sh := new(serverHelloMsg13)
	if msg.typ != typeServerHello || !sh.unmarshal(msg.body) {
		return nil, false
	}
	return sh, sh.supportedVersion == VersionDTLS13
}

// handshake runs the rest of a 1.3 handshake from the server's first
// answer, a ServerHello or HelloRetryRequest that selected 1.3.
func (hs *clientHandshakeState13) handshake(ctx context.Context, msg inMessage, sh *serverHelloMsg13) error {
	c := hs.c
	hs.ctx = ctx
	c.vers = VersionDTLS13
	c.hs.enable13()
	if sh.isHelloRetryRequest() {
		if err := hs.processHRR(msg, sh); err != nil {
			return err
		}
		var err error
		if msg, err = c.readHandshake(ctx); err != nil {
			return err
		}
		var ok bool
		if sh, ok = is13(msg); !ok || sh.isHelloRetryRequest() {
			if msg.typ == typeServerHello && sh != nil && sh.isHelloRetryRequest() {
				// RFC 8446 §4.1.4: a second HelloRetryRequest is an
				// unexpected_message.
				return c.fail(alertUnexpectedMessage, errors.New("dtls: second HelloRetryRequest"))
			}
			return c.fail(alertIllegalParameter, errors.New("dtls: server changed its version after a HelloRetryRequest"))
		}
	}
	if err := hs.processServerHello(msg, sh); err != nil {
		return err
	}
	if err := hs.readServerParameters(); err != nil {
		return err
	}
	if err := hs.readServerCertificate(); err != nil {
		return err
	}
	if err := hs.readServerFinished(); err != nil {
		return err
	}
	if err := hs.sendClientFinished(); err != nil {
		return err
	}
	c.state = hs.state
	c.peerFinished = true
	return nil
}

// checkServerHelloFields checks what a ServerHello and a
// HelloRetryRequest share (RFC 8446 §4.1.3, RFC 9147 §5.3).
func (hs *clientHandshakeState13) checkServerHelloFields(sh *serverHelloMsg13) error {
	c := hs.c
	if sh.vers != VersionDTLS12 {
		return c.fail(alertIllegalParameter, fmt.Errorf("dtls: 1.3 ServerHello with legacy_version %#x", sh.vers))
	}
	if len(sh.sessionIDEcho) != 0 {
		// RFC 9147 §5.3: legacy_session_id_echo is empty in DTLS 1.3.
		return c.fail(alertIllegalParameter, errors.New("dtls: 1.3 ServerHello echoes a session id"))
	}
	if sh.compressionMethod != compressionNone {
		return c.fail(alertIllegalParameter, errors.New("dtls: server chose compression"))
	}
	suite := cipherSuite13ByID(sh.cipherSuite)
	if suite == nil || !slices.Contains(hs.hello.cipherSuites, sh.cipherSuite) {
		return c.fail(alertIllegalParameter, fmt.Errorf("dtls: server chose cipher suite %s, which we did not offer for 1.3", CipherSuiteName(sh.cipherSuite)))
	}
	if hs.suite != nil && hs.suite != suite {
		// RFC 8446 §4.1.4: the ServerHello's suite must be the HRR's.
		return c.fail(alertIllegalParameter, errors.New("dtls: server changed its cipher suite after a HelloRetryRequest"))
	}
	hs.suite = suite
	for _, e := range sh.extensions {
		switch e {
		case extensionSupportedVersions, extensionKeyShare:
		case extensionPreSharedKey:
			if sh.isHelloRetryRequest() || len(hs.hello.pskIdentities) == 0 {
				return c.fail(alertUnsupportedExtension, errors.New("dtls: server selected a PSK we did not offer"))
			}
		case extensionCookie:
			if !sh.isHelloRetryRequest() {
				return c.fail(alertUnsupportedExtension, errors.New("dtls: cookie in a ServerHello"))
			}
		case extensionConnectionID:
			// RFC 9147 §9 and RFC 9146 §3: the server's CID is in its
			// ServerHello, not in a HelloRetryRequest (RFC 8446 §4.1.4
			// lists what that may carry).
			if sh.isHelloRetryRequest() || !hs.hello.hasConnectionID {
				return c.fail(alertUnsupportedExtension, errors.New("dtls: connection_id we did not offer, or in a HelloRetryRequest"))
			}
		case extensionRRC:
			// RFC 9853 §3, §10.2: in the ServerHello, answering ours.
			if sh.isHelloRetryRequest() || !hs.hello.rrc {
				return c.fail(alertUnsupportedExtension, errors.New("dtls: rrc we did not offer, or in a HelloRetryRequest"))
			}
		default:
			return c.fail(alertUnsupportedExtension, fmt.Errorf("dtls: server sent extension %d in its hello, which we did not offer", e))
		}
	}
	return nil
}

// processHRR answers a HelloRetryRequest (RFC 8446 §4.1.4) with a second
// ClientHello: the same but for the requested key share and the cookie.
func (hs *clientHandshakeState13) processHRR(msg inMessage, hrr *serverHelloMsg13) error {
	c := hs.c
	c.early.answered()
	if err := hs.checkServerHelloFields(hrr); err != nil {
		return err
	}
	hs.transcript = hs.suite.hash.New()
	// The transcript starts with message_hash(ClientHello1) (§4.4.1).
	hs.trPrefix = messageHash13(hs.suite.hash, hs.chBody)
	hs.trPrefix = appendTranscriptMessage13(hs.trPrefix, typeServerHello, msg.body)
	hs.transcript.Write(hs.trPrefix)
	// RFC 8446 §4.1.4: the second ClientHello keeps only the PSKs whose
	// hash is that of the suite the HelloRetryRequest chose.
	hs.keepPSKsFor(hs.suite.hash)
	// RFC 8446 §4.1.2: "Early data is not permitted after a
	// HelloRetryRequest."
	hs.hello.earlyData = false
	changed := len(hrr.cookie) > 0
	hs.hello.cookieExt = slices.Clone(hrr.cookie)
	if g := hrr.selectedGroup; g != 0 {
		if !slices.Contains(hs.hello.supportedCurves, g) || g == hs.keyShare.group {
			// §4.1.4: a group we did not offer, or the one we sent a
			// share for, is an illegal_parameter.
			return c.fail(alertIllegalParameter, fmt.Errorf("dtls: HelloRetryRequest asks for group %v", g))
		}
		if err := hs.newKeyShare(hs.hello, g); err != nil {
			return c.fail(alertInternalError, err)
		}
		changed = true
	}
	if !changed {
		// §4.1.4: an HRR that would not change the ClientHello.
		return c.fail(alertIllegalParameter, errors.New("dtls: HelloRetryRequest changes nothing"))
	}
	hs.sentHRR = true
	var hs12 handshakeState
	if err := hs.writeHello(&hs12); err != nil {
		return err
	}
	hs.addTranscript(typeClientHello, hs.chBody)
	return c.sendFlight(false, "")
}

func (hs *clientHandshakeState13) processServerHello(msg inMessage, sh *serverHelloMsg13) error {
	c := hs.c
	c.early.answered()
	if err := hs.checkServerHelloFields(sh); err != nil {
		return err
	}
	if msg.epoch != 0 {
		return c.fail(alertUnexpectedMessage, errors.New("dtls: ServerHello not in epoch 0"))
	}
	var psk []byte
	var early *keySchedule13 // the selected PSK's, made for its binder
	if sh.hasSelectedIdentity {
		// RFC 8446 §4.2.11: an index into our identities, and the
		// suite's hash must be the PSK's.
		i := int(sh.selectedIdentity)
		if i >= len(hs.psks) || hs.suite.hash != hs.psks[i].hash {
			return c.fail(alertIllegalParameter, errors.New("dtls: server selected a PSK we did not offer, or with another hash"))
		}
		psk, hs.usedPSK, early = hs.psks[i].key, true, hs.psks[i].early
		if cs := hs.psks[i].session; cs != nil {
			hs.resumed(cs)
		} else {
			hs.state.pskIdentity = hs.hello.pskIdentities[i].label
		}
	}
	var shared []byte
	switch {
	case sh.serverShare.group == 0 && hs.usedPSK && slices.Contains(hs.hello.pskModes, pskModePlain):
		// psk_ke: no key exchange (§4.2.9).
	case sh.serverShare.group != hs.keyShare.group:
		return c.fail(alertIllegalParameter, fmt.Errorf("dtls: server key share for group %v, not the one we sent", sh.serverShare.group))
	default:
		var err error
		if shared, err = hs.keyShare.clientSharedSecret(sh.serverShare.data); err != nil {
			return c.fail(alertIllegalParameter, err)
		}
		hs.state.curveID = hs.keyShare.group
	}
	hs.serverHello = sh
	if sh.hasConnectionID {
		// RFC 9146 §3 for DTLS 1.3 (RFC 9147 §9): each side puts the
		// CID the other asked for in every record protected from here
		// on, the handshake epoch included; epoch-0 records carry none.
		c.rl.setConnectionIDs(hs.hello.connectionID, slices.Clone(sh.connectionID))
	}
	// RFC 9853 §3: the check runs only when both sides sent rrc, and
	// the server's goes with its connection_id.
	c.rrcNegotiated = hs.hello.rrc && sh.rrc && sh.hasConnectionID
	if hs.transcript == nil {
		hs.transcript = hs.suite.hash.New()
		hs.addTranscript(typeClientHello, hs.chBody)
	}
	hs.addTranscript(typeServerHello, msg.body)
	var err error
	if early == nil {
		if early, err = newEarlySecret13(hs.suite.hash, psk); err != nil {
			return c.fail(alertInternalError, err)
		}
	}
	if hs.hsSecret, err = early.handshakeSecret(shared); err != nil {
		return c.fail(alertInternalError, err)
	}
	th := hs.transcriptHash()
	if hs.clientHSSecret, err = hs.hsSecret.clientHandshakeTrafficSecret(th); err != nil {
		return c.fail(alertInternalError, err)
	}
	if hs.serverHSSecret, err = hs.hsSecret.serverHandshakeTrafficSecret(th); err != nil {
		return c.fail(alertInternalError, err)
	}
	c.logSecret13(keyLogClientHandshake, hs.hello.random, hs.clientHSSecret)
	c.logSecret13(keyLogServerHandshake, hs.hello.random, hs.serverHSSecret)
	wk, err := newEpochKeys13(hs.suite, 2, hs.clientHSSecret)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	rk, err := newEpochKeys13(hs.suite, 2, hs.serverHSSecret)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	hs.state.suite13 = hs.suite
	hs.state.clientRandom = hs.hello.random
	hs.state.serverRandom = sh.random
	hs.state.serverName = hs.hello.serverName
	c.installWriteEpoch13(wk)
	return c.installReadEpoch13(rk)
}

// readHandshake13 reads the next message, which must be protected by the
// handshake keys (epoch 2): RFC 8446 §5.1, a message spanning a key
// change is refused (wolfSSL CVE-2023-6937).
func (c *Conn) readHandshake13(ctx context.Context, epoch uint64) (inMessage, error) {
	msg, err := c.readHandshake(ctx)
	if err != nil {
		return msg, err
	}
	if msg.epoch != epoch {
		return msg, c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: %v in epoch %d, not %d", msg.typ, msg.epoch, epoch))
	}
	return msg, nil
}

// readServerParameters reads EncryptedExtensions and, if any, the
// CertificateRequest.
func (hs *clientHandshakeState13) readServerParameters() error {
	c := hs.c
	ee := new(encryptedExtensionsMsg13)
	msg, err := c.readHandshake13(hs.ctx, 2)
	if err != nil {
		return err
	}
	if err := c.parseHandshakeMsg(msg, typeEncryptedExtensions, ee.unmarshal); err != nil {
		return err
	}
	hs.addTranscript(msg.typ, msg.body)
	return hs.checkEncryptedExtensions(ee)
}

// checkEncryptedExtensions checks the server's EncryptedExtensions
// against our ClientHello and takes its answers: ALPN, use_srtp and the
// certificate types.
func (hs *clientHandshakeState13) checkEncryptedExtensions(ee *encryptedExtensionsMsg13) error {
	c := hs.c
	for _, e := range ee.extensions {
		switch e {
		case extensionServerName:
			if hs.hello.serverName == "" {
				return c.fail(alertUnsupportedExtension, errors.New("dtls: server acknowledged a server_name we did not send"))
			}
		case extensionALPN:
			if !slices.Contains(hs.hello.alpnProtocols, ee.alpnProtocol) {
				return c.fail(alertIllegalParameter, errors.New("dtls: server chose an unoffered ALPN protocol"))
			}
		case extensionEarlyData:
			if err := hs.acceptedEarlyData(ee); err != nil {
				return err
			}
		case extensionSupportedCurves:
			// RFC 8446 §4.2.7: the server's preference, for later
			// connections; informational.
		case extensionUseSRTP:
			// RFC 5764 §4.1.1 in 1.3: the answer is in
			// EncryptedExtensions (RFC 8446 §4.2's table).
			if len(hs.hello.srtpProtectionProfiles) == 0 {
				return c.fail(alertUnsupportedExtension, errors.New("dtls: server sent use_srtp, which we did not offer"))
			}
			if err := c.acceptServerSRTP(&hs.hello.clientHelloMsg, &hs.state, ee.srtpProtectionProfile, ee.srtpMKI); err != nil {
				return err
			}
		case extensionServerCertType, extensionClientCertType:
			// RFC 7250 §4.2 with RFC 8446 §4.2's table: both answers
			// are in EncryptedExtensions in 1.3.
			offered := hs.hello.serverCertTypes
			chosen := ee.serverCertType
			if e == extensionClientCertType {
				offered, chosen = hs.hello.clientCertTypes, ee.clientCertType
			}
			if len(offered) == 0 {
				return c.fail(alertUnsupportedExtension, fmt.Errorf("dtls: server sent certificate type extension %d, which we did not offer", e))
			}
			if !slices.Contains(offered, chosen) {
				return c.fail(alertIllegalParameter, errors.New("dtls: server chose a certificate type we did not offer"))
			}
		default:
			return c.fail(alertUnsupportedExtension, fmt.Errorf("dtls: server sent extension %d, which we did not offer", e))
		}
	}
	hs.state.alpn = ee.alpnProtocol
	hs.serverRPK = ee.hasServerCertType && ee.serverCertType == certificateTypeRawPublicKey
	hs.clientRPK = ee.hasClientCertType && ee.clientCertType == certificateTypeRawPublicKey
	if c.config.RawPublicKey && !hs.serverRPK && !hs.usedPSK {
		// Without server_certificate_type the server sends X.509 (RFC
		// 7250 §4.2), which a raw-key-only client refuses, as in 1.2.
		return c.fail(alertUnsupportedCertificate, errors.New("dtls: server does not authenticate with a raw public key (RFC 7250)"))
	}
	return nil
}

// readServerCertificate reads [CertificateRequest] Certificate
// CertificateVerify.
func (hs *clientHandshakeState13) readServerCertificate() error {
	c := hs.c
	if hs.usedPSK {
		// The PSK authenticates the server: no Certificate (RFC 8446
		// §4.4.2: sent only when authenticating with a certificate).
		return nil
	}
	msg, err := c.readHandshake13(hs.ctx, 2)
	if err != nil {
		return err
	}
	if msg.typ == typeCertificateRequest {
		cr := new(certificateRequestMsg13)
		if err := c.parseHandshakeMsg(msg, typeCertificateRequest, cr.unmarshal); err != nil {
			return err
		}
		if len(cr.context) != 0 {
			// RFC 8446 §4.3.2: empty in the handshake.
			return c.fail(alertIllegalParameter, errors.New("dtls: CertificateRequest in the handshake with a context"))
		}
		hs.addTranscript(msg.typ, msg.body)
		hs.certReq = cr
		if msg, err = c.readHandshake13(hs.ctx, 2); err != nil {
			return err
		}
	}
	cm := new(certificateMsg13)
	if err := c.parseHandshakeMsg(msg, typeCertificate, cm.unmarshal); err != nil {
		return err
	}
	hs.addTranscript(msg.typ, msg.body)
	if len(cm.context) != 0 {
		return c.fail(alertIllegalParameter, errors.New("dtls: server Certificate with a request context"))
	}
	raw := make([][]byte, len(cm.entries))
	for i, e := range cm.entries {
		raw[i] = e.data
	}
	if hs.serverRPK {
		hs.peerKey, err = c.verifyRawPublicKey13(raw, true, &hs.state)
	} else {
		err = hs.verifyServerCertificate(raw)
	}
	if err != nil {
		return err
	}
	cv := new(certificateVerifyMsg)
	if msg, err = c.readHandshake13(hs.ctx, 2); err != nil {
		return err
	}
	if err := c.parseHandshakeMsg(msg, typeCertificateVerify, cv.unmarshal); err != nil {
		return err
	}
	if !slices.Contains(hs.hello.supportedSignatureAlgorithms, cv.signatureAlgorithm) {
		return c.fail(alertIllegalParameter, fmt.Errorf("dtls: server signed with %v, which we did not offer", cv.signatureAlgorithm))
	}
	signed := signedMessage13(true, hs.transcriptHash())
	if err := verifyHandshakeSignature(VersionDTLS13, cv.signatureAlgorithm, hs.peerKey, signed, cv.signature); err != nil {
		return c.fail(alertDecryptError, err)
	}
	hs.state.sigScheme = cv.signatureAlgorithm
	hs.addTranscript(msg.typ, msg.body)
	return nil
}

// verifyServerCertificate checks the server's chain as the 1.2 client
// does, without 1.2's tie between the key and the suite.
func (hs *clientHandshakeState13) verifyServerCertificate(raw [][]byte) error {
	c := hs.c
	if len(raw) == 0 {
		return c.fail(alertDecodeError, errors.New("dtls: server sent no certificate"))
	}
	h12 := handshakeState{c: c}
	certs, err := h12.parsePeerChain(raw, "server")
	if err != nil {
		return err
	}
	var chains [][]*x509.Certificate
	if !c.config.InsecureSkipVerify {
		if chains, err = verifyChain(certs, c.config.RootCAs, c.config.ServerName, false, c.config.time()); err != nil {
			return c.fail(alertBadCertificate, &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err})
		}
	}
	if err := h12.acceptPeerChain(raw, certs, chains); err != nil {
		return err
	}
	hs.peerKey = h12.peerKey
	hs.state.peerCertificates = certs
	hs.state.verifiedChains = chains
	return nil
}

// readServerFinished checks the server's Finished and derives the
// application secrets.
func (hs *clientHandshakeState13) readServerFinished() error {
	c := hs.c
	fin := new(finishedMsg)
	msg, err := c.readHandshake13(hs.ctx, 2)
	if err != nil {
		return err
	}
	if err := c.parseHandshakeMsg(msg, typeFinished, fin.unmarshal); err != nil {
		return err
	}
	if !verifyFinished13(hs.suite.hash, labelPrefixDTLS13, hs.serverHSSecret, hs.transcriptHash(), fin.verifyData) {
		return c.fail(alertDecryptError, errors.New("dtls: server's Finished is wrong"))
	}
	hs.addTranscript(msg.typ, msg.body)
	if typ, _, ok := c.hs.peekMessage(); ok {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: %v after the server's Finished", typ))
	}
	hs.master, hs.clientAPSecret, hs.serverAPSecret, hs.state.exporterSecret, err =
		c.applicationSecrets13(hs.hsSecret, hs.transcriptHash(), hs.hello.random)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	hs.state.ourSecret, hs.state.peerSecret = hs.clientAPSecret, hs.serverAPSecret
	rk, err := newEpochKeys13(hs.suite, 3, hs.serverAPSecret)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	return c.installReadEpoch13(rk)
}

// sendClientFinished sends [Certificate CertificateVerify] Finished in
// epoch 2 and moves the write side to epoch 3. The flight is
// retransmitted until the server ACKs it.
func (hs *clientHandshakeState13) sendClientFinished() error {
	c := hs.c
	if hs.certReq != nil {
		if err := hs.sendClientCertificate(); err != nil {
			return err
		}
	}
	if err := c.verifyConnection(&hs.state); err != nil {
		return err
	}
	vd, err := finishedVerifyData13(hs.suite.hash, labelPrefixDTLS13, hs.clientHSSecret, hs.transcriptHash())
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	if err := hs.writeHandshake(&finishedMsg{verifyData: vd}); err != nil {
		return err
	}
	if err := c.keepTranscript13(hs.hello.postHandshakeAuth, hs.transcript); err != nil {
		return err
	}
	// RFC 8446 §7.1: the resumption master secret covers the transcript
	// through the client's Finished; tickets derive their PSKs from it.
	// A client that keeps no tickets (handleNewSessionTicket13) does
	// not derive it.
	if c.config.ClientSessionCache != nil && !c.config.SessionTicketsDisabled {
		if hs.state.resumptionSecret, err = hs.master.resumptionMasterSecret(hs.transcriptHash()); err != nil {
			return c.fail(alertInternalError, err)
		}
	}
	if err := c.sendFlight(false, ""); err != nil {
		return err
	}
	wk, err := newEpochKeys13(hs.suite, 3, hs.clientAPSecret)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	c.installWriteEpoch13(wk)
	return nil
}

// writeHandshake queues a message in the current write epoch and adds it
// to the 1.3 transcript.
func (hs *clientHandshakeState13) writeHandshake(msg handshakeMessage) error {
	return writeHandshake13(hs.c, hs.transcript, msg)
}

func writeHandshake13(c *Conn, transcript hash.Hash, msg handshakeMessage) error {
	body, err := msg.marshal()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	if c.hs.queueMessage(c.rl.writeCur, msg.messageType(), body) == nil {
		return c.fail(alertInternalError, errors.New("dtls: handshake message too long"))
	}
	writeTranscriptMessage13(transcript, msg.messageType(), body)
	return nil
}

// sendClientCertificate answers a CertificateRequest (RFC 8446 §4.4.2):
// our certificate and CertificateVerify, or an empty Certificate when we
// have none that fits.
func (hs *clientHandshakeState13) sendClientCertificate() error {
	c := hs.c
	cert, err := c.clientCertificate(&CertificateRequestInfo{
		AcceptableCAs:    hs.certReq.certificateAuthorities,
		SignatureSchemes: hs.certReq.supportedSignatureAlgorithms,
		Version:          VersionDTLS13,
		ctx:              hs.ctx,
	}, hs.clientRPK)
	if err != nil {
		return err
	}
	cm, err := ourCertificateMsg13(cert, hs.clientRPK)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	if err := hs.writeHandshake(cm); err != nil {
		return err
	}
	if cert == nil {
		return nil
	}
	_, err = signCertificateVerify13(c, hs.transcript, cert, hs.certReq.supportedSignatureAlgorithms, false)
	return err
}

// signCertificateVerify13 queues our CertificateVerify over the
// transcript so far (RFC 8446 §4.4.3).
func signCertificateVerify13(c *Conn, transcript hash.Hash, cert *tls.Certificate, peer []tls.SignatureScheme, server bool) (tls.SignatureScheme, error) {
	signer, err := certificateSigner(cert)
	if err != nil {
		return 0, c.fail(alertInternalError, err)
	}
	scheme, err := selectSignatureScheme(VersionDTLS13, signer, peer)
	if err != nil {
		return 0, c.fail(alertHandshakeFailure, err)
	}
	sig, err := signHandshake(c.config.rand(), signer, scheme, signedMessage13(server, transcript.Sum(nil)))
	if err != nil {
		return 0, c.fail(alertInternalError, err)
	}
	return scheme, writeHandshake13(c, transcript, &certificateVerifyMsg{signatureAlgorithm: scheme, signature: sig})
}

// downgradeProtected reports whether random carries a downgrade sentinel.
func downgradeProtected(random []byte) bool {
	tail := random[len(random)-len(downgradeCanaryTLS12):]
	return bytes.Equal(tail, downgradeCanaryTLS12) || bytes.Equal(tail, downgradeCanaryTLS11)
}

// applicationSecrets13 derives the master secret and, from the transcript
// hash th through the server's Finished, the client and server
// application traffic secrets and the exporter master secret (RFC 8446
// §7.1), and writes the three secrets to the key log. Client and server
// share it; only which secret is "ours" differs.
func (c *Conn) applicationSecrets13(hsSecret *keySchedule13, th, random []byte) (master *keySchedule13, clientAP, serverAP, exporter []byte, err error) {
	if master, err = hsSecret.masterSecret(); err != nil {
		return nil, nil, nil, nil, err
	}
	if clientAP, err = master.clientApplicationTrafficSecret(th); err != nil {
		return nil, nil, nil, nil, err
	}
	if serverAP, err = master.serverApplicationTrafficSecret(th); err != nil {
		return nil, nil, nil, nil, err
	}
	if exporter, err = master.exporterMasterSecret(th); err != nil {
		return nil, nil, nil, nil, err
	}
	c.logSecret13(keyLogClientTraffic, random, clientAP)
	c.logSecret13(keyLogServerTraffic, random, serverAP)
	c.logSecret13(keyLogExporter, random, exporter)
	return master, clientAP, serverAP, exporter, nil
}
