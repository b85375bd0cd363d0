package interop_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	pion4 "github.com/pion/dtls/v4"
	pion4proto "github.com/pion/dtls/v4/pkg/protocol"
)

// The return routability check (RFC 9853) against pion/dtls v4, whose
// CIDPathMigrationRRC policy negotiates rrc: the client talks to the
// server through rebindRelay, which moves its outside port mid-session
// as a NAT does when a binding expires. The server must challenge the
// new address, the client answer, and traffic follow. Cells:
//
//	TestPionRRC/<PionV3|PionV4>/<client|server>/RRC    DTLS 1.2 with CIDs
//	TestDTLS13RRC/PionV4-13/<client|server>/RRC         DTLS 1.3

// rebindRelay forwards a client's datagrams to a server from an outside
// socket, and the server's back to the client. rebind replaces the
// outside socket with one on a new port and closes the old one: replies
// to the old port are lost.
type rebindRelay struct {
	front  *net.UDPConn
	server *net.UDPAddr
	out    atomic.Pointer[net.UDPConn]
	client atomic.Pointer[net.UDPAddr]
	wg     sync.WaitGroup
}

func newRebindRelay(t *testing.T, server *net.UDPAddr) *rebindRelay {
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &rebindRelay{front: front, server: server}
	r.rebind(t)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.client.Store(from)
			r.out.Load().WriteToUDP(buf[:n], r.server)
		}
	}()
	t.Cleanup(func() {
		front.Close()
		r.out.Load().Close()
		r.wg.Wait()
	})
	return r
}

// rebind moves the outside traffic to a new port and returns it.
func (r *rebindRelay) rebind(t *testing.T) netip.AddrPort {
	out, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, _, err := out.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if c := r.client.Load(); c != nil {
				r.front.WriteToUDP(buf[:n], c)
			}
		}
	}()
	if old := r.out.Swap(out); old != nil {
		old.Close()
	}
	return out.LocalAddr().(*net.UDPAddr).AddrPort()
}

func udpAddrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort()
	}
	return netip.AddrPort{}
}

// rrcTrace counts our side's RRC events.
type rrcTrace struct {
	mu                  sync.Mutex
	sent, received      map[string]int // by rrc_msg_type
	validated, unproven int            // TracePeerAddressChanged
}

func (r *rrcTrace) trace(ev *dtls.TraceEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent == nil {
		r.sent, r.received = map[string]int{}, map[string]int{}
	}
	switch ev.Kind {
	case dtls.TraceRRCSent:
		r.sent[ev.Reason]++
	case dtls.TraceRRCReceived:
		r.received[ev.Reason]++
	case dtls.TracePeerAddressChanged:
		if ev.Reason == "validated by path_response" {
			r.validated++
		} else {
			r.unproven++
		}
	}
}

func (r *rrcTrace) counts() (sentResp, gotChal, validated, unproven int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent["path_response"], r.received["path_challenge"], r.validated, r.unproven
}

func TestPionRRC(t *testing.T) {
	for _, impl := range pionImpls {
		t.Run(impl.name, func(t *testing.T) {
			pki := newTestPKI(t)
			for _, role := range []string{"client", "server"} {
				t.Run(role, func(t *testing.T) {
					t.Run("RRC", func(t *testing.T) {
						if impl.name != "PionV4" {
							notApplicable(t, "pion/dtls v3 has no return routability check (RFC 9853)")
						}
						runPionRRC(t, pki, role, false)
					})
				})
			}
		})
	}
}

func TestDTLS13RRC(t *testing.T) {
	t.Run("PionV4-13", func(t *testing.T) {
		pki := newTestPKI(t)
		for _, role := range []string{"client", "server"} {
			t.Run(role, func(t *testing.T) {
				t.Run("RRC", func(t *testing.T) { runPionRRC(t, pki, role, true) })
			})
		}
	})
}

// pionRRCOptions configures pion v4 with CIDs under CIDPathMigrationRRC.
func pionRRCOptions(pki *testPKI, client, v13 bool) []pion4.Option {
	opts := []pion4.Option{
		pion4.WithConnectionID(pion4.RandomCIDGenerator(4), pion4.CIDPathMigrationRRC),
		pion4.WithExtendedMasterSecret(pion4.RequireExtendedMasterSecret),
	}
	if v13 {
		opts = append(opts, pion4.WithMinVersion(pion4proto.Version1_3), pion4.WithMaxVersion(pion4proto.Version1_3))
	} else {
		opts = append(opts, pion4.WithMaxVersion(pion4proto.Version1_2))
	}
	if client {
		return append(opts, pion4.WithRootCAs(pki.roots), pion4.WithServerName("localhost"))
	}
	return append(opts, pion4.WithCertificates(pki.server))
}

// ourRRCConfig is our side: CIDs and the default RRC policy.
func ourRRCConfig(pki *testPKI, client, v13 bool, tr *rrcTrace) *dtls.Config {
	cfg := &dtls.Config{
		ConnectionIDGenerator: dtls.RandomCIDGenerator(8),
		Tracer:                tr.trace,
		MaxVersion:            dtls.VersionDTLS12,
	}
	if v13 {
		cfg.MinVersion, cfg.MaxVersion = dtls.VersionDTLS13, dtls.VersionDTLS13
	}
	if client {
		cfg.RootCAs, cfg.ServerName = pki.roots, "localhost"
	} else {
		cfg.Certificates = []tls.Certificate{pki.server}
	}
	return cfg
}

