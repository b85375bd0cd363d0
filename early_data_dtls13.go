package dtls

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DTLS 1.3 0-RTT early data (RFC 8446 §2.3, §4.2.10, §4.6.1, §8; RFC 9147
// §5.6, §6.1), off unless Config.MaxEarlyData (server) and
// Config.EnableEarlyData (client) turn it on.
//
// A server that allows 0-RTT puts max_early_data_size in the early_data
// extension of its NewSessionTicket and in the ticket's sealed state,
// with the time it issued the ticket. A client with such a ticket and
// datagrams given to Conn.WriteEarlyData offers early_data with the
// ticket as its first PSK, derives client_early_traffic_secret over
// Hash(ClientHello) and sends each datagram as one application_data
// record of epoch 1 (RFC 9147 §6.1), in datagrams of their own after the
// ClientHello's; they are resent, byte for byte, with each
// retransmission of the ClientHello until the server answers, so that
// the server's replay window drops the copies. DTLS has no
// EndOfEarlyData (RFC 9147 §5.6: omitted from the wire and the
// transcript; the epoch tells where early data ends).
//
// The server accepts the early data (early_data in EncryptedExtensions)
// only when all of these hold (RFC 8446 §4.2.10): the client offered
// early_data in its first ClientHello; the first PSK identity is a ticket
// of ours that allowed 0-RTT, for the suite and ALPN protocol this
// handshake selects and the same server name; its binder verifies; the
// ticket age the client reports matches the time since we issued the
// ticket within earlyDataWindow (§8.3); and the ClientHello is new to the
// strike register (§8.2). Otherwise the handshake goes on without 0-RTT
// (with a cookie exchange when the address is unproven), and the
// client's epoch-1 records are skipped: DTLS needs no trial decryption,
// the epoch bits of the unified header say which records are early.
//
// Anti-replay, exactly:
//   - The server application sees early data only after the handshake
//     completed (Conn.EarlyData; Read never returns it), and a
//     handshake completes only with the client that holds the key share
//     and PSK of the ClientHello. So a recorded ClientHello replayed by
//     anyone else never delivers its early data to an application: the
//     handshake it starts stalls before the client's Finished. What a
//     replay can do is make a server decrypt and buffer the early data
//     (up to the ticket's limit) for a handshake that will not finish,
//     and, if the attacker also drops the client's own flight to that
//     server, deliver the client's data once at another server of the
//     fleet instead of the intended one: it is still delivered once.
//   - Within one server (one Config, shared by its Listeners, its Server
//     conns and Clones): a ClientHello's early data is accepted at most
//     once. The strike register (§8.2) keeps the hash of each accepted
//     ClientHello's first binder, with its source address, until the end
//     of its freshness window (expected arrival + earlyDataWindow); a
//     ClientHello outside that window is refused by the freshness check
//     (§8.3), so forgetting it after is safe. The same ClientHello again
//     from the same address is the client retransmitting it: a
//     Listener lets it through to the connection it started. The
//     register holds at most maxEarlyDataStrikes entries; full of live
//     entries, it refuses 0-RTT (fails closed) rather than forget one.
//   - Across a fleet sharing FleetSecret (whose servers open each
//     other's tickets): each server keeps its own register, so a
//     recorded ClientHello can have its early data accepted (buffered)
//     once per server within the window; by the first point, at most one
//     of those handshakes completes. A fleet that wants at-most-once
//     acceptance across servers as well sets Config.EarlyDataReplayCheck
//     to a shared set-if-absent store; the local register is checked
//     first.
//
// The address check: a ClientHello whose early data would be accepted is
// answered without a HelloRetryRequest (RFC 9147 §5.1: a server "MAY
// choose not to do a cookie exchange when ... the DTLS handshake uses a
// PSK-based key exchange"); its binder proves the sender holds a ticket
// of ours, our PSK flight (ServerHello, EncryptedExtensions, Finished)
// is smaller than such a ClientHello, and the strike register makes
// each one good for one flight. A Listener's hello gate decides this
// statelessly but for the register (helloGate.check13). The bytes that
// flight and its retransmissions send to the unproven address are
// counted against a budget (below).

// The address budget: a server that takes a 0-RTT ClientHello without a
// cookie exchange sends that address at most amplificationFactor (3)
// times the bytes it received from it until the address is proven
// (draft-ietf-tls-rfc9147bis §5.1: a server "SHOULD limit the amount of
// data it sends toward a client address to three times the amount of data
// sent by the client before it verifies that the client is able to receive
// data at that address"; the same limit as RFC 9853 §2's for a new path,
// rrc.go's addrBudget). The bytes received are the datagram of the
// ClientHello and every datagram from the address after it (early data, a
// retransmitted ClientHello); what we send is our flight and its
// retransmissions. A datagram that would pass the budget is held back, not
// sent: the flight's timer runs on, and the client's own retransmission of
// its ClientHello (it resends it with its early data when our flight does
// not come) raises the budget. A real client's PSK flight (ServerHello,
// EncryptedExtensions, Finished, no certificate) is smaller than its
// ClientHello, so it goes at once, and its first retransmission too; a
// ClientHello replayed from a forged source gets the victim at most three
// times its bytes, once (the strike register refuses a second copy).

// startAddrBudget makes the server count the bytes it sends to the
// client's address against the budget, from the datagram of the
// ClientHello it is handling.
func (c *Conn) startAddrBudget() {
	c.early.budget = addrBudget{received: c.dgramLen}
	c.early.unproven.Store(true)
}

// noteDatagramReceived counts a datagram from the client's address while
// it is unproven. Called with c.in held.
func (c *Conn) noteDatagramReceived(n int) {
	if c.early.unproven.Load() {
		c.early.budget.received += n
	}
}

// noteAddrProven ends the budget once a record of epoch 2 or later
// authenticated. Called with c.in held.
func (c *Conn) noteAddrProven(epoch uint64) {
	if epoch >= 2 && c.early.unproven.Load() {
		c.early.unproven.Store(false)
		if c.config.Tracer != nil {
			c.trace(&TraceEvent{Kind: TracePathValidation, Reason: fmt.Sprintf("0-RTT client address proven: %d bytes sent for %d received", c.early.budget.sent, c.early.budget.received)})
		}
	}
}

// budgetAllows reports whether a datagram of n bytes may go to the
// client's address now, and counts it if so. Called with c.out held.
func (c *Conn) budgetAllows(n int) bool {
	if !c.early.unproven.Load() {
		return true
	}
	b := &c.early.budget
	if !b.allows(n) {
		if c.config.Tracer != nil {
			c.trace(&TraceEvent{Kind: TracePathValidation, Reason: fmt.Sprintf("datagram held back: anti-amplification limit of an unproven 0-RTT client (%d bytes sent, %d received)", b.sent, b.received)})
		}
		return false
	}
	b.sent += n
	return true
}

// Bounds of 0-RTT.
const (
	// maxEarlyDataLimit caps Config.MaxEarlyData: the bytes of early data
	// a server buffers for one connection until its handshake completes.
	maxEarlyDataLimit = 1 << 16
	// maxEarlyDatagrams bounds the datagrams a client queues with
	// WriteEarlyData, and so the datagrams it resends with each
	// ClientHello retransmission; and the early datagrams a server keeps
	// for EarlyData (maxEarlyDataLimit alone would not bound empty ones).
	maxEarlyDatagrams = 16
	// earlyDataWindow is the freshness tolerance of RFC 8446 §8.3: how
	// far the time a 0-RTT ClientHello arrives may be from the time its
	// reported ticket age predicts. §8.3 leaves the size to the server;
	// it must cover the round trip, the client's clock rate error over the
	// ticket's age and a few ClientHello retransmissions (1 s, 2 s, 4 s
	// with the default timer), and it bounds how long the strike register
	// keeps an entry.
	earlyDataWindow = 10 * time.Second
	// maxEarlyDataStrikes bounds the strike register (RFC 8446 §8.2): the
	// 0-RTT ClientHellos accepted in the last 2×earlyDataWindow that one
	// server remembers, about 100 bytes each with the map's overhead
	// (under 2 MB in all); 16384 per 20 s is over 800 0-RTT handshakes a
	// second. Past it, 0-RTT is refused until entries expire.
	maxEarlyDataStrikes = 1 << 14
)

// keyLogClientEarly is the NSS key log label of the 0-RTT secret.
const keyLogClientEarly = "CLIENT_EARLY_TRAFFIC_SECRET"

// earlyState is a Conn's 0-RTT state.
type earlyState struct {
	// A client's: the datagrams WriteEarlyData queued and their total
	// length, the epoch-1 write keys and next sequence number, and the
	// sealed datagrams resent with the ClientHello.
	out    [][]byte
	outLen int
	keys   *epochKeys13
	seq    uint64
	sent   [][]byte

	// A server's: the early data accepted so far and its ticket's limit;
	// rejected when the client offered early data we did not accept
	// (its epoch-1 records are skipped, counted as dropEarlyData).
	in       [][]byte
	received int
	max      uint32
	rejected bool

	// A server's that answers a 0-RTT ClientHello without a cookie
	// exchange: unproven until a record of the client in epoch 2 or later
	// authenticates (only the holder of the PSK and of the key share of
	// the ClientHello can make one, so it proves the client receives our
	// flight at that address), and the address's budget meanwhile
	// (noteDatagramReceived, budgetAllows). Written by the handshake's
	// goroutine only; read by sendFlight, which runs there too until the
	// handshake ends (and so after the address is proven).
	unproven atomic.Bool
	budget   addrBudget
}

// earlyDataStrikes is a server's strike register (RFC 8446 §8.2): the ids
// of the 0-RTT ClientHellos it accepted, each until its freshness window
// ends.
type earlyDataStrikes struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]strike
}

