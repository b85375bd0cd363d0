package dtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// pollUntil polls cond every millisecond, up to about 10 s, and reports
// whether it became true. Under synctest the time is virtual.
func pollUntil(cond func() bool) bool {
	for range 10000 {
		if cond() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return cond()
}

// outcomeRecorder collects what Config.HandshakeOutcome reports.
type outcomeRecorder struct {
	mu  sync.Mutex
	all []HandshakeOutcome
	ch  chan HandshakeOutcome
}

func newOutcomeRecorder(config *Config) *outcomeRecorder {
	r := &outcomeRecorder{ch: make(chan HandshakeOutcome, 16)}
	config.HandshakeOutcome = func(o HandshakeOutcome) {
		r.mu.Lock()
		r.all = append(r.all, o)
		r.mu.Unlock()
		select {
		case r.ch <- o:
		default:
		}
	}
	return r
}

func (r *outcomeRecorder) next(t *testing.T) HandshakeOutcome {
	t.Helper()
	select {
	case o := <-r.ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no HandshakeOutcome")
		return HandshakeOutcome{}
	}
}

func (r *outcomeRecorder) list() []HandshakeOutcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]HandshakeOutcome(nil), r.all...)
}

// TestListenerShutdownSendsCloseNotify is issue 16's first point: Close
// ends a Listener's connections without telling their peers, who notice
// only by their own timeouts. Shutdown sends each a close_notify, so that
// a client's Read returns io.EOF at once, for connections the application
// accepted and for one still waiting in the Accept backlog; the
// server-side Read returns ErrListenerClosed, and Accept net.ErrClosed.
func TestListenerShutdownSendsCloseNotify(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	l, err := Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	clients := make([]*Conn, 3)
	for i := range clients {
		c, err := Dial("udp", l.Addr().String(), cc)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	if !pollUntil(func() bool { return l.Stats().Connections == len(clients) }) {
		t.Fatalf("the server holds %d connections, want %d", l.Stats().Connections, len(clients))
	}
	// Two accepted and read by the application, one left in the backlog.
	var served []<-chan error
	for range 2 {
		nc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		served = append(served, readErr(nc))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 10)); err != io.EOF {
			t.Errorf("client %d: Read returned %v, want io.EOF (a close_notify)", i, err)
		}
	}
	for i, ch := range served {
		checkEnded(t, "server connection "+string(rune('0'+i)), <-ch, ErrListenerClosed)
	}
	if _, err := l.Accept(); err != net.ErrClosed {
		t.Errorf("Accept after Shutdown: %v, want net.ErrClosed", err)
	}
	if s := l.Stats(); s.Connections != 0 || s.HandshakesCompleted != 3 {
		t.Errorf("after Shutdown: %d connections, %d handshakes completed", s.Connections, s.HandshakesCompleted)
	}
	// Shutdown again, and Close, are harmless; with nothing left to
	// wait for, even a ctx already done is no error.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if err := l.Shutdown(done); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	l.Close()
}

