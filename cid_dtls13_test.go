package dtls

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DTLS 1.3 CID updates (RFC 9147 §9, cid_dtls13.go): RequestConnectionId
// answered with spare CIDs the Listener routes, old CIDs retired once the
// peer moves on, cid_immediate, the bounds, and the rules whose violation
// is an alert.

// requestConnectionIDs13 plays a peer that asks for n CIDs (we do not
// ask of our own accord).
func (c *Conn) requestConnectionIDs13(n uint8) error {
	body, _ := (&requestConnectionIDMsg13{numCIDs: n}).marshal()
	c.hs.startPostHandshakeFlight()
	if c.hs.queueMessage(c.rl.writeCur, typeRequestConnectionID, body) == nil {
		return errors.New("not queued")
	}
	return c.sendFlight(false, "RequestConnectionId")
}

// sendNewConnectionID13 plays a peer that sends a NewConnectionId as
// given, without taking the CIDs as its own.
func (c *Conn) sendNewConnectionID13(cids [][]byte, usage uint8) error {
	body, err := (&newConnectionIDMsg13{cids: cids, usage: usage}).marshal()
	if err != nil {
		return err
	}
	c.hs.startPostHandshakeFlight()
	if c.hs.queueMessage(c.rl.writeCur, typeNewConnectionID, body) == nil {
		return errors.New("not queued")
	}
	return c.sendFlight(false, "NewConnectionId")
}

// sendRawPostHandshake13 plays a peer that sends a post-handshake
// message of type typ with body as given.
func (c *Conn) sendRawPostHandshake13(typ handshakeType, body []byte) error {
	c.hs.startPostHandshakeFlight()
	if c.hs.queueMessage(c.rl.writeCur, typ, body) == nil {
		return errors.New("not queued")
	}
	return c.sendFlight(false, "raw")
}

// useSpare13 makes the i-th spare CID the peer gave us the one we send.
func (c *Conn) useSpare13(i int) []byte {
	c.out.Lock()
	defer c.out.Unlock()
	c.rl.writeCID = c.cid13.spares[i]
	return c.rl.writeCID
}

