package ladder

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// Record and handshake types used by the synthetic handshake.
const (
	hsClientHello        = 1
	hsServerHello        = 2
	hsHelloVerifyRequest = 3
	hsCertificate        = 11
	hsServerKeyExchange  = 12
	hsServerHelloDone    = 14
	hsClientKeyExchange  = 16
	hsFinished           = 20
)

// sim emits TraceEvents the way a Conn does, for both ends of one
// connection, on a virtual clock.
type sim struct {
	t0     time.Time
	now    time.Duration
	addr   [2]netip.AddrPort
	events []dtls.TraceEvent
}

func newSim() *sim {
	return &sim{
		t0:   time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		addr: [2]netip.AddrPort{netip.MustParseAddrPort("192.0.2.10:50000"), netip.MustParseAddrPort("192.0.2.1:4433")},
	}
}

func (s *sim) at(us int) { s.now = time.Duration(us) * time.Microsecond }

func (s *sim) emit(sd side, ev dtls.TraceEvent) {
	ev.Time = s.t0.Add(s.now)
	ev.Client = sd == client
	ev.Local, ev.Remote = s.addr[sd], s.addr[1-sd]
	s.events = append(s.events, ev)
}

func (s *sim) flight(sd side, n int, retransmit string) {
	if retransmit == "" {
		s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceFlightSent, Flight: n})
	} else {
		s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceFlightRetransmitted, Flight: n, Reason: retransmit})
	}
}

// hs emits a record holding one handshake fragment.
func (s *sim) hs(sd side, epoch uint64, seq uint64, typ uint8, mseq uint16, off, n, total uint32, flight int) {
	s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceRecordSent, Epoch: epoch, Seq: seq, ContentType: contentHandshake, Length: int(12 + n)})
	s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceHandshakeSent, Epoch: epoch, HandshakeType: typ, MessageSeq: mseq,
		FragmentOffset: off, FragmentLength: n, MessageLength: total, Flight: flight})
}

func (s *sim) msg(sd side, epoch uint64, seq uint64, typ uint8, mseq uint16, n uint32, flight int) {
	s.hs(sd, epoch, seq, typ, mseq, 0, n, n, flight)
}

func (s *sim) record(sd side, epoch uint64, seq uint64, ct uint8, n int) {
	s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceRecordSent, Epoch: epoch, Seq: seq, ContentType: ct, Length: n})
}

func (s *sim) datagram(sd side, n int) {
	s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceDatagramSent, Length: n, Datagram: make([]byte, n)})
}

func (s *sim) timer(sd side, d time.Duration) {
	s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceTimerArmed, Timeout: d})
}

func (s *sim) recvDatagram(sd side, n int) {
	s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceDatagramReceived, Length: n, Datagram: make([]byte, n)})
}

func (s *sim) recv(sd side, epoch uint64, seq uint64, ct uint8, n int) {
	s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceRecordReceived, Epoch: epoch, Seq: seq, ContentType: ct, Length: n})
}

func (s *sim) drop(sd side, epoch uint64, seq uint64, ct uint8, reason string) {
	s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceRecordDropped, Epoch: epoch, Seq: seq, ContentType: ct, Reason: reason})
}

func (s *sim) took(sd side, epoch uint64, typ uint8, mseq uint16, n uint32) {
	s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceHandshakeReceived, Epoch: epoch, HandshakeType: typ, MessageSeq: mseq, MessageLength: n, FragmentLength: n})
}

