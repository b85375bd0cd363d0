package dtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// configs0RTT returns client and server configs for DTLS 1.3 with 0-RTT
// on, the client with a session cache.
func configs0RTT(t *testing.T, maxEarly uint32) (cc, sc *Config) {
	cc, sc = configs13(t, "p256")
	sc.MaxEarlyData = maxEarly
	cc.EnableEarlyData = true
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	// Clones share the ticket keys made before them (run0RTT clones).
	sc.resumptionState()
	return cc, sc
}

// result0RTT is what one 0-RTT attempt gave each side.
type result0RTT struct {
	cli, srv  ConnectionState
	early     [][]byte // what the server's EarlyData returned
	srvErr    error
	cliErr    error
	srvDrops  uint64 // the server's dropEarlyData count
	keylogCli string
	keylogSrv string
	srvAlert  uint32 // the server's alertSent: the alert it sent, plus one
}

// run0RTT runs a handshake between Server and Client conns over
// connected sockets, the client queueing early first, and echoes msgs.
func run0RTT(t *testing.T, cc, sc *Config, early []string, msgs ...string) result0RTT {
	t.Helper()
	var r result0RTT
	var klc, kls bytes.Buffer
	cc, sc = cc.Clone(), sc.Clone()
	cc.KeyLogWriter, sc.KeyLogWriter = &klc, &kls
	cli, srv := connectedPair(t, cc, sc)
	defer cli.Close()
	defer srv.Close()
	for _, e := range early {
		if _, err := cli.WriteEarlyData([]byte(e)); err != nil {
			t.Fatalf("WriteEarlyData: %v", err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if r.srvErr = srv.Handshake(); r.srvErr != nil {
			return
		}
		r.early = srv.EarlyData()
		buf := make([]byte, 1<<14)
		for range msgs {
			n, err := srv.Read(buf)
			if err == nil {
				_, err = srv.Write(buf[:n])
			}
			if err != nil {
				r.srvErr = err
				return
			}
		}
	}()
	r.cliErr = cli.Handshake()
	if r.cliErr == nil {
		exchange(t, cli, msgs...)
	} else {
		srv.SetReadDeadline(time.Now().Add(2 * time.Second))
	}
	<-done
	r.cli, r.srv = cli.ConnectionState(), srv.ConnectionState()
	r.srvDrops = srv.drops[dropEarlyData].Load()
	r.srvAlert = srv.alertSent.Load()
	r.keylogCli, r.keylogSrv = klc.String(), kls.String()
	return r
}

// earlyLine is the CLIENT_EARLY_TRAFFIC_SECRET line of a key log, or "".
func earlyLine(keylog string) string {
	for l := range strings.Lines(keylog) {
		if strings.HasPrefix(l, keyLogClientEarly+" ") {
			return l
		}
	}
	return ""
}

func wantEarly(t *testing.T, got [][]byte, want []string) {
	t.Helper()
	var g []string
	for _, b := range got {
		g = append(g, string(b))
	}
	if !slices.Equal(g, want) {
		t.Fatalf("server's early data %q, want %q", g, want)
	}
}

func TestEarlyData13Accept(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, suite := range []uint16{suiteTLSAES128GCMSHA256, suiteTLSAES256GCMSHA384} {
		t.Run(CipherSuiteName(suite), func(t *testing.T) {
			cc, sc := configs0RTT(t, 1000)
			sc.CipherSuites = []uint16{suite}
			first := run0RTT(t, cc, sc, []string{"not yet"}, "ticket?")
			if first.cliErr != nil || first.srvErr != nil {
				t.Fatalf("first handshake: %v / %v", first.cliErr, first.srvErr)
			}
			if first.cli.EarlyDataAccepted || first.srv.EarlyDataAccepted || first.early != nil {
				t.Fatal("early data accepted without a ticket")
			}
			cs := cached13(cc, "dtls.test")
			if cs == nil || cs.maxEarlyData != 1000 {
				t.Fatalf("cached ticket allows %v bytes of early data, want 1000", cs)
			}
			early := []string{"GET /a", "GET /b", strings.Repeat("x", 900)}
			r := run0RTT(t, cc, sc, early, "after")
			if r.cliErr != nil || r.srvErr != nil {
				t.Fatalf("0-RTT handshake: %v / %v", r.cliErr, r.srvErr)
			}
			if !r.cli.DidResume || !r.cli.EarlyDataAccepted || !r.srv.EarlyDataAccepted {
				t.Fatalf("resumed %v, early data accepted: client %v server %v", r.cli.DidResume, r.cli.EarlyDataAccepted, r.srv.EarlyDataAccepted)
			}
			// The default groups: the client's X25519 share, taken
			// without a HelloRetryRequest for the preferred hybrid.
			if r.cli.CurveID != tls.X25519 || r.srv.CurveID != tls.X25519 {
				t.Fatalf("0-RTT handshake in %v/%v, want X25519", r.cli.CurveID, r.srv.CurveID)
			}
			wantEarly(t, r.early, early)
			lc, ls := earlyLine(r.keylogCli), earlyLine(r.keylogSrv)
			if lc == "" || lc != ls {
				t.Fatalf("key logs' %s lines: client %q server %q", keyLogClientEarly, lc, ls)
			}
		})
	}
}

// Through a Listener: its hello gate admits the 0-RTT ClientHello
// without a cookie exchange (early data after a HelloRetryRequest is not
// permitted), and a ClientHello offering early data whose ticket does not
// allow it gets the cookie exchange.
func TestEarlyData13Listener(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs0RTT(t, 512)
	var ev budgetEvents
	sc.Tracer = ev.tracer
	c1, s1, c2, s2 := earlyData13Listener(t, cc, sc)
	// The 0-RTT connection, admitted without a cookie, counted its
	// flight against the address budget, the gate's ClientHello included.
	ev.mu.Lock()
	var sent, recv int
	if _, err := fmt.Sscanf(ev.proven, "0-RTT client address proven: %d bytes sent for %d received", &sent, &recv); err != nil || sent == 0 || recv < 200 || sent > amplificationFactor*recv || ev.heldBack != 0 {
		t.Errorf("address budget %q (%v), %d held back", ev.proven, err, ev.heldBack)
	}
	ev.mu.Unlock()
	// At the default groups: the first handshake's HelloRetryRequest,
	// sent for the cookie, asked for X25519MLKEM768; the 0-RTT one has no
	// HelloRetryRequest (it would cost the early data), so the server
	// took the client's X25519 share (keyshare_dtls13.go).
	if c1.CurveID != groupX25519MLKEM768 || s1.CurveID != groupX25519MLKEM768 {
		t.Errorf("first handshake in %v/%v, want X25519MLKEM768", c1.CurveID, s1.CurveID)
	}
	if c2.CurveID != tls.X25519 || s2.CurveID != tls.X25519 {
		t.Errorf("0-RTT handshake in %v/%v, want X25519", c2.CurveID, s2.CurveID)
	}
}

// TestEarlyData13ListenerHybridShare: a client whose 0-RTT ClientHello
// carries an X25519MLKEM768 share (as wolfSSL's does when its session
// was made with the hybrid), so that the ClientHello with its ticket
// takes two datagrams at MTU 1200 and the Listener reassembles it before
// it admits it without a cookie.
func TestEarlyData13ListenerHybridShare(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs0RTT(t, 512)
	cc.CurvePreferences = []tls.CurveID{groupX25519MLKEM768}
	c1, _, c2, s2 := earlyData13Listener(t, cc, sc)
	if c1.CurveID != groupX25519MLKEM768 || c2.CurveID != groupX25519MLKEM768 || s2.CurveID != groupX25519MLKEM768 {
		t.Errorf("handshakes in %v, %v/%v, want X25519MLKEM768", c1.CurveID, c2.CurveID, s2.CurveID)
	}
}

// earlyData13Listener runs two connections through a Listener with sc:
// the first gets a ticket (and a cookie exchange), the second sends
// early data with it, which must be accepted without a cookie exchange.
// It returns both sides' states.
func earlyData13Listener(t *testing.T, cc, sc *Config) (c1, s1, c2, s2 ConnectionState) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(pc, sc)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		cs    ConnectionState
		early [][]byte
	}
	states := make(chan got, 4)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			c := nc.(*Conn)
			states <- got{c.ConnectionState(), c.EarlyData()}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 1<<14)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})
	defer func() { l.Close(); wg.Wait() }()
	dial := func(early ...string) (ConnectionState, got, int) {
		t.Helper()
		cfg := cc.Clone()
		hellos := 0
		cfg.Tracer = func(e *TraceEvent) {
			if e.Kind == TraceHandshakeSent && e.HandshakeType == uint8(typeClientHello) && e.FragmentOffset == 0 {
				hellos++
			}
		}
		raddr, err := net.ResolveUDPAddr("udp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		uc, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			t.Fatal(err)
		}
		c := Client(uc, cfg)
		defer c.Close()
		for _, e := range early {
			if _, err := c.WriteEarlyData([]byte(e)); err != nil {
				t.Fatal(err)
			}
		}
		exchange(t, c, "hello")
		select {
		case s := <-states:
			return c.ConnectionState(), s, hellos
		case <-time.After(10 * time.Second):
			t.Fatal("no server state")
		}
		panic("unreachable")
	}
	c1, gs1, h1 := dial("early?")
	if c1.EarlyDataAccepted || gs1.cs.EarlyDataAccepted || h1 != 2 {
		t.Fatalf("first: accepted %v/%v after %d ClientHellos, want a cookie exchange and no 0-RTT", c1.EarlyDataAccepted, gs1.cs.EarlyDataAccepted, h1)
	}
	c2, gs2, h2 := dial("one", "two")
	if !c2.EarlyDataAccepted || !gs2.cs.EarlyDataAccepted || h2 != 1 {
		t.Fatalf("second: accepted %v/%v after %d ClientHellos, want 0-RTT without a cookie exchange", c2.EarlyDataAccepted, gs2.cs.EarlyDataAccepted, h2)
	}
	wantEarly(t, gs2.early, []string{"one", "two"})
	return c1, gs1.cs, c2, gs2.cs
}

