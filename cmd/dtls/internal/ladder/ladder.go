// Package ladder draws a ladder (sequence) diagram of a DTLS handshake
// from the TraceEvents of both its ends: one column per side, an arrow per
// record from the sender to the receiver, with flights, handshake
// fragments, epochs, retransmissions, losses, drops and timers.
//
// Arrows are built from the sender's TraceRecordSent events, labelled by
// the TraceHandshakeSent and TraceAlertSent events that follow them, and
// paired with the receiver's TraceRecordReceived or TraceRecordDropped
// event of the same epoch and sequence number. A record that no event
// shows arriving is drawn as lost. A Ladder describes one client-server
// pair: give it the events of one connection's two ends.
//
// A Ladder made by NewOneSided draws what one end saw, from the events of
// its own Tracer (the -v rendering of `dtls server` and `dtls client`).
// The records it sent reach the peer's lifeline with no receive time and
// no verdict: whether they arrived is unknown. The records it received
// become arrows from the peer, drawn when they arrived and labelled by the
// complete handshake messages (TraceHandshakeReceived) or the alert
// (TraceAlertReceived) that they yielded; a record that completed no
// message, such as a first fragment, is labelled by its content type and
// size. Dropped records end in a ✗ with their reason.
package ladder

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dtls-go/dtls"
)

// alertCloseNotify is the close_notify alert (RFC 5246 §7.2.1).
const alertCloseNotify = 0

// Record content types (RFC 6347 §4.1).
const (
	contentCCS       = 20
	contentAlert     = 21
	contentHandshake = 22
	contentAppData   = 23
	contentACK       = 26 // DTLS 1.3 (RFC 9147 §7)
	contentRRC       = 27 // return_routability_check, RFC 9853
)

// maxEvents bounds the events a Ladder keeps, so a long-lived connection
// traced by mistake cannot grow it without end; later events are counted
// and reported as omitted.
const maxEvents = 100_000

// Ladder collects TraceEvents and renders them. The zero value is not
// ready; use New or NewOneSided.
type Ladder struct {
	mu       sync.Mutex
	events   []dtls.TraceEvent
	labels   map[int]string // by index in events: labels given with AddLabeled
	limit    int            // events kept; 0 means maxEvents
	omitted  int
	oneSided bool
}

// New returns an empty Ladder for the events of both ends of a connection.
func New() *Ladder { return &Ladder{} }

// NewLimited is New keeping at most limit events (at most maxEvents), for
// a program that holds many ladders at once: each event takes about 200
// bytes.
func NewLimited(limit int) *Ladder { return &Ladder{limit: min(max(limit, 1), maxEvents)} }

// NewOneSided returns an empty Ladder for the events of one end of a
// connection, as its own Tracer reports them. It is explicit rather than
// guessed from the events, so that a two-sided ladder whose peer saw
// nothing at all (every datagram lost) still draws its arrows as lost.
// Should events of both ends reach it anyway, it draws them two-sided.
func NewOneSided() *Ladder { return &Ladder{oneSided: true} }

// Add records a copy of ev (without its Datagram). It is safe for
// concurrent use, so that Add may be called from both ends' Tracers.
func (l *Ladder) Add(ev *dtls.TraceEvent) {
	e := *ev
	e.Datagram = nil
	l.mu.Lock()
	defer l.mu.Unlock()
	limit := l.limit
	if limit == 0 {
		limit = maxEvents
	}
	if len(l.events) >= limit {
		l.omitted++
		return
	}
	l.events = append(l.events, e)
}

// AddLabeled is Add for a TraceRecordSent event whose record the caller
// describes better than the events that follow it can: a DTLS 1.3 ACK
// with the record numbers it lists, an encrypted record that could not
// be opened. The arrow's label is label in place of its content and
// epoch; the flight number and the retransmission mark still come from
// the events.
func (l *Ladder) AddLabeled(ev *dtls.TraceEvent, label string) {
	l.mu.Lock()
	limit := l.limit
	if limit == 0 {
		limit = maxEvents
	}
	if len(l.events) < limit && label != "" {
		if l.labels == nil {
			l.labels = map[int]string{}
		}
		l.labels[len(l.events)] = label
	}
	l.mu.Unlock()
	l.Add(ev)
}