// handshake is a full DTLS 1.2 handshake with a cookie exchange, a
// Certificate fragmented over two datagrams, the loss of the second,
// a client timer and retransmission, the server's retransmission on the
// repeated ClientHello, duplicates refused by the handshake transport,
// application data both ways, one record dropped for a bad MAC, and a
// close_notify.
func handshake() []dtls.TraceEvent {
	s := newSim()
	// Flight 1: ClientHello.
	s.at(0)
	s.flight(client, 1, "")
	s.msg(client, 0, 0, hsClientHello, 0, 120, 1)
	s.datagram(client, 145)
	s.timer(client, time.Second)
	// The server's cookie gate.
	s.at(180)
	s.recvDatagram(server, 145)
	s.recv(server, 0, 0, contentHandshake, 132)
	s.took(server, 0, hsClientHello, 0, 120)
	s.at(210)
	s.flight(server, 1, "")
	s.msg(server, 0, 0, hsHelloVerifyRequest, 0, 35, 1)
	s.datagram(server, 60)
	// Flight 3: ClientHello with the cookie.
	s.at(412)
	s.recvDatagram(client, 60)
	s.recv(client, 0, 0, contentHandshake, 47)
	s.took(client, 0, hsHelloVerifyRequest, 0, 35)
	s.at(450)
	s.flight(client, 2, "")
	s.msg(client, 0, 1, hsClientHello, 1, 152, 2)
	s.datagram(client, 177)
	s.timer(client, time.Second)
	// Flight 4, in two datagrams; the second is lost.
	s.at(640)
	s.recvDatagram(server, 177)
	s.recv(server, 0, 1, contentHandshake, 164)
	s.took(server, 0, hsClientHello, 1, 152)
	s.at(905)
	s.flight(server, 2, "")
	s.msg(server, 0, 1, hsServerHello, 1, 80, 2)
	s.hs(server, 0, 2, hsCertificate, 2, 0, 600, 1100, 2)
	s.datagram(server, 740)
	s.hs(server, 0, 3, hsCertificate, 2, 600, 500, 1100, 2)
	s.msg(server, 0, 4, hsServerKeyExchange, 3, 147, 2)
	s.msg(server, 0, 5, hsServerHelloDone, 4, 0, 2)
	s.datagram(server, 720)
	s.timer(server, time.Second)
	s.at(1130)
	s.recvDatagram(client, 740)
	s.recv(client, 0, 1, contentHandshake, 92)
	s.recv(client, 0, 2, contentHandshake, 612)
	s.took(client, 0, hsServerHello, 1, 80)
	// The client's timer fires: flight 3 again.
	s.at(1_000_450)
	s.emit(client, dtls.TraceEvent{Kind: dtls.TraceTimerFired})
	s.flight(client, 2, "timer")
	s.msg(client, 0, 2, hsClientHello, 1, 152, 2)
	s.datagram(client, 177)
	s.timer(client, 2*time.Second)
	// The server sees it repeated and resends flight 4 at once.
	s.at(1_000_700)
	s.recvDatagram(server, 177)
	s.recv(server, 0, 2, contentHandshake, 164)
	s.drop(server, 0, 2, contentHandshake, "old message")
	s.flight(server, 2, "peer repeated")
	s.msg(server, 0, 6, hsServerHello, 1, 80, 2)
	s.hs(server, 0, 7, hsCertificate, 2, 0, 600, 1100, 2)
	s.datagram(server, 740)
	s.hs(server, 0, 8, hsCertificate, 2, 600, 500, 1100, 2)
	s.msg(server, 0, 9, hsServerKeyExchange, 3, 147, 2)
	s.msg(server, 0, 10, hsServerHelloDone, 4, 0, 2)
	s.datagram(server, 720)
	s.timer(server, 2*time.Second)
	s.at(1_000_960)
	s.recvDatagram(client, 740)
	s.recv(client, 0, 6, contentHandshake, 92)
	s.drop(client, 0, 6, contentHandshake, "old message")
	s.recv(client, 0, 7, contentHandshake, 612)
	s.at(1_001_020)
	s.recvDatagram(client, 720)
	s.recv(client, 0, 8, contentHandshake, 512)
	s.took(client, 0, hsCertificate, 2, 1100)
	s.recv(client, 0, 9, contentHandshake, 159)
	s.took(client, 0, hsServerKeyExchange, 3, 147)
	s.recv(client, 0, 10, contentHandshake, 12)
	s.took(client, 0, hsServerHelloDone, 4, 0)
	// Flight 5: ClientKeyExchange, ChangeCipherSpec, Finished.
	s.at(1_001_900)
	s.flight(client, 3, "")
	s.msg(client, 0, 3, hsClientKeyExchange, 2, 66, 3)
	s.record(client, 0, 4, contentCCS, 1)
	s.emit(client, dtls.TraceEvent{Kind: dtls.TraceEpochChanged, Epoch: 1, Reason: "write"})
	s.msg(client, 1, 0, hsFinished, 3, 12, 3)
	s.datagram(client, 160)
	s.timer(client, time.Second)
	s.at(1_002_150)
	s.recvDatagram(server, 160)
	s.recv(server, 0, 3, contentHandshake, 78)
	s.took(server, 0, hsClientKeyExchange, 2, 66)
	s.recv(server, 0, 4, contentCCS, 1)
	s.recv(server, 1, 0, contentHandshake, 24)
	s.took(server, 1, hsFinished, 3, 12)
	// Flight 6: ChangeCipherSpec, Finished.
	s.at(1_002_300)
	s.flight(server, 3, "")
	s.record(server, 0, 11, contentCCS, 1)
	s.msg(server, 1, 0, hsFinished, 5, 12, 3)
	s.datagram(server, 80)
	s.emit(server, dtls.TraceEvent{Kind: dtls.TraceHandshakeDone, Reason: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"})
	s.at(1_002_480)
	s.recvDatagram(client, 80)
	s.recv(client, 0, 11, contentCCS, 1)
	s.recv(client, 1, 0, contentHandshake, 24)
	s.took(client, 1, hsFinished, 5, 12)
	s.emit(client, dtls.TraceEvent{Kind: dtls.TraceHandshakeDone, Reason: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"})
	// Application data; one record is corrupted on the path.
	s.at(1_002_600)
	s.record(client, 1, 1, contentAppData, 32)
	s.datagram(client, 69)
	s.at(1_002_790)
	s.recvDatagram(server, 69)
	s.recv(server, 1, 1, contentAppData, 32)
	s.at(1_002_800)
	s.record(client, 1, 2, contentAppData, 100)
	s.datagram(client, 137)
	s.at(1_002_990)
	s.recvDatagram(server, 137)
	s.drop(server, 1, 2, contentAppData, "bad MAC")
	s.at(1_003_050)
	s.record(server, 1, 1, contentAppData, 32)
	s.datagram(server, 69)
	s.at(1_003_230)
	s.recvDatagram(client, 69)
	s.recv(client, 1, 1, contentAppData, 32)
	// close_notify, traced as the library does: the alert, no record.
	s.at(1_003_400)
	s.emit(client, dtls.TraceEvent{Kind: dtls.TraceAlertSent, Epoch: 1, Alert: alertCloseNotify})
	s.datagram(client, 39)
	s.at(1_003_580)
	s.recvDatagram(server, 39)
	s.recv(server, 1, 3, contentAlert, 2)
	s.emit(server, dtls.TraceEvent{Kind: dtls.TraceAlertReceived, Epoch: 1, Alert: alertCloseNotify})
	return s.events
}

func ladderOf(events []dtls.TraceEvent) *Ladder {
	l := New()
	for i := range events {
		l.Add(&events[i])
	}
	return l
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update if the change is intended); got:\n%s", name, got)
	}
}

func render(t *testing.T, f func(io.Writer) error) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestTextGolden(t *testing.T) {
	l := ladderOf(handshake())
	got := render(t, l.Text)
	golden(t, "handshake.txt.golden", got)
	for i, line := range strings.Split(strings.TrimRight(string(got), "\n"), "\n") {
		if n := len([]rune(line)); n > 100 {
			t.Errorf("line %d is %d columns wide: %s", i+1, n, line)
		}
	}
}

func TestSVGGolden(t *testing.T) {
	got := render(t, ladderOf(handshake()).SVG)
	golden(t, "handshake.svg.golden", got)
	// Well-formed XML, nothing fetched from outside.
	dec := xml.NewDecoder(bytes.NewReader(got))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	for _, bad := range []string{"href", "<script", "@import", "url("} {
		if bytes.Contains(got, []byte(bad)) {
			t.Errorf("SVG contains %q: it must be self-contained", bad)
		}
	}
}

func TestLogGolden(t *testing.T) {
	golden(t, "handshake.log.golden", render(t, ladderOf(handshake()).Log))
}

// TestPairing checks the arrows' outcomes, which the goldens show only as
// drawings.
func TestPairing(t *testing.T) {
	d := ladderOf(handshake()).build()
	count := map[outcome]int{}
	var drops, retx []string
	for _, a := range d.arrows {
		count[a.outcome]++
		if a.outcome == dropped {
			drops = append(drops, a.label()+": "+a.dropReason)
		}
		if a.retransmit != "" {
			retx = append(retx, a.retransmit)
		}
	}
	// Lost: the second datagram of flight 4 (3 records).
	if count[lost] != 3 {
		t.Errorf("%d lost arrows, want 3", count[lost])
	}
	wantDrops := []string{
		"↻ F2 ClientHello seq=1 e0: old message",
		"↻ F2 ServerHello seq=1 e0: old message",
		"ApplicationData 100B e1: bad MAC",
	}
	if strings.Join(drops, "\n") != strings.Join(wantDrops, "\n") {
		t.Errorf("drops:\n%s\nwant:\n%s", strings.Join(drops, "\n"), strings.Join(wantDrops, "\n"))
	}
	if len(retx) != 6 || retx[0] != "timer" || retx[1] != "peer repeated" {
		t.Errorf("retransmitted arrows %q", retx)
	}
	last := d.arrows[len(d.arrows)-1]
	if last.label() != "Alert close notify e1" || last.outcome != received {
		t.Errorf("last arrow %q outcome %v: the alert traced without its record should pair with the server's receipt", last.label(), last.outcome)
	}
}

func TestEmpty(t *testing.T) {
	l := New()
	if got := string(render(t, l.Text)); got != "(no events)\n" {
		t.Errorf("Text of nothing: %q", got)
	}
	if got := render(t, l.SVG); !bytes.HasPrefix(got, []byte("<svg")) {
		t.Errorf("SVG of nothing: %q", got)
	}
}

// TestConcurrentAdd adds both ends' events from two goroutines, as two
// Tracers would, and checks the rendering is the same as in order.
func TestConcurrentAdd(t *testing.T) {
	events := handshake()
	l := New()
	var wg sync.WaitGroup
	for _, isClient := range []bool{true, false} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range events {
				if events[i].Client == isClient {
					l.Add(&events[i])
				}
			}
		}()
	}
	wg.Wait()
	if got, want := render(t, l.Text), render(t, ladderOf(events).Text); !bytes.Equal(got, want) {
		t.Errorf("concurrent Add renders differently:\n%s\nwant:\n%s", got, want)
	}
}

