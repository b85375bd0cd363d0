package ladder

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
)

// alertIn emits the alert that a record just received carried.
func (s *sim) alertIn(sd side, epoch uint64, a uint8) {
	s.emit(sd, dtls.TraceEvent{Kind: dtls.TraceAlertReceived, Epoch: epoch, Alert: a})
}

// clientSide is the client's own view of a handshake, in the order the
// library traces it: each record read is followed at once by the
// messages it completes. The server's flight 4 loses its second datagram;
// the client's timer resends flight 3; the server's repeat of flight 4
// brings a ServerHello the client drops as old. It ends with application
// data both ways and the client's close_notify.
func clientSide() []dtls.TraceEvent {
	s := newSim()
	s.at(0)
	s.flight(client, 1, "")
	s.msg(client, 0, 0, hsClientHello, 0, 120, 1)
	s.datagram(client, 145)
	s.timer(client, time.Second)
	s.at(412)
	s.recvDatagram(client, 60)
	s.recv(client, 0, 0, contentHandshake, 47)
	s.took(client, 0, hsHelloVerifyRequest, 0, 35)
	s.at(450)
	s.flight(client, 2, "")
	s.msg(client, 0, 1, hsClientHello, 1, 152, 2)
	s.datagram(client, 177)
	s.timer(client, time.Second)
	s.at(1130)
	s.recvDatagram(client, 740)
	s.recv(client, 0, 1, contentHandshake, 92)
	s.took(client, 0, hsServerHello, 1, 80)
	s.recv(client, 0, 2, contentHandshake, 612) // the first fragment of the Certificate
	s.at(1_000_450)
	s.emit(client, dtls.TraceEvent{Kind: dtls.TraceTimerFired})
	s.flight(client, 2, "timer")
	s.msg(client, 0, 2, hsClientHello, 1, 152, 2)
	s.datagram(client, 177)
	s.timer(client, 2*time.Second)
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
	s.at(1_001_900)
	s.flight(client, 3, "")
	s.msg(client, 0, 3, hsClientKeyExchange, 2, 66, 3)
	s.record(client, 0, 4, contentCCS, 1)
	s.emit(client, dtls.TraceEvent{Kind: dtls.TraceEpochChanged, Epoch: 1, Reason: "write"})
	s.msg(client, 1, 0, hsFinished, 3, 12, 3)
	s.datagram(client, 160)
	s.timer(client, time.Second)
	s.at(1_002_480)
	s.recvDatagram(client, 80)
	s.recv(client, 0, 11, contentCCS, 1)
	s.emit(client, dtls.TraceEvent{Kind: dtls.TraceEpochChanged, Epoch: 1, Reason: "read"})
	s.recv(client, 1, 0, contentHandshake, 24)
	s.took(client, 1, hsFinished, 5, 12)
	s.emit(client, dtls.TraceEvent{Kind: dtls.TraceHandshakeDone, Reason: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"})
	s.at(1_002_600)
	s.record(client, 1, 1, contentAppData, 32)
	s.datagram(client, 69)
	s.at(1_003_230)
	s.recvDatagram(client, 69)
	s.recv(client, 1, 1, contentAppData, 32)
	s.at(1_003_400)
	s.emit(client, dtls.TraceEvent{Kind: dtls.TraceAlertSent, Epoch: 1, Alert: alertCloseNotify})
	s.datagram(client, 39)
	return s.events
}

// serverSide is the server's own view of the same handshake, beginning
// with the Listener's stateless ClientHello/HelloVerifyRequest exchange.
// The client's repeated ClientHello is dropped as old and makes the server
// resend flight 4; an application data record fails its MAC; the client's
// close_notify is answered.
func serverSide() []dtls.TraceEvent {
	s := newSim()
	s.at(180)
	s.recvDatagram(server, 145)
	s.recv(server, 0, 0, contentHandshake, 132)
	s.took(server, 0, hsClientHello, 0, 120)
	s.emit(server, dtls.TraceEvent{Kind: dtls.TraceFlightSent, Flight: 1, Reason: "stateless"})
	s.msg(server, 0, 0, hsHelloVerifyRequest, 0, 35, 1)
	s.datagram(server, 60)
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
	s.at(1_002_150)
	s.recvDatagram(server, 160)
	s.recv(server, 0, 3, contentHandshake, 78)
	s.took(server, 0, hsClientKeyExchange, 2, 66)
	s.recv(server, 0, 4, contentCCS, 1)
	s.emit(server, dtls.TraceEvent{Kind: dtls.TraceEpochChanged, Epoch: 1, Reason: "read"})
	s.recv(server, 1, 0, contentHandshake, 24)
	s.took(server, 1, hsFinished, 3, 12)
	s.at(1_002_300)
	s.flight(server, 3, "")
	s.record(server, 0, 11, contentCCS, 1)
	s.emit(server, dtls.TraceEvent{Kind: dtls.TraceEpochChanged, Epoch: 1, Reason: "write"})
	s.msg(server, 1, 0, hsFinished, 5, 12, 3)
	s.datagram(server, 80)
	s.emit(server, dtls.TraceEvent{Kind: dtls.TraceHandshakeDone, Reason: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"})
	s.at(1_002_790)
	s.recvDatagram(server, 69)
	s.recv(server, 1, 1, contentAppData, 32)
	s.at(1_002_990)
	s.recvDatagram(server, 137)
	s.drop(server, 1, 2, contentAppData, "bad MAC")
	s.at(1_003_050)
	s.record(server, 1, 1, contentAppData, 32)
	s.datagram(server, 69)
	s.at(1_003_580)
	s.recvDatagram(server, 39)
	s.recv(server, 1, 3, contentAlert, 2)
	s.alertIn(server, 1, alertCloseNotify)
	s.emit(server, dtls.TraceEvent{Kind: dtls.TraceAlertSent, Epoch: 1, Alert: alertCloseNotify})
	s.datagram(server, 39)
	return s.events
}

func oneSidedOf(events []dtls.TraceEvent) *Ladder {
	l := NewOneSided()
	for i := range events {
		l.Add(&events[i])
	}
	return l
}

func TestOneSidedTextGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []dtls.TraceEvent
	}{
		{"onesided-client.txt.golden", clientSide()},
		{"onesided-server.txt.golden", serverSide()},
	} {
		got := render(t, oneSidedOf(tc.events).Text)
		golden(t, tc.name, got)
		for i, line := range strings.Split(strings.TrimRight(string(got), "\n"), "\n") {
			if n := len([]rune(line)); n > 100 {
				t.Errorf("%s: line %d is %d columns wide: %s", tc.name, i+1, n, line)
			}
			if strings.Contains(line, "lost") || strings.Contains(line, "×") {
				t.Errorf("%s: line %d calls a record lost, which one end cannot know: %s", tc.name, i+1, line)
			}
		}
	}
}

func TestOneSidedSVGGolden(t *testing.T) {
	got := render(t, oneSidedOf(serverSide()).SVG)
	golden(t, "onesided-server.svg.golden", got)
	if bytes.Contains(got, []byte(">lost<")) {
		t.Error("one-sided SVG draws a lost record")
	}
}

// TestOneSidedArrows checks what the goldens show only as drawings: the
// direction, label and outcome of each arrow.
func TestOneSidedArrows(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []dtls.TraceEvent
		want   []string // "from label outcome"
	}{
		{"client", clientSide(), []string{
			"client F1 ClientHello seq=0 e0 unknown",
			"server HelloVerifyRequest seq=0 e0 received",
			"client F2 ClientHello seq=1 e0 unknown",
			"server ServerHello seq=1 e0 received",
			"server Handshake 612B e0 received",
			"client ↻ F2 ClientHello seq=1 e0 unknown",
			"server Handshake 92B e0 dropped: old message",
			"server Handshake 612B e0 received",
			"server Certificate seq=2 e0 received",
			"server ServerKeyExchange seq=3 e0 received",
			"server ServerHelloDone seq=4 e0 received",
			"client F3 ClientKeyExchange seq=2 e0 unknown",
			"client F3 ChangeCipherSpec e0 unknown",
			"client F3 Finished seq=3 e1 unknown",
			"server ChangeCipherSpec e0 received",
			"server Finished seq=5 e1 received",
			"client ApplicationData 32B e1 unknown",
			"server ApplicationData 32B e1 received",
			"client Alert close notify e1 unknown",
		}},
		{"server", serverSide(), []string{
			"client ClientHello seq=0 e0 received",
			"server F1 HelloVerifyRequest seq=0 e0 unknown",
			"client ClientHello seq=1 e0 received",
			"server F2 ServerHello seq=1 e0 unknown",
			"server F2 Certificate seq=2 [0+600/1100] e0 unknown",
			"server F2 Certificate seq=2 [600+500/1100] e0 unknown",
			"server F2 ServerKeyExchange seq=3 e0 unknown",
			"server F2 ServerHelloDone seq=4 e0 unknown",
			"client Handshake 164B e0 dropped: old message",
			"server ↻ F2 ServerHello seq=1 e0 unknown",
			"server ↻ F2 Certificate seq=2 [0+600/1100] e0 unknown",
			"server ↻ F2 Certificate seq=2 [600+500/1100] e0 unknown",
			"server ↻ F2 ServerKeyExchange seq=3 e0 unknown",
			"server ↻ F2 ServerHelloDone seq=4 e0 unknown",
			"client ClientKeyExchange seq=2 e0 received",
			"client ChangeCipherSpec e0 received",
			"client Finished seq=3 e1 received",
			"server F3 ChangeCipherSpec e0 unknown",
			"server F3 Finished seq=5 e1 unknown",
			"client ApplicationData 32B e1 received",
			"client ApplicationData e1 dropped: bad MAC",
			"server ApplicationData 32B e1 unknown",
			"client Alert close notify e1 received",
			"server Alert close notify e1 unknown",
		}},
	} {
		d := oneSidedOf(tc.events).build()
		if !d.oneSided {
			t.Fatalf("%s: not drawn one-sided", tc.name)
		}
		var got []string
		for _, it := range d.items() {
			if a := it.arrow; a != nil {
				o := [...]string{"lost", "received", "dropped: " + a.dropReason, "unknown"}[a.outcome]
				got = append(got, a.from.String()+" "+a.label()+" "+o)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s arrows:\n%s\nwant:\n%s", tc.name, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

// TestOneSidedWithBothEnds checks that a one-sided Ladder given both ends'
// events draws them as New does, losses and receive times included.
func TestOneSidedWithBothEnds(t *testing.T) {
	events := handshake()
	for _, f := range []func(*Ladder) func(w io.Writer) error{
		func(l *Ladder) func(io.Writer) error { return l.Text },
		func(l *Ladder) func(io.Writer) error { return l.SVG },
	} {
		if got, want := render(t, f(oneSidedOf(events))), render(t, f(ladderOf(events))); !bytes.Equal(got, want) {
			t.Errorf("one-sided Ladder with both ends' events renders differently:\n%s\nwant:\n%s", got, want)
		}
	}
}
