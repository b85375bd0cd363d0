package dtls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// connectedPair returns a server and a client Conn over two connected
// loopback UDP sockets.
func connectedPair(t *testing.T, cc, sc *Config) (cli, srv *Conn) {
	t.Helper()
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.DialUDP("udp", nil, a.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	sa, err := net.DialUDP("udp", a.LocalAddr().(*net.UDPAddr), b.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	return Client(b, cc), Server(sa, sc)
}

// run13 completes a handshake between cc and sc over connected sockets,
// echoes msgs, and returns both sides' states.
func run13(t *testing.T, cc, sc *Config, msgs ...string) (ConnectionState, ConnectionState) {
	t.Helper()
	cli, srv := connectedPair(t, cc, sc)
	defer cli.Close()
	defer srv.Close()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<14)
		for range msgs {
			n, err := srv.Read(buf)
			if err == nil {
				_, err = srv.Write(buf[:n])
			}
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- srv.Handshake()
	}()
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	exchange(t, cli, msgs...)
	if err := <-errc; err != nil {
		t.Fatalf("server: %v", err)
	}
	return cli.ConnectionState(), srv.ConnectionState()
}

func configs13(t *testing.T, cert string) (cc, sc *Config) {
	tc := certs(t)[cert]
	sc = &Config{Certificates: []tls.Certificate{tc.tls}, MaxVersion: VersionDTLS13}
	cc = &Config{RootCAs: tc.pool, ServerName: "dtls.test", MaxVersion: VersionDTLS13}
	return cc, sc
}

func TestHandshake13Basic(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs13(t, "p256")
	ccs, scs := run13(t, cc, sc, "hello 1.3", "again")
	if ccs.Version != VersionDTLS13 || scs.Version != VersionDTLS13 {
		t.Fatalf("versions %#x %#x", ccs.Version, scs.Version)
	}
	if ccs.CipherSuite != suiteTLSAES128GCMSHA256 {
		t.Errorf("suite %s", CipherSuiteName(ccs.CipherSuite))
	}
}

func TestHandshake13EverySuite(t *testing.T) {
	for _, s := range cipherSuites13 {
		t.Run(s.name, func(t *testing.T) {
			cc, sc := configs13(t, "p256")
			cc.CipherSuites = []uint16{s.id}
			sc.CipherSuites = []uint16{s.id}
			ccs, scs := run13(t, cc, sc, "x", string(make([]byte, 1000)))
			if ccs.CipherSuite != s.id || scs.CipherSuite != s.id || ccs.Version != VersionDTLS13 {
				t.Fatalf("got %s %s version %#x", CipherSuiteName(ccs.CipherSuite), CipherSuiteName(scs.CipherSuite), ccs.Version)
			}
			a, err := ccs.ExportKeyingMaterial("EXPERIMENTAL test", nil, 32)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := scs.ExportKeyingMaterial("EXPERIMENTAL test", nil, 32)
			if string(a) != string(b) {
				t.Fatal("exporters differ")
			}
		})
	}
}

func TestHandshake13CertificateKinds(t *testing.T) {
	for _, kind := range []string{"p256", "p384", "ed25519", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			cc, sc := configs13(t, kind)
			ccs, _ := run13(t, cc, sc, "x")
			if ccs.Version != VersionDTLS13 {
				t.Fatalf("version %#x", ccs.Version)
			}
			if kind == "rsa" && ccs.SignatureScheme != tls.PSSWithSHA256 {
				t.Errorf("RSA signed with %v, want RSA-PSS", ccs.SignatureScheme)
			}
		})
	}
}

