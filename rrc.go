package dtls

import (
	"crypto/subtle"
	"io"
	"net/netip"
	"time"
)

// Return routability check (RFC 9853): a connection with Connection IDs
// whose peer's records arrive from a new address validates that address
// before it sends there.
//
// Without it the newest authenticated record that carries our CID moves
// the peer at once (RFC 9146 §6), so that anyone on the path who copies a
// fresh datagram and wins the race from another source address redirects
// our records there, and can point an amplified stream of them at a
// victim. With it, negotiated by the rrc extension (§3), such a record
// starts a path validation instead: our records keep going to the address
// we had, a path_challenge with a fresh 8-byte cookie goes to the new one,
// and only a path_response that echoes a cookie we sent moves the peer.
// While the new path is unproven we send to it at most three times what
// authenticated from it (the anti-amplification limit, §2).
//
// The state is one validation at a time (the RFC does not handle nested
// rebindings either, §5: a record from a third address during a check is
// processed but starts nothing), at most maxPathChallenges challenges per
// phase, paced with a doubling interval inside the timer T of §5.5, and at
// most maxPathValidations validations per pathValidationWindow, so that an
// attacker who forwards records from many addresses costs a bounded number
// of small datagrams. The timers run in the Conn's reader, like the
// handshake's: a connection that is read makes progress.
//
// The code is the same for DTLS 1.2 (tls12_cid records, RFC 9146) and
// DTLS 1.3: readRecord13 hands its records to the same handleOpened,
// which runs the check for a record with our CID. The extension goes in
// ClientHello and ServerHello in both versions (RFC 9853 §10.2); each
// version's handshake sets Conn.rrcNegotiated (the 1.3 ones in
// handshake_server_dtls13.go and handshake_client_dtls13.go).

// RRCPolicy says how a connection with Connection IDs follows a peer whose
// records arrive from a new address (Config.ReturnRoutabilityCheck). The
// names are RFC 9853 §5's two procedures.
type RRCPolicy uint8

const (
	// RRCBasic offers and accepts the rrc extension and, with a peer that
	// negotiated it, runs RFC 9853 §5.1's basic check: a path_challenge
	// to the new address, and the peer moves there when it answers. It
	// is the default (the zero value): RFC 9853 §3 says a client offering
	// connection_id SHOULD offer rrc, and §3.1 that a receiver SHOULD
	// check a new address. Basic rather than enhanced because a NAT
	// rebinding, the usual reason for CIDs, then costs one round trip
	// instead of the timer T (1 s) on the dead old path first.
	RRCBasic RRCPolicy = iota
	// RRCOff neither offers nor accepts rrc: the peer moves to the source
	// of the newest authenticated record, as RFC 9146 §6 allows.
	RRCOff
	// RRCEnhanced runs RFC 9853 §5.2's enhanced check, against an
	// off-path attacker who races copies of the peer's datagrams to put
	// itself on the path (§8.1.2): the first path_challenge goes to the
	// old address; a path_response there keeps the peer where it was,
	// and a path_drop or the timer T then runs the basic check on the new
	// address.
	RRCEnhanced
)

func (p RRCPolicy) String() string {
	switch p {
	case RRCBasic:
		return "basic"
	case RRCOff:
		return "off"
	case RRCEnhanced:
		return "enhanced"
	}
	return "unknown"
}

func (c *Config) rrcPolicy() RRCPolicy {
	if c == nil {
		return RRCBasic
	}
	return c.ReturnRoutabilityCheck
}

// rrc_msg_type values (RFC 9853 §4; IANA "TLS RRC Message Types").
const (
	rrcPathChallenge uint8 = 0
	rrcPathResponse  uint8 = 1
	rrcPathDrop      uint8 = 2
)

func rrcTypeName(t uint8) string {
	switch t {
	case rrcPathChallenge:
		return "path_challenge"
	case rrcPathResponse:
		return "path_response"
	case rrcPathDrop:
		return "path_drop"
	}
	return "unknown rrc_msg_type"
}

// rrcCookieLen is the size of the Cookie every RRC message carries
// (RFC 9853 §4: "an 8-byte field containing 64 bits of entropy").
const rrcCookieLen = 8

// rrcMessageLen is an RRC message: msg_type and the cookie.
const rrcMessageLen = 1 + rrcCookieLen

