package dtls

import (
	"bytes"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// fragmentHello splits a whole ClientHello record into records of at most
// size bytes of fragment each, one per datagram, numbered from seq.
func fragmentHello(t *testing.T, whole []byte, size int, seq uint64) [][]byte {
	t.Helper()
	hdr, body, _, reason := nextRecord(whole)
	var h handshakeHeader
	if reason != dropNone || !h.unmarshal(body) {
		t.Fatal("not a record")
	}
	msg := body[handshakeHeaderLen:]
	var out [][]byte
	for off := 0; off < len(msg); off += size {
		end := min(off+size, len(msg))
		fh := handshakeHeader{typ: h.typ, length: h.length, messageSeq: h.messageSeq, fragmentOffset: uint32(off), fragmentLength: uint32(end - off)}
		d := appendRecordHeader(nil, recordTypeHandshake, hdr.version, 0, seq, handshakeHeaderLen+end-off)
		d = append(fh.appendTo(d), msg[off:end]...)
		out = append(out, d)
		seq++
	}
	return out
}

// TestListenerFragmentedClientHello is issue 10 finding 7's third bullet:
// a ClientHello split over several datagrams used to be dropped silently.
// Now its fragments, in any order and repeated, are reassembled before the
// cookie check: without a cookie it gets a HelloVerifyRequest no larger
// than the bytes received, with a valid cookie a connection that sees the
// whole message and completes.
func TestListenerFragmentedClientHello(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{})
		_, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		l := simListener(t, n, sc)
		peer, err := n.ListenPacket(lossClientAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		send := func(ds ...[]byte) {
			for _, d := range ds {
				if _, err := peer.WriteToUDPAddrPort(d, lossServerAddr); err != nil {
					t.Fatal(err)
				}
			}
			synctest.Wait()
		}

		// Without a cookie: out of order, one fragment twice.
		whole, _ := clientHelloDatagram(t, nil)
		frags := fragmentHello(t, whole, 30, 0)
		if len(frags) < 4 {
			t.Fatalf("only %d fragments", len(frags))
		}
		received := 0
		for _, i := range []int{2, 0, 2, 1} {
			received += len(frags[i])
		}
		send(frags[2], frags[0], frags[2], frags[1])
		peer.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 2048)
		if k, _, err := peer.ReadFrom(buf); err == nil {
			t.Fatalf("answered an incomplete ClientHello with %d bytes", k)
		}
		for _, f := range frags[3:] {
			received += len(f)
		}
		send(frags[3:]...)
		peer.SetReadDeadline(time.Now().Add(time.Second))
		k, _, err := peer.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no HelloVerifyRequest for a fragmented ClientHello: %v", err)
		}
		if k > received {
			t.Errorf("HelloVerifyRequest of %d bytes for %d received", k, received)
		}
		if l.table.len() != 0 {
			t.Fatal("state kept for a ClientHello without a cookie")
		}

		// With the cookie: a connection that gets the whole message.
		_, ch, _, _ := parseInitialClientHello(whole)
		_, hvrBody, _, _ := nextRecord(buf[:k])
		ch.cookie = bytes.Clone(hvrBody[handshakeHeaderLen+3:])
		frags = fragmentHello(t, wrapClientHello(t, ch), 50, 1)
		send(frags[1:]...)
		if l.Stats().HandshakesStarted != 0 {
			t.Fatal("a handshake started before the ClientHello was whole")
		}
		send(frags[0])
		if s := l.Stats(); s.HandshakesStarted != 1 || len(s.Dropped) != 0 {
			t.Fatalf("after the last fragment: %+v", s)
		}
		// The server answers with its flight.
		peer.SetReadDeadline(time.Now().Add(time.Second))
		k, _, err = peer.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no ServerHello: %v", err)
		}
		if hdr, body, _, _ := nextRecord(buf[:k]); hdr.typ != recordTypeHandshake || handshakeType(body[0]) != typeServerHello {
			t.Fatalf("answer is not a ServerHello: %x", buf[:k])
		}
	})
}

