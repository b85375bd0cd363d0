package dtls

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
)

// The server's DTLS 1.3 handshake (RFC 9147 §5, RFC 8446 §4), entered
// from serverHandshake when select13 chose 1.3 for the ClientHello.

// serverHandshakeState13 is one DTLS 1.3 handshake's server state.
type serverHandshakeState13 struct {
	c      *Conn
	ctx    context.Context
	hello  *clientHelloMsg13
	suite  *cipherSuite13
	group  tls.CurveID
	cert   *tls.Certificate
	shared []byte

	transcript     hash.Hash
	hsSecret       *keySchedule13
	clientHSSecret []byte
	serverHSSecret []byte
	master         *keySchedule13
	clientAPSecret []byte
	serverAPSecret []byte
	requestCert    bool
	state          connState

	// psk is the external PSK the client's binder proved (RFC 8446
	// §4.2.11), or nil; trPrefix is the transcript before the
	// ClientHello it binds (message_hash and the HelloRetryRequest).
	psk      []byte
	trPrefix []byte
	// pskIndex is the identity of psk in the ClientHello; session the
	// ticket's session when psk is a resumption PSK (resume_dtls13.go).
	pskIndex int
	session  *sessionState
	// early is psk's Early Secret, extracted to check its binder.
	early *keySchedule13

	// ee collects the EncryptedExtensions answers chosen with the
	// ServerHello: certificate types (RFC 7250) and use_srtp (RFC 5764).
	ee encryptedExtensionsMsg13
	// serverRPK and clientRPK: raw public keys (RFC 7250) for our
	// Certificate and for the client's.
	serverRPK, clientRPK bool
}

// select13 reports whether a ClientHello gets DTLS 1.3 from this server,
// the one place the server decides the version (RFC 8446 §4.2.1: the
// highest version in supported_versions that we support; legacy_version
// is ignored then). A ClientHello with a legacy_cookie answered a
// HelloVerifyRequest, which only a 1.2 server sends, and does not get 1.3
// (RFC 9147 §5.3 has a 1.3 server refuse a non-empty legacy_cookie).
// A server needs a certificate (or, with RawPublicKey, a key) or an
// external PSK for 1.3; raw public keys, use_srtp and CIDs are answered
// as in 1.2.
func (c *Conn) select13(hello *clientHelloMsg) (*clientHelloMsg13, bool) {
	cfg := c.config
	if !cfg.serves13() || len(hello.cookie) != 0 {
		return nil, false
	}
	ch := new(clientHelloMsg13)
	if !ch.unmarshal(hello.original) || !slices.Contains(ch.supportedVersions, VersionDTLS13) {
		return nil, false
	}
	// As the Listener's gate (check13) decides: a ClientHello with no
	// 1.3 suite or group in common with us gets 1.2, the best version
	// that can succeed.
	if _, ok := hrrParamsFor(cfg, ch); !ok {
		return nil, false
	}
	return ch, true
}

// serverHandshake13 runs a DTLS 1.3 handshake from the first ClientHello.
func (c *Conn) serverHandshake13(ctx context.Context, ch *clientHelloMsg13) error {
	hs := &serverHandshakeState13{c: c, ctx: ctx, hello: ch}
	c.markEarlyData(ch)
	c.vers = VersionDTLS13
	c.hs.enable13()
	if err := hs.processClientHello(); err != nil {
		return err
	}
	if err := hs.sendServerFlight(); err != nil {
		return err
	}
	if err := hs.readClientFlight(); err != nil {
		return err
	}
	c.state = hs.state
	c.peerFinished = true
	// RFC 9147 §5.8.3, §7: the client's last flight gets an explicit
	// ACK; its epoch-2 keys stay installed to ACK it again if the client
	// retransmits (handlePostHandshake13).
	c.hs.finalFlight()
	if err := c.sendACK(); err != nil {
		return err
	}
	// RFC 8446 §4.2.9: no ticket the client's modes do not allow (it
	// listed none: it keeps no tickets).
	if len(hs.hello.pskModes) == 0 {
		return nil
	}
	return c.sendSessionTicket13()
}

