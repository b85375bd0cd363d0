package dtls

import (
	"bytes"
	"container/list"
	"crypto"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/cryptobyte"
)

// Session resumption (RFC 5246 §7.3 abbreviated handshake) by session ID
// from a bounded server-side cache, or by RFC 5077 session ticket.
//
// A session is recorded only once its full handshake has completed,
// client authentication included (pion CVE-2026-135389 cached it
// earlier), and only if it used the extended master secret (RFC 7627
// §5.3). A server resumes a session only under the rules its current
// Config would apply to a full handshake: a session without a client
// certificate does not resume where one is required.

const (
	// defaultSessionLifetime bounds how long after its full handshake a
	// session may be resumed, by ID or by ticket, and is the
	// ticket_lifetime_hint we send, unless Config.SessionLifetime says
	// otherwise (RFC 5077 §5.6 asks for a bounded lifetime; RFC 5246
	// §F.1.4 suggests at most 24 hours).
	defaultSessionLifetime = 24 * time.Hour
	// maxSessionLifetime is the longest Config.SessionLifetime allowed:
	// the 7 days RFC 8446 §4.6.1 allows a TLS 1.3 ticket, since a longer
	// one keeps a master secret usable, and a stolen ticket key useful,
	// for longer still.
	maxSessionLifetime = 7 * 24 * time.Hour
	// ticketKeyRotation is how often the automatic ticket key changes
	// when no keys were set with SetSessionTicketKeys. An automatic key
	// still decrypts for the session lifetime after it stopped sealing:
	// a ticket issued just before a rotation stays usable for its whole
	// lifetime.
	ticketKeyRotation = 24 * time.Hour
	// defaultServerSessions bounds the server's session ID cache (per
	// Config) unless Config.SessionCacheSize says otherwise. The least
	// recently used session is evicted; each entry holds a master
	// secret and the client's certificate chain, if any (a few KB).
	defaultServerSessions = 1024
	// maxServerSessions is the largest Config.SessionCacheSize allowed:
	// about a gigabyte of sessions with certificate chains at worst.
	maxServerSessions = 1 << 18
	// defaultClientSessionCacheCapacity is NewLRUClientSessionCache's
	// capacity for a capacity below 1.
	defaultClientSessionCacheCapacity = 64
	// ticketKeyNameLen is the key_name prefix of our tickets (RFC 5077 §4).
	ticketKeyNameLen = 16
	// sessionIDLen is the length of the session IDs a server assigns.
	sessionIDLen = 32
	// sessionStateFormat versions our serialization of sessionState.
	// Format 2 added the peer's raw public key (RFC 7250); a ticket of
	// another format does not parse, and its client gets a full
	// handshake.
	sessionStateFormat = 2
	// sessionStateFormat13 is the format of a DTLS 1.3 state: format 2
	// with the resumption PSK in place of the master secret (Hash.length
	// bytes) and the ticket's age_add at the end (RFC 8446 §4.6.1). A
	// 1.2 state keeps format 2, so 1.2 tickets still open on servers
	// that predate 1.3 resumption.
	sessionStateFormat13 = 3
)

// sessionState is what resuming a session needs: the negotiated
// parameters and secret of the full handshake and what it authenticated.
// A server keeps it in its cache or seals it into a ticket; a client keeps
// it in a ClientSessionState.
type sessionState struct {
	isClient         bool // the state of a client's session; never accepted by a server
	version          uint16
	cipherSuite      uint16
	createdAt        uint64 // Unix seconds of the full handshake
	masterSecret     []byte
	ems              bool
	serverName       string // SNI of the full handshake
	peerCertificates []*x509.Certificate
	verifiedChains   [][]*x509.Certificate // non-empty when the peer's chain was verified
	// chainsVerified is set, in a state parsed from a ticket, when the
	// client's chain had been verified. Tickets carry this flag instead
	// of the chains, which would double their size: a ClientHello must
	// fit in one datagram. A server that needs the chains builds them
	// again against its current ClientCAs.
	chainsVerified bool
	// peerPublicKey is the peer's raw public key (RFC 7250), nil with
	// X.509 or PSK: a session made with one resumes only where the
	// Config would accept that key again. keyVerified is set when it
	// was verified (pinned in PeerPublicKeys or accepted by
	// VerifyPeerCertificate), not merely accepted.
	peerPublicKey crypto.PublicKey
	keyVerified   bool
	pskIdentity   []byte
	alpn          string
	srtpProfile   uint16
	clientAuth    tls.ClientAuthType // the server's policy when the session was made
	// ageAdd is a DTLS 1.3 ticket's ticket_age_add (RFC 8446 §4.6.1),
	// with which the server recovers the ticket age the client reports.
	ageAdd uint32
	// maxEarlyData is a DTLS 1.3 ticket's max_early_data_size (RFC 8446
	// §4.6.1; 0: no 0-RTT with it) and issuedAt the Unix time in
	// milliseconds when the server issued it, for the freshness check of
	// RFC 8446 §8.3 (early_data_dtls13.go). Both are carried at the end of
	// a format-3 state, optional when parsed so that tickets from before
	// 0-RTT still open.
	maxEarlyData uint32
	issuedAt     uint64
}

