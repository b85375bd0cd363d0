package dtls

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// countingReader returns 0x00, 0x01, 0x02, ... so the n-th cookie secret
// is predictable: the first is 00..1f, the second 20..3f.
type countingReader struct{ next byte }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.next
		r.next++
	}
	return len(p), nil
}

var (
	cookieTestTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cookieTestAddr = netip.MustParseAddrPort("192.0.2.1:5684")
)

func cookieTestHello() *clientHelloMsg {
	random := make([]byte, randomLen)
	for i := range random {
		random[i] = 0x40 + byte(i)
	}
	return &clientHelloMsg{
		vers:               VersionDTLS12,
		random:             random,
		cipherSuites:       []uint16{0xc02b, 0x00a8},
		compressionMethods: []uint8{compressionNone},
		// Fields the cookie does not cover.
		cookie:     []byte{1, 2, 3},
		serverName: "example.com",
	}
}

func newTestCookieGenerator(t testing.TB) *cookieGenerator {
	t.Helper()
	g, err := newCookieGenerator(&countingReader{}, cookieTestTime)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestCookieKnownAnswer pins the MAC input layout and the cookie. The
// expected cookies were computed independently with OpenSSL 3.0.19 over the
// input bytes below:
//
//	echo -n $INPUT | xxd -r -p | openssl dgst -sha256 -mac HMAC -macopt hexkey:$SECRET
//
// with SECRET 000102..1f (the first secret countingReader yields) and then
// 202122..3f (the secret after one rotation); a cookie is the 6-byte header
// (the first bytes of INPUT) and the first 26 bytes of that HMAC.
func TestCookieKnownAnswer(t *testing.T) {
	const wantInput = "00000000" + "0005" + // cookie header: made at the generator's epoch, record sequence number 5
		"00000000000000000000ffffc0000201" + // 192.0.2.1 as an IPv4-mapped address
		"1634" + // port 5684
		"fefd" + // client_version
		"00000020" + "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f" + // random
		"00000004" + "c02b00a8" + // cipher_suites
		"0000000100" // compression_methods
	ch := cookieTestHello()
	if got := appendCookieInput(nil, []byte{0, 0, 0, 0, 0, 5}, cookieTestAddr, ch); !bytes.Equal(got, unhex(t, wantInput)) {
		t.Fatalf("cookie input = %x, want %s", got, wantInput)
	}

	g := newTestCookieGenerator(t)
	prefix := []byte("prefix")
	got := g.generate(prefix, cookieTestTime, cookieTestAddr, 0x1_0005, ch) // only the low 16 bits are kept
	want := append([]byte("prefix"), unhex(t, "000000000005"+"9ae7fc9397001009a671e840ee9faf2a76be0b55f3555e357d37")...)
	if !bytes.Equal(got, want) {
		t.Errorf("generate = %x, want %x", got, want)
	}

	later := cookieTestTime.Add(cookieSecretLifetime)
	got = g.generate(nil, later, cookieTestAddr, 0, ch)
	// Made 300 s (0x11e1a300 µs) after the epoch, record sequence number 0.
	if want := unhex(t, "11e1a3000000"+"83722986d53153f3e3c477277038a1d9a74d29a721db64f50401"); !bytes.Equal(got, want) {
		t.Errorf("generate after rotation = %x, want %x", got, want)
	}
}

func TestCookieRotation(t *testing.T) {
	ch := cookieTestHello()

	t.Run("accepted within one lifetime", func(t *testing.T) {
		g := newTestCookieGenerator(t)
		c := g.generate(nil, cookieTestTime, cookieTestAddr, 0, ch)
		if !g.verify(cookieTestTime.Add(cookieSecretLifetime-time.Nanosecond), cookieTestAddr, ch, c) {
			t.Error("cookie rejected before any rotation")
		}
	})
	t.Run("accepted after one rotation", func(t *testing.T) {
		g := newTestCookieGenerator(t)
		c := g.generate(nil, cookieTestTime, cookieTestAddr, 0, ch)
		now := cookieTestTime.Add(cookieSecretLifetime)
		if !g.verify(now, cookieTestAddr, ch, c) {
			t.Error("cookie from the previous secret rejected")
		}
		// The new secret makes different cookies, and those verify too.
		c2 := g.generate(nil, now, cookieTestAddr, 0, ch)
		if bytes.Equal(c, c2) {
			t.Error("rotation did not change the cookie")
		}
		if !g.verify(now, cookieTestAddr, ch, c2) {
			t.Error("cookie from the current secret rejected")
		}
	})
	t.Run("rejected after two rotations", func(t *testing.T) {
		g := newTestCookieGenerator(t)
		c := g.generate(nil, cookieTestTime, cookieTestAddr, 0, ch)
		g.generate(nil, cookieTestTime.Add(cookieSecretLifetime), cookieTestAddr, 0, ch)
		if g.verify(cookieTestTime.Add(2*cookieSecretLifetime), cookieTestAddr, ch, c) {
			t.Error("cookie accepted two secrets later")
		}
	})
	t.Run("rejected after a long idle period", func(t *testing.T) {
		// Only one lazy rotation happens, but more than two lifetimes have
		// passed: the cookie is too old even though its secret is
		// "previous".
		g := newTestCookieGenerator(t)
		c := g.generate(nil, cookieTestTime, cookieTestAddr, 0, ch)
		if g.verify(cookieTestTime.Add(2*cookieSecretLifetime), cookieTestAddr, ch, c) {
			t.Error("cookie accepted after two lifetimes of idleness")
		}
	})
	t.Run("rotation falls back to a ratchet when rand fails", func(t *testing.T) {
		r := &failAfterReader{n: cookieSecretLen}
		g, err := newCookieGenerator(r, cookieTestTime)
		if err != nil {
			t.Fatal(err)
		}
		c := g.generate(nil, cookieTestTime, cookieTestAddr, 0, ch)
		now := cookieTestTime.Add(cookieSecretLifetime)
		c2 := g.generate(nil, now, cookieTestAddr, 0, ch)
		if bytes.Equal(c, c2) {
			t.Error("secret not replaced when rand failed")
		}
		if !g.verify(now, cookieTestAddr, ch, c) || !g.verify(now, cookieTestAddr, ch, c2) {
			t.Error("cookies rejected after a ratcheted rotation")
		}
		if g.verify(cookieTestTime.Add(2*cookieSecretLifetime), cookieTestAddr, ch, c) {
			t.Error("cookie outlived two lifetimes when rand failed")
		}
	})
}

// failAfterReader returns n zero bytes and then fails.
type failAfterReader struct{ n int }

func (r *failAfterReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("rand failed")
	}
	n := min(len(p), r.n)
	clear(p[:n])
	r.n -= n
	return n, nil
}

