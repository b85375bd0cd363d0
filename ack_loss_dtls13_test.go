package dtls

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// The DTLS 1.3 ACK rules that keep a lossy handshake from resending more
// than was lost (RFC 9147 §7.1, §7.2; LOSS.md): a partial ACK makes the
// sender resend the rest at once, and a side whose timer fires while it
// holds part of the peer's next flight ACKs it rather than resending a
// flight the peer already has.

// dropPacketConn drops the datagrams its drop function picks, by their
// index among those written (from 1).
type dropPacketConn struct {
	*netsim.PacketConn
	mu   sync.Mutex
	n    int
	drop func(i int) bool
}

func (d *dropPacketConn) pick() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	return d.drop(d.n)
}

func (d *dropPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if d.pick() {
		return len(b), nil
	}
	return d.PacketConn.WriteTo(b, addr)
}

func (d *dropPacketConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if d.pick() {
		return len(b), nil
	}
	return d.PacketConn.WriteToUDPAddrPort(b, addr)
}

// dropConn13 is dropPacketConn for a client's connected socket.
type dropConn13 struct {
	*netsim.Conn
	mu   sync.Mutex
	n    int
	drop func(i int) bool
}

func (d *dropConn13) Write(b []byte) (int, error) {
	d.mu.Lock()
	d.n++
	drop := d.drop(d.n)
	d.mu.Unlock()
	if drop {
		return len(b), nil
	}
	return d.Conn.Write(b)
}

// ackLossCounts is what the tracers saw.
type ackLossCounts struct {
	mu                    sync.Mutex
	clientResent          int // client flights retransmitted
	clientACKs            int
	serverPartialResends  int
	serverTimerResends    int
	clientDatagrams       int
	clientHandshakeReturn time.Duration
	group                 tls.CurveID
}

// runACKLoss runs a DTLS 1.3 handshake at MTU 200 (the server's flight
// takes five datagrams) through a Listener on a lossless 20 ms path,
// dropping the server's and the client's datagrams that the functions
// pick. The datagram numbers are those of an X25519 handshake, which
// both sides pin: the tests are about ACKs, not groups. runACKLossGroups
// runs it with other CurvePreferences (nil: the defaults).
func runACKLoss(t *testing.T, dropServer, dropClient func(int) bool) *ackLossCounts {
	return runACKLossGroups(t, []tls.CurveID{tls.X25519}, dropServer, dropClient)
}

func runACKLossGroups(t *testing.T, groups []tls.CurveID, dropServer, dropClient func(int) bool) *ackLossCounts {
	var counts ackLossCounts
	synctest.Test(t, func(t *testing.T) {
		cc, sc := lossConfigs(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
		cc.CipherSuites, sc.CipherSuites = nil, nil
		cc.MinVersion, cc.MaxVersion, sc.MaxVersion = VersionDTLS13, VersionDTLS13, VersionDTLS13
		cc.CurvePreferences, sc.CurvePreferences = groups, groups
		cc.MTU, sc.MTU = 200, 200
		cc.Tracer = func(ev *TraceEvent) {
			counts.mu.Lock()
			defer counts.mu.Unlock()
			switch ev.Kind {
			case TraceFlightRetransmitted:
				counts.clientResent++
			case TraceACKSent:
				counts.clientACKs++
			case TraceDatagramSent:
				counts.clientDatagrams++
			}
		}
		sc.Tracer = func(ev *TraceEvent) {
			counts.mu.Lock()
			defer counts.mu.Unlock()
			if ev.Kind == TraceFlightRetransmitted {
				switch ev.Reason {
				case "partial ACK":
					counts.serverPartialResends++
				case "timer":
					counts.serverTimerResends++
				}
			}
		}
		n := netsim.New(1, netsim.Link{Delay: lossDelay, MTU: 200})
		spc, err := n.ListenPacket(lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		l, err := NewListener(&dropPacketConn{PacketConn: spc, drop: dropServer}, sc)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				nc, err := l.Accept()
				if err != nil {
					return
				}
				wg.Go(func() {
					defer nc.Close()
					buf := make([]byte, 100)
					for {
						if _, err := nc.Read(buf); err != nil {
							return
						}
					}
				})
			}
		})
		cc2, err := n.Dial(lossClientAddr, lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		c := Client(&dropConn13{Conn: cc2, drop: dropClient}, cc)
		start := time.Now()
		if err := c.HandshakeContext(context.Background()); err != nil {
			t.Errorf("handshake: %v", err)
		}
		counts.group = c.ConnectionState().CurveID
		counts.mu.Lock()
		counts.clientHandshakeReturn = time.Since(start)
		counts.mu.Unlock()
		c.Close()
		l.Close()
		wg.Wait()
	})
	return &counts
}

