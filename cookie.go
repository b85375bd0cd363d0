package dtls

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
	"net/netip"
	"sync"
	"time"
)

// A cookie we make is 32 bytes: a header in the clear, covered by the tag,
// then an HMAC-SHA256 tag truncated to 26 bytes:
//
//	made (4 bytes) | ClientHello record sequence number, low 16 bits (2) | tag (26)
//
// made is when the cookie was made, in microseconds since the generator
// was created, modulo 2^32 (it wraps every 71 minutes, far beyond the
// longest a cookie is accepted, 2×cookieSecretLifetime); in a fleet
// (fleet.go), since the Unix epoch, so that every server reads it alike,
// and a sample from a cookie another server made includes the offset
// between the two clocks. The two fields
// let the Listener, which keeps no state before the cookie returns, take
// the time from the HelloVerifyRequest to the ClientHello that returns the
// cookie as a round-trip sample (RFC 9147 §5.8.2's "external
// information"), and tell a sample from the first ClientHello after the
// HelloVerifyRequest (record sequence number one more) from one from a
// retransmission, which Karn's rule excludes.
//
// 32 bytes, not more: RFC 6347 allows cookie<0..2^8-1>, but DTLS 1.0's
// limit was 32 (RFC 4347 §4.2.1) and GnuTLS still refuses a longer one
// (DTLS_MAX_COOKIE_SIZE), as do other stacks built for 1.0. A tag of 208
// bits is far beyond guessing range; RFC 2104 §5 allows truncating an
// HMAC to half its length or more.
const (
	cookieHeaderLen = 4 + 2
	cookieTagLen    = 26
	cookieLen       = cookieHeaderLen + cookieTagLen
)

// maxCookieRTT bounds the round-trip sample a cookie gives: an answer
// slower than this is a client that waited (or a replay) rather than a
// path, and gives no sample.
const maxCookieRTT = 10 * time.Second

// cookieSecretLen is the size of a cookie HMAC key, the hash size as RFC
// 2104 §3 recommends.
const cookieSecretLen = sha256.Size

// cookieSecretLifetime is how long one secret makes cookies before it is
// replaced. Cookies made with the replaced secret are still accepted for
// one more lifetime, so a cookie is good for at least cookieSecretLifetime
// and never more than twice that. RFC 6347 §4.2.1 asks for a secret that
// changes periodically, so that a cookie harvested from one address cannot
// be replayed forever; a client answers a HelloVerifyRequest within one
// round trip, so five minutes is generous even for retransmissions.
const cookieSecretLifetime = 5 * time.Minute

// cookieGenerator makes and checks stateless HelloVerifyRequest cookies
// (RFC 6347 §4.2.1). A cookie's tag is
//
//	HMAC-SHA256(secret, cookie header | client IP (16 bytes) | client port | ClientHello fields)
//
// over the ClientHello fields that RFC 6347 §4.2.1 says the second
// ClientHello repeats unchanged: version, random, cipher_suites and
// compression_methods. Not the session_id, although the RFC lists it too:
// mbedTLS 2.28 clients that resume by ticket draw a fresh random
// session_id (RFC 5077 §3.4) for every ClientHello they write, the one
// answering our HelloVerifyRequest included, so a cookie bound to it never
// verifies and they loop on HelloVerifyRequests until they give up.
// OpenSSL, GnuTLS and mbedTLS servers bind their cookies to the address
// alone; the session_id adds nothing to the proof of address. The server
// keeps no per-client state until a ClientHello comes back with a valid
// cookie, which proves the client receives datagrams at its source
// address.
//
// It is safe for concurrent use. The HMAC state is reused under a mutex, so
// checking a cookie does not allocate: a flood of spoofed ClientHellos all
// land here.
type cookieGenerator struct {
	rand  io.Reader
	epoch time.Time // origin of the cookies' timestamps

	mu       sync.Mutex
	rotateAt time.Time // when current stops making cookies
	current  hash.Hash // HMAC keyed with the secret that makes cookies
	previous hash.Hash // HMAC keyed with the secret before it; nil if expired
	keyID    uint8     // current's key id, one more at every rotation (cookie_dtls13.go)
	input    []byte    // scratch for the MAC input
	macs     int64     // HMACs computed, for the tests (serverCryptoOps)
	sum      []byte    // scratch for a computed cookie, cap cookieLen

	// A fleet member's generator (fleet.go) derives its keys from
	// Config.FleetSecret instead of drawing them: rand, rotateAt,
	// current and previous are then unused.
	fleet     *fleetKeys
	clock     func() time.Time
	fleetMACs [fleetCookieKeyCache]fleetCookieKey
}

// newCookieGenerator returns a generator whose first secret, drawn from
// rand, makes cookies until now + cookieSecretLifetime.
func newCookieGenerator(rand io.Reader, now time.Time) (*cookieGenerator, error) {
	secret := make([]byte, cookieSecretLen)
	if _, err := io.ReadFull(rand, secret); err != nil {
		return nil, err
	}
	return &cookieGenerator{
		rand:     rand,
		epoch:    now,
		rotateAt: now.Add(cookieSecretLifetime),
		current:  hmac.New(sha256.New, secret),
		sum:      make([]byte, 0, sha256.Size),
	}, nil
}