// Rejections: the handshake completes without 0-RTT, the client is told,
// and the server application sees none of the early data.
func TestEarlyData13Reject(t *testing.T) {
	checkNoGoroutineLeak(t)
	t.Run("ticket without early data", func(t *testing.T) {
		cc, sc := configs0RTT(t, 0)
		run0RTT(t, cc, sc, nil, "ticket?")
		if cs := cached13(cc, "dtls.test"); cs == nil || cs.maxEarlyData != 0 {
			t.Fatal("no ticket, or one that allows early data")
		}
		sc.MaxEarlyData = 1000 // too late for the ticket already issued
		r := run0RTT(t, cc, sc, []string{"early"}, "x")
		if r.cliErr != nil || r.srvErr != nil || !r.cli.DidResume {
			t.Fatalf("%v / %v, resumed %v", r.cliErr, r.srvErr, r.cli.DidResume)
		}
		if r.cli.EarlyDataAccepted || r.srv.EarlyDataAccepted || r.early != nil || earlyLine(r.keylogCli) != "" {
			t.Fatal("early data sent or accepted with a ticket that does not allow it")
		}
	})
	t.Run("server turned 0-RTT off", func(t *testing.T) {
		cc, sc := configs0RTT(t, 1000)
		run0RTT(t, cc, sc, nil, "ticket?")
		sc.MaxEarlyData = 0
		r := run0RTT(t, cc, sc, []string{"early"}, "x")
		if r.cliErr != nil || r.srvErr != nil || !r.cli.DidResume {
			t.Fatalf("%v / %v, resumed %v", r.cliErr, r.srvErr, r.cli.DidResume)
		}
		if r.cli.EarlyDataAccepted || r.srv.EarlyDataAccepted || r.early != nil {
			t.Fatal("early data accepted by a server with MaxEarlyData 0")
		}
		if earlyLine(r.keylogCli) == "" || r.srvDrops == 0 {
			t.Fatalf("early data not sent (key log %q) or not skipped (%d drops)", r.keylogCli, r.srvDrops)
		}
	})
	t.Run("wrong ALPN", func(t *testing.T) {
		cc, sc := configs0RTT(t, 1000)
		cc.NextProtos, sc.NextProtos = []string{"a", "b"}, []string{"a", "b"}
		run0RTT(t, cc, sc, nil, "ticket?")
		if cs := cached13(cc, "dtls.test"); cs == nil || cs.state.alpn != "a" {
			t.Fatal("no ticket for ALPN a")
		}
		sc.NextProtos = []string{"b", "a"} // the resumed handshake selects b
		r := run0RTT(t, cc, sc, []string{"early"}, "x")
		if r.cliErr != nil || r.srvErr != nil || !r.cli.DidResume || r.cli.NegotiatedProtocol != "b" {
			t.Fatalf("%v / %v, resumed %v, ALPN %q", r.cliErr, r.srvErr, r.cli.DidResume, r.cli.NegotiatedProtocol)
		}
		if r.cli.EarlyDataAccepted || r.srv.EarlyDataAccepted || r.early != nil {
			t.Fatal("early data accepted under another ALPN protocol than the ticket's")
		}
		if r.srvDrops == 0 {
			t.Fatal("rejected early records not skipped")
		}
	})
	t.Run("too much for the ticket", func(t *testing.T) {
		cc, sc := configs0RTT(t, 10)
		run0RTT(t, cc, sc, nil, "ticket?")
		r := run0RTT(t, cc, sc, []string{"more than ten bytes"}, "x")
		if r.cliErr != nil || r.srvErr != nil || !r.cli.DidResume {
			t.Fatalf("%v / %v, resumed %v", r.cliErr, r.srvErr, r.cli.DidResume)
		}
		if r.cli.EarlyDataAccepted || earlyLine(r.keylogCli) != "" {
			t.Fatal("client offered more early data than the ticket allows")
		}
	})
}

