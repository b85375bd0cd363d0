package dtls

import (
	"net/netip"
	"slices"
	"sync/atomic"
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
	// ops counts the cryptography the server runs for its peers.
	ops serverCryptoOps
}

// serverCryptoOps counts the cryptography a server (a Listener, through
// its gate) runs for its peers: the cookie's (hashing a first DTLS 1.3
// ClientHello into its cookie, and the HMAC) and what only a peer past the
// cookie may cost it in DTLS 1.3 (the key exchange, ML-KEM included, the
// CertificateVerify signature, PSK binders). The tests read it to show
// that nothing but the cookie runs before a cookie verifies (dos_test.go),
// by count rather than by time.
type serverCryptoOps struct {
	helloHashes, keyExchanges, signatures, binders atomic.Int64
}

// cryptoOps returns the counters of the gate a Listener's Conn shares, or
// nil for a Conn made with Server, whose work is its own.
func (c *Conn) cryptoOps() *serverCryptoOps {
	if c.listener == nil {
		return nil
	}
	return &c.listener.gate.ops
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

// admission13 is what check13 found in a second ClientHello that returns
// a valid cookie: what the cookie carries (params, whose chHash aliases
// the ClientHello) and the cookie itself. The Listener hands it to the
// Conn it starts (clone), which so does not check the cookie again.
type admission13 struct {
	params hrrParams
	cookie []byte
}

// clone copies a so that it outlives the Listener's scratch buffers.
func (a *admission13) clone() *admission13 {
	c := &admission13{params: a.params, cookie: append([]byte(nil), a.cookie...)}
	c.params.chHash = c.cookie[cookie13FixedLen : len(c.cookie)-cookieTagLen]
	return c
}

// check13 is the gate for a ClientHello that may get DTLS 1.3 from a
// Listener (RFC 9147 §5.1): one that offers 1.3 to a server that would
// choose it (is13) is answered statelessly with a HelloRetryRequest
// carrying a cookie (appended to dst as a whole record, with the
// ClientHello's record sequence number and message_seq, like the
// HelloVerifyRequest), unless it returns a valid cookie (admitted, with
// what the cookie carries in adm, aliasing ch; adm is nil when the check
// is off). The HelloRetryRequest also asks for our preferred group when
// the client's key share is for another. Nothing here does any
// cryptography beyond hashing the ClientHello into the cookie and the
// cookie's HMAC: the key exchange, ML-KEM included, waits for the
// connection the admitted ClientHello starts.
func (g *helloGate) check13(dst []byte, now time.Time, addr netip.AddrPort, recordSeq uint64, msgSeq uint16, config *Config, ch *clientHelloMsg, adm *admission13) (answer []byte, admitted, is13 bool) {
	if !config.serves13() || len(ch.cookie) != 0 {
		return dst, false, false
	}
	ch13 := new(clientHelloMsg13)
	if !ch13.unmarshal(ch.original) || !slices.Contains(ch13.supportedVersions, VersionDTLS13) {
		return dst, false, false
	}
	if g.cookies == nil {
		return dst, true, true // the check is off: the connection decides
	}
	if len(ch13.cookieExt) > 0 {
		p, ok := g.cookies.verify13(now, addr, ch, ch13.cookieExt)
		if ok && adm != nil {
			*adm = admission13{params: p, cookie: ch13.cookieExt}
		}
		return dst, ok, true
	}
	if config.admitEarlyData(now, addr, ch13) {
		// A 0-RTT ClientHello we will accept: no cookie exchange
		// (early_data_dtls13.go).
		return dst, true, true
	}
	p, ok := hrrParamsFor(config, ch13)
	if !ok {
		return dst, false, false // nothing in common for 1.3: 1.2 may do
	}
	var sum [64]byte
	g.ops.helloHashes.Add(1)
	p.chHash = clientHelloHash13(sum[:0], cipherSuite13ByID(p.suite), ch.original)
	var cookie [maxCookie13Len]byte
	hrr := helloRetryRequest13(p, g.cookies.generate13(cookie[:0], now, addr, recordSeq, p, ch))
	body, err := hrr.marshal()
	if err != nil {
		return dst, false, true
	}
	hh := handshakeHeader{typ: typeServerHello, length: uint32(len(body)), messageSeq: msgSeq, fragmentLength: uint32(len(body))}
	dst = appendRecordHeader(dst, recordTypeHandshake, VersionDTLS12, 0, recordSeq, handshakeHeaderLen+len(body))
	dst = hh.appendTo(dst)
	return append(dst, body...), false, true
}

// clientHelloHash13 appends to dst Hash(ClientHello1) for the suite: the
// hash that message_hash carries (RFC 8446 §4.4.1), of the message with
// a TLS-style header (RFC 9147 §5.2), body being its body.
func clientHelloHash13(dst []byte, suite *cipherSuite13, body []byte) []byte {
	h := suite.hash.New()
	writeTranscriptMessage13(h, typeClientHello, body)
	return h.Sum(dst)
}

// helloRetryCookie returns the cookie of the HelloRetryRequest a Conn
// made with Server sends for p to a first ClientHello from addr, or nil
// when the check is off.
func (g *helloGate) helloRetryCookie(now time.Time, addr netip.AddrPort, p hrrParams, ch *clientHelloMsg) []byte {
	if g.cookies == nil {
		return nil
	}
	return g.cookies.generate13(nil, now, addr, 0, p, ch)
}

// open13 is check13's verification for a Conn made with Server: it
// reports whether cookie, in a second ClientHello from addr, is a valid
// one, and returns what it carries.
func (g *helloGate) open13(now time.Time, addr netip.AddrPort, ch *clientHelloMsg, cookie []byte) (hrrParams, bool) {
	if g.cookies == nil {
		return hrrParams{}, false
	}
	return g.cookies.verify13(now, addr, ch, cookie)
}

// hrrParamsFor chooses the suite and group of a HelloRetryRequest as the
// connection would (serverHandshakeState13.processClientHello): our first
// suite and group that the client offers; askedGroup when the client sent
// no share for that group.
func hrrParamsFor(config *Config, ch *clientHelloMsg13) (hrrParams, bool) {
	var p hrrParams
	if s := selectSuite13(config, ch, nil); s != nil {
		p.suite = s.id
	}
	p.group = preferredGroup13(config, ch)
	if p.suite == 0 || p.group == 0 {
		return p, false
	}
	p.askedGroup = keyShareFor(ch, p.group) == nil
	return p, true
}

// helloRetryRequest13 is the HelloRetryRequest for p with cookie: the
// gate sends it, and the connection rebuilds it byte for byte for its
// transcript (RFC 8446 §4.4.1).
func helloRetryRequest13(p hrrParams, cookie []byte) *serverHelloMsg13 {
	hrr := &serverHelloMsg13{
		vers:             VersionDTLS12,
		random:           helloRetryRequestRandom,
		cipherSuite:      p.suite,
		supportedVersion: VersionDTLS13,
		cookie:           cookie,
	}
	if p.askedGroup {
		hrr.selectedGroup = p.group
	}
	return hrr
}