// pump reads c until nothing arrives for a moment, so that it processes
// what its peer sent; data read is returned.
func pump(t *testing.T, c *Conn) ([]byte, error) {
	t.Helper()
	var got []byte
	buf := make([]byte, 1<<14)
	for range 50 {
		c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.SetReadDeadline(time.Time{})
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
	t.Fatal("the peer keeps sending")
	return nil, nil
}

// cidPair13 completes a 1.3 handshake between a client and a server
// (Server over a connected socket, no Listener) with the given CID
// generators, and leaves neither reading.
func cidPair13(t *testing.T, clientGen, serverGen func() []byte, tune ...func(cc, sc *Config)) (cli, srv *Conn) {
	t.Helper()
	cc, sc := configs13(t, "p256")
	cc.ConnectionIDGenerator, sc.ConnectionIDGenerator = clientGen, serverGen
	for _, f := range tune {
		f(cc, sc)
	}
	cli, srv = connectedPair(t, cc, sc)
	t.Cleanup(func() { cli.Close(); srv.Close() })
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// The ticket and the ACKs of both last flights.
	if _, err := pump(t, cli); err != nil {
		t.Fatal(err)
	}
	if _, err := pump(t, srv); err != nil {
		t.Fatal(err)
	}
	return cli, srv
}

// TestCIDUpdate13Listener: a client asks our Listener for spare CIDs,
// switches to them one after the other (moving to a new address on the
// way) and the Listener routes each, retiring the older ones.
func TestCIDUpdate13Listener(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, scfg := configs13(t, "p256")
	scfg.ConnectionIDGenerator = RandomCIDGenerator(8)
	cc.ConnectionIDGenerator = OnlySendCIDGenerator()
	var traced []string
	tracer := make(chan string, 64)
	scfg.Tracer = func(ev *TraceEvent) {
		if ev.Kind == TraceCIDChanged {
			select {
			case tracer <- ev.Reason:
			default:
			}
		}
	}
	l, conns := acceptOne(t, scfg)
	nat := newNATProxy(t, l.Addr())
	c, err := Dial("udp", nat.front.LocalAddr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange(t, c, "before")
	srv := <-conns
	first := srv.ConnectionState().LocalConnectionID

	if err := c.requestConnectionIDs13(3); err != nil {
		t.Fatal(err)
	}
	// The server's NewConnectionId arrives while we read.
	for i := 0; i < 20 && len(c.cid13.spares) < 3; i++ {
		if _, err := pump(t, c); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.cid13.spares) != 3 {
		t.Fatalf("%d spare CIDs, want 3", len(c.cid13.spares))
	}
	spares := c.cid13.spares
	for _, s := range spares {
		if len(s) != 8 || bytes.Equal(s, first) {
			t.Fatalf("spare CID %x (first %x)", s, first)
		}
		if cio, _ := l.table.lookup(append([]byte{uhFixedBits | uhCIDBit}, append(s, 0, 0)...), netip.AddrPort{}); cio == nil {
			t.Fatalf("the Listener does not route spare CID %x", s)
		}
	}

	// The second spare: the handshake CID and the first spare retire.
	c.useSpare13(1)
	exchange(t, c, "on the second spare")
	waitFor(t, "the server to move to the second spare", func() bool {
		return bytes.Equal(srv.ConnectionState().LocalConnectionID, spares[1])
	})
	for _, old := range [][]byte{first, spares[0]} {
		l.table.mu.RLock()
		cio := l.table.byCID[string(old)]
		l.table.mu.RUnlock()
		if cio != nil {
			t.Errorf("retired CID %x still routed", old)
		}
	}
	// A record with a retired CID is no longer routed (or, from the
	// client's address, accepted).
	c.out.Lock()
	c.rl.writeCID = first
	c.out.Unlock()
	if _, err := c.Write([]byte("retired")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retired CID's drop", func() bool { return srv.Stats().Dropped["bad connection ID"] > 0 })

	// The third spare from a new address.
	c.useSpare13(2)
	second := nat.rebind()
	if srv.ConnectionState().ReturnRoutabilityCheck {
		// RFC 9853: the echo goes to the old address until the
		// server's path_challenge to the new one is answered.
		if _, err := c.Write([]byte("third spare, new port")); err != nil {
			t.Fatal(err)
		}
		readUntil(t, c, "the server to follow", func() bool { return sameAddr(srv.RemoteAddr(), second) })
	}
	exchange(t, c, "third spare, new port")
	if !sameAddr(srv.RemoteAddr(), second) {
		t.Fatalf("server did not follow the client: %v", srv.RemoteAddr())
	}
	if got := srv.ConnectionState().LocalConnectionID; !bytes.Equal(got, spares[2]) {
		t.Errorf("server's CID %x, want %x", got, spares[2])
	}
	for len(tracer) > 0 {
		traced = append(traced, <-tracer)
	}
	if len(traced) < 3 {
		t.Errorf("Tracer saw %q", traced)
	}
}

// TestCIDUpdate13TooMany: a peer that asks for more CIDs than
// maxIssuedCIDs13 lets it hold gets too_many_cids_requested; a request
// is answered with at most what fits.
func TestCIDUpdate13TooMany(t *testing.T) {
	checkNoGoroutineLeak(t)
	cli, srv := cidPair13(t, RandomCIDGenerator(4), RandomCIDGenerator(6))
	if err := cli.requestConnectionIDs13(255); err != nil {
		t.Fatal(err)
	}
	if _, err := pump(t, srv); err != nil {
		t.Fatal(err)
	}
	if _, err := pump(t, cli); err != nil {
		t.Fatal(err)
	}
	if n := len(cli.cid13.spares); n != maxIssuedCIDs13-1 {
		t.Fatalf("%d spares for a request of 255, want %d", n, maxIssuedCIDs13-1)
	}
	if _, err := pump(t, srv); err != nil { // the client's ACK
		t.Fatal(err)
	}
	if err := cli.requestConnectionIDs13(1); err != nil {
		t.Fatal(err)
	}
	if _, err := pump(t, srv); err == nil || sentAlert(srv) != int(alertTooManyCIDsRequested) {
		t.Fatalf("err %v, alert %d, want too_many_cids_requested", err, sentAlert(srv))
	}
	if _, err := pump(t, cli); err == nil {
		t.Fatal("the client did not see the alert")
	}
}

// TestCIDUpdate13Immediate: NewConnectionId(cid_immediate) switches the
// CID the receiver sends at once; the sender accepts it.
func TestCIDUpdate13Immediate(t *testing.T) {
	checkNoGoroutineLeak(t)
	cli, srv := cidPair13(t, RandomCIDGenerator(4), RandomCIDGenerator(6))
	old := cli.ConnectionState().RemoteConnectionID
	if _, err := srv.issueConnectionIDs13(2, cidImmediate); err != nil {
		t.Fatal(err)
	}
	if _, err := pump(t, cli); err != nil {
		t.Fatal(err)
	}
	now := cli.ConnectionState().RemoteConnectionID
	if bytes.Equal(now, old) || len(now) != 6 || len(cli.cid13.spares) != 1 {
		t.Fatalf("client sends CID %x (was %x), %d spares", now, old, len(cli.cid13.spares))
	}
	if _, err := cli.Write([]byte("new CID")); err != nil {
		t.Fatal(err)
	}
	got, err := pump(t, srv)
	if err != nil || string(got) != "new CID" {
		t.Fatalf("server read %q, %v", got, err)
	}
	if cid := srv.ConnectionState().LocalConnectionID; !bytes.Equal(cid, now) {
		t.Errorf("server's CID %x, want %x", cid, now)
	}
}

// TestCIDUpdate13Misbehaving: NewConnectionId and RequestConnectionId
// that RFC 9147 §9 forbids end the connection with its alert; a flood of
// spare CIDs costs bounded memory.
func TestCIDUpdate13Misbehaving(t *testing.T) {
	checkNoGoroutineLeak(t)
	rows := []struct {
		name                 string
		clientGen, serverGen func() []byte
		peer                 func(cli *Conn) error
		want                 alert // 0: the connection survives
	}{
		{"NewConnectionId without CIDs negotiated", nil, nil,
			func(c *Conn) error { return c.sendNewConnectionID13([][]byte{{1, 2, 3}}, cidSpare) }, alertUnexpectedMessage},
		{"NewConnectionId from a peer receiving an empty CID", OnlySendCIDGenerator(), RandomCIDGenerator(4),
			func(c *Conn) error { return c.sendNewConnectionID13([][]byte{{1, 2, 3}}, cidSpare) }, alertUnexpectedMessage},
		{"RequestConnectionId from a peer sending an empty CID", RandomCIDGenerator(4), OnlySendCIDGenerator(),
			func(c *Conn) error { return c.requestConnectionIDs13(1) }, alertUnexpectedMessage},
		{"empty CID", RandomCIDGenerator(4), RandomCIDGenerator(4),
			func(c *Conn) error { return c.sendNewConnectionID13([][]byte{{}}, cidSpare) }, alertIllegalParameter},
		{"cid_immediate without a CID", RandomCIDGenerator(4), RandomCIDGenerator(4),
			func(c *Conn) error { return c.sendNewConnectionID13(nil, cidImmediate) }, alertIllegalParameter},
		{"NewConnectionId flood", RandomCIDGenerator(4), RandomCIDGenerator(4),
			func(c *Conn) error {
				for i := range 20 {
					cids := make([][]byte, maxNewCIDs13)
					for j := range cids {
						cids[j] = []byte{byte(i), byte(j), 7, 7}
					}
					if err := c.sendNewConnectionID13(cids, cidSpare); err != nil {
						return err
					}
				}
				return nil
			}, 0},
	}
	gen4 := RandomCIDGenerator(4)
	raw := func(typ handshakeType, body ...byte) func(*Conn) error {
		return func(c *Conn) error { return c.sendRawPostHandshake13(typ, body) }
	}
	rows = append(rows, []struct {
		name                 string
		clientGen, serverGen func() []byte
		peer                 func(cli *Conn) error
		want                 alert
	}{
		{"NewConnectionId with usage 2", gen4, gen4, raw(typeNewConnectionID, 0, 5, 4, 1, 2, 3, 4, 2), alertDecodeError},
		{"NewConnectionId with usage 255", gen4, gen4, raw(typeNewConnectionID, 0, 5, 4, 1, 2, 3, 4, 255), alertDecodeError},
		{"NewConnectionId with a CID past its list", gen4, gen4, raw(typeNewConnectionID, 0, 3, 4, 1, 2, cidSpare), alertDecodeError},
		{"NewConnectionId without usage", gen4, gen4, raw(typeNewConnectionID, 0, 0), alertDecodeError},
		{"RequestConnectionId of two bytes", gen4, gen4, raw(typeRequestConnectionID, 1, 1), alertDecodeError},
		{"empty CID past the ones kept", gen4, gen4, func(c *Conn) error {
			body := []byte{0, 0}
			for i := range maxNewCIDs13 {
				body = append(body, 4, byte(i), 1, 1, 1)
			}
			body = append(body, 0, cidSpare)
			body[1] = byte(len(body) - 3)
			return c.sendRawPostHandshake13(typeNewConnectionID, body)
		}, alertIllegalParameter},
	}...)
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			cli, srv := cidPair13(t, row.clientGen, row.serverGen)
			if err := row.peer(cli); err != nil {
				t.Fatal(err)
			}
			_, err := pump(t, srv)
			if row.want == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if n := len(srv.cid13.spares); n != maxSpareCIDs13 {
					t.Errorf("%d spares kept, want the bound %d", n, maxSpareCIDs13)
				}
				exchangePair(t, cli, srv, "still up")
				return
			}
			if err == nil || sentAlert(srv) != int(row.want) {
				t.Fatalf("err %v, alert %d, want %v", err, sentAlert(srv), row.want)
			}
		})
	}
}

