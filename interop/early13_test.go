package interop_test

// The EarlyData cells of TestDTLS13 (issue 13): a second connection
// resumes the first's session and sends 0-RTT data (RFC 8446 §4.2.10,
// RFC 9147 §5.6), which the server must accept and give its application
// as early data. wolfSSL 5.9's example programs do it with -r -0 (built
// with --enable-earlydata and WOLFSSL_DTLS13_NO_HRR_ON_RESUME by
// .ci/wolfssl); pion/dtls v4.0.1 does it only in its DetachedConn API
// (WithMaxEarlyDataSize, an EarlyDataSessionStore, and
// WithInsecureSkipVerifyHello on its server: "HRR cookies prevent
// 0-RTT"), which these cells drive over a UDP socket of their own.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	pion4 "github.com/pion/dtls/v4"
	pion4proto "github.com/pion/dtls/v4/pkg/protocol"
)

const (
	// earlyLimit is the max_early_data_size our server and pion's allow.
	earlyLimit = 16384
	// ourEarly is what our client sends as early data; pionEarly what
	// pion's does; wolfEarly what wolfSSL's example client sends with -0.
	ourEarly   = "early words from dtls-go"
	pionEarly  = "early words from pion"
	wolfEarly  = "A drop of info"
	earlyRound = 1 // the connection, of two, that sends early data
)

// wolfEarlyRound13 is the second connection of our client to wolfSSL's
// server (-r -0): it resumes with ourEarly as 0-RTT data, then a line
// each way.
func wolfEarlyRound13(ctx context.Context, t *testing.T, srv *proc, cfg *dtls.Config, port int, w want) {
	t.Helper()
	conn := earlyClient(ctx, t, addrOf(port), cfg, w, func() string { return "\nwolfSSL server:\n" + srv.output() })
	defer conn.Close()
	if _, err := conn.Write([]byte(goLine)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(exitWait))
	buf := make([]byte, 1<<14)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("Read: %v\nwolfSSL server:\n%s", err, srv.output())
	}
	t.Logf("wolfSSL answered %q after our early data", buf[:n])
}

// earlyClient dials addr with our client, queues ourEarly as 0-RTT data
// and completes the handshake, whose state must match w (w.early: the
// server accepted it).
func earlyClient(ctx context.Context, t *testing.T, addr string, cfg *dtls.Config, w want, peerOutput func() string) *dtls.Conn {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.Clone()
	var earlyRecords int
	var offered bool
	next := cfg.Tracer
	cfg.Tracer = func(ev *dtls.TraceEvent) {
		if ev.Kind == dtls.TraceRecordSent && ev.Epoch == 1 {
			earlyRecords++ // the Tracer runs in the handshake's goroutine
		}
		if ev.Kind == dtls.TraceEpochChanged && ev.Epoch == 1 {
			offered = true
		}
		if next != nil {
			next(ev)
		}
	}
	defer func() { t.Logf("our client: early data offered %v, %d early records sent", offered, earlyRecords) }()
	conn := dtls.Client(uc, cfg)
	if _, err := conn.WriteEarlyData([]byte(ourEarly)); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		conn.Close()
		t.Fatalf("handshake with early data: %v%s", err, peerOutput())
	}
	if err := w.check(conn.ConnectionState()); err != nil {
		t.Error(err)
	}
	return conn
}

// checkEarlyData takes the connection serveEchoConn accepted and checks
// that its application got exactly want as early data.
func checkEarlyData(ctx context.Context, t *testing.T, conns <-chan *dtls.Conn, want string) {
	t.Helper()
	select {
	case c := <-conns:
		got := c.EarlyData()
		if len(got) != 1 || string(got[0]) != want {
			t.Errorf("our server's early data %q, want [%q]", got, want)
		}
	case <-ctx.Done():
		t.Error("no connection accepted with early data")
	}
}

// pionEarlyStore is pion's EarlyDataSessionStore: the sessions of
// pionSessionStore and single-use claims of tickets for early data (its
// anti-replay), kept until they expire.
type pionEarlyStore struct {
	pionSessionStore
	claimMu sync.Mutex
	claims  map[string]time.Time
}

func newPionEarlyStore() *pionEarlyStore {
	return &pionEarlyStore{pionSessionStore: pionSessionStore{m: map[string]pion4.Session{}}, claims: map[string]time.Time{}}
}

func (s *pionEarlyStore) Claim(ticket []byte, expiresAt time.Time) (bool, error) {
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if exp, ok := s.claims[string(ticket)]; ok && time.Now().Before(exp) {
		return false, nil
	}
	s.claims[string(ticket)] = expiresAt
	return true, nil
}

