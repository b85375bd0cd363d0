package dtls

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// clientHello13 returns a first ClientHello offering DTLS 1.3 as our
// client makes it, parsed as the Listener parses it, and its datagram.
func clientHello13(t testing.TB) (*clientHelloMsg, []byte) {
	return clientHello13Groups(t, nil)
}

// clientHello13Groups is clientHello13 from a client with these
// CurvePreferences: with X25519MLKEM768 alone, its key share is the
// 1216-byte hybrid one.
func clientHello13Groups(t testing.TB, groups []tls.CurveID) (*clientHelloMsg, []byte) {
	tc := certs(t)["p256"]
	c := Client(nil, &Config{RootCAs: tc.pool, ServerName: "dtls.test", MaxVersion: VersionDTLS13, CurvePreferences: groups})
	hello, err := c.makeClientHello()
	if err != nil {
		t.Fatal(err)
	}
	hs13, err := c.offer13(hello, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := hs13.hello.marshal()
	if err != nil {
		t.Fatal(err)
	}
	h := handshakeHeader{typ: typeClientHello, length: uint32(len(body)), fragmentLength: uint32(len(body))}
	d := appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 0, 0, handshakeHeaderLen+len(body))
	d = append(h.appendTo(d), body...)
	_, ch, _, ok := parseInitialClientHello(d)
	if !ok {
		t.Fatal("our 1.3 ClientHello does not parse")
	}
	return ch, d
}

// secondHello13 is ch with the cookie extension set, as a client answers
// a HelloRetryRequest, parsed back.
func secondHello13(t testing.TB, ch *clientHelloMsg, cookie []byte, mutate func(*clientHelloMsg13)) *clientHelloMsg {
	m := new(clientHelloMsg13)
	if !m.unmarshal(ch.original) {
		t.Fatal("unmarshal")
	}
	m.cookieExt = cookie
	if mutate != nil {
		mutate(m)
	}
	body, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := new(clientHelloMsg)
	if !out.unmarshal(body) {
		t.Fatal("second ClientHello does not parse")
	}
	return out
}