// processClientHello chooses suite, group and certificate, and runs the
// HelloRetryRequest when the client's key share does not fit or its
// address is not yet proven.
func (hs *serverHandshakeState13) processClientHello() error {
	c := hs.c
	ch := hs.hello
	if !slices.Equal(ch.compressionMethods, []uint8{compressionNone}) {
		return c.fail(alertIllegalParameter, errors.New("dtls: 1.3 ClientHello with compression"))
	}
	if err := hs.selectALPN(); err != nil {
		return err
	}
	var stateless *hrrParams
	if len(ch.cookieExt) > 0 && c.listener != nil {
		// The second ClientHello after the Listener's stateless
		// HelloRetryRequest: the cookie, which the Listener verified
		// before it made this Conn (c.admitted13), says what that
		// HelloRetryRequest chose. This is the ClientHello the
		// Listener checked; the comparison only makes sure of it.
		adm := c.admitted13
		if adm == nil || subtle.ConstantTimeCompare(adm.cookie, ch.cookieExt) != 1 {
			return c.fail(alertIllegalParameter, errors.New("dtls: ClientHello with a cookie that does not verify"))
		}
		stateless = &adm.params
	}
	hs.suite = selectSuite13(c.config, ch, stateless)
	if hs.suite == nil {
		return c.fail(alertHandshakeFailure, errors.New("dtls: no DTLS 1.3 cipher suite supported by both client and server"))
	}
	if ch.pskNotLast {
		return c.fail(alertIllegalParameter, errors.New("dtls: pre_shared_key is not the last extension"))
	}
	// Group selection (keyshare_dtls13.go has the policy and its RFC
	// basis): want is our most preferred group the client supports,
	// asked for when a HelloRetryRequest goes out; hs.group and share
	// are the client's share we prefer most, taken when none does.
	want := preferredGroup13(c.config, ch)
	var share []byte
	hs.group, share = offeredShare13(c.config, ch)
	if want == 0 {
		return c.fail(alertHandshakeFailure, errors.New("dtls: no key exchange group supported by both client and server"))
	}
	hs.transcript = hs.suite.hash.New()
	// A ClientHello whose early data we will accept needs no cookie
	// exchange (early_data_dtls13.go), and must not get one: early data
	// is not permitted after a HelloRetryRequest.
	zeroRTT := stateless == nil && share != nil && hs.earlyDataCandidate()
	if zeroRTT {
		c.startAddrBudget() // until the client's address is proven
	}
	switch {
	case stateless != nil:
		// After a Listener's stateless HelloRetryRequest.
		if err := hs.continueAfterHRR(stateless); err != nil {
			return err
		}
		hs.group = stateless.group
		if share = keyShareFor(ch, hs.group); share == nil || stateless.askedGroup && len(ch.keyShares) != 1 {
			// RFC 8446 §4.1.2: the second ClientHello carries the
			// share the HelloRetryRequest asked for (and only it).
			return c.fail(alertIllegalParameter, errors.New("dtls: second ClientHello without the requested key share"))
		}
	case !c.config.InsecureSkipHelloVerify && c.listener == nil && !zeroRTT || share == nil:
		// The address check (a Conn made by Server) and the key share:
		// one HelloRetryRequest for both (RFC 9147 §5.1). When the
		// cookie costs a HelloRetryRequest anyway, it also asks for our
		// preferred group if the client's share is for another, so that
		// X25519MLKEM768 costs no extra round trip (DTLS13-NOTES §3).
		// Without a usable share (share == nil) the HelloRetryRequest
		// is the only way on (RFC 8446 §4.2.8).
		ask := hs.group != want
		hs.group = want
		if err := hs.helloRetry(ask); err != nil {
			return err
		}
		ch = hs.hello
		if share = keyShareFor(ch, hs.group); share == nil || ask && len(ch.keyShares) != 1 {
			return c.fail(alertIllegalParameter, errors.New("dtls: second ClientHello without the requested key share"))
		}
	default:
		// No HelloRetryRequest (cookie off, or 0-RTT): the client's
		// share, and our preferences for its next connections when we
		// would have chosen another group (RFC 8446 §4.2.7).
		if hs.group != want {
			hs.ee.supportedGroups = c.groups13()
		}
		writeTranscriptMessage13(hs.transcript, typeClientHello, ch.original)
	}
	// The address is proven (or the Listener proved it): now the PSK
	// binder and the key exchange, ML-KEM included, may cost us work.
	dhe := true
	if err := hs.acceptPSK(); err != nil {
		return err
	}
	if err := hs.acceptEarlyData(zeroRTT); err != nil {
		return err
	}
	if hs.session != nil {
		hs.resumed()
	} else if hs.psk != nil {
		hs.state.pskIdentity = hs.hello.pskIdentities[hs.pskIndex].label
	}
	if hs.psk != nil {
		// psk_dhe_ke when the client allows it (forward secrecy),
		// else psk_ke (RFC 8446 §4.2.9).
		dhe = slices.Contains(hs.hello.pskModes, pskModeDHE)
	} else {
		cert, err := hs.certificate()
		if err != nil {
			return err
		}
		hs.cert = cert
		if err := hs.selectCertificateTypes(); err != nil {
			return err
		}
	}
	// use_srtp as in 1.2 (RFC 5764 §4.1.1), answered in
	// EncryptedExtensions.
	if p, mki, ok := c.config.selectSRTP(&ch.clientHelloMsg); ok {
		hs.ee.hasSRTP, hs.ee.srtpProtectionProfile, hs.ee.srtpMKI = true, p, mki
		hs.state.srtpProfile, hs.state.srtpMKI = p, mki
	}
	sh := &serverHelloMsg13{
		vers:                VersionDTLS12,
		random:              make([]byte, randomLen),
		cipherSuite:         hs.suite.id,
		supportedVersion:    VersionDTLS13,
		hasSelectedIdentity: hs.psk != nil,
		selectedIdentity:    uint16(hs.pskIndex),
	}
	if dhe {
		if ops := c.cryptoOps(); ops != nil {
			ops.keyExchanges.Add(1)
		}
		serverShare, shared, err := serverKeyShare13(c.config.rand(), hs.group, share)
		if err != nil {
			return c.fail(alertIllegalParameter, err)
		}
		hs.shared = shared
		sh.serverShare = keyShare13{group: hs.group, data: serverShare}
		hs.state.curveID = hs.group
	}
	if _, err := io.ReadFull(c.config.rand(), sh.random); err != nil {
		return c.fail(alertInternalError, err)
	}
	if ch.hasConnectionID && c.config.ConnectionIDGenerator != nil {
		// RFC 9146 §3, RFC 9147 §9: our CID in the ServerHello, and
		// from the handshake epoch on each side sends the other's. The
		// ServerHello itself goes out in epoch 0, without one. Under a
		// Listener the CID is registered for routing here, after the
		// cookie: no CID for an unproven address.
		cid, err := c.answerConnectionID(&ch.clientHelloMsg)
		if err != nil {
			return err
		}
		sh.hasConnectionID, sh.connectionID, sh.rrc = true, cid, c.rrcNegotiated
	}
	if err := writeHandshake13(c, hs.transcript, sh); err != nil {
		return err
	}
	hs.state.suite13 = hs.suite
	hs.state.clientRandom = ch.random
	hs.state.serverRandom = sh.random
	hs.state.serverName = ch.serverName
	return hs.deriveHandshakeKeys()
}

