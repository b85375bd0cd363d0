package dtls

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingHandler keeps the records it is handed, and the levels it was
// asked about.
type recordingHandler struct {
	level slog.Level

	mu      sync.Mutex
	records []slog.Record
	asked   int
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked++
	return l >= h.level
}

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) find(msg string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.records {
		if r.Message == msg {
			out = append(out, r)
		}
	}
	return out
}

func recordAttrs(r slog.Record) map[string]string {
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	return m
}

// Each kind logs at its level with the fields trace.go documents for it.
func TestSlogTracerEvents(t *testing.T) {
	at := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	local, remote := netip.MustParseAddrPort("127.0.0.1:5684"), netip.MustParseAddrPort("127.0.0.1:40000")
	for _, tc := range []struct {
		ev   TraceEvent
		want string
	}{
		{TraceEvent{Kind: TraceHandshakeDone, Reason: "TLS_PSK_WITH_AES_128_CCM_8"},
			`level=INFO msg="handshake done" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 suite=TLS_PSK_WITH_AES_128_CCM_8`},
		{TraceEvent{Kind: TraceHandshakeFailed, Client: true, Reason: "dtls: peer sent alert: error decrypting message"},
			`level=WARN msg="handshake failed" side=client local=127.0.0.1:5684 remote=127.0.0.1:40000 error="dtls: peer sent alert: error decrypting message"`},
		{TraceEvent{Kind: TraceAlertSent, Alert: 0},
			`level=INFO msg="alert sent" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 alert="close notify"`},
		{TraceEvent{Kind: TraceAlertReceived, Alert: 100},
			`level=INFO msg="alert received" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 alert="no renegotiation"`},
		{TraceEvent{Kind: TraceAlertReceived, Alert: 20},
			`level=WARN msg="alert received" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 alert="bad record MAC"`},
		{TraceEvent{Kind: TraceListenerEvent, Reason: "idle timeout"},
			`level=INFO msg="listener event" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 reason="idle timeout"`},
		{TraceEvent{Kind: TraceDatagramReceived, Length: 77},
			`level=DEBUG msg="datagram received" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 length=77`},
		{TraceEvent{Kind: TraceRecordSent, Epoch: 1, Seq: 9, ContentType: 23, Length: 40},
			`level=DEBUG msg="record sent" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 type=ApplicationData epoch=1 seq=9 length=40`},
		{TraceEvent{Kind: TraceRecordDropped, Epoch: 1, Seq: 3, ContentType: 23, Reason: "replayed"},
			`level=DEBUG msg="record dropped" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 reason=replayed type=ApplicationData epoch=1 seq=3`},
		{TraceEvent{Kind: TraceDatagramDropped, Length: 12, Reason: "too short"},
			`level=DEBUG msg="datagram dropped" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 reason="too short" length=12`},
		{TraceEvent{Kind: TraceHandshakeSent, Client: true, HandshakeType: 1, MessageSeq: 1, Flight: 2, FragmentOffset: 0, FragmentLength: 100, MessageLength: 180},
			`level=DEBUG msg="handshake sent" side=client local=127.0.0.1:5684 remote=127.0.0.1:40000 message=ClientHello message_seq=1 epoch=0 flight=2 fragment_offset=0 fragment_length=100 length=180`},
		{TraceEvent{Kind: TraceHandshakeReceived, HandshakeType: 20, MessageSeq: 5, Epoch: 1, MessageLength: 12},
			`level=DEBUG msg="handshake received" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 message=Finished message_seq=5 epoch=1 length=12`},
		{TraceEvent{Kind: TraceFlightRetransmitted, Flight: 3, Reason: "timer"},
			`level=DEBUG msg="flight retransmitted" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 flight=3 reason=timer`},
		{TraceEvent{Kind: TraceTimerArmed, Timeout: time.Second},
			`level=DEBUG msg="timer armed" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 timeout=1s`},
		{TraceEvent{Kind: TraceEpochChanged, Epoch: 1, Reason: "write"},
			`level=DEBUG msg="epoch changed" side=server local=127.0.0.1:5684 remote=127.0.0.1:40000 epoch=1 direction=write`},
	} {
		var buf bytes.Buffer
		tr := NewSlogTracer(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
			Level: slog.LevelDebug,
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey && len(groups) == 0 {
					if !a.Value.Time().Equal(at) {
						t.Errorf("%v: record time %v, want the event's %v", tc.ev.Kind, a.Value.Time(), at)
					}
					return slog.Attr{}
				}
				return a
			},
		})))
		ev := tc.ev
		ev.Time, ev.Local, ev.Remote = at, local, remote
		tr(&ev)
		if got := strings.TrimSuffix(buf.String(), "\n"); got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.ev.Kind, got, tc.want)
		}
	}
}

