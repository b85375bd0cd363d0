package dtls

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fleetTestSecret is 00 01 .. 1f.
func fleetTestSecret() []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = byte(i)
	}
	return s
}

func newFleetTestGate(t testing.TB, secret []byte, now func() time.Time) *helloGate {
	t.Helper()
	g, err := newHelloGate(&Config{FleetSecret: secret, Time: now})
	if err != nil {
		t.Fatal(err)
	}
	if g.cookies == nil || g.cookies.fleet == nil {
		t.Fatal("a FleetSecret did not make a fleet cookie generator")
	}
	return g
}

// TestFleetKnownAnswer pins the derivation of the fleet's keys and a fleet
// cookie. The expected values were computed independently with OpenSSL
// 3.0.19:
//
//	openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:000102..1f \
//	    -kdfopt salt:"dtls-go fleet keys v1" -kdfopt hexinfo:$INFO HKDF
//
// with INFO "cookie" | 300 (uint64) | 5891076 (uint64), the 5-minute period
// of 2026-01-02T03:04:05Z, which gives the cookie key; then the cookie's
// tag as in TestCookieKnownAnswer, over the same input but for its
// timestamp (microseconds since the Unix epoch, modulo 2^32: f64cf340):
//
//	echo -n $INPUT | xxd -r -p | openssl dgst -sha256 -mac HMAC -macopt hexkey:$KEY
//
// and, with -keylen 48 and INFO "ticket" | 86400 | 20455 (that day), the
// ticket key_name (16 bytes) and key (32).
func TestFleetKnownAnswer(t *testing.T) {
	now := func() time.Time { return cookieTestTime }
	g := newFleetTestGate(t, fleetTestSecret(), now)
	ch := cookieTestHello()
	got := g.cookies.generate(nil, cookieTestTime, cookieTestAddr, 5, ch)
	want := unhex(t, "f64cf340"+"0005"+"fc3dd7403bb85db56cd2ce862ab115920e11bd7349228f2173c5")
	if !bytes.Equal(got, want) {
		t.Errorf("fleet cookie = %x, want %x", got, want)
	}

	cfg := &Config{FleetSecret: fleetTestSecret(), Time: now}
	keys, err := cfg.ticketKeys(cookieTestTime)
	if err != nil {
		t.Fatal(err)
	}
	wantKey := unhex(t, "68aa562578bc874dbb8262594549e678"+"e836350e3cdede88823230eeeffba5384c33cb75aa8184c87406a7ffa6ece15c")
	if !bytes.Equal(keys[0].name[:], wantKey[:16]) || !bytes.Equal(keys[0].key[:], wantKey[16:]) {
		t.Errorf("fleet ticket key = %x %x, want %x", keys[0].name, keys[0].key, wantKey)
	}
}