// side indexes the two columns.
type side int

const (
	client side = iota
	server
)

func sideOf(ev *dtls.TraceEvent) side {
	if ev.Client {
		return client
	}
	return server
}

func (s side) String() string { return [...]string{"client", "server"}[s] }

// outcome is what became of an arrow's record at the receiver.
type outcome int

const (
	lost outcome = iota
	received
	dropped
	unknown // sent, and the one-sided ladder cannot know what became of it
	// unread: no receipt, but the receiver had closed its end (sent its
	// close_notify) before the record was sent, so it no longer read:
	// not a loss. A server's answer to the client's close_notify is one.
	unread
)

// stopsShort reports whether an arrow is drawn short of the receiver: no
// event shows the record arriving.
func (a *arrow) stopsShort() bool { return a.outcome == lost || a.outcome == unread }

// arrow is one record from one side to the other.
type arrow struct {
	order      int // index of its first event, for drawing order
	from       side
	sent       time.Duration // since the first event
	recv       time.Duration // when outcome != lost
	recvOrder  int
	outcome    outcome
	dropReason string

	contentType uint8
	epoch       uint64
	seq         uint64
	hasSeq      bool // the sender traced the record itself, not only its content
	length      int
	flight      int
	retransmit  string // the reason, for a retransmitted flight's records
	labels      []string
	custom      string // the label given with AddLabeled, in place of labels and epoch
}

// note is an event drawn on one side only: a timer, a stray drop, the end.
type note struct {
	order int
	at    time.Duration
	side  side
	text  string
	bad   bool // a failure or drop, drawn in red
}

// diagram is the ladder laid out in time order.
type diagram struct {
	arrows   []*arrow
	notes    []note
	addr     [2]string // each side's address, when known
	omitted  int
	hasEvent bool
	oneSided bool // drawn from the events of local alone
	local    side // the side whose events a one-sided diagram shows
}

// snapshot returns the events in time order (stable: equal times keep
// their order of arrival), each with its AddLabeled label or "".
func (l *Ladder) snapshot() ([]dtls.TraceEvent, []string, int) {
	l.mu.Lock()
	events, omitted := slices.Clone(l.events), l.omitted
	labels := make([]string, len(events))
	for i, s := range l.labels {
		labels[i] = s
	}
	l.mu.Unlock()
	// Events of the two sides reach Add in nearly, but not always, time
	// order.
	idx := make([]int, len(events))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return events[a].Time.Compare(events[b].Time) })
	sorted, sortedLabels := make([]dtls.TraceEvent, len(events)), make([]string, len(events))
	for i, j := range idx {
		sorted[i], sortedLabels[i] = events[j], labels[j]
	}
	return sorted, sortedLabels, omitted
}

