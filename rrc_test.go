package dtls

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// pathEvents collects a side's path events (RRC and address changes).
type pathEvents struct {
	mu     sync.Mutex
	events []TraceEvent
}

func (p *pathEvents) tracer(next func(*TraceEvent)) func(*TraceEvent) {
	return func(ev *TraceEvent) {
		switch ev.Kind {
		case TraceRRCSent, TraceRRCReceived, TracePathValidation, TracePeerAddressChanged:
			p.mu.Lock()
			p.events = append(p.events, *ev)
			p.mu.Unlock()
		}
		if next != nil {
			next(ev)
		}
	}
}

// count returns how many events of kind have a Reason starting with
// reason, sent to (or about) ap when ap is valid.
func (p *pathEvents) count(kind TraceKind, reason string, ap netip.AddrPort) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, ev := range p.events {
		if ev.Kind == kind && strings.HasPrefix(ev.Reason, reason) && (!ap.IsValid() || ev.Path == ap) {
			n++
		}
	}
	return n
}

// bytesTo sums the lengths of the RRC records sent to ap.
func (p *pathEvents) bytesTo(ap netip.AddrPort) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, ev := range p.events {
		if ev.Kind == TraceRRCSent && ev.Path == ap {
			n += ev.Length
		}
	}
	return n
}

func (p *pathEvents) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, ev := range p.events {
		b.WriteString(ev.Kind.String() + " " + ev.Path.String() + " " + ev.Reason + "\n")
	}
	return b.String()
}

// rrcPair runs an echoing Listener with CIDs and the server policy, and a
// client of version vers with the client policy behind a natProxy. The
// tests below were written for 1.2 (tls12_cid records); RFC 9853 applies
// to 1.3 as well, so each runs in both versions.
func rrcPair(t *testing.T, vers uint16, clientCID func() []byte, clientPolicy, serverPolicy RRCPolicy) (c, srv *Conn, nat *natProxy, l *Listener, ev *pathEvents) {
	t.Helper()
	cc, scfg := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	cc.MaxVersion = vers
	scfg.ConnectionIDGenerator = RandomCIDGenerator(8)
	scfg.ReturnRoutabilityCheck = serverPolicy
	ev = &pathEvents{}
	scfg.Tracer = ev.tracer(nil)
	cc.ConnectionIDGenerator = clientCID
	cc.ReturnRoutabilityCheck = clientPolicy
	l, conns := acceptOne(t, scfg)
	nat = newNATProxy(t, l.Addr())
	c, err := Dial("udp", nat.front.LocalAddr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	exchange(t, c, "before")
	srv = <-conns
	return c, srv, nat, l, ev
}

// readUntil reads c (answering path challenges) until cond holds, for at
// most 5 s; the data read is returned.
func readUntil(t *testing.T, c *Conn, what string, cond func() bool, into ...*[]string) []string {
	t.Helper()
	var got []string
	if len(into) > 0 {
		defer func() { *into[0] = got }()
	}
	buf := make([]byte, 1<<14)
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			got = append(got, string(buf[:n]))
			if len(into) > 0 {
				*into[0] = got
			}
		} else if !isTimeout(err) {
			t.Fatalf("read while waiting for %s: %v", what, err)
		}
	}
	return got
}