// TestACK13PartialFlight: the last datagram of the server's flight
// (CertificateVerify and Finished) is lost. The client ACKs what it got,
// and the server resends the rest on that ACK, before either timer:
// the client never resends its ClientHello.
func TestACK13PartialFlight(t *testing.T) {
	checkNoGoroutineLeak(t)
	// Server datagrams: 1 the HelloRetryRequest, 2-6 its flight.
	c := runACKLoss(t, func(i int) bool { return i == 6 }, func(int) bool { return false })
	if c.serverPartialResends != 1 || c.clientResent != 0 || c.serverTimerResends != 0 {
		t.Errorf("server resent %d times on a partial ACK and %d on its timer; client resent %d flights; want 1, 0, 0",
			c.serverPartialResends, c.serverTimerResends, c.clientResent)
	}
	if c.clientACKs < 1 {
		t.Error("the client did not ACK the partial flight")
	}
	// Without the ACK rules: the client's 100 ms timer, a resent
	// ClientHello and the server's answer.
	if c.clientHandshakeReturn >= 100*time.Millisecond {
		t.Errorf("handshake took %v", c.clientHandshakeReturn)
	}
	t.Logf("client: %d datagrams, %d ACKs, %d flights resent, handshake %v; server: %d resends on a partial ACK, %d on its timer",
		c.clientDatagrams, c.clientACKs, c.clientResent, c.clientHandshakeReturn, c.serverPartialResends, c.serverTimerResends)
}

// TestACK13PartialFlightHybrid: the same at the default groups, where
// the HelloRetryRequest asks for X25519MLKEM768: the second ClientHello
// (a 1216-byte share) and the server's flight (a 1120-byte share in the
// ServerHello) take about twice the datagrams at MTU 200; the server's
// flight is its datagrams 2 to 12.
//
// Losing the flight's last datagram (CertificateVerify and Finished) is
// the X25519 case: the client ACKs the records it authenticated and the
// server resends the rest at once. Losing a middle fragment of the
// ServerHello is not: the client holds epoch-0 fragments of an
// incomplete ServerHello and cannot decrypt the records after it, so it
// has nothing authenticated to ACK, and both sides' timers resend (the
// client's one 7-datagram ClientHello, once); the handshake still
// completes in one timer period.
func TestACK13PartialFlightHybrid(t *testing.T) {
	checkNoGoroutineLeak(t)
	t.Run("last datagram", func(t *testing.T) {
		c := runACKLossGroups(t, nil, func(i int) bool { return i == 12 }, func(int) bool { return false })
		if c.group != groupX25519MLKEM768 {
			t.Fatalf("group %v, want X25519MLKEM768", c.group)
		}
		if c.serverPartialResends != 1 || c.clientResent != 0 || c.serverTimerResends != 0 {
			t.Errorf("server resent %d times on a partial ACK and %d on its timer; client resent %d flights; want 1, 0, 0",
				c.serverPartialResends, c.serverTimerResends, c.clientResent)
		}
		if c.clientACKs < 1 {
			t.Error("the client did not ACK the partial flight")
		}
		t.Logf("client: %d datagrams, %d ACKs, %d flights resent, handshake %v; server: %d resends on a partial ACK, %d on its timer",
			c.clientDatagrams, c.clientACKs, c.clientResent, c.clientHandshakeReturn, c.serverPartialResends, c.serverTimerResends)
	})
	t.Run("ServerHello fragment", func(t *testing.T) {
		c := runACKLossGroups(t, nil, func(i int) bool { return i == 3 }, func(int) bool { return false })
		if c.group != groupX25519MLKEM768 {
			t.Fatalf("group %v, want X25519MLKEM768", c.group)
		}
		if c.clientResent > 1 || c.serverTimerResends > 1 {
			t.Errorf("client resent %d flights, server %d on its timer; want at most one each", c.clientResent, c.serverTimerResends)
		}
		// The server's first timer (1.5 × the round trip the cookie
		// exchange measured, at least 100 ms), and a round trip.
		if c.clientHandshakeReturn > time.Second {
			t.Errorf("handshake took %v", c.clientHandshakeReturn)
		}
		t.Logf("client: %d datagrams, %d ACKs, %d flights resent, handshake %v; server: %d resends on a partial ACK, %d on its timer",
			c.clientDatagrams, c.clientACKs, c.clientResent, c.clientHandshakeReturn, c.serverPartialResends, c.serverTimerResends)
	})
}