func TestAddCopies(t *testing.T) {
	ev := dtls.TraceEvent{Kind: dtls.TraceDatagramSent, Datagram: []byte{1, 2, 3}}
	l := New()
	l.Add(&ev)
	ev.Kind = dtls.TraceTimerFired
	if l.events[0].Kind != dtls.TraceDatagramSent || l.events[0].Datagram != nil {
		t.Error("Add must copy the event and drop its Datagram")
	}
}

// TestCloseNotifyAfterPeerClosed: a record sent after the receiver sent
// its close_notify, with no receipt, is "not read", not lost: the
// receiver no longer reads. One sent before that and never received is
// still lost.
func TestCloseNotifyAfterPeerClosed(t *testing.T) {
	s := newSim()
	s.record(server, 1, 1, contentAppData, 32) // lost on the way
	s.at(100)
	s.emit(client, dtls.TraceEvent{Kind: dtls.TraceAlertSent, Epoch: 1, Alert: alertCloseNotify})
	s.record(client, 1, 5, contentAlert, 2)
	s.at(200)
	s.recv(server, 1, 5, contentAlert, 2)
	s.emit(server, dtls.TraceEvent{Kind: dtls.TraceAlertSent, Epoch: 1, Alert: alertCloseNotify})
	s.record(server, 1, 2, contentAlert, 2)
	l := ladderOf(s.events)

	d := l.build()
	var outcomes []outcome
	for _, a := range d.arrows {
		outcomes = append(outcomes, a.outcome)
	}
	if want := []outcome{lost, received, unread}; !slices.Equal(outcomes, want) {
		t.Errorf("outcomes %v, want %v (lost, received, unread)", outcomes, want)
	}
	var text, svg bytes.Buffer
	if err := l.Text(&text); err != nil {
		t.Fatal(err)
	}
	if err := l.SVG(&svg); err != nil {
		t.Fatal(err)
	}
	// The SVG's legend says "lost" once more.
	for _, o := range []struct {
		name, out, lost string
		want            int
	}{{"text", text.String(), "  lost", 1}, {"SVG", svg.String(), ">lost<", 2}} {
		if !strings.Contains(o.out, "not read: client closed") {
			t.Errorf("%s does not say the close_notify was not read:\n%s", o.name, o.out)
		}
		if n := strings.Count(o.out, o.lost); n != o.want {
			t.Errorf("%s has %q %d times, want %d:\n%s", o.name, o.lost, n, o.want, o.out)
		}
	}
}