// TestHelloGate13 checks the stateless HelloRetryRequest cookie: it
// admits the second ClientHello from the same address within its
// lifetime, and nothing else (RFC 9147 §5.1; the misbehaving rows of
// issue 12: a cookie from another address or expired, a ClientHello2
// that changes what the cookie covers).
func TestHelloGate13(t *testing.T) {
	tc := certs(t)["p256"]
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	cfg := &Config{Certificates: []tls.Certificate{tc.tls}, MaxVersion: VersionDTLS13, Time: func() time.Time { return now }}
	g, err := newHelloGate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort("192.0.2.1:5000")
	ch, d := clientHello13(t)
	hrr, admitted, is13 := g.check13(nil, now, addr, 7, 0, cfg, ch, nil)
	if !is13 || admitted || len(hrr) == 0 {
		t.Fatalf("first ClientHello: is13 %v admitted %v answer %d bytes", is13, admitted, len(hrr))
	}
	if len(hrr) > len(d) {
		t.Errorf("HelloRetryRequest of %d bytes answers a ClientHello of %d", len(hrr), len(d))
	}
	rh, body, _, reason := nextRecord(hrr)
	if reason != dropNone || rh.seq != 7 {
		t.Fatalf("HRR record %+v %v", rh, reason)
	}
	sh := new(serverHelloMsg13)
	if !sh.unmarshal(body[handshakeHeaderLen:]) || !sh.isHelloRetryRequest() || sh.supportedVersion != VersionDTLS13 || len(sh.cookie) == 0 {
		t.Fatalf("not a 1.3 HelloRetryRequest: %+v", sh)
	}
	// Client and server at the default groups: the client's share is
	// X25519, and the HelloRetryRequest that the cookie costs anyway asks
	// for X25519MLKEM768.
	if sh.selectedGroup != groupX25519MLKEM768 {
		t.Fatalf("HelloRetryRequest selects group %v, want X25519MLKEM768", sh.selectedGroup)
	}
	cookie := sh.cookie
	ok := func(ch2 *clientHelloMsg, at time.Time, from netip.AddrPort) bool {
		_, admitted, is13 := g.check13(nil, at, from, 8, 1, cfg, ch2, nil)
		return is13 && admitted
	}
	if !ok(secondHello13(t, ch, cookie, nil), now.Add(time.Second), addr) {
		t.Fatal("the second ClientHello with our cookie is refused")
	}
	// The client sends the same second ClientHello on every expiry of its
	// timer, which backs off to 60 s: minutes later its cookie still
	// counts (LOSS.md, MTU 200, 50% loss).
	if !ok(secondHello13(t, ch, cookie, nil), now.Add(4*time.Minute), addr) {
		t.Fatal("the second ClientHello, retransmitted 4 minutes after the HelloRetryRequest, is refused")
	}
	var adm admission13
	if _, admitted, _ := g.check13(nil, now, addr, 8, 1, cfg, secondHello13(t, ch, cookie, nil), &adm); !admitted {
		t.Fatal("refused")
	}
	p := adm.params
	want := clientHelloHash13(nil, cipherSuite13ByID(suiteTLSAES128GCMSHA256), ch.original)
	if p.suite != suiteTLSAES128GCMSHA256 || p.group != groupX25519MLKEM768 || !p.askedGroup || !bytes.Equal(p.chHash, want) || !bytes.Equal(adm.cookie, cookie) {
		t.Fatalf("cookie carries %+v", p)
	}
	if c := adm.clone(); !bytes.Equal(c.params.chHash, want) || &c.cookie[0] == &adm.cookie[0] {
		t.Fatal("clone does not copy what the cookie carries")
	}
	if rtt := g.roundTrip(now.Add(30*time.Millisecond), 8, cookie); rtt != 30*time.Millisecond {
		t.Errorf("round-trip sample from the 1.3 cookie: %v, want 30ms", rtt)
	}
	for _, tc := range []struct {
		name string
		ch2  *clientHelloMsg
		at   time.Time
		from netip.AddrPort
	}{
		{"another address", secondHello13(t, ch, cookie, nil), now, netip.MustParseAddrPort("192.0.2.2:5000")},
		{"another port", secondHello13(t, ch, cookie, nil), now, netip.MustParseAddrPort("192.0.2.1:5001")},
		{"expired", secondHello13(t, ch, cookie, nil), now.Add(maxHRRCookieAge + time.Second), addr},
		{"another random", secondHello13(t, ch, cookie, func(m *clientHelloMsg13) { m.random = bytes.Repeat([]byte{9}, randomLen) }), now, addr},
		{"other suites", secondHello13(t, ch, cookie, func(m *clientHelloMsg13) { m.cipherSuites = m.cipherSuites[1:] }), now, addr},
		{"tampered cookie", secondHello13(t, ch, append(bytes.Clone(cookie[:len(cookie)-1]), cookie[len(cookie)-1]^1), nil), now, addr},
		{"truncated cookie", secondHello13(t, ch, cookie[:len(cookie)-1], nil), now, addr},
		{"1.2 cookie length", secondHello13(t, ch, cookie[:cookieLen], nil), now, addr},
	} {
		if ok(tc.ch2, tc.at, tc.from) {
			t.Errorf("%s: admitted", tc.name)
		}
	}
	// A server that does not speak 1.3 leaves the ClientHello to the 1.2
	// gate; one with the default MaxVersion speaks it.
	if _, _, is13 := g.check13(nil, now, addr, 0, 0, &Config{Certificates: cfg.Certificates, MaxVersion: VersionDTLS12}, ch, nil); is13 {
		t.Error("1.3 chosen by a server with MaxVersion 1.2")
	}
	if _, _, is13 := g.check13(nil, now, addr, 0, 0, &Config{Certificates: cfg.Certificates}, ch, nil); !is13 {
		t.Error("1.3 not chosen by a server with the default MaxVersion")
	}
}