// TestACK13TimerACKsInsteadOfResending: the same loss, and the client's
// first ACK is lost too. When its retransmission timer fires, the client,
// which holds authenticated records of the server's flight, sends an ACK
// of them rather than its ClientHello again (the server has that: its
// flight answers it), and the handshake completes.
func TestACK13TimerACKsInsteadOfResending(t *testing.T) {
	checkNoGoroutineLeak(t)
	// Client datagrams: 1 ClientHello, 2-3 the second ClientHello, 4 the
	// first ACK.
	c := runACKLoss(t, func(i int) bool { return i == 6 }, func(i int) bool { return i == 4 })
	if c.clientResent != 0 {
		t.Errorf("the client resent %d flights; want an ACK instead", c.clientResent)
	}
	if c.clientACKs < 2 {
		t.Errorf("%d client ACKs; want the lost one and one on the timer", c.clientACKs)
	}
	t.Logf("client: %d datagrams, %d ACKs, %d flights resent, handshake %v; server: %d resends on a partial ACK, %d on its timer",
		c.clientDatagrams, c.clientACKs, c.clientResent, c.clientHandshakeReturn, c.serverPartialResends, c.serverTimerResends)
}

// TestTransport13ACKRules checks the sans-I/O pieces: handleACK reports
// progress, partialACKResend resends on progress or after
// minResendInterval, and flightACKDue needs an authenticated record of
// the peer's next flight.
func TestTransport13ACKRules(t *testing.T) {
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	tr := newHandshakeTransport(200, 0, 0)
	tr.enable13()
	tr.queueMessage(2, typeCertificate, make([]byte, 400))
	var sent []recordNumber
	seq := uint64(0)
	for _, dg := range tr.appendFlightDatagrams(nil, func(uint64) int { return 21 }) {
		for _, r := range dg {
			rn := recordNumber{2, seq}
			seq++
			tr.noteSent13(rn, r.entry, r.off, r.off+uint32(len(r.data)-handshakeHeaderLen))
			sent = append(sent, rn)
		}
	}
	tr.flightSent(now)
	if len(sent) < 3 {
		t.Fatalf("%d records", len(sent))
	}
	if all, progress := tr.handleACK(sent[:1]); all || !progress {
		t.Fatalf("first ACK: all %v progress %v", all, progress)
	}
	if !tr.partialACKResend(true, now) {
		t.Error("no resend on a partial ACK that made progress")
	}
	if all, progress := tr.handleACK(sent[:1]); all || progress {
		t.Fatalf("repeated ACK: all %v progress %v", all, progress)
	}
	if tr.partialACKResend(false, now.Add(minResendInterval/2)) {
		t.Error("resend on a repeated ACK within minResendInterval")
	}
	if !tr.partialACKResend(false, now.Add(2*minResendInterval)) {
		t.Error("no resend on a repeated ACK after minResendInterval")
	}
	if _, progress := tr.handleACK([]recordNumber{{2, 1000}}); progress {
		t.Error("an ACK of a record never sent made progress")
	}
	if all, _ := tr.handleACK(sent); !all || tr.partialACKResend(true, now.Add(time.Second)) {
		t.Error("a fully ACKed flight is resent")
	}

	// flightACKDue: the peer's next flight began.
	tr2 := newHandshakeTransport(200, 0, 0)
	tr2.enable13()
	tr2.queueMessage(0, typeClientHello, make([]byte, 100))
	tr2.appendFlightDatagrams(nil, func(uint64) int { return 0 })
	tr2.flightSent(now)
	tr2.peerMoved = true // as handleRecord sets it for a fragment of the next flight
	tr2.noteReceived13(recordNumber{0, 5}, now)
	if tr2.flightACKDue() {
		t.Error("an epoch-0 record (forgeable) stops our retransmissions")
	}
	tr2.noteReceived13(recordNumber{2, 0}, now)
	if !tr2.flightACKDue() {
		t.Error("an authenticated record of the next flight does not turn the resend into an ACK")
	}
	if rns := tr2.takeFlightACK(); len(rns) != 2 {
		t.Errorf("flight ACK names %v", rns)
	}
	if rns := tr2.takeFlightACK(); len(rns) != 2 {
		t.Errorf("a second flight ACK names %v: it must repeat the whole flight", rns)
	}
	tr2.implicitACK()
	if tr2.flightACKDue() {
		t.Error("flightACKDue after our next flight")
	}
}