func TestNewCookieGeneratorRandFails(t *testing.T) {
	if _, err := newCookieGenerator(&failAfterReader{}, cookieTestTime); err == nil {
		t.Error("newCookieGenerator succeeded with a failing rand")
	}
}

func TestCookieRejects(t *testing.T) {
	g := newTestCookieGenerator(t)
	ch := cookieTestHello()
	cookie := g.generate(nil, cookieTestTime, cookieTestAddr, 0, ch)
	if !g.verify(cookieTestTime, cookieTestAddr, ch, cookie) {
		t.Fatal("valid cookie rejected")
	}

	modified := func(f func(*clientHelloMsg)) *clientHelloMsg {
		m := cookieTestHello()
		f(m)
		return m
	}
	tests := []struct {
		name   string
		addr   netip.AddrPort
		ch     *clientHelloMsg
		cookie []byte
	}{
		{"other address", netip.MustParseAddrPort("192.0.2.2:5684"), ch, cookie},
		{"other port", netip.MustParseAddrPort("192.0.2.1:5685"), ch, cookie},
		{"IPv6 address", netip.MustParseAddrPort("[2001:db8::1]:5684"), ch, cookie},
		{"other version", cookieTestAddr, modified(func(m *clientHelloMsg) { m.vers = VersionDTLS10 }), cookie},
		{"other random", cookieTestAddr, modified(func(m *clientHelloMsg) { m.random[31] ^= 1 }), cookie},
		{"other cipher list", cookieTestAddr, modified(func(m *clientHelloMsg) { m.cipherSuites = []uint16{0x00a8, 0xc02b} }), cookie},
		{"shorter cipher list", cookieTestAddr, modified(func(m *clientHelloMsg) { m.cipherSuites = m.cipherSuites[:1] }), cookie},
		{"other compression", cookieTestAddr, modified(func(m *clientHelloMsg) { m.compressionMethods = []uint8{0, 1} }), cookie},
		{"empty", cookieTestAddr, ch, nil},
		{"truncated", cookieTestAddr, ch, cookie[:cookieLen-1]},
		{"extended", cookieTestAddr, ch, append(append([]byte{}, cookie...), 0)},
		{"maximum length", cookieTestAddr, ch, append(append([]byte{}, cookie...), make([]byte, maxCookieLen-cookieLen)...)},
	}
	for _, tt := range tests {
		if g.verify(cookieTestTime, tt.addr, tt.ch, tt.cookie) {
			t.Errorf("%s: cookie accepted", tt.name)
		}
	}

	for i := range cookieLen * 8 {
		flipped := append([]byte{}, cookie...)
		flipped[i/8] ^= 1 << (i % 8)
		if g.verify(cookieTestTime, cookieTestAddr, ch, flipped) {
			t.Fatalf("cookie with bit %d flipped accepted", i)
		}
	}

	// Fields outside the cookie, such as extensions, do not matter.
	other := modified(func(m *clientHelloMsg) { m.serverName = "other.example"; m.cookie = cookie })
	if !g.verify(cookieTestTime, cookieTestAddr, other, cookie) {
		t.Error("cookie rejected for a ClientHello differing only in fields the cookie does not cover")
	}
	// Nor does the session_id: mbedTLS 2.28 draws a new one for each
	// ClientHello when it resumes by ticket (see cookieGenerator).
	if !g.verify(cookieTestTime, cookieTestAddr, modified(func(m *clientHelloMsg) { m.sessionID = []byte{0xaa, 0xbb} }), cookie) {
		t.Error("cookie rejected for a ClientHello with another session_id")
	}
}