// build pairs the events into arrows and notes.
func (l *Ladder) build() *diagram {
	events, custom, omitted := l.snapshot()
	d := &diagram{omitted: omitted, hasEvent: len(events) > 0}
	if len(events) == 0 {
		return d
	}
	start := events[0].Time
	d.local = sideOf(&events[0])
	d.oneSided = l.oneSided && !slices.ContainsFunc(events, func(e dtls.TraceEvent) bool { return sideOf(&e) != d.local })
	type sideState struct {
		flight     int
		retransmit string
		last       *arrow // the last record sent, for the events that describe it
	}
	var st [2]sideState
	type key struct {
		from  side
		epoch uint64
		seq   uint64
	}
	unmatched := map[key][]*arrow{} // sent records awaiting their receipt
	// closedAt is when each side sent its close_notify, after which it
	// reads nothing more; closed says whether it did.
	var closedAt [2]time.Duration
	var closed [2]bool
	var noSeq [2][]*arrow // arrows traced without a record (awaiting by content type)

	for i := range events {
		ev := &events[i]
		s := sideOf(ev)
		at := ev.Time.Sub(start)
		if d.addr[s] == "" && ev.Local.IsValid() {
			d.addr[s] = ev.Local.String()
		}
		if d.addr[1-s] == "" && ev.Remote.IsValid() {
			d.addr[1-s] = ev.Remote.String()
		}
		ss := &st[s]
		newArrow := func(ct uint8) *arrow {
			a := &arrow{order: i, from: s, sent: at, contentType: ct, epoch: ev.Epoch, flight: ss.flight}
			if ct == contentHandshake || ct == contentCCS {
				a.retransmit = ss.retransmit
			}
			d.arrows = append(d.arrows, a)
			return a
		}
		switch ev.Kind {
		case dtls.TraceFlightSent:
			ss.flight, ss.retransmit = ev.Flight, ""
		case dtls.TraceFlightRetransmitted:
			ss.flight, ss.retransmit = ev.Flight, ev.Reason
			if ss.retransmit == "" {
				ss.retransmit = "retransmitted"
			}
			d.notes = append(d.notes, note{i, at, s, fmt.Sprintf("↻ flight %d again (%s)", ev.Flight, ss.retransmit), false})
		case dtls.TraceRecordSent:
			// An alert traced before its record (as the library does)
			// gets its sequence number here.
			if a := ss.last; ev.ContentType == contentAlert && a != nil && !a.hasSeq && a.contentType == contentAlert && a.epoch == ev.Epoch {
				a.seq, a.hasSeq, a.length = ev.Seq, true, ev.Length
				if custom[i] != "" {
					a.custom = custom[i]
				}
				noSeq[s] = slices.DeleteFunc(noSeq[s], func(x *arrow) bool { return x == a })
				unmatched[key{s, a.epoch, a.seq}] = append(unmatched[key{s, a.epoch, a.seq}], a)
				break
			}
			a := newArrow(ev.ContentType)
			a.seq, a.hasSeq, a.length, a.custom = ev.Seq, true, ev.Length, custom[i]
			unmatched[key{s, a.epoch, a.seq}] = append(unmatched[key{s, a.epoch, a.seq}], a)
			ss.last = a
		case dtls.TraceHandshakeSent:
			a := ss.last
			// Several fragments may share a record; a fragment traced
			// without its record is drawn alone.
			if a == nil || a.contentType != contentHandshake || a.epoch != ev.Epoch || !a.hasSeq && len(a.labels) > 0 {
				a = newArrow(contentHandshake)
				noSeq[s] = append(noSeq[s], a)
				ss.last = a
			}
			if ev.Flight != 0 {
				a.flight = ev.Flight
			}
			a.labels = append(a.labels, handshakeLabel(ev))
		case dtls.TraceRRCSent:
			// A return routability check message (RFC 9853) names its
			// record, and the address it went to when that is new.
			if a := ss.last; a != nil && a.contentType == contentRRC && len(a.labels) == 0 {
				label := ev.Reason
				if ev.Path.IsValid() {
					label += " to " + ev.Path.String()
				}
				a.labels = append(a.labels, label)
			}
		case dtls.TraceAlertSent:
			a := ss.last
			if a == nil || a.contentType != contentAlert || len(a.labels) > 0 || a.epoch != ev.Epoch {
				a = newArrow(contentAlert)
				noSeq[s] = append(noSeq[s], a)
				ss.last = a
			}
			a.labels = append(a.labels, "Alert "+dtls.AlertName(ev.Alert))
			if ev.Alert == alertCloseNotify && !closed[s] {
				closed[s], closedAt[s] = true, at
			}
		case dtls.TraceRecordReceived, dtls.TraceRecordDropped:
			if d.oneSided {
				d.peerRecord(ev, i, at)
				break
			}
			from := 1 - s
			k := key{from, ev.Epoch, ev.Seq}
			var a *arrow
			if q := unmatched[k]; len(q) > 0 {
				a = q[0]
				unmatched[k] = q[1:]
			} else if i := slices.IndexFunc(noSeq[from], func(x *arrow) bool {
				return x.contentType == ev.ContentType && x.epoch == ev.Epoch
			}); i >= 0 {
				a = noSeq[from][i]
				noSeq[from] = slices.Delete(noSeq[from], i, i+1)
			} else if ev.Kind == dtls.TraceRecordDropped {
				// A handshake record that authenticated and was then
				// refused by the handshake transport, or a record that
				// was never seen sent.
				if a = lastReceived(d.arrows, from, ev.Epoch, ev.Seq); a == nil {
					d.notes = append(d.notes, note{i, at, s, fmt.Sprintf("dropped %s e%d s%d: %s",
						dtls.ContentTypeName(ev.ContentType), ev.Epoch, ev.Seq, ev.Reason), true})
					break
				}
			} else {
				d.notes = append(d.notes, note{i, at, s, fmt.Sprintf("received unknown %s e%d s%d",
					dtls.ContentTypeName(ev.ContentType), ev.Epoch, ev.Seq), false})
				break
			}
			if a.outcome == lost {
				a.recv, a.recvOrder = at, i
			}
			if ev.Kind == dtls.TraceRecordDropped {
				a.outcome, a.dropReason = dropped, ev.Reason
			} else if a.outcome == lost {
				a.outcome = received
			}
		case dtls.TraceHandshakeReceived:
			// Two-sided, the sender's events label the arrow.
			if d.oneSided {
				d.peerHandshake(ev, i, at)
			}
		case dtls.TraceAlertReceived:
			if d.oneSided {
				d.peerAlert(ev, i, at)
			}
		case dtls.TraceTimerFired:
			d.notes = append(d.notes, note{i, at, s, "timer fired", false})
		case dtls.TraceCIDChanged:
			// A DTLS 1.3 CID update (RFC 9147 §9) that took effect.
			d.notes = append(d.notes, note{i, at, s, "CID: " + ev.Reason, false})
		case dtls.TraceHandshakeDone:
			text := "handshake done"
			if ev.Reason != "" {
				text = "done: " + ev.Reason
			}
			d.notes = append(d.notes, note{i, at, s, text, false})
		case dtls.TraceHandshakeFailed:
			d.notes = append(d.notes, note{i, at, s, "handshake failed: " + ev.Reason, true})
		}
	}
	for _, a := range d.arrows {
		if d.oneSided && a.from == d.local && a.outcome == lost {
			a.outcome = unknown
		}
		if to := 1 - a.from; a.outcome == lost && closed[to] && a.sent >= closedAt[to] {
			a.outcome = unread
		}
		if len(a.labels) == 0 {
			if d.oneSided && a.from != d.local {
				a.labels = []string{peerRecordLabel(a)}
			} else {
				a.labels = []string{recordLabel(a)}
			}
		}
	}
	return d
}

