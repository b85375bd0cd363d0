package dtls

import (
	"fmt"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"
)

// socketCounts returns how many datagrams each of l's sockets read.
func socketCounts(l *Listener) []uint64 {
	n := make([]uint64, len(l.socks))
	for i, s := range l.socks {
		n[i] = s.received.Load()
	}
	return n
}

// busySockets returns the sockets whose count grew since before.
func busySockets(l *Listener, before []uint64) []int {
	var busy []int
	for i, n := range socketCounts(l) {
		if n > before[i] {
			busy = append(busy, i)
		}
	}
	return busy
}

func needReusePort(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("a Listener has several sockets only on Linux")
	}
}

// TestListenerSocketsSpread checks that Listen binds ListenerSockets
// sockets to one address and that the kernel spreads peers over them:
// sixteen clients on sixteen ports all landing on one of four sockets
// would happen once in 4^15 runs.
func TestListenerSocketsSpread(t *testing.T) {
	needReusePort(t)
	checkNoGoroutineLeak(t)
	cc, scfg := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	scfg.ListenerSockets = 4
	l, _ := acceptOne(t, scfg)
	if got := l.Stats().Sockets; got != 4 {
		t.Fatalf("Stats().Sockets = %d, want 4", got)
	}
	for _, s := range l.socks {
		if s.pc.LocalAddr().String() != l.Addr().String() {
			t.Fatalf("socket bound to %v, the Listener to %v", s.pc.LocalAddr(), l.Addr())
		}
	}
	before := socketCounts(l)
	for i := range 16 {
		c, err := Dial("udp", l.Addr().String(), cc)
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, c, fmt.Sprint("client ", i))
		c.Close()
	}
	if busy := busySockets(l, before); len(busy) < 2 {
		t.Fatalf("16 clients reached only sockets %v of 4", busy)
	}
}

