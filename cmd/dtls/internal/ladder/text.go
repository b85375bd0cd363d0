package ladder

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Text layout, in columns: a time column, the lane between the two
// lifelines, then what became of the record. With the longest outcome
// ("dropped: ..." plus a retransmission reason) a line stays near 100
// columns.
const (
	textTimeWidth = 9            // send time in µs, right-aligned
	textLaneWidth = 56           // between the client's and the server's lifelines
	textLostGap   = 14           // how far short of the receiver a lost arrow stops
	textThisEnd   = "(this end)" // marks the side a one-sided ladder was seen from
)

// Text writes the ladder for a terminal: one line per record and per
// note, in send order. The left column is the send time and the right
// one the receive time, both in microseconds since the first event.
// A lost record's arrow stops short in a ×, and one sent after the
// receiver had closed (sent its close_notify) stops short in a ·, "not
// read"; a dropped one ends in a ✗ on the receiver's lifeline; retransmitted records begin with ↻.
//
// One-sided, the side the events came from is marked "(this end)" and the
// time column is when that end sent or received the record; there is no
// receive column, since the peer's receipts are unknown, and a drop's
// reason follows its arrow.
func (l *Ladder) Text(w io.Writer) error {
	d := l.build()
	var b strings.Builder
	if !d.hasEvent {
		b.WriteString("(no events)\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	heads := [2]string{"client", "server"}
	for s := range heads {
		if d.addr[s] != "" {
			heads[s] += " " + d.addr[s]
		}
	}
	recvHead := "  recv(µs)"
	if d.oneSided {
		heads[d.local] += " " + textThisEnd
		recvHead = ""
	}
	left, right := heads[client], heads[server]
	gap := max(1, textLaneWidth+2-utf8.RuneCountInString(left)-utf8.RuneCountInString(right))
	fmt.Fprintf(&b, "%*s  %s%s%s%s\n", textTimeWidth, "time(µs)", left, strings.Repeat(" ", gap), right, recvHead)
	for _, it := range d.items() {
		fmt.Fprintf(&b, "%*d  ", textTimeWidth, it.at.Microseconds())
		if it.note != nil {
			b.WriteString(noteLane(it.note))
			b.WriteByte('\n')
			continue
		}
		a := it.arrow
		b.WriteString(arrowLane(a))
		if o := a.outcomeText(d.oneSided); o != "" || !d.oneSided {
			b.WriteString("  ")
			b.WriteString(o)
		}
		b.WriteByte('\n')
	}
	if d.omitted > 0 {
		fmt.Fprintf(&b, "(%d later events omitted)\n", d.omitted)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fit shortens s to n runes, marking the cut.
func fit(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// arrowLane draws the lifelines and the arrow between them.
func arrowLane(a *arrow) string {
	label := " " + fit(a.label(), textLaneWidth-6) + " "
	n := textLaneWidth - utf8.RuneCountInString(label) - 1 // dashes and the head
	head, end := "▶", "│"
	if a.from == server {
		head = "◀"
	}
	switch a.outcome {
	case dropped:
		end = "✗"
	case lost:
		head = "×"
	case unread:
		head = "·"
	}
	var dash, pad string
	if a.stopsShort() {
		short := min(textLostGap, n-2)
		dash, pad = strings.Repeat("─", n-short), strings.Repeat(" ", short)
	} else {
		dash = strings.Repeat("─", n)
	}
	if a.from == client {
		return "│" + label + dash + head + pad + end
	}
	return end + pad + head + dash + label + "│"
}

// noteLane draws a note beside its side's lifeline, the mark (* or !
// for a failure) next to that lifeline.
func noteLane(n *note) string {
	mark := "*"
	if n.bad {
		mark = "!"
	}
	text := fit(n.text, textLaneWidth-4)
	pad := strings.Repeat(" ", textLaneWidth-utf8.RuneCountInString(text)-3)
	if n.side == client {
		return "│" + mark + " " + text + pad + "│"
	}
	return "│" + pad + text + " " + mark + "│"
}