// rotateLocked replaces the secret if now has reached the rotation time.
// Secrets are replaced lazily, on the first use after they expire. If
// more than one lifetime has passed since then, cookies made with the
// current secret are already too old, and both secrets are dropped.
func (g *cookieGenerator) rotateLocked(now time.Time) {
	if now.Before(g.rotateAt) {
		return
	}
	next := hmac.New(sha256.New, g.nextSecretLocked())
	if now.Before(g.rotateAt.Add(cookieSecretLifetime)) {
		g.previous = g.current
		g.rotateAt = g.rotateAt.Add(cookieSecretLifetime)
	} else {
		g.previous = nil
		g.rotateAt = now.Add(cookieSecretLifetime)
	}
	g.current = next
	g.keyID++
}

// nextSecretLocked draws a fresh secret. crypto/rand does not fail, but an
// injected Config.Rand might; rather than keep a secret past its lifetime,
// the generator then ratchets the secret forward through the HMAC, so old
// cookies still expire on schedule.
func (g *cookieGenerator) nextSecretLocked() []byte {
	secret := make([]byte, cookieSecretLen)
	if _, err := io.ReadFull(g.rand, secret); err == nil {
		return secret
	}
	g.current.Reset()
	g.current.Write([]byte("dtls cookie secret ratchet"))
	return g.current.Sum(secret[:0])
}

// appendCookieInput appends the bytes that a cookie authenticates: its
// header, then the client's address and ClientHello fields. Every
// variable-length field carries a 4-byte length prefix, which cannot
// overflow, so that no two different inputs serialize to the same bytes
// (a byte moved from the cipher suites into the compression methods
// changes the prefixes).
func appendCookieInput(b []byte, header []byte, addr netip.AddrPort, ch *clientHelloMsg) []byte {
	b = append(b, header...)
	ip := addr.Addr().As16()
	b = append(b, ip[:]...)
	b = binary.BigEndian.AppendUint16(b, addr.Port())
	b = binary.BigEndian.AppendUint16(b, ch.vers)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ch.random)))
	b = append(b, ch.random...)
	b = binary.BigEndian.AppendUint32(b, uint32(2*len(ch.cipherSuites)))
	for _, s := range ch.cipherSuites {
		b = binary.BigEndian.AppendUint16(b, s)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(ch.compressionMethods)))
	b = append(b, ch.compressionMethods...)
	return b
}

// ticks is now as a cookie timestamp: microseconds since the generator's
// epoch, modulo 2^32.
func (g *cookieGenerator) ticks(now time.Time) uint32 {
	return uint32(now.Sub(g.epoch) / time.Microsecond)
}

// macLocked computes the cookie tag for g.input with the keyed HMAC h into
// g.sum: the HMAC truncated to cookieTagLen bytes.
func (g *cookieGenerator) macLocked(h hash.Hash) []byte {
	g.macs++
	h.Reset()
	h.Write(g.input)
	g.sum = h.Sum(g.sum[:0])
	return g.sum[:cookieTagLen]
}

// generate appends to dst the cookie for a ClientHello from addr that
// arrived in a record with sequence number recordSeq, made at now.
func (g *cookieGenerator) generate(dst []byte, now time.Time, addr netip.AddrPort, recordSeq uint64, ch *clientHelloMsg) []byte {
	var header [cookieHeaderLen]byte
	binary.BigEndian.PutUint32(header[0:4], g.ticks(now))
	binary.BigEndian.PutUint16(header[4:6], uint16(recordSeq))
	g.mu.Lock()
	defer g.mu.Unlock()
	g.input = appendCookieInput(g.input[:0], header[:], addr, ch)
	dst = append(dst, header[:]...)
	if g.fleet != nil {
		return append(dst, g.macLocked(g.fleetMakerLocked(now))...)
	}
	g.rotateLocked(now)
	return append(dst, g.macLocked(g.current)...)
}

// verify reports whether cookie is one that generate made, with the current
// or the previous secret, for this address and these ClientHello fields.
// The comparison is constant-time.
func (g *cookieGenerator) verify(now time.Time, addr netip.AddrPort, ch *clientHelloMsg, cookie []byte) bool {
	if len(cookie) != cookieLen {
		return false
	}
	header, tag := cookie[:cookieHeaderLen], cookie[cookieHeaderLen:]
	g.mu.Lock()
	defer g.mu.Unlock()
	g.input = appendCookieInput(g.input[:0], header, addr, ch)
	if g.fleet != nil {
		// The timestamp, covered by the tag, picks the one key to try.
		h, _ := g.fleetVerifierLocked(now, header, fleetCookieLifetime)
		return h != nil && hmac.Equal(tag, g.macLocked(h))
	}
	g.rotateLocked(now)
	// Check both secrets whatever the first result, so that the time taken
	// does not say which secret made the cookie.
	ok := hmac.Equal(tag, g.macLocked(g.current))
	if g.previous != nil {
		ok = hmac.Equal(tag, g.macLocked(g.previous)) || ok
	}
	return ok
}

// roundTrip returns the time from making cookie to now, a round-trip
// sample, if the ClientHello that returned it came in the record right
// after the one the cookie answered (recordSeq one more): a client's
// retransmission of that ClientHello would add its timer to the sample
// (Karn's rule). It returns 0, no sample, otherwise, or for an answer
// slower than maxCookieRTT. Call it only with a cookie verify (or, for
// DTLS 1.3, verify13, whose cookies start with the same header)
// accepted: its header is then ours.
func (g *cookieGenerator) roundTrip(now time.Time, recordSeq uint64, cookie []byte) time.Duration {
	if len(cookie) < cookieHeaderLen {
		return 0
	}
	if binary.BigEndian.Uint16(cookie[4:6])+1 != uint16(recordSeq) {
		return 0
	}
	age := time.Duration(g.ticks(now)-binary.BigEndian.Uint32(cookie[0:4])) * time.Microsecond
	if age > maxCookieRTT {
		return 0
	}
	return age
}