// TestListenerSocketsMigration checks that a CID peer whose new port
// lands on another socket than its handshake did keeps its session (the
// sockets share one table of CIDs), that the server follows it, and
// that its replies reach it (sent from the address it sends to).
func TestListenerSocketsMigration(t *testing.T) {
	needReusePort(t)
	checkNoGoroutineLeak(t)
	cc, scfg := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	scfg.ConnectionIDGenerator = RandomCIDGenerator(8)
	scfg.ListenerSockets = 4
	cc.ConnectionIDGenerator = OnlySendCIDGenerator()
	l, conns := acceptOne(t, scfg)
	nat := newNATProxy(t, l.Addr())
	c, err := Dial("udp", nat.front.LocalAddr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange(t, c, "before")
	srv := <-conns
	before := socketCounts(l)
	exchange(t, c, "where")
	home := busySockets(l, before)
	if len(home) != 1 {
		t.Fatalf("one peer's datagrams read by sockets %v", home)
	}
	// Each new port lands on another socket with probability 3/4: 32
	// tries all failing would happen once in 2^64 runs.
	moved := false
	for range 32 {
		second := nat.rebind()
		before := socketCounts(l)
		// The server checks the new address (RFC 9853) before it
		// sends there: the first echo goes to the old one.
		if _, err := c.Write([]byte("rebound")); err != nil {
			t.Fatal(err)
		}
		readUntil(t, c, "the server to follow", func() bool { return sameAddr(srv.RemoteAddr(), second) })
		exchange(t, c, "after rebinding")
		if !sameAddr(srv.RemoteAddr(), second) {
			t.Fatalf("server did not follow the client: %v, want %v", srv.RemoteAddr(), second)
		}
		if busy := busySockets(l, before); len(busy) == 1 && busy[0] != home[0] {
			moved = true
			break
		}
	}
	if !moved {
		t.Fatal("no new port landed on another socket")
	}
	exchange(t, c, "and again")
}

// TestListenerSocketsOption checks the bounds of ListenerSockets and that
// NewListener keeps to the one socket it is given.
func TestListenerSocketsOption(t *testing.T) {
	_, scfg := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	scfg.ListenerSockets = maxListenerSockets + 1
	if l, err := Listen("udp", "127.0.0.1:0", scfg); err == nil {
		l.Close()
		t.Fatal("ListenerSockets above the limit accepted")
	}
	scfg.ListenerSockets = -1
	if l, err := Listen("udp", "127.0.0.1:0", scfg); err == nil {
		l.Close()
		t.Fatal("negative ListenerSockets accepted")
	}
	scfg.ListenerSockets = 3
	l, err := Listen("udp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	want := 3
	if runtime.GOOS != "linux" {
		want = 1
	}
	if got := l.Stats().Sockets; got != want {
		t.Errorf("Listen: %d sockets, want %d", got, want)
	}
	l.Close()
	scfg.ListenerSockets = 0
	if got, want := scfg.listenerSockets(), min(runtime.GOMAXPROCS(0), maxListenerSockets); got != want {
		t.Errorf("default: %d sockets, want GOMAXPROCS (%d)", got, want)
	}
}

// TestBatchReaderNoAllocs checks that reading datagrams with recvmmsg
// allocates nothing per read and hands each batch to the handler, each
// datagram with its source, in order; that a short batch makes serve wait
// for more and a full one ends it.
func TestBatchReaderNoAllocs(t *testing.T) {
	needReusePort(t)
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	r := newBatchReader(rx)
	if r == nil {
		t.Fatal("no batch reader for a UDP socket")
	}
	from := tx.LocalAddr().(*net.UDPAddr).AddrPort()
	var batches []int
	r.handle = func(n int) {
		batches = append(batches, n)
		for i := range n {
			d, ap := r.datagram(i)
			if len(d) != 3 || d[0] != byte(i) || ap != from {
				t.Errorf("datagram %d: %x from %v, want %02x0102 from %v", i, d, ap, i, from)
			}
		}
		// A batch smaller than recvBatch makes serve wait for more; a
		// deadline in the past ends that wait.
		rx.SetReadDeadline(time.Unix(1, 0))
	}
	// Three datagrams, then one read: all three, in order, if they are
	// all queued by then (loopback delivers in the sender's call).
	for i := range 3 {
		tx.Write([]byte{byte(i), 1, 2})
	}
	if err := r.serve(); !isTimeout(err) || !slices.Equal(batches, []int{3}) {
		t.Fatalf("serve: batches %v, %v; want [3] and the deadline", batches, err)
	}
	// A full batch ends serve without an error, so that the next call
	// starts by reading.
	rx.SetReadDeadline(time.Time{})
	batches = nil
	r.handle = func(n int) { batches = append(batches, n) }
	for range recvBatch + 1 {
		tx.Write([]byte{0, 1, 2})
	}
	if err := r.serve(); err != nil || !slices.Equal(batches, []int{recvBatch}) {
		t.Fatalf("serve: batches %v, %v; want [%d]", batches, err, recvBatch)
	}
	count := 0
	r.handle = func(n int) { count += n; r.datagram(0) }
	msg := []byte{9, 9}
	allocs := testing.AllocsPerRun(20, func() {
		for range recvBatch {
			tx.Write(msg)
		}
		if err := r.serve(); err != nil {
			t.Fatalf("serve: %v", err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per batch read", allocs)
	}
	if count == 0 {
		t.Error("no batch handled")
	}
}

// TestListenerAddressTaken checks the race of two sockets' readers that
// both start a handshake for one address: the one that finds the address
// taken in the table gives its handshake slot back and counts a drop,
// and the connection that holds the address keeps it.
func TestListenerAddressTaken(t *testing.T) {
	_, scfg := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	scfg.InsecureSkipHelloVerify = true // any parseable ClientHello starts a handshake
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(pc, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ap := cookieTestAddr
	holder := newListenerConnIO(l, l.socks[0], ap)
	if !l.table.add(ap, holder) {
		t.Fatal("could not route the address")
	}
	body, err := cookieTestHello().marshal()
	if err != nil {
		t.Fatal(err)
	}
	hh := handshakeHeader{typ: typeClientHello, length: uint32(len(body)), fragmentLength: uint32(len(body))}
	d := appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 0, 0, handshakeHeaderLen+len(body))
	d = append(hh.appendTo(d), body...)
	if !l.socks[0].handleHello(d, ap, nil, len(d)) {
		t.Fatal("the ClientHello was not handled")
	}
	st := l.Stats()
	if st.Dropped["address taken"] != 1 || st.Handshaking != 0 || st.HandshakesStarted != 0 {
		t.Fatalf("stats %+v: want one \"address taken\" drop and no handshake", st)
	}
	l.mu.Lock()
	serving := l.serving
	l.mu.Unlock()
	if serving != 0 {
		t.Fatalf("%d serve goroutines counted, want 0", serving)
	}
	if got := l.table.byAddress(ap); got != holder {
		t.Fatal("the address changed hands")
	}
	l.table.remove(holder)
}