// TestTransport13PostHandshakeCarry: a post-handshake flight started
// before the last one was wholly ACKed (a NewConnectionId answering the
// peer's request while our tickets wait for their ACK) carries the
// unacknowledged messages with it, with what was ACKed of them; the new
// flight counts as ACKed only when they are too; and the flight never
// holds more than maxFlightEntries13 messages.
func TestTransport13PostHandshakeCarry(t *testing.T) {
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	tr := newHandshakeTransport(1200, 0, 0)
	tr.enable13()
	seq := uint64(0)
	send := func() (rns []recordNumber, types []handshakeType) {
		for _, dg := range tr.appendFlightDatagrams(nil, func(uint64) int { return 21 }) {
			for _, r := range dg {
				rn := recordNumber{3, seq}
				seq++
				tr.noteSent13(rn, r.entry, r.off, r.off+uint32(len(r.data)-handshakeHeaderLen))
				rns = append(rns, rn)
				types = append(types, tr.flight[r.entry].typ)
			}
		}
		tr.flightSent(now)
		return rns, types
	}
	// The handshake's last flight is dropped, not carried.
	tr.queueMessage(2, typeFinished, make([]byte, 32))
	send()
	tr.startPostHandshakeFlight()
	if len(tr.flight) != 0 {
		t.Fatalf("the handshake's flight was carried: %d entries", len(tr.flight))
	}
	tr.queueMessage(3, typeNewSessionTicket, make([]byte, 100))
	tr.queueMessage(3, typeNewSessionTicket, make([]byte, 100))
	tickets, _ := send()
	if len(tickets) != 2 {
		t.Fatalf("%d records for two tickets", len(tickets))
	}
	if all, _ := tr.handleACK(tickets[:1]); all {
		t.Fatal("one ticket's ACK completed the flight")
	}
	tr.startPostHandshakeFlight()
	tr.queueMessage(3, typeNewConnectionID, make([]byte, 10))
	rns, types := send()
	if len(tr.flight) != 2 || tr.flight[0].typ != typeNewSessionTicket || tr.flight[1].typ != typeNewConnectionID {
		t.Fatalf("flight after the carry: %v", tr.flight)
	}
	if len(types) != 2 || types[0] != typeNewSessionTicket {
		t.Fatalf("sent %v: want the unACKed ticket again and the NewConnectionId", types)
	}
	if all, _ := tr.handleACK(rns[1:]); all {
		t.Fatal("the NewConnectionId's ACK completed a flight whose ticket was not ACKed")
	}
	// The ticket's first transmission, ACKed late, counts.
	if all, _ := tr.handleACK(tickets[1:]); !all {
		t.Fatal("every message ACKed, but the flight is not")
	}
	// Wholly ACKed: nothing is carried.
	tr.startPostHandshakeFlight()
	if len(tr.flight) != 0 {
		t.Fatalf("%d entries carried from an ACKed flight", len(tr.flight))
	}
	// The bound: unACKed messages beyond maxFlightEntries13 drop the oldest.
	for i := range maxFlightEntries13 + 2 {
		tr.startPostHandshakeFlight()
		tr.queueMessage(3, typeKeyUpdate, []byte{byte(i)})
		send()
		if len(tr.flight) > maxFlightEntries13 {
			t.Fatalf("%d entries, over the bound", len(tr.flight))
		}
	}
	if got := tr.flight[0].transcript[handshakeHeaderLen]; got != 2 {
		t.Errorf("oldest kept message %d, want 2", got)
	}
}

// TestACK13FitsMTU: an ACK naming more records than fit the MTU (a long
// flight at a small MTU) names the newest that fit, in one datagram no
// larger than the MTU.
func TestACK13FitsMTU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc, sc := kuConfigs(t, suiteTLSAES128GCMSHA256, 1)
		cc.MTU = 300
		var mu sync.Mutex
		var sizes []int
		var named []int
		cc.Tracer = func(ev *TraceEvent) {
			mu.Lock()
			defer mu.Unlock()
			switch ev.Kind {
			case TraceACKSent:
				named = append(named, ev.Length)
			case TraceDatagramSent:
				sizes = append(sizes, ev.Length)
			}
		}
		n := netsim.New(1, netsim.Link{Delay: lossDelay})
		cli, srv := kuPair(t, n, cc, sc, nil)
		defer srv.Close()
		defer cli.Close()
		rns := make([]recordNumber, 100)
		for i := range rns {
			rns[i] = recordNumber{2, uint64(i)}
		}
		mu.Lock()
		sizes, named = nil, nil
		mu.Unlock()
		if err := cli.sendACKOf(rns); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(named) != 1 || len(sizes) != 1 {
			t.Fatalf("ACKs %v in datagrams %v, want one of each", named, sizes)
		}
		if sizes[0] > cc.MTU || named[0] >= len(rns) || named[0] < 10 {
			t.Errorf("an ACK of %d record numbers in %d bytes at MTU %d", named[0], sizes[0], cc.MTU)
		}
	})
}
