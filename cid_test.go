package dtls

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wireConn records the datagrams a client sends and receives.
type wireConn struct {
	net.Conn
	mu         sync.Mutex
	sent, recv [][]byte
}

func (w *wireConn) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.sent = append(w.sent, bytes.Clone(b))
	w.mu.Unlock()
	return w.Conn.Write(b)
}

func (w *wireConn) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	if err == nil {
		w.mu.Lock()
		w.recv = append(w.recv, bytes.Clone(b[:n]))
		w.mu.Unlock()
	}
	return n, err
}

// recordTypes lists the outer content types and epochs of the records in
// datagrams, parsing tls12_cid headers with cidLen.
func recordTypes(dgrams [][]byte, cidLen int) (types []recordType, epochs []uint64) {
	for _, d := range dgrams {
		for len(d) > 0 {
			hdr, _, rest, reason := nextRecordCID(d, cidLen)
			if reason != dropNone {
				break
			}
			types, epochs = append(types, hdr.typ), append(epochs, hdr.epoch)
			d = rest
		}
	}
	return types, epochs
}

// acceptOne runs a Listener that echoes on its connections and hands the
// first accepted Conn to the test.
func acceptOne(t *testing.T, config *Config) (*Listener, chan *Conn) {
	t.Helper()
	l, err := Listen("udp", "127.0.0.1:0", config)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *Conn, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			c := nc.(*Conn)
			select {
			case conns <- c:
			default:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
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
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l, conns
}

func TestCIDHandshake(t *testing.T) {
	checkNoGoroutineLeak(t)
	fixed := func(b ...byte) func() []byte { return func() []byte { return b } }
	tests := []struct {
		name                 string
		client, server       func() []byte
		wantClient, wantServ []byte // CIDs each side receives; nil: no CID negotiated
	}{
		{"both", fixed(1, 2, 3, 4, 5, 6), fixed(9, 8, 7, 6, 5, 4, 3, 2), []byte{1, 2, 3, 4, 5, 6}, []byte{9, 8, 7, 6, 5, 4, 3, 2}},
		{"client receives none", OnlySendCIDGenerator(), fixed(7, 7, 7, 7), []byte{}, []byte{7, 7, 7, 7}},
		{"server receives none", fixed(3, 3, 3), OnlySendCIDGenerator(), []byte{3, 3, 3}, []byte{}},
		{"server without CIDs", fixed(1, 1), nil, nil, nil},
		{"client without CIDs", nil, RandomCIDGenerator(8), nil, nil},
	}
	for _, tt := range tests {
		for _, sc := range []suiteCase{{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"}, {TLS_PSK_WITH_AES_128_CCM_8, ""}, {TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256, ""}} {
			t.Run(tt.name+"/"+CipherSuiteName(sc.suite), func(t *testing.T) {
				cc, scfg := configsFor(t, sc)
				cc.ConnectionIDGenerator = tt.client
				scfg.ConnectionIDGenerator = tt.server
				// RFC 9146's tls12_cid records are DTLS 1.2's (a
				// client with CIDs offers 1.2 alone; one without
				// would get 1.3, whose records differ).
				cc.MaxVersion = VersionDTLS12
				l, conns := acceptOne(t, scfg)
				raw, err := net.Dial("udp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				wire := &wireConn{Conn: raw}
				c := Client(wire, cc)
				defer c.Close()
				exchange(t, c, "hello", string(bytes.Repeat([]byte("x"), 1200)), "")
				cs := c.ConnectionState()
				ss := (<-conns).ConnectionState()
				if !bytes.Equal(cs.LocalConnectionID, tt.wantClient) || (cs.LocalConnectionID == nil) != (tt.wantClient == nil) ||
					!bytes.Equal(cs.RemoteConnectionID, tt.wantServ) || (cs.RemoteConnectionID == nil) != (tt.wantServ == nil) {
					t.Errorf("client CIDs: local %x remote %x", cs.LocalConnectionID, cs.RemoteConnectionID)
				}
				if !bytes.Equal(ss.LocalConnectionID, cs.RemoteConnectionID) || !bytes.Equal(ss.RemoteConnectionID, cs.LocalConnectionID) {
					t.Errorf("server CIDs: local %x remote %x", ss.LocalConnectionID, ss.RemoteConnectionID)
				}
				// On the wire: protected records use tls12_cid exactly
				// when the receiver asked for a non-empty CID.
				wire.mu.Lock()
				defer wire.mu.Unlock()
				check := func(dir string, dgrams [][]byte, peerCID []byte, ourLen int) {
					types, epochs := recordTypes(dgrams, ourLen)
					n := 0
					for i, typ := range types {
						if epochs[i] == 0 {
							if typ == recordTypeTLS12CID {
								t.Errorf("%s: tls12_cid record in epoch 0", dir)
							}
							continue
						}
						n++
						if (typ == recordTypeTLS12CID) != (len(peerCID) > 0) {
							t.Errorf("%s: epoch %d record of type %v with receiver CID %x", dir, epochs[i], typ, peerCID)
						}
					}
					if n < 4 {
						t.Errorf("%s: only %d protected records", dir, n)
					}
				}
				check("client→server", wire.sent, tt.wantServ, len(tt.wantServ))
				check("server→client", wire.recv, tt.wantClient, len(tt.wantClient))
			})
		}
	}
}

// natProxy stands for a NAT between a client and a server: the client
// talks to front, and the proxy forwards from an outside socket whose
// port changes on rebind, as when a NAT binding expires. Replies that
// reach an old outside socket are lost.
type natProxy struct {
	t      *testing.T
	front  *net.UDPConn
	server *net.UDPAddr
	out    atomic.Pointer[net.UDPConn]
	client atomic.Pointer[net.UDPAddr]
	wg     sync.WaitGroup

	hold atomic.Bool // keep the next client datagram in held instead of forwarding it

	mu       sync.Mutex
	lastSent []byte // the last datagram forwarded to the server
	held     []byte
}

func newNATProxy(t *testing.T, server net.Addr) *natProxy {
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &natProxy{t: t, front: front, server: server.(*net.UDPAddr)}
	p.rebind()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, maxDatagramSize)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p.client.Store(from)
			p.mu.Lock()
			if p.hold.Swap(false) {
				p.held = bytes.Clone(buf[:n])
				p.mu.Unlock()
				continue
			}
			p.lastSent = bytes.Clone(buf[:n])
			p.mu.Unlock()
			p.out.Load().WriteToUDP(buf[:n], p.server)
		}
	}()
	t.Cleanup(func() {
		front.Close()
		p.out.Load().Close()
		p.wg.Wait()
	})
	return p
}

