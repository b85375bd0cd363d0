package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
)

var testTime = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func readTestFile(t *testing.T, name string) ([]Datagram, []byte) {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dgs, keyLog, err := ReadFile(f)
	if err != nil {
		t.Fatalf("ReadFile(%s): %v", name, err)
	}
	return dgs, keyLog
}

// checksumOK reports whether the one's-complement sum over b, plus the
// pseudo-header sum, is all ones: the RFC 1071 receiver check.
func checksumOK(pseudo uint32, b []byte) bool { return fold(sum(pseudo, b)) == 0xFFFF }

func TestAppendIPUDPChecksums(t *testing.T) {
	for _, tc := range []struct{ src, dst string }{
		{"192.0.2.1:4433", "198.51.100.7:50000"},
		{"[::ffff:192.0.2.1]:4433", "198.51.100.7:50000"}, // mapped: written as IPv4
		{"[2001:db8::1]:4433", "[fe80::1]:1"},
	} {
		for _, n := range []int{0, 1, 2, 3, 100, 1500} {
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = byte(i*7 + n)
			}
			src, dst := mustAddrPort(tc.src), mustAddrPort(tc.dst)
			pkt, err := appendIPUDP(nil, src, dst, payload)
			if err != nil {
				t.Fatal(err)
			}
			var hdr int
			var pseudo uint32
			if pkt[0]>>4 == 4 {
				hdr = ipv4HeaderLen
				if !checksumOK(0, pkt[:hdr]) {
					t.Errorf("%s→%s len %d: bad IPv4 header checksum", tc.src, tc.dst, n)
				}
				pseudo = sum(0, pkt[12:20]) + 17 + uint32(len(pkt)-hdr)
			} else {
				hdr = ipv6HeaderLen
				pseudo = sum(0, pkt[8:40]) + 17 + uint32(len(pkt)-hdr)
			}
			if binary.BigEndian.Uint16(pkt[hdr+6:]) == 0 {
				t.Errorf("%s→%s len %d: UDP checksum left zero", tc.src, tc.dst, n)
			}
			if !checksumOK(pseudo, pkt[hdr:]) {
				t.Errorf("%s→%s len %d: bad UDP checksum", tc.src, tc.dst, n)
			}
		}
	}
}

func TestAppendIPUDPErrors(t *testing.T) {
	if _, err := appendIPUDP(nil, mustAddrPort("192.0.2.1:1"), mustAddrPort("[2001:db8::1]:2"), nil); err == nil {
		t.Error("mixed families: no error")
	}
	if _, err := appendIPUDP(nil, mustAddrPort("192.0.2.1:1"), mustAddrPort("192.0.2.2:2"), make([]byte, maxUDPPayloadIPv4+1)); err == nil {
		t.Error("oversized IPv4 datagram: no error")
	}
	if _, err := appendIPUDP(nil, mustAddrPort("[::1]:1"), mustAddrPort("[::1]:2"), make([]byte, maxUDPPayloadIPv6+1)); err == nil {
		t.Error("oversized IPv6 datagram: no error")
	}
	// A dual-stack socket on [::] talking to an IPv4 peer, and a
	// missing address, are written as the unspecified address.
	for _, tc := range []struct{ src, dst netip.AddrPort }{
		{mustAddrPort("[::]:4433"), mustAddrPort("192.0.2.1:5000")},
		{netip.AddrPort{}, mustAddrPort("192.0.2.1:5000")},
		{netip.AddrPort{}, netip.AddrPort{}},
	} {
		pkt, err := appendIPUDP(nil, tc.src, tc.dst, []byte("x"))
		if err != nil {
			t.Errorf("%v→%v: %v", tc.src, tc.dst, err)
			continue
		}
		if pkt[0]>>4 != 4 || !bytes.Equal(pkt[12:16], []byte{0, 0, 0, 0}) {
			t.Errorf("%v→%v: source not 0.0.0.0: % x", tc.src, tc.dst, pkt[:20])
		}
	}
}