// TestCookieRoundTrip: the cookie carries the time it was made and the
// record sequence number it answered, so that the ClientHello returning it
// gives the stateless server a round-trip sample, unless that ClientHello
// was a retransmission.
func TestCookieRoundTrip(t *testing.T) {
	g := newTestCookieGenerator(t)
	ch := cookieTestHello()
	made := cookieTestTime.Add(90 * time.Minute) // past the 71-minute wrap of the timestamp
	cookie := g.generate(nil, made, cookieTestAddr, 41, ch)
	// GnuTLS refuses cookies longer than DTLS 1.0's 32 bytes.
	if len(cookie) != 32 {
		t.Fatalf("cookie of %d bytes, want 32", len(cookie))
	}
	back := made.Add(37 * time.Millisecond)
	if !g.verify(back, cookieTestAddr, ch, cookie) {
		t.Fatal("cookie rejected")
	}
	if got := g.roundTrip(back, 42, cookie); got != 37*time.Millisecond {
		t.Errorf("round trip %v, want 37ms", got)
	}
	// The client retransmitted its second ClientHello: no sample.
	if got := g.roundTrip(back.Add(time.Second), 43, cookie); got != 0 {
		t.Errorf("round trip %v from a retransmitted ClientHello, want none", got)
	}
	// The 16-bit sequence field wraps with the record sequence number.
	c2 := g.generate(nil, made, cookieTestAddr, 0x2_ffff, ch)
	if got := g.roundTrip(back, 0x3_0000, c2); got != 37*time.Millisecond {
		t.Errorf("round trip %v across a 16-bit wrap, want 37ms", got)
	}
	// An answer after maxCookieRTT is no sample.
	if got := g.roundTrip(made.Add(maxCookieRTT+time.Millisecond), 42, cookie); got != 0 {
		t.Errorf("round trip %v after %v, want none", got, maxCookieRTT)
	}
	// The timestamp is covered by the tag: a client cannot shorten it.
	forged := slices.Clone(cookie)
	forged[3]++
	if g.verify(back, cookieTestAddr, ch, forged) {
		t.Error("cookie with a changed timestamp accepted")
	}
	forged = slices.Clone(cookie)
	forged[5]++
	if g.verify(back, cookieTestAddr, ch, forged) {
		t.Error("cookie with a changed record sequence number accepted")
	}
	if n := testing.AllocsPerRun(100, func() { g.roundTrip(back, 42, cookie) }); n != 0 {
		t.Errorf("roundTrip allocates %v times", n)
	}
}