// strike is one entry of the register: until when it is kept, and the
// address the ClientHello came from.
type strike struct {
	expires time.Time
	addr    netip.AddrPort
}

// record adds id, from addr, valid until expires, and reports whether it
// is new (fresh), or the same ClientHello again from the address it was
// accepted from (again): a client retransmitting its ClientHello, which
// its connection, not a new one, takes. A full register drops its
// expired entries first; if it is still full, it refuses (0-RTT is then
// rejected, never an entry forgotten early).
func (s *earlyDataStrikes) record(id [sha256.Size]byte, addr netip.AddrPort, now, expires time.Time) (fresh, again bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[[sha256.Size]byte]strike)
	}
	if e, ok := s.m[id]; ok && now.Before(e.expires) {
		return false, e.addr == addr
	}
	if len(s.m) >= maxEarlyDataStrikes {
		for k, e := range s.m {
			if !now.Before(e.expires) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= maxEarlyDataStrikes {
			return false, false
		}
	}
	s.m[id] = strike{expires, addr}
	return true, false
}

// maxEarlyData is the max_early_data_size a server puts in its tickets.
func (cfg *Config) maxEarlyData() uint32 {
	return min(cfg.MaxEarlyData, maxEarlyDataLimit)
}

// earlyDataTicket checks, without any state, whether the 0-RTT data of
// ClientHello ch may be accepted when the handshake selects suite and
// alpn: every condition of RFC 8446 §4.2.10 and the freshness check of
// §8.3 but the strike register. It returns the ClientHello's id for the
// register and when that entry may be forgotten.
func (cfg *Config) earlyDataTicket(now time.Time, ch *clientHelloMsg13, suite *cipherSuite13, alpn string) (id [sha256.Size]byte, expires time.Time, ok bool) {
	if cfg.maxEarlyData() == 0 || !ch.earlyData || len(ch.cookieExt) != 0 || cfg.SessionTicketsDisabled ||
		len(ch.pskIdentities) == 0 || len(ch.pskBinders) != len(ch.pskIdentities) || ch.pskNotLast || suite == nil ||
		!slices.Contains(ch.pskModes, pskModeDHE) && !slices.Contains(ch.pskModes, pskModePlain) {
		return id, expires, false
	}
	// §4.2.10: "The PSK used to encrypt the early data MUST be the first
	// PSK listed in the client's "pre_shared_key" extension."
	psk := ch.pskIdentities[0]
	plain, _ := cfg.openTicket(psk.label)
	if plain == nil {
		return id, expires, false
	}
	s := parseSessionState(plain)
	if s == nil || s.isClient || s.version != VersionDTLS13 || s.maxEarlyData == 0 ||
		s.expired(now, cfg.sessionLifetime()) || s.cipherSuite != suite.id || s.alpn != alpn ||
		s.serverName != ch.serverName || len(s.pskIdentity) > 0 {
		return id, expires, false
	}
	// §8.3: expected_arrival_time = the ticket's issue time + the age
	// the client reports, within earlyDataWindow of now.
	age := time.Duration(psk.obfuscatedTicketAge-s.ageAdd) * time.Millisecond
	expected := time.UnixMilli(int64(s.issuedAt)).Add(age)
	if d := now.Sub(expected); d > earlyDataWindow || d < -earlyDataWindow {
		return id, expires, false
	}
	truncated, err := ch.truncatedForBinders(ch.original)
	if err != nil {
		return id, expires, false
	}
	want, err := pskBinder13(suite.hash, false, s.masterSecret, nil, truncated, len(ch.original))
	if err != nil || !hmac.Equal(want, ch.pskBinders[0]) {
		return id, expires, false
	}
	return sha256.Sum256(ch.pskBinders[0]), expected.Add(earlyDataWindow), true
}