// detached drives a pion DetachedConn over a UDP socket: it sends the
// datagrams pion asks for and records the events.
type detached struct {
	conn     *pion4.DetachedConn
	udp      *net.UDPConn
	peer     net.Addr
	early    []byte   // a client's 0-RTT data, written at DetachedEarlyDataReady
	beforeHS [][]byte // application data received before DetachedHandshakeDone
	afterHS  [][]byte
	done     bool
	accepted bool
	rejected bool
	closed   error
	isClosed bool
}

func (d *detached) drain() error {
	for ev := d.conn.NextEvent(); ev.Kind != pion4.DetachedNoEvent; ev = d.conn.NextEvent() {
		switch ev.Kind {
		case pion4.DetachedWriteDatagrams:
			for _, b := range ev.Datagrams {
				var err error
				if d.udp.RemoteAddr() != nil {
					_, err = d.udp.Write(b)
				} else {
					_, err = d.udp.WriteTo(b, ev.Addr)
				}
				if err != nil {
					return err
				}
			}
		case pion4.DetachedEarlyDataReady:
			if d.early != nil {
				if _, err := d.conn.WriteEarlyData(d.early); err != nil {
					return fmt.Errorf("pion WriteEarlyData: %w", err)
				}
			}
		case pion4.DetachedEarlyDataAccepted:
			d.accepted = true
		case pion4.DetachedEarlyDataRejected:
			d.rejected = true
		case pion4.DetachedHandshakeDone:
			d.done = true
		case pion4.DetachedApplicationData:
			if d.done {
				d.afterHS = append(d.afterHS, ev.Data)
			} else {
				d.beforeHS = append(d.beforeHS, ev.Data)
			}
		case pion4.DetachedClosed:
			d.isClosed, d.closed = true, ev.Err
		}
	}
	return nil
}

// until feeds datagrams from the socket to pion until cond holds, the
// connection closed, or ctx ends.
func (d *detached) until(ctx context.Context, cond func() bool) error {
	buf := make([]byte, 1<<16)
	for !cond() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.isClosed {
			return fmt.Errorf("pion connection closed: %w", d.closed)
		}
		d.udp.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, from, err := d.udp.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return err
		}
		if d.peer != nil && from.String() != d.peer.String() {
			continue
		}
		if err := d.conn.HandleDatagram(append([]byte(nil), buf[:n]...), from); err != nil {
			d.drain()
			if errors.Is(err, pion4.ErrConnClosed) {
				// The peer's close_notify ended it.
				d.isClosed = true
				return nil
			}
			return fmt.Errorf("pion HandleDatagram: %w", err)
		}
		if err := d.drain(); err != nil {
			return err
		}
	}
	return nil
}

// pionEarlyServer13: pion's DetachedServer, our client; the second
// connection sends ourEarly as 0-RTT data.
func pionEarlyServer13(ctx context.Context, t *testing.T, pki *testPKI, c cell13) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	store := newPionEarlyStore()
	type serverResult struct {
		beforeHS [][]byte
		err      error
	}
	results := make(chan serverResult, 2)
	go func() {
		for range 2 {
			r := serverResult{}
			r.beforeHS, r.err = pionEarlyServe(ctx, udp, pki, store)
			results <- r
			if r.err != nil {
				return
			}
		}
	}()
	cfg := c.ourConfig(pki, true)
	cfg.ClientSessionCache = dtls.NewLRUClientSessionCache(1)
	for i := range 2 {
		w := c.want()
		w.resumed = i == earlyRound
		if i == earlyRound {
			w.early = true
			conn := earlyClient(ctx, t, udp.LocalAddr().String(), cfg, w, func() string { return "" })
			exchangeLine(t, conn)
			conn.Close()
		} else {
			dialAndExchange(ctx, t, udp.LocalAddr().String(), cfg, w, goLine, goLine)
		}
		var r serverResult
		select {
		case r = <-results:
		case <-ctx.Done():
			t.Fatal("pion's server did not finish")
		}
		if r.err != nil {
			t.Fatalf("pion server: %v", r.err)
		}
		if i == earlyRound && (len(r.beforeHS) != 1 || string(r.beforeHS[0]) != ourEarly) {
			t.Errorf("pion's server got %q before its handshake completed, want our early data %q", r.beforeHS, ourEarly)
		}
	}
}

// exchangeLine writes goLine and reads the echo.
func exchangeLine(t *testing.T, conn *dtls.Conn) {
	t.Helper()
	if _, err := conn.Write([]byte(goLine)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(exitWait))
	buf := make([]byte, 1<<14)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != goLine {
		t.Fatalf("echo %q, %v", buf[:n], err)
	}
}

