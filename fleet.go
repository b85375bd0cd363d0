package dtls

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// A fleet is several servers behind one address, or several sockets of
// one server (SO_REUSEPORT), any of which may receive any datagram of a
// client. With Config.FleetSecret they need no shared store: the cookie
// secrets and session ticket keys are derived, with HKDF-SHA256 (RFC
// 5869), from that secret and the period of the wall clock, so every
// member computes the same keys for the same period and rotates them at
// the same instant. With ServerIDCIDGenerator, the Connection IDs a
// server hands out name it, so that a balancer sends a client's records
// to the server that holds its connection even after the client's
// address changed.

const (
	// minFleetSecretLen is the shortest Config.FleetSecret accepted: 256
	// bits, the size of the keys derived from it.
	minFleetSecretLen = 32
	// fleetCookiePeriod is how long one derived cookie key makes
	// cookies; fleetCookieLifetime is how long after it was made a fleet
	// cookie is accepted, whichever period's key made it. A client
	// returns its cookie one round trip after the HelloVerifyRequest;
	// the lifetime also covers retransmissions.
	fleetCookiePeriod   = cookieSecretLifetime
	fleetCookieLifetime = cookieSecretLifetime
	// fleetTicketPeriod is how long one derived ticket key seals
	// tickets: a UTC day, as the automatic keys rotate.
	fleetTicketPeriod = ticketKeyRotation
	// fleetMaxClockSkew is how far apart the clocks of a fleet's servers
	// may be: a cookie stamped up to this far in our future is accepted,
	// and the ticket key of the next period opens tickets, so that a
	// server whose clock runs ahead does not lock the others out.
	fleetMaxClockSkew = time.Minute
	// fleetCookieKeyCache bounds the keyed HMACs a cookie generator keeps
	// for fleet periods: a 1.2 cookie is accepted for fleetCookieLifetime
	// + fleetMaxClockSkew, which spans at most three periods, a 1.3 one
	// for maxHRRCookieAge + fleetMaxClockSkew, at most four; one more
	// spare avoids thrashing at a boundary.
	fleetCookieKeyCache = 5
	// fleetHKDFSalt is the HKDF-Extract salt (RFC 5869 §3.1): it names
	// this use of the secret and the version of the derivation, so that
	// the same secret used elsewhere yields unrelated keys.
	fleetHKDFSalt = "dtls-go fleet keys v1"
)

// fleetKeys derives a fleet's per-period keys from its secret.
type fleetKeys struct {
	prk []byte // HKDF-Extract(SHA-256, salt, FleetSecret)
}

// checkFleetSecret refuses a FleetSecret too short to key anything.
func (c *Config) checkFleetSecret() error {
	if c.FleetSecret != nil && len(c.FleetSecret) < minFleetSecretLen {
		return fmt.Errorf("dtls: Config.FleetSecret has %d bytes; at least %d random bytes are needed", len(c.FleetSecret), minFleetSecretLen)
	}
	return nil
}

// fleet returns the key deriver for Config.FleetSecret, or nil without
// one.
func (c *Config) fleet() (*fleetKeys, error) {
	if c == nil || c.FleetSecret == nil {
		return nil, nil
	}
	if err := c.checkFleetSecret(); err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, c.FleetSecret, []byte(fleetHKDFSalt))
	if err != nil {
		return nil, err
	}
	return &fleetKeys{prk: prk}, nil
}

// derive returns n bytes of key for one use (label) in one period of
// length periodLen: HKDF-Expand(prk, label | period length in seconds |
// period index, n). The period length is in the info so that a change of
// schedule cannot make two periods' keys collide.
func (f *fleetKeys) derive(label string, periodLen time.Duration, period int64, n int) []byte {
	info := make([]byte, 0, len(label)+16)
	info = append(info, label...)
	info = binary.BigEndian.AppendUint64(info, uint64(periodLen/time.Second))
	info = binary.BigEndian.AppendUint64(info, uint64(period))
	key, err := hkdf.Expand(sha256.New, f.prk, string(info), n)
	if err != nil {
		// Only a length beyond 255 hash blocks fails; ours are fixed
		// and small.
		panic("dtls: HKDF-Expand: " + err.Error())
	}
	return key
}

// fleetPeriod is the index of the period of length periodLen, counted
// from the Unix epoch, that the instant unixMicro falls in.
func fleetPeriod(unixMicro int64, periodLen time.Duration) int64 {
	p := int64(periodLen / time.Microsecond)
	q := unixMicro / p
	if unixMicro%p < 0 {
		q--
	}
	return q
}

