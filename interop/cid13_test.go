package interop_test

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	pion4 "github.com/pion/dtls/v4"
)

// DTLS 1.3 connection ID updates (RFC 9147 §9: RequestConnectionId,
// NewConnectionId) against pion/dtls v4. Cells:
//
//	TestDTLS13CIDUpdate/PionV4-13/client/CIDUpdate   our client asks pion's
//	    server for spare CIDs (Conn.RequestConnectionIDs), moves to a new
//	    port with the first (SwitchConnectionID; pion validates the path
//	    with RRC), then hands pion a new CID with cid_immediate
//	    (RotateConnectionID), which pion must use at once.
//	TestDTLS13CIDUpdate/PionV4-13/server/CIDUpdate   pion's client opens a
//	    second socket (Conn.AddPath) and probes it (Path.Probe), which
//	    sends RequestConnectionId to our Listener; our NewConnectionId
//	    (cid_spare) gives it the CID the probe and, after Path.Switch, its
//	    records carry, which the Listener routes; then our server rotates
//	    its CID.
//	TestDTLS13CIDUpdate/wolfSSL-13/<role>/CIDUpdate  n.a.: wolfSSL 5.9 has
//	    neither message.
//
// pion sends NewConnectionId only in answer to a request: its
// SendConnectionIDs (internal/handshake/fsm13.go) has no caller outside
// the package, so no cell sees pion's cid_immediate.

func TestDTLS13CIDUpdate(t *testing.T) {
	t.Run("wolfSSL-13", func(t *testing.T) {
		for _, role := range []string{"client", "server"} {
			t.Run(role, func(t *testing.T) {
				t.Run("CIDUpdate", func(t *testing.T) {
					notApplicable(t, "wolfSSL 5.9.2 has no RequestConnectionId or NewConnectionId: enum HandShakeType (wolfssl/internal.h) "+
						"stops at key_update(24), no source file names request_connection_id or new_connection_id, and its CID API "+
						"(wolfSSL_dtls_cid_use/_set/_get_rx/_get_tx) sets one CID per direction, once (src/dtls.c: wolfSSL_dtls_cid_set "+
						"fails when a receive CID is set)")
				})
			})
		}
	})
	t.Run("PionV4-13", func(t *testing.T) {
		pki := newTestPKI(t)
		t.Run("client", func(t *testing.T) {
			t.Run("CIDUpdate", func(t *testing.T) { pionServerCIDUpdate(t, pki) })
		})
		t.Run("server", func(t *testing.T) {
			t.Run("CIDUpdate", func(t *testing.T) { pionClientCIDUpdate(t, pki) })
		})
	})
}

// pionServerCIDUpdate: our client behind the relay, pion's server.
func pionServerCIDUpdate(t *testing.T, pki *testPKI) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	opts := pionRRCOptions(pki, false, true)
	sopts := make([]pion4.ServerOption, 0, len(opts))
	for _, o := range opts {
		sopts = append(sopts, o)
	}
	l, err := pion4.ListenAddr("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, sopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := l.Accept()
		if err != nil {
			return
		}
		conn := nc.(*pion4.Conn)
		defer conn.Close()
		if conn.HandshakeContext(ctx) != nil {
			return
		}
		buf := make([]byte, 1<<14)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if _, err := conn.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	relay := newRebindRelay(t, l.Addr().(*net.UDPAddr))
	var tr rrcTrace
	c, err := dtls.DialContext(ctx, "udp", relay.front.LocalAddr().String(), ourRRCConfig(pki, true, true, &tr))
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	st := c.ConnectionState()
	if st.Version != dtls.VersionDTLS13 || len(st.RemoteConnectionID) == 0 || !st.ReturnRoutabilityCheck {
		t.Fatalf("negotiated version %x, peer CID %x, rrc %v", st.Version, st.RemoteConnectionID, st.ReturnRoutabilityCheck)
	}
	echoUntil(ctx, t, c, "before")

	n, err := c.RequestConnectionIDs(ctx, 2)
	if err != nil || n != 2 {
		t.Fatalf("RequestConnectionIDs(2) from pion: %d spares, %v", n, err)
	}
	if err := c.SwitchConnectionID(); err != nil {
		t.Fatal(err)
	}
	moved := c.ConnectionState().RemoteConnectionID
	if bytes.Equal(moved, st.RemoteConnectionID) {
		t.Fatalf("still sending pion's handshake CID %x", moved)
	}
	relay.rebind(t)
	// pion drops records whose CID it did not issue (acceptsInboundCID):
	// an echo on the new path proves it took its spare.
	echoUntil(ctx, t, c, "new port, pion's spare CID")

	before := c.ConnectionState().LocalConnectionID
	if err := c.RotateConnectionID(ctx); err != nil {
		t.Fatalf("RotateConnectionID: pion did not use our cid_immediate CID: %v", err)
	}
	now := c.ConnectionState().LocalConnectionID
	if bytes.Equal(now, before) {
		t.Fatalf("our CID stays %x", now)
	}
	echoUntil(ctx, t, c, "after the rotation")
	if got := c.ConnectionState().LocalConnectionID; !bytes.Equal(got, now) {
		t.Errorf("our CID %x, want %x", got, now)
	}
}

