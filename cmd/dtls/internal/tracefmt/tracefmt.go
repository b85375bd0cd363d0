// Package tracefmt renders dtls.TraceEvents for the -v LEVEL flag of the
// server and client subcommands: timestamped lines, filtered by a
// verbosity level modelled on mbedTLS's debug levels, and from level 2 a
// ladder diagram of each handshake, as this end saw it, when it ends.
package tracefmt

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/cmd/dtls/internal/ladder"
)

// Verbosity levels, as in mbedTLS's debug_threshold. A ladder shows the
// messages, flights, retransmissions and drops of a handshake better than
// lines interleaved with other connections' do, so level 2 prints it in
// place of their live lines; level 3 adds those lines as they happen.
const (
	LevelSilent  = 0 // nothing
	LevelSummary = 1 // handshake done/failed (suite, duration), alerts
	LevelLadder  = 2 // + the ladder of each handshake when it ends
	LevelEvents  = 3 // + live lines: handshake messages, flights, retransmissions, timers, epochs, drops
	LevelRecords = 4 // + every record and datagram (datagrams hex-dumped)
	MaxLevel     = LevelRecords

	maxTrackedConn = 4096 // bounds the handshake start times a Printer remembers
	// maxLadders bounds the handshakes whose ladder a Printer collects at
	// once: each spoofed or abandoned ClientHello starts one that never
	// ends. Beyond it the oldest is forgotten.
	maxLadders = 1024
)

// Level returns the lowest verbosity at which events of kind k are shown.
func Level(k dtls.TraceKind) int {
	switch k {
	case dtls.TraceHandshakeDone, dtls.TraceHandshakeFailed,
		dtls.TraceAlertSent, dtls.TraceAlertReceived, dtls.TraceListenerEvent,
		dtls.TracePathValidation, dtls.TracePeerAddressChanged:
		return LevelSummary
	case dtls.TraceHandshakeSent, dtls.TraceHandshakeReceived,
		dtls.TraceFlightSent, dtls.TraceFlightRetransmitted,
		dtls.TraceTimerArmed, dtls.TraceTimerFired,
		dtls.TraceEpochChanged, dtls.TraceRecordDropped, dtls.TraceDatagramDropped,
		dtls.TraceRRCSent, dtls.TraceRRCReceived:
		return LevelEvents
	}
	return LevelRecords
}

// Stamp formats the time elapsed since start as "[  12.345ms]": a fixed
// width column with microsecond resolution, so lines line up.
func Stamp(d time.Duration) string {
	return fmt.Sprintf("[%9.3fms]", float64(d)/float64(time.Millisecond))
}

// Side names the end of the connection an event was seen on: "client", or
// "server[ADDR]" with the peer's address, since one server handles many
// peers and its lines interleave.
func Side(ev *dtls.TraceEvent) string {
	if ev.Client {
		return "client"
	}
	if ev.Remote.IsValid() {
		return "server[" + ev.Remote.String() + "]"
	}
	return "server"
}