// A client that sends more early data than the ticket's
// max_early_data_size: the server ends the handshake with
// unexpected_message (RFC 8446 §4.6.1).
func TestEarlyData13OverLimit(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs0RTT(t, 10)
	run0RTT(t, cc, sc, nil, "ticket?")
	cs := cached13(cc, "dtls.test")
	if cs == nil {
		t.Fatal("no ticket")
	}
	cs.maxEarlyData = 1000 // the misbehaving client ignores the ticket's 10
	r := run0RTT(t, cc, sc, []string{"0123456789", "x"})
	if r.srvErr == nil || r.srvAlert != uint32(alertUnexpectedMessage)+1 {
		t.Fatalf("server: %v, alert %d, want unexpected_message", r.srvErr, int(r.srvAlert)-1)
	}
	// The client may have completed its side before the alert came:
	// the server reads early data while it waits for the client's
	// Finished.
}

// replayRelay forwards a client's datagrams to two servers: first only to
// the victim, and once the victim answered (it processed the ClientHello)
// also to the target, which gets the ClientHello and early data as a
// replay; only the target's answers reach the client. It returns the
// address to dial and the two servers' ends.
func replayRelay(t *testing.T) (front *net.UDPConn, victim, target *net.UDPConn) {
	t.Helper()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dial := func(to *net.UDPConn) *net.UDPConn {
		c, err := net.DialUDP("udp", nil, to.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	front = listen()
	vSrv, tSrv := listen(), listen()
	vRelay, tRelay := dial(vSrv), dial(tSrv)
	// The servers' sockets talk to the relay's ends only.
	connect := func(srv, relay *net.UDPConn) *net.UDPConn {
		addr := srv.LocalAddr().(*net.UDPAddr)
		srv.Close()
		c, err := net.DialUDP("udp", addr, relay.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	victim, target = connect(vSrv, vRelay), connect(tSrv, tRelay)
	answered := make(chan struct{})
	var clientAddr *net.UDPAddr
	var mu sync.Mutex
	var held [][]byte
	released := false
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			d := slices.Clone(buf[:n])
			mu.Lock()
			clientAddr = from
			vRelay.Write(d)
			if released {
				tRelay.Write(d)
			} else {
				held = append(held, d)
			}
			mu.Unlock()
		}
	})
	wg.Go(func() {
		buf := make([]byte, 65536)
		first := true
		for {
			if _, err := vRelay.Read(buf); err != nil {
				return
			}
			if first {
				first = false
				close(answered)
			}
		}
	})
	wg.Go(func() {
		select {
		case <-answered:
		case <-time.After(10 * time.Second):
			return
		}
		mu.Lock()
		for _, d := range held {
			tRelay.Write(d)
		}
		released = true
		mu.Unlock()
	})
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, err := tRelay.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			to := clientAddr
			mu.Unlock()
			if to != nil {
				front.WriteToUDP(buf[:n], to)
			}
		}
	})
	t.Cleanup(func() {
		front.Close()
		vRelay.Close()
		tRelay.Close()
		wg.Wait()
	})
	return front, victim, target
}