// marshal serializes a server's session state for a ticket.
func (s *sessionState) marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	format := uint16(sessionStateFormat)
	if s.version == VersionDTLS13 {
		format = sessionStateFormat13
	}
	b.AddUint16(format)
	if s.isClient {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
	b.AddUint16(s.version)
	b.AddUint16(s.cipherSuite)
	b.AddUint64(s.createdAt)
	addBytes8(b, s.masterSecret)
	if s.ems {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
	addBytes8(b, []byte(s.serverName))
	addCertList(b, s.peerCertificates)
	if len(s.verifiedChains) > 0 || s.chainsVerified || s.keyVerified {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
	addBytes16(b, s.pskIdentity)
	addBytes8(b, []byte(s.alpn))
	b.AddUint16(s.srtpProfile)
	b.AddUint8(uint8(s.clientAuth))
	var spki []byte
	if s.peerPublicKey != nil {
		var err error
		if spki, err = x509.MarshalPKIXPublicKey(s.peerPublicKey); err != nil {
			return nil, err
		}
	}
	addBytes16(b, spki)
	if format == sessionStateFormat13 {
		b.AddUint32(s.ageAdd)
		if s.maxEarlyData > 0 {
			b.AddUint32(s.maxEarlyData)
			b.AddUint64(s.issuedAt)
		}
	}
	return b.Bytes()
}

func addCertList(b *cryptobyte.Builder, certs []*x509.Certificate) {
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, c := range certs {
			addBytes24(b, c.Raw)
		}
	})
}

// parseSessionState parses what marshal produced, or returns nil.
func parseSessionState(data []byte) *sessionState {
	s := &sessionState{}
	in := cryptobyte.String(data)
	var format uint16
	var role, ems, verified, clientAuth uint8
	var master, name, alpn []byte
	if !in.ReadUint16(&format) || format != sessionStateFormat && format != sessionStateFormat13 ||
		!in.ReadUint8(&role) || role > 1 ||
		!in.ReadUint16(&s.version) || (s.version == VersionDTLS13) != (format == sessionStateFormat13) ||
		!in.ReadUint16(&s.cipherSuite) ||
		!in.ReadUint64(&s.createdAt) ||
		!readBytes8(&in, &master) ||
		!in.ReadUint8(&ems) || ems > 1 ||
		!readBytes8(&in, &name) ||
		!readCertList(&in, &s.peerCertificates) ||
		!in.ReadUint8(&verified) || verified > 1 {
		return nil
	}
	var spki []byte
	if !readBytes16(&in, &s.pskIdentity) || !readBytes8(&in, &alpn) ||
		!in.ReadUint16(&s.srtpProfile) || !in.ReadUint8(&clientAuth) ||
		!readBytes16(&in, &spki) ||
		format == sessionStateFormat13 && !in.ReadUint32(&s.ageAdd) {
		return nil
	}
	if format == sessionStateFormat13 && !in.Empty() {
		if !in.ReadUint32(&s.maxEarlyData) || s.maxEarlyData == 0 || !in.ReadUint64(&s.issuedAt) {
			return nil
		}
	}
	if !in.Empty() {
		return nil
	}
	if format == sessionStateFormat13 {
		// The resumption PSK is Hash.length bytes of the suite's hash.
		if cs := cipherSuite13ByID(s.cipherSuite); cs == nil || len(master) != cs.hash.Size() || ems != 0 {
			return nil
		}
	} else if len(master) != masterSecretLen {
		return nil
	}
	if len(spki) > 0 {
		if len(s.peerCertificates) > 0 {
			return nil // a certificate chain or a raw key, not both
		}
		pub, err := x509.ParsePKIXPublicKey(spki)
		if err != nil || checkPeerKeySize(pub) != nil {
			return nil
		}
		// Only the encoding marshal writes, so that a state has one.
		if der, err := x509.MarshalPKIXPublicKey(pub); err != nil || !bytes.Equal(der, spki) {
			return nil
		}
		s.peerPublicKey = pub
		s.keyVerified = verified == 1
	} else if verified == 1 && len(s.peerCertificates) == 0 {
		return nil
	}
	s.isClient = role == 1
	s.masterSecret = master
	s.ems = ems == 1
	s.chainsVerified = verified == 1 && len(s.peerCertificates) > 0
	s.serverName = string(name)
	s.alpn = string(alpn)
	s.clientAuth = tls.ClientAuthType(clientAuth)
	return s
}