func TestHandshake13Groups(t *testing.T) {
	for _, tc := range []struct {
		name           string
		client, server []tls.CurveID
		want           tls.CurveID
	}{
		{"defaults: X25519MLKEM768 by HRR", nil, nil, groupX25519MLKEM768},
		{"X25519", []tls.CurveID{tls.X25519}, []tls.CurveID{tls.X25519}, tls.X25519},
		{"client X25519 only", []tls.CurveID{tls.X25519}, nil, tls.X25519},
		{"server X25519 only", nil, []tls.CurveID{tls.X25519}, tls.X25519},
		{"P-256", []tls.CurveID{tls.CurveP256}, nil, tls.CurveP256},
		{"P-384 by HRR", []tls.CurveID{tls.X25519, tls.CurveP384}, []tls.CurveID{tls.CurveP384}, tls.CurveP384},
		{"X25519MLKEM768", []tls.CurveID{groupX25519MLKEM768}, []tls.CurveID{groupX25519MLKEM768}, groupX25519MLKEM768},
		{"X25519MLKEM768 by HRR", []tls.CurveID{tls.X25519, groupX25519MLKEM768}, []tls.CurveID{groupX25519MLKEM768, tls.X25519}, groupX25519MLKEM768},
		{"SecP256r1MLKEM768 by HRR", []tls.CurveID{tls.CurveP256, groupSecP256r1MLKEM768}, []tls.CurveID{groupSecP256r1MLKEM768, tls.CurveP256}, groupSecP256r1MLKEM768},
		{"SecP256r1MLKEM768 only", []tls.CurveID{groupSecP256r1MLKEM768}, []tls.CurveID{groupSecP256r1MLKEM768}, groupSecP256r1MLKEM768},
		{"client defaults, server SecP256r1MLKEM768 first", nil, []tls.CurveID{groupSecP256r1MLKEM768, groupX25519MLKEM768}, groupX25519MLKEM768},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := configs13(t, "p256")
			cc.CurvePreferences, sc.CurvePreferences = tc.client, tc.server
			ccs, scs := run13(t, cc, sc, "x")
			if ccs.CurveID != tc.want || scs.CurveID != tc.want {
				t.Fatalf("group %v/%v, want %v", ccs.CurveID, scs.CurveID, tc.want)
			}
		})
	}
}

func TestHandshake13ClientAuth(t *testing.T) {
	cc, sc := configs13(t, "p256")
	ct := certs(t)["ed25519"]
	cc.Certificates = []tls.Certificate{ct.tls}
	sc.ClientAuth = tls.RequireAndVerifyClientCert
	sc.ClientCAs = ct.pool
	_, scs := run13(t, cc, sc, "x")
	if len(scs.PeerCertificates) != 1 {
		t.Fatalf("server saw %d client certificates", len(scs.PeerCertificates))
	}
	// Without a certificate the server refuses.
	cc2, sc2 := configs13(t, "p256")
	sc2.ClientAuth = tls.RequireAnyClientCert
	cli, srv := connectedPair(t, cc2, sc2)
	defer cli.Close()
	defer srv.Close()
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cli.Handshake()
	if err := <-errc; err == nil {
		t.Fatal("server accepted a client without a certificate")
	}
}

func TestHandshake13VersionNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cmin, cmax uint16
		smin, smax uint16
		want       uint16 // 0: must fail
	}{
		{"defaults", 0, 0, 0, 0, VersionDTLS13},
		{"both 1.3", 0, VersionDTLS13, 0, VersionDTLS13, VersionDTLS13},
		{"client 1.2 only", 0, VersionDTLS12, 0, VersionDTLS13, VersionDTLS12},
		{"server 1.2 only", 0, VersionDTLS13, 0, VersionDTLS12, VersionDTLS12},
		{"client 1.2 only, server default", 0, VersionDTLS12, 0, 0, VersionDTLS12},
		{"server 1.2 only, client default", 0, 0, 0, VersionDTLS12, VersionDTLS12},
		{"client 1.3 only, server 1.2", VersionDTLS13, VersionDTLS13, 0, VersionDTLS12, 0},
		{"server 1.3 only, client 1.2", 0, VersionDTLS12, VersionDTLS13, VersionDTLS13, 0},
		{"both 1.3 only", VersionDTLS13, VersionDTLS13, VersionDTLS13, VersionDTLS13, VersionDTLS13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := configs13(t, "p256")
			cc.MinVersion, cc.MaxVersion = tc.cmin, tc.cmax
			sc.MinVersion, sc.MaxVersion = tc.smin, tc.smax
			cli, srv := connectedPair(t, cc, sc)
			defer cli.Close()
			defer srv.Close()
			errc := make(chan error, 1)
			go func() { errc <- srv.Handshake() }()
			cerr := cli.Handshake()
			serr := <-errc
			if tc.want == 0 {
				if cerr == nil || serr == nil {
					t.Fatalf("handshake succeeded: client %v, server %v", cerr, serr)
				}
				return
			}
			if cerr != nil || serr != nil {
				t.Fatalf("client %v, server %v", cerr, serr)
			}
			if v := cli.ConnectionState().Version; v != tc.want {
				t.Fatalf("version %#x, want %#x", v, tc.want)
			}
		})
	}
}

