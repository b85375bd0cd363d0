package dtls

import (
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// DTLS 1.3 session resumption (RFC 8446 §2.2, §4.2.11, §4.6.1; RFC 9147
// §5.8.4, where NewSessionTicket is a post-handshake message that is
// ACKed and retransmitted until it is).
//
// After a handshake completes, a server sends
// Config.SessionTicketsPerConnection NewSessionTickets (1 by default) in
// epoch 3, each a ticket sealed with the same keys as its 1.2 tickets
// (ticket.go: SetSessionTicketKeys, the rotating automatic keys,
// FleetSecret) that holds the resumption PSK
//
//	HKDF-Expand-Label(resumption_master_secret, "resumption", ticket_nonce, Hash.length)
//
// with what the handshake authenticated. A client keeps its tickets in its
// ClientSessionCache, under the key a 1.2 session of the same server
// would have: the entry is one ClientSessionState, as crypto/tls's is,
// that holds up to maxClientTickets13 unused tickets of that server
// (clientTickets13), from this connection and earlier ones. A later
// ClientHello that offers 1.3 takes the newest usable ticket not offered
// before, so that while unused ones remain each ticket is used once (RFC
// 8446 §C.4: "Clients SHOULD NOT reuse a ticket for multiple
// connections"; a reused ticket links the connections for an observer,
// and servers that make tickets single-use for 0-RTT anti-replay, as
// pion's store does, refuse it). Only when every ticket held was offered
// already is the newest offered again, as crypto/tls does with its one
// cached ticket, rather than a full handshake: a client that closed its
// last connection before the server's new ticket arrived (a lost
// NewSessionTicket, an application that never reads) still resumes. A
// reused ticket never carries 0-RTT data (offerEarlyData), and a new
// ticket from the server retires the used ones. The ticket is offered
// as a pre_shared_key with psk_dhe_ke (forward secrecy: psk_ke is offered
// only beside an external PSK, for which it always was). A 1.2 session in
// the cache is never offered as a 1.3 PSK, nor a 1.3 one to a 1.2
// server: whichever handshake completes last replaces the entry.
//
// A server resumes only where a full handshake with its current Config
// would give the same guarantees (the 1.2 rules: resumableClientAuth, the
// same server name, an external PSK identity still known); a ticket it
// cannot open or use gets a full handshake, a wrong binder the
// decrypt_error RFC 8446 §4.2.11.2 asks for.

// Bounds of DTLS 1.3 tickets.
const (
	// maxSessionTicketsPerConnection bounds Config.SessionTicketsPerConnection:
	// the NewSessionTickets of one post-handshake flight, which must leave
	// room in it for a KeyUpdate (maxFlightEntries13; RFC 9147 §8 lets one
	// join a flight whose tickets are not yet ACKed). OpenSSL sends 2 by
	// default; more than a few serve no client we know.
	maxSessionTicketsPerConnection = 4
	// maxClientTickets13 bounds the unused tickets a client keeps for one
	// server (one ClientSessionCache key): a server that sends more, on
	// one connection or over many, has its oldest ones forgotten. With
	// the cache's capacity it bounds the tickets a client holds in all
	// (64 keys × 8 with NewLRUClientSessionCache's default).
	maxClientTickets13 = 8
	// maxClientTicketLen bounds the ticket a client keeps: it must go in
	// a ClientHello, which must fit one datagram (wolfSSL refuses a
	// fragmented first ClientHello, #9266), with a key share and the
	// other extensions beside it. Ours are under 300 bytes without a
	// client certificate; a server's longer ticket is ignored (RFC 8446
	// §4.6.1 lets a client drop tickets; nothing is lost but resumption).
	maxClientTicketLen = 1024
)

// offeredPSK13 is one PSK a client offers: its key and hash, whether it is
// external (the binder key's label), and the cached session of a ticket.
type offeredPSK13 struct {
	key      []byte
	hash     crypto.Hash
	external bool
	session  *ClientSessionState
	reused   bool // the ticket was offered before: no 0-RTT with it

	// early and binderKey (the binder's finished_key) are made by the
	// first ClientHello's bindPSK and kept for the second.
	early     *keySchedule13
	binderKey []byte
}

// offerTicket adds the cached 1.3 session's ticket to the ClientHello, if
// the Config would still accept the server it was made with.
func (hs *clientHandshakeState13) offerTicket(m *clientHelloMsg13, cs *ClientSessionState) {
	c := hs.c
	if cs == nil || c.config.SessionTicketsDisabled {
		return
	}
	reused := false
	if cs.tickets13 != nil {
		// Marked used whether or not the server resumes with it; take
		// returns only a ticket sessionUsable13 accepted.
		cs, reused = cs.tickets13.take(func(t *ClientSessionState) bool { return c.sessionUsable13(t, m) })
	} else if !c.sessionUsable13(cs, m) {
		return
	}
	if cs == nil {
		return
	}
	s := cs.state
	suite := cipherSuite13ByID(s.cipherSuite)
	// RFC 8446 §4.2.11.1: the age in milliseconds, plus ticket_age_add
	// modulo 2^32.
	age := c.config.time().Sub(cs.receivedAt) / time.Millisecond
	hs.psks = append(hs.psks, offeredPSK13{key: s.masterSecret, hash: suite.hash, session: cs, reused: reused})
	m.pskIdentities = append(m.pskIdentities, pskIdentity13{label: cs.ticket, obfuscatedTicketAge: uint32(age) + s.ageAdd})
	m.pskBinders = append(m.pskBinders, make([]byte, suite.hash.Size()))
	m.pskModes = []uint8{pskModeDHE}
}

// sessionUsable13 reports whether a cached 1.3 session may be offered: a
// live client session for a suite hash we offer, made with the same
// server name and authenticating the server as this Config would (the
// same external PSK identity, or a certificate valid for ServerName).
func (c *Conn) sessionUsable13(cs *ClientSessionState, m *clientHelloMsg13) bool {
	s := cs.state
	now := c.config.time()
	if s == nil || !s.isClient || s.version != VersionDTLS13 || len(cs.ticket) == 0 || s.expired(now, c.config.sessionLifetime()) {
		return false
	}
	if cs.lifetime <= 0 || !now.Before(cs.receivedAt.Add(cs.lifetime)) || now.Before(cs.receivedAt) {
		return false
	}
	if s.serverName != m.serverName {
		return false
	}
	suite := cipherSuite13ByID(s.cipherSuite)
	if suite == nil || len(s.masterSecret) != suite.hash.Size() {
		return false
	}
	hashOffered := false
	for _, cs := range c.enabledSuites13() {
		hashOffered = hashOffered || cs.hash == suite.hash
	}
	if !hashOffered {
		return false
	}
	if len(s.pskIdentity) > 0 {
		// Made with an external PSK: offered only with the same one.
		return c.config.PSK != nil && string(s.pskIdentity) == string(c.config.PSKIdentity)
	}
	if c.config.RawPublicKey != (s.peerPublicKey != nil) {
		// A raw-key session only where raw keys are on, and the other
		// way round (as for 1.2 sessions, handshake_resume.go).
		return false
	}
	if s.peerPublicKey != nil {
		return c.config.rawKeyResumable(s, true)
	}
	if c.config.InsecureSkipVerify {
		return true
	}
	if len(s.verifiedChains) == 0 || len(s.peerCertificates) == 0 {
		return false
	}
	leaf := s.peerCertificates[0]
	return !now.After(leaf.NotAfter) && leaf.VerifyHostname(c.config.ServerName) == nil
}

// keepPSKsFor keeps the offered PSKs of hash h (after a
// HelloRetryRequest chose a suite): the binders of the others could not
// be computed over the new transcript, and the server could not select
// them.
func (hs *clientHandshakeState13) keepPSKsFor(h crypto.Hash) {
	m := hs.hello
	var psks []offeredPSK13
	var ids []pskIdentity13
	var binders [][]byte
	for i, p := range hs.psks {
		if p.hash == h {
			psks = append(psks, p)
			ids = append(ids, m.pskIdentities[i])
			binders = append(binders, m.pskBinders[i])
		}
	}
	hs.psks, m.pskIdentities, m.pskBinders = psks, ids, binders
	if len(psks) == 0 && len(m.pskModes) > 0 {
		// No PSK left to offer: the modes still say which tickets we
		// can use (offer13).
		m.pskModes = []uint8{pskModeDHE}
	}
}

// resumed takes over what the session of the ticket the server accepted
// authenticated.
func (hs *clientHandshakeState13) resumed(cs *ClientSessionState) {
	s := cs.state
	hs.state.didResume = true
	hs.state.peerCertificates = s.peerCertificates
	hs.state.verifiedChains = s.verifiedChains
	hs.state.peerPublicKey = s.peerPublicKey
	hs.state.pskIdentity = s.pskIdentity
	hs.state.sessionCreatedAt = s.createdAt
}

// ticketSession opens a PSK identity as one of our tickets and returns
// its session if it may resume here, or nil.
func (hs *serverHandshakeState13) ticketSession(id pskIdentity13) *sessionState {
	c := hs.c
	if c.config.SessionTicketsDisabled {
		return nil
	}
	plain, _ := c.config.openTicket(id.label)
	if plain == nil {
		return nil
	}
	s := parseSessionState(plain)
	now := c.config.time()
	lifetime := c.config.sessionLifetime()
	if s == nil || s.isClient || s.version != VersionDTLS13 || s.expired(now, lifetime) {
		return nil
	}
	// The age the client reports (RFC 8446 §4.2.11.1) must be within
	// the lifetime too: a client that kept the ticket longer than we
	// allowed gets a full handshake.
	if age := time.Duration(id.obfuscatedTicketAge-s.ageAdd) * time.Millisecond; age > lifetime {
		return nil
	}
	// RFC 8446 §4.6.1: a ticket resumes only with a suite of the same
	// KDF hash.
	suite := cipherSuite13ByID(s.cipherSuite)
	if suite == nil || suite.hash != hs.suite.hash {
		return nil
	}
	if s.serverName != hs.hello.serverName {
		return nil
	}
	if len(s.pskIdentity) > 0 {
		// The identity must still be known: removing a PSK revokes its
		// sessions too.
		if c.config.PSK == nil {
			return nil
		}
		if psk, err := c.config.PSK(s.pskIdentity); err != nil || len(psk) == 0 {
			return nil
		}
	} else if len(c.config.Certificates) == 0 && c.config.GetCertificate == nil {
		return nil // a certificate session where we no longer have one
	}
	s, ok := c.config.resumableClientAuth(s, now)
	if !ok {
		return nil
	}
	return s
}

// resumed takes over what the ticket's session authenticated.
func (hs *serverHandshakeState13) resumed() {
	s := hs.session
	hs.state.didResume = true
	hs.state.peerCertificates = s.peerCertificates
	hs.state.verifiedChains = s.verifiedChains
	hs.state.peerPublicKey = s.peerPublicKey
	hs.state.pskIdentity = s.pskIdentity
	hs.state.sessionCreatedAt = s.createdAt
}

// sessionTicketsPerConnection is Config.SessionTicketsPerConnection with
// its default and bound.
func (c *Config) sessionTicketsPerConnection() int {
	if c == nil || c.SessionTicketsPerConnection <= 0 {
		return 1
	}
	return min(c.SessionTicketsPerConnection, maxSessionTicketsPerConnection)
}

// sendSessionTicket13 sends Config.SessionTicketsPerConnection
// NewSessionTickets after the handshake, in one flight: each is a message
// of its own (its own message_seq, its own records), so the client's ACKs
// name each and a retransmission resends only those not yet ACKed (RFC
// 9147 §5.8.4, §7). A failure to make one (a Rand that fails, a chain too
// long for a ticket) leaves the connection without it, not broken.
func (c *Conn) sendSessionTicket13() error {
	if c.config.SessionTicketsDisabled {
		return nil
	}
	queued := 0
	for i := range c.config.sessionTicketsPerConnection() {
		// The nonce need only be unique among the tickets of this
		// connection (RFC 8446 §4.6.1).
		body, err := c.newSessionTicket13([]byte{byte(i)})
		if err != nil {
			return err
		}
		if body == nil {
			break
		}
		if queued == 0 {
			c.hs.startPostHandshakeFlight()
		}
		if c.hs.queueMessage(c.rl.writeCur, typeNewSessionTicket, body) == nil {
			break
		}
		queued++
	}
	if queued == 0 {
		return nil
	}
	why := "NewSessionTicket"
	if queued > 1 {
		why = fmt.Sprintf("%d NewSessionTickets", queued)
	}
	return c.sendFlight(false, why)
}

// newSessionTicket13 makes the body of one NewSessionTicket with the
// given ticket_nonce, or nil when no ticket can be made.
func (c *Conn) newSessionTicket13(nonce []byte) ([]byte, error) {
	s := &c.state
	now := c.config.time()
	created := s.sessionCreatedAt
	if created == 0 {
		created = uint64(now.Unix())
	}
	left := time.Unix(int64(created), 0).Add(c.config.sessionLifetime()).Sub(now)
	if left < time.Second {
		return nil, nil
	}
	var rnd [4]byte
	if _, err := io.ReadFull(c.config.rand(), rnd[:]); err != nil {
		return nil, nil
	}
	psk, err := resumptionPSK13(s.suite13.hash, labelPrefixDTLS13, s.resumptionSecret, nonce)
	if err != nil {
		return nil, c.fail(alertInternalError, err)
	}
	state := &sessionState{
		version:          VersionDTLS13,
		cipherSuite:      s.suite13.id,
		createdAt:        created,
		masterSecret:     psk,
		serverName:       s.serverName,
		peerCertificates: s.peerCertificates,
		verifiedChains:   s.verifiedChains,
		peerPublicKey:    s.peerPublicKey,
		keyVerified:      s.peerPublicKey != nil && c.config.rawKeyVerified(),
		pskIdentity:      s.pskIdentity,
		alpn:             s.alpn,
		clientAuth:       c.config.ClientAuth,
		ageAdd:           binary.BigEndian.Uint32(rnd[:]),
		// 0-RTT (early_data_dtls13.go): the limit, and the issue time
		// for the freshness check of RFC 8446 §8.3.
		maxEarlyData: c.config.maxEarlyData(),
		issuedAt:     uint64(now.UnixMilli()),
	}
	plain, err := state.marshal()
	if err != nil {
		return nil, nil
	}
	ticket, err := c.config.sealTicket(plain)
	if err != nil || len(ticket) > 0xffff {
		return nil, nil
	}
	nst := &newSessionTicketMsg13{
		lifetime: uint32(min(left, maxSessionLifetime) / time.Second),
		ageAdd:   state.ageAdd,
		nonce:    nonce,
		label:    ticket,
		// RFC 8446 §4.6.1: early_data with max_early_data_size when
		// the ticket allows 0-RTT.
		maxEarlyData:    state.maxEarlyData,
		hasMaxEarlyData: state.maxEarlyData > 0,
	}
	body, err := nst.marshal()
	if err != nil {
		return nil, c.fail(alertInternalError, err)
	}
	return body, nil
}

// handleNewSessionTicket13 stores a server's NewSessionTicket in the
// ClientSessionCache: the session of this connection, with the PSK the
// ticket names. A ticket with lifetime 0 is discarded (RFC 8446 §4.6.1).
func (c *Conn) handleNewSessionTicket13(m inMessage) error {
	nst := new(newSessionTicketMsg13)
	if err := c.parseHandshakeMsg(m, typeNewSessionTicket, nst.unmarshal); err != nil {
		return err
	}
	if m.epoch < 3 {
		return c.fail(alertUnexpectedMessage, errors.New("dtls: NewSessionTicket before the application epoch"))
	}
	if c.config.Tracer != nil {
		// Each ticket, as readHandshake reports the handshake's
		// messages (post-handshake messages do not go through it).
		c.trace(&TraceEvent{Kind: TraceHandshakeReceived, Epoch: m.epoch, HandshakeType: uint8(m.typ), MessageSeq: m.seq, MessageLength: uint32(len(m.body)), FragmentLength: uint32(len(m.body))})
	}
	cache := c.config.ClientSessionCache
	if cache == nil || c.config.SessionTicketsDisabled || nst.lifetime == 0 {
		return nil
	}
	if len(nst.label) > maxClientTicketLen {
		return nil // could not go in a ClientHello of one datagram
	}
	s := &c.state
	psk, err := resumptionPSK13(s.suite13.hash, labelPrefixDTLS13, s.resumptionSecret, nst.nonce)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	now := c.config.time()
	created := s.sessionCreatedAt
	if created == 0 {
		created = uint64(now.Unix())
	}
	cs := &ClientSessionState{
		ticket: slices.Clone(nst.label),
		state: &sessionState{
			isClient:         true,
			version:          VersionDTLS13,
			cipherSuite:      s.suite13.id,
			createdAt:        created,
			masterSecret:     psk,
			serverName:       s.serverName,
			peerCertificates: s.peerCertificates,
			verifiedChains:   s.verifiedChains,
			peerPublicKey:    s.peerPublicKey,
			keyVerified:      s.peerPublicKey != nil && c.config.rawKeyVerified(),
			pskIdentity:      s.pskIdentity,
			alpn:             s.alpn,
			ageAdd:           nst.ageAdd,
		},
		receivedAt:   now,
		lifetime:     time.Duration(nst.lifetime) * time.Second,
		rtt:          c.hs.rtt.smoothedRTT(),
		maxEarlyData: nst.maxEarlyData,
	}
	// The server's other unused tickets stay beside this one: those of
	// this connection's earlier NewSessionTickets and of earlier
	// connections (a 1.2 session, or an entry from elsewhere, is
	// replaced).
	var pool *clientTickets13
	if old, ok := cache.Get(c.sessionCacheKey); ok && old != nil && old.tickets13 != nil {
		pool = old.tickets13
	} else {
		pool = new(clientTickets13)
	}
	pool.add(cs, now)
	cs.tickets13 = pool
	cache.Put(c.sessionCacheKey, cs)
	return nil
}

// clientTickets13 is the unused DTLS 1.3 tickets a client holds for one
// server, shared by the ClientSessionStates of that server's cache entry
// (each new ticket's state becomes the entry, pointing here), so that
// connections that start at once each take a ticket of their own, with
// any ClientSessionCache.
type clientTickets13 struct {
	mu sync.Mutex
	// list is oldest first, at most maxClientTickets13 long; used marks
	// the tickets a ClientHello offered already.
	list []*ClientSessionState
	used map[*ClientSessionState]bool
}

// add keeps cs, forgetting the tickets that expired, those offered
// already (cs replaces them), and, past maxClientTickets13, the oldest.
func (p *clientTickets13) add(cs *ClientSessionState, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = slices.DeleteFunc(p.list, func(t *ClientSessionState) bool {
		return p.used[t] || !now.Before(t.receivedAt.Add(t.lifetime))
	})
	clear(p.used)
	if len(p.list) >= maxClientTickets13 {
		p.list = slices.Delete(p.list, 0, len(p.list)-maxClientTickets13+1)
	}
	p.list = append(p.list, cs)
}

// take returns the newest ticket for which usable holds and that no
// ClientHello offered yet, marking it offered; failing that, the newest
// for which usable holds, with reused set; or nil.
func (p *clientTickets13) take(usable func(*ClientSessionState) bool) (cs *ClientSessionState, reused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.list) - 1; i >= 0; i-- {
		if t := p.list[i]; !p.used[t] && usable(t) {
			if p.used == nil {
				p.used = make(map[*ClientSessionState]bool, maxClientTickets13)
			}
			p.used[t] = true
			return t, false
		}
	}
	for i := len(p.list) - 1; i >= 0; i-- {
		if t := p.list[i]; usable(t) {
			return t, true
		}
	}
	return nil, false
}
