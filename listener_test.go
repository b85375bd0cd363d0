package dtls

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// simEcho runs a Listener on the simulated network n at lossServerAddr
// that echoes every record on every connection it accepts. It is closed,
// and its goroutines waited for, when the test (or synctest bubble) ends.
func simEcho(t *testing.T, n *netsim.Network, config *Config) *Listener {
	t.Helper()
	pc, err := n.ListenPacket(lossServerAddr)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(pc, config)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				buf := make([]byte, 1<<14)
				for {
					k, err := nc.Read(buf)
					if err != nil {
						return
					}
					if _, err := nc.Write(buf[:k]); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l
}

// simDial runs a client handshake from addr to lossServerAddr on n.
func simDial(t *testing.T, n *netsim.Network, addr netip.AddrPort, config *Config) *Conn {
	t.Helper()
	nc, err := n.Dial(addr, lossServerAddr)
	if err != nil {
		t.Fatal(err)
	}
	c := Client(nc, config)
	if err := c.HandshakeContext(context.Background()); err != nil {
		t.Fatalf("handshake from %v: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// simExchange writes each message and expects its echo within a (virtual)
// second.
func simExchange(c *Conn, msgs ...string) error {
	buf := make([]byte, 1<<14)
	for _, m := range msgs {
		if _, err := c.Write([]byte(m)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		k, err := c.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:k]) != m {
			return &echoError{got: string(buf[:k]), want: m}
		}
	}
	return nil
}

type echoError struct{ got, want string }

func (e *echoError) Error() string { return "echo " + e.got + ", want " + e.want }

// spoofConn is a client's socket that can send its next datagrams as if
// from another address, as an attacker who can forge source addresses
// does with its own genuine records.
type spoofConn struct {
	net.Conn
	n       *netsim.Network
	to      netip.AddrPort
	spoofAs atomic.Pointer[netip.AddrPort]
}

func (s *spoofConn) Write(b []byte) (int, error) {
	if from := s.spoofAs.Load(); from != nil {
		s.n.Inject(*from, s.to, b)
		return len(b), nil
	}
	return s.Conn.Write(b)
}

// TestCIDMoveKeepsOthersAddress is finding 3 of issue 10: a CID client
// that can forge a victim's source address sends one genuine record of its
// own "from" the victim. RFC 9146 §6 lets the attacker's connection follow
// its peer there, but the victim's datagrams must still reach the victim:
// one connection's move never takes another live connection's address.
//
// Written for 1.2 (tls12_cid records), run with 1.3 clients too.
func TestCIDMoveKeepsOthersAddress(t *testing.T) {
	inBothVersions(t, testCIDMoveKeepsOthersAddress)
}

func testCIDMoveKeepsOthersAddress(t *testing.T, vers uint16) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: time.Millisecond})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		cc.MaxVersion = vers
		sc.ConnectionIDGenerator = RandomCIDGenerator(8)
		l := simEcho(t, n, sc)

		victimAddr := netip.MustParseAddrPort("10.0.0.3:5683")
		victim := simDial(t, n, victimAddr, cc)
		if err := simExchange(victim, "victim before"); err != nil {
			t.Fatal(err)
		}

		attackerAddr := netip.MustParseAddrPort("10.0.0.66:40000")
		acfg := cc.Clone()
		acfg.ConnectionIDGenerator = OnlySendCIDGenerator()
		// Without rrc, as here, the attacker's genuine record moves its
		// connection at once (RFC 9146 §6); with it (the default) the
		// move would wait for a path_response the victim cannot send.
		acfg.ReturnRoutabilityCheck = RRCOff
		raw, err := n.Dial(attackerAddr, lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		sp := &spoofConn{Conn: raw, n: n, to: lossServerAddr}
		attacker := Client(sp, acfg)
		defer attacker.Close()
		if err := simExchange(attacker, "attacker before"); err != nil {
			t.Fatal(err)
		}
		if len(attacker.ConnectionState().RemoteConnectionID) == 0 {
			t.Fatal("the attacker got no CID")
		}
		sp.spoofAs.Store(&victimAddr)
		if _, err := attacker.Write([]byte("from the victim's address")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		sp.spoofAs.Store(nil)

		if err := simExchange(victim, "victim after", "and again"); err != nil {
			t.Fatalf("the victim's datagrams no longer reach it: %v", err)
		}
		if got := l.table.byAddress(victimAddr); got == nil || len(got.cids) != 0 {
			t.Fatalf("the victim's address is routed to %p", got)
		}
		if got := l.Stats().MovesRefused; got != 1 {
			t.Errorf("MovesRefused = %d, want 1", got)
		}
	})
}