func readCertList(s *cryptobyte.String, out *[]*x509.Certificate) bool {
	var list cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&list) {
		return false
	}
	for !list.Empty() {
		var der []byte
		if !readBytes24(&list, &der) || len(der) == 0 {
			return false
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return false
		}
		*out = append(*out, cert)
	}
	return true
}

// expired reports whether a session made at createdAt may no longer be
// resumed at now. A creation time in the future (a clock that went
// backwards, or a forged state) counts as expired.
func (s *sessionState) expired(now time.Time, lifetime time.Duration) bool {
	created := time.Unix(int64(s.createdAt), 0)
	return now.Before(created.Add(-time.Minute)) || !now.Before(created.Add(lifetime))
}

// sessionLifetime is Config.SessionLifetime with its default and bound.
func (c *Config) sessionLifetime() time.Duration {
	if c == nil || c.SessionLifetime <= 0 {
		return defaultSessionLifetime
	}
	return min(c.SessionLifetime, maxSessionLifetime)
}

// sessionCacheSize is Config.SessionCacheSize with its default and bound.
func (c *Config) sessionCacheSize() int {
	if c == nil || c.SessionCacheSize <= 0 {
		return defaultServerSessions
	}
	return min(c.SessionCacheSize, maxServerSessions)
}

// ticketKey is one key that seals and opens tickets. A ticket is
// key_name(16) ‖ nonce(24) ‖ XChaCha20-Poly1305(state), with key_name as
// additional data: the 192-bit random nonce cannot repeat, however many
// tickets one key seals.
type ticketKey struct {
	name    [ticketKeyNameLen]byte
	key     [chacha20poly1305.KeySize]byte
	created time.Time
}

// newTicketKey derives a ticket key from a 32-byte secret, so that servers
// sharing the secret share the key.
func newTicketKey(secret [32]byte, created time.Time) ticketKey {
	h := sha512.Sum512(secret[:])
	var k ticketKey
	copy(k.name[:], h[:ticketKeyNameLen])
	copy(k.key[:], h[ticketKeyNameLen:ticketKeyNameLen+chacha20poly1305.KeySize])
	k.created = created
	return k
}

// serverResumption is a server Config's mutable resumption state: ticket
// keys and the session ID cache. Config holds a pointer to it, created on
// first use, so that copying a Config does not copy a lock.
type serverResumption struct {
	mu       sync.Mutex
	keys     []ticketKey // from SetSessionTicketKeys, newest first; never modified in place
	autoKeys []ticketKey // automatic keys, newest first, when keys is empty
	sessions map[string]*list.Element
	lru      list.List // of *cachedSession, most recently used first

	// Keys derived from Config.FleetSecret (fleet.go), for one period,
	// secret and session lifetime.
	fleetKeys     []ticketKey
	fleetPeriod   int64
	fleetSecret   []byte
	fleetLifetime time.Duration

	// strikes records the 0-RTT ClientHellos this server accepted
	// (early_data_dtls13.go), against replays.
	strikes earlyDataStrikes
}