// skipWithout13CID skips a 1.3 cell while our DTLS 1.3 has no
// connection IDs, which RRC goes with (RFC 9853 §3): it runs our 1.3
// client against our 1.3 Listener, both with CIDs, and looks at what
// they negotiated.
func skipWithout13CID(ctx context.Context, t *testing.T, pki *testPKI) {
	t.Helper()
	var tr rrcTrace
	l := listen(t, ourRRCConfig(pki, false, true, &tr))
	defer l.Close()
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			c := nc.(*dtls.Conn)
			c.HandshakeContext(ctx)
			c.Close()
		}
	}()
	c, err := dtls.DialContext(ctx, "udp", l.Addr().String(), ourRRCConfig(pki, true, true, &tr))
	if err != nil {
		notYet(t, "our DTLS 1.3 has no connection IDs yet (issue 13 item 5), and RRC goes with them: a 1.3-only client with a ConnectionIDGenerator fails against our own server: "+err.Error())
	}
	st := c.ConnectionState()
	c.Close()
	if st.Version != dtls.VersionDTLS13 || len(st.RemoteConnectionID) == 0 || !st.ReturnRoutabilityCheck {
		notYet(t, "our DTLS 1.3 does not negotiate connection IDs and rrc yet (issue 13 item 5)")
	}
}

func runPionRRC(t *testing.T, pki *testPKI, role string, v13 bool) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	if v13 {
		skipWithout13CID(ctx, t, pki)
	}
	var tr rrcTrace
	if role == "client" {
		pionServerRRC(ctx, t, pki, v13, &tr)
	} else {
		pionClientRRC(ctx, t, pki, v13, &tr)
	}
}

// echoUntil writes msg through w and reads from r until its echo comes
// back, writing again every 100 ms: the first echoes after a rebinding
// go to the old port. Reads run in the caller (our Conn answers
// challenges only while it is read).
func echoUntil(ctx context.Context, t *testing.T, conn net.Conn, msg string) {
	t.Helper()
	buf := make([]byte, 1<<14)
	for i := 0; ; i++ {
		if ctx.Err() != nil || i > 100 {
			t.Fatalf("no echo of %q after a rebinding", msg)
		}
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatalf("write: %v", err)
		}
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				t.Fatalf("read: %v", err)
			}
			if string(buf[:n]) == msg {
				conn.SetReadDeadline(time.Time{})
				return
			}
		}
	}
}

// pionServerRRC: our client behind the relay, pion's server.
func pionServerRRC(ctx context.Context, t *testing.T, pki *testPKI, v13 bool, tr *rrcTrace) {
	opts := pionRRCOptions(pki, false, v13)
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
	accepted := acceptEcho[*pion4.Conn](ctx, l, &wg)
	relay := newRebindRelay(t, l.Addr().(*net.UDPAddr))
	cfg := ourRRCConfig(pki, true, v13, tr)
	c, err := dtls.DialContext(ctx, "udp", relay.front.LocalAddr().String(), cfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	if !c.ConnectionState().ReturnRoutabilityCheck {
		t.Fatal("rrc not negotiated with pion's CIDPathMigrationRRC server")
	}
	srv, ok := <-accepted
	if !ok {
		t.Fatal("pion server: no connection")
	}
	echoUntil(ctx, t, c, "before")
	second := relay.rebind(t)
	echoUntil(ctx, t, c, "after rebinding")
	if got := udpAddrPort(srv.RemoteAddr()); got != second {
		t.Errorf("pion's server sends to %v, want the new port %v", got, second)
	}
	resp, chal, _, _ := tr.counts()
	if chal < 1 || resp != chal {
		t.Errorf("we received %d path_challenges and sent %d path_responses", chal, resp)
	}
	echoUntil(ctx, t, c, "and again")
}

// pionClientRRC: pion's client behind the relay, our Listener.
func pionClientRRC(ctx context.Context, t *testing.T, pki *testPKI, v13 bool, tr *rrcTrace) {
	cfg := ourRRCConfig(pki, false, v13, tr)
	l := listen(t, cfg)
	var wg sync.WaitGroup
	defer wg.Wait()
	accepted := acceptEcho[*dtls.Conn](ctx, l, &wg)
	defer l.Close()
	relay := newRebindRelay(t, l.Addr().(*net.UDPAddr))
	opts := pionRRCOptions(pki, true, v13)
	copts := make([]pion4.ClientOption, 0, len(opts))
	for _, o := range opts {
		copts = append(copts, o)
	}
	pc, err := pion4.Dial("udp", relay.front.LocalAddr().(*net.UDPAddr), copts...)
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
	if !srv.ConnectionState().ReturnRoutabilityCheck {
		t.Fatal("rrc not negotiated with pion's CIDPathMigrationRRC client")
	}
	echoUntil(ctx, t, pc, "before")
	second := relay.rebind(t)
	echoUntil(ctx, t, pc, "after rebinding")
	if got := udpAddrPort(srv.RemoteAddr()); got != second {
		t.Errorf("our server sends to %v, want the new port %v", got, second)
	}
	_, _, validated, unproven := tr.counts()
	if validated != 1 || unproven != 0 {
		t.Errorf("our server: %d validated and %d unvalidated address changes, want 1 and 0", validated, unproven)
	}
	echoUntil(ctx, t, pc, "and again")
}

// handshaker is a connection of ours or pion's.
type handshaker interface {
	net.Conn
	HandshakeContext(context.Context) error
}

// acceptEcho accepts one connection on l in a goroutine counted by wg,
// completes its handshake and echoes what it reads until that fails. The
// connection is sent on the returned channel once its handshake is done;
// the channel is closed instead if the accept or the handshake fails.
func acceptEcho[C handshaker](ctx context.Context, l net.Listener, wg *sync.WaitGroup) <-chan C {
	accepted := make(chan C, 1)
	wg.Go(func() {
		nc, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		conn := nc.(C)
		defer conn.Close()
		if conn.HandshakeContext(ctx) != nil {
			close(accepted)
			return
		}
		accepted <- conn
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
	})
	return accepted
}