func outside(nat *natProxy) netip.AddrPort {
	return nat.out.Load().LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestRRCNegotiation: rrc is used when both sides have a CID generator
// and neither turned it off (RFC 9853 §3).
func TestRRCNegotiation(t *testing.T) {
	checkNoGoroutineLeak(t)
	inBothVersions(t, testRRCNegotiation)
}

func testRRCNegotiation(t *testing.T, vers uint16) {
	tests := []struct {
		name           string
		client, server RRCPolicy
		clientCID      bool
		want           bool
	}{
		{"default", RRCBasic, RRCBasic, true, true},
		{"enhanced server", RRCBasic, RRCEnhanced, true, true},
		{"client off", RRCOff, RRCBasic, true, false},
		{"server off", RRCBasic, RRCOff, true, false},
		{"no client CID", RRCBasic, RRCBasic, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, scfg := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
			cc.MaxVersion = vers
			scfg.ConnectionIDGenerator = RandomCIDGenerator(8)
			scfg.ReturnRoutabilityCheck = tt.server
			if tt.clientCID {
				cc.ConnectionIDGenerator = OnlySendCIDGenerator()
			}
			cc.ReturnRoutabilityCheck = tt.client
			var hello *clientHelloMsg
			cc.Tracer = func(ev *TraceEvent) {
				if ev.Kind == TraceDatagramSent && hello == nil && len(ev.Datagram) > recordHeaderLen+handshakeHeaderLen {
					m := &clientHelloMsg{}
					if m.unmarshal(ev.Datagram[recordHeaderLen+handshakeHeaderLen:]) {
						hello = m
					}
				}
			}
			l, conns := acceptOne(t, scfg)
			c, err := Dial("udp", l.Addr().String(), cc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			exchange(t, c, "hi")
			srv := <-conns
			if got := c.ConnectionState().ReturnRoutabilityCheck; got != tt.want {
				t.Errorf("client: rrc %v, want %v", got, tt.want)
			}
			if got := srv.ConnectionState().ReturnRoutabilityCheck; got != tt.want {
				t.Errorf("server: rrc %v, want %v", got, tt.want)
			}
			// RFC 9853 §3: rrc is offered only with connection_id.
			if hello == nil {
				t.Fatal("no ClientHello seen")
			}
			if wantOffer := tt.clientCID && tt.client != RRCOff; hello.rrc != wantOffer {
				t.Errorf("ClientHello offers rrc: %v, want %v", hello.rrc, wantOffer)
			}
		})
	}
}

// TestRRCExtension: the rrc extension is empty (RFC 9853 §3); one with
// data does not parse, in either hello.
func TestRRCExtension(t *testing.T) {
	ch := &clientHelloMsg{vers: VersionDTLS12, random: testRandom, cipherSuites: []uint16{0xc02b},
		compressionMethods: []uint8{compressionNone}, rrc: true}
	b, err := ch.marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got clientHelloMsg
	if !got.unmarshal(b) || !got.rrc || got.hasConnectionID {
		t.Fatalf("rrc alone did not round-trip: %+v", got)
	}
	// An empty connection_id (00 36, length 1, CID length 0) turned into
	// an rrc extension carrying one byte.
	cidExt := []byte{0, byte(extensionConnectionID), 0, 1, 0}
	bad := []byte{0, byte(extensionRRC), 0, 1, 0}
	ch = &clientHelloMsg{vers: VersionDTLS12, random: testRandom, cipherSuites: []uint16{0xc02b},
		compressionMethods: []uint8{compressionNone}, hasConnectionID: true, connectionID: []byte{}}
	b, err = ch.marshal()
	if err != nil || bytes.Count(b, cidExt) != 1 {
		t.Fatalf("marshal: %v", err)
	}
	if (&clientHelloMsg{}).unmarshal(bytes.Replace(b, cidExt, bad, 1)) {
		t.Error("ClientHello: an rrc extension with data parsed")
	}
	sh := &serverHelloMsg{vers: VersionDTLS12, random: testRandom, cipherSuite: 0xc02b,
		hasConnectionID: true, connectionID: []byte{}}
	b, err = sh.marshal()
	if err != nil || bytes.Count(b, cidExt) != 1 {
		t.Fatalf("marshal: %v", err)
	}
	if (&serverHelloMsg{}).unmarshal(bytes.Replace(b, cidExt, bad, 1)) {
		t.Error("ServerHello: an rrc extension with data parsed")
	}
}

// TestRRCClientRebinds: the client's NAT rebinds; the server keeps
// sending to the old address until a path_challenge to the new one is
// answered, then follows, and the session goes on (RFC 9853 §5.1).
func TestRRCClientRebinds(t *testing.T) {
	checkNoGoroutineLeak(t)
	inBothVersions(t, testRRCClientRebinds)
}

func testRRCClientRebinds(t *testing.T, vers uint16) {
	for _, tc := range []struct {
		name   string
		cid    func() []byte
		policy RRCPolicy
	}{
		{"basic/client CID empty", OnlySendCIDGenerator(), RRCBasic},
		{"basic/client CID", RandomCIDGenerator(4), RRCBasic},
		// Enhanced: the old path is dead after the rebinding, so the
		// challenge there times out (T) before the new path's.
		{"enhanced", RandomCIDGenerator(4), RRCEnhanced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, srv, nat, _, ev := rrcPair(t, vers, tc.cid, RRCBasic, tc.policy)
			if !srv.ConnectionState().ReturnRoutabilityCheck {
				t.Fatal("rrc not negotiated")
			}
			first := outside(nat)
			second := nat.rebind().AddrPort()
			if _, err := c.Write([]byte("after rebinding")); err != nil {
				t.Fatal(err)
			}
			// The echo of that record goes to the old address, where
			// the NAT no longer listens; the client answers the
			// challenge while it reads.
			readUntil(t, c, "the server to follow the client", func() bool {
				return addrPort(srv.RemoteAddr()) == second
			})
			exchange(t, c, "and again", "still here")
			if n := ev.count(TraceRRCSent, "path_challenge", second); n < 1 || n > maxPathChallenges {
				t.Errorf("%d path_challenges to the new address", n)
			}
			if n := ev.count(TracePeerAddressChanged, "validated", second); n != 1 {
				t.Errorf("%d validated address changes, want 1\n%s", n, ev)
			}
			if tc.policy == RRCEnhanced && ev.count(TraceRRCSent, "path_challenge", first) < 1 {
				t.Errorf("enhanced: no challenge on the old path\n%s", ev)
			}
			if ev.count(TracePeerAddressChanged, "unvalidated", netip.AddrPort{}) != 0 {
				t.Errorf("an unvalidated move\n%s", ev)
			}
		})
	}
}