// recordEarlyData enters an accepted 0-RTT ClientHello from addr in the
// strike register, and in the fleet's store when
// Config.EarlyDataReplayCheck is set, and reports whether it is new to
// both; with retransmit, the same ClientHello from the address it was
// first accepted from counts as new too (helloGate.check13 lets a
// client's retransmission through to its connection).
func (cfg *Config) recordEarlyData(id [sha256.Size]byte, addr netip.AddrPort, now, expires time.Time, retransmit bool) bool {
	fresh, again := cfg.resumptionState().strikes.record(id, addr, now, expires)
	if !fresh {
		return again && retransmit
	}
	if f := cfg.EarlyDataReplayCheck; f != nil {
		return f(slices.Clone(id[:]), expires)
	}
	return true
}

// alpnFor is the ALPN protocol a server with cfg selects for ch
// (selectALPN in the handshake, admitEarlyData before it): its first that the client offers,
// "" when either offers none; ok is false when no protocol is in common.
func alpnFor(cfg *Config, ch *clientHelloMsg13) (string, bool) {
	if len(ch.alpnProtocols) == 0 || len(cfg.NextProtos) == 0 {
		return "", true
	}
	for _, p := range cfg.NextProtos {
		if slices.Contains(ch.alpnProtocols, p) {
			return p, true
		}
	}
	return "", false
}