// dropTracer collects the reasons of TraceDatagramDropped and
// TraceListenerEvent events.
type dropTracer struct {
	mu     sync.Mutex
	counts map[string]int
}

func (d *dropTracer) trace(ev *TraceEvent) {
	if ev.Kind != TraceDatagramDropped && ev.Kind != TraceListenerEvent {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.counts == nil {
		d.counts = map[string]int{}
	}
	d.counts[ev.Reason]++
}

func (d *dropTracer) count(reason string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counts[reason]
}

// TestListenerDropsVisible is issue 11 item 6: each datagram the Listener
// discards is counted by reason in Listener.Stats and traced.
func TestListenerDropsVisible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		// DTLS 1.2: the exact count of "queue full" drops below
		// assumes the connection takes nothing from its queue after the
		// handshake. In 1.3, with its post-handshake ticket, the count
		// was seen to vary by one with goroutine order.
		cc.MaxVersion = VersionDTLS12
		var dt dropTracer
		sc.Tracer = dt.trace
		pc, _ := n.ListenPacket(lossServerAddr)
		l, err := NewListener(pc, sc)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		stranger := netip.MustParseAddrPort("10.0.0.9:9999")

		// A protected record from an address without a connection.
		rec := appendRecordHeader(nil, recordTypeApplicationData, VersionDTLS12, 1, 5, 30)
		n.Inject(stranger, lossServerAddr, append(rec, make([]byte, 30)...))
		// An epoch-0 handshake record that is no ClientHello.
		bad := appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 0, 0, 20)
		n.Inject(stranger, lossServerAddr, append(bad, make([]byte, 20)...))

		// A connection nobody accepts or reads: its queue fills.
		c := simDial(t, n, lossClientAddr, cc)
		const extra = 5
		for range defaultMaxQueuedDatagrams + extra {
			if _, err := c.Write([]byte("unread")); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()

		st := l.Stats()
		for reason, want := range map[string]uint64{
			"unknown peer": 1,
			"bad hello":    1,
			"queue full":   extra,
		} {
			if st.Dropped[reason] != want {
				t.Errorf("Stats().Dropped[%q] = %d, want %d", reason, st.Dropped[reason], want)
			}
			if got := dt.count(reason); got != int(want) {
				t.Errorf("%d %q events traced, want %d", got, reason, want)
			}
		}
		if st.HandshakesStarted != 1 || st.HandshakesCompleted != 1 || st.HandshakesFailed != 0 {
			t.Errorf("handshakes started/completed/failed: %d/%d/%d, want 1/1/0", st.HandshakesStarted, st.HandshakesCompleted, st.HandshakesFailed)
		}
	})
}