// exchangePair sends msg from cli to srv, neither with a reader running.
func exchangePair(t *testing.T, cli, srv *Conn, msg string) {
	t.Helper()
	if _, err := cli.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got, err := pump(t, srv)
	if err != nil || string(got) != msg {
		t.Fatalf("read %q, %v", got, err)
	}
}

// TestCIDUpdate13RetransmittedRequest: a RequestConnectionId that
// arrives while a flight of ours awaits its ACK is left unACKed, and
// answered when the peer repeats it.
func TestCIDUpdate13RetransmittedRequest(t *testing.T) {
	checkNoGoroutineLeak(t)
	cli, srv := cidPair13(t, RandomCIDGenerator(4), RandomCIDGenerator(4))
	// A flight of the server's that the client does not ACK yet.
	if _, err := srv.issueConnectionIDs13(1, cidSpare); err != nil {
		t.Fatal(err)
	}
	if err := cli.requestConnectionIDs13(2); err != nil {
		t.Fatal(err)
	}
	if _, err := pump(t, srv); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.rl.readCIDs13); n != 1 {
		t.Fatalf("server issued %d CIDs with its NewConnectionId unACKed", n)
	}
	// The client takes the spare, ACKs it and retransmits its request
	// (on its timer); the server answers it now.
	deadline := time.Now().Add(10 * time.Second)
	for len(cli.cid13.spares) < 3 && time.Now().Before(deadline) {
		if _, err := pump(t, cli); err != nil {
			t.Fatal(err)
		}
		if _, err := pump(t, srv); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(cli.cid13.spares); n != 3 {
		t.Fatalf("client holds %d spares, want 3", n)
	}
}

