package tracefmt

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestStamp(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "[    0.000ms]"},
		{12345 * time.Microsecond, "[   12.345ms]"},
		{1500 * time.Nanosecond, "[    0.002ms]"},
		{83*time.Second + 250*time.Microsecond, "[83000.250ms]"},
	} {
		if got := Stamp(tc.d); got != tc.want {
			t.Errorf("Stamp(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	peer := netip.MustParseAddrPort("127.0.0.1:4433")
	for _, tc := range []struct {
		ev   dtls.TraceEvent
		want string
	}{
		{dtls.TraceEvent{Kind: dtls.TraceHandshakeSent, HandshakeType: 1, FragmentLength: 143, MessageLength: 143},
			"-> ClientHello seq=0 frag=0+143/143 epoch=0"},
		{dtls.TraceEvent{Kind: dtls.TraceHandshakeSent, HandshakeType: 11, MessageSeq: 2, FragmentOffset: 200, FragmentLength: 100, MessageLength: 412},
			"-> Certificate seq=2 frag=200+100/412 epoch=0"},
		{dtls.TraceEvent{Kind: dtls.TraceHandshakeReceived, HandshakeType: 20, MessageSeq: 5, MessageLength: 12, Epoch: 1},
			"<- Finished seq=5 len=12 epoch=1"},
		{dtls.TraceEvent{Kind: dtls.TraceFlightSent, Flight: 3}, "flight 3 sent"},
		{dtls.TraceEvent{Kind: dtls.TraceFlightRetransmitted, Flight: 1, Reason: "timer"}, "flight 1 retransmitted (timer)"},
		{dtls.TraceEvent{Kind: dtls.TraceTimerArmed, Timeout: 2 * time.Second}, "timer armed: 2s"},
		{dtls.TraceEvent{Kind: dtls.TraceTimerFired}, "timer fired"},
		{dtls.TraceEvent{Kind: dtls.TraceEpochChanged, Epoch: 1, Reason: "write"}, "epoch 1 (write keys)"},
		{dtls.TraceEvent{Kind: dtls.TraceRecordDropped, ContentType: 23, Epoch: 1, Seq: 7, Length: 40, Reason: "replay"},
			"dropped ApplicationData record epoch=1 seq=7 len=40: replay"},
		{dtls.TraceEvent{Kind: dtls.TraceRecordSent, ContentType: 22, Seq: 3, Length: 155},
			"-> record Handshake epoch=0 seq=3 len=155"},
		{dtls.TraceEvent{Kind: dtls.TraceRecordReceived, ContentType: 20, Seq: 4, Length: 1},
			"<- record ChangeCipherSpec epoch=0 seq=4 len=1"},
		{dtls.TraceEvent{Kind: dtls.TraceDatagramSent, Length: 200, Remote: peer}, "-> datagram 200 bytes to 127.0.0.1:4433"},
		{dtls.TraceEvent{Kind: dtls.TraceDatagramReceived, Length: 60}, "<- datagram 60 bytes from ?"},
		{dtls.TraceEvent{Kind: dtls.TraceAlertSent, Alert: 40}, "-> alert handshake failure (40)"},
		{dtls.TraceEvent{Kind: dtls.TraceAlertReceived, Alert: 0}, "<- alert close notify (0)"},
		{dtls.TraceEvent{Kind: dtls.TraceHandshakeFailed, Reason: "dtls: handshake failure"},
			"handshake failed after ?: dtls: handshake failure"},
		{dtls.TraceEvent{Kind: dtls.TraceDatagramDropped, Length: 40, Reason: "unknown peer"},
			"listener dropped a datagram of 40 bytes from ?: unknown peer"},
		{dtls.TraceEvent{Kind: dtls.TraceListenerEvent, Reason: "idle timeout"}, "listener: idle timeout (?)"},
		{dtls.TraceEvent{Kind: 200}, "TraceKind(200)"},
	} {
		if got := Describe(&tc.ev, 0); got != tc.want {
			t.Errorf("Describe(%v) = %q, want %q", tc.ev.Kind, got, tc.want)
		}
	}
}

func TestLevels(t *testing.T) {
	want := map[dtls.TraceKind]int{
		dtls.TraceHandshakeDone: 1, dtls.TraceHandshakeFailed: 1, dtls.TraceAlertSent: 1, dtls.TraceAlertReceived: 1,
		dtls.TraceHandshakeSent: 3, dtls.TraceHandshakeReceived: 3, dtls.TraceFlightSent: 3, dtls.TraceFlightRetransmitted: 3,
		dtls.TraceTimerArmed: 3, dtls.TraceTimerFired: 3, dtls.TraceEpochChanged: 3, dtls.TraceRecordDropped: 3,
		dtls.TraceRecordSent: 4, dtls.TraceRecordReceived: 4, dtls.TraceDatagramSent: 4, dtls.TraceDatagramReceived: 4,
		dtls.TraceDatagramDropped: 3, dtls.TraceListenerEvent: 1,
	}
	for k := dtls.TraceDatagramSent; k <= dtls.TraceListenerEvent; k++ {
		if got := Level(k); got != want[k] {
			t.Errorf("Level(%v) = %d, want %d", k, got, want[k])
		}
	}
}

// handshake is a client handshake as the library reports it, 10 ms long.
func handshake(client bool) []*dtls.TraceEvent {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	remote := netip.MustParseAddrPort("127.0.0.1:4433")
	if !client {
		remote = netip.MustParseAddrPort("127.0.0.1:50000")
	}
	evs := []*dtls.TraceEvent{
		{Kind: dtls.TraceHandshakeSent, Time: at(1), HandshakeType: 1, FragmentLength: 143, MessageLength: 143},
		{Kind: dtls.TraceDatagramSent, Time: at(1), Length: 156, Remote: remote, Datagram: []byte{0x16, 0xfe, 0xfd}},
		{Kind: dtls.TraceFlightSent, Time: at(1), Flight: 1},
		{Kind: dtls.TraceTimerArmed, Time: at(1), Timeout: time.Second},
		{Kind: dtls.TraceHandshakeReceived, Time: at(5), HandshakeType: 2, MessageSeq: 1, MessageLength: 70},
		{Kind: dtls.TraceEpochChanged, Time: at(8), Epoch: 1, Reason: "write"},
		{Kind: dtls.TraceHandshakeDone, Time: at(11), Reason: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
		{Kind: dtls.TraceAlertReceived, Time: at(20), Alert: 0},
	}
	for _, ev := range evs {
		ev.Client = client
		ev.Remote = remote
	}
	return evs
}

func TestPrinterLevels(t *testing.T) {
	want := []string{
		// level 1
		"[   11.000ms] client: handshake done: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 in 10ms\n" +
			"[   20.000ms] client: <- alert close notify (0)\n",
		// level 2: the ladder in place of the live message lines
		"[   11.000ms] client: ladder of the handshake with 127.0.0.1:4433\n" +
			"   time(µs)  client (this end)                    server 127.0.0.1:4433\n" +
			"          0  │ ClientHello seq=0 e0 ─────────────────────────────────▶│\n" +
			"       4000  │◀───────────────────────────────── ServerHello seq=1 e0 │\n" +
			"      10000  │* done: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256        │\n" +
			"[   11.000ms] client: handshake done: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 in 10ms\n" +
			"[   20.000ms] client: <- alert close notify (0)\n",
		// level 3
		"[    1.000ms] client: -> ClientHello seq=0 frag=0+143/143 epoch=0\n" +
			"[    1.000ms] client: flight 1 sent\n" +
			"[    1.000ms] client: timer armed: 1s\n" +
			"[    5.000ms] client: <- ServerHello seq=1 len=70 epoch=0\n" +
			"[    8.000ms] client: epoch 1 (write keys)\n" +
			"[   11.000ms] client: ladder of the handshake with 127.0.0.1:4433\n" +
			"   time(µs)  client (this end)                    server 127.0.0.1:4433\n" +
			"          0  │ ClientHello seq=0 e0 ─────────────────────────────────▶│\n" +
			"       4000  │◀───────────────────────────────── ServerHello seq=1 e0 │\n" +
			"      10000  │* done: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256        │\n" +
			"[   11.000ms] client: handshake done: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 in 10ms\n" +
			"[   20.000ms] client: <- alert close notify (0)\n",
		// level 4
		"[    1.000ms] client: -> ClientHello seq=0 frag=0+143/143 epoch=0\n" +
			"[    1.000ms] client: -> datagram 156 bytes to 127.0.0.1:4433\n" +
			"    00000000  16 fe fd                                          |...|\n" +
			"[    1.000ms] client: flight 1 sent\n" +
			"[    1.000ms] client: timer armed: 1s\n" +
			"[    5.000ms] client: <- ServerHello seq=1 len=70 epoch=0\n" +
			"[    8.000ms] client: epoch 1 (write keys)\n" +
			"[   11.000ms] client: ladder of the handshake with 127.0.0.1:4433\n" +
			"   time(µs)  client (this end)                    server 127.0.0.1:4433\n" +
			"          0  │ ClientHello seq=0 e0 ─────────────────────────────────▶│\n" +
			"       4000  │◀───────────────────────────────── ServerHello seq=1 e0 │\n" +
			"      10000  │* done: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256        │\n" +
			"[   11.000ms] client: handshake done: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 in 10ms\n" +
			"[   20.000ms] client: <- alert close notify (0)\n",
	}
	for level := 0; level <= MaxLevel; level++ {
		var b strings.Builder
		p := New(&b, level, t0)
		if tr := p.Tracer(); tr != nil {
			for _, ev := range handshake(true) {
				tr(ev)
			}
		} else if level != 0 {
			t.Fatalf("level %d: Tracer() = nil", level)
		}
		exp := ""
		if level > 0 {
			exp = want[level-1]
		}
		if b.String() != exp {
			t.Errorf("level %d:\n got:\n%s\nwant:\n%s", level, b.String(), exp)
		}
	}
}

func TestPrinterServerSideNamesPeer(t *testing.T) {
	var b strings.Builder
	p := New(&b, 1, t0)
	for _, ev := range handshake(false) {
		p.Trace(ev)
	}
	if !strings.Contains(b.String(), "server[127.0.0.1:50000]: handshake done: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 in 10ms") {
		t.Errorf("got %q", b.String())
	}
}

func TestPrinterPrintf(t *testing.T) {
	var b strings.Builder
	p := New(&b, 1, t0)
	p.now = func() time.Time { return t0.Add(2500 * time.Microsecond) }
	p.Printf(1, "fingerprint %s\n", "AB:CD")
	p.Printf(2, "hidden")
	if want := "[    2.500ms] fingerprint AB:CD\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	var nilP *Printer
	nilP.Printf(0, "no panic")
	if nilP.Tracer() != nil {
		t.Error("nil Printer has a Tracer")
	}
}

// TestPrinterConcurrent checks that lines from many goroutines (a server's
// connections) never interleave; run with -race.
func TestPrinterConcurrent(t *testing.T) {
	var b strings.Builder
	p := New(&b, MaxLevel, t0)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for _, ev := range handshake(i%2 == 0) {
				p.Trace(ev)
			}
		})
	}
	wg.Wait()
	for l := range strings.Lines(b.String()) {
		if !strings.HasPrefix(l, "[") && !strings.HasPrefix(l, ladderIndent) {
			t.Fatalf("interleaved line %q", l)
		}
	}
}

