package dtls

import (
	"net/netip"
	"time"
)

// helloGate is the one stateless check a ClientHello passes before a
// server keeps any state for its peer (RFC 6347 §4.2.1): a ClientHello
// without a valid cookie is answered with a HelloVerifyRequest carrying
// one, and forgotten. Both servers use it: a Listener before it creates a
// Conn (it sends the HelloVerifyRequest itself, statelessly), and a Conn
// made with Server, which sends it as a flight of its own handshake.
// DTLS 1.3 (RFC 9147 §5.1) puts the same cookie in a HelloRetryRequest,
// made and checked here, so the version decision and the proof of address
// stay in one place.
//
// It is safe for concurrent use.
type helloGate struct {
	// cookies makes and checks cookies; nil when the check is off
	// (Config.InsecureSkipHelloVerify).
	cookies *cookieGenerator
}

// newHelloGate returns the gate for config. It draws the cookie secret
// from config's Rand, or derives it from Config.FleetSecret, unless
// InsecureSkipHelloVerify turns the check off.
func newHelloGate(config *Config) (*helloGate, error) {
	fleet, err := config.fleet()
	if err != nil {
		return nil, err
	}
	if config.InsecureSkipHelloVerify {
		return &helloGate{}, nil
	}
	if fleet != nil { // cookie keys derived from Config.FleetSecret (fleet.go)
		return &helloGate{cookies: newFleetCookieGenerator(fleet, config.time)}, nil
	}
	cookies, err := newCookieGenerator(config.rand(), config.time())
	if err != nil {
		return nil, err
	}
	return &helloGate{cookies: cookies}, nil
}

// admit reports whether ch, from addr, may start a handshake: it returns
// a cookie we made for this address and these ClientHello fields, or the
// check is off. The comparison is constant-time.
func (g *helloGate) admit(now time.Time, addr netip.AddrPort, ch *clientHelloMsg) bool {
	return g.cookies == nil || g.cookies.verify(now, addr, ch, ch.cookie)
}

// appendHelloVerifyRequest appends to dst the whole record a Listener
// sends, statelessly, to a ClientHello from addr that admit refused. The
// ClientHello came in a record with sequence number recordSeq and had
// message_seq msgSeq; the answer reuses both (RFC 6347 §4.2.1), so that
// nothing needs to be kept to number it, and its cookie records now and
// recordSeq so that the ClientHello that returns it gives a round-trip
// sample (roundTrip).
func (g *helloGate) appendHelloVerifyRequest(dst []byte, now time.Time, addr netip.AddrPort, recordSeq uint64, msgSeq uint16, ch *clientHelloMsg) []byte {
	var cookie [cookieLen]byte
	return appendHelloVerifyRequest(dst, recordSeq, msgSeq, g.cookies.generate(cookie[:0], now, addr, recordSeq, ch))
}

// helloVerifyRequest returns the HelloVerifyRequest a Conn made with
// Server sends, in a flight of its own, to a ClientHello from addr that
// admit refused. That Conn's transport measures the round trip itself,
// so the cookie's timestamp and sequence number are not used: fixed, a
// recorded handshake replays byte for byte (but for a fleet member,
// whose cookie another server may check: fixedStamp).
func (g *helloGate) helloVerifyRequest(addr netip.AddrPort, ch *clientHelloMsg) *helloVerifyRequestMsg {
	return &helloVerifyRequestMsg{vers: VersionDTLS12, cookie: g.cookies.generate(nil, g.cookies.fixedStamp(), addr, 0, ch)}
}

// roundTrip returns the round-trip sample that an admitted ClientHello's
// cookie gives (cookieGenerator.roundTrip), or 0.
func (g *helloGate) roundTrip(now time.Time, recordSeq uint64, cookie []byte) time.Duration {
	if g.cookies == nil {
		return 0
	}
	return g.cookies.roundTrip(now, recordSeq, cookie)
}

// appendHelloVerifyRequest builds a whole HelloVerifyRequest record. Its
// record sequence number is the ClientHello's (RFC 6347 §4.2.1), so that
// no state is needed to number it.
func appendHelloVerifyRequest(dst []byte, recordSeq uint64, msgSeq uint16, cookie []byte) []byte {
	bodyLen := 3 + len(cookie) // server_version, cookie<0..2^8-1>
	h := handshakeHeader{typ: typeHelloVerifyRequest, length: uint32(bodyLen), messageSeq: msgSeq, fragmentLength: uint32(bodyLen)}
	dst = appendRecordHeader(dst, recordTypeHandshake, VersionDTLS12, 0, recordSeq, handshakeHeaderLen+bodyLen)
	dst = h.appendTo(dst)
	dst = append(dst, byte(VersionDTLS12>>8), byte(VersionDTLS12&0xff), byte(len(cookie)))
	return append(dst, cookie...)
}