// TestRRCForwardedRecord: an attacker who forwards a copy of the
// client's fresh record from an address where it cannot answer the
// challenge does not move the server's traffic: the echo still reaches
// the client, and the validation fails after T. What the server sends
// the attacker's address stays within three times what came from it.
func TestRRCForwardedRecord(t *testing.T) {
	checkNoGoroutineLeak(t)
	inBothVersions(t, testRRCForwardedRecord)
}

func testRRCForwardedRecord(t *testing.T, vers uint16) {
	for _, tc := range []struct {
		name   string
		cid    func() []byte
		policy RRCPolicy
		want   string // how the validation ends
	}{
		{"basic", OnlySendCIDGenerator(), RRCBasic, "failed: no path_response"},
		{"basic/client CID", RandomCIDGenerator(4), RRCBasic, "failed: no path_response"},
		// Enhanced: the client answers on the old path, which stays.
		{"enhanced", RandomCIDGenerator(4), RRCEnhanced, "old path answered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, srv, nat, l, ev := rrcPair(t, vers, tc.cid, RRCBasic, tc.policy)
			home := outside(nat)
			attacker, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer attacker.Close()
			at := attacker.LocalAddr().(*net.UDPAddr).AddrPort()
			var got bytes.Buffer
			var gotMu sync.Mutex
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, maxDatagramSize)
				for {
					n, _, err := attacker.ReadFromUDP(buf)
					if err != nil {
						return
					}
					gotMu.Lock()
					got.Write(buf[:n])
					gotMu.Unlock()
				}
			}()

			// The attacker's copy of "x" wins the race: the genuine
			// datagram is held back, then delivered late.
			nat.hold.Store(true)
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the held datagram", func() bool { nat.mu.Lock(); defer nat.mu.Unlock(); return nat.held != nil })
			nat.mu.Lock()
			copied := bytes.Clone(nat.held)
			nat.mu.Unlock()
			attacker.WriteToUDP(copied, net.UDPAddrFromAddrPort(addrPort(l.Addr())))
			// The echo of the forwarded record goes home, not to the
			// attacker.
			echoes := readUntil(t, c, "the echo of the forwarded record", func() bool {
				return ev.count(TracePathValidation, "started", at) == 1
			})
			echoes = append(echoes, readUntil(t, c, "the validation's end", func() bool {
				return ev.count(TracePathValidation, tc.want, netip.AddrPort{}) == 1
			})...)
			if !slices.Contains(echoes, "x") {
				t.Errorf("the client did not get the echo of the forwarded record: %q", echoes)
			}
			if addrPort(srv.RemoteAddr()) != home {
				t.Fatalf("the forwarded record moved the peer to %v", srv.RemoteAddr())
			}
			exchange(t, c, "after the attack")
			if addrPort(srv.RemoteAddr()) != home {
				t.Fatalf("peer moved to %v", srv.RemoteAddr())
			}
			attacker.Close()
			<-done
			gotMu.Lock()
			received := got.Len()
			gotMu.Unlock()
			if tc.policy == RRCEnhanced {
				if received != 0 {
					t.Errorf("enhanced: %d bytes sent to the unproven address", received)
				}
				return
			}
			if received == 0 || received > amplificationFactor*len(copied) {
				t.Errorf("%d bytes sent to the attacker's address for %d received (limit %dx)", received, len(copied), amplificationFactor)
			}
			if sent := ev.bytesTo(at); sent != received {
				t.Errorf("traced %d bytes to the attacker, it received %d", sent, received)
			}
			if n := ev.count(TraceRRCSent, "path_challenge", at); n < 1 || n > maxPathChallenges {
				t.Errorf("%d path_challenges to the attacker", n)
			}
			if ev.count(TracePeerAddressChanged, "", netip.AddrPort{}) != 0 {
				t.Errorf("address changed\n%s", ev)
			}
		})
	}
}