// TestCIDUpdate13API: the calls that start an update. Our client asks
// our Listener for spare CIDs (RequestConnectionIDs) and the server asks
// the client; the client moves to a new address with the next spare
// (SwitchConnectionID), and the server, following it, sends with a spare
// of its own (§9: a new CID on a new path); then the server rotates its
// CID (RotateConnectionID, cid_immediate).
func TestCIDUpdate13API(t *testing.T) {
	for _, policy := range []RRCPolicy{RRCBasic, RRCOff} {
		t.Run(policy.String(), func(t *testing.T) { runCIDUpdate13API(t, policy) })
	}
}

// runCIDUpdate13API is TestCIDUpdate13API with the server's RRC policy:
// it follows the client after a return routability check, or at once.
func runCIDUpdate13API(t *testing.T, policy RRCPolicy) {
	checkNoGoroutineLeak(t)
	cc, scfg := configs13(t, "p256")
	scfg.ReturnRoutabilityCheck = policy
	scfg.ConnectionIDGenerator = RandomCIDGenerator(8)
	cc.ConnectionIDGenerator = RandomCIDGenerator(4)
	var traceMu sync.Mutex
	var traced [2][]string // client's, server's TraceCIDChanged reasons
	tracer := func(side int) func(*TraceEvent) {
		return func(ev *TraceEvent) {
			if ev.Kind == TraceCIDChanged {
				traceMu.Lock()
				traced[side] = append(traced[side], ev.Reason)
				traceMu.Unlock()
			}
		}
	}
	cc.Tracer, scfg.Tracer = tracer(0), tracer(1)
	defer func() {
		traceMu.Lock()
		defer traceMu.Unlock()
		for side, wants := range [2][]string{
			{"RequestConnectionId(num_cids 3) sent", "NewConnectionId(cid_spare, 3 CIDs)", "SwitchConnectionID", "NewConnectionId(cid_immediate, 1 CIDs)"},
			{"NewConnectionId(cid_spare) sent", "RequestConnectionId(num_cids 2) sent", "(new path;", "NewConnectionId(cid_immediate) sent", "retired"},
		} {
			for _, want := range wants {
				if !slices.ContainsFunc(traced[side], func(r string) bool { return strings.Contains(r, want) }) {
					t.Errorf("side %d: no TraceCIDChanged with %q in %q", side, want, traced[side])
				}
			}
		}
	}()
	l, conns := acceptOne(t, scfg)
	nat := newNATProxy(t, l.Addr())
	c, err := Dial("udp", nat.front.LocalAddr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange(t, c, "before")
	srv := <-conns
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, n := range []int{0, maxSpareCIDs13 + 1} {
		if _, err := c.RequestConnectionIDs(ctx, n); err == nil {
			t.Errorf("RequestConnectionIDs(%d) succeeded", n)
		}
	}
	if err := c.SwitchConnectionID(); !errors.Is(err, errNoSpareCID) {
		t.Errorf("SwitchConnectionID without spares: %v", err)
	}
	// The client asks, with no Read in progress: the call reads.
	n, err := c.RequestConnectionIDs(ctx, 3)
	if err != nil || n != 3 {
		t.Fatalf("RequestConnectionIDs(3) = %d, %v", n, err)
	}
	c.out.Lock()
	spares := slices.Clone(c.cid13.spares)
	c.out.Unlock()
	for _, s := range spares {
		if cio, _ := l.table.lookup(append([]byte{uhFixedBits | uhCIDBit}, append(s, 0, 0)...), netip.AddrPort{}); cio == nil {
			t.Fatalf("the Listener does not route spare CID %x", s)
		}
	}
	// The server asks while its Read is in progress (in acceptOne's
	// echo loop): the call wakes it, and the client's Read answers.
	done := make(chan error, 1)
	go func() {
		_, err := srv.RequestConnectionIDs(ctx, 2)
		done <- err
	}()
	var served error
	readUntil(t, c, "the server's request to be answered", func() bool {
		select {
		case served = <-done:
			return true
		default:
			return false
		}
	})
	if served != nil {
		t.Fatal(served)
	}
	issued := c.rl.readCIDs13
	if len(issued) != 2 {
		t.Fatalf("client issued %d CIDs, want 2", len(issued))
	}
	srvCID := srv.ConnectionState().RemoteConnectionID

	// The client moves, with its next spare.
	if err := c.SwitchConnectionID(); err != nil {
		t.Fatal(err)
	}
	if got := c.ConnectionState().RemoteConnectionID; !bytes.Equal(got, spares[0]) {
		t.Fatalf("client sends CID %x, want the first spare %x", got, spares[0])
	}
	second := nat.rebind()
	if _, err := c.Write([]byte("new path")); err != nil {
		t.Fatal(err)
	}
	echoes := readUntil(t, c, "the server to follow", func() bool { return sameAddr(srv.RemoteAddr(), second) })
	// The echo of "new path" may come after the server followed, before
	// the next one's: nothing else may.
	if _, err := c.Write([]byte("on the new path")); err != nil {
		t.Fatal(err)
	}
	var later []string
	readUntil(t, c, "the echo on the new path", func() bool { return slices.Contains(later, "on the new path") }, &later)
	for _, e := range append(echoes, later...) {
		if e != "new path" && e != "on the new path" {
			t.Fatalf("echo: got %q, want %q or %q", e, "new path", "on the new path")
		}
	}
	if got := srv.ConnectionState().LocalConnectionID; !bytes.Equal(got, spares[0]) {
		t.Errorf("server's CID %x, want %x", got, spares[0])
	}
	// The server sends with a new CID on the new path: the client's
	// first spare, and the client takes it as its own.
	if got := srv.ConnectionState().RemoteConnectionID; !bytes.Equal(got, issued[0]) || bytes.Equal(got, srvCID) {
		t.Errorf("server sends CID %x on the new path, want %x (was %x)", got, issued[0], srvCID)
	}
	if got := c.ConnectionState().LocalConnectionID; !bytes.Equal(got, issued[0]) {
		t.Errorf("client's CID %x, want %x", got, issued[0])
	}

	// The server rotates its CID; the client must use it at once.
	before := srv.ConnectionState().LocalConnectionID
	go func() { done <- srv.RotateConnectionID(ctx) }()
	readUntil(t, c, "the rotation", func() bool {
		select {
		case served = <-done:
			return true
		default:
			return false
		}
	})
	if served != nil {
		t.Fatal(served)
	}
	now := srv.ConnectionState().LocalConnectionID
	if bytes.Equal(now, before) || !bytes.Equal(c.ConnectionState().RemoteConnectionID, now) {
		t.Fatalf("after RotateConnectionID the server's CID is %x (was %x), the client sends %x", now, before, c.ConnectionState().RemoteConnectionID)
	}
	l.table.mu.RLock()
	oldRouted, newRouted := l.table.byCID[string(before)] != nil, l.table.byCID[string(now)] != nil
	l.table.mu.RUnlock()
	if oldRouted || !newRouted {
		t.Errorf("routing after the rotation: old CID %v, new CID %v", oldRouted, newRouted)
	}
	exchange(t, c, "after the rotation")
}

// TestCIDUpdate13Odd: CID messages that RFC 9147 §9 does not forbid but
// that are odd are survived, at bounded cost: a request for none, a
// request for 255, a NewConnectionId of far more CIDs than we keep, CIDs
// of another length than the handshake's, and records whose CID has a
// length other than ours (silently dropped, RFC 9146 §3).
func TestCIDUpdate13Odd(t *testing.T) {
	checkNoGoroutineLeak(t)
	rows := []struct {
		name  string
		peer  func(cli, srv *Conn) error
		check func(t *testing.T, cli, srv *Conn)
	}{
		{"RequestConnectionId for none", func(cli, srv *Conn) error { return cli.requestConnectionIDs13(0) },
			func(t *testing.T, cli, srv *Conn) {
				if n := len(srv.rl.readCIDs13); n != 0 {
					t.Errorf("%d CIDs issued for num_cids 0", n)
				}
				if cli.hs.postHandshakeBusy() {
					t.Error("the request was not ACKed")
				}
			}},
		{"RequestConnectionId for 255", func(cli, srv *Conn) error { return cli.requestConnectionIDs13(255) },
			func(t *testing.T, cli, srv *Conn) {
				if n := len(srv.rl.readCIDs13); n != maxIssuedCIDs13-1 {
					t.Errorf("%d CIDs issued for num_cids 255, want the bound %d", n, maxIssuedCIDs13-1)
				}
			}},
		{"NewConnectionId of 1000 CIDs", func(cli, srv *Conn) error {
			body := []byte{0, 0}
			for i := range 1000 {
				body = append(body, 4, byte(i>>8), byte(i), 9, 9)
			}
			body = append(body, cidSpare)
			body[0], body[1] = byte((len(body)-3)>>8), byte(len(body)-3)
			return cli.sendRawPostHandshake13(typeNewConnectionID, body)
		}, func(t *testing.T, cli, srv *Conn) {
			if n := len(srv.cid13.spares); n != maxSpareCIDs13 {
				t.Errorf("%d spares kept, want the bound %d", n, maxSpareCIDs13)
			}
		}},
		{"cid_immediate with a CID of another length", func(cli, srv *Conn) error {
			return cli.sendNewConnectionID13([][]byte{{7, 7}}, cidImmediate)
		}, func(t *testing.T, cli, srv *Conn) {
			// The peer's CID is the peer's to parse: we send it.
			if got := srv.ConnectionState().RemoteConnectionID; !bytes.Equal(got, []byte{7, 7}) {
				t.Errorf("server sends CID %x", got)
			}
		}},
		{"records with a CID of another length", func(cli, srv *Conn) error {
			cli.out.Lock()
			good := cli.rl.writeCID
			cli.rl.writeCID = good[:3]
			cli.out.Unlock()
			_, err := cli.Write([]byte("short CID"))
			cli.out.Lock()
			cli.rl.writeCID = good
			cli.out.Unlock()
			return err
		}, func(t *testing.T, cli, srv *Conn) {
			// A shorter CID shifts the rest of the header: the record
			// fails as a bad header, a bad CID or a bad MAC.
			d := srv.Stats().Dropped
			if d["bad header"]+d["bad connection ID"]+d["bad record MAC"] == 0 {
				t.Errorf("not dropped: %v", d)
			}
		}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			cli, srv := cidPair13(t, RandomCIDGenerator(4), RandomCIDGenerator(4))
			if err := row.peer(cli, srv); err != nil {
				t.Fatal(err)
			}
			got, err := pump(t, srv)
			if err != nil || len(got) != 0 {
				t.Fatalf("server read %q, %v", got, err)
			}
			if _, err := pump(t, cli); err != nil {
				t.Fatal(err)
			}
			row.check(t, cli, srv)
			exchangePair(t, cli, srv, "still up")
		})
	}
}

