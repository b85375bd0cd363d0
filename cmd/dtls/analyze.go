package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
	"github.com/dtls-go/dtls/cmd/dtls/internal/ladder"
)

func init() {
	register(&command{
		name:    "analyze",
		summary: "reconstruct the DTLS handshakes in a pcap or pcapng capture",
		run:     runAnalyze,
	})
}

const analyzeSynopsis = `analyze FILE [-keylog FILE] [-svg FILE]

Reads a pcap or pcapng capture of any DTLS 1.2 or 1.3 traffic (tshark's
capture of OpenSSL talking to mbedTLS, or of wolfSSL and pion doing DTLS
1.3, say), groups it by UDP address pair (a client that moves under a
Connection ID stays in its conversation), and reconstructs each
handshake: records, epochs, messages, fragments, flights,
retransmissions, gaps in the record numbers, duplicates, and the time
each flight took. It prints a ladder per conversation. With a key log
(from -keylog, or a Decryption Secrets Block in the capture) it decrypts
the protected handshake messages and alerts too; for DTLS 1.3 also the
record numbers, ACKs (and which records each acknowledged), KeyUpdates
and application data, in any epoch. Without one, a DTLS 1.3 conversation
shows its hellos and each encrypted record's length and epoch bits.
`

// Limits on what analyze keeps, so that its memory does not grow with the
// capture: it reads the file twice, a datagram at a time (capture.Scan),
// and keeps only per-conversation state, each part bounded here: at most
// maxConversations × (maxLadderEvents × 216 bytes + a few tens of KB),
// about 30 MB, plus the key log (at most 2 × 16 MiB). DTLS 1.3 adds, per
// conversation, two hellos being reassembled (maxHelloLen each) and the
// bounded maps of analyze13.go.
const (
	// maxConversations bounds the UDP address pairs reported.
	maxConversations = 64
	// maxPaths bounds the other address pairs one conversation takes
	// in: the addresses its client's CID records come from (RFC 9146 §6).
	maxPaths = 16
	// maxKeyLogFile bounds a -keylog file.
	maxKeyLogFile = 16 << 20
	// maxLadderEvents bounds the events one conversation's ladder keeps,
	// 216 bytes each: a handshake takes a hundred or so, and each
	// datagram after it about six; later ones are counted as omitted.
	maxLadderEvents = 2048
	// maxFragmentsTracked bounds the handshake fragments remembered per
	// side, by which retransmissions are recognised.
	maxFragmentsTracked = 4096
	// maxEpochsTracked bounds the epochs per side whose record numbers
	// are followed for gaps and duplicates (a DTLS 1.2 connection uses
	// two).
	maxEpochsTracked = 8
	// dupWindow is how far behind the newest record of its epoch a
	// record is still recognised as a duplicate, in records (a multiple
	// of 64).
	dupWindow = 1024
	// maxListed bounds each list of the report (messages, flights,
	// gaps); the rest are counted.
	maxListed = 256
)

type analyzeOptions struct {
	file, keylog, svg string
}

func parseAnalyzeFlags(args []string, w io.Writer) (*analyzeOptions, error) {
	o := &analyzeOptions{}
	fs := newFlagSet("analyze", analyzeSynopsis, w)
	fs.StringVar(&o.keylog, "keylog", "", "NSS key log file to decrypt with (CLIENT_RANDOM lines for DTLS 1.2; CLIENT_HANDSHAKE_TRAFFIC_SECRET and the other traffic secrets for 1.3)")
	fs.StringVar(&o.svg, "svg", "", "write the ladder as SVG to this file (FILE-N.svg for the Nth conversation after the first)")
	// Accept the capture file before or after the flags.
	var rest []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errFlagSyntax
		}
		args = fs.Args()
		if len(args) > 0 {
			rest = append(rest, args[0])
			args = args[1:]
		}
	}
	if len(rest) != 1 {
		return nil, usageErrorf("analyze needs exactly one capture file")
	}
	o.file = rest[0]
	return o, nil
}

func runAnalyze(ctx context.Context, args []string, std stdio) int {
	o, err := parseAnalyzeFlags(args, std.err)
	if err != nil {
		reportUsage(std.err, "analyze", err)
		return exitCode(err)
	}
	if err := analyze(o, std.out); err != nil {
		fmt.Fprintf(std.err, "dtls analyze: %v\n", err)
		return exitError
	}
	return exitOK
}