type cachedSession struct {
	id    string
	state *sessionState
}

// configMu guards the lazy creation of Config.resumption, and Clone's
// copy of that pointer.
var configMu sync.Mutex

func (c *Config) resumptionState() *serverResumption {
	configMu.Lock()
	defer configMu.Unlock()
	if c.resumption == nil {
		c.resumption = &serverResumption{}
	}
	return c.resumption
}

// SetSessionTicketKeys sets the keys of a server's session tickets. The
// first key seals new tickets; all of them open tickets, so a key can be
// rotated out gradually: prepend the new one, drop the oldest later.
// Servers behind one address share tickets by sharing keys. Each key must
// be random, and secret: it protects the master secrets of every session
// it sealed. With no keys, the server goes back to its own keys, made at
// random and rotated daily, or derived from Config.FleetSecret. It may be
// called while the Config is in use.
func (c *Config) SetSessionTicketKeys(keys [][32]byte) {
	now := c.time()
	var ks []ticketKey
	for _, secret := range keys {
		ks = append(ks, newTicketKey(secret, now))
	}
	r := c.resumptionState()
	r.mu.Lock()
	r.keys = ks
	r.mu.Unlock()
}

// ticketKeys returns the keys to seal (the first) and open tickets with,
// rotating the automatic keys when due.
func (c *Config) ticketKeys(now time.Time) ([]ticketKey, error) {
	r := c.resumptionState()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.keys) > 0 {
		return r.keys, nil
	}
	if c.FleetSecret != nil {
		return r.fleetTicketKeysLocked(c, now) // fleet.go
	}
	if len(r.autoKeys) == 0 || !now.Before(r.autoKeys[0].created.Add(ticketKeyRotation)) || now.Before(r.autoKeys[0].created) {
		var secret [32]byte
		if _, err := io.ReadFull(c.rand(), secret[:]); err != nil {
			return nil, err
		}
		keys := []ticketKey{newTicketKey(secret, now)}
		for _, k := range r.autoKeys {
			if now.Before(k.created.Add(ticketKeyRotation+c.sessionLifetime())) && !now.Before(k.created) {
				keys = append(keys, k)
			}
		}
		r.autoKeys = keys
	}
	return r.autoKeys, nil
}

// sealTicket encrypts a session state into a ticket with the newest key.
func (c *Config) sealTicket(state []byte) ([]byte, error) {
	keys, err := c.ticketKeys(c.time())
	if err != nil {
		return nil, err
	}
	k := &keys[0]
	aead, err := chacha20poly1305.NewX(k.key[:])
	if err != nil {
		return nil, err
	}
	ticket := make([]byte, ticketKeyNameLen+aead.NonceSize(), ticketKeyNameLen+aead.NonceSize()+len(state)+aead.Overhead())
	copy(ticket, k.name[:])
	if _, err := io.ReadFull(c.rand(), ticket[ticketKeyNameLen:]); err != nil {
		return nil, err
	}
	nonce := ticket[ticketKeyNameLen:]
	return aead.Seal(ticket, nonce, state, k.name[:]), nil
}

// openTicket decrypts a ticket. It returns nil for a ticket that no
// current key opens (unknown key, tampered, truncated), and whether the
// key was the newest one: tickets sealed with an older key are renewed.
func (c *Config) openTicket(ticket []byte) (state []byte, newest bool) {
	keys, err := c.ticketKeys(c.time())
	if err != nil {
		return nil, false
	}
	const overhead = ticketKeyNameLen + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	if len(ticket) < overhead {
		return nil, false
	}
	name := ticket[:ticketKeyNameLen]
	for i := range keys {
		k := &keys[i]
		if subtle.ConstantTimeCompare(k.name[:], name) != 1 {
			continue
		}
		aead, err := chacha20poly1305.NewX(k.key[:])
		if err != nil {
			return nil, false
		}
		nonce := ticket[ticketKeyNameLen : ticketKeyNameLen+chacha20poly1305.NonceSizeX]
		plain, err := aead.Open(nil, nonce, ticket[ticketKeyNameLen+chacha20poly1305.NonceSizeX:], name)
		if err != nil {
			return nil, false
		}
		return plain, i == 0
	}
	return nil, false
}