// TestHandshake13Listener runs 1.3 through a Listener, whose cookie
// exchange is a stateless HelloRetryRequest, for each group choice.
func TestHandshake13Listener(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, tc := range []struct {
		name           string
		client, server []tls.CurveID
	}{
		{"defaults: X25519MLKEM768 asked by the HRR", nil, nil},
		{"X25519", []tls.CurveID{tls.X25519}, []tls.CurveID{tls.X25519}},
		{"X25519MLKEM768 asked by the HRR", []tls.CurveID{tls.X25519, groupX25519MLKEM768}, []tls.CurveID{groupX25519MLKEM768, tls.X25519}},
		{"P-384", []tls.CurveID{tls.CurveP384}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := configs13(t, "p256")
			cc.CurvePreferences, sc.CurvePreferences = tc.client, tc.server
			l, states := echoServer(t, sc, nil)
			c, err := Dial("udp", l.Addr().String(), cc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			exchange(t, c, "through the listener", "twice")
			st := <-states
			cs := c.ConnectionState()
			if cs.Version != VersionDTLS13 || st.Version != VersionDTLS13 {
				t.Fatalf("versions %#x/%#x", cs.Version, st.Version)
			}
			want := groupX25519MLKEM768 // the default's first
			if tc.server != nil {
				want = tc.server[0]
			} else if tc.client != nil {
				want = tc.client[0]
			}
			if cs.CurveID != want || st.CurveID != want {
				t.Fatalf("group %v/%v, want %v", cs.CurveID, st.CurveID, want)
			}
		})
	}
	// A 1.2-only client gets 1.2 from the same Listener.
	cc, sc := configs13(t, "p256")
	cc.MaxVersion = VersionDTLS12
	l, _ := echoServer(t, sc, nil)
	c, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange(t, c, "1.2")
	if v := c.ConnectionState().Version; v != VersionDTLS12 {
		t.Fatalf("version %#x", v)
	}
}

// TestLoss13 runs DTLS 1.3 handshakes through the loss table's lossy
// network (loss_test.go) at 0, 10, 30 and 50% loss each way, with X25519
// pinned and with the default groups (the cookie's HelloRetryRequest asks
// for X25519MLKEM768, whose 1216-byte share fragments the second
// ClientHello and the ServerHello): every seed must complete, within a
// bounded number of datagrams, and the rows are logged beside the 1.2
// ones for LOSS.md.
func TestLoss13(t *testing.T) {
	checkNoGoroutineLeak(t)
	seeds := lossSeeds()
	for _, x25519 := range []bool{true, false} {
		for _, mtu := range []int{0, 200} {
			for _, loss := range []float64{0, 0.1, 0.3, 0.5} {
				row := lossRow{suite: suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"}, mtu: mtu, loss: loss, v13: true, x25519: x25519}
				t.Run(row.name(), func(t *testing.T) {
					cc, sc := lossConfigs(t, row.suite)
					row.configure13(cc, sc)
					cc.MTU, sc.MTU = mtu, mtu
					cc.HandshakeTimeout, sc.HandshakeTimeout = 30*time.Minute, 30*time.Minute
					link := netsim.Link{Loss: loss, Delay: lossDelay, MTU: mtu}
					results := make([]lossResult, seeds)
					for seed := range seeds {
						r := lossHandshake(t, link, uint64(seed)+1, cc, sc)
						results[seed] = r
						if err := r.err; err != nil && !(errors.Is(err, os.ErrDeadlineExceeded) && strings.Contains(err.Error(), "gave up") && r.took > defaultHandshakeTimeout) {
							t.Errorf("seed %d: %v after %v", seed+1, err, r.took)
						}
						// Bounded retransmission: each side sends each of
						// its flights at most maxRetransmissions+1 times,
						// plus ACKs and answers to the peer's repeats.
						if r.toServer > maxLossDatagrams13 || r.toClient > maxLossDatagrams13 {
							t.Errorf("seed %d: %d datagrams to the server, %d to the client", seed+1, r.toServer, r.toClient)
						}
					}
					s := summarize(row, results)
					t.Log(s)
					if loss != 0 || mtu != 0 {
						return
					}
					// No loss at MTU 1200: CH1, CH2, client Finished;
					// HRR, server flight, ACK (the ACK is sent after the
					// client's handshake returns, so not counted). With
					// the hybrid, CH2 (a 1216-byte share) and the
					// server's first flight (a 1120-byte share) take one
					// datagram more each.
					toServer, toClient := 3.0, 2.0
					if !x25519 {
						toServer, toClient = 4.0, 3.0
					}
					if s.failed > 0 || math.Abs(s.toServer-toServer) > 0.01 || math.Abs(s.toClient-toClient) > 0.01 {
						t.Errorf("no loss: %s; want %.0f and %.0f datagrams", s, toServer, toClient)
					}
				})
			}
		}
	}
}

// maxLossDatagrams13 bounds what one side sends in one handshake of
// TestLoss13.
const maxLossDatagrams13 = 200

// downgradeRelay forwards datagrams between a client and addr, replacing
// DTLS 1.3 in the client's supported_versions with 1.2, as an attacker
// stripping 1.3 would. It returns the address to dial.
func downgradeRelay(t *testing.T, addr net.Addr) string {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close(); back.Close() })
	var client atomic.Pointer[net.UDPAddr]
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(from)
			d := bytes.ReplaceAll(buf[:n], []byte{0x00, 0x2b, 0x00, 0x05, 0x04, 0xfe, 0xfc, 0xfe, 0xfd}, []byte{0x00, 0x2b, 0x00, 0x05, 0x04, 0xfe, 0xfd, 0xfe, 0xfd})
			back.Write(d)
		}
	}()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			if to := client.Load(); to != nil {
				front.WriteToUDP(buf[:n], to)
			}
		}
	}()
	return front.LocalAddr().String()
}