// TestCookieFieldsDoNotShift checks that moving bytes between adjacent
// fields changes the cookie, which the length prefixes guarantee.
func TestCookieFieldsDoNotShift(t *testing.T) {
	g := newTestCookieGenerator(t)
	a := &clientHelloMsg{vers: VersionDTLS12, random: make([]byte, 32), cipherSuites: []uint16{0x00a8}, compressionMethods: []uint8{0xc0, 0x2b, 0}}
	b := &clientHelloMsg{vers: VersionDTLS12, random: make([]byte, 32), cipherSuites: []uint16{0x00a8, 0xc02b}, compressionMethods: []uint8{0}}
	ca := g.generate(nil, cookieTestTime, cookieTestAddr, 0, a)
	if g.verify(cookieTestTime, cookieTestAddr, b, ca) {
		t.Error("compression_methods bytes shifted into cipher_suites gave the same cookie")
	}
}

// TestCookieConcurrent generates and verifies from several goroutines
// while the clock crosses rotation boundaries. The clock only moves while
// no goroutine is between its generate and its verify, so each cookie is
// checked at most one rotation after it was made, as in real use.
func TestCookieConcurrent(t *testing.T) {
	g := newTestCookieGenerator(t)
	var (
		clock sync.RWMutex
		now   = cookieTestTime
		wg    sync.WaitGroup
	)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := cookieTestHello()
			addr := netip.AddrPortFrom(cookieTestAddr.Addr(), uint16(1000+i))
			for range 200 {
				clock.RLock()
				c := g.generate(nil, now, addr, 0, ch)
				ok := g.verify(now, addr, ch, c)
				clock.RUnlock()
				if !ok {
					t.Error("fresh cookie rejected")
					return
				}
			}
		}()
	}
	for range 40 {
		clock.Lock()
		now = now.Add(cookieSecretLifetime / 3)
		clock.Unlock()
		time.Sleep(100 * time.Microsecond)
	}
	wg.Wait()
}

func TestCookieAllocations(t *testing.T) {
	g := newTestCookieGenerator(t)
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
		t.Errorf("generate+verify allocate %v times per call, want 0", n)
	}
}

func BenchmarkCookieGenerateVerify(b *testing.B) {
	g := newTestCookieGenerator(b)
	ch := cookieTestHello()
	buf := make([]byte, 0, cookieLen)
	// One rotation, so verify checks both secrets as it does in steady state.
	now := cookieTestTime.Add(cookieSecretLifetime)
	b.ReportAllocs()
	for b.Loop() {
		buf = g.generate(buf[:0], now, cookieTestAddr, 0, ch)
		if !g.verify(now, cookieTestAddr, ch, buf) {
			b.Fatal("cookie rejected")
		}
	}
}

// FuzzCookieVerify checks that arbitrary cookie bytes, for arbitrary
// randoms and ports, never verify (unless they are the valid cookie, which
// the fuzzer will not find) and never panic.
func FuzzCookieVerify(f *testing.F) {
	g := newTestCookieGenerator(f)
	valid := g.generate(nil, cookieTestTime, cookieTestAddr, 0, cookieTestHello())
	f.Add(valid, cookieTestHello().random, uint16(5685))
	f.Add([]byte{}, []byte{}, uint16(0))
	f.Add(make([]byte, cookieLen), make([]byte, randomLen), uint16(5684))

	f.Fuzz(func(t *testing.T, cookie, random []byte, port uint16) {
		ch := cookieTestHello()
		ch.random = random
		addr := netip.AddrPortFrom(cookieTestAddr.Addr(), port)
		if g.verify(cookieTestTime, addr, ch, cookie) {
			if !bytes.Equal(cookie, g.generate(nil, cookieTestTime, addr, 0, ch)) {
				t.Fatalf("verify accepted %x, which generate did not make", cookie)
			}
			if !bytes.Equal(cookie, valid) {
				t.Fatalf("fuzzer forged a cookie: %x", cookie)
			}
		}
	})
}