// TestListenerDropNoAllocs: counting a drop allocates nothing when there
// is no Tracer.
func TestListenerDropNoAllocs(t *testing.T) {
	_, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	f := newFloodPacketConn(t, 0, 0)
	l, err := NewListener(f, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ap := spoofedAddr(1)
	if a := testing.AllocsPerRun(100, func() { l.drop(dropUnknownPeer, ap, 40) }); a != 0 {
		t.Errorf("%.1f allocations per drop without a Tracer", a)
	}
}

// TestListenerAcceptBacklog is issue 10 finding 4's first half: with
// nobody calling Accept, connections beyond Config.AcceptBacklog are
// closed with a close_notify once they waited acceptBacklogWait, instead
// of each keeping a goroutine waiting for Accept; the peer sees the close.
func TestListenerAcceptBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: time.Millisecond})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		sc.AcceptBacklog = 2
		pc, _ := n.ListenPacket(lossServerAddr)
		l, err := NewListener(pc, sc)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		const clients = 5
		var closed int
		for i := range clients {
			nc, err := n.Dial(netip.AddrPortFrom(lossClientAddr.Addr(), uint16(1000+i)), lossServerAddr)
			if err != nil {
				t.Fatal(err)
			}
			c := Client(nc, cc)
			defer c.Close()
			// The close_notify may overtake the server's last flight.
			if err := c.Handshake(); err != nil {
				if !strings.Contains(err.Error(), "peer closed") {
					t.Fatal(err)
				}
				closed++
				continue
			}
			// Those beyond the backlog are closed once they waited
			// acceptBacklogWait for room.
			c.SetReadDeadline(time.Now().Add(acceptBacklogWait + time.Second))
			if _, err := c.Read(make([]byte, 10)); err == io.EOF {
				closed++
			}
		}
		if closed != clients-sc.AcceptBacklog {
			t.Errorf("%d clients saw close_notify, want %d", closed, clients-sc.AcceptBacklog)
		}
		if got := l.Stats().BacklogFull; got != clients-uint64(sc.AcceptBacklog) {
			t.Errorf("BacklogFull = %d, want %d", got, clients-sc.AcceptBacklog)
		}
		for range sc.AcceptBacklog {
			c, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
	})
}

// TestListenerAcceptBacklogBurst is issue 14's 512-client loss: when
// more handshakes complete at once than Config.AcceptBacklog holds, and
// the application accepts them a moment later, none is lost: those
// beyond the backlog wait for room, holding their handshake slots, and
// each peer's first datagram reaches Accept's connection. Before, they
// were closed at once (BacklogFull), and the datagram their peer sent,
// believing itself connected, dropped as from an unknown peer. Meanwhile
// the waiting connections keep their slots from new peers, whose
// ClientHellos are dropped and retransmitted.
func TestListenerAcceptBacklogBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: time.Millisecond})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		sc.AcceptBacklog = 1
		sc.MaxHandshakes = 2 // all taken by the two that wait
		pc, _ := n.ListenPacket(lossServerAddr)
		l, err := NewListener(pc, sc)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		const clients = 3
		var cs []*Conn
		for i := range clients {
			nc, err := n.Dial(netip.AddrPortFrom(lossClientAddr.Addr(), uint16(1000+i)), lossServerAddr)
			if err != nil {
				t.Fatal(err)
			}
			c := Client(nc, cc)
			defer c.Close()
			if err := c.Handshake(); err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			if _, err := fmt.Fprintf(c, "first of %d", i); err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			cs = append(cs, c)
		}
		synctest.Wait()
		if st := l.Stats(); st.BacklogFull != 0 || st.Handshaking != clients-sc.AcceptBacklog {
			t.Errorf("before Accept: BacklogFull = %d, Handshaking = %d; want 0 and %d (the waiting connections hold their slots)",
				st.BacklogFull, st.Handshaking, clients-sc.AcceptBacklog)
		}
		// Every slot is taken, by handshakes that completed: a new peer
		// is not let in, and does not evict them, however long they
		// have waited.
		time.Sleep(acceptBacklogWait / 2)
		nc, err := n.Dial(netip.AddrPortFrom(lossClientAddr.Addr(), 2000), lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		late := Client(nc, cc)
		defer late.Close()
		lateDone := make(chan error, 1)
		go func() { lateDone <- late.Handshake() }()
		time.Sleep(100 * time.Millisecond)
		if st := l.Stats(); st.Dropped["handshake limit"]+st.Dropped["handshake limit per source"] == 0 || st.HandshakesEvicted != 0 || st.HandshakesStarted != clients {
			t.Errorf("a new peer while the slots are held: dropped %v, HandshakesEvicted = %d, HandshakesStarted = %d; want a handshake limit drop, 0, %d",
				st.Dropped, st.HandshakesEvicted, st.HandshakesStarted, clients)
		}
		got := map[string]bool{}
		buf := make([]byte, 64)
		accepted := make(chan net.Conn, clients)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				accepted <- c
			}
		}()
		for range clients {
			var c net.Conn
			select {
			case c = <-accepted:
			case <-time.After(acceptBacklogWait):
				t.Fatalf("Accept returned %d connections of %d (BacklogFull = %d)", len(got), clients, l.Stats().BacklogFull)
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("first datagram of %v: %v", c.RemoteAddr(), err)
			}
			got[string(buf[:k])] = true
		}
		for i := range clients {
			if w := fmt.Sprintf("first of %d", i); !got[w] {
				t.Errorf("%q not read; read %v", w, got)
			}
		}
		if st := l.Stats(); st.BacklogFull != 0 {
			t.Errorf("BacklogFull = %d, want 0", st.BacklogFull)
		}
		// The slots freed, the new peer's retransmitted ClientHello gets in.
		if err := <-lateDone; err != nil {
			t.Fatalf("the new peer after Accept: %v", err)
		}
	})
}