// helloRetry sends a HelloRetryRequest, with a cookie from the hello
// gate (hello_gate.go, in the format a Listener's has: cookie_dtls13.go)
// when the address is to be checked and selected_group when askGroup,
// and reads the second ClientHello, which must return the cookie.
func (hs *serverHandshakeState13) helloRetry(askGroup bool) error {
	c := hs.c
	ch1 := hs.hello
	addr := addrPort(c.io.remoteAddr())
	gate, err := c.helloGate()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	p := hrrParams{suite: hs.suite.id, group: hs.group, askedGroup: askGroup}
	p.chHash = clientHelloHash13(nil, hs.suite, ch1.original)
	hrr := helloRetryRequest13(p, gate.helloRetryCookie(c.config.time(), addr, p, &ch1.clientHelloMsg))
	// RFC 8446 §4.4.1: the transcript restarts with message_hash of the
	// first ClientHello.
	hs.trPrefix = appendTranscriptMessage13(nil, typeMessageHash, p.chHash)
	hs.transcript.Write(hs.trPrefix)
	hrrBody, err := hrr.marshal()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	hs.trPrefix = appendTranscriptMessage13(hs.trPrefix, typeServerHello, hrrBody)
	if err := writeHandshake13(c, hs.transcript, hrr); err != nil {
		return err
	}
	// Not retransmitted on a timer: resent when the first ClientHello
	// repeats, as a stateless server would.
	c.hs.finalFlight()
	if err := c.sendFlight(false, ""); err != nil {
		return err
	}
	ch2 := new(clientHelloMsg13)
	msg, err := c.readHandshakeMsg(hs.ctx, typeClientHello, ch2.unmarshal)
	if err != nil {
		return err
	}
	if len(hrr.cookie) > 0 {
		// RFC 8446 §4.2.2 / RFC 9147 §5.1: a cookie that does not
		// verify, or one of another HelloRetryRequest.
		got, ok := gate.open13(c.config.time(), addr, &ch2.clientHelloMsg, ch2.cookieExt)
		if !ok || got.suite != p.suite || got.group != p.group || got.askedGroup != p.askedGroup ||
			subtle.ConstantTimeCompare(got.chHash, p.chHash) != 1 {
			return c.fail(alertIllegalParameter, errors.New("dtls: second ClientHello does not return our cookie"))
		}
	}
	if !slices.Equal(ch2.cipherSuites, ch1.cipherSuites) || !slices.Equal(ch2.supportedVersions, ch1.supportedVersions) ||
		string(ch2.random) != string(ch1.random) {
		return c.fail(alertIllegalParameter, errors.New("dtls: second ClientHello changed more than the HelloRetryRequest asked"))
	}
	writeTranscriptMessage13(hs.transcript, typeClientHello, msg.body)
	hs.hello = ch2
	return nil
}