const (
	// pathValidationTimeout is RFC 9853 §5.5's timer T when no round trip
	// has been measured: "T SHOULD be set to 1 second".
	pathValidationTimeout = time.Second
	// minPathValidationTimeout is the floor of T = 3×RTT (§5.5's SHOULD
	// when the RTT is known): on a path of a millisecond, three of them
	// would not outlast a scheduler's hiccup.
	minPathValidationTimeout = 100 * time.Millisecond
	// maxPathChallenges bounds the path_challenges of one phase of a
	// validation (§5.3 allows several, "paced"): the first, then one at
	// T/4 and one at 3T/4, the interval doubling. Each has a fresh cookie.
	maxPathChallenges = 3
	// maxPathValidations is how many validations a connection starts per
	// pathValidationWindow. A peer that really moves needs one per move
	// (a phone between networks may flap a few times); records forwarded
	// from other addresses by an attacker start the rest, each costing
	// at most maxPathChallenges small records within the
	// anti-amplification limit of what that address sent.
	maxPathValidations   = 16
	pathValidationWindow = 10 * time.Second
	// amplificationFactor is RFC 9853 §2's anti-amplification limit: to an
	// unvalidated address we send at most three times the bytes that
	// authenticated from it.
	amplificationFactor = 3
)

// addrBudget is the anti-amplification limit on what we send to an
// address not yet proven to be the peer's: at most amplificationFactor
// times the bytes received from it. A path under validation (RFC 9853 §2)
// and the address of a 0-RTT ClientHello answered without a cookie
// exchange (draft-ietf-tls-rfc9147bis §5.1; early_data_dtls13.go) use it.
type addrBudget struct {
	received, sent int
}

// allows reports whether n more bytes may go to the address.
func (b *addrBudget) allows(n int) bool {
	return b.sent+n <= amplificationFactor*b.received
}

// pathPhase is where a validation is.
type pathPhase uint8

const (
	pathIdle     pathPhase = iota
	pathProbeOld           // RFC 9853 §5.2 step 2: challenges on the old path
	pathProbeNew           // §5.1: challenges on the new path
)

// pathValidation is a connection's return routability check, guarded by
// Conn.in (the reader).
type pathValidation struct {
	phase     pathPhase
	candidate netip.AddrPort // the new address
	old       netip.AddrPort // the peer's address when it started
	cookies   [maxPathChallenges][rrcCookieLen]byte
	sent      int       // challenges of this phase, and cookies used
	expires   time.Time // the end of this phase's timer T
	next      time.Time // the next challenge of this phase; zero: none
	interval  time.Duration
	timeout   time.Duration // T
	// budget counts the bytes that authenticated from the candidate and
	// those we sent it, for the anti-amplification limit.
	budget addrBudget
	// windowStart and started count validations for maxPathValidations.
	windowStart time.Time
	started     int
}

// pathIO is a datagramIO that can send to an address other than its peer's
// and move its peer: a Listener's connection. A client's connected socket
// sees one peer address only, so it answers challenges but starts none.
type pathIO interface {
	peerMover
	// source returns the source of the datagram readDatagram last
	// returned, and whether it differs from the peer's address.
	source() (netip.AddrPort, bool)
	// writeDatagramTo sends b to ap instead of the peer.
	writeDatagramTo(b []byte, ap netip.AddrPort) error
	// movePeerTo moves the peer to ap: we send there from now on.
	movePeerTo(ap netip.AddrPort)
}

// rrcActive reports whether address changes go through the check.
func (c *Conn) rrcActive() bool {
	return c.rrcNegotiated && c.config.rrcPolicy() != RRCOff
}

// observePath runs for every record that authenticated with our CID after
// the handshake. hdr.newest says it is the newest record yet (RFC 9146 §6).
func (c *Conn) observePath(hdr *recordHeader) {
	p, ok := c.io.(pathIO)
	if !ok {
		return
	}
	src, moved := p.source()
	if !moved {
		return // from the peer's address, the usual case
	}
	if !c.rrcActive() {
		if hdr.newest {
			// RFC 9146 §6 without RRC: the newest record moves the peer.
			c.tracePath(TracePeerAddressChanged, src, "unvalidated: rrc not negotiated")
			p.followPeer()
			c.peerMoved13() // a new CID on the new path (cid_dtls13.go)
		}
		return
	}
	v := &c.path
	if v.phase != pathIdle {
		if src == v.candidate && !c.dgramCounted {
			c.dgramCounted = true
			v.budget.received += c.dgramLen
			if v.phase == pathProbeNew && v.next.IsZero() && v.sent < maxPathChallenges {
				// A challenge held back by the amplification limit
				// may go now.
				c.sendPathChallenge(time.Now())
			}
		}
		return // a third address during a check starts nothing (§5)
	}
	if !hdr.newest {
		return
	}
	now := time.Now()
	if now.Sub(v.windowStart) >= pathValidationWindow {
		v.windowStart, v.started = now, 0
	}
	if v.started >= maxPathValidations {
		c.tracePath(TracePathValidation, src, "refused: too many validations")
		return
	}
	v.started++
	c.dgramCounted = true
	*v = pathValidation{
		candidate:   src,
		old:         addrPort(c.io.remoteAddr()),
		budget:      addrBudget{received: c.dgramLen},
		timeout:     c.pathTimeout(),
		windowStart: v.windowStart,
		started:     v.started,
	}
	if c.config.rrcPolicy() == RRCEnhanced {
		c.tracePath(TracePathValidation, src, "started (enhanced): challenging the old address "+v.old.String())
		c.startPhase(pathProbeOld, now)
		return
	}
	c.tracePath(TracePathValidation, src, "started")
	c.startPhase(pathProbeNew, now)
}

