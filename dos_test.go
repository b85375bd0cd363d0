package dtls

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// Denial-of-service tests: what a Listener spends on traffic from
// addresses that never complete a cookie exchange, and the named limits on
// what one cookie-verified peer can make it hold.

// clientHelloDatagram returns a whole ClientHello record like the one our
// client sends first (no cookie), and the offset of its random.
func clientHelloDatagram(t testing.TB, cookie []byte) (d []byte, randomOff int) {
	ch := &clientHelloMsg{
		vers:                         VersionDTLS12,
		random:                       make([]byte, randomLen),
		cookie:                       cookie,
		cipherSuites:                 []uint16{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_PSK_WITH_AES_128_CCM_8},
		compressionMethods:           []uint8{compressionNone},
		supportedCurves:              []tls.CurveID{tls.X25519, tls.CurveP256},
		supportedPoints:              []uint8{pointFormatUncompressed},
		supportedSignatureAlgorithms: supportedSignatureAlgorithms,
		extendedMasterSecret:         true,
		secureRenegotiationSupported: true,
		serverName:                   "dtls.test",
	}
	return wrapClientHello(t, ch), recordHeaderLen + handshakeHeaderLen + 2
}

func wrapClientHello(t testing.TB, ch *clientHelloMsg) []byte {
	body, err := ch.marshal()
	if err != nil {
		t.Fatal(err)
	}
	h := handshakeHeader{typ: typeClientHello, length: uint32(len(body)), fragmentLength: uint32(len(body))}
	d := appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 0, 0, handshakeHeaderLen+len(body))
	d = h.appendTo(d)
	return append(d, body...)
}

// spoofedAddr is the i-th of many distinct source addresses.
func spoofedAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i%60000))
}

// floodPacketConn hands the Listener total spoofed ClientHellos, each from
// its own address, as fast as it reads; after warm of them it waits for the
// test to take a heap measurement. It checks every answer is no larger
// than the datagram that caused it.
type floodPacketConn struct {
	t           testing.TB
	template    []byte
	randomOff   int
	total, warm int
	i           int
	lastLen     int
	warmed      chan struct{}
	resume      chan struct{}
	done        chan struct{}
	closed      chan struct{}
	closeOnce   sync.Once
	answers     atomic.Int64
	tooLarge    atomic.Int64
}

func newFloodPacketConn(t testing.TB, total, warm int) *floodPacketConn {
	d, off := clientHelloDatagram(t, nil)
	return &floodPacketConn{
		t: t, template: d, randomOff: off, total: total, warm: warm,
		warmed: make(chan struct{}), resume: make(chan struct{}),
		done: make(chan struct{}), closed: make(chan struct{}),
	}
}

func (f *floodPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if f.i == f.warm && f.warm > 0 {
		close(f.warmed)
		<-f.resume
	}
	if f.i >= f.total {
		if f.i == f.total {
			close(f.done)
			f.i++
		}
		<-f.closed
		return 0, nil, net.ErrClosed
	}
	n := copy(b, f.template)
	binary.BigEndian.PutUint64(b[f.randomOff:], uint64(f.i))
	ap := spoofedAddr(f.i)
	f.i++
	f.lastLen = n
	return n, net.UDPAddrFromAddrPort(ap), nil
}

func (f *floodPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	// Called from the Listener's reader while it handles the datagram
	// that ReadFrom returned last.
	f.answers.Add(1)
	if len(b) > f.lastLen {
		f.tooLarge.Add(1)
	}
	return len(b), nil
}

func (f *floodPacketConn) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}
func (f *floodPacketConn) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.1:4433"))
}
func (f *floodPacketConn) SetDeadline(t time.Time) error      { return nil }
func (f *floodPacketConn) SetReadDeadline(t time.Time) error  { return nil }
func (f *floodPacketConn) SetWriteDeadline(t time.Time) error { return nil }

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC() // a second cycle empties sync.Pool's victim cache
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// floodHeapBound is the most the heap may grow over the flood: a few bytes
// per spoofed ClientHello would show per-peer state.
const floodHeapBound = 256 << 10