// admitEarlyData is the hello gate's exception to its cookie exchange
// (helloGate.check13): a first ClientHello whose early data the
// connection will accept, with a key share for a group we accept (so
// that the connection needs no HelloRetryRequest of its own: it takes
// that share even when it prefers another group, keyshare_dtls13.go), is
// admitted without a cookie, and entered in the strike register here; a
// replay gets the cookie exchange like any ClientHello.
func (cfg *Config) admitEarlyData(now time.Time, addr netip.AddrPort, ch *clientHelloMsg13) bool {
	if cfg.maxEarlyData() == 0 || !ch.earlyData {
		return false
	}
	p, ok := hrrParamsFor(cfg, ch)
	if !ok {
		return false
	}
	if g, _ := offeredShare13(cfg, ch); g == 0 {
		return false
	}
	alpn, ok := alpnFor(cfg, ch)
	if !ok {
		return false
	}
	id, expires, ok := cfg.earlyDataTicket(now, ch, cipherSuite13ByID(p.suite), alpn)
	return ok && cfg.recordEarlyData(id, addr, now, expires, true)
}

// earlyDataCandidate reports whether this handshake will accept the
// client's early data, so that it skips the cookie exchange: the checks
// of earlyDataTicket and of ticketSession (that the ticket resumes
// here), and the strike register unless a Listener's gate
// already entered this ClientHello there when it admitted it without a
// cookie (the only way a Listener's 1.3 connection starts without one).
func (hs *serverHandshakeState13) earlyDataCandidate() bool {
	c := hs.c
	now := c.config.time()
	id, expires, ok := c.config.earlyDataTicket(now, hs.hello, hs.suite, hs.state.alpn)
	if !ok || hs.ticketSession(hs.hello.pskIdentities[0]) == nil {
		// The second: what acceptPSK asks of a ticket to resume with it
		// (client authentication, a certificate still configured).
		return false
	}
	if c.listener != nil && c.listener.gate.cookies != nil {
		return true // admitted by helloGate.check13's admitEarlyData
	}
	return c.config.recordEarlyData(id, addrPort(c.io.remoteAddr()), now, expires, false)
}