// peerArrow adds an arrow for a record from the peer that a one-sided
// diagram learns of only on its arrival, at.
func (d *diagram) peerArrow(ev *dtls.TraceEvent, order int, at time.Duration, ct uint8) *arrow {
	a := &arrow{order: order, from: 1 - d.local, sent: at, recv: at, recvOrder: order,
		outcome: received, contentType: ct, epoch: ev.Epoch}
	d.arrows = append(d.arrows, a)
	return a
}

// peerRecord draws a record received from the peer, or marks its drop:
// on the arrow of the same record if it authenticated first (a handshake
// record refused by the transport), else on an arrow of its own.
func (d *diagram) peerRecord(ev *dtls.TraceEvent, order int, at time.Duration) {
	if ev.Kind == dtls.TraceRecordDropped {
		a := lastReceived(d.arrows, 1-d.local, ev.Epoch, ev.Seq)
		if a == nil {
			a = d.peerArrow(ev, order, at, ev.ContentType)
			a.seq, a.hasSeq, a.length = ev.Seq, true, ev.Length
		}
		a.outcome, a.dropReason = dropped, ev.Reason
		return
	}
	a := d.peerArrow(ev, order, at, ev.ContentType)
	a.seq, a.hasSeq, a.length = ev.Seq, true, ev.Length
}