// Cookies. A fleet cookie has the layout of any other (cookie.go), but
// its timestamp counts microseconds since the Unix epoch (modulo 2^32),
// so that every server reads it alike, and its tag is keyed with the key
// of the period it was made in. The timestamp is covered by the tag, so
// the verifier may trust it to pick the key: one HMAC per check,
// whichever server made the cookie and however their clocks differ
// within fleetMaxClockSkew.

// fleetCookieKey is a cached keyed HMAC for one cookie period.
type fleetCookieKey struct {
	period int64
	mac    hash.Hash // nil: empty slot
}

// newFleetCookieGenerator returns a cookie generator for a fleet member.
// clock is the Config's clock, which stamps the cookies of a Conn made
// with Server (fixedStamp).
func newFleetCookieGenerator(f *fleetKeys, clock func() time.Time) *cookieGenerator {
	return &cookieGenerator{
		epoch: time.Unix(0, 0),
		fleet: f,
		clock: clock,
		sum:   make([]byte, 0, sha256.Size),
	}
}

// fleetMACLocked returns the HMAC keyed for cookie period, deriving and
// caching it on first use. The cache is bounded by fleetCookieKeyCache;
// the slot reused is the one of the oldest period.
func (g *cookieGenerator) fleetMACLocked(period int64) hash.Hash {
	oldest := 0
	for i := range g.fleetMACs {
		k := &g.fleetMACs[i]
		if k.mac != nil && k.period == period {
			return k.mac
		}
		if k.mac == nil || (g.fleetMACs[oldest].mac != nil && k.period < g.fleetMACs[oldest].period) {
			oldest = i
		}
	}
	key := g.fleet.derive("cookie", fleetCookiePeriod, period, cookieSecretLen)
	g.fleetMACs[oldest] = fleetCookieKey{period: period, mac: hmac.New(sha256.New, key)}
	return g.fleetMACs[oldest].mac
}

// fleetMakerLocked returns the HMAC that makes a cookie at now.
func (g *cookieGenerator) fleetMakerLocked(now time.Time) hash.Hash {
	return g.fleetMACLocked(fleetPeriod(now.UnixMicro(), fleetCookiePeriod))
}

// fleetVerifierLocked returns the HMAC that checks a cookie with header,
// and the period whose key it is, or nil if the cookie's timestamp says
// it is older than lifetime (fleetCookieLifetime for a 1.2 cookie,
// maxHRRCookieAge for a 1.3 one) or from further in the future than
// fleetMaxClockSkew. The timestamp is 32 bits of microseconds, which wrap
// every 71 minutes: read as a signed difference from now, it is exact
// within ±35 minutes, far wider than the window accepted.
func (g *cookieGenerator) fleetVerifierLocked(now time.Time, header []byte, lifetime time.Duration) (hash.Hash, int64) {
	nowMicro := now.UnixMicro()
	age := int64(int32(uint32(nowMicro) - binary.BigEndian.Uint32(header[0:4])))
	if age < -int64(fleetMaxClockSkew/time.Microsecond) || age >= int64(lifetime/time.Microsecond) {
		return nil, 0
	}
	period := fleetPeriod(nowMicro-age, fleetCookiePeriod)
	return g.fleetMACLocked(period), period
}

// fixedStamp is the time a Conn made with Server stamps its cookies
// with. Alone, that Conn checks its own cookies, so a fixed stamp (the
// generator's creation) makes a recorded handshake replay byte for byte;
// in a fleet, another server may check the cookie, and the stamp is the
// time.
func (g *cookieGenerator) fixedStamp() time.Time {
	if g.fleet != nil {
		return g.clock()
	}
	return g.epoch
}

// Tickets. Every fleet member seals new tickets with the key of the
// current day and opens tickets with the keys of the days a ticket may
// still be live, SessionLifetime back, and of the next day (a member
// whose clock runs ahead).