func analyze(o *analyzeOptions, out io.Writer) error {
	f, err := os.Open(o.file)
	if err != nil {
		return err
	}
	defer f.Close()
	// First pass: the key log, which Decryption Secrets Blocks may give
	// after the packets it decrypts, and the conversations, with their
	// client: whoever sent the first ClientHello.
	convs := &conversations{index: map[[2]netip.AddrPort]*conversation{}}
	keyLog, err := capture.Scan(bufio.NewReader(f), func(d capture.Datagram) error {
		convs.learn(d)
		return nil
	})
	if err != nil {
		return err
	}
	if o.keylog != "" {
		b, err := os.ReadFile(o.keylog)
		if err != nil {
			return err
		}
		if len(b) > maxKeyLogFile {
			return fmt.Errorf("key log %s is over %d bytes", o.keylog, maxKeyLogFile)
		}
		keyLog = append(append(keyLog, '\n'), b...)
	}
	keys := parseKeyLog(keyLog)
	if len(convs.list) == 0 {
		fmt.Fprintln(out, "no DTLS traffic found")
		return nil
	}
	// Second pass: each datagram goes to its conversation's analysis.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	for _, c := range convs.list {
		c.a = newAnalysis(c.client, c.server)
		c.a.cidLen = [2]int{c.p13.cidLen(0), c.p13.cidLen(1)}
		switch {
		case c.p13.is13:
			c.a.start13(&c.p13)
		case c.settled:
			// A ServerHello chose DTLS 1.2 (or below): no 1.3 record
			// can follow, and a datagram that looks like one is not
			// taken for it.
			c.a.is12, c.a.offered13 = true, c.p13.offered13
		}
		c.hellos = [2]helloAssembler{}
	}
	_, err = capture.Scan(bufio.NewReader(f), func(d capture.Datagram) error {
		c := convs.of(&d)
		if c == nil {
			c = convs.join13(&d, keys)
		}
		if c != nil {
			c.a.datagram(d, keys)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, c := range convs.list {
		if i > 0 {
			fmt.Fprintln(out)
		}
		a := c.a
		a.finish()
		a.report(out)
		if o.svg != "" {
			name := o.svg
			if i > 0 {
				name = strings.TrimSuffix(o.svg, ".svg") + fmt.Sprintf("-%d.svg", i+1)
			}
			sf, err := os.Create(name)
			if err != nil {
				return err
			}
			err = a.ladder.SVG(sf)
			if cerr := sf.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "wrote %s\n", name)
		}
	}
	return nil
}

// conversation is the DTLS traffic between two UDP endpoints.
type conversation struct {
	// client is the sender of the first ClientHello, else of the first
	// datagram.
	client, server netip.AddrPort
	sawHello       bool
	a              *analysis // made for the second pass
	// The first pass follows the hellos until a ServerHello settles
	// the version (p13.is13 for DTLS 1.3), the suite and the CIDs.
	hellos  [2]helloAssembler
	p13     params13
	settled bool
	// paths counts the other address pairs that joined the
	// conversation: a client that moved, under its CID (RFC 9146 §6).
	paths int
}

// conversations finds the conversations of a capture, in the order of
// their first datagram, at most maxConversations of them.
type conversations struct {
	index map[[2]netip.AddrPort]*conversation
	list  []*conversation
}

func convKey(d *capture.Datagram) [2]netip.AddrPort {
	if d.Dst.Addr().Less(d.Src.Addr()) || (d.Dst.Addr() == d.Src.Addr() && d.Dst.Port() < d.Src.Port()) {
		return [2]netip.AddrPort{d.Dst, d.Src}
	}
	return [2]netip.AddrPort{d.Src, d.Dst}
}

// learn notes a datagram of the first pass.
func (cs *conversations) learn(d capture.Datagram) {
	if !looksLikeDTLS(d.Payload) {
		// DTLS 1.3 ciphertext in a conversation that a DTLSPlaintext
		// record began.
		if c := cs.of(&d); c != nil {
			c.learnHellos(&d)
		}
		return
	}
	k := convKey(&d)
	c := cs.index[k]
	if c == nil {
		c = cs.byCID(&d)
		if c != nil {
			// The same session from another address (a NAT
			// rebinding, or a copy raced from elsewhere).
			c.paths++
			cs.index[k] = c
		}
	}
	if c == nil {
		if len(cs.list) == maxConversations {
			return
		}
		c = &conversation{client: d.Src, server: d.Dst}
		cs.index[k] = c
		cs.list = append(cs.list, c)
	}
	if !c.sawHello && len(d.Payload) > 25 && d.Payload[0] == ctHandshake && d.Payload[13] == hsClientHello {
		c.client, c.server, c.sawHello = d.Src, d.Dst, true
	}
	c.learnHellos(&d)
}

// rrcName names an RRC msg_type (RFC 9853 §4).
func rrcName(t uint8) string {
	switch t {
	case 0:
		return "path_challenge"
	case 1:
		return "path_response"
	case 2:
		return "path_drop"
	}
	return fmt.Sprintf("rrc_msg_type %d", t)
}

// byCID returns the conversation whose server a tls12_cid datagram from a
// new address names by the CID the server handed out, or nil. At most
// maxPaths address pairs join one conversation.
func (cs *conversations) byCID(d *capture.Datagram) *conversation {
	b := d.Payload
	if len(b) < 13 || b[0] != ctCID12 {
		return nil
	}
	for _, c := range cs.list {
		n := c.p13.cidLen(0) // what the client's records carry
		if c.paths < maxPaths && n > 0 && d.Dst == c.server && len(b) >= 11+n && string(b[11:11+n]) == string(c.p13.cid[1]) {
			return c
		}
	}
	return nil
}

// join13 returns the DTLS 1.3 conversation that a datagram with a
// unified header from or to a new address belongs to, and adds the
// address pair to it, or nil: a client that moved (RFC 9146 §6, RFC 9147
// §9), or the server's records to the client's new address. It is
// matched by the CID in the header, against those the receiver handed
// out (in its hello or, once decrypted, a NewConnectionId), else by the
// keys: a record that opens with the conversation's secrets is its own.
// Called in the second pass, where the NewConnectionId messages before
// the datagram were read. At most maxPaths address pairs join one
// conversation.
func (cs *conversations) join13(d *capture.Datagram, keys *keyLog) *conversation {
	b := d.Payload
	if len(b) == 0 || !isUnified(b[0]) {
		return nil
	}
	for _, c := range cs.list {
		if c.a == nil || !c.a.v13.on || c.paths >= maxPaths {
			continue
		}
		from := 0
		switch c.server {
		case d.Dst:
		case d.Src:
			from = 1
		default:
			continue
		}
		if c.a.knownCID13(from, b) || c.a.opens13(from, b, keys) {
			c.paths++
			cs.index[convKey(d)] = c
			return c
		}
	}
	return nil
}

// of returns the conversation of a datagram, or nil: a datagram that
// starts with a DTLS record header, or with a DTLS 1.3 unified header in
// a conversation already known.
func (cs *conversations) of(d *capture.Datagram) *conversation {
	if !looksLikeDTLS(d.Payload) && (len(d.Payload) == 0 || !isUnified(d.Payload[0])) {
		return nil
	}
	return cs.index[convKey(d)]
}

// looksLikeDTLS checks for a DTLS record header at the start.
func looksLikeDTLS(b []byte) bool {
	return len(b) >= 13 && b[0] >= ctCCS && b[0] <= ctRRC && b[1] == 0xfe && (b[2] == 0xfd || b[2] == 0xff || b[2] == 0xfc)
}

// Content and handshake types the analysis looks into.
const (
	ctCCS       = 20
	ctAlert     = 21
	ctHandshake = 22
	ctAppData   = 23
	ctCID12     = 25 // tls12_cid, RFC 9146
	ctRRC       = 27 // return_routability_check, RFC 9853

	hsClientHello = 1
	hsServerHello = 2
	hsFinished    = 20
)

// analysis is one conversation turned into trace events, a datagram at a
// time, keeping only state bounded by the limits above.
type analysis struct {
	client, server netip.AddrPort
	ladder         *ladder.Ladder
	start, last    time.Time
	started        bool

	decrypter *dtls.RecordDecrypter
	suite     uint16
	random    [2][]byte // client, server hello randoms

	flight    [2]int
	lastFrom  int                   // side that sent the last handshake datagram, -1 at first
	sentFrags [2]map[[3]uint32]bool // (seq, offset, length) of fragments already sent
	epochs    [2]map[uint64]*epochRecords

	messages   []string // "client ClientHello seq=0" in order, first copies only
	retransmit [2]int
	gaps       []string
	duplicates int
	finished   [2]bool
	flights    []flightSpan
	undecrypt  int
	// Entries of the lists above past maxListed, and records or
	// fragments past maxEpochsTracked or maxFragmentsTracked.
	moreMessages, moreGaps, moreFlights int
	untracked                           int

	// cidLen is the CID length of the records each side sends (RFC
	// 9146); clientAt the address the client's datagrams last came from,
	// and moves lists where it went.
	cidLen    [2]int
	clientAt  netip.AddrPort
	moves     []string
	moreMoves int

	v13 analysis13 // DTLS 1.3 conversations
	// is12: the first pass saw a ServerHello choose DTLS 1.2;
	// offered13: the ClientHello before it offered 1.3.
	is12, offered13 bool
}

// epochRecords follows the record numbers one side sent in one epoch: the
// newest, and which of the dupWindow up to it were seen.
type epochRecords struct {
	newest uint64
	seen   [dupWindow / 64]uint64 // bit seq%dupWindow
}

// see records seq and reports whether it is a duplicate (within dupWindow
// of the newest) and, when it is past the newest, the range of records
// missing before it (gapTo is 0 if none).
func (e *epochRecords) see(seq uint64) (dup bool, gapFrom, gapTo uint64) {
	bit := func(s uint64) (*uint64, uint64) {
		i := s % dupWindow
		return &e.seen[i/64], 1 << (i % 64)
	}
	switch {
	case seq > e.newest:
		if seq > e.newest+1 {
			gapFrom, gapTo = e.newest+1, seq-1
		}
		if seq-e.newest >= dupWindow {
			e.seen = [dupWindow / 64]uint64{}
		} else {
			for s := e.newest + 1; s <= seq; s++ {
				w, b := bit(s)
				*w &^= b
			}
		}
		e.newest = seq
	case e.newest-seq >= dupWindow:
		return false, 0, 0 // too old to tell
	}
	w, b := bit(seq)
	dup = *w&b != 0
	*w |= b
	return dup, gapFrom, gapTo
}

type flightSpan struct {
	side   int
	number int
	start  time.Time
	end    time.Time // last datagram of the flight, retransmissions included
}

func sideName(s int) string { return [...]string{"client", "server"}[s] }

func newAnalysis(client, server netip.AddrPort) *analysis {
	a := &analysis{ladder: ladder.NewLimited(maxLadderEvents), lastFrom: -1, client: client, server: server}
	for i := range a.sentFrags {
		a.sentFrags[i] = map[[3]uint32]bool{}
		a.epochs[i] = map[uint64]*epochRecords{}
	}
	return a
}

// finish ends the analysis once every datagram was seen.
func (a *analysis) finish() {
	for s := range 2 {
		if a.finished[s] {
			a.emit(s, dtls.TraceEvent{Kind: dtls.TraceHandshakeDone, Time: a.last, Reason: suiteName(a.suite)})
		}
	}
}

// markSent remembers a fragment that side s sent, up to
// maxFragmentsTracked.
func (a *analysis) markSent(s int, k [3]uint32) {
	if len(a.sentFrags[s]) >= maxFragmentsTracked && !a.sentFrags[s][k] {
		a.untracked++
		return
	}
	a.sentFrags[s][k] = true
}

// emit adds an event seen by side s.
func (a *analysis) emit(s int, ev dtls.TraceEvent) {
	ev.Client = s == 0
	if s == 0 {
		ev.Local, ev.Remote = a.client, a.server
	} else {
		ev.Local, ev.Remote = a.server, a.client
	}
	a.ladder.Add(&ev)
}

func (a *analysis) datagram(d capture.Datagram, keys *keyLog) {
	if !a.started {
		a.start, a.started = d.Time, true
	}
	a.last = d.Time
	// The server keeps its address; the client may move (RFC 9146 §6).
	from := 0
	if d.Src == a.server {
		from = 1
	}
	to := 1 - from
	if from == 0 && d.Src != a.clientAt && a.clientAt.IsValid() {
		if len(a.moves) < maxListed {
			a.moves = append(a.moves, fmt.Sprintf("+%v client sends from %v (was %v)", d.Time.Sub(a.start).Round(time.Microsecond), d.Src, a.clientAt))
		} else {
			a.moreMoves++
		}
	}
	if from == 0 {
		a.clientAt = d.Src
	}
	a.emit(from, dtls.TraceEvent{Kind: dtls.TraceDatagramSent, Time: d.Time, Length: len(d.Payload)})
	a.emit(to, dtls.TraceEvent{Kind: dtls.TraceDatagramReceived, Time: d.Time, Length: len(d.Payload)})

	if a.v13.on || !a.is12 && len(d.Payload) > 0 && isUnified(d.Payload[0]) {
		if !a.v13.on {
			a.start13(nil)
		}
		a.datagram13(d, keys, from)
		return
	}
	frags, repeated := a.scanFragments(from, d.Payload)
	a.flightStep(d.Time, from, frags, repeated)

	rest := d.Payload
	for len(rest) >= 13 {
		typ := rest[0]
		epoch := uint64(binary.BigEndian.Uint16(rest[3:5]))
		seq := uint64(binary.BigEndian.Uint16(rest[5:7]))<<32 | uint64(binary.BigEndian.Uint32(rest[7:11]))
		hl := 13
		if typ == ctCID12 {
			// The CID sits before the length; its size is the
			// negotiated one (RFC 9146 §4).
			if a.cidLen[from] == 0 || len(rest) < 13+a.cidLen[from] {
				break
			}
			hl += a.cidLen[from]
		}
		n := int(binary.BigEndian.Uint16(rest[hl-2 : hl]))
		if hl+n > len(rest) {
			break // a truncated record ends the datagram
		}
		rec := rest[:hl+n]
		rest = rest[hl+n:]
		peer := d.Dst
		if from == 0 {
			peer = d.Src
		}
		a.record(d.Time, from, typ, epoch, seq, rec, hl, peer, keys.master)
	}
}

// flightStep follows flights: a datagram that carries handshake fragments
// starts a new flight when the other side spoke last, and is a
// retransmission when every fragment in it was sent before.
func (a *analysis) flightStep(t time.Time, from, frags int, repeated bool) {
	if frags == 0 {
		return
	}
	switch {
	case a.lastFrom != from && !repeated:
		a.flight[from]++
		if len(a.flights) < maxListed {
			a.flights = append(a.flights, flightSpan{side: from, number: a.flight[from], start: t, end: t})
		} else {
			a.moreFlights++
		}
		a.emit(from, dtls.TraceEvent{Kind: dtls.TraceFlightSent, Time: t, Flight: a.flight[from]})
	case repeated:
		a.retransmit[from]++
		a.emit(from, dtls.TraceEvent{Kind: dtls.TraceFlightRetransmitted, Time: t, Flight: a.flight[from], Reason: "seen again"})
	}
	a.lastFrom = from
	for i := len(a.flights) - 1; i >= 0; i-- {
		if a.flights[i].side == from {
			a.flights[i].end = t
			break
		}
	}
}

// scanFragments counts the plaintext handshake fragments of a datagram and
// whether all of them were sent before.
func (a *analysis) scanFragments(from int, b []byte) (n int, allRepeated bool) {
	allRepeated = true
	for len(b) >= 13 {
		typ, epoch, l := b[0], binary.BigEndian.Uint16(b[3:5]), int(binary.BigEndian.Uint16(b[11:13]))
		if 13+l > len(b) || typ == ctCID12 {
			break
		}
		body := b[13 : 13+l]
		b = b[13+l:]
		if typ == ctCCS {
			n++
			continue
		}
		if typ != ctHandshake {
			continue
		}
		if epoch > 0 {
			// Encrypted: a Finished, counted by its record number.
			n++
			k := [3]uint32{0xffffffff, uint32(epoch), uint32(len(body))}
			if !a.sentFrags[from][k] {
				allRepeated = false
			}
			continue
		}
		for len(body) >= 12 {
			seq := uint32(binary.BigEndian.Uint16(body[4:6]))
			off := uint32(body[6])<<16 | uint32(body[7])<<8 | uint32(body[8])
			fl := uint32(body[9])<<16 | uint32(body[10])<<8 | uint32(body[11])
			if 12+int(fl) > len(body) {
				break
			}
			n++
			if !a.sentFrags[from][[3]uint32{seq, off, fl}] {
				allRepeated = false
			}
			body = body[12+fl:]
		}
	}
	return n, allRepeated && n > 0
}

// record follows one record of hl header bytes; peer is the client's
// address on the datagram.
func (a *analysis) record(t time.Time, from int, typ uint8, epoch uint64, seq uint64, rec []byte, hl int, peer netip.AddrPort, secrets map[string][]byte) {
	to := 1 - from
	a.trackRecord(from, epoch, seq)
	body := rec[hl:]
	plain := body
	encrypted := epoch > 0
	if encrypted {
		plain = nil
		if a.decrypter == nil && a.random[0] != nil && a.random[1] != nil {
			if ms, ok := secrets[string(a.random[0])]; ok {
				a.decrypter, _ = dtls.NewRecordDecrypter(a.suite, ms, a.random[0], a.random[1])
			}
		}
		if a.decrypter != nil {
			if inner, p, err := a.decrypter.OpenCID(from == 0, rec, a.cidLen[from]); err == nil {
				plain, typ = p, inner
			}
		}
		if plain == nil {
			a.undecrypt++
		}
	}
	a.emit(from, dtls.TraceEvent{Kind: dtls.TraceRecordSent, Time: t, Epoch: epoch, Seq: seq, ContentType: typ, Length: len(body)})
	switch typ {
	case ctHandshake:
		if plain == nil {
			a.markSent(from, [3]uint32{0xffffffff, uint32(epoch), uint32(len(body))})
			a.emit(from, dtls.TraceEvent{Kind: dtls.TraceHandshakeSent, Time: t, Epoch: epoch, HandshakeType: 255, Flight: a.flight[from]})
			break
		}
		if encrypted {
			a.markSent(from, [3]uint32{0xffffffff, uint32(epoch), uint32(len(body))})
		}
		a.handshake(t, from, epoch, plain)
	case ctAlert:
		if len(plain) == 2 {
			a.emit(from, dtls.TraceEvent{Kind: dtls.TraceAlertSent, Time: t, Epoch: epoch, Alert: plain[1]})
		}
	case ctRRC:
		// RFC 9853 §4: msg_type and an 8-byte cookie.
		if len(plain) >= 1 {
			ev := dtls.TraceEvent{Kind: dtls.TraceRRCSent, Time: t, Epoch: epoch, Seq: seq, Reason: rrcName(plain[0])}
			if from == 1 && peer != a.client {
				ev.Path = peer // a challenge to a new address
			}
			a.emit(from, ev)
			ev.Kind = dtls.TraceRRCReceived
			a.emit(to, ev)
		}
	}
	a.emit(to, dtls.TraceEvent{Kind: dtls.TraceRecordReceived, Time: t, Epoch: epoch, Seq: seq, ContentType: typ, Length: len(body)})
}

// trackRecord follows the record numbers of one side's epoch for gaps
// and duplicates.
func (a *analysis) trackRecord(from int, epoch, seq uint64) {
	if e := a.epochs[from][epoch]; e != nil {
		dup, gapFrom, gapTo := e.see(seq)
		if dup {
			a.duplicates++
		}
		if gapTo > 0 {
			if len(a.gaps) < maxListed {
				a.gaps = append(a.gaps, fmt.Sprintf("%s epoch %d: records %d..%d not in the capture", sideName(from), epoch, gapFrom, gapTo))
			} else {
				a.moreGaps++
			}
		}
	} else if len(a.epochs[from]) < maxEpochsTracked {
		e := &epochRecords{newest: seq}
		e.see(seq)
		a.epochs[from][epoch] = e
	} else {
		a.untracked++
	}
}

// handshake reads the fragments of one plaintext handshake record.
func (a *analysis) handshake(t time.Time, from int, epoch uint64, b []byte) {
	for len(b) >= 12 {
		ht := b[0]
		length := uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		seq := binary.BigEndian.Uint16(b[4:6])
		off := uint32(b[6])<<16 | uint32(b[7])<<8 | uint32(b[8])
		fl := uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11])
		if 12+int(fl) > len(b) {
			return
		}
		frag := b[12 : 12+fl]
		b = b[12+fl:]
		k := [3]uint32{uint32(seq), off, fl}
		first := !a.sentFrags[from][k]
		a.markSent(from, k)
		a.emit(from, dtls.TraceEvent{Kind: dtls.TraceHandshakeSent, Time: t, Epoch: epoch, HandshakeType: ht, MessageSeq: seq,
			FragmentOffset: off, FragmentLength: fl, MessageLength: length, Flight: a.flight[from]})
		if first && off == 0 && len(a.messages) >= maxListed {
			a.moreMessages++
		} else if first && off == 0 {
			a.messages = append(a.messages, fmt.Sprintf("%-6s %-18s seq=%d len=%d epoch=%d", sideName(from), dtls.HandshakeTypeName(ht), seq, length, epoch))
		}
		switch {
		case ht == hsClientHello && from == 0 && off == 0 && len(frag) >= 34:
			a.random[0] = slices.Clone(frag[2:34])
		case ht == hsServerHello && from == 1 && off == 0 && len(frag) >= 35:
			a.random[1] = slices.Clone(frag[2:34])
			if sid := int(frag[34]); len(frag) >= 37+sid {
				a.suite = binary.BigEndian.Uint16(frag[35+sid:])
			}
		case ht == hsFinished:
			a.finished[from] = true
		}
	}
}