// rebind moves the proxy's outside traffic to a new port and closes the
// old one. It returns the new outside address.
func (p *natProxy) rebind() *net.UDPAddr {
	out, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		p.t.Fatal(err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, maxDatagramSize)
		for {
			n, _, err := out.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if c := p.client.Load(); c != nil {
				p.front.WriteToUDP(buf[:n], c)
			}
		}
	}()
	if old := p.out.Swap(out); old != nil {
		old.Close()
	}
	return out.LocalAddr().(*net.UDPAddr)
}

func sameAddr(a net.Addr, b *net.UDPAddr) bool {
	u, ok := a.(*net.UDPAddr)
	return ok && u.AddrPort() == b.AddrPort()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCIDRebinding changes the client's outside port mid-session: with a
// CID the session continues and the server follows it to the new address
// (RFC 9146 §6), at once without rrc, after a return routability check
// with it (RFC 9853; rrc_test.go tests the check itself). A record from
// yet another address that carries the right CID but does not
// authenticate, or is a replay, moves nothing.
func TestCIDRebinding(t *testing.T) {
	checkNoGoroutineLeak(t)
	for i, clientCID := range []func() []byte{OnlySendCIDGenerator(), RandomCIDGenerator(4), OnlySendCIDGenerator(), RandomCIDGenerator(4)} {
		cc, scfg := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
		scfg.ConnectionIDGenerator = RandomCIDGenerator(8)
		cc.ConnectionIDGenerator = clientCID
		// tls12_cid records (the forged one below is one); 1.3's
		// rebinding is in handshake_ext_dtls13_test.go.
		cc.MaxVersion = VersionDTLS12
		withRRC := i >= 2
		if !withRRC {
			cc.ReturnRoutabilityCheck = RRCOff
		}
		// A check whose path_response comes after the timer T (3×RTT,
		// at least 100 ms) fails, and the peer stays: under load that
		// happened, and with nothing more from the client the server
		// never followed. The client then sends again, which starts a
		// new check (RFC 9853 §5.1), at most maxRecheck times.
		var failedChecks atomic.Int32
		scfg.Tracer = func(ev *TraceEvent) {
			if ev.Kind == TracePathValidation && strings.HasPrefix(ev.Reason, "failed") {
				failedChecks.Add(1)
			}
		}
		l, conns := acceptOne(t, scfg)
		nat := newNATProxy(t, l.Addr())
		c, err := Dial("udp", nat.front.LocalAddr().String(), cc)
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, c, "before")
		srv := <-conns
		first := nat.out.Load().LocalAddr().(*net.UDPAddr)
		if !sameAddr(srv.RemoteAddr(), first) {
			t.Fatalf("server sees %v, want %v", srv.RemoteAddr(), first)
		}

		second := nat.rebind()
		if withRRC {
			// The echo goes to the old address until the check ends.
			if _, err := c.Write([]byte("after rebinding")); err != nil {
				t.Fatal(err)
			}
			const maxRecheck = 3
			rechecks := int32(0)
			readUntil(t, c, "the server to follow", func() bool {
				if f := failedChecks.Load(); f > rechecks && !sameAddr(srv.RemoteAddr(), second) {
					if rechecks = f; f > maxRecheck {
						t.Fatalf("%d return routability checks failed", f)
					}
					t.Logf("return routability check %d failed (slow path_response); the client sends again", f)
					if _, err := c.Write([]byte("after a failed check")); err != nil {
						t.Fatal(err)
					}
				}
				return sameAddr(srv.RemoteAddr(), second)
			})
		}
		exchange(t, c, "after rebinding", "and again")
		if !sameAddr(srv.RemoteAddr(), second) {
			t.Fatalf("server did not follow the client: %v, want %v", srv.RemoteAddr(), second)
		}

		// A forger on a third address knows the CID but not the keys.
		forger, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		cid := srv.ConnectionState().LocalConnectionID
		forged := appendRecordHeaderCID(nil, recordTypeTLS12CID, VersionDTLS12, 1, 1<<40, cid, 8+40+16)
		forged = append(forged, make([]byte, 8+40+16)...)
		before := srv.Stats().Dropped["bad MAC"]
		forger.WriteTo(forged, l.Addr())
		waitFor(t, "the forged record's drop", func() bool { return srv.Stats().Dropped["bad MAC"] > before })
		if !sameAddr(srv.RemoteAddr(), second) {
			t.Fatalf("a forged record moved the peer to %v", srv.RemoteAddr())
		}

		// The same forger replays the client's last genuine record.
		nat.mu.Lock()
		replayed := nat.lastSent
		nat.mu.Unlock()
		before = srv.Stats().Dropped["replayed"]
		forger.WriteTo(replayed, l.Addr())
		waitFor(t, "the replay's drop", func() bool { return srv.Stats().Dropped["replayed"] > before })
		if !sameAddr(srv.RemoteAddr(), second) {
			t.Fatalf("a replayed record moved the peer to %v", srv.RemoteAddr())
		}
		// A genuine record that was delayed arrives from the third
		// address after a newer one: it is delivered, but it is not the
		// newest, so the peer stays (RFC 9146 §6: reordering must not
		// revert a move).
		nat.hold.Store(true)
		if _, err := c.Write([]byte("delayed")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the held datagram", func() bool { nat.mu.Lock(); defer nat.mu.Unlock(); return nat.held != nil })
		exchange(t, c, "overtakes")
		nat.mu.Lock()
		forger.WriteTo(nat.held, l.Addr())
		nat.mu.Unlock()
		buf := make([]byte, 100)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "delayed" {
			t.Fatalf("delayed record's echo: %q %v", buf[:n], err)
		}
		if !sameAddr(srv.RemoteAddr(), second) {
			t.Fatalf("an older record moved the peer to %v", srv.RemoteAddr())
		}
		forger.Close()
		exchange(t, c, "still here")
		c.Close()
	}
}

// TestCIDListenerDistinctCIDs checks that a Listener whose generator
// repeats itself gives no two connections the same CID.
func TestCIDListenerDistinctCIDs(t *testing.T) {
	checkNoGoroutineLeak(t)
	var n atomic.Int32
	cc, scfg := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	// The first two calls return the same CID.
	scfg.ConnectionIDGenerator = func() []byte {
		if n.Add(1) <= 2 {
			return []byte{1, 1, 1, 1}
		}
		return []byte{2, 2, 2, 2}
	}
	cc.ConnectionIDGenerator = RandomCIDGenerator(4)
	l, states := echoServer(t, scfg, nil)
	var cids [][]byte
	for range 2 {
		c, err := Dial("udp", l.Addr().String(), cc)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		exchange(t, c, "x")
		cids = append(cids, (<-states).LocalConnectionID)
	}
	if bytes.Equal(cids[0], cids[1]) {
		t.Fatalf("two connections share CID %x", cids[0])
	}
}