// TestHelloPoolBounds: the pool keeps at most helloPoolPerSource entries
// per source and helloPoolEntries in all, evicting the oldest, and forgets
// entries after helloFragmentLifetime.
func TestHelloPoolBounds(t *testing.T) {
	var p helloPool
	h := handshakeHeader{typ: typeClientHello, length: 100, fragmentLength: 10}
	frag := make([]byte, 10)
	add := func(now int64, from netip.AddrPort) int {
		e, evicted := p.add(now, from, 0, &h, frag, 50)
		if e != nil {
			t.Fatal("an incomplete message completed")
		}
		return evicted
	}
	used := func() (n int) {
		for i := range p.entries {
			if p.entries[i].used {
				n++
			}
		}
		return n
	}
	one := netip.MustParseAddr("192.0.2.1")
	evicted := 0
	for port := range 10 {
		evicted += add(int64(port), netip.AddrPortFrom(one, uint16(port)))
	}
	if used() != helloPoolPerSource || evicted != 10-helloPoolPerSource {
		t.Errorf("one source: %d entries, %d evicted; want %d, %d", used(), evicted, helloPoolPerSource, 10-helloPoolPerSource)
	}
	evicted = 0
	for i := range 2 * helloPoolEntries {
		evicted += add(100+int64(i), netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 1))
	}
	if used() != helloPoolEntries || evicted != helloPoolEntries+helloPoolPerSource {
		t.Errorf("many sources: %d entries, %d evicted; want %d, %d", used(), evicted, helloPoolEntries, helloPoolEntries+helloPoolPerSource)
	}
	// An IPv6 /64 is one source.
	p = helloPool{}
	for i := range 10 {
		add(0, netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}), 1))
	}
	if used() != helloPoolPerSource {
		t.Errorf("one /64: %d entries, want %d", used(), helloPoolPerSource)
	}
	// Expiry.
	if ev := add(int64(helloFragmentLifetime)+1, netip.MustParseAddrPort("203.0.113.1:1")); ev != helloPoolPerSource || used() != 1 {
		t.Errorf("after the lifetime: %d evicted, %d entries", ev, used())
	}
}

// TestHelloPoolLateFragment: a hole in a ClientHello is filled by a
// retransmission that comes long after the first fragment, as it does
// once the client's timer has backed off; the lifetime counts from the
// last fragment. With a 2 s lifetime counted from the first fragment, a
// DTLS 1.3 ClientHello with its cookie, two datagrams at MTU 200, failed
// in one handshake in ten at 50% loss (LOSS.md).
func TestHelloPoolLateFragment(t *testing.T) {
	var p helloPool
	from := netip.MustParseAddrPort("192.0.2.1:5000")
	frag := make([]byte, 100)
	add := func(at time.Duration, off uint32) *helloEntry {
		h := handshakeHeader{typ: typeClientHello, length: 300, messageSeq: 1, fragmentOffset: off, fragmentLength: 100}
		e, evicted := p.add(int64(at), from, 0, &h, frag, 120)
		if evicted != 0 {
			t.Fatalf("at %v: %d entries evicted", at, evicted)
		}
		return e
	}
	// The first fragment, then the second 31 s later (the retransmission
	// after the 1, 2, 4, 8 and 16 s timers), the third a further 60 s
	// later (the timer at its maximum).
	add(0, 0)
	if add(31*time.Second, 100) != nil {
		t.Fatal("completed with a fragment missing")
	}
	e := add(91*time.Second, 200)
	if e == nil {
		t.Fatal("the last fragment did not complete the ClientHello")
	}
	if e.received != 3*120 {
		t.Errorf("received %d bytes, want %d", e.received, 3*120)
	}
	p.release(e)
	// An entry idle for longer than the lifetime is forgotten.
	add(0, 0)
	h := handshakeHeader{typ: typeClientHello, length: 300, messageSeq: 1, fragmentOffset: 100, fragmentLength: 100}
	if _, evicted := p.add(int64(helloFragmentLifetime)+1, from, 0, &h, frag, 120); evicted != 1 {
		t.Errorf("after the lifetime: %d evicted, want 1", evicted)
	}
}

