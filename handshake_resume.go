package dtls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// The abbreviated handshake (RFC 5246 §7.3, RFC 6347 §4.2.4 figure 2),
// and the parts of the full handshake that make a session resumable:
//
//	ClientHello (session_id or ticket) -->
//	                                   <-- ServerHello (same session_id)
//	                                       [NewSessionTicket]
//	                                       ChangeCipherSpec, Finished
//	ChangeCipherSpec, Finished         -->
//
// The server's flight is retransmitted on its timer until the client's
// Finished arrives; the client's flight is the last one, kept and resent
// only when the server repeats its own.

// prepareNewSession decides how the session of a full handshake will be
// resumable: by a ticket when the client asked for one, otherwise by a
// session ID in the server's cache. Sessions without the extended master
// secret are never resumable (RFC 7627 §5.3).
func (hs *serverHandshakeState) prepareNewSession() error {
	c := hs.c
	if !hs.ems {
		return nil
	}
	if hs.hello.ticketSupported && !c.config.SessionTicketsDisabled {
		// RFC 5077 §3.4: no session ID when a ticket will follow.
		hs.issueTicket = true
		hs.serverHello.ticketSupported = true
		return nil
	}
	id := make([]byte, sessionIDLen)
	if _, err := io.ReadFull(c.config.rand(), id); err != nil {
		return c.fail(alertInternalError, err)
	}
	hs.serverHello.sessionID = id
	return nil
}

// newSessionState captures the session of the full handshake that just
// completed on either side.
func (hs *handshakeState) newSessionState() *sessionState {
	c := hs.c
	s := &sessionState{
		isClient:         c.isClient,
		version:          c.vers,
		cipherSuite:      hs.suite.id,
		createdAt:        uint64(c.config.time().Unix()),
		masterSecret:     hs.masterSecret,
		ems:              hs.ems,
		serverName:       hs.hello.serverName,
		peerCertificates: hs.state.peerCertificates,
		verifiedChains:   hs.state.verifiedChains,
		alpn:             hs.serverHello.alpnProtocol,
		srtpProfile:      hs.state.srtpProfile,
		clientAuth:       c.config.ClientAuth,
	}
	if pub := hs.state.peerPublicKey; pub != nil {
		// RFC 7250 leaves resumption as it is: the session is bound to
		// the peer's raw key as it would be to its certificate.
		s.peerPublicKey = pub
		s.keyVerified = c.config.rawKeyVerified()
	}
	if hs.suite.kx.isPSK() {
		s.pskIdentity = hs.pskIdentity
	}
	return s
}

// sendSessionTicket queues NewSessionTicket, which comes just before the
// server's ChangeCipherSpec (RFC 5077 §3.3). In a full handshake it is
// built after the client's Finished was verified, client authentication
// included, so that no ticket exists for a handshake that failed.
func (hs *serverHandshakeState) sendSessionTicket() error {
	c := hs.c
	if !hs.issueTicket {
		return nil
	}
	s := hs.session
	if s == nil {
		s = hs.newSessionState()
	}
	now := c.config.time()
	nst := &newSessionTicketMsg{}
	if plain, err := s.marshal(); err == nil {
		if ticket, err := c.config.sealTicket(plain); err == nil && len(ticket) <= 0xffff {
			nst.ticket = ticket
			left := time.Unix(int64(s.createdAt), 0).Add(c.config.sessionLifetime()).Sub(now)
			nst.lifetimeHint = uint32(max(left, time.Second) / time.Second)
		}
	}
	// Without a ticket (a huge certificate chain, a failing Rand) the
	// message is still due, empty (RFC 5077 §3.3).
	return hs.writeHandshake(nst)
}

// cacheNewSession puts the session of a completed full handshake in the
// server's cache under the ID the ServerHello announced.
func (hs *serverHandshakeState) cacheNewSession() {
	if len(hs.serverHello.sessionID) == 0 || hs.issueTicket {
		return
	}
	hs.c.config.cacheSession(hs.serverHello.sessionID, hs.newSessionState())
}