// TestListenerQueueMemory is issue 10 finding 4's second half: 200
// connections nobody accepts or reads, each sent 64 records of 38 bytes
// (475 KiB in all), made 797 MiB of heap when every queued datagram held
// a 64 KiB buffer. Now each holds a buffer of its size class, so the heap
// grows by about what was sent; the bound asserted is generous.
func TestListenerQueueMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		// DTLS 1.2: the record sizes below are those of AES-128-CCM_8
		// under a 1.2 record header; a 1.3 client would negotiate
		// TLS_AES_128_GCM_SHA256 and the count of bytes sent be wrong.
		cc.MaxVersion = VersionDTLS12
		sc.AcceptBacklog = 200 // all of them wait for Accept
		pc, _ := n.ListenPacket(lossServerAddr)
		l, err := NewListener(pc, sc)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		const conns, records = 200, defaultMaxQueuedDatagrams
		clients := make([]*Conn, conns)
		for i := range clients {
			clients[i] = simDial(t, n, netip.AddrPortFrom(lossClientAddr.Addr(), uint16(1000+i)), cc)
		}
		synctest.Wait()
		before := heapInUse()
		payload := make([]byte, 9) // a 38-byte record with AES-128-CCM_8
		sent := 0
		for _, c := range clients {
			for range records {
				if _, err := c.Write(payload); err != nil {
					t.Fatal(err)
				}
				sent += recordHeaderLen + 8 + len(payload) + 8
			}
			synctest.Wait() // the simulated socket holds 1024 datagrams
		}
		after := heapInUse()
		growth := int64(after) - int64(before)
		t.Logf("%d bytes of records queued for %d unaccepted connections: heap %+d bytes", sent, conns, growth)
		const bound = 16 << 20
		if growth > bound {
			t.Errorf("heap grew by %d bytes for %d bytes of queued records, want < %d", growth, sent, bound)
		}
		if d := l.Stats().Dropped; len(d) > 0 {
			t.Errorf("drops: %v", d)
		}
	})
}

// TestListenerQueueBytes: a connection's queue holds at most
// MaxQueuedBytes of buffers, whatever the count of datagrams.
func TestListenerQueueBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		sc.MaxQueuedBytes = 4 * 512
		pc, _ := n.ListenPacket(lossServerAddr)
		l, err := NewListener(pc, sc)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c := simDial(t, n, lossClientAddr, cc)
		// The client is done when the server's Finished arrives; the
		// server's handshake goroutine may still hold the buffer of the
		// client's last flight, which counts against MaxQueuedBytes
		// until it is released. Let it finish first.
		synctest.Wait()
		for range 10 {
			if _, err := c.Write(make([]byte, 300)); err != nil { // a 512-byte class each
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if got := l.Stats().Dropped["queue bytes full"]; got != 6 {
			t.Errorf("%d datagrams dropped for a full queue, want 6 of 10", got)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		buf := make([]byte, 1000)
		for range 4 {
			s.SetReadDeadline(time.Now().Add(time.Second))
			if k, err := s.Read(buf); err != nil || k != 300 {
				t.Fatalf("Read: %d, %v", k, err)
			}
		}
	})
}