// TestResumptionFragmentedHello: at MTU 256 a ClientHello that carries a
// session ticket does not fit one datagram. The client used to leave the
// ticket out, so sessions never resumed at small MTUs; now it offers it
// fragmented and our Listener reassembles it.
//
// DTLS 1.2 (an RFC 5077 ticket in the ClientHello): a 1.3 ticket comes in
// a NewSessionTicket after the handshake, which netsim may deliver after
// the echo this test waits for, and a 1.3 ClientHello is fragmented by
// the 1.3 client.
func TestResumptionFragmentedHello(t *testing.T) {
	// Outside the bubble: the certificates are cached for other tests.
	cc, sc := lossConfigs(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	cc.MaxVersion = VersionDTLS12
	cc.MTU, sc.MTU = 256, 256
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{MTU: 256, Delay: time.Millisecond})
		l := simEcho(t, n, sc)
		for i, wantResume := range []bool{false, true} {
			c := simDial(t, n, netip.AddrPortFrom(lossClientAddr.Addr(), uint16(3000+i)), cc)
			if err := simExchange(c, "hi"); err != nil {
				t.Fatal(err)
			}
			if got := c.ConnectionState().DidResume; got != wantResume {
				t.Errorf("connection %d: DidResume %v, want %v", i+1, got, wantResume)
			}
			c.Close()
		}
		if s := n.Stats(); s.TooBig != 0 {
			t.Errorf("%d datagrams over the MTU", s.TooBig)
		}
		if d := l.Stats().Dropped; len(d) != 0 {
			t.Errorf("Listener drops: %v", d)
		}
	})
}

// noHelloFragments is a server socket that drops every datagram carrying
// a ClientHello fragment, as a server that cannot reassemble one (mbedTLS
// 2.28) fails such a handshake.
type noHelloFragments struct {
	*netsim.PacketConn
	dropped atomic.Int32
}

func (p *noHelloFragments) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := p.PacketConn.ReadFrom(b)
		if err != nil || !isHandshakeRecord(b[:n]) || n < recordHeaderLen+handshakeHeaderLen {
			return n, addr, err
		}
		var h handshakeHeader
		if h.unmarshal(b[recordHeaderLen:n]) && helloFragment(&h) {
			p.dropped.Add(1)
			continue
		}
		return n, addr, err
	}
}

// TestResumptionFragmentedHelloFallback: against a server that ignores a
// fragmented ClientHello, the client offering a ticket that does not fit
// one datagram starts over without it after its first timer, and gets a
// full handshake instead of none.
func TestResumptionFragmentedHelloFallback(t *testing.T) {
	cc, sc := lossConfigs(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	cc.MaxVersion = VersionDTLS12 // the 1.2 client's fallback without its ticket
	cc.MTU, sc.MTU = 256, 256
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: time.Millisecond})
		spc, err := n.ListenPacket(lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		pc := &noHelloFragments{PacketConn: spc}
		l, err := NewListener(pc, sc)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					buf := make([]byte, 100)
					for {
						if _, err := c.Read(buf); err != nil {
							return
						}
					}
				}()
			}
		}()
		for i := range 2 {
			start := time.Now()
			c := simDial(t, n, netip.AddrPortFrom(lossClientAddr.Addr(), uint16(4000+i)), cc)
			took := time.Since(start)
			if c.ConnectionState().DidResume {
				t.Error("resumed through a server that drops fragmented ClientHellos")
			}
			if initial, _ := cc.retransmitTimeouts(); i == 1 && took > 2*initial+time.Second {
				t.Errorf("the fallback took %v", took)
			}
			c.Close()
		}
		if pc.dropped.Load() == 0 {
			t.Error("the second ClientHello was not fragmented")
		}
	})
}
