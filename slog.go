package dtls

import (
	"context"
	"log/slog"
	"time"
)

// NewSlogTracer returns a Config.Tracer that logs each TraceEvent to l (to
// slog.Default() if l is nil) as one record, at the event's time, whose
// message is the event's kind ("handshake done") and whose attributes are
// side ("client" or "server"), local, remote and the fields the kind sets.
//
// Levels:
//
//   - Info: a handshake done (with its suite), a close_notify,
//     no_renegotiation or user_canceled alert, a Listener event (an idle
//     timeout, an eviction, a peer that restarted).
//   - Warn: a handshake failed (with its error), any other alert.
//   - Debug: everything else: datagrams, records, handshake messages,
//     flights, timers, epochs, and discarded records and datagrams. Drops
//     stay at Debug on purpose: anyone can send garbage, and an off-path
//     sender must not be able to fill a server's log.
//
// A record is built only when l's handler is enabled for its level, so a
// logger at Info costs a few comparisons per datagram. Wrap l with
// l.With or l.WithGroup("dtls") to add context or a group.
func NewSlogTracer(l *slog.Logger) func(*TraceEvent) {
	return func(ev *TraceEvent) {
		logger := l
		if logger == nil {
			logger = slog.Default()
		}
		level := slogLevel(ev)
		h := logger.Handler()
		ctx := context.Background()
		if !h.Enabled(ctx, level) {
			return
		}
		t := ev.Time
		if t.IsZero() {
			t = time.Now()
		}
		r := slog.NewRecord(t, level, ev.Kind.String(), 0)
		side := "server"
		if ev.Client {
			side = "client"
		}
		r.AddAttrs(slog.String("side", side))
		if ev.Local.IsValid() {
			r.AddAttrs(slog.String("local", ev.Local.String()))
		}
		if ev.Remote.IsValid() {
			r.AddAttrs(slog.String("remote", ev.Remote.String()))
		}
		addSlogAttrs(&r, ev)
		h.Handle(ctx, r) // a Tracer has no one to return an error to
	}
}

func slogLevel(ev *TraceEvent) slog.Level {
	switch ev.Kind {
	case TraceHandshakeDone, TraceListenerEvent:
		return slog.LevelInfo
	case TraceHandshakeFailed:
		return slog.LevelWarn
	case TraceAlertSent, TraceAlertReceived:
		switch alert(ev.Alert) {
		case alertCloseNotify, alertNoRenegotiation, alertUserCanceled:
			return slog.LevelInfo // warnings that end or refuse nothing unexpected
		}
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// addSlogAttrs adds the fields that ev's kind documents (trace.go).
func addSlogAttrs(r *slog.Record, ev *TraceEvent) {
	switch ev.Kind {
	case TraceDatagramSent, TraceDatagramReceived:
		r.AddAttrs(slog.Int("length", ev.Length))
	case TraceRecordSent, TraceRecordReceived:
		r.AddAttrs(slog.String("type", ContentTypeName(ev.ContentType)), slog.Int("epoch", int(ev.Epoch)),
			slog.Uint64("seq", ev.Seq), slog.Int("length", ev.Length))
	case TraceRecordDropped:
		r.AddAttrs(slog.String("reason", ev.Reason), slog.String("type", ContentTypeName(ev.ContentType)),
			slog.Int("epoch", int(ev.Epoch)), slog.Uint64("seq", ev.Seq))
	case TraceDatagramDropped:
		r.AddAttrs(slog.String("reason", ev.Reason), slog.Int("length", ev.Length))
	case TraceHandshakeSent:
		r.AddAttrs(slog.String("message", HandshakeTypeName(ev.HandshakeType)), slog.Int("message_seq", int(ev.MessageSeq)),
			slog.Int("epoch", int(ev.Epoch)), slog.Int("flight", ev.Flight), slog.Uint64("fragment_offset", uint64(ev.FragmentOffset)), slog.Uint64("fragment_length", uint64(ev.FragmentLength)),
			slog.Uint64("length", uint64(ev.MessageLength)))
	case TraceHandshakeReceived:
		r.AddAttrs(slog.String("message", HandshakeTypeName(ev.HandshakeType)), slog.Int("message_seq", int(ev.MessageSeq)),
			slog.Int("epoch", int(ev.Epoch)), slog.Uint64("length", uint64(ev.MessageLength)))
	case TraceFlightSent:
		r.AddAttrs(slog.Int("flight", ev.Flight))
	case TraceFlightRetransmitted:
		r.AddAttrs(slog.Int("flight", ev.Flight), slog.String("reason", ev.Reason))
	case TraceTimerArmed:
		r.AddAttrs(slog.Duration("timeout", ev.Timeout))
	case TraceEpochChanged:
		r.AddAttrs(slog.Int("epoch", int(ev.Epoch)), slog.String("direction", ev.Reason))
	case TraceAlertSent, TraceAlertReceived:
		r.AddAttrs(slog.String("alert", AlertName(ev.Alert)))
	case TraceHandshakeDone:
		r.AddAttrs(slog.String("suite", ev.Reason))
	case TraceHandshakeFailed:
		r.AddAttrs(slog.String("error", ev.Reason))
	case TraceListenerEvent:
		r.AddAttrs(slog.String("reason", ev.Reason))
	}
}