// selectSuite13 is our first 1.3 suite that the client offers (the one
// a stateless HelloRetryRequest chose, after one); when the client offers
// an external PSK we can use, a SHA-256 suite, the PSK's hash (RFC 8446
// §4.2.11), if there is one.
func selectSuite13(cfg *Config, ch *clientHelloMsg13, stateless *hrrParams) *cipherSuite13 {
	var first *cipherSuite13
	for _, s := range cfg.suites13() {
		if !slices.Contains(ch.cipherSuites, s.id) || stateless != nil && s.id != stateless.suite {
			continue
		}
		if cfg.PSK == nil || len(ch.pskIdentities) == 0 || s.hash == crypto.SHA256 {
			return s
		}
		if first == nil {
			first = s
		}
	}
	return first
}

// acceptPSK takes the first PSK the client offers that we can use: a
// ticket of ours that may resume here (resume_dtls13.go), or an identity
// Config.PSK knows, either of the suite's hash (RFC 8446 §4.2.11) and
// with a mode the client allows. Its binder must then verify (RFC 8446
// §4.2.11.2: otherwise the server "MUST abort the handshake";
// decrypt_error). A PSK we cannot use is declined: the handshake goes on
// with the next, or with a certificate if we have one.
func (hs *serverHandshakeState13) acceptPSK() error {
	c := hs.c
	ch := hs.hello
	if len(ch.pskIdentities) > 0 && len(ch.pskModes) == 0 {
		// RFC 8446 §4.2.9: "If clients offer "pre_shared_key" without a
		// "psk_key_exchange_modes" extension, servers MUST abort the
		// handshake."
		return c.fail(alertMissingExtension, errors.New("dtls: pre_shared_key without psk_key_exchange_modes"))
	}
	if len(ch.pskIdentities) == 0 || !slices.Contains(ch.pskModes, pskModeDHE) && !slices.Contains(ch.pskModes, pskModePlain) {
		return nil
	}
	var unknown []byte // an identity Config.PSK does not know
	for i, id := range ch.pskIdentities {
		var key []byte
		var session *sessionState
		external := false
		if session = hs.ticketSession(id); session != nil {
			key = session.masterSecret
		} else if c.config.PSK != nil && hs.suite.hash == crypto.SHA256 {
			k, err := c.config.PSK(id.label)
			if err != nil || len(k) == 0 {
				unknown = id.label
				continue
			}
			key, external = k, true
		} else {
			continue
		}
		truncated, err := ch.truncatedForBinders(ch.original)
		if err != nil {
			return c.fail(alertDecodeError, err)
		}
		if ops := c.cryptoOps(); ops != nil {
			ops.binders.Add(1)
		}
		early, err := newEarlySecret13(hs.suite.hash, key)
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		want, err := pskBinderWith13(early, external, hs.trPrefix, truncated, len(ch.original))
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		if !hmac.Equal(want, ch.pskBinders[i]) {
			return c.fail(alertDecryptError, errors.New("dtls: the client's PSK binder does not verify (wrong PSK?)"))
		}
		hs.psk, hs.pskIndex, hs.session, hs.early = key, i, session, early
		return nil
	}
	if unknown != nil && len(c.config.Certificates) == 0 && c.config.GetCertificate == nil {
		// No certificate to fall back on: the PSK handshake fails.
		// RFC 8446 §6.2 makes unknown_psk_identity optional ("servers
		// MAY instead choose to send a decrypt_error alert"): by
		// default the client gets the decrypt_error of a wrong binder
		// and cannot tell which identities exist (as RFC 4279 §2 has
		// it for 1.2); the error names the identity.
		err := fmt.Errorf("%w %q", ErrUnknownPSKIdentity, unknown)
		c.state.pskIdentity = slices.Clone(unknown) // for HandshakeOutcome
		if c.config.InsecureUnknownPSKIdentityAlert {
			return c.fail(alertUnknownPSKIdentity, err)
		}
		c.unknownPSKIdentity = err
		return c.fail(alertDecryptError, errors.New("dtls: the client offered no PSK we know"))
	}
	return nil
}