// cacheSession records a completed session under its ID, evicting the
// least recently used one when the cache is full.
func (c *Config) cacheSession(id []byte, s *sessionState) {
	r := c.resumptionState()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions == nil {
		r.sessions = make(map[string]*list.Element)
	}
	if e, ok := r.sessions[string(id)]; ok {
		e.Value.(*cachedSession).state = s
		r.lru.MoveToFront(e)
		return
	}
	r.sessions[string(id)] = r.lru.PushFront(&cachedSession{id: string(id), state: s})
	for r.lru.Len() > c.sessionCacheSize() {
		e := r.lru.Back()
		delete(r.sessions, e.Value.(*cachedSession).id)
		r.lru.Remove(e)
	}
}

// cachedSessionFor returns the live session cached under id, or nil. An
// expired session is dropped.
func (c *Config) cachedSessionFor(id []byte, now time.Time) *sessionState {
	r := c.resumptionState()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.sessions[string(id)]
	if !ok {
		return nil
	}
	s := e.Value.(*cachedSession).state
	if s.expired(now, c.sessionLifetime()) {
		delete(r.sessions, string(id))
		r.lru.Remove(e)
		return nil
	}
	r.lru.MoveToFront(e)
	return s
}

// ClientSessionState is a client's resumable session: the ticket or
// session ID the server gave it, the state of the full handshake, and the
// round-trip time measured on that connection, which starts the next
// handshake with the same server (RFC 9147 §5.8.2). It is opaque; a
// ClientSessionCache stores it. Nothing of it but the ticket or session ID
// is sent to the server.
type ClientSessionState struct {
	ticket     []byte // RFC 5077 ticket, or a DTLS 1.3 ticket (state.version 1.3), or nil
	sessionID  []byte // the server's session ID, when there is no ticket
	state      *sessionState
	receivedAt time.Time
	lifetime   time.Duration // the server's ticket_lifetime_hint; 0: none given
	rtt        time.Duration // smoothed RTT of the connection that made it; 0: none measured
	// maxEarlyData is a DTLS 1.3 ticket's max_early_data_size (RFC 8446
	// §4.6.1): how many bytes of 0-RTT data it allows; 0: none.
	maxEarlyData uint32
	// tickets13 holds the server's unused DTLS 1.3 tickets, this one
	// among them until a ClientHello takes it (resume_dtls13.go).
	tickets13 *clientTickets13
}

// ClientSessionCache is a cache of ClientSessionState objects that a
// client uses to resume sessions with a server. Keys are the server's
// name (Config.ServerName) or, without one, its address. Implementations
// must be safe for concurrent use. Put with a nil state deletes the entry.
type ClientSessionCache interface {
	Get(sessionKey string) (session *ClientSessionState, ok bool)
	Put(sessionKey string, cs *ClientSessionState)
}

// NewLRUClientSessionCache returns a ClientSessionCache holding at most
// capacity sessions, evicting the least recently used. A capacity below 1
// means 64.
func NewLRUClientSessionCache(capacity int) ClientSessionCache {
	if capacity < 1 {
		capacity = defaultClientSessionCacheCapacity
	}
	return &lruSessionCache{capacity: capacity, m: make(map[string]*list.Element)}
}

type lruSessionCache struct {
	mu       sync.Mutex
	capacity int
	m        map[string]*list.Element
	q        list.List // of *lruSessionEntry, most recent first
}

type lruSessionEntry struct {
	key   string
	state *ClientSessionState
}

func (c *lruSessionCache) Put(key string, cs *ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		if cs == nil {
			c.q.Remove(e)
			delete(c.m, key)
			return
		}
		e.Value.(*lruSessionEntry).state = cs
		c.q.MoveToFront(e)
		return
	}
	if cs == nil {
		return
	}
	c.m[key] = c.q.PushFront(&lruSessionEntry{key: key, state: cs})
	if c.q.Len() > c.capacity {
		e := c.q.Back()
		c.q.Remove(e)
		delete(c.m, e.Value.(*lruSessionEntry).key)
	}
}

func (c *lruSessionCache) Get(key string) (*ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		c.q.MoveToFront(e)
		return e.Value.(*lruSessionEntry).state, true
	}
	return nil, false
}
