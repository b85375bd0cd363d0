package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
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

Reads a pcap or pcapng capture of any DTLS traffic (tshark's capture of
OpenSSL talking to mbedTLS, say), groups it by UDP address pair, and
reconstructs each handshake: records, epochs, messages, fragments,
flights, retransmissions, gaps in the record numbers, duplicates, and the
time each flight took. It prints a ladder per conversation. With a key log
(from -keylog, or a Decryption Secrets Block in the capture) it decrypts
the protected handshake messages and alerts too.
`

// Limits on what analyze keeps, so a huge capture cannot exhaust memory.
const (
	// maxConversations bounds the UDP address pairs reported.
	maxConversations = 64
	// maxKeyLogFile bounds a -keylog file.
	maxKeyLogFile = 16 << 20
)

type analyzeOptions struct {
	file, keylog, svg string
}

func parseAnalyzeFlags(args []string, w io.Writer) (*analyzeOptions, error) {
	o := &analyzeOptions{}
	fs := newFlagSet("analyze", analyzeSynopsis, w)
	fs.StringVar(&o.keylog, "keylog", "", "NSS key log file (CLIENT_RANDOM lines) to decrypt with")
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
	dgrams, keyLog, err := capture.ReadFile(bufio.NewReader(f))
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
	secrets := parseKeyLog(keyLog)
	convs := conversations(dgrams)
	if len(convs) == 0 {
		fmt.Fprintln(out, "no DTLS traffic found")
		return nil
	}
	for i, c := range convs {
		if i > 0 {
			fmt.Fprintln(out)
		}
		a := c.analyze(secrets)
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

// parseKeyLog reads NSS key log lines: CLIENT_RANDOM <random> <master>.
func parseKeyLog(b []byte) map[string][]byte {
	m := map[string][]byte{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "CLIENT_RANDOM" {
			continue
		}
		cr, err1 := hex.DecodeString(f[1])
		ms, err2 := hex.DecodeString(f[2])
		if err1 == nil && err2 == nil && len(cr) == 32 && len(ms) == 48 {
			m[string(cr)] = ms
		}
	}
	return m
}

// conversation is the datagrams between two UDP endpoints.
type conversation struct {
	a, b   netip.AddrPort
	dgrams []capture.Datagram
}

func conversations(dgrams []capture.Datagram) []*conversation {
	index := map[[2]netip.AddrPort]*conversation{}
	var out []*conversation
	for _, d := range dgrams {
		if !looksLikeDTLS(d.Payload) {
			continue
		}
		k := [2]netip.AddrPort{d.Src, d.Dst}
		if d.Dst.Addr().Less(d.Src.Addr()) || (d.Dst.Addr() == d.Src.Addr() && d.Dst.Port() < d.Src.Port()) {
			k = [2]netip.AddrPort{d.Dst, d.Src}
		}
		c := index[k]
		if c == nil {
			if len(out) == maxConversations {
				continue
			}
			c = &conversation{a: d.Src, b: d.Dst}
			index[k] = c
			out = append(out, c)
		}
		c.dgrams = append(c.dgrams, d)
	}
	return out
}

// looksLikeDTLS checks for a DTLS record header at the start.
func looksLikeDTLS(b []byte) bool {
	return len(b) >= 13 && b[0] >= 20 && b[0] <= 26 && b[1] == 0xfe && (b[2] == 0xfd || b[2] == 0xff || b[2] == 0xfc)
}

// Content and handshake types the analysis looks into.
const (
	ctCCS       = 20
	ctAlert     = 21
	ctHandshake = 22
	ctAppData   = 23

	hsClientHello = 1
	hsServerHello = 2
	hsFinished    = 20
)

// analysis is one conversation turned into trace events.
type analysis struct {
	client, server netip.AddrPort
	ladder         *ladder.Ladder
	start          time.Time

	decrypter *dtls.RecordDecrypter
	suite     uint16
	random    [2][]byte // client, server hello randoms

	flight    [2]int
	lastFrom  int                   // side that sent the last handshake datagram, -1 at first
	sentFrags [2]map[[3]uint32]bool // (seq, offset, length) of fragments already sent
	lastSeq   [2]map[uint64]uint64  // highest record sequence number per epoch
	seenRec   [2]map[uint64]bool    // epoch<<48|seq seen

	messages   []string // "client ClientHello seq=0" in order, first copies only
	retransmit [2]int
	gaps       []string
	duplicates int
	finished   [2]bool
	flights    []flightSpan
	undecrypt  int
}

type flightSpan struct {
	side   int
	number int
	start  time.Time
	end    time.Time // last datagram of the flight, retransmissions included
}

func sideName(s int) string { return [...]string{"client", "server"}[s] }

func (c *conversation) analyze(secrets map[string][]byte) *analysis {
	a := &analysis{ladder: ladder.New(), lastFrom: -1}
	a.client, a.server = c.a, c.b
	// The client is whoever sent the first ClientHello.
	for _, d := range c.dgrams {
		if len(d.Payload) > 25 && d.Payload[0] == ctHandshake && d.Payload[13] == hsClientHello {
			a.client, a.server = d.Src, d.Dst
			break
		}
	}
	for i := range a.sentFrags {
		a.sentFrags[i] = map[[3]uint32]bool{}
		a.lastSeq[i] = map[uint64]uint64{}
		a.seenRec[i] = map[uint64]bool{}
	}
	a.start = c.dgrams[0].Time
	for _, d := range c.dgrams {
		a.datagram(d, secrets)
	}
	for s := range 2 {
		if a.finished[s] {
			a.emit(s, dtls.TraceEvent{Kind: dtls.TraceHandshakeDone, Time: c.dgrams[len(c.dgrams)-1].Time, Reason: dtls.CipherSuiteName(a.suite)})
		}
	}
	return a
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

func (a *analysis) datagram(d capture.Datagram, secrets map[string][]byte) {
	from := 1
	if d.Src == a.client {
		from = 0
	}
	to := 1 - from
	a.emit(from, dtls.TraceEvent{Kind: dtls.TraceDatagramSent, Time: d.Time, Length: len(d.Payload)})
	a.emit(to, dtls.TraceEvent{Kind: dtls.TraceDatagramReceived, Time: d.Time, Length: len(d.Payload)})

	// A datagram that carries handshake fragments starts a new flight when
	// the other side spoke last, and is a retransmission when every
	// fragment in it was sent before.
	frags, repeated := a.scanFragments(from, d.Payload)
	if frags > 0 {
		if a.lastFrom != from {
			if !repeated {
				a.flight[from]++
				a.flights = append(a.flights, flightSpan{side: from, number: a.flight[from], start: d.Time, end: d.Time})
				a.emit(from, dtls.TraceEvent{Kind: dtls.TraceFlightSent, Time: d.Time, Flight: a.flight[from]})
			} else {
				a.retransmit[from]++
				a.emit(from, dtls.TraceEvent{Kind: dtls.TraceFlightRetransmitted, Time: d.Time, Flight: a.flight[from], Reason: "seen again"})
			}
		} else if repeated && frags > 0 {
			a.retransmit[from]++
			a.emit(from, dtls.TraceEvent{Kind: dtls.TraceFlightRetransmitted, Time: d.Time, Flight: a.flight[from], Reason: "seen again"})
		}
		a.lastFrom = from
		for i := len(a.flights) - 1; i >= 0; i-- {
			if a.flights[i].side == from {
				a.flights[i].end = d.Time
				break
			}
		}
	}

	rest := d.Payload
	for len(rest) >= 13 {
		typ := rest[0]
		epoch := uint64(binary.BigEndian.Uint16(rest[3:5]))
		seq := uint64(binary.BigEndian.Uint16(rest[5:7]))<<32 | uint64(binary.BigEndian.Uint32(rest[7:11]))
		n := int(binary.BigEndian.Uint16(rest[11:13]))
		if typ == 25 || 13+n > len(rest) {
			// A tls12_cid record's header length depends on the
			// negotiated CID; a truncated record ends the datagram.
			break
		}
		rec := rest[:13+n]
		rest = rest[13+n:]
		a.record(d.Time, from, typ, epoch, seq, rec, secrets)
	}
}

// scanFragments counts the plaintext handshake fragments of a datagram and
// whether all of them were sent before.
func (a *analysis) scanFragments(from int, b []byte) (n int, allRepeated bool) {
	allRepeated = true
	for len(b) >= 13 {
		typ, epoch, l := b[0], binary.BigEndian.Uint16(b[3:5]), int(binary.BigEndian.Uint16(b[11:13]))
		if 13+l > len(b) || typ == 25 {
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

func (a *analysis) record(t time.Time, from int, typ uint8, epoch uint64, seq uint64, rec []byte, secrets map[string][]byte) {
	to := 1 - from
	key := epoch<<48 | seq
	if a.seenRec[from][key] {
		a.duplicates++
	}
	a.seenRec[from][key] = true
	if last, ok := a.lastSeq[from][epoch]; ok && seq > last+1 {
		a.gaps = append(a.gaps, fmt.Sprintf("%s epoch %d: records %d..%d not in the capture", sideName(from), epoch, last+1, seq-1))
	}
	if last, ok := a.lastSeq[from][epoch]; !ok || seq > last {
		a.lastSeq[from][epoch] = seq
	}
	body := rec[13:]
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
			if p, err := a.decrypter.Open(from == 0, rec); err == nil {
				plain = p
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
			k := [3]uint32{0xffffffff, uint32(epoch), uint32(len(body))}
			a.sentFrags[from][k] = true
			a.emit(from, dtls.TraceEvent{Kind: dtls.TraceHandshakeSent, Time: t, Epoch: epoch, HandshakeType: 255, Flight: a.flight[from]})
			break
		}
		if encrypted {
			a.sentFrags[from][[3]uint32{0xffffffff, uint32(epoch), uint32(len(body))}] = true
		}
		a.handshake(t, from, epoch, plain)
	case ctAlert:
		if len(plain) == 2 {
			a.emit(from, dtls.TraceEvent{Kind: dtls.TraceAlertSent, Time: t, Epoch: epoch, Alert: plain[1]})
		}
	}
	a.emit(to, dtls.TraceEvent{Kind: dtls.TraceRecordReceived, Time: t, Epoch: epoch, Seq: seq, ContentType: typ, Length: len(body)})
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
		a.sentFrags[from][k] = true
		a.emit(from, dtls.TraceEvent{Kind: dtls.TraceHandshakeSent, Time: t, Epoch: epoch, HandshakeType: ht, MessageSeq: seq,
			FragmentOffset: off, FragmentLength: fl, MessageLength: length, Flight: a.flight[from]})
		if first && off == 0 {
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
	if a.suite != 0 {
		fmt.Fprintf(out, "cipher suite: %s\n", dtls.CipherSuiteName(a.suite))
	}
	fmt.Fprintf(out, "messages (first transmission):\n")
	for _, m := range a.messages {
		fmt.Fprintf(out, "  %s\n", m)
	}
	sort.SliceStable(a.flights, func(i, j int) bool { return a.flights[i].start.Before(a.flights[j].start) })
	fmt.Fprintf(out, "flights: %d\n", len(a.flights))
	for i, f := range a.flights {
		took := ""
		if i+1 < len(a.flights) {
			took = fmt.Sprintf(", answered after %v", a.flights[i+1].start.Sub(f.start).Round(time.Microsecond))
		}
		fmt.Fprintf(out, "  %s flight %d at +%v%s\n", sideName(f.side), f.number, f.start.Sub(a.start).Round(time.Microsecond), took)
	}
	fmt.Fprintf(out, "retransmissions: client %d, server %d\n", a.retransmit[0], a.retransmit[1])
	fmt.Fprintf(out, "duplicate records: %d\n", a.duplicates)
	if len(a.gaps) == 0 {
		fmt.Fprintln(out, "gaps: none")
	} else {
		fmt.Fprintf(out, "gaps: %d\n", len(a.gaps))
		for _, g := range a.gaps {
			fmt.Fprintf(out, "  %s\n", g)
		}
	}
	if a.undecrypt > 0 {
		fmt.Fprintf(out, "encrypted records not decrypted: %d (give -keylog)\n", a.undecrypt)
	}
	switch {
	case a.finished[0] && a.finished[1]:
		fmt.Fprintln(out, "handshake: complete (both Finished seen)")
	case a.undecrypt > 0:
		fmt.Fprintln(out, "handshake: Finished messages encrypted; completion not verified")
	default:
		fmt.Fprintln(out, "handshake: incomplete in this capture")
	}
}