// TestCIDUpdate13OtherConnsCID: a client whose NewConnectionId hands our
// Listener, as the CID to send, the CID another connection receives with
// changes only what we send it: both connections go on, and the
// Listener's routing stays as it was.
func TestCIDUpdate13OtherConnsCID(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, scfg := configs13(t, "p256")
	scfg.ConnectionIDGenerator = RandomCIDGenerator(4)
	cc.ConnectionIDGenerator = RandomCIDGenerator(4)
	l, conns := acceptOne(t, scfg)
	a, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	exchange(t, a, "a")
	<-conns
	b, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exchange(t, b, "b")
	bCID := b.ConnectionState().RemoteConnectionID // ours, for b
	if err := a.sendNewConnectionID13([][]byte{bCID, a.ConnectionState().LocalConnectionID}, cidImmediate); err != nil {
		t.Fatal(err)
	}
	if _, err := pump(t, a); err != nil { // the server's ACK
		t.Fatal(err)
	}
	l.table.mu.RLock()
	routesB := l.table.byCID[string(bCID)]
	l.table.mu.RUnlock()
	if routesB == nil {
		t.Fatal("b's CID no longer routed")
	}
	// The server now sends a its records with b's server-side CID; a's
	// own CID parses them no more (it is the peer's choice), but b's
	// connection and the Listener are untouched.
	exchange(t, b, "b again")
	if _, err := a.Write([]byte("a again")); err != nil {
		t.Fatal(err)
	}
	exchange(t, b, "b once more")
}