func TestHandshake13DowngradeSentinel(t *testing.T) {
	cc, sc := configs13(t, "p256")
	l, _ := echoServer(t, sc, nil)
	cc.HandshakeTimeout = 5 * time.Second
	_, err := Dial("udp", downgradeRelay(t, l.Addr()), cc)
	if err == nil || !strings.Contains(err.Error(), "downgrade") {
		t.Fatalf("stripped 1.3 not detected: %v", err)
	}
	// Without 1.3 on the server, the same relay changes nothing.
	cc, sc = configs13(t, "p256")
	sc.MaxVersion = VersionDTLS12
	l, _ = echoServer(t, sc, nil)
	c, err := Dial("udp", downgradeRelay(t, l.Addr()), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// DTLS 1.2 never uses the hybrid the client lists for 1.3.
	if st := c.ConnectionState(); st.Version != VersionDTLS12 || st.CurveID != tls.X25519 {
		t.Fatalf("version %#x, group %v", st.Version, st.CurveID)
	}
}

func psk13Configs() (cc, sc *Config) {
	cc, sc = pskConfig(), pskConfig()
	cc.MaxVersion, sc.MaxVersion = VersionDTLS13, VersionDTLS13
	return cc, sc
}

func TestHandshake13PSK(t *testing.T) {
	t.Run("Server", func(t *testing.T) {
		cc, sc := psk13Configs()
		ccs, scs := run13(t, cc, sc, "psk")
		if ccs.Version != VersionDTLS13 || string(ccs.PSKIdentity) != "client1" || string(scs.PSKIdentity) != "client1" || len(ccs.PeerCertificates) != 0 {
			t.Fatalf("client %+v server %+v", ccs, scs)
		}
		// psk_dhe_ke, in the group the cookie's HelloRetryRequest
		// asked for: the default's hybrid.
		if ccs.CurveID != groupX25519MLKEM768 {
			t.Errorf("psk_dhe_ke with X25519MLKEM768 expected, group %v", ccs.CurveID)
		}
	})
	t.Run("Listener", func(t *testing.T) {
		cc, sc := psk13Configs()
		l, states := echoServer(t, sc, nil)
		c, err := Dial("udp", l.Addr().String(), cc)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		exchange(t, c, "psk through the listener")
		if st := <-states; st.Version != VersionDTLS13 || string(st.PSKIdentity) != "client1" {
			t.Fatalf("server state %+v", st)
		}
	})
	t.Run("HRR for the group", func(t *testing.T) {
		cc, sc := psk13Configs()
		sc.CurvePreferences = []tls.CurveID{tls.CurveP384}
		ccs, _ := run13(t, cc, sc, "psk")
		if ccs.CurveID != tls.CurveP384 || string(ccs.PSKIdentity) != "client1" {
			t.Fatalf("%+v", ccs)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		cc, sc := psk13Configs()
		cc.PSK = func([]byte) ([]byte, error) { return []byte("another key, same identity"), nil }
		cc.HandshakeTimeout = 3 * time.Second
		cli, srv := connectedPair(t, cc, sc)
		defer cli.Close()
		defer srv.Close()
		errc := make(chan error, 1)
		go func() { errc <- srv.Handshake() }()
		cerr := cli.Handshake()
		serr := <-errc
		if serr == nil || !strings.Contains(serr.Error(), "binder") || cerr == nil {
			t.Fatalf("client %v, server %v", cerr, serr)
		}
	})
}

// dropConn drops the next datagram written after drop is set.
type dropConn struct {
	net.Conn
	drop    atomic.Bool
	dropped atomic.Int32
}

func (d *dropConn) Write(b []byte) (int, error) {
	if d.drop.CompareAndSwap(true, false) {
		d.dropped.Add(1)
		return len(b), nil
	}
	return d.Conn.Write(b)
}

// TestHandshake13ReACK loses the server's ACK of the client's final
// flight: the client retransmits its Finished (epoch 2) from Read, and the
// server, which kept the client's epoch-2 keys, ACKs it again, after which
// the client stops retransmitting (RFC 9147 §5.8.3, §7).
func TestHandshake13ReACK(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs13(t, "p256")
	var mu sync.Mutex
	count := map[string]int{}
	var sconn *dropConn
	sc.Tracer = func(ev *TraceEvent) {
		if ev.Kind == TraceACKSent {
			mu.Lock()
			count["server ACK"]++
			first := count["server ACK"] == 1
			mu.Unlock()
			if first {
				sconn.drop.Store(true)
			}
		}
	}
	cc.Tracer = func(ev *TraceEvent) {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Kind {
		case TraceFlightRetransmitted:
			count["client retransmit"]++
		case TraceACKReceived:
			count["client ACK received"]++
		}
	}
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.DialUDP("udp", nil, a.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	sa, err := net.DialUDP("udp", a.LocalAddr().(*net.UDPAddr), b.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	sconn = &dropConn{Conn: sa}
	cli, srv := Client(b, cc), Server(sconn, sc)
	defer cli.Close()
	defer srv.Close()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 100)
		srv.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := srv.Read(buf) // answers the retransmitted Finished meanwhile
		if err == nil {
			_, err = srv.Write(buf[:n])
		}
		done <- err
	}()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	// The client's Read drives its retransmission timer until the ACK.
	cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	readErr := make(chan error, 1)
	go func() { _, err := cli.Read(buf); readErr <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := count["client ACK received"]
		mu.Unlock()
		if got > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := cli.Write([]byte("after the re-ACK")); err != nil {
		t.Fatal(err)
	}
	if err := <-readErr; err != nil {
		t.Fatalf("client Read: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sconn.dropped.Load() != 1 || count["client retransmit"] < 1 || count["server ACK"] < 2 || count["client ACK received"] < 1 {
		t.Fatalf("dropped %d, %v", sconn.dropped.Load(), count)
	}
	retransmits := count["client retransmit"]
	mu.Unlock()
	// Reading on drives the timer: nothing may be resent now.
	cli.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	if _, err := cli.Read(buf); !isTimeout(err) {
		t.Errorf("client Read: %v", err)
	}
	mu.Lock()
	if count["client retransmit"] != retransmits {
		t.Errorf("the client retransmitted after the ACK: %v", count)
	}
}

// BenchmarkHandshake13 measures whole DTLS 1.3 handshakes through a
// Listener over loopback (its stateless HelloRetryRequest included), for
// ECDSA P-256 with X25519 (pinned), with the default groups, where that
// HelloRetryRequest asks for X25519MLKEM768 (no extra round trip), and an
// external PSK with X25519 (pinned).
func BenchmarkHandshake13(b *testing.B) {
	tc := certs(b)["p256"]
	x25519 := []tls.CurveID{tls.X25519}
	for _, bc := range []struct {
		name   string
		groups []tls.CurveID
		psk    bool
	}{
		{"ECDSA", x25519, false},
		{"ECDSA-X25519MLKEM768", nil, false},
		{"PSK", x25519, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			sc := &Config{Certificates: []tls.Certificate{tc.tls}, MaxVersion: VersionDTLS13, CurvePreferences: bc.groups}
			cc := &Config{RootCAs: tc.pool, ServerName: "dtls.test", MinVersion: VersionDTLS13, MaxVersion: VersionDTLS13, CurvePreferences: bc.groups}
			if bc.psk {
				cc, sc = psk13Configs()
				cc.MinVersion = VersionDTLS13
				cc.CurvePreferences, sc.CurvePreferences = bc.groups, bc.groups
			}
			l, err := Listen("udp", "127.0.0.1:0", sc)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			b.ReportAllocs()
			for b.Loop() {
				c, err := Dial("udp", l.Addr().String(), cc)
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// TestKeyUpdate13 sends a KeyUpdate from our client to our server: the
// client keeps writing in epoch 3 until the server's ACK, then moves to
// epoch 4, which the server reads (RFC 9147 §8). The interop cells cover
// a peer's KeyUpdate with update_requested.
func TestKeyUpdate13(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs13(t, "p256")
	cli, srv := connectedPair(t, cc, sc)
	defer cli.Close()
	defer srv.Close()
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Let the client take the server's ACK of its Finished first.
	cli.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 100)
	cli.Read(buf)
	if err := cli.sendKeyUpdate(false, false); err != nil {
		t.Fatal(err)
	}
	if cli.rl.writeCur != 3 {
		t.Fatalf("write epoch %d before the ACK", cli.rl.writeCur)
	}
	got := make(chan string, 1)
	go func() {
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := srv.Read(buf)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	// The client's Read takes the ACK.
	deadline := time.Now().Add(5 * time.Second)
	for cli.rl.writeCur != 4 && time.Now().Before(deadline) {
		cli.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		cli.Read(make([]byte, 100))
	}
	if cli.rl.writeCur != 4 {
		t.Fatalf("write epoch %d after the ACK", cli.rl.writeCur)
	}
	if _, err := cli.Write([]byte("in epoch 4")); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "in epoch 4" {
		t.Fatalf("server read %q", s)
	}
	if srv.rl.readCur != 4 {
		t.Errorf("server read epoch %d", srv.rl.readCur)
	}
}

// TestHandshake13GroupWithoutHRR: a server that sends no
// HelloRetryRequest for its cookie (InsecureSkipHelloVerify) takes the
// client's X25519 share rather than spend a round trip asking for the
// hybrid it prefers, and tells the client its preferences in
// supported_groups in EncryptedExtensions (RFC 8446 §4.2.7): 4 groups,
// 14 bytes more than the EncryptedExtensions of a server whose first
// choice the client's share already is. Without a usable share, it still
// sends the HelloRetryRequest (RFC 8446 §4.2.8).
func TestHandshake13GroupWithoutHRR(t *testing.T) {
	run := func(client, server []tls.CurveID) (group tls.CurveID, hellos, eeLen int) {
		t.Helper()
		cc, sc := configs13(t, "p256")
		cc.CurvePreferences, sc.CurvePreferences = client, server
		sc.InsecureSkipHelloVerify = true
		var mu sync.Mutex
		cc.Tracer = func(e *TraceEvent) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case e.Kind == TraceHandshakeSent && e.HandshakeType == uint8(typeClientHello) && e.FragmentOffset == 0:
				hellos++
			case e.Kind == TraceHandshakeReceived && e.HandshakeType == uint8(typeEncryptedExtensions):
				eeLen = int(e.MessageLength)
			}
		}
		ccs, scs := run13(t, cc, sc, "x")
		if ccs.CurveID != scs.CurveID {
			t.Fatalf("groups %v/%v", ccs.CurveID, scs.CurveID)
		}
		mu.Lock()
		defer mu.Unlock()
		return ccs.CurveID, hellos, eeLen
	}
	g, hellos, eeDefault := run(nil, nil)
	if g != tls.X25519 || hellos != 1 {
		t.Fatalf("defaults without the cookie: %v after %d ClientHellos, want X25519 after 1", g, hellos)
	}
	g, hellos, eeX25519 := run(nil, []tls.CurveID{tls.X25519})
	if g != tls.X25519 || hellos != 1 {
		t.Fatalf("server X25519 only: %v after %d ClientHellos", g, hellos)
	}
	if eeDefault != eeX25519+14 {
		t.Errorf("EncryptedExtensions of %d bytes from a server preferring the hybrid, %d from one preferring X25519; want 14 more (supported_groups)", eeDefault, eeX25519)
	}
	// No share for a group the server accepts: a HelloRetryRequest.
	g, hellos, _ = run([]tls.CurveID{tls.X25519, groupX25519MLKEM768}, []tls.CurveID{groupX25519MLKEM768})
	if g != groupX25519MLKEM768 || hellos != 2 {
		t.Fatalf("server hybrid only: %v after %d ClientHellos, want X25519MLKEM768 after 2", g, hellos)
	}
}