// acceptEarlyData takes the early data of a candidate ClientHello once
// acceptPSK selected its first PSK, the ticket's: it derives
// client_early_traffic_secret over Hash(ClientHello) (RFC 8446 §7.1; the
// transcript holds only the ClientHello, as there was no
// HelloRetryRequest) and starts reading epoch 1. A ClientHello that
// offered early data we do not take has its epoch-1 records skipped.
func (hs *serverHandshakeState13) acceptEarlyData(candidate bool) error {
	c := hs.c
	if !hs.hello.earlyData || !candidate || hs.session == nil || hs.pskIndex != 0 || hs.trPrefix != nil {
		return nil // early.rejected stays as markEarlyData set it
	}
	c.early.rejected = false
	// hs.early: the Early Secret acceptPSK made to check the binder.
	secret, err := hs.early.clientEarlyTrafficSecret(hs.transcript.Sum(nil))
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	c.logSecret13(keyLogClientEarly, hs.hello.random, secret)
	rk, err := newEpochKeys13(hs.suite, 1, secret)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	hs.state.earlyData = true
	c.early.max = min(hs.session.maxEarlyData, c.config.maxEarlyData())
	return c.installReadEpoch13(rk)
}

// markEarlyData notes, when a server reads a first ClientHello, whether
// it offered early data: until acceptEarlyData takes it, the client's
// epoch-1 records are skipped (skipEarlyRecord), also while a
// HelloRetryRequest is answered.
func (c *Conn) markEarlyData(ch *clientHelloMsg13) {
	c.early.rejected = ch.earlyData
}

// handleEarlyRecord takes a record of epoch 1 on a server that accepted
// early data (the client's epoch-1 keys are installed only then, and
// replaced by epoch 3's, which share the epoch bits, once the client's
// Finished verified: RFC 9147 §5.6 "Servers SHOULD NOT accept records
// from epoch 1 indefinitely once they are able to process records from
// epoch 3"). Application data is kept for Conn.EarlyData; more than the
// ticket's max_early_data_size is an unexpected_message (RFC 8446
// §4.6.1). No handshake message belongs in epoch 1 in DTLS (RFC 9147
// §5.6: no EndOfEarlyData).
func (c *Conn) handleEarlyRecord(hdr recordHeader, data []byte) error {
	switch {
	case c.isClient:
		c.drop(dropBadContentType, hdr)
		return nil
	case hdr.typ == recordTypeApplicationData:
		c.early.received += len(data)
		if c.early.received > int(c.early.max) {
			return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: more than max_early_data_size (%d bytes) of early data", c.early.max))
		}
		if len(c.early.in) < maxEarlyDatagrams {
			c.early.in = append(c.early.in, slices.Clone(data))
		} // more are dropped, as a datagram lost on the way would be
		return nil
	case hdr.typ == recordTypeAlert:
		return c.handleAlert(hdr, data)
	case hdr.typ == recordTypeHandshake:
		return c.fail(alertUnexpectedMessage, errors.New("dtls: handshake message in epoch 1 (DTLS 1.3 has no EndOfEarlyData)"))
	}
	c.drop(dropBadContentType, hdr)
	return nil
}

// skipEarlyRecord reports whether a record that arrived for an epoch we
// hold no keys for is early data we rejected, and drops it: the record
// has epoch bits 1 before epoch 3 is installed on a server that refused
// the client's 0-RTT. RFC 8446 §4.2.10 has a server skip such records "up
// to the configured max_early_data_size"; we count them (dropEarlyData)
// but never end the handshake over them, since anyone can send records
// with those bits. (A client's epoch-3 record that overtakes its Finished has the
// same bits and is lost with them, as any datagram may be.)
func (c *Conn) skipEarlyRecord(hdr recordHeader) bool {
	if c.isClient || !c.early.rejected || hdr.epoch != 1 || c.handshakeComplete.Load() {
		return false
	}
	c.drop(dropEarlyData, hdr)
	return true
}