// TestCIDUpdate13APIRefused: the calls fail, at once, where RFC 9147 §9
// forbids the message or there is nothing to do: no CID in the
// direction asked for, DTLS 1.2, before the handshake, no spare left.
func TestCIDUpdate13APIRefused(t *testing.T) {
	checkNoGoroutineLeak(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The client sends the server's CID but receives none.
	cli, srv := cidPair13(t, OnlySendCIDGenerator(), RandomCIDGenerator(4))
	if _, err := srv.RequestConnectionIDs(ctx, 1); !errors.Is(err, errNoCID13) {
		t.Errorf("RequestConnectionIDs while sending an empty CID: %v", err)
	}
	if err := cli.RotateConnectionID(ctx); !errors.Is(err, errNoCID13) {
		t.Errorf("RotateConnectionID while receiving an empty CID: %v", err)
	}
	if err := cli.SwitchConnectionID(); !errors.Is(err, errNoSpareCID) {
		t.Errorf("SwitchConnectionID without spares: %v", err)
	}
	exchangePair(t, cli, srv, "still up")

	cc, sc := configs13(t, "p256")
	cc.MaxVersion, sc.MaxVersion = VersionDTLS12, VersionDTLS12
	cc.ConnectionIDGenerator, sc.ConnectionIDGenerator = RandomCIDGenerator(4), RandomCIDGenerator(4)
	c12, s12 := connectedPair(t, cc, sc)
	defer c12.Close()
	defer s12.Close()
	if _, err := c12.RequestConnectionIDs(ctx, 1); !errors.Is(err, errHandshakeNotComplete) {
		t.Errorf("RequestConnectionIDs before the handshake: %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s12.Handshake() }()
	if err := c12.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := c12.RequestConnectionIDs(ctx, 1); err == nil {
		t.Error("RequestConnectionIDs on DTLS 1.2")
	}
	if err := c12.RotateConnectionID(ctx); err == nil {
		t.Error("RotateConnectionID on DTLS 1.2")
	}
}

// TestCIDUpdate13Unanswered: a peer that ACKs our RequestConnectionId
// but never answers it (§9 lets it ignore requests; here its generator
// gives no CID of the negotiated length) leaves the call to its ctx, and
// the connection goes on; no second request goes out (§9: none while one
// is unfulfilled).
func TestCIDUpdate13Unanswered(t *testing.T) {
	checkNoGoroutineLeak(t)
	var calls atomic.Int32
	serverGen := func() []byte {
		if calls.Add(1) == 1 {
			return []byte{1, 2, 3, 4}
		}
		return []byte{1, 2, 3, 4, 5} // a length the records cannot carry
	}
	var requests atomic.Int32
	cli, srv := cidPair13(t, RandomCIDGenerator(4), serverGen, func(cc, sc *Config) {
		cc.Tracer = func(ev *TraceEvent) {
			if ev.Kind == TraceCIDChanged && strings.HasPrefix(ev.Reason, "RequestConnectionId") {
				requests.Add(1)
			}
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 100)
		for {
			n, err := srv.Read(buf)
			if err != nil {
				return
			}
			srv.Write(buf[:n])
		}
	}()
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := cli.RequestConnectionIDs(ctx, 2)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("unanswered RequestConnectionIDs: %v", err)
		}
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d RequestConnectionId sent, want 1", n)
	}
	exchange(t, cli, "still up")
	cli.Close()
	<-done
}