// TestSpoofedClientHello13Flood is TestSpoofedClientHelloFlood with
// ClientHellos that offer DTLS 1.3: each gets a stateless
// HelloRetryRequest no larger than itself, and no state is kept.
func TestSpoofedClientHello13Flood(t *testing.T) {
	checkNoGoroutineLeak(t)
	total := 20_000
	if testing.Short() || raceEnabled {
		total = 5_000
	}
	const warm = 500
	_, d := clientHello13(t)
	f := newFloodPacketConn(t, total+warm, warm)
	f.template = d
	tc := certs(t)["p256"]
	// The default groups: X25519MLKEM768 first.
	l, err := NewListener(f, &Config{Certificates: []tls.Certificate{tc.tls}, MaxVersion: VersionDTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	<-f.warmed
	before := heapInUse()
	close(f.resume)
	<-f.done
	growth := int64(heapInUse()) - int64(before)
	if growth > floodHeapBound {
		t.Errorf("heap grew by %d bytes over %d spoofed 1.3 ClientHellos, want < %d", growth, total, floodHeapBound)
	}
	if got := f.answers.Load(); got != int64(total+warm) {
		t.Errorf("%d HelloRetryRequests for %d ClientHellos", got, total+warm)
	}
	if n := f.tooLarge.Load(); n > 0 {
		t.Errorf("%d answers larger than the ClientHello", n)
	}
	if conns := l.table.len(); conns != 0 || l.Stats().Handshaking != 0 {
		t.Errorf("%d connections and %d handshakes after a flood without cookies", conns, l.Stats().Handshaking)
	}
}

// TestHelloGate13Fleet: in a fleet (Config.FleetSecret) one server's 1.3
// HelloRetryRequest cookie is accepted by another's gate, as 1.2's are.
func TestHelloGate13Fleet(t *testing.T) {
	tc := certs(t)["p256"]
	now := time.Now()
	secret := bytes.Repeat([]byte{0x5e}, 32)
	newGate := func() (*helloGate, *Config) {
		cfg := &Config{Certificates: []tls.Certificate{tc.tls}, MaxVersion: VersionDTLS13, FleetSecret: secret}
		g, err := newHelloGate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return g, cfg
	}
	g1, cfg := newGate()
	g2, _ := newGate()
	other, _ := newGate()
	addr := netip.MustParseAddrPort("192.0.2.1:5000")
	ch, _ := clientHello13(t)
	hrr, _, is13 := g1.check13(nil, now, addr, 0, 0, cfg, ch, nil)
	_, body, _, _ := nextRecord(hrr)
	sh := new(serverHelloMsg13)
	if !is13 || !sh.unmarshal(body[handshakeHeaderLen:]) || len(sh.cookie) == 0 {
		t.Fatal("no HelloRetryRequest with a cookie")
	}
	ch2 := secondHello13(t, ch, sh.cookie, nil)
	if _, admitted, _ := g2.check13(nil, now.Add(time.Second), addr, 1, 1, cfg, ch2, nil); !admitted {
		t.Fatal("another fleet member refuses the cookie")
	}
	if _, admitted, _ := other.check13(nil, now.Add(time.Second), netip.MustParseAddrPort("192.0.2.9:5000"), 1, 1, cfg, ch2, nil); admitted {
		t.Fatal("cookie accepted from another address")
	}
	cfg2 := &Config{Certificates: cfg.Certificates, MaxVersion: VersionDTLS13, FleetSecret: bytes.Repeat([]byte{0x17}, 32)}
	g3, err := newHelloGate(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if _, admitted, _ := g3.check13(nil, now.Add(time.Second), addr, 1, 1, cfg2, ch2, nil); admitted {
		t.Fatal("a server with another FleetSecret accepts the cookie")
	}
}

// TestCookie13KeyRotation: a 1.3 cookie made with our own key is accepted
// after the key rotated once (the overlap), by the one key its key id
// names, and refused once that key is gone or if its key id is changed.
func TestCookie13KeyRotation(t *testing.T) {
	start := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	g, err := newCookieGenerator(&countingReader{}, start)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort("192.0.2.1:5000")
	ch, _ := clientHello13(t)
	p := hrrParams{suite: suiteTLSAES128GCMSHA256, group: tls.X25519MLKEM768, askedGroup: true, chHash: bytes.Repeat([]byte{7}, 32)}
	cookie := g.generate13(nil, start, addr, 3, p, ch)
	if len(cookie) != cookie13FixedLen+32+cookieTagLen {
		t.Fatalf("cookie of %d bytes", len(cookie))
	}
	check := func(c []byte, at time.Time) bool {
		got, ok := g.verify13(at, addr, ch, c)
		if ok && (got.suite != p.suite || got.group != p.group || !got.askedGroup || !bytes.Equal(got.chHash, p.chHash)) {
			t.Fatalf("cookie carries %+v, made with %+v", got, p)
		}
		return ok
	}
	if !check(cookie, start.Add(time.Second)) {
		t.Fatal("fresh cookie refused")
	}
	// One rotation later the key is the previous one, and still counts.
	later := start.Add(cookieSecretLifetime + time.Minute)
	if !check(cookie, later) {
		t.Fatal("cookie refused after one rotation")
	}
	fresh := g.generate13(nil, later, addr, 3, p, ch)
	if fresh[6] == cookie[6] {
		t.Fatal("the key id did not change with the key")
	}
	// The key id picks the key: pointing it at the other live key fails.
	forged := bytes.Clone(cookie)
	forged[6] = fresh[6]
	if check(forged, later) {
		t.Fatal("a cookie with another key id is accepted")
	}
	// Two rotations later its key is gone.
	if check(cookie, start.Add(2*cookieSecretLifetime+time.Minute)) {
		t.Fatal("cookie accepted after its key expired")
	}
}

// TestCookie13FleetClockSkew: in a fleet, a 1.3 cookie made by a server
// whose clock runs up to fleetMaxClockSkew ahead, or up to
// maxHRRCookieAge ago, is accepted by another member; one whose key id
// does not name the period of its time is not.
func TestCookie13FleetClockSkew(t *testing.T) {
	f, err := (&Config{FleetSecret: bytes.Repeat([]byte{0x5e}, 32)}).fleet()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 10, 2, 30, 0, time.UTC)
	maker, checker := newFleetCookieGenerator(f, time.Now), newFleetCookieGenerator(f, time.Now)
	addr := netip.MustParseAddrPort("[2001:db8::1]:5000")
	ch, _ := clientHello13(t)
	p := hrrParams{suite: suiteTLSAES256GCMSHA384, group: tls.X25519, chHash: bytes.Repeat([]byte{9}, 48)}
	for _, tc := range []struct {
		name string
		made time.Duration // relative to now
		ok   bool
	}{
		{"now", 0, true},
		{"maker's clock ahead", fleetMaxClockSkew - time.Second, true},
		{"too far ahead", fleetMaxClockSkew + time.Second, false},
		{"4 minutes ago", -4 * time.Minute, true},
		{"just within maxHRRCookieAge", -maxHRRCookieAge + time.Second, true},
		{"expired", -maxHRRCookieAge - time.Second, false},
	} {
		cookie := maker.generate13(nil, now.Add(tc.made), addr, 0, p, ch)
		got, ok := checker.verify13(now, addr, ch, cookie)
		if ok != tc.ok {
			t.Errorf("%s: accepted %v, want %v", tc.name, ok, tc.ok)
		}
		if ok && (got.suite != p.suite || !bytes.Equal(got.chHash, p.chHash)) {
			t.Errorf("%s: carries %+v", tc.name, got)
		}
		cookie[6]++
		if _, ok := checker.verify13(now, addr, ch, cookie); ok {
			t.Errorf("%s: accepted with a key id that is not its period's", tc.name)
		}
	}
}

// floodScript13 is a PacketConn that plays spoofed first DTLS 1.3
// ClientHellos to a Listener, from a new source address for each, in
// these kinds, round robin:
//
//	0: whole, with an X25519 share (one datagram)
//	1: with an X25519MLKEM768 share, in 300-byte fragments (five datagrams)
//	2: with an X25519 share, in 40-byte fragments, last first
//	3: with an X25519MLKEM768 share, fragmented, the last fragment missing
//	4: whole, with a cookie extension the server never made
//
// It counts the bytes received from and sent to each address (the
// Listener answers a peer while it handles that peer's last datagram,
// before it reads the next peer's: one address at a time, so that the
// counting allocates nothing), and pauses after warm peers for a heap
// measurement.
type floodScript13 struct {
	t              testing.TB
	x25519, hybrid []byte // whole first ClientHello records
	forged         []byte
	peers, warm    int
	peer           int
	queue          [][]byte
	warmed, resume chan struct{}
	done, closed   chan struct{}
	closeOnce      sync.Once
	mu             sync.Mutex
	received, sent int // bytes from and to the current peer
	totalIn        int // bytes from the peers that got an answer
	totalOut       int
	overLimit      int // peers sent more than 3× what they sent us
	worst          float64
	sentElsewhere  int // bytes sent to an address other than the current peer's
	answers, hrrs  int
	answeredKind   [5]int
	lastAddr       netip.AddrPort
}

const floodKinds13 = 5

func (f *floodScript13) ReadFrom(b []byte) (int, net.Addr, error) {
	if len(f.queue) == 0 {
		if f.peer == f.warm && f.warm > 0 {
			close(f.warmed)
			<-f.resume
		}
		if f.peer >= f.peers {
			if f.peer == f.peers {
				close(f.done)
				f.peer++
			}
			<-f.closed
			return 0, nil, net.ErrClosed
		}
		f.mu.Lock()
		f.endPeerLocked()
		f.mu.Unlock()
		f.queue = f.datagrams(f.peer)
		f.lastAddr = spoofedAddr(f.peer)
		f.peer++
	}
	d := f.queue[0]
	f.queue = f.queue[1:]
	f.mu.Lock()
	f.received += len(d)
	f.mu.Unlock()
	return copy(b, d), net.UDPAddrFromAddrPort(f.lastAddr), nil
}

// datagrams returns what peer i sends: its kind's ClientHello with a
// random of its own.
func (f *floodScript13) datagrams(i int) [][]byte {
	var whole []byte
	switch i % floodKinds13 {
	case 1, 3:
		whole = bytes.Clone(f.hybrid)
	case 4:
		whole = bytes.Clone(f.forged)
	default:
		whole = bytes.Clone(f.x25519)
	}
	binary.BigEndian.PutUint64(whole[recordHeaderLen+handshakeHeaderLen+2:], uint64(i))
	t := f.t.(*testing.T)
	switch i % floodKinds13 {
	case 1:
		return fragmentHello(t, whole, 300, 0)
	case 2:
		frags := fragmentHello(t, whole, 40, 0)
		slices.Reverse(frags)
		return frags
	case 3:
		frags := fragmentHello(t, whole, 300, 0)
		return frags[:len(frags)-1]
	}
	return [][]byte{whole}
}

// endPeerLocked accounts for the peer whose datagrams were all read.
func (f *floodScript13) endPeerLocked() {
	if f.sent > 0 {
		f.totalIn += f.received
		f.totalOut += f.sent
		if f.sent > 3*f.received {
			f.overLimit++
		}
		f.worst = max(f.worst, float64(f.sent)/float64(f.received))
	}
	f.received, f.sent = 0, 0
}

func (f *floodScript13) WriteTo(b []byte, addr net.Addr) (int, error) {
	ap := addr.(*net.UDPAddr).AddrPort()
	f.mu.Lock()
	defer f.mu.Unlock()
	if ap != f.lastAddr {
		f.sentElsewhere += len(b)
	}
	f.sent += len(b)
	f.answers++
	if hdr, body, _, reason := nextRecord(b); reason == dropNone && hdr.typ == recordTypeHandshake && len(body) > handshakeHeaderLen {
		sh := new(serverHelloMsg13)
		if handshakeType(body[0]) == typeServerHello && sh.unmarshal(body[handshakeHeaderLen:]) && sh.isHelloRetryRequest() && len(sh.cookie) > 0 {
			f.hrrs++
		}
	}
	// Which kind of peer was answered: addresses are spoofedAddr(i).
	a4 := ap.Addr().As4()
	f.answeredKind[(int(a4[1])<<16|int(a4[2])<<8|int(a4[3]))%floodKinds13]++
	return len(b), nil
}

func (f *floodScript13) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}
func (f *floodScript13) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.1:4433"))
}
func (f *floodScript13) SetDeadline(t time.Time) error      { return nil }
func (f *floodScript13) SetReadDeadline(t time.Time) error  { return nil }
func (f *floodScript13) SetWriteDeadline(t time.Time) error { return nil }