func TestFleetCookieAcrossServers(t *testing.T) {
	ch := cookieTestHello()
	made := cookieTestTime
	a := newFleetTestGate(t, fleetTestSecret(), time.Now)
	b := newFleetTestGate(t, fleetTestSecret(), time.Now)
	cookie := a.cookies.generate(nil, made, cookieTestAddr, 7, ch)
	ch.cookie = cookie

	for _, c := range []struct {
		name string
		at   time.Duration // when b checks, relative to made (b's clock)
		want bool
	}{
		{"at once", 0, true},
		{"a round trip later", 30 * time.Millisecond, true},
		{"just within the lifetime", fleetCookieLifetime - time.Microsecond, true},
		{"at the end of the lifetime", fleetCookieLifetime, false},
		{"an hour later", time.Hour, false},
		{"71 minutes later (the timestamp wrapped)", time.Duration(1<<32) * time.Microsecond, false},
		{"checker's clock a minute behind", -fleetMaxClockSkew, true},
		{"checker's clock further behind", -fleetMaxClockSkew - time.Millisecond, false},
	} {
		if got := b.admit(made.Add(c.at), cookieTestAddr, ch); got != c.want {
			t.Errorf("%s: admit = %v, want %v", c.name, got, c.want)
		}
	}

	// A cookie made just before a key period ends is checked after it,
	// with the key of the period it was made in.
	boundary := time.UnixMicro((fleetPeriod(made.UnixMicro(), fleetCookiePeriod) + 1) * int64(fleetCookiePeriod/time.Microsecond))
	ch.cookie = a.cookies.generate(nil, boundary.Add(-time.Microsecond), cookieTestAddr, 7, ch)
	if !b.admit(boundary.Add(time.Second), cookieTestAddr, ch) {
		t.Error("cookie made before a period boundary rejected after it")
	}
	// Made after it by a server whose clock runs ahead, checked before it.
	ch.cookie = a.cookies.generate(nil, boundary.Add(time.Second), cookieTestAddr, 7, ch)
	if !b.admit(boundary.Add(-time.Second), cookieTestAddr, ch) {
		t.Error("cookie from a server a little ahead, across a boundary, rejected")
	}

	ch.cookie = cookie
	if b.admit(made, netip.AddrPortFrom(cookieTestAddr.Addr(), 5685), ch) {
		t.Error("cookie accepted from another port")
	}
	other := bytes.Clone(fleetTestSecret())
	other[31] ^= 1
	if newFleetTestGate(t, other, time.Now).admit(made, cookieTestAddr, ch) {
		t.Error("cookie accepted by a server with another FleetSecret")
	}
	solo, err := newHelloGate(&Config{})
	if err != nil {
		t.Fatal(err)
	}
	if solo.admit(made, cookieTestAddr, ch) {
		t.Error("fleet cookie accepted by a server outside the fleet")
	}
	// A forged timestamp picks a key but cannot make the tag.
	forged := bytes.Clone(cookie)
	forged[3]++
	ch.cookie = forged
	if b.admit(made, cookieTestAddr, ch) {
		t.Error("cookie with a changed timestamp accepted")
	}
}

// TestFleetCookieKeyCacheBounded checks that the derived cookie keys held
// stay within their bound when cookies from many periods are checked, in
// an order that defeats the cache, and that every check stays right.
func TestFleetCookieKeyCacheBounded(t *testing.T) {
	ch := cookieTestHello()
	a := newFleetTestGate(t, fleetTestSecret(), time.Now)
	b := newFleetTestGate(t, fleetTestSecret(), time.Now)
	for i := range 40 {
		made := cookieTestTime.Add(time.Duration(i%7) * fleetCookiePeriod).Add(time.Duration(i) * time.Second)
		ch.cookie = a.cookies.generate(nil, made, cookieTestAddr, 1, ch)
		if !b.admit(made.Add(time.Second), cookieTestAddr, ch) {
			t.Fatalf("cookie %d rejected", i)
		}
	}
	n := 0
	for _, k := range b.cookies.fleetMACs {
		if k.mac != nil {
			n++
		}
	}
	if n > fleetCookieKeyCache {
		t.Fatalf("%d cookie keys held", n)
	}
}

// TestFleetServerConnCookie checks that a Conn made with Server, in a
// fleet, stamps its cookies with the time, so that another server of the
// fleet accepts them.
func TestFleetServerConnCookie(t *testing.T) {
	ch := cookieTestHello()
	now := cookieTestTime
	a := newFleetTestGate(t, fleetTestSecret(), func() time.Time { return now })
	ch.cookie = a.helloVerifyRequest(cookieTestAddr, ch).cookie
	b := newFleetTestGate(t, fleetTestSecret(), time.Now)
	if !b.admit(now.Add(time.Second), cookieTestAddr, ch) {
		t.Error("cookie of a Server Conn rejected by another fleet member")
	}
}

func TestFleetSecretTooShort(t *testing.T) {
	_, scfg := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	scfg.FleetSecret = make([]byte, 16)
	if l, err := Listen("udp", "127.0.0.1:0", scfg); err == nil {
		l.Close()
		t.Fatal("Listen accepted a 16-byte FleetSecret")
	} else if !strings.Contains(err.Error(), "FleetSecret") {
		t.Fatalf("error does not name the field: %v", err)
	}
}

