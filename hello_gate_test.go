package dtls

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// TestHelloGate checks the one cookie check both servers use: a
// ClientHello without our cookie is refused and answered with a
// HelloVerifyRequest whose cookie it then passes with, from the same
// address only; the Server flavour of the HelloVerifyRequest carries a
// cookie the same gate admits; with InsecureSkipHelloVerify every
// ClientHello passes and no secret is drawn from Rand.
func TestHelloGate(t *testing.T) {
	r := &countingReader{}
	now := cookieTestTime
	g, err := newHelloGate(&Config{Rand: r, Time: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if r.next != cookieSecretLen {
		t.Fatalf("gate drew %d bytes of Rand, want %d", r.next, cookieSecretLen)
	}
	ch := cookieTestHello()
	ch.cookie = nil
	if g.admit(now, cookieTestAddr, ch) {
		t.Fatal("a ClientHello without a cookie passed")
	}

	// The Listener's stateless HelloVerifyRequest: a whole record.
	const recordSeq, msgSeq = 7, 0
	rec := g.appendHelloVerifyRequest(nil, now, cookieTestAddr, recordSeq, msgSeq, ch)
	hdr, body, rest, reason := nextRecord(rec)
	if reason != dropNone || len(rest) != 0 || hdr.typ != recordTypeHandshake || hdr.epoch != 0 || hdr.seq != recordSeq {
		t.Fatalf("HelloVerifyRequest record: %+v, %v, %d bytes after", hdr, reason, len(rest))
	}
	var hh handshakeHeader
	if !hh.unmarshal(body) || hh.typ != typeHelloVerifyRequest || hh.messageSeq != msgSeq {
		t.Fatalf("HelloVerifyRequest header: %+v", hh)
	}
	hvr := new(helloVerifyRequestMsg)
	if !hvr.unmarshal(body[handshakeHeaderLen:]) || hvr.vers != VersionDTLS12 {
		t.Fatalf("HelloVerifyRequest body: %+v", hvr)
	}
	ch.cookie = hvr.cookie
	later := now.Add(30 * time.Millisecond)
	if !g.admit(later, cookieTestAddr, ch) {
		t.Fatal("the ClientHello returning our cookie was refused")
	}
	other := cookieTestAddr.Addr().Next()
	if g.admit(later, netip.AddrPortFrom(other, cookieTestAddr.Port()), ch) {
		t.Fatal("our cookie passed from another address")
	}
	if rtt := g.roundTrip(later, recordSeq+1, ch.cookie); rtt != 30*time.Millisecond {
		t.Errorf("round trip from the cookie: %v, want 30ms", rtt)
	}

	// The HelloVerifyRequest a Conn made by Server sends in its flight.
	ch.cookie = g.helloVerifyRequest(cookieTestAddr, ch).cookie
	if !g.admit(later, cookieTestAddr, ch) {
		t.Fatal("the cookie of Server's HelloVerifyRequest was refused")
	}
	if !bytes.Equal(ch.cookie, g.helloVerifyRequest(cookieTestAddr, ch).cookie) {
		t.Error("Server's HelloVerifyRequest is not reproducible")
	}

	r = &countingReader{}
	skip, err := newHelloGate(&Config{Rand: r, InsecureSkipHelloVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	ch.cookie = nil
	if !skip.admit(now, cookieTestAddr, ch) || r.next != 0 {
		t.Errorf("InsecureSkipHelloVerify: admitted %v, drew %d bytes of Rand", skip.admit(now, cookieTestAddr, ch), r.next)
	}
	if rtt := skip.roundTrip(now, 1, nil); rtt != 0 {
		t.Errorf("round trip without cookies: %v", rtt)
	}
}