// checkForResumption looks up the session the client offers, by ticket or
// by ID, and reports whether the server resumes it. A session resumes only
// where a full handshake with the current Config would give the same
// guarantees; anything else falls back to a full handshake, never to an
// error.
func (hs *serverHandshakeState) checkForResumption() bool {
	c := hs.c
	ch := hs.hello
	if !hs.ems {
		// RFC 7627 §5.3: no abbreviated handshake without EMS.
		return false
	}
	now := c.config.time()
	var s *sessionState
	switch {
	case len(ch.sessionTicket) > 0:
		if c.config.SessionTicketsDisabled {
			return false
		}
		plain, newest := c.config.openTicket(ch.sessionTicket)
		if plain == nil {
			return false
		}
		s = parseSessionState(plain)
		hs.renewTicket = !newest
	case len(ch.sessionID) > 0:
		s = c.config.cachedSessionFor(ch.sessionID, now)
	}
	// A client's state never resumes on a server, whatever store it
	// came through (pion CVE-2026-135390).
	if s == nil || s.isClient || s.version != c.vers || !s.ems || s.expired(now, c.config.sessionLifetime()) {
		return false
	}
	if s.serverName != ch.serverName {
		return false
	}
	suite := cipherSuiteByID(s.cipherSuite)
	if suite == nil || !slices.Contains(ch.cipherSuites, s.cipherSuite) ||
		!slices.Contains(c.enabledSuites(), suite) {
		return false
	}
	if suite.kx.isPSK() {
		// The identity must still be known: removing a PSK revokes its
		// sessions too.
		if c.config.PSK == nil {
			return false
		}
		if psk, err := c.config.PSK(s.pskIdentity); err != nil || len(psk) == 0 {
			return false
		}
	}
	if suite.kx.usesCertificates() && hs.cert == nil {
		return false
	}
	s, ok := c.config.resumableClientAuth(s, now)
	if !ok {
		return false
	}
	var srtp uint16
	if hs.serverHello.hasSRTP {
		srtp = hs.serverHello.srtpProtectionProfile
	}
	if s.srtpProfile != srtp {
		return false
	}
	hs.session = s
	return true
}

// resumableClientAuth applies a server's client-authentication policy to
// a session it might resume, in 1.2 and 1.3, and returns the session with
// its client chains rebuilt when they must be. Client authentication is
// never skipped by resuming (pion CVE-2026-135389): a session without a
// certificate does not resume where one is required, nor an unverified
// one where verification is required.
func (cfg *Config) resumableClientAuth(s *sessionState, now time.Time) (*sessionState, bool) {
	hasCerts := len(s.peerCertificates) > 0
	if cfg.requiresClientCert() && !hasCerts && s.peerPublicKey == nil {
		return nil, false
	}
	if s.peerPublicKey != nil && !cfg.rawKeyResumable(s, false) {
		return nil, false
	}
	if hasCerts {
		if now.After(s.peerCertificates[0].NotAfter) {
			return nil, false
		}
		if s.chainsVerified && len(s.verifiedChains) == 0 && cfg.verifiesClientCert() {
			chains, err := cfg.verifyClientChain(s.peerCertificates, now)
			if err != nil {
				return nil, false
			}
			rebuilt := *s
			rebuilt.verifiedChains = chains
			s = &rebuilt
		}
		if cfg.verifiesClientCert() && len(s.verifiedChains) == 0 {
			return nil, false
		}
	}
	return s, true
}

