package bench

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// relay forwards datagrams between one client and a server and records
// the flights: each run of datagrams in one direction is one flight,
// with its bytes.
type relay struct {
	pc      *net.UDPConn // the client's side
	up      *net.UDPConn // connected to the server
	mu      sync.Mutex
	client  *net.UDPAddr
	flights []flight13
}

type flight13 struct {
	fromClient bool
	datagrams  int
	bytes      int
}

func newRelay(t *testing.T, server *net.UDPAddr) *relay {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, server)
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{pc: pc, up: up}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.client = from
			r.note(true, n)
			r.mu.Unlock()
			up.Write(buf[:n])
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			to := r.client
			r.note(false, n)
			r.mu.Unlock()
			pc.WriteToUDP(buf[:n], to)
		}
	}()
	t.Cleanup(func() { pc.Close(); up.Close(); wg.Wait() })
	return r
}

func (r *relay) note(fromClient bool, n int) {
	if k := len(r.flights); k > 0 && r.flights[k-1].fromClient == fromClient {
		r.flights[k-1].datagrams++
		r.flights[k-1].bytes += n
		return
	}
	r.flights = append(r.flights, flight13{fromClient, 1, n})
}

func (r *relay) snapshot() []flight13 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]flight13(nil), r.flights...)
}

// TestRoundTrips13 checks what the 1.3 handshake rows claim: for each
// client and server of impls13, a handshake takes the same flights with
// X25519MLKEM768 as with X25519 (the cookie's HelloRetryRequest asks for
// the hybrid group), the hybrid group was used (the second ClientHello
// and the server's flight carry its shares, 1216 and 1120 bytes, the
// X25519 ones do not), and the client's flights are the first
// ClientHello, the second and its Finished.
func TestRoundTrips13(t *testing.T) {
	setupPKI(t)
	for _, srv := range impls13 {
		for _, cli := range impls13 {
			t.Run(cli.name+"-to-"+srv.name, func(t *testing.T) {
				x := handshakeFlights13(t, srv, cli, k13ECDSA)
				h := handshakeFlights13(t, srv, cli, k13Hybrid)
				t.Logf("X25519: %v", x)
				t.Logf("X25519MLKEM768: %v", h)
				if len(x) != len(h) {
					t.Fatalf("X25519 takes %d flights, X25519MLKEM768 %d", len(x), len(h))
				}
				if len(h) < 4 || !h[0].fromClient {
					t.Fatalf("flights %v: want ClientHello, HelloRetryRequest, ClientHello, server flight", h)
				}
				if got := clientFlights(h); got != 3 {
					t.Errorf("the client sent %d flights, want 3 (ClientHello, ClientHello, Finished)", got)
				}
				if h[2].bytes < 1216 || h[3].bytes < 1120 {
					t.Errorf("hybrid: second ClientHello %d bytes, server flight %d: no X25519MLKEM768 shares", h[2].bytes, h[3].bytes)
				}
				if x[2].bytes >= 1216 {
					t.Errorf("X25519: second ClientHello %d bytes", x[2].bytes)
				}
			})
		}
	}
}

func clientFlights(fs []flight13) int {
	n := 0
	for _, f := range fs {
		if f.fromClient {
			n++
		}
	}
	return n
}

// handshakeFlights13 makes one handshake of cli with srv through a relay
// and returns its flights up to the client's Finished and what the
// server sent after it (an ACK or a NewSessionTicket), before the client
// closes.
func handshakeFlights13(t *testing.T, srv, cli impl13, k kind13) []flight13 {
	addr, stop, err := srv.serve(k, readUntilClosed, new(atomic.Int64))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	r := newRelay(t, addr)
	c, err := cli.client(k).dial(r.pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the last datagrams through
	fs := r.snapshot()
	c.Close()
	return fs
}
