package coapdemo_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/examples/coapdemo"
	"github.com/dtls-go/dtls/examples/coapdtls"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Timers of the reboot tests: the server ends a connection whose peer
// went silent after rebootIdle, but never sooner than rebootHandshake
// after its last record (Config.IdleTimeout), and checks once a second.
const (
	rebootIdle      = time.Second
	rebootHandshake = 2 * time.Second
	// rebootWait bounds the wait for the server to end the old
	// connection by itself: the two timers and the check interval, with
	// room for a slow machine.
	rebootWait = 10 * time.Second
	// notifyEvery is how often the server notifies /counter's observers.
	// The live device answers each confirmable notification, which keeps
	// its connection from idling out.
	notifyEvery = 100 * time.Millisecond
)

// TestDeviceReboot: a device (our client) observes /counter on the
// example server, then reboots: its socket is gone without a
// close_notify, and it loses its DTLS state. It comes back on the same
// port or on a new one, with connection IDs or without, handshakes again
// and observes again. Neither the device's code nor the server's does
// anything about the old session: the Listener ends it (on the same
// port, at once, RFC 6347 §4.2.8; on a new port, by its idle timeout),
// go-coap closes the CoAP connection on it, and the server's observation
// on it goes, while the new one goes on getting notifications.
//
// Rebind is the other case a device meets: it does not reboot but its
// NAT gives it a new port. With a connection ID the session survives
// (RFC 9146): no new handshake, and the observation goes on.
func TestDeviceReboot(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cid      bool
		samePort bool
		want     string // the Listener event that ends the old connection
	}{
		{"SamePort", false, true, "peer restarted"},
		{"NewPort", false, false, "idle timeout"},
		{"SamePort/CID", true, true, "peer restarted"},
		{"NewPort/CID", true, false, "idle timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
			defer cancel()
			ts, events, ccfg := startRebootServer(t, tc.cid)

			sock1, err := net.DialUDP("udp", nil, udpAddr(t, ts.addr))
			if err != nil {
				t.Fatal(err)
			}
			dev1 := newDevice(ctx, t, sock1, ccfg, tc.cid)
			dev1.waitNotifications(ctx, t, 2)
			waitObservers(t, ts.app, 1)
			var srv1 *udpclient.Conn // the server's side of dev1's session
			select {
			case srv1 = <-ts.conns:
			case <-ctx.Done():
				t.Fatal("the server reported no connection")
			}

			// Reboot: the socket goes, nothing is said to the server.
			sock1.Close()
			dev1.cc.Close()

			var laddr *net.UDPAddr
			if tc.samePort {
				laddr = sock1.LocalAddr().(*net.UDPAddr)
			}
			sock2, err := net.DialUDP("udp", laddr, udpAddr(t, ts.addr))
			if err != nil {
				t.Fatalf("rebind after reboot: %v", err)
			}
			if tc.samePort && sock2.LocalAddr().String() != sock1.LocalAddr().String() {
				t.Fatalf("came back on %v, want %v", sock2.LocalAddr(), sock1.LocalAddr())
			}
			dev2 := newDevice(ctx, t, sock2, ccfg, tc.cid)
			dev2.waitNotifications(ctx, t, 2)

			// The server ends the old session by itself.
			select {
			case ev := <-events:
				if ev != tc.want {
					t.Errorf("the Listener reported %q, want %q", ev, tc.want)
				}
			case <-time.After(rebootWait):
				t.Fatalf("the server did not end the old connection in %v", rebootWait)
			}
			select {
			case <-srv1.Done():
			case <-time.After(rebootWait):
				t.Fatal("go-coap did not close the old connection")
			}
			waitObservers(t, ts.app, 1)
			// ...and the new device's exchange goes on.
			dev2.waitNotifications(ctx, t, 3)
			if got := do(ctx, t, dev2.cc, coapdemo.Request{Method: "get", Path: "/hello"}); len(got) != 1 || string(got[0]) != coapdemo.Hello {
				t.Errorf("GET /hello after the old session ended: %q", got)
			}
			if st := ts.l.Stats(); st.HandshakesCompleted != 2 || st.Connections != 1 {
				t.Errorf("listener: %d handshakes, %d connections; want 2 and 1", st.HandshakesCompleted, st.Connections)
			}
		})
	}

	t.Run("Rebind/CID", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
		defer cancel()
		ts, events, ccfg := startRebootServer(t, true)
		rc, err := dialRebinding(udpAddr(t, ts.addr))
		if err != nil {
			t.Fatal(err)
		}
		dev := newDevice(ctx, t, rc, ccfg, true)
		dev.waitNotifications(ctx, t, 2)
		before := rc.LocalAddr().String()
		if err := rc.rebind(); err != nil {
			t.Fatal(err)
		}
		if rc.LocalAddr().String() == before {
			t.Fatalf("rebind kept %v", before)
		}
		// The device speaks first from its new port (the server does
		// not know it yet): a GET, whose records carry the server's CID.
		if got := do(ctx, t, dev.cc, coapdemo.Request{Method: "get", Path: "/hello"}); len(got) != 1 || string(got[0]) != coapdemo.Hello {
			t.Errorf("GET /hello from the new port: %q", got)
		}
		dev.waitNotifications(ctx, t, 3)
		if st := ts.l.Stats(); st.HandshakesCompleted != 1 || st.Connections != 1 {
			t.Errorf("listener: %d handshakes, %d connections; want the one session", st.HandshakesCompleted, st.Connections)
		}
		select {
		case ev := <-events:
			t.Errorf("the Listener reported %q", ev)
		default:
		}
		waitObservers(t, ts.app, 1)
	})
}