// TestSpoofedClientHello13FragmentedFlood is issue 12's "Done when" for
// the Listener: a flood of spoofed first ClientHellos offering DTLS 1.3,
// whole and fragmented (hybrid X25519MLKEM768 shares included) from many
// source addresses, leaves no connection state, answers each address
// with at most 3 times the bytes it sent (RFC 9147 §5.1; the Listener in
// fact never sends more than it received), and runs no cryptography but
// the cookie's before a cookie verifies: the counters of the gate
// (serverCryptoOps) show no key exchange, ML-KEM included, no signature
// and no PSK binder, one ClientHello hash per HelloRetryRequest, and
// HMACs only for cookies made or checked. Fragments go through the
// bounded pre-cookie pool (hello_pool.go), which stays within its limits.
func TestSpoofedClientHello13FragmentedFlood(t *testing.T) {
	checkNoGoroutineLeak(t)
	peers := 10_000
	if testing.Short() || raceEnabled {
		peers = 2_000
	}
	const warm = 500
	_, x25519 := clientHello13(t)
	_, hybrid := clientHello13Groups(t, []tls.CurveID{groupX25519MLKEM768})
	if len(hybrid) < 1216 {
		t.Fatalf("hybrid ClientHello of %d bytes", len(hybrid))
	}
	ch, _ := clientHello13(t)
	forgedCookie := bytes.Repeat([]byte{0xc0}, cookie13FixedLen+32+cookieTagLen)
	m := new(clientHelloMsg13)
	if !m.unmarshal(secondHello13(t, ch, forgedCookie, nil).original) {
		t.Fatal("unmarshal")
	}
	body, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	forged := appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 0, 1, handshakeHeaderLen+len(body))
	forged = append((&handshakeHeader{typ: typeClientHello, length: uint32(len(body)), messageSeq: 1, fragmentLength: uint32(len(body))}).appendTo(forged), body...)

	f := &floodScript13{
		t: t, x25519: x25519, hybrid: hybrid, forged: forged, peers: warm + peers, warm: warm,
		warmed: make(chan struct{}), resume: make(chan struct{}), done: make(chan struct{}), closed: make(chan struct{}),
	}
	tc := certs(t)["p256"]
	// The default groups: X25519MLKEM768 first.
	l, err := NewListener(f, &Config{Certificates: []tls.Certificate{tc.tls}, MaxVersion: VersionDTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	<-f.warmed
	before := heapInUse()
	close(f.resume)
	<-f.done
	// The reader handled the last datagram before it asked for the next.
	growth := int64(heapInUse()) - int64(before)
	if growth > floodHeapBound {
		t.Errorf("heap grew by %d bytes over %d spoofed peers, want < %d", growth, peers, floodHeapBound)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	total := warm + peers
	perKind := func(k int) int { return (total - k + floodKinds13 - 1) / floodKinds13 }
	wantHRRs := perKind(0) + perKind(1) + perKind(2)
	if f.hrrs != wantHRRs || f.answers != wantHRRs {
		t.Errorf("%d answers, %d of them HelloRetryRequests, for %d complete cookie-less ClientHellos", f.answers, f.hrrs, wantHRRs)
	}
	for k := 0; k < floodKinds13; k++ {
		want := perKind(k)
		if k >= 3 {
			want = 0 // incomplete, or a cookie we never made: no answer
		}
		if f.answeredKind[k] != want {
			t.Errorf("kind %d: %d answers, want %d", k, f.answeredKind[k], want)
		}
	}
	f.endPeerLocked()
	if f.overLimit > 0 || f.sentElsewhere > 0 {
		t.Errorf("%d peers got more than 3× the bytes they sent (RFC 9147 §5.1); %d bytes went to an address that had not just sent", f.overLimit, f.sentElsewhere)
	}
	t.Logf("%d spoofed peers: %d answers, %d bytes sent for %d received from the answered peers; worst ratio %.2f",
		total, f.answers, f.totalOut, f.totalIn, f.worst)

	if conns := l.table.len(); conns != 0 || l.Stats().Handshaking != 0 || l.Stats().HandshakesStarted != 0 {
		t.Errorf("%d connections, %d handshakes after a flood without cookies", conns, l.Stats().Handshaking)
	}
	ops := &l.gate.ops
	if n := ops.keyExchanges.Load() + ops.signatures.Load() + ops.binders.Load(); n != 0 {
		t.Errorf("before any cookie verified: %d key exchanges, %d signatures, %d PSK binders",
			ops.keyExchanges.Load(), ops.signatures.Load(), ops.binders.Load())
	}
	if n := ops.helloHashes.Load(); n != int64(wantHRRs) {
		t.Errorf("%d ClientHellos hashed for %d HelloRetryRequests", n, wantHRRs)
	}
	l.gate.cookies.mu.Lock()
	macs := l.gate.cookies.macs
	l.gate.cookies.mu.Unlock()
	if macs < int64(wantHRRs) || macs > int64(wantHRRs+perKind(4)) {
		t.Errorf("%d cookie HMACs for %d cookies made and %d forged ones checked", macs, wantHRRs, perKind(4))
	}
	l.hellosMu.Lock()
	used, perSource := 0, map[netip.Prefix]int{}
	for i := range l.hellos.entries {
		if e := &l.hellos.entries[i]; e.used {
			used++
			perSource[e.src]++
		}
	}
	l.hellosMu.Unlock()
	if used > helloPoolEntries {
		t.Errorf("%d ClientHellos in the pre-cookie pool, limit %d", used, helloPoolEntries)
	}
	for src, n := range perSource {
		if n > helloPoolPerSource {
			t.Errorf("%d pool entries for %v, limit %d", n, src, helloPoolPerSource)
		}
	}
	if used == 0 {
		t.Error("the incomplete hybrid ClientHellos left nothing in the pool: did fragments go through it?")
	}
}

// TestHelloGate13CryptoAfterCookie is the positive control of
// TestSpoofedClientHello13FragmentedFlood's counters: a fragmented first
// ClientHello with an X25519MLKEM768 share costs a hash and an HMAC and
// gets a HelloRetryRequest; only the second, with the cookie, costs the
// key exchange (ML-KEM encapsulation) and the signature, once.
func TestHelloGate13CryptoAfterCookie(t *testing.T) {
	checkNoGoroutineLeak(t)
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{})
		tc := certs(t)["p256"]
		// The default groups: X25519MLKEM768 first.
		l := simListener(t, n, &Config{Certificates: []tls.Certificate{tc.tls}, MaxVersion: VersionDTLS13})
		peer, err := n.ListenPacket(lossClientAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		ch, whole := clientHello13Groups(t, []tls.CurveID{groupX25519MLKEM768})
		for _, d := range fragmentHello(t, whole, 300, 0) {
			peer.WriteToUDPAddrPort(d, lossServerAddr)
		}
		synctest.Wait()
		buf := make([]byte, 4096)
		peer.SetReadDeadline(time.Now().Add(time.Second))
		k, _, err := peer.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no HelloRetryRequest: %v", err)
		}
		_, body, _, _ := nextRecord(buf[:k])
		hrr := new(serverHelloMsg13)
		if !hrr.unmarshal(body[handshakeHeaderLen:]) || !hrr.isHelloRetryRequest() || len(hrr.cookie) == 0 {
			t.Fatal("not a HelloRetryRequest with a cookie")
		}
		ops := &l.gate.ops
		if ops.helloHashes.Load() != 1 || ops.keyExchanges.Load() != 0 || ops.signatures.Load() != 0 {
			t.Fatalf("after the first ClientHello: %d hashes, %d key exchanges, %d signatures",
				ops.helloHashes.Load(), ops.keyExchanges.Load(), ops.signatures.Load())
		}
		// The second ClientHello: the same, with the cookie.
		m := new(clientHelloMsg13)
		if !m.unmarshal(secondHello13(t, ch, hrr.cookie, nil).original) {
			t.Fatal("unmarshal")
		}
		b2, err := m.marshal()
		if err != nil {
			t.Fatal(err)
		}
		ch2 := appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 0, 10, handshakeHeaderLen+len(b2))
		ch2 = append((&handshakeHeader{typ: typeClientHello, length: uint32(len(b2)), messageSeq: 1, fragmentLength: uint32(len(b2))}).appendTo(ch2), b2...)
		for _, d := range fragmentHello(t, ch2, 300, 10) {
			peer.WriteToUDPAddrPort(d, lossServerAddr)
		}
		synctest.Wait()
		peer.SetReadDeadline(time.Now().Add(time.Second))
		if k, _, err = peer.ReadFrom(buf); err != nil {
			t.Fatalf("no ServerHello: %v", err)
		}
		if _, body, _, _ := nextRecord(buf[:k]); handshakeType(body[0]) != typeServerHello {
			t.Fatalf("answer %x", buf[:min(k, 32)])
		}
		if ops.helloHashes.Load() != 1 || ops.keyExchanges.Load() != 1 || ops.signatures.Load() != 1 || l.Stats().HandshakesStarted != 1 {
			t.Fatalf("after the second ClientHello: %d hashes, %d key exchanges, %d signatures, %d handshakes",
				ops.helloHashes.Load(), ops.keyExchanges.Load(), ops.signatures.Load(), l.Stats().HandshakesStarted)
		}
	})
}