// pathTimeout returns T (RFC 9853 §5.5): 3×RTT when one was measured,
// else 1 s.
func (c *Conn) pathTimeout() time.Duration {
	if c.hs != nil {
		if rtt := c.hs.rtt.smoothedRTT(); rtt > 0 {
			return min(max(3*rtt, minPathValidationTimeout), pathValidationTimeout)
		}
	}
	return pathValidationTimeout
}

// startPhase starts challenging the old or the new path.
func (c *Conn) startPhase(phase pathPhase, now time.Time) {
	v := &c.path
	v.phase = phase
	v.sent = 0
	v.expires = now.Add(v.timeout)
	v.interval = v.timeout / 4
	v.next = time.Time{}
	c.sendPathChallenge(now)
}

// sendPathChallenge sends the phase's next path_challenge, with a fresh
// cookie (§5.3: "Each path_challenge message MUST contain random data"),
// unless the anti-amplification limit forbids it: it then waits for more
// bytes from the candidate (observePath) or the next timer.
func (c *Conn) sendPathChallenge(now time.Time) {
	v := &c.path
	if v.sent >= maxPathChallenges {
		v.next = time.Time{}
		return
	}
	to := v.candidate
	if v.phase == pathProbeOld {
		to = v.old
	} else if n := c.rrcRecordLen(); !v.budget.allows(n) {
		v.next = time.Time{}
		c.tracePath(TracePathValidation, to, "challenge held back: anti-amplification limit")
		return
	}
	cookie := &v.cookies[v.sent]
	if _, err := io.ReadFull(c.config.rand(), cookie[:]); err != nil {
		c.endPath("failed: no randomness for the cookie")
		return
	}
	v.sent++
	v.next = now.Add(v.interval)
	v.interval *= 2
	n, err := c.sendRRC(rrcPathChallenge, cookie, to)
	if err != nil {
		return // the socket's error: the next read reports it
	}
	if v.phase == pathProbeNew {
		v.budget.sent += n
	}
}

// rrcRecordLen is the size of one RRC record in the current epoch.
func (c *Conn) rrcRecordLen() int {
	c.out.Lock()
	defer c.out.Unlock()
	return recordHeaderLen + rrcMessageLen + c.rl.expansion(c.rl.writeCur)
}

// pathDeadline returns when pathTimer wants to run, if a validation is on.
func (c *Conn) pathDeadline() (time.Time, bool) {
	v := &c.path
	if v.phase == pathIdle {
		return time.Time{}, false
	}
	if !v.next.IsZero() && v.next.Before(v.expires) {
		return v.next, true
	}
	return v.expires, true
}

// pathTimer sends the next challenge or ends the phase whose timer T ran
// out: on the old path (enhanced), the basic check on the new path
// follows (§5.2 step 5); on the new path the validation fails and the peer
// stays where it was (§5.1 step 5).
func (c *Conn) pathTimer(now time.Time) {
	v := &c.path
	switch {
	case v.phase == pathIdle:
	case !now.Before(v.expires):
		if v.phase == pathProbeOld {
			c.tracePath(TracePathValidation, v.candidate, "old path silent: challenging the new address")
			c.startPhase(pathProbeNew, now)
			return
		}
		c.endPath("failed: no path_response")
	case !v.next.IsZero() && !now.Before(v.next):
		c.sendPathChallenge(now)
	}
}

// endPath ends the validation in progress, keeping the peer's address.
func (c *Conn) endPath(why string) {
	v := &c.path
	c.tracePath(TracePathValidation, v.candidate, why)
	*v = pathValidation{windowStart: v.windowStart, started: v.started}
}