// peerHandshake labels, with a complete handshake message, the last
// handshake record of its epoch received from the peer: the library takes
// a message as soon as the record that completes it is read, so that
// record is its last fragment (or, for a message that arrived early and
// waited for its predecessor, the record that let it through).
func (d *diagram) peerHandshake(ev *dtls.TraceEvent, order int, at time.Duration) {
	a := d.lastPeerRecord(contentHandshake, ev.Epoch)
	if a == nil {
		// Its record was not traced.
		a = d.peerArrow(ev, order, at, contentHandshake)
	}
	// The event is of the whole message, whatever its fragments were.
	a.labels = append(a.labels, fmt.Sprintf("%s seq=%d", dtls.HandshakeTypeName(ev.HandshakeType), ev.MessageSeq))
}

// peerAlert labels the alert record just received from the peer.
func (d *diagram) peerAlert(ev *dtls.TraceEvent, order int, at time.Duration) {
	a := d.lastPeerRecord(contentAlert, ev.Epoch)
	if a == nil || len(a.labels) > 0 {
		a = d.peerArrow(ev, order, at, contentAlert)
	}
	a.labels = append(a.labels, "Alert "+dtls.AlertName(ev.Alert))
}

// lastPeerRecord finds the latest record of content type ct and the given
// epoch that arrived from the peer and was not dropped.
func (d *diagram) lastPeerRecord(ct uint8, epoch uint64) *arrow {
	for i := len(d.arrows) - 1; i >= 0; i-- {
		a := d.arrows[i]
		if a.from != d.local && a.contentType == ct && a.epoch == epoch && a.outcome == received {
			return a
		}
	}
	return nil
}

// lastReceived finds the arrow of a record already received, which the
// handshake transport may then refuse.
func lastReceived(arrows []*arrow, from side, epoch uint64, seq uint64) *arrow {
	for i := len(arrows) - 1; i >= 0; i-- {
		a := arrows[i]
		if a.from == from && a.hasSeq && a.epoch == epoch && a.seq == seq && a.outcome == received {
			return a
		}
	}
	return nil
}

func handshakeLabel(ev *dtls.TraceEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s seq=%d", dtls.HandshakeTypeName(ev.HandshakeType), ev.MessageSeq)
	if ev.FragmentOffset != 0 || ev.FragmentLength != ev.MessageLength {
		fmt.Fprintf(&b, " [%d+%d/%d]", ev.FragmentOffset, ev.FragmentLength, ev.MessageLength)
	}
	return b.String()
}

// peerRecordLabel names a record received from the peer that yielded no
// complete message: its content type and size are all the events tell.
func peerRecordLabel(a *arrow) string {
	name := dtls.ContentTypeName(a.contentType)
	if a.length > 0 && a.contentType != contentCCS {
		name += fmt.Sprintf(" %dB", a.length)
	}
	return name
}

func recordLabel(a *arrow) string {
	switch a.contentType {
	case contentCCS:
		return "ChangeCipherSpec"
	case contentAppData:
		return fmt.Sprintf("ApplicationData %dB", a.length)
	case contentAlert:
		return "Alert (encrypted)"
	}
	return dtls.ContentTypeName(a.contentType)
}

// label is the arrow's text: its content, epoch and flight.
func (a *arrow) label() string {
	s := strings.Join(a.labels, ", ") + fmt.Sprintf(" e%d", a.epoch)
	if a.custom != "" {
		s = a.custom
	}
	if a.flight != 0 && (a.contentType == contentHandshake || a.contentType == contentCCS) {
		s = fmt.Sprintf("F%d %s", a.flight, s)
	}
	if a.retransmit != "" {
		s = "↻ " + s
	}
	return s
}