// fleetTicketKeysLocked returns the fleet's ticket keys at now, the
// sealing key first, derived once per period.
func (r *serverResumption) fleetTicketKeysLocked(c *Config, now time.Time) ([]ticketKey, error) {
	period := fleetPeriod(now.UnixMicro(), fleetTicketPeriod)
	lifetime := c.sessionLifetime()
	// Clones of a Config share its resumption state but may differ in
	// secret or lifetime: the cache holds for the ones it was made for.
	if len(r.fleetKeys) > 0 && r.fleetPeriod == period && r.fleetLifetime == lifetime &&
		subtle.ConstantTimeCompare(r.fleetSecret, c.FleetSecret) == 1 {
		return r.fleetKeys, nil
	}
	f, err := c.fleet()
	if err != nil {
		return nil, err
	}
	// A ticket sealed in period m is live until at most the end of m plus
	// the session lifetime: keep the periods back to that, and one more
	// for a sealer whose clock ran ahead across a boundary.
	back := int64((lifetime+fleetTicketPeriod-1)/fleetTicketPeriod) + 1
	keys := make([]ticketKey, 0, back+2)
	keys = append(keys, fleetTicketKey(f, period), fleetTicketKey(f, period+1))
	for p := period - 1; p >= period-back; p-- {
		keys = append(keys, fleetTicketKey(f, p))
	}
	r.fleetPeriod, r.fleetKeys = period, keys
	r.fleetLifetime, r.fleetSecret = lifetime, bytes.Clone(c.FleetSecret)
	return keys, nil
}

// fleetTicketKey derives the ticket key of one period: its key_name and
// its XChaCha20-Poly1305 key.
func fleetTicketKey(f *fleetKeys, period int64) ticketKey {
	b := f.derive("ticket", fleetTicketPeriod, period, ticketKeyNameLen+chacha20poly1305.KeySize)
	var k ticketKey
	copy(k.name[:], b[:ticketKeyNameLen])
	copy(k.key[:], b[ticketKeyNameLen:])
	k.created = time.UnixMicro(period * int64(fleetTicketPeriod/time.Microsecond))
	return k
}

// Connection IDs that name their server.

const (
	// minCIDNonceLen is the fewest random bytes ServerIDCIDGenerator
	// puts after the server id: a Listener draws again for a CID already
	// in use, and 2^32 values leave that rare for any table it holds.
	minCIDNonceLen = 4
)

// ServerIDCIDGenerator returns a ConnectionIDGenerator for one server of
// a fleet behind a balancer, in the spirit of QUIC-LB's plaintext CIDs
// (draft-ietf-quic-load-balancers): every CID is size bytes, the
// serverID bytes first, then random bytes from crypto/rand. Give each
// server of the fleet a different serverID of the same length, and the
// same size. A client puts our CID in every record it protects once the
// handshake has keys, so a balancer routes such a record by its CID to
// the server that holds the connection, even after the client's address
// changed (NAT rebinding), where routing by address would pick another
// server.
//
// What the balancer reads: a datagram's first record is a DTLS 1.2 CID
// record (RFC 9146 §4) when its first byte is 25 (tls12_cid); its CID
// starts at byte 11, after type(1), version(2), epoch(2) and
// sequence_number(6), and the server id is the CID's first len(serverID)
// bytes. Any other datagram (a ClientHello, or a record of a peer without
// a CID) carries no server id and is routed by the client's address.
// (DTLS 1.3's unified header, RFC 9147 §4, puts the CID right after its
// first byte, 001CSLEE with C set; this package does not use CIDs with
// 1.3 yet.)
// "Running a fleet" in the README shows an nginx configuration that does
// both.
//
// The server id is in the clear: an observer of the client's traffic
// learns which server of the fleet holds its connection, as the address
// it is sent to tells once the balancer forwarded it; QUIC-LB's
// encrypted CIDs, which hide it, are not implemented. serverID must be
// 1 to maxCIDLen-minCIDNonceLen bytes and size at least len(serverID) +
// minCIDNonceLen, at most 255.
func ServerIDCIDGenerator(serverID []byte, size int) (func() []byte, error) {
	switch {
	case len(serverID) == 0:
		return nil, errors.New("dtls: ServerIDCIDGenerator needs a server id of at least one byte")
	case size > maxCIDLen:
		return nil, fmt.Errorf("dtls: ServerIDCIDGenerator: a CID of %d bytes; at most %d", size, maxCIDLen)
	case size < len(serverID)+minCIDNonceLen:
		return nil, fmt.Errorf("dtls: ServerIDCIDGenerator: a CID of %d bytes leaves fewer than %d random bytes after a %d-byte server id", size, minCIDNonceLen, len(serverID))
	}
	id := append([]byte(nil), serverID...)
	return func() []byte {
		cid := make([]byte, size)
		copy(cid, id)
		if _, err := rand.Read(cid[len(id):]); err != nil {
			panic("dtls: crypto/rand failed: " + err.Error())
		}
		return cid
	}, nil
}