// TestListenerLimitsValidated: nonsense limits fail at NewListener with an
// error that names the field.
func TestListenerLimitsValidated(t *testing.T) {
	for _, tc := range []struct {
		set   func(*Config)
		field string
	}{
		{func(c *Config) { c.MaxHandshakes = -1 }, "MaxHandshakes"},
		{func(c *Config) { c.MaxHandshakesPerSource = -2 }, "MaxHandshakesPerSource"},
		{func(c *Config) { c.MaxHandshakes, c.MaxHandshakesPerSource = 10, 20 }, "MaxHandshakesPerSource"},
		{func(c *Config) { c.MaxQueuedDatagrams = -1 }, "MaxQueuedDatagrams"},
		{func(c *Config) { c.MaxQueuedDatagrams = maxQueuedDatagramsLimit + 1 }, "MaxQueuedDatagrams"},
		{func(c *Config) { c.MaxQueuedBytes = -1 }, "MaxQueuedBytes"},
		{func(c *Config) { c.AcceptBacklog = -1 }, "AcceptBacklog"},
		{func(c *Config) { c.AcceptBacklog = 1 << 30 }, "AcceptBacklog"},
		{func(c *Config) { c.MaxConnections = -5 }, "MaxConnections"},
		{func(c *Config) { c.SessionCacheSize = -1 }, "SessionCacheSize"},
		{func(c *Config) { c.SessionCacheSize = maxServerSessions + 1 }, "SessionCacheSize"},
		{func(c *Config) { c.SessionLifetime = -time.Second }, "SessionLifetime"},
		{func(c *Config) { c.SessionLifetime = maxSessionLifetime + time.Second }, "SessionLifetime"},
		{func(c *Config) { c.MaxEarlyData = maxEarlyDataLimit + 1 }, "MaxEarlyData"},
	} {
		_, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		tc.set(sc)
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := NewListener(pc, sc)
		pc.Close()
		if err == nil {
			l.Close()
			t.Errorf("%s: NewListener accepted it", tc.field)
			continue
		}
		if !strings.Contains(err.Error(), "Config."+tc.field) {
			t.Errorf("%s: error %q does not name the field", tc.field, err)
		}
	}
	// Meaningful negatives are accepted.
	_, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	sc.IdleTimeout, sc.ReceiveBufferSize = -1, -1
	l, err := Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestListenerReceiveBuffer is the last part of issue 10 finding 6: the
// Listener asks for a larger socket receive buffer than the kernel's
// default and reports what it got, including when the kernel caps it.
func TestListenerReceiveBuffer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads net.core.rmem_max")
	}
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skip(err)
	}
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	_, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	l, err := Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	got := l.Stats().ReceiveBufferSize
	l.Close()
	if want := min(defaultReceiveBuffer, rmemMax); got < want {
		t.Errorf("receive buffer %d bytes, want %d (rmem_max %d)", got, want, rmemMax)
	}
	t.Logf("default: asked %d, got %d (rmem_max %d)", defaultReceiveBuffer, got, rmemMax)

	// More than the kernel allows: capped, and the Tracer hears it.
	var dt dropTracer
	sc.Tracer = dt.trace
	sc.ReceiveBufferSize = 2*rmemMax + 4096
	l, err = Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	got = st.ReceiveBufferSize
	l.Close()
	if !st.ReceiveBufferCapped {
		t.Error("ReceiveBufferCapped not set")
	}
	if got <= 0 || got >= sc.ReceiveBufferSize {
		t.Errorf("asked %d over rmem_max %d, got %d", sc.ReceiveBufferSize, rmemMax, got)
	}
	if dt.count("socket receive buffer capped by the kernel") != 1 {
		t.Error("the cap was not traced")
	}
}