// TestSpoofedClientHelloFlood sends 100 000 ClientHellos without cookies
// from distinct addresses: each gets a HelloVerifyRequest no larger than
// itself, and the Listener keeps nothing.
func TestSpoofedClientHelloFlood(t *testing.T) {
	checkNoGoroutineLeak(t)
	total := 100_000
	if testing.Short() || raceEnabled {
		total = 10_000
	}
	const warm = 1000
	_, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	f := newFloodPacketConn(t, total+warm, warm)
	l, err := NewListener(f, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	<-f.warmed
	before := heapInUse()
	start := time.Now()
	close(f.resume)
	<-f.done
	took := time.Since(start)
	after := heapInUse()
	growth := int64(after) - int64(before)
	t.Logf("%d spoofed ClientHellos in %v (%v each); heap %d -> %d bytes (%+d)", total, took, took/time.Duration(total), before, after, growth)
	if growth > floodHeapBound {
		t.Errorf("heap grew by %d bytes over %d spoofed ClientHellos, want < %d", growth, total, floodHeapBound)
	}
	if got := f.answers.Load(); got != int64(total+warm) {
		t.Errorf("%d HelloVerifyRequests for %d ClientHellos", got, total+warm)
	}
	if n := f.tooLarge.Load(); n > 0 {
		t.Errorf("%d answers larger than the ClientHello", n)
	}
	conns := l.table.len()
	if conns != 0 || l.Stats().Handshaking != 0 {
		t.Errorf("%d connections and %d handshakes after a flood without cookies", conns, l.Stats().Handshaking)
	}
}

// TestHelloVerifyRequestNoAmplification checks the HelloVerifyRequest
// against the smallest ClientHello that parses.
func TestHelloVerifyRequestNoAmplification(t *testing.T) {
	minimal := wrapClientHello(t, &clientHelloMsg{
		vers:               VersionDTLS12,
		random:             make([]byte, randomLen),
		cipherSuites:       []uint16{TLS_PSK_WITH_AES_128_CCM_8},
		compressionMethods: []uint8{compressionNone},
	})
	if _, _, _, ok := parseInitialClientHello(minimal); !ok {
		t.Fatal("minimal ClientHello does not parse")
	}
	typical, _ := clientHelloDatagram(t, nil)
	for _, tc := range []struct {
		name string
		d    []byte
	}{{"minimal", minimal}, {"typical", typical}} {
		synctest.Test(t, func(t *testing.T) {
			n := netsim.New(1, netsim.Link{})
			pc, _ := n.ListenPacket(lossServerAddr)
			_, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
			l, err := NewListener(pc, sc)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			client, _ := n.ListenPacket(lossClientAddr)
			defer client.Close()
			client.WriteTo(tc.d, net.UDPAddrFromAddrPort(lossServerAddr))
			buf := make([]byte, 2048)
			client.SetReadDeadline(time.Now().Add(time.Second))
			k, _, err := client.ReadFrom(buf)
			if err != nil {
				t.Fatalf("%s ClientHello (%d bytes): no HelloVerifyRequest: %v", tc.name, len(tc.d), err)
			}
			t.Logf("%s ClientHello %d bytes, HelloVerifyRequest %d bytes", tc.name, len(tc.d), k)
			if k > len(tc.d) {
				t.Errorf("%s: HelloVerifyRequest of %d bytes for a ClientHello of %d", tc.name, k, len(tc.d))
			}
		})
	}
}

// TestMaxHandshakesInProgress opens more cookie-verified handshakes than
// defaultMaxHandshakes from spoofed addresses that never answer: the
// extra one is dropped, and once the stalled ones time out a new one
// proceeds.
func TestMaxHandshakesInProgress(t *testing.T) {
	checkNoGoroutineLeak(t)
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{})
		pc, _ := n.ListenPacket(lossServerAddr)
		_, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		sc.HandshakeTimeout = 5 * time.Second
		l, err := NewListener(pc, sc)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		template, _ := clientHelloDatagram(t, nil)
		withCookie := func(ap netip.AddrPort) []byte {
			_, ch, _, _ := parseInitialClientHello(template)
			ch.cookie = l.gate.cookies.generate(nil, time.Now(), ap, 0, ch)
			return wrapClientHello(t, ch)
		}
		conns := func() int {
			return l.table.len()
		}
		for i := range defaultMaxHandshakes {
			ap := spoofedAddr(i)
			n.Inject(ap, lossServerAddr, withCookie(ap))
			if i%64 == 63 {
				synctest.Wait() // let the reader keep up with its queue
			}
		}
		synctest.Wait()
		if got := conns(); got != defaultMaxHandshakes {
			t.Fatalf("%d handshakes in progress, want %d", got, defaultMaxHandshakes)
		}
		extra := spoofedAddr(defaultMaxHandshakes)
		n.Inject(extra, lossServerAddr, withCookie(extra))
		synctest.Wait()
		if got := conns(); got != defaultMaxHandshakes {
			t.Fatalf("%d handshakes after one more ClientHello, want it dropped at %d", got, defaultMaxHandshakes)
		}
		if got := l.Stats().Dropped["handshake limit"]; got != 1 {
			t.Errorf("Stats().Dropped[\"handshake limit\"] = %d, want 1", got)
		}
		// The stalled handshakes time out and are forgotten.
		time.Sleep(sc.HandshakeTimeout + time.Second)
		synctest.Wait()
		if got := conns(); got != 0 || l.Stats().Handshaking != 0 {
			t.Fatalf("%d connections, %d handshakes after the timeout", got, l.Stats().Handshaking)
		}
		n.Inject(extra, lossServerAddr, withCookie(extra))
		synctest.Wait()
		if got := conns(); got != 1 {
			t.Fatalf("%d handshakes after the others timed out, want the new one", got)
		}
		// Replies went to the spoofed addresses, backing off: bounded.
		if s := n.StatsTo(spoofedAddr(0)); s.Sent > 8 {
			t.Errorf("%d flights to one spoofed address in %v", s.Sent, sc.HandshakeTimeout)
		}
	})
}