func TestPrinterBoundsTrackedHandshakes(t *testing.T) {
	p := New(&strings.Builder{}, 1, t0)
	for i := range maxTrackedConn + 10 {
		p.Trace(&dtls.TraceEvent{Kind: dtls.TraceHandshakeReceived, Time: t0,
			Remote: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(i))})
	}
	if n := len(p.begun); n > maxTrackedConn {
		t.Errorf("tracking %d handshakes, limit %d", n, maxTrackedConn)
	}
}

// clientHello is the start of a datagram holding a ClientHello record.
var clientHello = []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60, 1, 0, 0, 48}

// TestPrinterServerLadder feeds a server's events for one peer, the
// Listener's stateless exchange first, and checks that one ladder, with
// both ClientHellos and the HelloVerifyRequest, is printed when the
// handshake ends, and that traffic after it starts no other.
func TestPrinterServerLadder(t *testing.T) {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	local, peer := netip.MustParseAddrPort("127.0.0.1:4433"), netip.MustParseAddrPort("127.0.0.1:50000")
	other := netip.MustParseAddrPort("127.0.0.1:50001")
	evs := []*dtls.TraceEvent{
		// The Listener's stateless exchange.
		{Kind: dtls.TraceDatagramReceived, Time: at(1), Length: 60, Datagram: clientHello},
		{Kind: dtls.TraceRecordReceived, Time: at(1), ContentType: 22, Length: 47},
		{Kind: dtls.TraceHandshakeReceived, Time: at(1), HandshakeType: 1, MessageLength: 35},
		{Kind: dtls.TraceFlightSent, Time: at(1), Flight: 1, Reason: "stateless"},
		{Kind: dtls.TraceRecordSent, Time: at(1), ContentType: 22, Length: 35},
		{Kind: dtls.TraceHandshakeSent, Time: at(1), HandshakeType: 3, FragmentLength: 23, MessageLength: 23, Flight: 1},
		// The Conn.
		{Kind: dtls.TraceDatagramReceived, Time: at(2), Length: 80, Datagram: clientHello},
		{Kind: dtls.TraceRecordReceived, Time: at(2), ContentType: 22, Seq: 1, Length: 67},
		{Kind: dtls.TraceHandshakeReceived, Time: at(2), HandshakeType: 1, MessageSeq: 1, MessageLength: 55},
		{Kind: dtls.TraceFlightSent, Time: at(3), Flight: 2},
		{Kind: dtls.TraceRecordSent, Time: at(3), ContentType: 22, Seq: 1, Length: 82},
		{Kind: dtls.TraceHandshakeSent, Time: at(3), HandshakeType: 2, MessageSeq: 1, FragmentLength: 70, MessageLength: 70, Flight: 2},
		{Kind: dtls.TraceRecordReceived, Time: at(6), ContentType: 22, Epoch: 1, Length: 24},
		{Kind: dtls.TraceHandshakeReceived, Time: at(6), HandshakeType: 20, MessageSeq: 3, Epoch: 1, MessageLength: 12},
		{Kind: dtls.TraceHandshakeDone, Time: at(7), Reason: "TLS_PSK_WITH_AES_128_CCM_8"},
		// After the handshake.
		{Kind: dtls.TraceRecordReceived, Time: at(8), ContentType: 23, Epoch: 1, Seq: 1, Length: 5},
		{Kind: dtls.TraceDatagramReceived, Time: at(8), Length: 34, Datagram: []byte{23, 0xfe, 0xfd, 0, 1}},
		{Kind: dtls.TraceAlertReceived, Time: at(9), Epoch: 1},
	}
	var b strings.Builder
	p := New(&b, LevelLadder, t0)
	// Another peer's handshake, in progress meanwhile, must not mix in.
	p.Trace(&dtls.TraceEvent{Kind: dtls.TraceDatagramReceived, Time: at(1), Local: local, Remote: other, Datagram: clientHello})
	for _, ev := range evs {
		ev.Local, ev.Remote = local, peer
		p.Trace(ev)
	}
	got := b.String()
	t.Logf("\n%s", got)
	if n := strings.Count(got, "ladder of the handshake"); n != 1 {
		t.Fatalf("%d ladders printed, want 1", n)
	}
	for _, want := range []string{
		"server[127.0.0.1:50000]: ladder of the handshake\n",
		"client 127.0.0.1:50000", "server 127.0.0.1:4433 (this end)",
		"│ ClientHello seq=0 e0 ─", "─ F1 HelloVerifyRequest seq=0 e0 │",
		"│ ClientHello seq=1 e0 ─", "─ F2 ServerHello seq=1 e0 │", "│ Finished seq=3 e1 ─",
		"done: TLS_PSK_WITH_AES_128_CCM_8",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ladder lacks %q", want)
		}
	}
	if block, _, _ := strings.Cut(got, "handshake done:"); strings.Contains(block, "ApplicationData") || strings.Contains(block, "Alert") {
		t.Error("events after the handshake are in the ladder")
	}
	if _, ok := p.ladders[peerKey{false, peer}]; ok {
		t.Error("the ladder is kept after it was printed")
	}
	if _, ok := p.ladders[peerKey{false, other}]; !ok || len(p.ladders) != 1 {
		t.Errorf("ladders in progress: %v, want the other peer's alone", p.ladders)
	}
}

func TestPrinterBoundsLadders(t *testing.T) {
	p := New(&strings.Builder{}, LevelLadder, t0)
	for i := range maxLadders + 10 {
		p.Trace(&dtls.TraceEvent{Kind: dtls.TraceDatagramReceived, Time: t0.Add(time.Duration(i)), Datagram: clientHello,
			Remote: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(i))})
	}
	if n := len(p.ladders); n != maxLadders {
		t.Errorf("%d ladders in progress, limit %d", n, maxLadders)
	}
	if _, ok := p.ladders[peerKey{false, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 0)}]; ok {
		t.Error("the oldest ladder was kept over the newest")
	}
}

func TestPrinterNoLadderBelowLevel2(t *testing.T) {
	var b strings.Builder
	p := New(&b, LevelSummary, t0)
	for _, ev := range handshake(true) {
		p.Trace(ev)
	}
	if strings.Contains(b.String(), "ladder") || len(p.ladders) != 0 {
		t.Errorf("level 1 collected or printed a ladder: %q", b.String())
	}
}
