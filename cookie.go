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

// cookieLen is the length of the HelloVerifyRequest cookies we make: a full
// HMAC-SHA256 tag. RFC 6347 allows up to maxCookieLen bytes; 32 is far
// beyond guessing range and keeps the second ClientHello small.
const cookieLen = sha256.Size

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
// (RFC 6347 §4.2.1). A cookie is
//
//	HMAC-SHA256(secret, client IP (16 bytes) | client port | ClientHello fields)
//
// over the ClientHello fields that RFC 6347 §4.2.1 says the second
// ClientHello repeats unchanged: version, random, cipher_suites and
// compression_methods. Not the session_id, although the RFC lists it too:
// mbedTLS 2.28 clients that resume by ticket draw a fresh random
// session_id (RFC 5077 §3.4) for every ClientHello they write, the one
// answering our HelloVerifyRequest included, so a cookie bound to it never
// verifies and they loop on HelloVerifyRequests until they give up.
// OpenSSL, GnuTLS and mbedTLS servers bind their cookies to the address
// alone; the session_id adds nothing to the proof of address. The server keeps no per-client state until a
// ClientHello comes back with a valid cookie, which proves the client
// receives datagrams at its source address.
//
// It is safe for concurrent use. The HMAC state is reused under a mutex, so
// checking a cookie does not allocate: a flood of spoofed ClientHellos all
// land here.
type cookieGenerator struct {
	rand io.Reader

	mu       sync.Mutex
	rotateAt time.Time // when current stops making cookies
	current  hash.Hash // HMAC keyed with the secret that makes cookies
	previous hash.Hash // HMAC keyed with the secret before it; nil if expired
	input    []byte    // scratch for the MAC input
	sum      []byte    // scratch for a computed cookie, cap cookieLen
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
		rotateAt: now.Add(cookieSecretLifetime),
		current:  hmac.New(sha256.New, secret),
		sum:      make([]byte, 0, cookieLen),
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

// appendCookieInput appends the bytes that a cookie authenticates. Every
// variable-length field carries a 4-byte length prefix, which cannot
// overflow, so that no two different inputs serialize to the same bytes
// (a byte moved from the cipher suites into the compression methods
// changes the prefixes).
func appendCookieInput(b []byte, addr netip.AddrPort, ch *clientHelloMsg) []byte {
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

// macLocked computes the cookie for g.input with the keyed HMAC h into
// g.sum.
func (g *cookieGenerator) macLocked(h hash.Hash) []byte {
	h.Reset()
	h.Write(g.input)
	g.sum = h.Sum(g.sum[:0])
	return g.sum
}

// generate appends to dst the cookie for a ClientHello from addr.
func (g *cookieGenerator) generate(dst []byte, now time.Time, addr netip.AddrPort, ch *clientHelloMsg) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rotateLocked(now)
	g.input = appendCookieInput(g.input[:0], addr, ch)
	return append(dst, g.macLocked(g.current)...)
}

// verify reports whether cookie is one that generate made, with the current
// or the previous secret, for this address and these ClientHello fields.
// The comparison is constant-time.
func (g *cookieGenerator) verify(now time.Time, addr netip.AddrPort, ch *clientHelloMsg, cookie []byte) bool {
	if len(cookie) != cookieLen {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rotateLocked(now)
	g.input = appendCookieInput(g.input[:0], addr, ch)
	// Check both secrets whatever the first result, so that the time taken
	// does not say which secret made the cookie.
	ok := hmac.Equal(cookie, g.macLocked(g.current))
	if g.previous != nil {
		ok = hmac.Equal(cookie, g.macLocked(g.previous)) || ok
	}
	return ok
}