func TestFleetTickets(t *testing.T) {
	day := fleetTicketPeriod
	var clockA, clockB atomic.Int64
	clockA.Store(cookieTestTime.UnixNano())
	clockB.Store(cookieTestTime.UnixNano())
	a := &Config{FleetSecret: fleetTestSecret(), Time: func() time.Time { return time.Unix(0, clockA.Load()) }}
	b := &Config{FleetSecret: fleetTestSecret(), Time: func() time.Time { return time.Unix(0, clockB.Load()) }}
	ticket, err := a.sealTicket([]byte("state"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		at     time.Duration // b's clock, relative to the sealing
		open   bool
		newest bool
	}{
		{"at once", 0, true, true},
		{"a day later", day, true, false},
		{"two days later", 2 * day, true, false},
		{"three days later (lifetime 24 h)", 3 * day, false, false},
		{"b's clock a day behind", -day, true, false},
		{"b's clock two days behind", -2 * day, false, false},
	} {
		clockB.Store(cookieTestTime.Add(c.at).UnixNano())
		plain, newest := b.openTicket(ticket)
		if (plain != nil) != c.open || (c.open && (string(plain) != "state" || newest != c.newest)) {
			t.Errorf("%s: open = %q newest=%v, want open %v newest %v", c.name, plain, newest, c.open, c.newest)
		}
	}

	// Keys back for the whole SessionLifetime.
	long := &Config{FleetSecret: fleetTestSecret(), SessionLifetime: maxSessionLifetime, Time: func() time.Time { return cookieTestTime.Add(8 * day) }}
	if plain, _ := long.openTicket(ticket); string(plain) != "state" {
		t.Error("7-day lifetime: ticket of 8 days ago (sealed late in its day) did not open")
	}
	keys, _ := long.ticketKeys(long.time())
	if len(keys) != 10 {
		t.Errorf("7-day lifetime: %d keys, want 10 (today, tomorrow, 8 back)", len(keys))
	}

	other := bytes.Clone(fleetTestSecret())
	other[0] ^= 1
	if plain, _ := (&Config{FleetSecret: other, Time: a.Time}).openTicket(ticket); plain != nil {
		t.Error("ticket opened with another FleetSecret")
	}
	// Explicit keys take precedence.
	explicit := &Config{FleetSecret: fleetTestSecret(), Time: a.Time}
	explicit.SetSessionTicketKeys([][32]byte{{9}})
	if plain, _ := explicit.openTicket(ticket); plain != nil {
		t.Error("SetSessionTicketKeys did not take precedence over FleetSecret")
	}
}

func TestServerIDCIDGenerator(t *testing.T) {
	gen, err := ServerIDCIDGenerator([]byte{0xa5, 0x01}, 8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 100 {
		cid := gen()
		if len(cid) != 8 || cid[0] != 0xa5 || cid[1] != 0x01 {
			t.Fatalf("cid %x", cid)
		}
		seen[string(cid)] = true
	}
	if len(seen) < 99 {
		t.Fatalf("only %d distinct CIDs in 100", len(seen))
	}
	for _, c := range []struct {
		id   []byte
		size int
	}{{nil, 8}, {[]byte{1}, 4}, {[]byte{1}, 256}, {make([]byte, 252), 255}} {
		if _, err := ServerIDCIDGenerator(c.id, c.size); err == nil {
			t.Errorf("id %d bytes, size %d: no error", len(c.id), c.size)
		}
	}
	if _, err := ServerIDCIDGenerator(make([]byte, 251), 255); err != nil {
		t.Errorf("largest id: %v", err)
	}
}

// splitProxy sends a client's first datagram to one server and every
// later one to another, from one socket, so that both see the client at
// the same address: a balancer that keeps source addresses (or a
// SO_REUSEPORT group) and moves a client between its first and second
// ClientHello. It counts the ClientHellos it forwards.
type splitProxy struct {
	front, out *net.UDPConn
	first      *net.UDPAddr
	rest       *net.UDPAddr
	hellos     atomic.Int32
	wg         sync.WaitGroup
}

func newSplitProxy(t *testing.T, first, rest net.Addr) *splitProxy {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	front, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	p := &splitProxy{front: front, out: out, first: first.(*net.UDPAddr), rest: rest.(*net.UDPAddr)}
	var client atomic.Pointer[net.UDPAddr]
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, maxDatagramSize)
		for i := 0; ; i++ {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(from)
			// A plaintext handshake record with a ClientHello's first
			// fragment (fragment_offset 0): a ClientHello in several
			// datagrams, such as the second one with the default
			// X25519MLKEM768 share, counts once.
			if n >= recordHeaderLen+handshakeHeaderLen && buf[0] == byte(recordTypeHandshake) &&
				handshakeType(buf[recordHeaderLen]) == typeClientHello &&
				buf[recordHeaderLen+6]|buf[recordHeaderLen+7]|buf[recordHeaderLen+8] == 0 {
				p.hellos.Add(1)
			}
			to := p.rest
			if i == 0 {
				to = p.first
			}
			out.WriteToUDP(buf[:n], to)
		}
	}()
	go func() {
		defer p.wg.Done()
		buf := make([]byte, maxDatagramSize)
		for {
			n, _, err := out.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if c := client.Load(); c != nil {
				front.WriteToUDP(buf[:n], c)
			}
		}
	}()
	t.Cleanup(func() {
		front.Close()
		out.Close()
		p.wg.Wait()
	})
	return p
}