// TestListenerShutdownHandshakeInProgress: a handshake in progress when
// Shutdown starts is let finish, its connection is then ended with a
// close_notify instead of going to Accept, and Shutdown returns once it
// has. A new client is not answered any more.
func TestListenerShutdownHandshakeInProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: 10 * time.Millisecond})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		outcomes := newOutcomeRecorder(sc)
		l := simListener(t, n, sc)
		nc, err := n.Dial(lossClientAddr, lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		c := Client(nc, cc)
		defer c.Close()
		hsErr := make(chan error, 1)
		go func() { hsErr <- c.Handshake() }()
		if !pollUntil(func() bool { return l.Stats().Handshaking == 1 }) {
			t.Fatal("the handshake did not start")
		}
		shut := make(chan error, 1)
		go func() { shut <- l.Shutdown(context.Background()) }()
		synctest.Wait()
		if s := l.Stats(); s.Handshaking != 1 {
			t.Fatalf("Shutdown did not wait for the handshake: %d in progress", s.Handshaking)
		}

		// A new client during the shutdown gets no HelloVerifyRequest
		// (1.2) or HelloRetryRequest (1.3, the default here).
		nc2, err := n.Dial(netip.MustParseAddrPort("10.0.0.3:3333"), lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		late := cc.Clone()
		late.HandshakeTimeout = 2 * time.Second
		c2 := Client(nc2, late)
		defer c2.Close()
		late2 := make(chan error, 1)
		go func() { late2 <- c2.Handshake() }()

		// The server completes first, with its last flight, then sends
		// the close_notify in a datagram of its own. The simulated link
		// delivers datagrams sent at the same instant in either order;
		// a close_notify that overtakes the flight is held until the
		// Finished behind it (TestCloseNotifyOvertakesFinished), so the
		// handshake completes either way and the client learns of the
		// end from the server, not by a timeout.
		if err := <-hsErr; err != nil {
			t.Fatalf("the handshake in progress failed: %v", err)
		}
		if _, err := c.Read(make([]byte, 10)); err != io.EOF {
			t.Errorf("Read after the server's Shutdown: %v, want io.EOF", err)
		}
		if err := <-shut; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if _, err := l.Accept(); err != net.ErrClosed {
			t.Errorf("Accept: %v, want net.ErrClosed", err)
		}
		if err := <-late2; !errors.Is(err, ErrHandshakeTimeout) {
			t.Errorf("a client during Shutdown: %v, want ErrHandshakeTimeout", err)
		}
		got := outcomes.list()
		if len(got) != 1 || got[0].Err != nil {
			t.Errorf("outcomes: %+v, want one success", got)
		}
		if s := l.Stats(); s.HandshakesStarted != 1 || s.HandshakesCompleted != 1 || s.Dropped["listener closed"] == 0 {
			t.Errorf("stats: %+v", s)
		}
	})
}

// TestListenerShutdownContextExpires: a handshake that makes no progress
// holds Shutdown until its ctx ends; Shutdown then closes the Listener,
// which aborts the handshake (the outcome says ErrListenerClosed), and
// returns ctx.Err(). Without a ctx deadline the stall timeout ends it,
// and the outcome matches ErrHandshakeTimeout.
func TestListenerShutdownContextExpires(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration // of Shutdown's ctx; 0: none
		wantErr error         // Shutdown's
		wantOut error         // the outcome's
	}{
		{"ctx", 2 * time.Second, context.DeadlineExceeded, ErrListenerClosed},
		{"stall", 0, nil, ErrHandshakeTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := netsim.New(1, netsim.Link{Delay: time.Millisecond})
				_, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
				outcomes := newOutcomeRecorder(sc)
				l := simListener(t, n, sc)
				ap := netip.MustParseAddrPort("10.0.0.9:9999")
				n.Inject(ap, lossServerAddr, cookieHello(t, l, ap, 1))
				if !pollUntil(func() bool { return l.Stats().Handshaking == 1 }) {
					t.Fatal("the handshake did not start")
				}
				ctx := context.Background()
				if tc.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.timeout)
					defer cancel()
				}
				start := time.Now()
				err := l.Shutdown(ctx)
				if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
					t.Errorf("Shutdown: %v, want %v", err, tc.wantErr)
				}
				if tc.timeout > 0 && time.Since(start) != tc.timeout {
					t.Errorf("Shutdown returned after %v, not at its ctx deadline %v", time.Since(start), tc.timeout)
				}
				got := outcomes.list()
				if len(got) != 1 || !errors.Is(got[0].Err, tc.wantOut) {
					t.Fatalf("outcomes: %+v, want one failure matching %v", got, tc.wantOut)
				}
				if got[0].RemoteAddr.String() != ap.String() || got[0].Start.IsZero() || got[0].Duration <= 0 || got[0].State.HandshakeComplete {
					t.Errorf("outcome: %+v", got[0])
				}
				if s := l.Stats(); s.HandshakesFailed != 1 || s.Handshaking != 0 {
					t.Errorf("stats: %+v", s)
				}
				if _, err := l.Accept(); err != net.ErrClosed {
					t.Errorf("Accept: %v, want net.ErrClosed", err)
				}
			})
		})
	}
}