// A replayed 0-RTT ClientHello: its early data was accepted once (by the
// victim connection); the same ClientHello and early data at another
// connection of the same server are refused as a replay (RFC 8446 §8.2),
// which answers with a cookie exchange, and the client (who holds the
// keys) completes the handshake there without 0-RTT.
func TestEarlyData13Replay(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs0RTT(t, 1000)
	run0RTT(t, cc, sc, nil, "ticket?")
	front, vConn, tConn := replayRelay(t)
	victim, target := Server(vConn, sc), Server(tConn, sc)
	defer victim.Close()
	go victim.Handshake() // never completes: its answers go nowhere
	uc, err := net.DialUDP("udp", nil, front.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	cli := Client(uc, cc)
	defer cli.Close()
	if _, err := cli.WriteEarlyData([]byte("transfer 100")); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- target.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("target: %v", err)
	}
	defer target.Close()
	if cs := cli.ConnectionState(); cs.EarlyDataAccepted || !cs.DidResume {
		t.Fatalf("client: early data accepted %v, resumed %v", cs.EarlyDataAccepted, cs.DidResume)
	}
	if cs := target.ConnectionState(); cs.EarlyDataAccepted || target.EarlyData() != nil {
		t.Fatal("replayed early data accepted")
	}
	if target.drops[dropEarlyData].Load() == 0 {
		t.Fatal("the target did not skip the replayed early data")
	}
	// The victim entered the ClientHello in the strike register: the
	// target refused it as a replay, not for another reason.
	r := &sc.resumptionState().strikes
	r.mu.Lock()
	n := len(r.m)
	r.mu.Unlock()
	if n != 1 {
		t.Fatalf("strike register holds %d ClientHellos, want 1", n)
	}
}

// The misbehaving-peer row of 0-RTT not covered by
// TestEarlyData13OverLimit: a handshake record in epoch 1 (DTLS 1.3 has
// no EndOfEarlyData, RFC 9147 §5.6), authenticated with the early keys,
// ends the handshake with unexpected_message.
func TestEarlyData13HandshakeInEpoch1(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs0RTT(t, 1000)
	run0RTT(t, cc, sc, nil, "ticket?")
	cfg := cc.Clone()
	var cli *Conn
	sent := false
	cfg.Tracer = func(e *TraceEvent) {
		if e.Kind != TraceRecordSent || e.Epoch != 1 || sent {
			return
		}
		sent = true
		// An EndOfEarlyData (type 5, empty) in a handshake record of
		// epoch 1, sealed with the client's early keys.
		msg := []byte{5, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}
		k := cli.early.keys
		rec, err := k.sealRecord13(nil, nil, 1000, recordTypeHandshake, msg, 0, true, true)
		if err == nil {
			cli.io.writeDatagram(rec)
		}
	}
	cliConn, srv := connectedPair(t, cfg, sc)
	cli = cliConn
	defer cli.Close()
	defer srv.Close()
	if _, err := cli.WriteEarlyData([]byte("x")); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cli.SetDeadline(time.Now().Add(5 * time.Second))
	cli.Handshake()
	if err := <-errc; err == nil || srv.alertSent.Load() != uint32(alertUnexpectedMessage)+1 {
		t.Fatalf("server: %v, want unexpected_message", err)
	}
}