// TestFleetListeners runs two Listeners as one fleet: a client whose first
// ClientHello reaches one and whose second reaches the other completes its
// handshake with the second, which accepts the first one's cookie (two
// ClientHellos in all; a server outside the fleet asks for a third); then
// the ticket the second issued resumes on the first.
func TestFleetListeners(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, shared := range []bool{true, false} {
		cc, scfg1 := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
		_, scfg2 := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
		scfg1.FleetSecret = fleetTestSecret()
		scfg2.FleetSecret = fleetTestSecret()
		if !shared {
			scfg2.FleetSecret = bytes.Repeat([]byte{7}, 32)
			// A 1.2 server answers a cookie it cannot verify with a
			// new HelloVerifyRequest. The Listener's 1.3 gate drops a
			// second ClientHello whose cookie does not verify, so a
			// 1.3 client whose ClientHellos reach two servers outside
			// one fleet times out (RFC 9147 §5.1 lets the server end
			// the handshake instead; an open gap of the gate).
			cc.MaxVersion = VersionDTLS12
		}
		cc.ClientSessionCache = NewLRUClientSessionCache(4)
		l1, _ := acceptOne(t, scfg1)
		l2, _ := acceptOne(t, scfg2)
		p := newSplitProxy(t, l1.Addr(), l2.Addr())
		c, err := Dial("udp", p.front.LocalAddr().String(), cc)
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, c, "through the fleet")
		if st := c.ConnectionState(); st.DidResume {
			t.Fatal("first handshake resumed")
		}
		c.Close()
		s1, s2 := l1.Stats(), l2.Stats()
		if s1.HandshakesStarted != 0 || s2.HandshakesCompleted != 1 {
			t.Fatalf("handshakes: first server %+v, second %+v", s1, s2)
		}
		wantHellos := int32(2)
		if !shared {
			wantHellos = 3 // the second server did not take the first's cookie
		}
		if got := p.hellos.Load(); got != wantHellos {
			t.Fatalf("shared secret %v: %d ClientHellos, want %d", shared, got, wantHellos)
		}

		// The second server's ticket, on the first server.
		c, err = Dial("udp", l1.Addr().String(), cc)
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, c, "resumed elsewhere?")
		if got := c.ConnectionState().DidResume; got != shared {
			t.Fatalf("shared secret %v: resumed on the other server: %v", shared, got)
		}
		c.Close()
	}
}