func (a *analysis) report(out io.Writer) {
	fmt.Fprintf(out, "conversation %v (client) <-> %v (server)\n\n", a.client, a.server)
	a.ladder.Text(out)
	fmt.Fprintln(out)
	if a.offered13 {
		fmt.Fprintln(out, "version: DTLS 1.2 (the client offered DTLS 1.3)")
	}
	if a.v13.on {
		a.report13(out)
	} else if a.suite != 0 {
		fmt.Fprintf(out, "cipher suite: %s\n", suiteName(a.suite))
	}
	fmt.Fprintf(out, "messages (first transmission):\n")
	for _, m := range a.messages {
		fmt.Fprintf(out, "  %s\n", m)
	}
	if a.moreMessages > 0 {
		fmt.Fprintf(out, "  (%d more not listed)\n", a.moreMessages)
	}
	sort.SliceStable(a.flights, func(i, j int) bool { return a.flights[i].start.Before(a.flights[j].start) })
	fmt.Fprintf(out, "flights: %d\n", len(a.flights)+a.moreFlights)
	for i, f := range a.flights {
		took := ""
		if i+1 < len(a.flights) {
			took = fmt.Sprintf(", answered after %v", a.flights[i+1].start.Sub(f.start).Round(time.Microsecond))
		}
		fmt.Fprintf(out, "  %s flight %d at +%v%s\n", sideName(f.side), f.number, f.start.Sub(a.start).Round(time.Microsecond), took)
	}
	if a.moreFlights > 0 {
		fmt.Fprintf(out, "  (%d more not listed)\n", a.moreFlights)
	}
	fmt.Fprintf(out, "retransmissions: client %d, server %d\n", a.retransmit[0], a.retransmit[1])
	fmt.Fprintf(out, "duplicate records: %d\n", a.duplicates)
	if len(a.gaps) == 0 {
		fmt.Fprintln(out, "gaps: none")
	} else {
		fmt.Fprintf(out, "gaps: %d\n", len(a.gaps)+a.moreGaps)
		for _, g := range a.gaps {
			fmt.Fprintf(out, "  %s\n", g)
		}
		if a.moreGaps > 0 {
			fmt.Fprintf(out, "  (%d more not listed)\n", a.moreGaps)
		}
	}
	if a.untracked > 0 {
		fmt.Fprintf(out, "records or fragments past analyze's bounds, not checked for retransmissions, gaps or duplicates: %d\n", a.untracked)
	}
	if len(a.moves) > 0 {
		fmt.Fprintf(out, "client address changes (RFC 9146 §6; the server moves after a return routability check when both sent rrc, RFC 9853):\n")
		for _, m := range a.moves {
			fmt.Fprintf(out, "  %s\n", m)
		}
		if a.moreMoves > 0 {
			fmt.Fprintf(out, "  (%d more not listed)\n", a.moreMoves)
		}
	}
	if a.undecrypt > 0 {
		fmt.Fprintf(out, "encrypted records not decrypted: %d (give -keylog)\n", a.undecrypt)
	}
	switch {
	case a.finished[0] && a.finished[1]:
		fmt.Fprintln(out, "handshake: complete (both Finished seen)")
	case a.undecrypt > 0 || a.v13.noKeys+a.v13.failed > 0:
		fmt.Fprintln(out, "handshake: Finished messages encrypted; completion not verified")
	default:
		fmt.Fprintln(out, "handshake: incomplete in this capture")
	}
}