// A handshake logged at Info: both sides' "handshake done" and the
// close_notify, and nothing at Debug reaches the handler. At Debug, the
// datagrams and records do.
func TestSlogTracerHandshake(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			h := &recordingHandler{level: level}
			tr := NewSlogTracer(slog.New(h))
			scfg, ccfg := pskConfig(), pskConfig()
			scfg.Tracer, ccfg.Tracer = tr, tr
			c, s := slogPair(t, scfg, ccfg)
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 16)
			if _, err := s.Read(buf); err != nil {
				t.Fatal(err)
			}
			c.Close()
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			s.Read(buf) // the close_notify
			s.Close()

			done := h.find("handshake done")
			sides := map[string]bool{}
			for _, r := range done {
				a := recordAttrs(r)
				if r.Level != slog.LevelInfo || a["suite"] == "" {
					t.Errorf("handshake done: level %v attrs %v", r.Level, a)
				}
				sides[a["side"]] = true
			}
			if !sides["client"] || !sides["server"] {
				t.Errorf("handshake done logged for %v, want both sides", sides)
			}
			if len(h.find("alert sent")) == 0 {
				t.Error("the close_notify was not logged")
			}
			debug := len(h.find("datagram sent")) + len(h.find("record received"))
			if level == slog.LevelInfo {
				h.mu.Lock()
				for _, r := range h.records {
					if r.Level < slog.LevelInfo {
						t.Errorf("a %v record reached an Info handler: %s", r.Level, r.Message)
					}
				}
				h.mu.Unlock()
			} else if debug == 0 {
				t.Error("no datagram or record events at Debug")
			}
		})
	}
}

// A failed handshake logs a Warn: the two sides' keys differ, so the
// server discards the client's Finished (it does not authenticate, RFC
// 6347 §4.1.2.7) and the client gives up.
func TestSlogTracerFailure(t *testing.T) {
	h := &recordingHandler{level: slog.LevelInfo}
	scfg, ccfg := pskConfig(), pskConfig()
	ccfg.PSK = func([]byte) ([]byte, error) { return []byte("another key 1234"), nil }
	ccfg.HandshakeTimeout = 2 * time.Second
	ccfg.Tracer = NewSlogTracer(slog.New(h))
	l, err := Listen("udp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if c, err := Dial("udp", l.Addr().String(), ccfg); err == nil {
		c.Close()
		t.Fatal("a handshake with the wrong key succeeded")
	}
	f := h.find("handshake failed")
	if len(f) == 0 {
		t.Fatal("no handshake failed record")
	}
	if a := recordAttrs(f[0]); f[0].Level != slog.LevelWarn || a["side"] != "client" || a["error"] == "" {
		t.Errorf("handshake failed: level %v attrs %v", f[0].Level, a)
	}
}

// A nil logger logs to slog.Default().
func TestSlogTracerDefault(t *testing.T) {
	h := &recordingHandler{level: slog.LevelInfo}
	old := slog.Default()
	slog.SetDefault(slog.New(h))
	defer slog.SetDefault(old)
	NewSlogTracer(nil)(&TraceEvent{Kind: TraceHandshakeDone, Reason: "x"})
	NewSlogTracer(nil)(&TraceEvent{Kind: TraceDatagramSent})
	if n := len(h.find("handshake done")); n != 1 || len(h.records) != 1 {
		t.Errorf("default logger got %d records, want the one at Info", len(h.records))
	}
}

// slogPair returns a client and a server Conn over loopback, handshaken.
func slogPair(t *testing.T, scfg, ccfg *Config) (client, server *Conn) {
	t.Helper()
	l, err := Listen("udp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c.(*Conn)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialContext(ctx, "udp", l.Addr().String(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case s, ok := <-accepted:
		if !ok {
			t.Fatal("Accept failed")
		}
		t.Cleanup(func() { s.Close() })
		return c, s
	case <-ctx.Done():
		t.Fatal("no connection accepted")
	}
	return nil, nil
}