// doResumeHandshake runs the server's side of an abbreviated handshake:
// ServerHello [NewSessionTicket] ChangeCipherSpec Finished, retransmitted
// until the client's ChangeCipherSpec and Finished arrive.
func (hs *serverHandshakeState) doResumeHandshake() error {
	c := hs.c
	s := hs.session
	hs.suite = cipherSuiteByID(s.cipherSuite)
	sh := hs.serverHello
	sh.cipherSuite = s.cipherSuite
	sh.sessionID = hs.hello.sessionID
	sh.supportedPoints = nil
	if hs.suite.kx.isECDHE() && len(hs.hello.supportedPoints) > 0 {
		sh.supportedPoints = []uint8{pointFormatUncompressed}
	}
	// A ticket sealed with an old key is replaced, keeping its creation
	// time, so that rotated-out keys can be dropped.
	hs.issueTicket = hs.renewTicket
	sh.ticketSupported = hs.issueTicket
	hs.masterSecret = s.masterSecret
	hs.pskIdentity = s.pskIdentity
	hs.state.peerCertificates = s.peerCertificates
	hs.state.verifiedChains = s.verifiedChains
	hs.state.peerPublicKey = s.peerPublicKey
	hs.peerKey = s.peerPublicKey
	hs.state.didResume = true
	hs.logMasterSecret()
	// No certificate is sent when resuming, so no certificate types
	// are negotiated: the session's apply (GnuTLS leaves them out of a
	// resuming ServerHello too).
	sh.hasServerCertType, sh.hasClientCertType = false, false

	if err := hs.writeHandshake(sh); err != nil {
		return err
	}
	if err := hs.sendSessionTicket(); err != nil {
		return err
	}
	if err := hs.writeFinished(false); err != nil {
		return err
	}
	if err := c.sendFlight(false, ""); err != nil {
		return err
	}
	if err := hs.readFinished(true); err != nil {
		return err
	}
	if err := hs.verifyConnection(); err != nil {
		return err
	}
	hs.finish()
	return nil
}