// handleRRC takes an authenticated return_routability_check record.
// Everything wrong with one is dropped silently (§5.4: "The initiator
// MUST silently discard any invalid path_response or path_drop"), and an
// unknown msg_type is ignored (§4).
func (c *Conn) handleRRC(hdr recordHeader, data []byte) error {
	if !c.rrcNegotiated || !c.handshakeComplete.Load() {
		// §3: "MUST NOT use RRC unless both sides have successfully
		// exchanged rrc extensions".
		c.drop(dropBadContentType, hdr)
		return nil
	}
	if len(data) != rrcMessageLen || data[0] > rrcPathDrop {
		// An unknown msg_type is ignored, whatever its length.
		c.drop(dropRRCInvalid, hdr)
		return nil
	}
	typ := data[0]
	var cookie [rrcCookieLen]byte
	copy(cookie[:], data[1:])
	src := addrPort(c.io.remoteAddr())
	p, isPath := c.io.(pathIO)
	if isPath {
		if s, moved := p.source(); moved {
			src = s
		}
	}
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceRRCReceived, Epoch: hdr.epoch, Seq: hdr.seq, Path: src, Reason: rrcTypeName(typ)})
	}
	switch typ {
	case rrcPathChallenge:
		// §5.4: answer at once, exactly once, to where it came from.
		// This package never leaves a path of its own accord, so every
		// path it hears on is preferred: the answer is a path_response,
		// never a path_drop.
		_, _ = c.sendRRC(rrcPathResponse, &cookie, src)
		return nil
	case rrcPathResponse, rrcPathDrop:
		v := &c.path
		if v.phase == pathIdle || !v.matches(&cookie) {
			c.drop(dropRRCCookie, hdr)
			return nil
		}
		switch {
		case typ == rrcPathDrop && v.phase == pathProbeOld:
			// §5.2 step 4: the peer left the old path on purpose.
			c.tracePath(TracePathValidation, v.candidate, "path_drop on the old path: challenging the new address")
			c.startPhase(pathProbeNew, time.Now())
		case typ == rrcPathDrop:
			// path_drop answers only an old-path challenge; pion sends
			// one to a challenge on a path it was only probing.
			c.drop(dropRRCPathDrop, hdr)
		case v.phase == pathProbeOld:
			// §5.2 step 4: the old path is alive and preferred: the
			// new address was someone else's copy (§8.1.2 case 3).
			c.endPath("old path answered: staying at " + v.old.String())
		default:
			// §5.1 step 4: the candidate answered; move there.
			to := v.candidate
			c.endPath("validated")
			if isPath {
				c.tracePath(TracePeerAddressChanged, to, "validated by path_response")
				p.movePeerTo(to)
				c.peerMoved13() // a new CID on the new path (cid_dtls13.go)
			}
		}
	}
	return nil
}

// matches reports, in constant time per cookie, whether cookie is one of
// the phase's challenges.
func (v *pathValidation) matches(cookie *[rrcCookieLen]byte) bool {
	found := 0
	for i := range v.sent {
		found |= subtle.ConstantTimeCompare(v.cookies[i][:], cookie[:])
	}
	return found == 1
}

// sendRRC sends one RRC message to ap, protected in the current epoch
// (§4: "MUST be authenticated and encrypted using the currently active
// security context"). It returns the record's size.
func (c *Conn) sendRRC(typ uint8, cookie *[rrcCookieLen]byte, ap netip.AddrPort) (int, error) {
	c.out.Lock()
	defer c.out.Unlock()
	if c.fatal() != nil || c.closed.Load() {
		return 0, nil
	}
	var msg [rrcMessageLen]byte
	msg[0] = typ
	copy(msg[1:], cookie[:])
	buf, err := c.rl.seal(c.outBuffer(recordHeaderLen+len(msg)+c.rl.expansion(c.rl.writeCur)), c.rl.writeCur, recordTypeRRC, msg[:])
	if err != nil {
		return 0, err
	}
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceRRCSent, Epoch: c.rl.writeCur, Path: ap, Length: len(buf), Reason: rrcTypeName(typ)})
		c.trace(&TraceEvent{Kind: TraceDatagramSent, Path: ap, Length: len(buf), Datagram: buf})
	}
	if p, ok := c.io.(pathIO); ok && ap.IsValid() && ap != addrPort(c.io.remoteAddr()) {
		return len(buf), p.writeDatagramTo(buf, ap)
	}
	return len(buf), c.io.writeDatagram(buf)
}

// tracePath reports a path event about the address ap.
func (c *Conn) tracePath(kind TraceKind, ap netip.AddrPort, why string) {
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: kind, Path: ap, Reason: why})
	}
}