func TestEarlyData13Strikes(t *testing.T) {
	var s earlyDataStrikes
	now := time.Unix(1e9, 0)
	a, b := netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("192.0.2.2:1000")
	id := func(i int) (h [32]byte) {
		copy(h[:], fmt.Sprint(i))
		return h
	}
	rec := func(i int, from netip.AddrPort, at, exp time.Time) (fresh, again bool) {
		return s.record(id(i), from, at, exp)
	}
	if f, _ := rec(1, a, now, now.Add(time.Second)); !f {
		t.Fatal("a new ClientHello refused")
	}
	if f, again := rec(1, a, now, now.Add(time.Second)); f || !again {
		t.Fatal("the same ClientHello from the same address: not seen as a retransmission")
	}
	if f, again := rec(1, b, now, now.Add(time.Second)); f || again {
		t.Fatal("the same ClientHello from another address not refused as a replay")
	}
	if f, _ := rec(1, b, now.Add(time.Second), now.Add(2*time.Second)); !f {
		t.Fatal("an expired entry still refuses")
	}
	for i := 2; i <= maxEarlyDataStrikes; i++ {
		if f, _ := rec(i, a, now, now.Add(time.Minute)); !f {
			t.Fatalf("entry %d refused before the register is full", i)
		}
	}
	if f, _ := rec(-1, a, now, now.Add(time.Minute)); f {
		t.Fatal("a full register of live entries accepted another")
	}
	if f, _ := rec(-1, a, now.Add(time.Hour), now.Add(time.Hour+time.Minute)); !f || len(s.m) != 1 {
		t.Fatalf("expired entries not dropped when full: %d left", len(s.m))
	}
}

// earlyLossResult is one seed of TestEarlyData13Loss.
type earlyLossResult struct {
	err                error
	took               time.Duration
	cliAccepted        bool
	srvAccepted        bool
	srvDone            bool
	early              []string
	toServer, toClient int
}