// TestHelloPoolSampleSeq: a ClientHello reassembled from the consecutive
// records of one transmission gives its first record for the cookie's
// round-trip sample (a second DTLS 1.3 ClientHello, whose cookie makes it
// two datagrams at MTU 200, included); one pieced together from two
// transmissions gives none (Karn's rule).
func TestHelloPoolSampleSeq(t *testing.T) {
	from := netip.MustParseAddrPort("192.0.2.1:5000")
	frag := make([]byte, 100)
	complete := func(seqs ...uint64) *helloEntry {
		var p helloPool
		var e *helloEntry
		for i, seq := range seqs {
			off := uint32(i % 2 * 100)
			h := handshakeHeader{typ: typeClientHello, length: 200, messageSeq: 1, fragmentOffset: off, fragmentLength: 100}
			e, _ = p.add(int64(i), from, seq, &h, frag, 120)
		}
		if e == nil {
			t.Fatalf("records %v did not complete the ClientHello", seqs)
		}
		return e
	}
	if seq, ok := complete(2, 3).sampleSeq(); !ok || seq != 2 {
		t.Errorf("one transmission (records 2, 3): sample from %d, %v; want 2, true", seq, ok)
	}
	// Record 3 was lost; the retransmission's second record (5) fills the
	// hole: the first fragment came a timer earlier.
	if _, ok := complete(2, 5).sampleSeq(); ok {
		t.Error("a ClientHello from two transmissions gives a sample")
	}
}

