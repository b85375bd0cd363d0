package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
)

// writeBigCapture writes a classic pcap (raw IPv4) of about size bytes:
// convs conversations, each a ClientHello, a ServerHello and then
// application data records of 100 bytes in both directions, interleaved,
// as a long capture of a busy gateway would be.
func writeBigCapture(t testing.TB, path string, size int64, convs int) (datagrams int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<16)
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:], 0xA1B2C3D4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], 228) // LINKTYPE_IPV4
	w.Write(hdr[:])
	written := int64(len(hdr))
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	packet := func(conv int, fromClient bool, payload []byte) {
		ip := make([]byte, 20+8+len(payload))
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		client, server := [4]byte{10, 0, byte(conv >> 8), byte(conv)}, [4]byte{10, 1, 0, 1}
		sport, dport := uint16(40000+conv), uint16(5684)
		if !fromClient {
			client, server, sport, dport = server, client, dport, sport
		}
		copy(ip[12:], client[:])
		copy(ip[16:], server[:])
		binary.BigEndian.PutUint16(ip[20:], sport)
		binary.BigEndian.PutUint16(ip[22:], dport)
		binary.BigEndian.PutUint16(ip[24:], uint16(8+len(payload)))
		copy(ip[28:], payload)
		var rec [16]byte
		ts = ts.Add(100 * time.Microsecond)
		binary.LittleEndian.PutUint32(rec[0:], uint32(ts.Unix()))
		binary.LittleEndian.PutUint32(rec[4:], uint32(ts.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(ip)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(ip)))
		w.Write(rec[:])
		w.Write(ip)
		written += int64(len(rec) + len(ip))
		datagrams++
	}
	record := func(typ byte, epoch uint16, seq uint64, body []byte) []byte {
		r := make([]byte, 13, 13+len(body))
		r[0], r[1], r[2] = typ, 0xfe, 0xfd
		binary.BigEndian.PutUint16(r[3:], epoch)
		binary.BigEndian.PutUint16(r[5:], uint16(seq>>32))
		binary.BigEndian.PutUint32(r[7:], uint32(seq))
		binary.BigEndian.PutUint16(r[11:], uint16(len(body)))
		return append(r, body...)
	}
	hello := func(typ byte) []byte {
		body := make([]byte, 12+38)
		body[0] = typ
		body[3], body[11] = 38, 38 // length and fragment length
		body[12], body[13] = 0xfe, 0xfd
		body[12+2+32] = 0 // empty session ID
		if typ == 2 {
			body[12+2+32+1], body[12+2+32+2] = 0xc0, 0x2b // the suite
		}
		return record(22, 0, 0, body)
	}
	for c := range convs {
		packet(c, true, hello(1))
		packet(c, false, hello(2))
	}
	data := make([]byte, 100)
	for seq := uint64(1); written < size; seq++ {
		for c := range convs {
			packet(c, seq%2 == 0, record(23, 1, seq, data))
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return datagrams
}

// peakHeap runs f while sampling the heap every few milliseconds, and
// returns the largest HeapAlloc seen (after a GC before f starts).
func peakHeap(f func()) (peak uint64) {
	runtime.GC()
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapAlloc)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	f()
	close(done)
	wg.Wait()
	return peak
}

// BenchmarkAnalyzeLargeCapture reports the peak heap of `dtls analyze`
// over a generated capture of 104 MB (the size of the capture that took
// 929 MB when analyze kept every datagram).
func BenchmarkAnalyzeLargeCapture(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.pcap")
	n := writeBigCapture(b, path, 104<<20, 8)
	st, _ := os.Stat(path)
	b.ResetTimer()
	var peak uint64
	for range b.N {
		peak = max(peak, peakHeap(func() {
			if err := analyze(&analyzeOptions{file: path}, io.Discard); err != nil {
				b.Fatal(err)
			}
		}))
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(st.Size())/(1<<20), "capture-MB")
	b.ReportMetric(float64(n), "datagrams")
}