// startRebootServer starts the example server with a PSK, short idle
// timers and a Tracer that reports the Listener's events, notifying
// /counter every notifyEvery. It returns the client's Config.
func startRebootServer(t *testing.T, cid bool) (*testServer, <-chan string, *dtls.Config) {
	t.Helper()
	creds := coapdemo.Credentials{PSK: []byte(testPSK), PSKIdentity: []byte("device-1"), CID: cid}
	scfg, err := creds.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	scfg.IdleTimeout, scfg.HandshakeTimeout = rebootIdle, rebootHandshake
	events := make(chan string, 16)
	scfg.Tracer = func(ev *dtls.TraceEvent) {
		if ev.Kind == dtls.TraceListenerEvent && !strings.Contains(ev.Reason, "receive buffer") {
			select {
			case events <- ev.Reason:
			default:
			}
		}
	}
	ts := startServer(t, scfg)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ts.app.Tick(ctx, notifyEvery) }()
	t.Cleanup(func() { stop(); wg.Wait() })
	ccfg, err := creds.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return ts, events, ccfg
}

func udpAddr(t *testing.T, addr string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// device is a CoAP client that observes /counter.
type device struct {
	cc    *udpclient.Conn
	dc    *dtls.Conn
	notes chan []byte
}

// newDevice runs the handshake over sock, registers an observation of
// /counter and keeps it.
func newDevice(ctx context.Context, t *testing.T, sock net.Conn, cfg *dtls.Config, cid bool) *device {
	t.Helper()
	dc := dtls.Client(sock, cfg)
	if err := dc.HandshakeContext(ctx); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if st := dc.ConnectionState(); cid != (len(st.RemoteConnectionID) == coapdemo.CIDLength) {
		t.Fatalf("the server's CID is %x, want one: %v", st.RemoteConnectionID, cid)
	}
	d := &device{dc: dc, notes: make(chan []byte, 64)}
	d.cc = coapdtls.Client(dc, options.WithCloseSocket(), options.WithErrors(func(err error) { t.Logf("device: %v", err) }))
	t.Cleanup(func() { d.cc.Close() })
	_, err := d.cc.Observe(ctx, "/counter", func(n *pool.Message) {
		b, err := n.ReadBody()
		if err != nil {
			return
		}
		select {
		case d.notes <- b:
		default:
		}
	})
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	return d
}

// waitNotifications waits for n more notifications.
func (d *device) waitNotifications(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-d.notes:
		case <-ctx.Done():
			t.Fatalf("%d of %d notifications", i, n)
		}
	}
}

// rebindingConn is a connected UDP socket whose local port can change
// under the DTLS connection, as behind a NAT whose mapping expired.
type rebindingConn struct {
	raddr *net.UDPAddr

	mu     sync.Mutex
	c      *net.UDPConn
	rd, wd time.Time
	closed bool
}

func dialRebinding(raddr *net.UDPAddr) (*rebindingConn, error) {
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, err
	}
	return &rebindingConn{raddr: raddr, c: c}, nil
}

func (r *rebindingConn) cur() (*net.UDPConn, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c, r.closed
}

// rebind moves to a new local port; a Read blocked on the old socket goes
// on on the new one.
func (r *rebindingConn) rebind() error {
	c, err := net.DialUDP("udp", nil, r.raddr)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.c
	r.c = c
	c.SetReadDeadline(r.rd)
	c.SetWriteDeadline(r.wd)
	r.mu.Unlock()
	return old.Close()
}

func (r *rebindingConn) Read(b []byte) (int, error) {
	for {
		c, closed := r.cur()
		n, err := c.Read(b)
		if err != nil && errors.Is(err, net.ErrClosed) && !closed {
			if now, _ := r.cur(); now != c {
				continue // rebound while we waited
			}
		}
		return n, err
	}
}

func (r *rebindingConn) Write(b []byte) (int, error) {
	c, _ := r.cur()
	return c.Write(b)
}

func (r *rebindingConn) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.c.Close()
}

func (r *rebindingConn) LocalAddr() net.Addr {
	c, _ := r.cur()
	return c.LocalAddr()
}

func (r *rebindingConn) RemoteAddr() net.Addr { return r.raddr }

func (r *rebindingConn) SetDeadline(t time.Time) error {
	r.SetWriteDeadline(t)
	return r.SetReadDeadline(t)
}

func (r *rebindingConn) SetReadDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rd = t
	return r.c.SetReadDeadline(t)
}

func (r *rebindingConn) SetWriteDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wd = t
	return r.c.SetWriteDeadline(t)
}