// Describe returns the text of an event without timestamp or side, e.g.
// "-> ClientHello seq=0 frag=0+143/143 epoch=0". elapsed is the time since
// the handshake began, used by the done and failed events (0 if unknown).
func Describe(ev *dtls.TraceEvent, elapsed time.Duration) string {
	switch ev.Kind {
	case dtls.TraceHandshakeSent:
		return fmt.Sprintf("-> %s seq=%d frag=%d+%d/%d epoch=%d",
			dtls.HandshakeTypeName(ev.HandshakeType), ev.MessageSeq,
			ev.FragmentOffset, ev.FragmentLength, ev.MessageLength, ev.Epoch)
	case dtls.TraceHandshakeReceived:
		return fmt.Sprintf("<- %s seq=%d len=%d epoch=%d",
			dtls.HandshakeTypeName(ev.HandshakeType), ev.MessageSeq, ev.MessageLength, ev.Epoch)
	case dtls.TraceFlightSent:
		return fmt.Sprintf("flight %d sent", ev.Flight)
	case dtls.TraceFlightRetransmitted:
		return fmt.Sprintf("flight %d retransmitted (%s)", ev.Flight, orUnknown(ev.Reason))
	case dtls.TraceTimerArmed:
		return fmt.Sprintf("timer armed: %v", ev.Timeout)
	case dtls.TraceTimerFired:
		return "timer fired"
	case dtls.TraceEpochChanged:
		return fmt.Sprintf("epoch %d (%s keys)", ev.Epoch, orUnknown(ev.Reason))
	case dtls.TraceRecordDropped:
		return fmt.Sprintf("dropped %s record epoch=%d seq=%d len=%d: %s",
			dtls.ContentTypeName(ev.ContentType), ev.Epoch, ev.Seq, ev.Length, orUnknown(ev.Reason))
	case dtls.TraceRecordSent:
		return fmt.Sprintf("-> record %s epoch=%d seq=%d len=%d",
			dtls.ContentTypeName(ev.ContentType), ev.Epoch, ev.Seq, ev.Length)
	case dtls.TraceRecordReceived:
		return fmt.Sprintf("<- record %s epoch=%d seq=%d len=%d",
			dtls.ContentTypeName(ev.ContentType), ev.Epoch, ev.Seq, ev.Length)
	case dtls.TraceDatagramSent:
		return fmt.Sprintf("-> datagram %d bytes to %s", ev.Length, addr(pathOr(ev)))
	case dtls.TraceDatagramReceived:
		return fmt.Sprintf("<- datagram %d bytes from %s", ev.Length, addr(pathOr(ev)))
	case dtls.TraceRRCSent:
		return fmt.Sprintf("-> %s to %s epoch=%d len=%d", orUnknown(ev.Reason), addr(pathOr(ev)), ev.Epoch, ev.Length)
	case dtls.TraceRRCReceived:
		return fmt.Sprintf("<- %s from %s epoch=%d seq=%d", orUnknown(ev.Reason), addr(pathOr(ev)), ev.Epoch, ev.Seq)
	case dtls.TracePathValidation:
		return fmt.Sprintf("path %s: %s", addr(ev.Path), orUnknown(ev.Reason))
	case dtls.TracePeerAddressChanged:
		return fmt.Sprintf("peer moved %s -> %s (%s)", addr(ev.Remote), addr(ev.Path), orUnknown(ev.Reason))
	case dtls.TraceAlertSent:
		return fmt.Sprintf("-> alert %s (%d)", dtls.AlertName(ev.Alert), ev.Alert)
	case dtls.TraceAlertReceived:
		return fmt.Sprintf("<- alert %s (%d)", dtls.AlertName(ev.Alert), ev.Alert)
	case dtls.TraceHandshakeDone:
		return fmt.Sprintf("handshake done: %s in %s", orUnknown(ev.Reason), duration(elapsed))
	case dtls.TraceHandshakeFailed:
		return fmt.Sprintf("handshake failed after %s: %s", duration(elapsed), orUnknown(ev.Reason))
	case dtls.TraceDatagramDropped:
		return fmt.Sprintf("listener dropped a datagram of %d bytes from %s: %s", ev.Length, addr(ev.Remote), orUnknown(ev.Reason))
	case dtls.TraceListenerEvent:
		return fmt.Sprintf("listener: %s (%s)", orUnknown(ev.Reason), addr(ev.Remote))
	}
	return ev.Kind.String()
}

