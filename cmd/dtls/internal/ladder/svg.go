package ladder

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// SVG layout, in pixels. Time runs down the page but not to scale: each
// send, receipt and note gets a row of its own, so that a 1 s timer does
// not stretch the picture; a long quiet spell is drawn as a labelled break.
const (
	svgWidth     = 1000
	svgTimeX     = 78  // right edge of the time column
	svgClientX   = 310 // the client's lifeline
	svgServerX   = 730 // the server's lifeline
	svgTop       = 78  // the first row
	svgRowHeight = 20
	svgBreak     = 26                    // extra room for a break in time
	svgBreakGap  = 50 * time.Millisecond // a quiet spell longer than this is a break
	svgLostFrac  = 0.62                  // how far across a lost arrow goes
	svgHead      = 8                     // arrowhead length
	svgFont      = "DejaVu Sans Mono, Menlo, Consolas, monospace"
)

// Colours by arrow class.
var svgColour = map[string]string{
	"hs":    "#1f4e9a",
	"ccs":   "#7b3fa0",
	"data":  "#2e7d32",
	"alert": "#c62828",
	"retx":  "#e07b00",
	"ack":   "#00838f",
}

const (
	svgRed  = "#c62828"
	svgGrey = "#777777"
)

// point is a moment drawn on a row: an arrow's send or receipt, or a note.
type point struct {
	order int // event order; a receipt takes its event's place
	at    time.Duration
	arrow *arrow
	recv  bool
	note  *note
}

// SVG writes the ladder as a self-contained SVG picture: two lifelines,
// sloped arrows from send to receipt, retransmissions in orange, lost
// records ending in a cross, drops marked on the receiver's lifeline.
// One-sided, arrows are level, at the time this end sent or received
// their record.
func (l *Ladder) SVG(w io.Writer) error {
	d := l.build()
	var pts []point
	for _, a := range d.arrows {
		pts = append(pts, point{order: a.order, at: a.sent, arrow: a})
		// One-sided, an arrow is drawn at one moment: when this end sent
		// or received its record.
		if !a.stopsShort() && !d.oneSided {
			pts = append(pts, point{order: a.recvOrder, at: a.recv, arrow: a, recv: true})
		}
	}
	for i := range d.notes {
		pts = append(pts, point{order: d.notes[i].order, at: d.notes[i].at, note: &d.notes[i]})
	}
	slices.SortFunc(pts, func(a, b point) int { return cmp.Compare(a.order, b.order) })

	// Rows.
	y := svgTop
	type brk struct {
		y   int
		gap time.Duration
	}
	var breaks []brk
	rowY := make([]int, len(pts))
	sendY := map[*arrow]int{}
	recvY := map[*arrow]int{}
	for i, p := range pts {
		if i > 0 && p.at-pts[i-1].at > svgBreakGap {
			breaks = append(breaks, brk{y + svgBreak/2 - svgRowHeight/2, p.at - pts[i-1].at})
			y += svgBreak
		}
		if i > 0 {
			y += svgRowHeight
		}
		rowY[i] = y
		if p.arrow != nil {
			if p.recv {
				recvY[p.arrow] = y
			} else {
				sendY[p.arrow] = y
			}
		}
	}
	bottom := y + 2*svgRowHeight
	height := bottom + 46

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height, svgFont)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)

	// Heads and lifelines.
	for _, s := range []struct {
		x    int
		name string
		addr string
	}{{svgClientX, "client", d.addr[client]}, {svgServerX, "server", d.addr[server]}} {
		if d.oneSided && s.x == [2]int{svgClientX, svgServerX}[d.local] {
			s.name += " " + textThisEnd
		}
		fmt.Fprintf(&b, `<rect x="%d" y="10" width="160" height="%d" rx="4" fill="#f1f4f9" stroke="#444444"/>`+"\n", s.x-80, 36)
		fmt.Fprintf(&b, `<text x="%d" y="26" text-anchor="middle" font-weight="bold" font-size="14">%s</text>`+"\n", s.x, s.name)
		if s.addr != "" {
			fmt.Fprintf(&b, `<text x="%d" y="40" text-anchor="middle" fill="#444444" font-size="11">%s</text>`+"\n", s.x, esc(s.addr))
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="46" x2="%d" y2="%d" stroke="#444444" stroke-width="1.5"/>`+"\n", s.x, s.x, bottom)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="%s" font-size="11">time (µs)</text>`+"\n", svgTimeX, svgTop-22, svgGrey)

	// Breaks in time.
	for _, br := range breaks {
		fmt.Fprintf(&b, `<line x1="10" y1="%d" x2="%d" y2="%d" stroke="#bbbbbb" stroke-dasharray="2 4"/>`+"\n", br.y, svgWidth-10, br.y)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s" font-size="11" %s>… %s later …</text>`+"\n",
			(svgClientX+svgServerX)/2, br.y+4, svgGrey, halo, br.gap.Round(time.Millisecond))
	}

	// Times.
	for i, p := range pts {
		if i > 0 && pts[i-1].at == p.at && rowY[i]-rowY[i-1] <= svgRowHeight {
			continue // the same moment as the row above
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="%s" font-size="11">%d</text>`+"\n", svgTimeX, rowY[i]+4, svgGrey, p.at.Microseconds())
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#eeeeee"/>`+"\n", svgTimeX+4, rowY[i], svgClientX-2, rowY[i])
	}

	// Arrows, then notes, so that labels sit on top.
	for _, a := range d.arrows {
		if d.oneSided {
			recvY[a] = sendY[a]
		}
		svgArrow(&b, a, sendY[a], recvY[a])
	}
	for i, p := range pts {
		if p.note != nil {
			svgNote(&b, p.note, rowY[i])
		}
	}

	// Legend.
	lx, ly := 20, bottom+26
	legend := []struct{ class, text string }{
		{"hs", "handshake"}, {"ccs", "ChangeCipherSpec"}, {"data", "application data"},
		{"alert", "alert"}, {"retx", "↻ retransmission"},
	}
	if slices.ContainsFunc(d.arrows, func(a *arrow) bool { return a.class() == "ack" }) {
		legend = append(legend, struct{ class, text string }{"ack", "ACK"})
	}
	for _, e := range legend {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", lx, ly, lx+22, ly, svgColour[e.class])
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", lx+28, ly+4, esc(e.text))
		lx += 40 + 8*len([]rune(e.text))
	}
	if !d.oneSided { // one end never knows a record was lost
		svgCross(&b, float64(lx+6), float64(ly), "#222222")
		fmt.Fprintf(&b, `<text x="%d" y="%d">lost</text>`+"\n", lx+16, ly+4)
		lx += 60
	}
	svgDrop(&b, float64(lx+6), float64(ly))
	fmt.Fprintf(&b, `<text x="%d" y="%d">dropped</text>`+"\n", lx+16, ly+4)
	if d.omitted > 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">(%d later events omitted)</text>`+"\n", svgWidth-20, ly+4, svgRed, d.omitted)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// halo draws a white outline under text so that it reads across lines.