// FuzzCookie13Verify: arbitrary bytes as a 1.3 cookie, from arbitrary
// ports and at arbitrary ages, never verify unless they are the cookie
// generate13 made for that address, and never panic; what a verified
// cookie carries is what was put in.
func FuzzCookie13Verify(f *testing.F) {
	made := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	g, err := newCookieGenerator(&countingReader{}, made)
	if err != nil {
		f.Fatal(err)
	}
	ch, _ := clientHello13(f)
	addr := netip.MustParseAddrPort("192.0.2.1:5000")
	p := hrrParams{suite: suiteTLSAES128GCMSHA256, group: tls.X25519, chHash: bytes.Repeat([]byte{3}, 32)}
	valid := g.generate13(nil, made, addr, 1, p, ch)
	f.Add(valid, uint16(5000), int64(0))
	f.Add(valid, uint16(5001), int64(time.Second))
	f.Add(valid[:len(valid)-1], uint16(5000), int64(0))
	f.Add([]byte{}, uint16(0), int64(0))
	f.Add(make([]byte, maxCookie13Len), uint16(5000), int64(maxHRRCookieAge))
	f.Fuzz(func(t *testing.T, cookie []byte, port uint16, age int64) {
		from := netip.AddrPortFrom(addr.Addr(), port)
		at := made.Add(time.Duration(age))
		got, ok := g.verify13(at, from, ch, cookie)
		if !ok {
			return
		}
		if !bytes.Equal(cookie, valid) || from != addr {
			t.Fatalf("verify13 accepted %x from %v, which generate13 did not make", cookie, from)
		}
		if got.suite != p.suite || got.group != p.group || got.askedGroup || !bytes.Equal(got.chHash, p.chHash) {
			t.Fatalf("cookie carries %+v", got)
		}
	})
}