// pathOr returns the address an event names apart from the peer's (a
// return routability check's new path), else the peer's.
func pathOr(ev *dtls.TraceEvent) netip.AddrPort {
	if ev.Path.IsValid() {
		return ev.Path
	}
	return ev.Remote
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func addr(a netip.AddrPort) string {
	if !a.IsValid() {
		return "?"
	}
	return a.String()
}

// duration rounds to microseconds: finer digits are noise at these scales.
func duration(d time.Duration) string {
	if d <= 0 {
		return "?"
	}
	return d.Round(time.Microsecond).String()
}

type connKey struct {
	client        bool
	local, remote netip.AddrPort
}

// peerKey names one end's connection with one peer. The Listener traces
// its stateless ClientHello/HelloVerifyRequest exchange with the same
// addresses as the Conn that follows, so both land in one ladder.
type peerKey struct {
	client bool
	remote netip.AddrPort
}

// pendingLadder is the ladder of a handshake in progress.
type pendingLadder struct {
	ladder *ladder.Ladder
	begun  time.Time
}

// Printer writes events at or below its level to w, one line each, with a
// timestamp relative to its start time, and from LevelLadder the ladder of
// each handshake when it ends. Its methods are safe for concurrent use: a
// server's connections report from several goroutines, and their lines
// must not interleave mid-line.
type Printer struct {
	mu      sync.Mutex
	w       io.Writer
	level   int
	start   time.Time
	begun   map[connKey]time.Time // first event of each handshake in progress
	ladders map[peerKey]*pendingLadder
	now     func() time.Time // for Printf; tests replace it
	hexBuf  strings.Builder
}

// New returns a Printer writing events of verbosity ≤ level to w, stamped
// relative to start (normally the process start).
func New(w io.Writer, level int, start time.Time) *Printer {
	return &Printer{w: w, level: level, start: start, begun: map[connKey]time.Time{},
		ladders: map[peerKey]*pendingLadder{}, now: time.Now}
}

// Level returns the Printer's verbosity.
func (p *Printer) Level() int { return p.level }

// Tracer returns a function for dtls.Config.Tracer, or nil at level 0 so
// that tracing costs the library nothing.
func (p *Printer) Tracer() func(*dtls.TraceEvent) {
	if p == nil || p.level <= LevelSilent {
		return nil
	}
	return p.Trace
}

// Trace handles one event: it records when each handshake began, so that
// the done and failed lines can report its duration, adds the event to
// its handshake's ladder and prints that when the handshake ends, and
// prints the event if the level asks for it.
func (p *Printer) Trace(ev *dtls.TraceEvent) {
	t := ev.Time
	if t.IsZero() {
		t = p.now()
	}
	p.mu.Lock()
	defer p.mu.Unlock()

	key := connKey{ev.Client, ev.Local, ev.Remote}
	var elapsed time.Duration
	switch ev.Kind {
	case dtls.TraceHandshakeDone, dtls.TraceHandshakeFailed:
		if b, ok := p.begun[key]; ok {
			elapsed = t.Sub(b)
			delete(p.begun, key)
		}
	case dtls.TraceRecordSent, dtls.TraceRecordReceived, dtls.TraceRecordDropped,
		dtls.TraceDatagramSent, dtls.TraceDatagramReceived, dtls.TraceAlertSent, dtls.TraceAlertReceived,
		dtls.TraceRRCSent, dtls.TraceRRCReceived, dtls.TracePathValidation, dtls.TracePeerAddressChanged:
		// Also seen after the handshake: they must not start a new one.
	default:
		if _, ok := p.begun[key]; !ok {
			if len(p.begun) >= maxTrackedConn {
				// Handshakes that never finish (spoofed or abandoned
				// ClientHellos) must not grow the map without bound.
				clear(p.begun)
			}
			p.begun[key] = t
		}
	}

	if p.level >= LevelLadder {
		p.addToLadder(ev, t)
	}
	if Level(ev.Kind) > p.level {
		return
	}
	line := Stamp(t.Sub(p.start)) + " " + Side(ev) + ": " + Describe(ev, elapsed) + "\n"
	if p.level >= LevelRecords && len(ev.Datagram) > 0 &&
		(ev.Kind == dtls.TraceDatagramSent || ev.Kind == dtls.TraceDatagramReceived) {
		p.hexBuf.Reset()
		p.hexBuf.WriteString(line)
		for l := range strings.Lines(hex.Dump(ev.Datagram)) {
			p.hexBuf.WriteString("    ")
			p.hexBuf.WriteString(l)
		}
		line = p.hexBuf.String()
	}
	io.WriteString(p.w, line)
}

// addToLadder adds ev to the ladder of its handshake, and writes that
// ladder when the handshake is done or has failed. A ladder begins with
// the first event of a handshake: a ClientHello sent, or received in a
// datagram of its own (on a server, before any Conn exists), or flight 1
// going out. Other events of a connection with no ladder in progress come
// after its handshake, and are left out.
func (p *Printer) addToLadder(ev *dtls.TraceEvent, t time.Time) {
	k := peerKey{ev.Client, ev.Remote}
	pl := p.ladders[k]
	if pl == nil {
		if !beginsHandshake(ev) {
			return
		}
		if len(p.ladders) >= maxLadders {
			p.forgetOldestLadder()
		}
		pl = &pendingLadder{ladder.NewOneSided(), t}
		p.ladders[k] = pl
	}
	pl.ladder.Add(ev)
	if ev.Kind != dtls.TraceHandshakeDone && ev.Kind != dtls.TraceHandshakeFailed {
		return
	}
	delete(p.ladders, k)
	head := Side(ev) + ": ladder of the handshake"
	if ev.Client {
		head += " with " + addr(ev.Remote)
	}
	var text strings.Builder
	pl.ladder.Text(&text)
	var b strings.Builder
	b.WriteString(Stamp(t.Sub(p.start)) + " " + head + "\n")
	for l := range strings.Lines(text.String()) {
		b.WriteString(ladderIndent + l)
	}
	io.WriteString(p.w, b.String())
}

// ladderIndent sets a ladder's lines apart from the timestamped ones.
const ladderIndent = "  "

// beginsHandshake reports whether ev starts a handshake: see addToLadder.
func beginsHandshake(ev *dtls.TraceEvent) bool {
	const (
		recordHeaderLen  = 13 // RFC 6347 §4.1
		contentHandshake = 22
		typeClientHello  = 1
	)
	switch ev.Kind {
	case dtls.TraceFlightSent:
		return ev.Flight == 1
	case dtls.TraceHandshakeSent:
		return ev.HandshakeType == typeClientHello
	case dtls.TraceDatagramReceived:
		// A plaintext handshake record of epoch 0 holding a ClientHello.
		d := ev.Datagram
		return len(d) > recordHeaderLen && d[0] == contentHandshake && d[3] == 0 && d[4] == 0 &&
			d[recordHeaderLen] == typeClientHello
	}
	return false
}

// forgetOldestLadder drops the ladder of the handshake in progress that
// began first.
func (p *Printer) forgetOldestLadder() {
	var oldest peerKey
	var at time.Time
	for k, pl := range p.ladders {
		if at.IsZero() || pl.begun.Before(at) {
			oldest, at = k, pl.begun
		}
	}
	delete(p.ladders, oldest)
}

// Printf writes a timestamped line of the program's own if the Printer's
// level is at least level, serialized with the trace lines.
func (p *Printer) Printf(level int, format string, args ...any) {
	if p == nil || level > p.level {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := strings.TrimSuffix(fmt.Sprintf(format, args...), "\n")
	io.WriteString(p.w, Stamp(p.now().Sub(p.start))+" "+msg+"\n")
}