const halo = `stroke="#ffffff" stroke-width="4" stroke-linejoin="round" paint-order="stroke"`

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func svgArrow(b *strings.Builder, a *arrow, y0, y1 int) {
	colour := svgColour[a.class()]
	x0, x1 := float64(svgClientX), float64(svgServerX)
	if a.from == server {
		x0, x1 = x1, x0
	}
	fy0, fy1 := float64(y0), float64(y1)
	if a.stopsShort() {
		x1 = x0 + (x1-x0)*svgLostFrac
		fy1 = fy0 + svgRowHeight*0.6
	}
	dash := ""
	if a.stopsShort() {
		dash = ` stroke-dasharray="6 3"`
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.6"%s/>`+"\n", x0, fy0, x1, fy1, colour, dash)
	switch a.outcome {
	case lost:
		svgCross(b, x1, fy1, "#222222")
		anchor, tx := "start", x1+10
		if a.from == server {
			anchor, tx = "end", x1-10
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" fill="#222222" font-size="11" %s>lost</text>`+"\n", tx, fy1+4, anchor, halo)
	case unread:
		// Not lost: the receiver had closed. No cross, and the reason.
		anchor, tx := "start", x1+6
		if a.from == server {
			anchor, tx = "end", x1-6
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" fill="#222222" font-size="11" %s>%s</text>`+"\n", tx, fy1+4, anchor, halo, esc(a.outcomeText(false)))
	default:
		// The head, along the line.
		dx, dy := x1-x0, fy1-fy0
		n := math.Hypot(dx, dy)
		ux, uy := dx/n, dy/n
		bx, by := x1-ux*svgHead, fy1-uy*svgHead
		fmt.Fprintf(b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`+"\n",
			x1, fy1, bx-uy*4, by+ux*4, bx+uy*4, by-ux*4, colour)
		if a.outcome == dropped {
			svgDrop(b, x1, fy1)
			anchor, tx := "start", x1+12
			if a.from == server {
				anchor, tx = "end", x1-12
			}
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" fill="%s" %s>dropped: %s</text>`+"\n", tx, fy1+4, anchor, svgRed, halo, esc(a.dropReason))
		}
	}
	// The label, beside the sender's end, above the line.
	label := a.label()
	if a.retransmit != "" {
		label += " (" + a.retransmit + ")"
	}
	anchor, tx := "start", x0+8
	if a.from == server {
		anchor, tx = "end", x0-8
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" fill="%s" %s>%s</text>`+"\n", tx, fy0-4, anchor, colour, halo, esc(label))
}

// svgCross draws the × that ends a lost arrow.
func svgCross(b *strings.Builder, x, y float64, colour string) {
	fmt.Fprintf(b, `<path d="M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f" stroke="%s" stroke-width="2.2"/>`+"\n",
		x-5, y-5, x+5, y+5, x-5, y+5, x+5, y-5, colour)
}

// svgDrop marks a record dropped by its receiver: a red ring with a bar.
func svgDrop(b *strings.Builder, x, y float64) {
	fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="6" fill="#ffffff" stroke="%s" stroke-width="2"/>`+"\n", x, y, svgRed)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", x-4, y+4, x+4, y-4, svgRed)
}

// svgNote writes a note beside its side's lifeline, on a row of its own.
func svgNote(b *strings.Builder, n *note, y int) {
	x := svgClientX
	anchor, tx := "start", x+10
	if n.side == server {
		x = svgServerX
		anchor, tx = "end", x-10
	}
	colour := "#222222"
	if n.bad {
		colour = svgRed
	}
	fmt.Fprintf(b, `<circle cx="%d" cy="%d" r="4" fill="%s"/>`+"\n", x, y, colour)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="%s" fill="%s" font-style="italic" %s>%s</text>`+"\n", tx, y+4, anchor, colour, halo, esc(n.text))
}