// TestAddLabeled: a record added with a label is drawn with it in place
// of its content and epoch (still with its flight and retransmission
// marks, in text and SVG), even when the events reach the ladder out of
// time order; a label past the ladder's limit is dropped with its event.
func TestAddLabeled(t *testing.T) {
	s := newSim()
	l := New()
	add := func(ev dtls.TraceEvent, label string) {
		ev.Time = s.t0.Add(s.now)
		ev.Local, ev.Remote = s.addr[client], s.addr[server]
		if !ev.Client {
			ev.Local, ev.Remote = ev.Remote, ev.Local
		}
		if label != "" {
			l.AddLabeled(&ev, label)
		} else {
			l.Add(&ev)
		}
	}
	// The server's ACK is added before the client's Finished that it
	// answers, but happens after it.
	s.at(300)
	add(dtls.TraceEvent{Kind: dtls.TraceRecordSent, Epoch: 3, Seq: 0, ContentType: 26, Length: 18}, "ACK(e2 s0) e3 s0")
	add(dtls.TraceEvent{Kind: dtls.TraceRecordReceived, Client: true, Epoch: 3, Seq: 0, ContentType: 26, Length: 18}, "")
	s.at(100)
	add(dtls.TraceEvent{Kind: dtls.TraceFlightRetransmitted, Client: true, Flight: 3, Reason: "seen again"}, "")
	add(dtls.TraceEvent{Kind: dtls.TraceRecordSent, Client: true, Epoch: 2, Seq: 0, ContentType: contentHandshake, Length: 61}, "Finished seq=2 e2 s0")
	add(dtls.TraceEvent{Kind: dtls.TraceHandshakeSent, Client: true, Epoch: 2, HandshakeType: hsFinished, MessageSeq: 2, FragmentLength: 48, MessageLength: 48, Flight: 3}, "")
	add(dtls.TraceEvent{Kind: dtls.TraceRecordReceived, Epoch: 2, Seq: 0, ContentType: contentHandshake, Length: 61}, "")
	text := string(render(t, l.Text))
	for _, want := range []string{"│ ↻ F3 Finished seq=2 e2 s0 ─", "─ ACK(e2 s0) e3 s0 │"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	if strings.Index(text, "Finished") > strings.Index(text, "ACK(") {
		t.Errorf("the ACK is drawn before the record it answers:\n%s", text)
	}
	svg := string(render(t, l.SVG))
	for _, want := range []string{"↻ F3 Finished seq=2 e2 s0 (seen again)", "ACK(e2 s0) e3 s0", `stroke="#00838f"`, ">ACK</text>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}

	small := NewLimited(1)
	ev := dtls.TraceEvent{Kind: dtls.TraceRecordSent, Time: s.t0, Client: true, ContentType: 26}
	small.AddLabeled(&ev, "first")
	small.AddLabeled(&ev, "second")
	if len(small.labels) != 1 || small.labels[0] != "first" || small.omitted != 1 {
		t.Errorf("limited ladder kept labels %v, omitted %d", small.labels, small.omitted)
	}
}