// sealAs seals a record of typ in c's current epoch, as c would send it,
// without sending it: a test's forgery with the client's keys.
func sealAs(t *testing.T, c *Conn, typ recordType, payload []byte) []byte {
	t.Helper()
	c.out.Lock()
	defer c.out.Unlock()
	b, err := c.rl.seal(nil, c.rl.writeCur, typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRRCWrongCookie: a path_response or path_drop whose cookie the
// server did not send is dropped (RFC 9853 §5.4), even authenticated and
// from the address under validation, and moves nothing; an unknown
// msg_type and a malformed message are ignored; RRC records before
// negotiation are not taken.
func TestRRCWrongCookie(t *testing.T) {
	checkNoGoroutineLeak(t)
	inBothVersions(t, testRRCWrongCookie)
}

func testRRCWrongCookie(t *testing.T, vers uint16) {
	c, srv, nat, l, ev := rrcPair(t, vers, RandomCIDGenerator(4), RRCBasic, RRCBasic)
	home := outside(nat)
	relay, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	at := relay.LocalAddr().(*net.UDPAddr).AddrPort()
	server := net.UDPAddrFromAddrPort(addrPort(l.Addr()))

	// A genuine, newest record from the relay's address starts a check.
	relay.WriteToUDP(sealAs(t, c, recordTypeApplicationData, []byte("via relay")), server)
	waitFor(t, "the check to start", func() bool { return ev.count(TracePathValidation, "started", at) == 1 })

	before := srv.Stats().Dropped["path_response or path_drop with an unknown cookie"]
	for i, m := range [][]byte{
		append([]byte{rrcPathResponse}, 1, 2, 3, 4, 5, 6, 7, 8),
		append([]byte{rrcPathDrop}, 1, 2, 3, 4, 5, 6, 7, 8),
	} {
		relay.WriteToUDP(sealAs(t, c, recordTypeRRC, m), server)
		waitFor(t, "the wrong cookie's drop", func() bool {
			return srv.Stats().Dropped["path_response or path_drop with an unknown cookie"] == before+uint64(i+1)
		})
	}
	beforeInvalid := srv.Stats().Dropped["invalid return_routability_check"]
	for i, m := range [][]byte{
		{7, 1, 2, 3, 4, 5, 6, 7, 8},   // unknown msg_type
		{rrcPathResponse, 1, 2, 3},    // short
		{rrcPathResponse},             // no cookie
		{},                            // empty
		make([]byte, rrcMessageLen+1), // long
	} {
		relay.WriteToUDP(sealAs(t, c, recordTypeRRC, m), server)
		waitFor(t, "the invalid message's drop", func() bool {
			return srv.Stats().Dropped["invalid return_routability_check"] == beforeInvalid+uint64(i+1)
		})
	}
	if addrPort(srv.RemoteAddr()) != home {
		t.Fatalf("a wrong cookie moved the peer to %v", srv.RemoteAddr())
	}
	readUntil(t, c, "the check to fail", func() bool {
		return ev.count(TracePathValidation, "failed", at) == 1
	})
	if addrPort(srv.RemoteAddr()) != home || ev.count(TracePeerAddressChanged, "", netip.AddrPort{}) != 0 {
		t.Fatalf("peer moved to %v\n%s", srv.RemoteAddr(), ev)
	}
	exchange(t, c, "still home")
}

// TestRRCNotNegotiated: without rrc an RRC record is dropped, and the
// newest authenticated record moves the peer at once, as before
// (RFC 9146 §6).
func TestRRCNotNegotiated(t *testing.T) {
	checkNoGoroutineLeak(t)
	inBothVersions(t, testRRCNotNegotiated)
}

func testRRCNotNegotiated(t *testing.T, vers uint16) {
	c, srv, nat, _, ev := rrcPair(t, vers, RandomCIDGenerator(4), RRCOff, RRCBasic)
	if srv.ConnectionState().ReturnRoutabilityCheck {
		t.Fatal("rrc negotiated")
	}
	second := nat.rebind().AddrPort()
	exchange(t, c, "after rebinding")
	if addrPort(srv.RemoteAddr()) != second {
		t.Fatalf("server did not follow: %v", srv.RemoteAddr())
	}
	if ev.count(TracePeerAddressChanged, "unvalidated", second) != 1 {
		t.Errorf("no unvalidated address change traced\n%s", ev)
	}
	before := srv.Stats().Dropped["bad content type"]
	nat.out.Load().WriteToUDP(sealAs(t, c, recordTypeRRC, append([]byte{rrcPathChallenge}, 1, 2, 3, 4, 5, 6, 7, 8)), net.UDPAddrFromAddrPort(addrPort(srv.LocalAddr())))
	waitFor(t, "the RRC record's drop", func() bool { return srv.Stats().Dropped["bad content type"] > before })
	exchange(t, c, "still here")
}

// TestRRCBounds: records forwarded from many addresses start at most
// maxPathValidations checks per window, one at a time, each with at most
// maxPathChallenges challenges.
func TestRRCBounds(t *testing.T) {
	checkNoGoroutineLeak(t)
	inBothVersions(t, testRRCBounds)
}

func testRRCBounds(t *testing.T, vers uint16) {
	c, srv, nat, l, ev := rrcPair(t, vers, OnlySendCIDGenerator(), RRCBasic, RRCBasic)
	home := outside(nat)
	server := net.UDPAddrFromAddrPort(addrPort(l.Addr()))
	var socks []*net.UDPConn
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	const tries = maxPathValidations + 2
	for i := range tries {
		s, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, s)
		// Two fresh records from each address: the second arrives
		// while the first's check runs (nested: ignored, §5).
		for range 2 {
			s.WriteToUDP(sealAs(t, c, recordTypeApplicationData, []byte{byte(i)}), server)
		}
		at := s.LocalAddr().(*net.UDPAddr).AddrPort()
		if i < maxPathValidations {
			readUntil(t, c, "the check to fail", func() bool {
				return ev.count(TracePathValidation, "failed", at) == 1
			})
		} else {
			readUntil(t, c, "the check to be refused", func() bool {
				return ev.count(TracePathValidation, "refused", at) >= 1
			})
		}
	}
	if n := ev.count(TracePathValidation, "started", netip.AddrPort{}); n != maxPathValidations {
		t.Errorf("%d checks started, want %d\n%s", n, maxPathValidations, ev)
	}
	if n := ev.count(TraceRRCSent, "path_challenge", netip.AddrPort{}); n > maxPathValidations*maxPathChallenges {
		t.Errorf("%d challenges", n)
	}
	if addrPort(srv.RemoteAddr()) != home {
		t.Fatalf("peer moved to %v", srv.RemoteAddr())
	}
	// Echoes of the forwarded records may still be on their way home.
	if _, err := c.Write([]byte("still home")); err != nil {
		t.Fatal(err)
	}
	var got []string
	readUntil(t, c, "the echo", func() bool { return slices.Contains(got, "still home") }, &got)
}

// fakePath is a pathIO that records what a Conn sends where, for the
// state machine's white-box tests: records are sealed in epoch 0, so
// the test reads the cookies.
type fakePath struct {
	peer, src netip.AddrPort
	sent      []sentDatagram
	moved     []netip.AddrPort
	followed  int
}

type sentDatagram struct {
	to netip.AddrPort
	b  []byte
}

func (f *fakePath) readDatagram(time.Time) ([]byte, error) { return nil, errTimeout }
func (f *fakePath) writeDatagram(b []byte) error {
	f.sent = append(f.sent, sentDatagram{f.peer, bytes.Clone(b)})
	return nil
}
func (f *fakePath) writeDatagramTo(b []byte, ap netip.AddrPort) error {
	f.sent = append(f.sent, sentDatagram{ap, bytes.Clone(b)})
	return nil
}
func (f *fakePath) release()   {}
func (f *fakePath) interrupt() {}
func (f *fakePath) localAddr() net.Addr {
	return net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:5684"))
}
func (f *fakePath) remoteAddr() net.Addr { return net.UDPAddrFromAddrPort(f.peer) }
func (f *fakePath) close() error         { return nil }
func (f *fakePath) followPeer()          { f.followed++; f.peer = f.src }
func (f *fakePath) source() (netip.AddrPort, bool) {
	return f.src, f.src.IsValid() && f.src != f.peer
}
func (f *fakePath) movePeerTo(ap netip.AddrPort) { f.moved = append(f.moved, ap); f.peer = ap }

// take returns the RRC messages sent since the last call: where to, the
// msg_type and the cookie.
func (f *fakePath) take(t *testing.T) (out []struct {
	to     netip.AddrPort
	typ    uint8
	cookie []byte
}) {
	t.Helper()
	for _, d := range f.sent {
		hdr, body, _, reason := nextRecord(d.b)
		if reason != dropNone || hdr.typ != recordTypeRRC || len(body) != rrcMessageLen {
			t.Fatalf("sent %x, not a plaintext RRC record", d.b)
		}
		out = append(out, struct {
			to     netip.AddrPort
			typ    uint8
			cookie []byte
		}{d.to, body[0], body[1:]})
	}
	f.sent = nil
	return out
}

func newPathConn(policy RRCPolicy) (*Conn, *fakePath) {
	f := &fakePath{peer: netip.MustParseAddrPort("198.51.100.1:40000")}
	c := &Conn{config: &Config{ReturnRoutabilityCheck: policy}, io: f, rl: newRecordLayer(64), rrcNegotiated: true}
	c.handshakeComplete.Store(true)
	return c, f
}

// arrive makes the Conn see an authenticated, newest record of n bytes
// from src.
func arrive(c *Conn, f *fakePath, src netip.AddrPort, n int) {
	f.src = src
	c.dgramLen, c.dgramCounted = n, false
	c.observePath(&recordHeader{newest: true, epoch: 1, cid: []byte{1}})
}

func rrcRecord(typ uint8, cookie []byte) (recordHeader, []byte) {
	return recordHeader{typ: recordTypeRRC, epoch: 1}, append([]byte{typ}, cookie...)
}

// TestRRCEnhancedPathDrop: RFC 9853 §5.2. The first challenge goes to the
// old address; a path_drop with its cookie starts the basic check on the
// new one, whose path_response moves the peer. A path_response on the old
// path instead keeps the peer; the timer T on the old path also falls
// back to the basic check.
func TestRRCEnhancedPathDrop(t *testing.T) {
	old := netip.MustParseAddrPort("198.51.100.1:40000")
	moved := netip.MustParseAddrPort("203.0.113.9:50000")

	c, f := newPathConn(RRCEnhanced)
	arrive(c, f, moved, 100)
	sent := f.take(t)
	if len(sent) != 1 || sent[0].to != old || sent[0].typ != rrcPathChallenge {
		t.Fatalf("enhanced: sent %+v, want one challenge to the old address", sent)
	}
	// A path_drop with another cookie changes nothing.
	c.handleRRC(rrcRecord(rrcPathDrop, make([]byte, 8)))
	if s := f.take(t); len(s) != 0 || c.path.phase != pathProbeOld {
		t.Fatalf("a path_drop with a wrong cookie: sent %+v, phase %d", s, c.path.phase)
	}
	c.handleRRC(rrcRecord(rrcPathDrop, sent[0].cookie))
	sent2 := f.take(t)
	if len(sent2) != 1 || sent2[0].to != moved || sent2[0].typ != rrcPathChallenge || bytes.Equal(sent2[0].cookie, sent[0].cookie) {
		t.Fatalf("after path_drop: sent %+v, want a fresh challenge to the new address", sent2)
	}
	// The old path's cookie no longer counts.
	c.handleRRC(rrcRecord(rrcPathResponse, sent[0].cookie))
	if len(f.moved) != 0 {
		t.Fatal("the old path's cookie moved the peer")
	}
	c.handleRRC(rrcRecord(rrcPathResponse, sent2[0].cookie))
	if len(f.moved) != 1 || f.moved[0] != moved || c.path.phase != pathIdle {
		t.Fatalf("moved %v, phase %d", f.moved, c.path.phase)
	}

	// The old path answers: stay.
	c, f = newPathConn(RRCEnhanced)
	arrive(c, f, moved, 100)
	sent = f.take(t)
	c.handleRRC(rrcRecord(rrcPathResponse, sent[0].cookie))
	if len(f.moved) != 0 || c.path.phase != pathIdle || len(f.take(t)) != 0 {
		t.Fatalf("old path answered: moved %v, phase %d", f.moved, c.path.phase)
	}

	// The old path is silent: after T, the basic check.
	c, f = newPathConn(RRCEnhanced)
	arrive(c, f, moved, 100)
	f.take(t)
	now := time.Now().Add(pathValidationTimeout + time.Millisecond)
	c.pathTimer(now)
	if s := f.take(t); len(s) != 1 || s[0].to != moved {
		t.Fatalf("after T on the old path: sent %+v", s)
	}
}

// TestRRCChallengeSchedule: the basic check sends at most
// maxPathChallenges challenges, each with a fresh cookie, paced by a
// doubling interval within T, never more than amplificationFactor times
// the bytes that came from the new address; then it fails and the peer
// stays.
func TestRRCChallengeSchedule(t *testing.T) {
	moved := netip.MustParseAddrPort("203.0.113.9:50000")
	c, f := newPathConn(RRCBasic)
	start := time.Now()
	arrive(c, f, moved, 100)
	var cookies [][]byte
	for i := 0; i < 20; i++ {
		for _, s := range f.take(t) {
			if s.to != moved || s.typ != rrcPathChallenge {
				t.Fatalf("sent %+v", s)
			}
			cookies = append(cookies, s.cookie)
		}
		at, ok := c.pathDeadline()
		if !ok {
			break
		}
		if at.Sub(start) > pathValidationTimeout+time.Millisecond {
			t.Fatalf("a timer at +%v, past T", at.Sub(start))
		}
		c.pathTimer(at)
	}
	if len(cookies) != maxPathChallenges {
		t.Fatalf("%d challenges, want %d", len(cookies), maxPathChallenges)
	}
	for i := range cookies {
		for j := range i {
			if bytes.Equal(cookies[i], cookies[j]) {
				t.Fatal("a cookie was reused")
			}
		}
	}
	if len(f.moved) != 0 || c.path.phase != pathIdle {
		t.Fatalf("after T: moved %v, phase %d", f.moved, c.path.phase)
	}

	// From a 20-byte datagram only one 22-byte challenge fits in 60
	// bytes: the next waits for more bytes from that address.
	c, f = newPathConn(RRCBasic)
	arrive(c, f, moved, 20)
	if n := len(f.take(t)); n != 1 {
		t.Fatalf("%d challenges for 20 bytes", n)
	}
	at, _ := c.pathDeadline()
	c.pathTimer(at)
	if n := len(f.take(t)); n != 1 {
		t.Fatalf("%d challenges at the first retry, want 1 (44 ≤ 60)", n)
	}
	at, _ = c.pathDeadline()
	c.pathTimer(at)
	if n := len(f.take(t)); n != 0 {
		t.Fatalf("%d challenges past the anti-amplification limit", n)
	}
	arrive(c, f, moved, 20) // more from the new address: the held challenge goes
	if n := len(f.take(t)); n != 1 {
		t.Fatalf("%d challenges after more bytes arrived, want 1", n)
	}
	// A third address during the check starts nothing.
	arrive(c, f, netip.MustParseAddrPort("192.0.2.77:1"), 1000)
	if n := len(f.take(t)); n != 0 || c.path.candidate != moved {
		t.Fatalf("nested rebinding: %d sent, candidate %v", n, c.path.candidate)
	}
}