// TestRoundTrip writes datagrams of both families and reads them back.
func TestRoundTrip(t *testing.T) {
	want := []Datagram{
		{testTime, mustAddrPort("127.0.0.1:4433"), mustAddrPort("127.0.0.1:50000"), []byte("one")},
		{testTime.Add(time.Nanosecond), mustAddrPort("[2001:db8::1]:4433"), mustAddrPort("[2001:db8::2]:50000"), []byte{}},
		{testTime.Add(time.Second), mustAddrPort("10.0.0.1:1"), mustAddrPort("10.0.0.2:2"), bytes.Repeat([]byte("z"), 1400)},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if _, err := fmt.Fprint(w.KeyLogWriter(), "CLIENT_RANDOM 00 11\nCLIENT_RAN"); err != nil {
		t.Fatal(err)
	}
	for _, d := range want {
		if err := w.WritePacket(d.Time, d.Src, d.Dst, d.Payload); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprint(w.KeyLogWriter(), "DOM 22 33") // unterminated: written at Close
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(testTime, want[0].Src, want[0].Dst, nil); err == nil {
		t.Error("WritePacket after Close: no error")
	}
	if buf.Len()%4 != 0 {
		t.Errorf("file length %d is not a multiple of 4", buf.Len())
	}
	got, keyLog, err := ReadFile(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(keyLog) != "CLIENT_RANDOM 00 11\nCLIENT_RANDOM 22 33\n" {
		t.Errorf("key log %q", keyLog)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d datagrams, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) || g.Src != w.Src || g.Dst != w.Dst || !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("datagram %d: got %v %v→%v %d bytes, want %v %v→%v %d bytes",
				i, g.Time, g.Src, g.Dst, len(g.Payload), w.Time, w.Src, w.Dst, len(w.Payload))
		}
	}
}

// TestKeyLogBeforeHeldPackets checks the ordering promise: a secret written
// to KeyLogWriter precedes in the file the packets recorded just before it
// (a server records the client's key exchange before it derives the
// secret) and every packet after it.
func TestKeyLogBeforeHeldPackets(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	a, b := mustAddrPort("127.0.0.1:1"), mustAddrPort("127.0.0.1:2")
	w.WritePacket(testTime, a, b, []byte("before"))
	fmt.Fprintln(w.KeyLogWriter(), "CLIENT_RANDOM aa bb")
	w.WritePacket(testTime, a, b, []byte("after"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f := buf.String()
	i, j, k := strings.Index(f, "before"), strings.Index(f, "CLIENT_RANDOM aa bb"), strings.Index(f, "after")
	if !(j >= 0 && j < i && i < k) {
		t.Errorf("order in file: before@%d secret@%d after@%d", i, j, k)
	}
}

// TestHeldPacketsBounded checks that the Writer holds back at most
// maxHeldPackets: older packets are written before a later secret.
func TestHeldPacketsBounded(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	a, b := mustAddrPort("127.0.0.1:1"), mustAddrPort("127.0.0.1:2")
	w.WritePacket(testTime, a, b, []byte("oldest"))
	for range maxHeldPackets {
		w.WritePacket(testTime, a, b, []byte("filler"))
	}
	fmt.Fprintln(w.KeyLogWriter(), "CLIENT_RANDOM aa bb")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f := buf.String()
	if i, j := strings.Index(f, "oldest"), strings.Index(f, "CLIENT_RANDOM aa bb"); !(i >= 0 && i < j) {
		t.Errorf("the oldest packet was held past the limit: oldest@%d secret@%d", i, j)
	}
	if n := strings.Count(f, "filler"); n != maxHeldPackets {
		t.Errorf("%d filler packets written, want %d", n, maxHeldPackets)
	}
}

// TestTracer drives the Tracer with synthetic events of both sides from
// many goroutines, as a Listener's connections would.
func TestTracer(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	var mu sync.Mutex
	var seen int
	tr := w.Tracer(func(*dtls.TraceEvent) { mu.Lock(); seen++; mu.Unlock() })
	client, server := mustAddrPort("192.0.2.1:50000"), mustAddrPort("192.0.2.2:4433")
	const goroutines, per = 8, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				payload := []byte(fmt.Sprintf("g%d-%d", g, i))
				tr(&dtls.TraceEvent{Kind: dtls.TraceDatagramSent, Time: testTime, Client: true, Local: client, Remote: server, Datagram: payload})
				tr(&dtls.TraceEvent{Kind: dtls.TraceDatagramReceived, Time: testTime, Local: server, Remote: client, Datagram: payload})
				tr(&dtls.TraceEvent{Kind: dtls.TraceRecordSent, Time: testTime}) // not a datagram: passed on only
				fmt.Fprintf(w.KeyLogWriter(), "CLIENT_RANDOM %02x%02x 00\n", g, i)
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if seen != goroutines*per*3 {
		t.Errorf("next called %d times, want %d", seen, goroutines*per*3)
	}
	dgs, keyLog, err := ReadFile(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(dgs) != goroutines*per*2 {
		t.Fatalf("%d datagrams, want %d", len(dgs), goroutines*per*2)
	}
	if n := bytes.Count(keyLog, []byte("\n")); n != goroutines*per {
		t.Errorf("%d key log lines, want %d", n, goroutines*per)
	}
	sent := map[string]int{}
	for _, d := range dgs {
		switch {
		case d.Src == client && d.Dst == server:
			sent[string(d.Payload)]++
		default:
			t.Errorf("datagram %q from %v to %v", d.Payload, d.Src, d.Dst)
		}
	}
	for p, n := range sent {
		if n != 2 {
			t.Errorf("%q recorded %d times, want twice (sent and received)", p, n)
		}
	}
}

func TestTracerKeepsFirstError(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	tr := w.Tracer(nil)
	tr(&dtls.TraceEvent{Kind: dtls.TraceDatagramSent, Local: mustAddrPort("192.0.2.1:1"), Remote: mustAddrPort("[2001:db8::1]:2")})
	tr(&dtls.TraceEvent{Kind: dtls.TraceDatagramSent, Local: mustAddrPort("192.0.2.1:1"), Remote: mustAddrPort("192.0.2.2:2"), Datagram: []byte("ok")})
	if err := w.Close(); err == nil {
		t.Error("Close: no error after an unrecordable event")
	}
	dgs, _, err := ReadFile(&buf)
	if err != nil || len(dgs) != 1 {
		t.Errorf("later packets must still be recorded: %d datagrams, %v", len(dgs), err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorSticks(t *testing.T) {
	w := NewWriter(failWriter{})
	big := make([]byte, 60000)
	var err error
	for range maxHeldPackets + 3 {
		err = w.WritePacket(testTime, mustAddrPort("192.0.2.1:1"), mustAddrPort("192.0.2.2:2"), big)
	}
	if err == nil {
		t.Error("WritePacket: no error from a failing writer")
	}
	if err := w.Close(); err == nil {
		t.Error("Close: no error from a failing writer")
	}
}
