package dtls

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// cookieHello returns a ClientHello datagram with a valid cookie for a
// peer at ap, with its random drawn from i.
func cookieHello(t testing.TB, l *Listener, ap netip.AddrPort, i int) []byte {
	template, _ := clientHelloDatagram(t, nil)
	_, ch, _, _ := parseInitialClientHello(template)
	ch.random[0], ch.random[1], ch.random[2] = byte(i>>16), byte(i>>8), byte(i)
	ch.cookie = l.gate.cookies.generate(nil, time.Now(), ap, 0, ch)
	return wrapClientHello(t, ch)
}

// TestHandshakeSlotsOneHostLoopback is issue 10 finding 2, as an attacker
// on the same network does it: 600 ClientHellos from 600 ports of one
// address (127.0.0.2), each answering the HelloVerifyRequest so that its
// cookie is valid, none continued. They used to take all 512 handshake
// slots for the 60 s handshake timeout, and a legitimate client waited
// until they timed out. Now one source holds at most
// MaxHandshakesPerSource slots, and the client completes at once.
func TestHandshakeSlotsOneHostLoopback(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	l, err := Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	server := l.Addr().(*net.UDPAddr)
	probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	probe.Close()

	const attackers = 600
	template, randomOff := clientHelloDatagram(t, nil)
	buf := make([]byte, 2048)
	for i := range attackers {
		a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		hello := append([]byte(nil), template...)
		hello[randomOff], hello[randomOff+1] = byte(i>>8), byte(i)
		a.SetReadDeadline(time.Now().Add(10 * time.Second))
		var hvr []byte
		for range 3 { // loopback loses nothing, but bound the retries anyway
			if _, err := a.WriteToUDP(hello, server); err != nil {
				t.Fatal(err)
			}
			n, _, err := a.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("attacker %d: no HelloVerifyRequest: %v", i, err)
			}
			hvr = buf[:n]
			break
		}
		hdr, body, _, reason := nextRecord(hvr)
		if reason != dropNone || hdr.typ != recordTypeHandshake || len(body) < handshakeHeaderLen+3 {
			t.Fatalf("attacker %d: not a HelloVerifyRequest: %x", i, hvr)
		}
		cookie := body[handshakeHeaderLen+3:]
		_, ch, _, _ := parseInitialClientHello(hello)
		ch.cookie = append([]byte(nil), cookie...)
		if _, err := a.WriteToUDP(wrapClientHello(t, ch), server); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the Listener has taken every cookie-verified ClientHello
	// in, one way or another.
	limits := func(s ListenerStats) uint64 {
		return s.Dropped["handshake limit"] + s.Dropped["handshake limit per source"]
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s := l.Stats()
		if s.HandshakesStarted+limits(s) >= attackers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Listener took in only %d of %d ClientHellos: %+v", s.HandshakesStarted+limits(s), attackers, s)
		}
	}
	s := l.Stats()
	t.Logf("after the attack: %d handshakes in progress, %d started, dropped %v", s.Handshaking, s.HandshakesStarted, s.Dropped)

	// A legitimate client from 127.0.0.1. The bound is the client's
	// HandshakeTimeout, a third of the attackers' 60 s.
	cc.HandshakeTimeout = 20 * time.Second
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Read(make([]byte, 100))
			}()
		}
	}()
	start := time.Now()
	c, err := DialContext(context.Background(), "udp", server.String(), cc)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("legitimate client during the attack: %v after %v", err, took)
	}
	c.Close()
	t.Logf("legitimate client's handshake took %v during the attack", took)
}

// TestHandshakeSlotsEviction: when every slot is taken by handshakes that
// stalled, a new peer takes the slot of the most stalled; one from a
// source at its own limit takes that source's most stalled; and
// handshakes that make no progress end after a quarter of HandshakeTimeout, well
// before HandshakeTimeout. Virtual time, so the bounds asserted are
// exact.
func TestHandshakeSlotsEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: 5 * time.Millisecond})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		l := simEcho(t, n, sc)
		// Ten hosts, 60 ports each and 70 for the first: 512 slots
		// taken, 64 of them by the first host; the rest dropped.
		for h := range 10 {
			ports := 60
			if h == 0 {
				ports = 70
			}
			for p := range ports {
				ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(h)}), uint16(2000+p))
				n.Inject(ap, lossServerAddr, cookieHello(t, l, ap, h<<8|p))
			}
			time.Sleep(10 * time.Millisecond) // the link's delay
			synctest.Wait()
		}
		s := l.Stats()
		if s.Handshaking != defaultMaxHandshakes || s.Dropped["handshake limit per source"] != 70-defaultMaxHandshakesPerSource ||
			s.Dropped["handshake limit"] != 610-(70-defaultMaxHandshakesPerSource)-defaultMaxHandshakes {
			t.Fatalf("after 600 stalled handshakes: %d in progress, dropped %v", s.Handshaking, s.Dropped)
		}
		time.Sleep(2 * time.Second)

		// A new port of the host that holds 64 slots takes the slot of
		// that host's most stalled handshake; then, with every slot
		// taken again, a new host takes the most stalled one's.
		legit := func(addr netip.AddrPort) {
			start := time.Now()
			c := simDial(t, n, addr, cc)
			if took := time.Since(start); took > time.Second {
				t.Errorf("client at %v took %v", addr, took)
			}
			if err := simExchange(c, "hello"); err != nil {
				t.Fatal(err)
			}
		}
		legit(netip.MustParseAddrPort("10.1.0.0:5555"))
		if s := l.Stats(); s.HandshakesEvicted != 1 || s.Handshaking != defaultMaxHandshakes-1 {
			t.Fatalf("after a client from a full source: %d evicted, %d in progress", s.HandshakesEvicted, s.Handshaking)
		}
		refill := netip.MustParseAddrPort("10.1.0.9:9999")
		n.Inject(refill, lossServerAddr, cookieHello(t, l, refill, 9999))
		time.Sleep(10 * time.Millisecond)
		legit(lossClientAddr)
		if s := l.Stats(); s.HandshakesEvicted != 2 || s.Handshaking != defaultMaxHandshakes-1 {
			t.Fatalf("after a client from a new source: %d evicted, %d in progress", s.HandshakesEvicted, s.Handshaking)
		}

		// The stalled ones end after a quarter of HandshakeTimeout, long
		// before HandshakeTimeout.
		time.Sleep(defaultHandshakeTimeout/handshakeStallDivisor + janitorInterval)
		synctest.Wait()
		s = l.Stats()
		if s.Handshaking != 0 || s.HandshakesStalled != defaultMaxHandshakes-1 {
			t.Errorf("after the stall timeout: %d in progress, %d stalled, want 0 and %d", s.Handshaking, s.HandshakesStalled, defaultMaxHandshakes-1)
		}
	})
}