// pionEarlyServe is one connection of pion's DetachedServer: it starts
// on the first datagram from a new peer, echoes the application data
// that follows its handshake, and ends when the client closes. It
// returns the application data that came before the handshake
// completed: the accepted early data.
func pionEarlyServe(ctx context.Context, udp *net.UDPConn, pki *testPKI, store *pionEarlyStore) ([][]byte, error) {
	buf := make([]byte, 1<<16)
	var n int
	var peer net.Addr
	for peer == nil {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		udp.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		var err error
		n, peer, err = udp.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			peer = nil
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	conn, err := pion4.DetachedServer(peer, pion4.WithCertificates(pki.server),
		pion4.WithSessionStore(store, pion4.WithMaxEarlyDataSize(earlyLimit)),
		pion4.WithMinVersion(pion4proto.Version1_3), pion4.WithMaxVersion(pion4proto.Version1_3),
		// pion's own example: "HRR cookies prevent 0-RTT".
		pion4.WithInsecureSkipVerifyHello(true))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	d := &detached{conn: conn, udp: udp, peer: peer}
	if err := conn.Start(ctx); err != nil {
		return nil, err
	}
	if err := conn.HandleDatagram(append([]byte(nil), buf[:n]...), peer); err != nil {
		return nil, err
	}
	if err := d.drain(); err != nil {
		return nil, err
	}
	echoed := 0
	err = d.until(ctx, func() bool {
		for ; echoed < len(d.afterHS); echoed++ {
			if _, err := conn.Write(d.afterHS[echoed]); err != nil {
				return true
			}
			d.drain()
		}
		return d.isClosed
	})
	if err != nil && !d.isClosed {
		return d.beforeHS, err
	}
	if st, _ := conn.ConnectionState(); st.NegotiatedVersion() != pion4proto.Version1_3 {
		return d.beforeHS, fmt.Errorf("pion negotiated %v", st.NegotiatedVersion())
	}
	return d.beforeHS, nil
}

// pionEarlyClient13: pion's DetachedClient, our Listener; the second
// connection sends pionEarly as 0-RTT data.
func pionEarlyClient13(ctx context.Context, t *testing.T, pki *testPKI, c cell13) {
	cfg := c.ourConfig(pki, false)
	l := listen(t, cfg)
	store := newPionEarlyStore()
	for i := range 2 {
		w := c.want()
		w.resumed = i == earlyRound
		w.early = i == earlyRound
		var conns chan *dtls.Conn
		if w.early {
			conns = make(chan *dtls.Conn, 1)
		}
		res := serveEchoConn(ctx, l, w, false, conns)
		var early []byte
		if w.early {
			early = []byte(pionEarly)
		}
		d := pionEarlyDial(ctx, t, l.Addr().(*net.UDPAddr), pki, store, early)
		if w.early {
			checkEarlyData(ctx, t, conns, pionEarly)
			if !d.accepted || d.rejected {
				t.Errorf("pion's client: early data accepted %v, rejected %v", d.accepted, d.rejected)
			}
		}
		waitEcho(ctx, t, res, true)
		if i == 0 && len(store.m) == 0 {
			t.Fatal("pion's client kept no ticket from the first connection")
		}
	}
}

// pionEarlyDial is one connection of pion's DetachedClient to addr: it
// sends early (if any) as 0-RTT data, then pionLine, reads the echo, and,
// on a first connection, waits for our NewSessionTicket before closing.
func pionEarlyDial(ctx context.Context, t *testing.T, addr *net.UDPAddr, pki *testPKI, store *pionEarlyStore, early []byte) *detached {
	t.Helper()
	udp, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	limit := uint32(earlyLimit)
	conn, err := pion4.DetachedClient(addr, pion4.WithRootCAs(pki.roots), pion4.WithServerName("localhost"),
		pion4.WithSessionStore(store, pion4.WithMaxEarlyDataSize(limit)),
		pion4.WithMinVersion(pion4proto.Version1_3), pion4.WithMaxVersion(pion4proto.Version1_3))
	if err != nil {
		t.Fatal(err)
	}
	d := &detached{conn: conn, udp: udp, early: early}
	defer func() {
		conn.Close()
		d.drain()
	}()
	if err := conn.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.drain(); err != nil {
		t.Fatal(err)
	}
	if err := d.until(ctx, func() bool { return d.done }); err != nil {
		t.Fatalf("pion client handshake: %v", err)
	}
	if _, err := conn.Write([]byte(pionLine)); err != nil {
		t.Fatal(err)
	}
	if err := d.drain(); err != nil {
		t.Fatal(err)
	}
	if err := d.until(ctx, func() bool { return len(d.afterHS) > 0 }); err != nil {
		t.Fatalf("pion client, waiting for the echo: %v", err)
	}
	if string(d.afterHS[0]) != pionLine {
		t.Errorf("pion read %q", d.afterHS[0])
	}
	if early == nil {
		// The ticket comes after the handshake; give it a moment.
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		d.until(tctx, func() bool {
			store.mu.Lock()
			defer store.mu.Unlock()
			return len(store.m) > 0
		})
		cancel()
	}
	return d
}