// earlyLossHandshake gets a ticket over a clean path, then resumes with
// two early datagrams over link, in a synctest bubble on netsim.
func earlyLossHandshake(t *testing.T, link netsim.Link, seed uint64, client, server *Config) earlyLossResult {
	var res earlyLossResult
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(seed, netsim.Link{Delay: lossDelay})
		n.SetLink(lossClientAddr, lossServerAddr, link)
		n.SetLink(lossServerAddr, lossClientAddr, link)
		spc, err := n.ListenPacket(lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		server = server.Clone() // fresh ticket keys and strike register
		server.Rand = mrand.NewChaCha8(seedBytes(seed, 's'))
		client = client.Clone()
		client.Rand = mrand.NewChaCha8(seedBytes(seed, 'c'))
		client.ClientSessionCache = NewLRUClientSessionCache(2)
		l, err := NewListener(spc, server)
		if err != nil {
			t.Fatal(err)
		}
		type srvState struct {
			cs    ConnectionState
			early [][]byte
		}
		states := make(chan srvState, 2)
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				nc, err := l.Accept()
				if err != nil {
					return
				}
				c := nc.(*Conn)
				states <- srvState{c.ConnectionState(), c.EarlyData()}
				wg.Go(func() {
					defer c.Close()
					buf := make([]byte, 100)
					for {
						n, err := c.Read(buf)
						if err != nil {
							return
						}
						c.Write(buf[:n])
					}
				})
			}
		})
		// The ticket, over the clean path from another port.
		first, err := n.Dial(netip.MustParseAddrPort("10.0.0.3:50000"), lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		c1 := Client(first, client)
		if _, err := c1.Write([]byte("ticket?")); err != nil {
			t.Fatalf("first handshake: %v", err)
		}
		c1.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c1.Read(make([]byte, 100)); err != nil {
			t.Fatalf("first echo: %v", err)
		}
		if cached13(client, "dtls.test") == nil {
			// The echo overtook the NewSessionTicket (netsim delivers
			// datagrams due at the same instant in any order): read
			// until the ticket is processed and the read times out.
			c1.SetReadDeadline(time.Now().Add(time.Second))
			c1.Read(make([]byte, 100))
		}
		c1.Close()
		<-states
		if cs := cached13(client, "dtls.test"); cs == nil || cs.maxEarlyData == 0 {
			t.Error("no ticket allowing early data")
			l.Close()
			wg.Wait()
			return
		}
		cc, err := n.Dial(lossClientAddr, lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		c := Client(cc, client)
		for _, e := range []string{"early a", "early b"} {
			if _, err := c.WriteEarlyData([]byte(e)); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		res.err = c.HandshakeContext(context.Background())
		res.took = time.Since(start)
		res.cliAccepted = c.ConnectionState().EarlyDataAccepted
		if res.err == nil {
			// Reading drives the retransmission of our Finished,
			// which the server needs to complete.
			wg.Go(func() {
				buf := make([]byte, 100)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
			select {
			case s := <-states:
				res.srvDone, res.srvAccepted = true, s.cs.EarlyDataAccepted
				for _, e := range s.early {
					res.early = append(res.early, string(e))
				}
			case <-time.After(time.Minute):
			}
		}
		res.toServer, res.toClient = n.StatsTo(lossServerAddr).Sent, n.StatsTo(lossClientAddr).Sent
		c.Close()
		l.Close()
		wg.Wait()
	})
	return res
}

// TestEarlyData13Loss resumes with 0-RTT data over lossy paths: every
// seed completes, both sides agree on whether the early data was
// accepted, and the server got a subsequence of what was sent, in order
// and each datagram once, although the client resends its early records
// with every retransmitted ClientHello.
func TestEarlyData13Loss(t *testing.T) {
	checkNoGoroutineLeak(t)
	seeds := lossSeeds()
	for _, loss := range []float64{0.1, 0.3} {
		t.Run(fmt.Sprintf("loss %.0f%%", loss*100), func(t *testing.T) {
			cc, sc := lossConfigs(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
			cc.CipherSuites, sc.CipherSuites = nil, nil
			cc.MinVersion, cc.MaxVersion, sc.MaxVersion = VersionDTLS13, VersionDTLS13, VersionDTLS13
			cc.HandshakeTimeout, sc.HandshakeTimeout = 30*time.Minute, 30*time.Minute
			sc.MaxEarlyData, cc.EnableEarlyData = 1000, true
			link := netsim.Link{Loss: loss, Delay: lossDelay}
			accepted, complete := 0, 0
			for seed := range seeds {
				r := earlyLossHandshake(t, link, uint64(seed)+1, cc, sc)
				if err := r.err; err != nil {
					if !(errors.Is(err, os.ErrDeadlineExceeded) && strings.Contains(err.Error(), "gave up") && r.took > defaultHandshakeTimeout) {
						t.Errorf("seed %d: %v after %v", seed+1, err, r.took)
					}
					continue
				}
				if !r.srvDone {
					t.Errorf("seed %d: the server did not complete", seed+1)
					continue
				}
				complete++
				if r.cliAccepted != r.srvAccepted {
					t.Errorf("seed %d: early data accepted: client %v, server %v", seed+1, r.cliAccepted, r.srvAccepted)
				}
				if r.srvAccepted {
					accepted++
				}
				sent := []string{"early a", "early b"}
				if !r.srvAccepted && len(r.early) > 0 || !isSubset(r.early, sent) {
					t.Errorf("seed %d: server's early data %q (accepted %v)", seed+1, r.early, r.srvAccepted)
				}
				if r.toServer > maxLossDatagrams13 || r.toClient > maxLossDatagrams13 {
					t.Errorf("seed %d: %d datagrams to the server, %d to the client", seed+1, r.toServer, r.toClient)
				}
			}
			t.Logf("loss %.0f%%: %d of %d seeds compared, early data accepted in %d", loss*100, complete, seeds, accepted)
			if accepted < complete/2 {
				// Only a ClientHello retransmitted past the
				// freshness window loses its 0-RTT.
				t.Errorf("early data accepted in %d of %d seeds", accepted, complete)
			}
		})
	}
}

// isSubset reports whether got holds elements of want, each at most once,
// in any order (datagrams may be reordered).
func isSubset(got, want []string) bool {
	seen := make(map[string]bool)
	for _, g := range got {
		if seen[g] || !slices.Contains(want, g) {
			return false
		}
		seen[g] = true
	}
	return true
}

// A server's early_data in EncryptedExtensions that the client must
// refuse (RFC 8446 §4.2.10): not offered (or offered before a
// HelloRetryRequest), accepted with another PSK than the first, or under
// another ALPN protocol than the ticket's.
func TestEarlyData13ClientChecksAcceptance(t *testing.T) {
	checkNoGoroutineLeak(t)
	ticket := &ClientSessionState{state: &sessionState{alpn: "a"}}
	for _, tc := range []struct {
		name     string
		offered  bool
		hrr      bool
		selected uint16
		alpn     string
		want     alert
	}{
		{"not offered", false, false, 0, "a", alertUnsupportedExtension},
		{"offered before a HelloRetryRequest", true, true, 0, "a", alertUnsupportedExtension},
		{"second PSK selected", true, false, 1, "a", alertIllegalParameter},
		{"another ALPN protocol", true, false, 0, "b", alertIllegalParameter},
		{"valid", true, false, 0, "a", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := configs13(t, "p256")
			cli, srv := connectedPair(t, cc, sc)
			defer cli.Close()
			defer srv.Close()
			hs := &clientHandshakeState13{c: cli, hello: &clientHelloMsg13{earlyData: tc.offered}, sentHRR: tc.hrr,
				psks:        []offeredPSK13{{session: ticket}, {session: ticket}},
				serverHello: &serverHelloMsg13{hasSelectedIdentity: true, selectedIdentity: tc.selected}}
			if tc.offered {
				cli.early.keys = &epochKeys13{epoch: 1}
			}
			err := hs.acceptedEarlyData(&encryptedExtensionsMsg13{earlyData: true, alpnProtocol: tc.alpn})
			if tc.want == 0 {
				if err != nil || !hs.state.earlyData {
					t.Fatalf("valid acceptance refused: %v", err)
				}
				return
			}
			if err == nil || cli.alertSent.Load() != uint32(tc.want)+1 || hs.state.earlyData {
				t.Fatalf("got %v, alert %d, want %v", err, int(cli.alertSent.Load())-1, tc.want)
			}
		})
	}
}

// A fleet sharing FleetSecret: each server opens the others' tickets, so
// the same 0-RTT ClientHello sent to two of them has its early data
// accepted by both (each has its own strike register): the client
// completes the handshake with one, which alone hands the data to its
// application. Config.EarlyDataReplayCheck with a store both share
// makes the second refuse it.
func TestEarlyData13Fleet(t *testing.T) {
	checkNoGoroutineLeak(t)
	secret := bytes.Repeat([]byte{0x5a}, 32)
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared store %v", shared), func(t *testing.T) {
			cc, scA := configs0RTT(t, 1000)
			scA.FleetSecret = secret
			scB := scA.Clone()
			scB.resumption = nil // another server: its own register and state
			if shared {
				var mu sync.Mutex
				seen := map[string]time.Time{}
				check := func(id []byte, expires time.Time) bool {
					mu.Lock()
					defer mu.Unlock()
					if _, ok := seen[string(id)]; ok {
						return false
					}
					seen[string(id)] = expires
					return true
				}
				scA.EarlyDataReplayCheck, scB.EarlyDataReplayCheck = check, check
			}
			run0RTT(t, cc, scA, nil, "ticket from A")
			front, vConn, tConn := replayRelay(t)
			victim, target := Server(vConn, scA), Server(tConn, scB)
			defer victim.Close()
			go victim.Handshake()
			uc, err := net.DialUDP("udp", nil, front.LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			cli := Client(uc, cc)
			defer cli.Close()
			if _, err := cli.WriteEarlyData([]byte("once")); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- target.Handshake() }()
			if err := cli.Handshake(); err != nil {
				t.Fatalf("client: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("server B: %v", err)
			}
			defer target.Close()
			if !cli.ConnectionState().DidResume {
				t.Fatal("server B did not resume server A's ticket")
			}
			got := target.EarlyData()
			if acc := target.ConnectionState().EarlyDataAccepted; acc == shared || acc != cli.ConnectionState().EarlyDataAccepted {
				t.Fatalf("server B accepted the early data: %v (client says %v); want %v", acc, cli.ConnectionState().EarlyDataAccepted, !shared)
			}
			if !shared && (len(got) != 1 || string(got[0]) != "once") {
				t.Fatalf("server B's early data %q", got)
			}
		})
	}
}