// EarlyData returns, on a server, the datagrams the client sent as 0-RTT
// data (DTLS 1.3 with Config.MaxEarlyData) that arrived before the
// handshake completed, in arrival order, each once: a second call
// returns nil; at most 16 datagrams, those after are dropped. Call it
// after Handshake, when ConnectionState().EarlyDataAccepted is true. Read
// never returns early data, so an application always knows which bytes
// were early.
//
// Early data is not forward secret and may have been replayed: the
// server accepts a ClientHello's early data once (once per server of a
// fleet without Config.EarlyDataReplayCheck), but an attacker who
// recorded it can still have it delivered in place of the client's own
// connection. Act on it only if a replay is harmless (RFC 8446 §8, §E.5).
// Early datagrams lost on the way are not resent.
func (c *Conn) EarlyData() [][]byte {
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if c.isClient || !c.handshakeComplete.Load() {
		return nil
	}
	in := c.early.in
	c.early.in = nil
	return in
}

// WriteEarlyData queues b as one datagram of 0-RTT data for the coming
// DTLS 1.3 handshake of a client Conn with Config.EnableEarlyData. It
// must be called before the handshake starts (before Handshake, Read or
// Write); at most 16 datagrams and 65536 bytes. The handshake sends them
// right after the ClientHello if a cached ticket allows as many bytes,
// and ConnectionState().EarlyDataAccepted then says whether the server
// took them; when it did not, or no ticket allowed them, they are not
// sent later: write them again after the handshake if they still apply.
// Like any datagram, an accepted early datagram can be lost.
//
// Why a method before the handshake: the payload belongs to one
// connection, not to a Config that many share; and it must exist before
// the ClientHello is sent, which crypto/tls's Write (after the
// handshake) cannot express. quic-go's DialEarly returns a connection
// that writes during the handshake instead; a queue filled before it is
// the smaller API for datagrams, which are never retransmitted by DTLS.
func (c *Conn) WriteEarlyData(b []byte) (int, error) {
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	switch {
	case !c.isClient:
		return 0, errors.New("dtls: WriteEarlyData on a server connection")
	case !c.config.EnableEarlyData:
		return 0, errors.New("dtls: WriteEarlyData without Config.EnableEarlyData")
	case !c.hsStart.IsZero() || c.handshakeComplete.Load() || c.handshakeErr != nil:
		return 0, errors.New("dtls: WriteEarlyData after the handshake started")
	case len(b) == 0 || len(b) > maxPlaintext:
		return 0, errors.New("dtls: early datagram empty or longer than a record")
	case len(c.early.out) >= maxEarlyDatagrams || c.early.outLen+len(b) > maxEarlyDataLimit:
		return 0, errors.New("dtls: too much early data")
	}
	c.early.out = append(c.early.out, slices.Clone(b))
	c.early.outLen += len(b)
	return len(b), nil
}

// offerEarlyData adds early_data to a client's first ClientHello when the
// ticket offered first allows the queued early data (RFC 8446 §4.2.10:
// the early data's parameters are the ticket's, so its suite must be
// offered and its ALPN protocol too, if it had one).
func (hs *clientHandshakeState13) offerEarlyData(m *clientHelloMsg13) {
	c := hs.c
	if !c.config.EnableEarlyData || len(c.early.out) == 0 || len(hs.psks) == 0 || hs.psks[0].session == nil || hs.psks[0].reused {
		// A reused ticket (resume_dtls13.go) carries no 0-RTT data:
		// a server that makes tickets single-use refuses it.
		return
	}
	cs := hs.psks[0].session
	s := cs.state
	if cs.maxEarlyData == 0 || c.early.outLen > int(cs.maxEarlyData) || !slices.Contains(m.cipherSuites, s.cipherSuite) || len(s.pskIdentity) > 0 {
		return
	}
	if s.alpn != "" && !slices.Contains(m.alpnProtocols, s.alpn) {
		return
	}
	m.earlyData = true
}