// keyShareFor returns the client's key share for group, or nil.
func keyShareFor(ch *clientHelloMsg13, group tls.CurveID) []byte {
	for _, ks := range ch.keyShares {
		if ks.group == group {
			return ks.data
		}
	}
	return nil
}

// continueAfterHRR starts the transcript of a handshake whose
// HelloRetryRequest a Listener sent statelessly (RFC 8446 §4.4.1):
// message_hash with the first ClientHello's hash from the cookie, the
// HelloRetryRequest rebuilt from the cookie's fields, and the second
// ClientHello.
func (hs *serverHandshakeState13) continueAfterHRR(p *hrrParams) error {
	c := hs.c
	if len(p.chHash) != hs.suite.hash.Size() {
		return c.fail(alertIllegalParameter, errors.New("dtls: cookie of another cipher suite"))
	}
	body, err := helloRetryRequest13(*p, hs.hello.cookieExt).marshal()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	hs.trPrefix = appendTranscriptMessage13(appendTranscriptMessage13(nil, typeMessageHash, p.chHash), typeServerHello, body)
	hs.transcript.Write(hs.trPrefix)
	writeTranscriptMessage13(hs.transcript, typeClientHello, hs.hello.original)
	return nil
}

// certificate picks our certificate for the ClientHello: GetCertificate,
// or the first of Config.Certificates with a 1.3 signature scheme the
// client accepts.
func (hs *serverHandshakeState13) certificate() (*tls.Certificate, error) {
	c := hs.c
	ch := hs.hello
	if f := c.config.GetCertificate; f != nil {
		cert, err := f(&ClientHelloInfo{
			CipherSuites:      ch.cipherSuites,
			ServerName:        ch.serverName,
			SupportedCurves:   ch.supportedCurves,
			SignatureSchemes:  ch.supportedSignatureAlgorithms,
			SupportedProtos:   ch.alpnProtocols,
			SupportedVersions: ch.supportedVersions,
		})
		if err != nil {
			return nil, c.fail(alertInternalError, err)
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
		if _, err := selectSignatureScheme(VersionDTLS13, signer, ch.supportedSignatureAlgorithms); err == nil {
			return cert, nil
		}
	}
	return nil, c.fail(alertHandshakeFailure, errors.New("dtls: no certificate with a signature scheme the client supports"))
}

// selectCertificateTypes answers the ClientHello's certificate type
// extensions (RFC 7250 §4.2) as the 1.2 server does, in
// EncryptedExtensions: raw public keys with a client that offers them,
// X.509 with one that names only X.509. A server without RawPublicKey
// ignores them, as one that predates RFC 7250 would.
func (hs *serverHandshakeState13) selectCertificateTypes() error {
	if !hs.c.config.RawPublicKey {
		return nil
	}
	a, err := answerCertificateTypes(hs.c, &hs.hello.clientHelloMsg, hs.cert)
	if err != nil {
		return err
	}
	hs.serverRPK, hs.clientRPK = a.serverRPK, a.clientRPK
	ee := &hs.ee
	ee.hasServerCertType, ee.serverCertType = a.hasServer, a.server
	ee.hasClientCertType, ee.clientCertType = a.hasClient, a.client
	return nil
}

// deriveHandshakeKeys derives the handshake traffic secrets from the
// transcript through ServerHello and installs epoch 2 both ways: our
// ServerHello was queued in epoch 0 before the switch.
func (hs *serverHandshakeState13) deriveHandshakeKeys() error {
	c := hs.c
	early, err := hs.early, error(nil)
	if early == nil {
		if early, err = newEarlySecret13(hs.suite.hash, hs.psk); err != nil {
			return c.fail(alertInternalError, err)
		}
	}
	if hs.hsSecret, err = early.handshakeSecret(hs.shared); err != nil {
		return c.fail(alertInternalError, err)
	}
	th := hs.transcript.Sum(nil)
	if hs.clientHSSecret, err = hs.hsSecret.clientHandshakeTrafficSecret(th); err != nil {
		return c.fail(alertInternalError, err)
	}
	if hs.serverHSSecret, err = hs.hsSecret.serverHandshakeTrafficSecret(th); err != nil {
		return c.fail(alertInternalError, err)
	}
	c.logSecret13(keyLogClientHandshake, hs.hello.random, hs.clientHSSecret)
	c.logSecret13(keyLogServerHandshake, hs.hello.random, hs.serverHSSecret)
	wk, err := newEpochKeys13(hs.suite, 2, hs.serverHSSecret)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	rk, err := newEpochKeys13(hs.suite, 2, hs.clientHSSecret)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	c.installWriteEpoch13(wk)
	return c.installReadEpoch13(rk)
}

// selectALPN chooses the application protocol (RFC 7301 §3.2) before any
// key is derived, so that a client with none in common is told in the
// clear, which it can read: a no_application_protocol alert under
// handshake keys would reach a client that has not seen the ServerHello
// yet, which drops it and times out.
func (hs *serverHandshakeState13) selectALPN() error {
	alpn, ok := alpnFor(hs.c.config, hs.hello)
	if !ok {
		return hs.c.fail(alertNoApplicationProtocol, errors.New("dtls: client offered no ALPN protocol the server supports"))
	}
	hs.state.alpn = alpn
	return nil
}

// sendServerFlight sends EncryptedExtensions, [CertificateRequest],
// Certificate, CertificateVerify and Finished in epoch 2, behind the
// ServerHello, and derives the application secrets.
func (hs *serverHandshakeState13) sendServerFlight() error {
	c := hs.c
	ch := hs.hello
	ee := &hs.ee
	ee.alpnProtocol = hs.state.alpn // chosen by selectALPN
	ee.earlyData = hs.state.earlyData
	// RFC 6066 §3, as in 1.2: acknowledged when the name chose the
	// certificate.
	ee.serverNameAck = ch.serverName != "" && c.config.GetCertificate != nil
	if err := writeHandshake13(c, hs.transcript, ee); err != nil {
		return err
	}
	if hs.psk != nil {
		// The PSK authenticates both sides: no certificates, and no
		// CertificateRequest (RFC 8446 §4.3.2).
		return hs.sendServerFinished()
	}
	if c.config.ClientAuth >= tls.RequestClientCert {
		hs.requestCert = true
		cr := &certificateRequestMsg13{supportedSignatureAlgorithms: supportedSignatureAlgorithms13()}
		if err := writeHandshake13(c, hs.transcript, cr); err != nil {
			return err
		}
	}
	cm, err := ourCertificateMsg13(hs.cert, hs.serverRPK)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	if err := writeHandshake13(c, hs.transcript, cm); err != nil {
		return err
	}
	if ops := c.cryptoOps(); ops != nil {
		ops.signatures.Add(1)
	}
	// ConnectionState.SignatureScheme: on a server, the scheme it
	// signed with, as in 1.2 (its ServerKeyExchange).
	scheme, err := signCertificateVerify13(c, hs.transcript, hs.cert, ch.supportedSignatureAlgorithms, true)
	hs.state.sigScheme = scheme
	if err != nil {
		return err
	}
	return hs.sendServerFinished()
}

// sendServerFinished sends our Finished with the flight, and derives the
// application secrets.
func (hs *serverHandshakeState13) sendServerFinished() error {
	c := hs.c
	vd, err := finishedVerifyData13(hs.suite.hash, labelPrefixDTLS13, hs.serverHSSecret, hs.transcript.Sum(nil))
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	if err := writeHandshake13(c, hs.transcript, &finishedMsg{verifyData: vd}); err != nil {
		return err
	}
	if err := c.sendFlight(false, ""); err != nil {
		return err
	}
	hs.master, hs.clientAPSecret, hs.serverAPSecret, hs.state.exporterSecret, err =
		c.applicationSecrets13(hs.hsSecret, hs.transcript.Sum(nil), hs.hello.random)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	hs.state.ourSecret, hs.state.peerSecret = hs.serverAPSecret, hs.clientAPSecret
	wk, err := newEpochKeys13(hs.suite, 3, hs.serverAPSecret)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	// Our flight's retransmissions keep their epochs (0 and 2); what we
	// send from now on is epoch 3 (RFC 8446 §4.4.4: the server may send
	// data after its Finished).
	c.installWriteEpoch13(wk)
	return nil
}

// supportedSignatureAlgorithms13 is our signature_algorithms without the
// PKCS #1 v1.5 schemes, which a 1.3 CertificateVerify may not use (RFC
// 8446 §4.2.3).
func supportedSignatureAlgorithms13() []tls.SignatureScheme {
	var out []tls.SignatureScheme
	for _, s := range supportedSignatureAlgorithms {
		switch s {
		case tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512, tls.PKCS1WithSHA1, tls.ECDSAWithSHA1:
			continue
		}
		out = append(out, s)
	}
	return out
}

// readClientFlight reads [Certificate CertificateVerify] Finished in
// epoch 2, then installs the client's epoch-3 keys.
func (hs *serverHandshakeState13) readClientFlight() error {
	c := hs.c
	msg, err := c.readHandshake13(hs.ctx, 2)
	if err != nil {
		return err
	}
	if hs.requestCert {
		if msg, err = hs.readClientCertificate(msg); err != nil {
			return err
		}
	} else if msg.typ == typeCertificate {
		return c.fail(alertUnexpectedMessage, errors.New("dtls: client Certificate we did not ask for"))
	}
	fin := new(finishedMsg)
	if err := c.parseHandshakeMsg(msg, typeFinished, fin.unmarshal); err != nil {
		return err
	}
	if !verifyFinished13(hs.suite.hash, labelPrefixDTLS13, hs.clientHSSecret, hs.transcript.Sum(nil), fin.verifyData) {
		return c.fail(alertDecryptError, errors.New("dtls: client's Finished is wrong"))
	}
	hs.addTranscript(msg)
	if err := c.keepTranscript13(hs.hello.postHandshakeAuth, hs.transcript); err != nil {
		return err
	}
	// RFC 8446 §7.1: through the client's Finished. Only tickets use
	// it: not derived when serverHandshake13 will send none.
	if len(hs.hello.pskModes) > 0 && !c.config.SessionTicketsDisabled {
		if hs.state.resumptionSecret, err = hs.master.resumptionMasterSecret(hs.transcript.Sum(nil)); err != nil {
			return c.fail(alertInternalError, err)
		}
	}
	if typ, _, ok := c.hs.peekMessage(); ok {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: %v after the client's Finished", typ))
	}
	if err := c.verifyConnection(&hs.state); err != nil {
		return err
	}
	rk, err := newEpochKeys13(hs.suite, 3, hs.clientAPSecret)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	return c.installReadEpoch13(rk)
}

func (hs *serverHandshakeState13) addTranscript(msg inMessage) {
	writeTranscriptMessage13(hs.transcript, msg.typ, msg.body)
}

// readClientCertificate reads the client's Certificate and, for a
// non-empty one, its CertificateVerify, and returns the next message.
func (hs *serverHandshakeState13) readClientCertificate(msg inMessage) (inMessage, error) {
	c := hs.c
	cm := new(certificateMsg13)
	if err := c.parseHandshakeMsg(msg, typeCertificate, cm.unmarshal); err != nil {
		return msg, err
	}
	hs.addTranscript(msg)
	if len(cm.context) != 0 {
		return msg, c.fail(alertIllegalParameter, errors.New("dtls: client Certificate with a context we did not send"))
	}
	if len(cm.entries) == 0 {
		if c.config.requiresClientCert() {
			return msg, c.fail(alertCertificateRequired, errors.New("dtls: client sent no certificate"))
		}
		return c.readHandshake13(hs.ctx, 2)
	}
	raw := make([][]byte, len(cm.entries))
	for i, e := range cm.entries {
		raw[i] = e.data
	}
	h12 := handshakeState{c: c}
	var pub any
	var err error
	if hs.clientRPK {
		if pub, err = c.verifyRawPublicKey13(raw, false, &hs.state); err != nil {
			return msg, err
		}
	} else {
		certs, err := h12.parsePeerChain(raw, "client")
		if err != nil {
			return msg, err
		}
		var chains [][]*x509.Certificate
		if c.config.verifiesClientCert() {
			if chains, err = c.config.verifyClientChain(certs, c.config.time()); err != nil {
				return msg, c.fail(alertBadCertificate, &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err})
			}
		}
		if err := h12.acceptPeerChain(raw, certs, chains); err != nil {
			return msg, err
		}
		hs.state.peerCertificates = certs
		hs.state.verifiedChains = chains
		pub = certs[0].PublicKey
	}
	cv := new(certificateVerifyMsg)
	if msg, err = c.readHandshake13(hs.ctx, 2); err != nil {
		return msg, err
	}
	if err := c.parseHandshakeMsg(msg, typeCertificateVerify, cv.unmarshal); err != nil {
		return msg, err
	}
	if !slices.Contains(supportedSignatureAlgorithms13(), cv.signatureAlgorithm) {
		return msg, c.fail(alertIllegalParameter, fmt.Errorf("dtls: client signed with %v, which we did not ask for", cv.signatureAlgorithm))
	}
	if err := verifyHandshakeSignature(VersionDTLS13, cv.signatureAlgorithm, pub, signedMessage13(false, hs.transcript.Sum(nil)), cv.signature); err != nil {
		return msg, c.fail(alertDecryptError, err)
	}
	hs.addTranscript(msg)
	return c.readHandshake13(hs.ctx, 2)
}