// budgetEvents collects a server's anti-amplification trace lines.
type budgetEvents struct {
	mu       sync.Mutex
	proven   string
	heldBack int
	retrans  int
}

func (b *budgetEvents) tracer(ev *TraceEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case ev.Kind == TracePathValidation && strings.HasPrefix(ev.Reason, "0-RTT client address proven"):
		b.proven = ev.Reason
	case ev.Kind == TracePathValidation && strings.HasPrefix(ev.Reason, "datagram held back"):
		b.heldBack++
	case ev.Kind == TraceFlightRetransmitted:
		b.retrans++
	}
}

// A real 0-RTT client completes within the budget of its unproven
// address: the server's PSK flight is smaller than the ClientHello.
func TestEarlyData13AddrBudgetClient(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs0RTT(t, 1000)
	run0RTT(t, cc, sc, nil, "ticket?")
	var ev budgetEvents
	sc.Tracer = ev.tracer
	r := run0RTT(t, cc, sc, []string{"early one", "early two"}, "after")
	if !r.srv.EarlyDataAccepted || !r.srv.DidResume {
		t.Fatalf("0-RTT not accepted: %+v, %v", r.srv, r.srvErr)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var sent, recv int
	if _, err := fmt.Sscanf(ev.proven, "0-RTT client address proven: %d bytes sent for %d received", &sent, &recv); err != nil {
		t.Fatalf("no proof of the address traced (%q): %v", ev.proven, err)
	}
	if ev.heldBack != 0 || sent == 0 || sent > amplificationFactor*recv {
		t.Fatalf("%d datagrams held back; %d bytes sent for %d received", ev.heldBack, sent, recv)
	}
	t.Logf("0-RTT PSK handshake: server sent %d bytes to the unproven address, received %d (ClientHello and 2 early datagrams)", sent, recv)
}

// A 0-RTT ClientHello (and its early data) recorded and sent from another
// address, whose owner never answers: the server accepts it (it is new to
// the strike register) and sends that address at most three times the
// bytes it received, however often its timer fires.
func TestEarlyData13AddrBudgetForged(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs0RTT(t, 1000)
	run0RTT(t, cc, sc, nil, "ticket?")
	// Record the client's first datagrams at a socket that never answers.
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	uc, err := net.DialUDP("udp", nil, sink.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	ccfg := cc.Clone()
	ccfg.HandshakeTimeout = 500 * time.Millisecond
	cli := Client(uc, ccfg)
	if _, err := cli.WriteEarlyData([]byte("transfer 100")); err != nil {
		t.Fatal(err)
	}
	go cli.Handshake()
	var recorded [][]byte
	buf := make([]byte, 65536)
	sink.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	for len(recorded) < 2 { // the ClientHello and the early datagram
		n, err := sink.Read(buf)
		if err != nil {
			t.Fatalf("recorded %d datagrams: %v", len(recorded), err)
		}
		recorded = append(recorded, slices.Clone(buf[:n]))
	}
	cli.Close()

	// The forged source: a socket that sends the recorded datagrams to
	// the server and counts what comes back.
	srvSock, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	victim, err := net.DialUDP("udp", nil, srvSock.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	addr := srvSock.LocalAddr().(*net.UDPAddr)
	srvSock.Close()
	sconn, err := net.DialUDP("udp", addr, victim.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	scfg := sc.Clone()
	scfg.RetransmitTimeout = 10 * time.Millisecond // many retransmissions soon
	scfg.HandshakeTimeout = 6 * time.Second
	var ev budgetEvents
	scfg.Tracer = ev.tracer
	srv := Server(sconn, scfg)
	defer srv.Close()
	done := make(chan struct{})
	go func() { srv.Handshake(); close(done) }()
	sentIn := 0
	for _, d := range recorded {
		victim.Write(d)
		sentIn += len(d)
	}
	got := 0
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ev.mu.Lock()
		enough := ev.retrans >= 7
		ev.mu.Unlock()
		if enough {
			break
		}
		victim.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := victim.Read(buf); err == nil {
			got += n
		}
	}
	for { // what is still in the socket
		victim.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := victim.Read(buf)
		if err != nil {
			break
		}
		got += n
	}
	srv.Close()
	<-done
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if srv.early.max == 0 {
		t.Fatal("the forged 0-RTT ClientHello was not accepted: the test tests nothing")
	}
	if ev.retrans < 7 || ev.heldBack == 0 {
		t.Fatalf("%d retransmissions, %d datagrams held back", ev.retrans, ev.heldBack)
	}
	if got == 0 || got > amplificationFactor*sentIn {
		t.Fatalf("the forged address got %d bytes for the %d it sent (limit %d×)", got, sentIn, amplificationFactor)
	}
	t.Logf("forged 0-RTT ClientHello: %d bytes in (2 datagrams), %d bytes out over %d retransmission timers, %d datagrams held back", sentIn, got, ev.retrans, ev.heldBack)
}

// TestEarlyData13ManyEmptyRecords: empty early records add nothing to the
// max_early_data_size count, so the server must bound the datagrams it
// keeps for EarlyData by their number.
func TestEarlyData13ManyEmptyRecords(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs0RTT(t, 1000)
	run0RTT(t, cc, sc, nil, "ticket?")
	cfg := cc.Clone()
	var cli *Conn
	sent := false
	cfg.Tracer = func(e *TraceEvent) {
		if e.Kind != TraceRecordSent || e.Epoch != 1 || sent {
			return
		}
		sent = true
		k := cli.early.keys
		for seq := uint64(1000); seq < 1000+4*maxEarlyDatagrams; seq++ {
			rec, err := k.sealRecord13(nil, nil, seq, recordTypeApplicationData, nil, 0, true, true)
			if err == nil {
				cli.io.writeDatagram(rec)
			}
		}
	}
	cliConn, srv := connectedPair(t, cfg, sc)
	cli = cliConn
	defer cli.Close()
	defer srv.Close()
	if _, err := cli.WriteEarlyData([]byte("x")); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cli.SetDeadline(time.Now().Add(5 * time.Second))
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !srv.ConnectionState().EarlyDataAccepted {
		t.Fatal("early data not accepted")
	}
	if got := srv.EarlyData(); len(got) == 0 || len(got) > maxEarlyDatagrams {
		t.Fatalf("server kept %d early datagrams, want 1 to %d", len(got), maxEarlyDatagrams)
	}
}