// pionClientCIDUpdate: pion's client, our Listener.
func pionClientCIDUpdate(t *testing.T, pki *testPKI) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	var tr rrcTrace
	cfg := ourRRCConfig(pki, false, true, &tr)
	l := listen(t, cfg)
	defer l.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	accepted := acceptEcho[*dtls.Conn](ctx, l, &wg)
	opts := pionRRCOptions(pki, true, true)
	copts := make([]pion4.ClientOption, 0, len(opts))
	for _, o := range opts {
		copts = append(copts, o)
	}
	pc, err := pion4.Dial("udp", l.Addr().(*net.UDPAddr), copts...)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.HandshakeContext(ctx); err != nil {
		t.Fatalf("pion client handshake: %v", err)
	}
	srv, ok := <-accepted
	if !ok {
		t.Fatal("our server: no connection")
	}
	echoUntil(ctx, t, pc, "before")
	first := srv.ConnectionState().LocalConnectionID

	sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	path, err := pc.AddPath(sock)
	if err != nil {
		sock.Close()
		t.Fatalf("pion AddPath: %v", err)
	}
	defer path.Close()
	// Probe asks us for a CID (RequestConnectionId) and checks the path
	// with it; our server answers both while its Read runs.
	probed := make(chan error, 1)
	go func() { probed <- path.Probe(ctx) }()
	var perr error
	select {
	case perr = <-probed:
	case <-ctx.Done():
		t.Fatal("pion's Path.Probe did not return")
	}
	if perr != nil {
		t.Fatalf("pion's Path.Probe through our server: %v", perr)
	}
	if err := path.Switch(); err != nil {
		t.Fatalf("pion's Path.Switch: %v", err)
	}
	// Our server challenges the new address (RFC 9853) when pion's
	// records come from it, and moves there once pion answers; until
	// then our echoes go to pion's old socket, which pion still reads.
	for deadline := time.Now().Add(5 * time.Second); udpAddrPort(srv.RemoteAddr()) != udpAddrPort(sock.LocalAddr()); {
		time.Sleep(20 * time.Millisecond)
		if time.Now().After(deadline) {
			t.Fatalf("our server sends to %v, want pion's new socket %v", srv.RemoteAddr(), sock.LocalAddr())
		}
		echoUntil(ctx, t, pc, "on pion's new path")
	}
	if _, _, validated, unproven := tr.counts(); validated != 1 || unproven != 0 {
		t.Errorf("our server: %d validated and %d unvalidated address changes, want 1 and 0", validated, unproven)
	}
	second := srv.ConnectionState().LocalConnectionID
	if bytes.Equal(second, first) {
		t.Errorf("pion's new path uses our handshake CID %x, not the one we issued", first)
	}

	// Our server rotates its CID: pion must use it at once.
	rotated := make(chan error, 1)
	go func() { rotated <- srv.RotateConnectionID(ctx) }()
	for done := false; !done; {
		select {
		case err := <-rotated:
			if err != nil {
				t.Fatalf("RotateConnectionID: %v", err)
			}
			done = true
		case <-ctx.Done():
			t.Fatal("pion never used our cid_immediate CID")
		case <-time.After(50 * time.Millisecond):
			echoUntil(ctx, t, pc, "during the rotation")
		}
	}
	third := srv.ConnectionState().LocalConnectionID
	if bytes.Equal(third, second) {
		t.Errorf("our CID stays %x after the rotation", third)
	}
	echoUntil(ctx, t, pc, "after the rotation")
}