// TestFleetCookieAllocations: checking a fleet cookie, what a flood of
// spoofed ClientHellos costs, allocates nothing once its key is derived.
func TestFleetCookieAllocations(t *testing.T) {
	g := newFleetTestGate(t, fleetTestSecret(), time.Now).cookies
	ch := cookieTestHello()
	buf := make([]byte, 0, cookieLen)
	cookie := g.generate(nil, cookieTestTime, cookieTestAddr, 0, ch)
	n := testing.AllocsPerRun(100, func() {
		buf = g.generate(buf[:0], cookieTestTime, cookieTestAddr, 0, ch)
		if !g.verify(cookieTestTime, cookieTestAddr, ch, cookie) {
			t.Fatal("cookie rejected")
		}
	})
	if n != 0 {
		t.Errorf("fleet generate+verify allocate %v times per call, want 0", n)
	}
}

func BenchmarkFleetCookieGenerateVerify(b *testing.B) {
	g, err := newHelloGate(&Config{FleetSecret: fleetTestSecret()})
	if err != nil {
		b.Fatal(err)
	}
	ch := cookieTestHello()
	buf := make([]byte, 0, cookieLen)
	b.ReportAllocs()
	for b.Loop() {
		buf = g.cookies.generate(buf[:0], cookieTestTime, cookieTestAddr, 0, ch)
		if !g.cookies.verify(cookieTestTime, cookieTestAddr, ch, buf) {
			b.Fatal("cookie rejected")
		}
	}
}

// FuzzFleetCookieVerify checks that arbitrary cookie bytes, checked at
// arbitrary times around the one a valid cookie was made, never verify but
// for that cookie within its window, and never panic: the timestamp that
// picks the key is attacker-chosen.
func FuzzFleetCookieVerify(f *testing.F) {
	g := newFleetTestGate(f, fleetTestSecret(), time.Now).cookies
	valid := g.generate(nil, cookieTestTime, cookieTestAddr, 0, cookieTestHello())
	f.Add(valid, int64(0))
	f.Add(valid, int64(fleetCookieLifetime))
	f.Add([]byte{}, int64(0))
	f.Add(make([]byte, cookieLen), int64(-1))
	f.Fuzz(func(t *testing.T, cookie []byte, offset int64) {
		now := cookieTestTime.Add(time.Duration(offset))
		if g.verify(now, cookieTestAddr, cookieTestHello(), cookie) {
			if !bytes.Equal(cookie, valid) {
				t.Fatalf("fuzzer forged a cookie: %x", cookie)
			}
			if age := now.Sub(cookieTestTime); age < -fleetMaxClockSkew || age >= fleetCookieLifetime {
				t.Fatalf("cookie accepted %v after it was made", age)
			}
		}
		n := 0
		for _, k := range g.fleetMACs {
			if k.mac != nil {
				n++
			}
		}
		if n > fleetCookieKeyCache {
			t.Fatalf("%d keys cached", n)
		}
	})
}

// TestFleetTicketKeysClone: a Clone shares its resumption state with the
// original, but a clone given another FleetSecret or SessionLifetime gets
// its own keys.
func TestFleetTicketKeysClone(t *testing.T) {
	now := func() time.Time { return cookieTestTime }
	a := &Config{FleetSecret: fleetTestSecret(), Time: now}
	ticket, err := a.sealTicket([]byte("state"))
	if err != nil {
		t.Fatal(err)
	}
	b := a.Clone()
	b.FleetSecret = bytes.Repeat([]byte{1}, 32)
	if plain, _ := b.openTicket(ticket); plain != nil {
		t.Error("a clone with another secret opened the original's ticket")
	}
	c := a.Clone()
	c.SessionLifetime = maxSessionLifetime
	if keys, _ := c.ticketKeys(now()); len(keys) != 10 {
		t.Errorf("a clone with a 7-day lifetime has %d keys, want 10", len(keys))
	}
	if plain, _ := a.openTicket(ticket); string(plain) != "state" {
		t.Error("the original no longer opens its own ticket")
	}
}