// TestAnalyzeBoundedMemory: analyze streams a capture instead of holding
// it. On this 16 MiB capture the version that kept every datagram (and
// 100,000 ladder events per conversation) peaked at 156 MiB of heap, and
// at 496 MiB on 104 MiB (BenchmarkAnalyzeLargeCapture); streaming, it
// peaks near 10 MiB (14 MiB on 104 MiB). The bound asserted is far from
// both, so that it is no timing assertion.
func TestAnalyzeBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 16 MiB capture")
	}
	path := filepath.Join(t.TempDir(), "big.pcap")
	writeBigCapture(t, path, 16<<20, 8)
	var out strings.Builder
	var err error
	peak := peakHeap(func() { err = analyze(&analyzeOptions{file: path}, &out) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak heap %.1f MiB over a 16 MiB capture", float64(peak)/(1<<20))
	if peak > 40<<20 {
		t.Errorf("analyze peaked at %.1f MiB of heap on a 16 MiB capture; want it bounded well below 40 MiB", float64(peak)/(1<<20))
	}
	// It still analyzed the conversations: 8, with their handshakes,
	// and a ladder capped with the rest counted.
	if n := strings.Count(out.String(), "conversation "); n != 8 {
		t.Errorf("%d conversations reported, want 8", n)
	}
	if !strings.Contains(out.String(), "later events omitted") {
		t.Error("the capped ladder does not say events were omitted")
	}
}

// TestEpochRecords: duplicates are recognised within dupWindow of the
// newest record, gaps reported once, and a slot reused by a newer record
// is not taken for a duplicate.
func TestEpochRecords(t *testing.T) {
	e := &epochRecords{newest: 5}
	e.see(5)
	type step struct {
		seq          uint64
		dup          bool
		gapFrom, gap uint64
	}
	for _, s := range []step{
		{6, false, 0, 0},
		{6, true, 0, 0},
		{9, false, 7, 8},
		{7, false, 0, 0}, // late, not a duplicate
		{7, true, 0, 0},
		{5, true, 0, 0},
		{9 + dupWindow, false, 10, 8 + dupWindow},
		{9 + dupWindow, true, 0, 0},
		{9, false, 0, 0},              // too old to tell: not counted
		{10 + dupWindow, false, 0, 0}, // reuses 10's slot, which was never set
		{11 + dupWindow, false, 0, 0},
		{10 + dupWindow, true, 0, 0},
		{12 + 3*dupWindow, false, 12 + dupWindow, 11 + 3*dupWindow},
		{12 + 2*dupWindow, false, 0, 0}, // same slot, a window older: too old
	} {
		dup, from, to := e.see(s.seq)
		if dup != s.dup || from != s.gapFrom || to != s.gap {
			t.Errorf("see(%d) = %v, %d..%d; want %v, %d..%d", s.seq, dup, from, to, s.dup, s.gapFrom, s.gap)
		}
	}
}

// TestAnalyzeKeysAfterPackets: a Decryption Secrets Block written after
// the packets it decrypts still decrypts them: analyze reads the whole
// key log in a first pass. Written for 1.2 (a CLIENT_RANDOM line; the
// 1.2 suite did not keep 1.3 off once it became the default), run in both
// versions, whose key logs differ.
func TestAnalyzeKeysAfterPackets(t *testing.T) {
	for _, v := range []struct {
		name string
		vers uint16
	}{{"1.2", dtls.VersionDTLS12}, {"1.3", dtls.VersionDTLS13}} {
		t.Run(v.name, func(t *testing.T) { testAnalyzeKeysAfterPackets(t, v.vers) })
	}
}

func testAnalyzeKeysAfterPackets(t *testing.T, vers uint16) {
	path := filepath.Join(t.TempDir(), "late-keys.pcapng")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	capw := capture.NewWriter(f)
	var keys bytes.Buffer
	psk := func([]byte) ([]byte, error) { return []byte("late keys, 16 b"), nil }
	suites := []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8}
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{PSK: psk, CipherSuites: suites})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{PSK: psk, PSKIdentity: []byte("id"), CipherSuites: suites,
		MaxVersion: vers, Tracer: capw.Tracer(nil), KeyLogWriter: &keys})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := capw.KeyLogWriter().Write(keys.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := capw.Close(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := analyze(&analyzeOptions{file: path}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "handshake: complete (both Finished seen)") || strings.Contains(out.String(), "not decrypted") {
		t.Errorf("the late key log did not decrypt the Finished messages:\n%s", out.String())
	}
}