// clientSessionCacheKey is the ClientSessionCache key for this
// connection: the server's name or, without one, its address.
func (c *Conn) clientSessionCacheKey() string {
	if c.config.ServerName != "" {
		return c.config.ServerName
	}
	if a := c.io.remoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// loadSession offers a cached session in the ClientHello, by ticket or by
// session ID, if the current Config would accept the server it was made
// with.
func (hs *clientHandshakeState) loadSession() error {
	c := hs.c
	hello := hs.hello
	cache := c.config.ClientSessionCache
	if cache == nil {
		return nil
	}
	hello.ticketSupported = !c.config.SessionTicketsDisabled
	hs.cacheKey = c.clientSessionCacheKey()
	cs, ok := cache.Get(hs.cacheKey)
	if ok && cs != nil {
		// A previous connection to the same server measured the round
		// trip: RFC 9147 §5.8.2 starts the timer at 1.5 times it, whether
		// or not the session can be resumed.
		c.hs.setInitialRTT(cs.rtt)
	}
	c.sessionCacheKey = hs.cacheKey
	if ok && cs != nil && cs.state != nil && cs.state.version == VersionDTLS13 {
		// A DTLS 1.3 ticket goes in the pre_shared_key extension of a
		// ClientHello that offers 1.3 (offer13), never in a 1.2 one.
		hs.cached13 = cs
		return nil
	}
	if !ok || cs == nil || cs.state == nil || !c.sessionUsable(cs, hello) {
		return nil
	}
	if cs.ticket != nil {
		// A ticket that makes the ClientHello longer than the MTU is
		// offered all the same: the ClientHello is then fragmented,
		// which RFC 6347 §4.2.3 allows and our Listener reassembles.
		if c.config.SessionTicketsDisabled {
			return nil
		}
		// A random session ID lets us tell a resumption (the server
		// echoes it) from a full handshake (RFC 5077 §3.4).
		id := make([]byte, sessionIDLen)
		if _, err := io.ReadFull(c.config.rand(), id); err != nil {
			return fmt.Errorf("dtls: reading random: %w", err)
		}
		hello.sessionID = id
		hello.sessionTicket = cs.ticket
	} else {
		hello.sessionID = cs.sessionID
	}
	hs.clientSession = cs
	hs.session = cs.state
	return nil
}

// ticketSpansDatagrams reports whether the ClientHello carries a session
// ticket that makes it, with a cookie, longer than one datagram: it will
// be fragmented, which not every server reassembles.
func (hs *clientHandshakeState) ticketSpansDatagrams() bool {
	c, hello := hs.c, hs.hello
	if len(hello.sessionTicket) == 0 {
		return false
	}
	body, err := hello.marshal()
	if err != nil {
		return false
	}
	const cookie = 1 + cookieLen
	return recordHeaderLen+handshakeHeaderLen+len(body)+cookie > c.config.mtu()
}

// restartWithoutTicket starts the handshake over with a ClientHello that
// offers no session: the fragmented one that offered a ticket got no
// answer. The new ClientHello has a new random and is a new first flight.
func (hs *clientHandshakeState) restartWithoutTicket() error {
	c, hello := hs.c, hs.hello
	hello.sessionTicket, hello.sessionID, hello.cookie = nil, nil, nil
	hs.clientSession, hs.session = nil, nil
	if _, err := io.ReadFull(c.config.rand(), hello.random); err != nil {
		return fmt.Errorf("dtls: reading random: %w", err)
	}
	rtt := c.hs.rtt.smoothedRTT() // from the session: still the server's
	initialRTO, minRTO := c.config.retransmitTimeouts()
	c.hs = newHandshakeTransport(c.config.mtu(), initialRTO, minRTO)
	c.hs.setInitialRTT(rtt)
	c.rl.resetReplay(0)
	hs.transcript = hs.transcript[:0]
	if err := hs.writeHandshake(hello); err != nil {
		return err
	}
	return c.sendFlight(false, "")
}

// sessionUsable reports whether a cached session may be offered: it must
// be a live DTLS 1.2 client session with EMS, for a suite we offer, and
// authenticate the server as this Config would (the same PSK identity,
// a certificate valid for ServerName), whoever else shares the cache.
func (c *Conn) sessionUsable(cs *ClientSessionState, hello *clientHelloMsg) bool {
	s := cs.state
	now := c.config.time()
	if !s.isClient || s.version != hello.vers || !s.ems || s.expired(now, c.config.sessionLifetime()) {
		return false
	}
	if cs.lifetime > 0 && !now.Before(cs.receivedAt.Add(cs.lifetime)) {
		return false
	}
	if s.serverName != hello.serverName || !slices.Contains(hello.cipherSuites, s.cipherSuite) {
		return false
	}
	suite := cipherSuiteByID(s.cipherSuite)
	if suite == nil {
		return false
	}
	if suite.kx.isPSK() && (c.config.PSK == nil || !bytes.Equal(s.pskIdentity, c.config.PSKIdentity)) {
		return false
	}
	if suite.kx.usesCertificates() && c.config.RawPublicKey != (s.peerPublicKey != nil) {
		// A raw-key client accepts only raw keys, and a session made
		// with one resumes only where raw keys are on.
		return false
	}
	if s.peerPublicKey != nil {
		if !c.config.rawKeyResumable(s, true) {
			return false
		}
	} else if suite.kx.usesCertificates() && !c.config.InsecureSkipVerify {
		if len(s.verifiedChains) == 0 || len(s.peerCertificates) == 0 {
			return false
		}
		leaf := s.peerCertificates[0]
		if now.After(leaf.NotAfter) || leaf.VerifyHostname(c.config.ServerName) != nil {
			return false
		}
	}
	return true
}

// serverResumed reports whether the ServerHello resumes the session we
// offered: it echoes our non-empty session ID.
func (hs *clientHandshakeState) serverResumed() (bool, error) {
	c := hs.c
	sh := hs.serverHello
	if hs.session == nil || len(sh.sessionID) == 0 || !bytes.Equal(sh.sessionID, hs.hello.sessionID) {
		return false, nil
	}
	if sh.cipherSuite != hs.session.cipherSuite {
		return false, c.fail(alertIllegalParameter, errors.New("dtls: server resumed a session with a different cipher suite"))
	}
	if !sh.extendedMasterSecret {
		return false, c.fail(alertHandshakeFailure, errors.New("dtls: server resumed a session without the extended master secret (RFC 7627 §5.3)"))
	}
	return true, nil
}

// doResumeClient runs the client's side of an abbreviated handshake after
// the ServerHello: [NewSessionTicket] ChangeCipherSpec Finished from the
// server, then our ChangeCipherSpec and Finished, the final flight.
func (hs *clientHandshakeState) doResumeClient() error {
	c := hs.c
	s := hs.session
	hs.masterSecret = s.masterSecret
	hs.state.peerCertificates = s.peerCertificates
	hs.state.verifiedChains = s.verifiedChains
	hs.state.peerPublicKey = s.peerPublicKey
	hs.peerKey = s.peerPublicKey
	if hs.suite.kx.isPSK() {
		hs.pskIdentity = s.pskIdentity
	}
	hs.state.didResume = true
	hs.logMasterSecret()
	if err := hs.readSessionTicket(); err != nil {
		return err
	}
	if err := hs.readServerFinished(); err != nil {
		return err
	}
	if err := hs.verifyConnection(); err != nil {
		return err
	}
	if err := hs.writeFinished(true); err != nil {
		return err
	}
	c.hs.finalFlight()
	if err := c.sendFlight(false, ""); err != nil {
		return err
	}
	hs.finish()
	hs.storeSession()
	return nil
}

// readSessionTicket reads the NewSessionTicket the server announced in its
// ServerHello. It comes just before the server's ChangeCipherSpec, so the
// read keys go in first and a ChangeCipherSpec that overtakes the ticket
// is kept.
func (hs *clientHandshakeState) readSessionTicket() error {
	c := hs.c
	if !hs.serverHello.ticketSupported {
		return nil
	}
	if err := hs.installPeerKeys(false); err != nil {
		return err
	}
	nst := new(newSessionTicketMsg)
	msg, err := c.readHandshakeMsg(hs.ctx, typeNewSessionTicket, nst.unmarshal)
	if err != nil {
		return err
	}
	if msg.epoch != c.rl.readCur-1 {
		return c.fail(alertUnexpectedMessage, errors.New("dtls: NewSessionTicket after ChangeCipherSpec"))
	}
	hs.addTranscript(msg)
	hs.ticket = nst
	return nil
}

// storeSession puts the session of a completed handshake in the
// ClientSessionCache: only now, after the server's Finished, is it known
// to be genuine.
func (hs *clientHandshakeState) storeSession() {
	c := hs.c
	cache := c.config.ClientSessionCache
	if cache == nil {
		return
	}
	resumed := hs.state.didResume
	cs := &ClientSessionState{receivedAt: c.config.time(), rtt: c.hs.rtt.smoothedRTT()}
	switch {
	case resumed:
		cs.state = hs.session // keeps its creation time: lifetimes are not extended
	case hs.ems:
		cs.state = hs.newSessionState()
	}
	switch {
	case cs.state == nil:
		cs = nil
	case hs.ticket != nil && len(hs.ticket.ticket) > 0:
		cs.ticket = slices.Clone(hs.ticket.ticket)
		cs.lifetime = time.Duration(hs.ticket.lifetimeHint) * time.Second
	case resumed:
		return // the cached session is still good
	case len(hs.serverHello.sessionID) > 0:
		cs.sessionID = slices.Clone(hs.serverHello.sessionID)
	default:
		cs = nil
	}
	if cs == nil {
		if hs.clientSession != nil {
			cache.Put(hs.cacheKey, nil) // the server would not resume it
		}
		return
	}
	cache.Put(hs.cacheKey, cs)
}
