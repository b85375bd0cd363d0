package dtls

import (
	"crypto/hmac"
	"crypto/tls"
	"encoding/binary"
	"net/netip"
	"time"
)

// The cookie of a stateless DTLS 1.3 HelloRetryRequest (RFC 9147 §5.1,
// RFC 8446 §4.2.2, §4.4.1). A Listener that answers a first ClientHello
// with a HelloRetryRequest keeps nothing; the cookie carries what the
// connection made from the second ClientHello needs to rebuild its
// transcript (the hash of the first ClientHello, which becomes the
// message_hash message, and the HelloRetryRequest's suite and group),
// under the same rotating HMAC keys as the 1.2 cookie (cookie.go):
//
//	made (4) | record seq (2) | suite (2) | group (2) | flags (1) |
//	hash length (1) | Hash(ClientHello1) | tag (cookieTagLen)
//
// The tag covers a domain byte, the header, the client's address and the
// ClientHello fields the second ClientHello repeats (version, random,
// cipher_suites, compression_methods: RFC 8446 §4.1.2). flags bit 0
// says the HelloRetryRequest named the group in key_share.
const (
	cookie13FixedLen = 4 + 2 + 2 + 2 + 1 + 1
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
	chHash     []byte
}

// generate13 appends to dst the cookie for a first ClientHello from addr.
func (g *cookieGenerator) generate13(dst []byte, now time.Time, addr netip.AddrPort, recordSeq uint64, p hrrParams, ch *clientHelloMsg) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, g.ticks(now))
	dst = binary.BigEndian.AppendUint16(dst, uint16(recordSeq))
	dst = binary.BigEndian.AppendUint16(dst, p.suite)
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.group))
	flags := byte(0)
	if p.askedGroup {
		flags |= cookie13AskedGroup
	}
	dst = append(dst, flags, byte(len(p.chHash)))
	dst = append(dst, p.chHash...)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.input = append(g.input[:0], cookie13Domain)
	g.input = appendCookieInput(g.input, dst[start:], addr, ch)
	if g.fleet != nil {
		// A fleet member (fleet.go): the key of the current period,
		// which every member derives alike.
		return append(dst, g.macLocked(g.fleetMakerLocked(now))...)
	}
	g.rotateLocked(now)
	return append(dst, g.macLocked(g.current)...)
}

// verify13 reports whether cookie is one generate13 made, with the
// current or the previous secret, for this address and ClientHello
// fields, less than maxHRRCookieAge ago, and returns what it carries
// (aliasing cookie). The comparison is constant-time.
func (g *cookieGenerator) verify13(now time.Time, addr netip.AddrPort, ch *clientHelloMsg, cookie []byte) (hrrParams, bool) {
	var p hrrParams
	if len(cookie) < cookie13FixedLen+cookieTagLen {
		return p, false
	}
	hl := int(cookie[cookie13FixedLen-1])
	if len(cookie) != cookie13FixedLen+hl+cookieTagLen {
		return p, false
	}
	header, tag := cookie[:cookie13FixedLen+hl], cookie[cookie13FixedLen+hl:]
	g.mu.Lock()
	g.input = append(g.input[:0], cookie13Domain)
	g.input = appendCookieInput(g.input, header, addr, ch)
	var ok bool
	if g.fleet != nil {
		// The timestamp, covered by the tag, picks the one key to try.
		h := g.fleetVerifierLocked(now, header)
		ok = h != nil && hmac.Equal(tag, g.macLocked(h))
	} else {
		g.rotateLocked(now)
		ok = hmac.Equal(tag, g.macLocked(g.current))
		if g.previous != nil {
			ok = hmac.Equal(tag, g.macLocked(g.previous)) || ok
		}
	}
	age := time.Duration(g.ticks(now)-binary.BigEndian.Uint32(cookie[0:4])) * time.Microsecond
	g.mu.Unlock()
	if !ok || age > maxHRRCookieAge {
		return p, false
	}
	p.suite = binary.BigEndian.Uint16(cookie[6:8])
	p.group = tls.CurveID(binary.BigEndian.Uint16(cookie[8:10]))
	p.askedGroup = cookie[10]&cookie13AskedGroup != 0
	p.chHash = header[cookie13FixedLen:]
	return p, true
}