// outcomeText describes the receipt, or its absence: the receive time of
// a two-sided diagram. A one-sided one knows only of drops, at the time
// its left column shows already.
func (a *arrow) outcomeText(oneSided bool) string {
	if oneSided {
		if a.outcome == dropped {
			return "dropped: " + a.dropReason
		}
		return ""
	}
	var s string
	switch a.outcome {
	case lost:
		s = "lost"
	case unread:
		s = "not read: " + (1 - a.from).String() + " closed"
	case received:
		s = fmt.Sprintf("%d", a.recv.Microseconds())
	case dropped:
		s = fmt.Sprintf("%d dropped: %s", a.recv.Microseconds(), a.dropReason)
	}
	return s
}

// class names the kind of an arrow for colours.
func (a *arrow) class() string {
	switch {
	case a.retransmit != "":
		return "retx"
	case a.contentType == contentAlert:
		return "alert"
	case a.contentType == contentAppData:
		return "data"
	case a.contentType == contentCCS:
		return "ccs"
	case a.contentType == contentACK:
		return "ack"
	}
	return "hs"
}

// Log writes one line per event, in time order, with times in
// microseconds since the first event: the -v rendering.
func (l *Ladder) Log(w io.Writer) error {
	events, _, omitted := l.snapshot()
	var start time.Time
	if len(events) > 0 {
		start = events[0].Time
	}
	for i := range events {
		if _, err := fmt.Fprintln(w, FormatEvent(&events[i], start)); err != nil {
			return err
		}
	}
	if omitted > 0 {
		if _, err := fmt.Fprintf(w, "(%d later events omitted)\n", omitted); err != nil {
			return err
		}
	}
	return nil
}

// FormatEvent renders one event on one line, with its time in
// microseconds since start.
func FormatEvent(ev *dtls.TraceEvent, start time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%10d %s %-20s", ev.Time.Sub(start).Microseconds(), sideOf(ev), ev.Kind)
	switch ev.Kind {
	case dtls.TraceDatagramSent, dtls.TraceDatagramReceived:
		fmt.Fprintf(&b, " %dB", ev.Length)
	case dtls.TraceRecordSent, dtls.TraceRecordReceived:
		fmt.Fprintf(&b, " %s e%d s%d %dB", dtls.ContentTypeName(ev.ContentType), ev.Epoch, ev.Seq, ev.Length)
	case dtls.TraceRecordDropped:
		fmt.Fprintf(&b, " %s e%d s%d: %s", dtls.ContentTypeName(ev.ContentType), ev.Epoch, ev.Seq, ev.Reason)
	case dtls.TraceHandshakeSent, dtls.TraceHandshakeReceived:
		fmt.Fprintf(&b, " %s e%d", handshakeLabel(ev), ev.Epoch)
		if ev.Flight != 0 {
			fmt.Fprintf(&b, " flight %d", ev.Flight)
		}
	case dtls.TraceFlightSent:
		fmt.Fprintf(&b, " %d", ev.Flight)
	case dtls.TraceFlightRetransmitted:
		fmt.Fprintf(&b, " %d (%s)", ev.Flight, ev.Reason)
	case dtls.TraceTimerArmed:
		fmt.Fprintf(&b, " %v", ev.Timeout)
	case dtls.TraceEpochChanged:
		fmt.Fprintf(&b, " %d (%s)", ev.Epoch, ev.Reason)
	case dtls.TraceAlertSent, dtls.TraceAlertReceived:
		fmt.Fprintf(&b, " %s e%d", dtls.AlertName(ev.Alert), ev.Epoch)
	case dtls.TraceHandshakeDone, dtls.TraceHandshakeFailed, dtls.TraceCIDChanged:
		if ev.Reason != "" {
			fmt.Fprintf(&b, " %s", ev.Reason)
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// item is an arrow or a note, in the order the renderings draw them.
type item struct {
	order int
	at    time.Duration
	arrow *arrow
	note  *note
}

func (d *diagram) items() []item {
	var items []item
	for _, a := range d.arrows {
		items = append(items, item{order: a.order, at: a.sent, arrow: a})
	}
	for i := range d.notes {
		items = append(items, item{order: d.notes[i].order, at: d.notes[i].at, note: &d.notes[i]})
	}
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.order, b.order) })
	return items
}
