package dtls

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"hash"
	"net/netip"
	"time"
)

// The cookie of a DTLS 1.3 HelloRetryRequest (RFC 9147 §5.1, RFC 8446
// §4.2.2, §4.4.1), the one format both servers use: a Listener that
// answers a first ClientHello statelessly (helloGate.check13) and a Conn
// made with Server (serverHandshakeState13.helloRetry). The server keeps
// nothing between the HelloRetryRequest and the second ClientHello; the
// cookie carries what it needs then: the hash of the first ClientHello,
// which becomes the transcript's message_hash, and the suite and group
// the HelloRetryRequest chose, which it must rebuild byte for byte:
//
//	made (4) | record seq (2) | key id (1) | suite (2) | group (2) |
//	flags (1) | Hash(ClientHello1) (32 or 48) | tag (cookieTagLen)
//
// made and record seq are as in the 1.2 cookie (cookie.go): when the
// cookie was made, and the low 16 bits of the first ClientHello's record
// sequence number, which give the Listener a round-trip sample
// (cookieGenerator.roundTrip). key id names the key that made the tag:
// with our own keys, a counter that rotateLocked advances; in a fleet,
// the low byte of the period whose key Config.FleetSecret derives
// (fleet.go), so that any member checks a cookie any member made. flags
// bit 0 says the HelloRetryRequest named the group in key_share. The
// hash's length is the suite's (the rest of the cookie).
//
// The tag is HMAC-SHA256 under that key, truncated to cookieTagLen, over
// a domain byte, the fields above, the client's address and the
// ClientHello fields the second ClientHello repeats (version, random,
// cipher_suites, compression_methods: RFC 8446 §4.1.2), so a cookie is
// good only for the address and the client it was made for.
//
// Why a MAC and not an AEAD: nothing the cookie carries is secret. The
// client knows its first ClientHello and so its hash, and an observer of
// the path sees that ClientHello in the clear; the suite and group are in
// the HelloRetryRequest's own fields. What the server needs is that the
// cookie is its own and unchanged (RFC 8446 §4.2.2 asks for "some
// suitable integrity protection algorithm"), which the tag gives; an
// AEAD would add a nonce and hide nothing. The time and key id are in the
// clear so that the verifier picks the one key to try without trying
// several, and refuses an expired cookie before any MAC.
const (
	cookie13FixedLen = 4 + 2 + 1 + 2 + 2 + 1
	// maxCookie13Len is the longest 1.3 cookie we make: with a SHA-384
	// transcript hash.
	maxCookie13Len = cookie13FixedLen + 48 + cookieTagLen
	// maxHRRCookieAge bounds how long after the HelloRetryRequest its
	// cookie is accepted: as long as a 1.2 cookie (cookie.go), the most
	// its keys live. A client does not answer within one retransmission
	// timer: it sends its second ClientHello, cookie and all, again on
	// every expiry of its timer, which backs off to 60 s
	// (maxRetransmitTimeout), for up to maxRetransmissions (about 8
	// minutes from 1 s), and it cannot get a fresh cookie, since a
	// second HelloRetryRequest aborts the handshake (RFC 8446 §4.1.4).
	// The former limit of maxRetransmitTimeout refused, silently and
	// for good, every handshake whose second ClientHello was lost for
	// more than a minute (LOSS.md, MTU 200, 50% loss). A replay within
	// the window still needs the client's address, as with 1.2.
	maxHRRCookieAge = 2 * cookieSecretLifetime
	// cookie13Domain separates 1.3 cookie tags from 1.2 ones.
	cookie13Domain     = 0x13
	cookie13AskedGroup = 1
)

// hrrParams is what a 1.3 cookie carries for the server.
type hrrParams struct {
	suite      uint16
	group      tls.CurveID
	askedGroup bool
	chHash     []byte // Hash(ClientHello1), the suite's hash
}

// generate13 appends to dst the cookie for a first ClientHello from addr,
// which came in a record with sequence number recordSeq.
func (g *cookieGenerator) generate13(dst []byte, now time.Time, addr netip.AddrPort, recordSeq uint64, p hrrParams, ch *clientHelloMsg) []byte {
	start := len(dst)
	g.mu.Lock()
	defer g.mu.Unlock()
	var key hash.Hash
	var id uint8
	if g.fleet != nil {
		// A fleet member: the key of the current period, which every
		// member derives alike.
		period := fleetPeriod(now.UnixMicro(), fleetCookiePeriod)
		key, id = g.fleetMACLocked(period), uint8(period)
	} else {
		g.rotateLocked(now)
		key, id = g.current, g.keyID
	}
	dst = binary.BigEndian.AppendUint32(dst, g.ticks(now))
	dst = binary.BigEndian.AppendUint16(dst, uint16(recordSeq))
	dst = append(dst, id)
	dst = binary.BigEndian.AppendUint16(dst, p.suite)
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.group))
	flags := byte(0)
	if p.askedGroup {
		flags |= cookie13AskedGroup
	}
	dst = append(dst, flags)
	dst = append(dst, p.chHash...)
	g.input = append(g.input[:0], cookie13Domain)
	g.input = appendCookieInput(g.input, dst[start:], addr, ch)
	return append(dst, g.macLocked(key)...)
}

// verify13 reports whether cookie is one generate13 made, for this
// address and ClientHello fields, less than maxHRRCookieAge ago (in a
// fleet, and no more than fleetMaxClockSkew ahead), with a key still
// live, and returns what it carries (chHash aliases cookie). It computes
// one HMAC, with the key the cookie's key id (in a fleet, its time)
// names, and compares the tag in constant time.
func (g *cookieGenerator) verify13(now time.Time, addr netip.AddrPort, ch *clientHelloMsg, cookie []byte) (hrrParams, bool) {
	var p hrrParams
	hashLen := len(cookie) - cookie13FixedLen - cookieTagLen
	if hashLen != sha256.Size && hashLen != sha512.Size384 { // the 1.3 suites' hashes
		return p, false
	}
	header, tag := cookie[:len(cookie)-cookieTagLen], cookie[len(cookie)-cookieTagLen:]
	id := header[6]
	g.mu.Lock()
	defer g.mu.Unlock()
	var key hash.Hash
	if g.fleet != nil {
		// The timestamp, covered by the tag, picks the period; the key
		// id must name it.
		h, period := g.fleetVerifierLocked(now, header, maxHRRCookieAge)
		if h != nil && uint8(period) == id {
			key = h
		}
	} else {
		g.rotateLocked(now)
		switch {
		case id == g.keyID:
			key = g.current
		case id == g.keyID-1 && g.previous != nil:
			key = g.previous
		}
		age := time.Duration(g.ticks(now)-binary.BigEndian.Uint32(header[0:4])) * time.Microsecond
		if age > maxHRRCookieAge {
			key = nil
		}
	}
	if key == nil {
		return p, false
	}
	g.input = append(g.input[:0], cookie13Domain)
	g.input = appendCookieInput(g.input, header, addr, ch)
	if !hmac.Equal(tag, g.macLocked(key)) {
		return p, false
	}
	p.suite = binary.BigEndian.Uint16(header[7:9])
	p.group = tls.CurveID(binary.BigEndian.Uint16(header[9:11]))
	p.askedGroup = header[11]&cookie13AskedGroup != 0
	p.chHash = header[cookie13FixedLen:]
	return p, true
}