// TestPeerBufferLimits: one cookie-verified peer sends records of the next
// epoch before any ChangeCipherSpec, and fragments of far-ahead messages
// with large declared lengths. The server holds at most maxFutureRecords of
// the first and maxHandshakeBuffered bytes of the second, drops the rest,
// and the handshake is not disturbed.
func TestPeerBufferLimits(t *testing.T) {
	checkNoGoroutineLeak(t)
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{})
		pc, _ := n.ListenPacket(lossServerAddr)
		_, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		sc.HandshakeTimeout = 5 * time.Second
		var mu sync.Mutex
		drops := map[string]int{}
		sc.Tracer = func(ev *TraceEvent) {
			if ev.Kind == TraceRecordDropped {
				mu.Lock()
				drops[ev.Reason]++
				mu.Unlock()
			}
		}
		l, err := NewListener(pc, sc)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		client, _ := n.ListenPacket(lossClientAddr)
		defer client.Close()
		to := net.UDPAddrFromAddrPort(lossServerAddr)
		template, _ := clientHelloDatagram(t, nil)
		_, ch, _, _ := parseInitialClientHello(template)
		ch.cookie = l.gate.cookies.generate(nil, time.Now(), lossClientAddr, 0, ch)
		client.WriteTo(wrapClientHello(t, ch), to)
		synctest.Wait()

		seq := uint64(1)
		record := func(typ recordType, epoch uint64, payload []byte) []byte {
			seq++
			d := appendRecordHeader(nil, typ, VersionDTLS12, epoch, seq, len(payload))
			return append(d, payload...)
		}
		const future = 3 * maxFutureRecords
		for range future {
			client.WriteTo(record(recordTypeHandshake, 1, make([]byte, 40)), to)
		}
		// Fragments of messages 2..15 each declaring 64 KiB.
		for s := uint16(2); s < maxReorderMessages; s++ {
			frag := fragment(typeCertificate, maxHandshakeMessageLen, s, 1000, testBody(100, byte(s)))
			client.WriteTo(record(recordTypeHandshake, 0, frag), to)
		}
		synctest.Wait()
		mu.Lock()
		gotFuture, gotFull := drops[dropFutureEpoch.String()], drops[fragBufferFull]
		mu.Unlock()
		if gotFuture != future-maxFutureRecords {
			t.Errorf("%d future-epoch records dropped, want %d beyond maxFutureRecords", gotFuture, future-maxFutureRecords)
		}
		perMsg := maxHandshakeMessageLen + bitmapLen(maxHandshakeMessageLen)
		if want := maxReorderMessages - 2 - maxHandshakeBuffered/perMsg; gotFull != want {
			t.Errorf("%d far-ahead fragments dropped for a full buffer, want %d", gotFull, want)
		}
		alive := l.table.len()
		if alive != 1 {
			t.Errorf("%d connections, want the one handshake still running", alive)
		}
	})
}

// BenchmarkBogusClientHello is the CPU cost of one spoofed ClientHello on
// the Listener's path: parse, cookie, HelloVerifyRequest, and a write to a
// socket that discards it.
func BenchmarkBogusClientHello(b *testing.B) {
	_, sc := configsFor(b, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	f := newFloodPacketConn(b, 0, 0)
	l, err := NewListener(f, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	<-f.done // the reader is parked
	ap := spoofedAddr(1)
	b.ReportAllocs()
	for b.Loop() {
		f.lastLen = len(f.template)
		l.socks[0].handleHello(f.template, ap, nil, len(f.template))
	}
	if f.tooLarge.Load() > 0 {
		b.Fatal("answer larger than the ClientHello")
	}
}
