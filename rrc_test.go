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
// client with the client policy behind a natProxy.
func rrcPair(t *testing.T, clientCID func() []byte, clientPolicy, serverPolicy RRCPolicy) (c, srv *Conn, nat *natProxy, l *Listener, ev *pathEvents) {
	t.Helper()
	cc, scfg := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
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
			c, srv, nat, _, ev := rrcPair(t, tc.cid, RRCBasic, tc.policy)
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
			c, srv, nat, l, ev := rrcPair(t, tc.cid, RRCBasic, tc.policy)
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
	c, srv, nat, l, ev := rrcPair(t, RandomCIDGenerator(4), RRCBasic, RRCBasic)
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

	before := srv.Stats().Dropped["path_response with an unknown cookie"]
	for i, m := range [][]byte{
		append([]byte{rrcPathResponse}, 1, 2, 3, 4, 5, 6, 7, 8),
		append([]byte{rrcPathDrop}, 1, 2, 3, 4, 5, 6, 7, 8),
	} {
		relay.WriteToUDP(sealAs(t, c, recordTypeRRC, m), server)
		waitFor(t, "the wrong cookie's drop", func() bool {
			return srv.Stats().Dropped["path_response with an unknown cookie"] == before+uint64(i+1)
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
	c, srv, nat, _, ev := rrcPair(t, RandomCIDGenerator(4), RRCOff, RRCBasic)
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
	c, srv, nat, l, ev := rrcPair(t, OnlySendCIDGenerator(), RRCBasic, RRCBasic)
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