// TestListenerShutdownConcurrent runs Accept, AcceptContext, Shutdown,
// Close and client handshakes at once, under the race detector: every
// Accept returns, with a connection or net.ErrClosed, every accepted
// connection ends, and no goroutine is left.
func TestListenerShutdownConcurrent(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	cc.HandshakeTimeout = 3 * time.Second
	l, err := Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	accepted := make(chan struct{})
	var acceptedOnce sync.Once
	for i := range 6 {
		wg.Go(func() {
			for {
				var nc net.Conn
				var err error
				if i%2 == 0 {
					nc, err = l.Accept()
				} else {
					nc, err = l.AcceptContext(context.Background())
				}
				if err != nil {
					if err != net.ErrClosed {
						t.Errorf("Accept: %v", err)
					}
					return
				}
				acceptedOnce.Do(func() { close(accepted) })
				if _, err := nc.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
					t.Errorf("Read on an accepted connection: %v", err)
				}
				nc.Close()
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			c, err := Dial("udp", l.Addr().String(), cc)
			if err != nil {
				return // the Listener may have stopped first
			}
			// io.EOF if Shutdown told it, a timeout if Close won.
			c.SetReadDeadline(time.Now().Add(time.Second))
			c.Read(make([]byte, 10))
			c.Close()
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Shut down once a connection is in use, while handshakes may still
	// run and Accepts wait.
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Error("no connection accepted")
	}
	for i := range 3 {
		wg.Go(func() {
			if i == 2 {
				l.Close()
				return
			}
			if err := l.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
	wg.Wait()
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := l.AcceptContext(cctx); err != net.ErrClosed {
		t.Errorf("AcceptContext after Shutdown: %v, want net.ErrClosed", err)
	}
}

// TestAcceptContext: AcceptContext returns ctx.Err() when ctx ends first,
// and a connection otherwise.
func TestAcceptContext(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	l, err := Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.AcceptContext(ctx); err != context.DeadlineExceeded {
		t.Errorf("AcceptContext with nothing to accept: %v, want context.DeadlineExceeded", err)
	}
	c, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := l.AcceptContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// TestHandshakeOutcome is issue 16's second point: each server handshake
// a Listener runs, completed or failed, reaches Config.HandshakeOutcome
// with the peer's address, an errors.Is-able cause, the identity the peer
// presented and the timing; the client's error says what happened too.
func TestHandshakeOutcome(t *testing.T) {
	checkNoGoroutineLeak(t)
	p256, rsa := certs(t)["p256"], certs(t)["rsa"]
	psk := func() (client, server *Config) {
		return configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	}
	tests := []struct {
		name   string
		config func() (client, server *Config)
		// check the outcome and the client's handshake error.
		check func(t *testing.T, o HandshakeOutcome, clientErr error)
	}{
		{"completed", psk, func(t *testing.T, o HandshakeOutcome, clientErr error) {
			if o.Err != nil || clientErr != nil {
				t.Fatalf("errors: server %v, client %v", o.Err, clientErr)
			}
			if string(o.PSKIdentity) != "client1" || !o.State.HandshakeComplete || string(o.State.PSKIdentity) != "client1" {
				t.Errorf("outcome: %+v", o)
			}
			if !o.State.HandshakeStart.Equal(o.Start) || o.State.HandshakeDuration != o.Duration {
				t.Errorf("outcome %v+%v, its state %v+%v", o.Start, o.Duration, o.State.HandshakeStart, o.State.HandshakeDuration)
			}
		}},
		{"unknown PSK identity", func() (*Config, *Config) {
			cc, sc := psk()
			cc.PSKIdentity = []byte("intruder")
			// Not told to the client (RFC 4279 §2), the handshake
			// fails as with a wrong key: the server gives up after a
			// quarter of this without an authenticated Finished.
			sc.HandshakeTimeout = 2 * time.Second
			return cc, sc
		}, func(t *testing.T, o HandshakeOutcome, clientErr error) {
			if !errors.Is(o.Err, ErrUnknownPSKIdentity) || errors.Is(o.Err, ErrBadCertificate) || errors.Is(o.Err, ErrHandshakeTimeout) {
				t.Errorf("server: %v, want ErrUnknownPSKIdentity", o.Err)
			}
			if string(o.PSKIdentity) != "intruder" {
				t.Errorf("outcome PSK identity %q", o.PSKIdentity)
			}
			if clientErr == nil || errors.Is(clientErr, AlertError(alertUnknownPSKIdentity)) {
				t.Errorf("client: %v, want a failure that does not say the identity is unknown", clientErr)
			}
		}},
		{"unknown PSK identity, told", func() (*Config, *Config) {
			cc, sc := psk()
			cc.PSKIdentity = []byte("intruder")
			sc.InsecureUnknownPSKIdentityAlert = true
			return cc, sc
		}, func(t *testing.T, o HandshakeOutcome, clientErr error) {
			if !errors.Is(o.Err, ErrUnknownPSKIdentity) || errors.Is(o.Err, ErrHandshakeTimeout) {
				t.Errorf("server: %v, want ErrUnknownPSKIdentity", o.Err)
			}
			if string(o.PSKIdentity) != "intruder" {
				t.Errorf("outcome PSK identity %q", o.PSKIdentity)
			}
			var ae AlertError
			if !errors.As(clientErr, &ae) || ae != AlertError(alertUnknownPSKIdentity) || !errors.Is(clientErr, AlertError(alertUnknownPSKIdentity)) {
				t.Errorf("client: %v, want the peer's unknown_psk_identity alert", clientErr)
			}
		}},
		{"client certificate refused", func() (*Config, *Config) {
			sc := &Config{Certificates: []tls.Certificate{p256.tls}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: x509.NewCertPool()}
			cc := &Config{Certificates: []tls.Certificate{rsa.tls}, RootCAs: p256.pool, ServerName: "dtls.test"}
			return cc, sc
		}, func(t *testing.T, o HandshakeOutcome, clientErr error) {
			if !errors.Is(o.Err, ErrBadCertificate) {
				t.Errorf("server: %v, want ErrBadCertificate", o.Err)
			}
			if len(o.PeerCertificates) == 0 || string(o.PeerCertificates[0].Raw) != string(rsa.tls.Certificate[0]) {
				t.Errorf("outcome peer certificates: %d", len(o.PeerCertificates))
			}
			var ae AlertError
			if !errors.As(clientErr, &ae) || ae != AlertError(alertBadCertificate) {
				t.Errorf("client: %v, want the peer's bad_certificate alert", clientErr)
			}
		}},
		{"alert received", func() (*Config, *Config) {
			sc := &Config{Certificates: []tls.Certificate{p256.tls}}
			cc := &Config{RootCAs: x509.NewCertPool(), ServerName: "dtls.test"}
			return cc, sc
		}, func(t *testing.T, o HandshakeOutcome, clientErr error) {
			var ae AlertError
			if !errors.As(o.Err, &ae) || !isCertificateAlert(alert(ae)) {
				t.Errorf("server: %v, want the client's certificate alert", o.Err)
			}
			if !errors.Is(clientErr, ErrBadCertificate) {
				t.Errorf("client: %v, want ErrBadCertificate", clientErr)
			}
		}},
	}
	for _, tt := range tests {
		for _, vers := range []uint16{VersionDTLS12, VersionDTLS13} {
			t.Run(tt.name+"/"+versionName(vers), func(t *testing.T) {
				cc, sc := tt.config()
				cc.MaxVersion = vers
				cc.HandshakeTimeout = 5 * time.Second
				outcomes := newOutcomeRecorder(sc)
				l, _ := echoServer(t, sc, nil)
				c, err := Dial("udp", l.Addr().String(), cc)
				var clientErr error
				var local net.Addr
				if err == nil {
					defer c.Close()
					local = c.LocalAddr()
					st := c.ConnectionState()
					if st.HandshakeStart.IsZero() || st.HandshakeDuration <= 0 {
						t.Errorf("client state: start %v, duration %v", st.HandshakeStart, st.HandshakeDuration)
					}
				} else {
					clientErr = err
				}
				o := outcomes.next(t)
				if clientErr == nil && o.Err != nil && c.ConnectionState().Version == VersionDTLS13 {
					// A 1.3 client's handshake ends with its own Finished
					// (RFC 8446 §2): a server that then refuses it tells
					// it by an alert, which its first Read returns.
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					_, clientErr = c.Read(make([]byte, 10))
				}
				if local != nil && o.RemoteAddr.String() != local.String() {
					t.Errorf("outcome RemoteAddr %v, client at %v", o.RemoteAddr, local)
				}
				if o.RemoteAddr == nil || o.Start.IsZero() || o.Duration <= 0 {
					t.Errorf("outcome: address %v, start %v, duration %v", o.RemoteAddr, o.Start, o.Duration)
				}
				tt.check(t, o, clientErr)
				s := l.Stats()
				if s.HandshakesStarted != 1 || (s.HandshakesCompleted == 1) != (o.Err == nil) || (s.HandshakesFailed == 1) != (o.Err != nil) {
					t.Errorf("stats: %d started, %d completed, %d failed", s.HandshakesStarted, s.HandshakesCompleted, s.HandshakesFailed)
				}
			})
		}
	}
}