// deriveEarlyKeys derives the client's epoch-1 keys from the first PSK
// (the ticket; its Early Secret made by bindPSK) and Hash(ClientHello) of
// the body about to be sent, and logs CLIENT_EARLY_TRAFFIC_SECRET.
func (hs *clientHandshakeState13) deriveEarlyKeys(body []byte) error {
	c := hs.c
	p := hs.psks[0]
	suite := cipherSuite13ByID(p.session.state.cipherSuite)
	th := p.hash.New()
	th.Write(appendTranscriptMessage13(nil, typeClientHello, body))
	secret, err := p.early.clientEarlyTrafficSecret(th.Sum(nil))
	if err != nil {
		return err
	}
	c.logSecret13(keyLogClientEarly, hs.hello.random, secret)
	keys, err := newEpochKeys13(suite, 1, secret)
	if err != nil {
		return err
	}
	c.early.keys, c.early.seq = keys, 0
	return nil
}

// sendEarlyData sends the queued early data after the first ClientHello:
// each datagram one application_data record of epoch 1, in a datagram
// of its own (a server reads the ClientHello's datagram before it has
// the keys). The sealed datagrams are kept for resendEarlyData.
func (c *Conn) sendEarlyData() error {
	k := c.early.keys
	if k == nil {
		return nil
	}
	c.out.Lock()
	defer c.out.Unlock()
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceEpochChanged, Epoch: 1, Reason: "write"})
	}
	for _, d := range c.early.out {
		buf, err := k.sealRecord13(make([]byte, 0, len(d)+k.overhead(0)+rneSampleLen), nil, c.early.seq, recordTypeApplicationData, d, 0, true, true)
		if err != nil {
			return err
		}
		if c.config.Tracer != nil {
			c.trace(&TraceEvent{Kind: TraceRecordSent, Epoch: 1, Seq: c.early.seq, ContentType: uint8(recordTypeApplicationData), Length: len(d), Version: VersionDTLS13})
			c.trace(&TraceEvent{Kind: TraceDatagramSent, Length: len(buf), Datagram: buf})
		}
		c.early.seq++
		c.early.sent = append(c.early.sent, buf)
		if err := c.io.writeDatagram(buf); err != nil {
			return err
		}
	}
	return nil
}

// answered drops a client's queued and sealed early data once the server
// answered its ClientHello: nothing is resent after that. The keys stay,
// for acceptedEarlyData.
func (e *earlyState) answered() {
	e.out, e.sent, e.outLen = nil, nil, 0
}

// resendEarlyData sends the early data again, the same records, with a
// retransmitted ClientHello, until the server answered (c.vers is set by
// its ServerHello or HelloRetryRequest, or a 1.2 HelloVerifyRequest
// clears the early keys). Called with c.out held.
func (c *Conn) resendEarlyData() error {
	if c.vers != 0 || c.early.keys == nil {
		return nil
	}
	for _, buf := range c.early.sent {
		if c.config.Tracer != nil {
			c.trace(&TraceEvent{Kind: TraceDatagramSent, Length: len(buf), Datagram: buf})
		}
		if err := c.io.writeDatagram(buf); err != nil {
			return err
		}
	}
	return nil
}

// acceptedEarlyData checks the server's early_data in
// EncryptedExtensions (RFC 8446 §4.2.10): only if we offered it in a
// ClientHello it answered without a HelloRetryRequest, with our first
// PSK selected ("If any other value is returned, the client MUST abort
// the handshake with an "illegal_parameter" alert") and the ticket's ALPN
// protocol.
func (hs *clientHandshakeState13) acceptedEarlyData(ee *encryptedExtensionsMsg13) error {
	c := hs.c
	if !hs.hello.earlyData || hs.sentHRR || c.early.keys == nil {
		return c.fail(alertUnsupportedExtension, errors.New("dtls: server accepted early data we did not send"))
	}
	sh := hs.serverHello
	if !sh.hasSelectedIdentity || sh.selectedIdentity != 0 || hs.psks[0].session == nil {
		return c.fail(alertIllegalParameter, errors.New("dtls: server accepted early data with another PSK than the first"))
	}
	if ee.alpnProtocol != hs.psks[0].session.state.alpn {
		return c.fail(alertIllegalParameter, errors.New("dtls: server accepted early data with another ALPN protocol than the ticket's"))
	}
	hs.state.earlyData = true
	return nil
}
