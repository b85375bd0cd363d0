package bench

// Each Benchmark has a sub-benchmark per implementation and one for the
// floor it is compared with, named impl=NAME, so that one run (and every
// -count repetition of it) times the pair back to back on the same,
// possibly busy, machine. bench.sh runs them and writes BENCHMARKS.md.

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
)

func forImpls(b *testing.B, k kind, f func(b *testing.B, im impl)) {
	setupPKI(b)
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) { f(b, im) })
	}
}

func start(b *testing.B, im impl, k kind, h handler) *net.UDPAddr {
	addr, stop, err := im.serve(k, h)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stop)
	return addr
}

// readUntilClosed is the server side of the handshake benchmarks: it
// waits for the client's close_notify (closing at once races the client's
// last handshake steps in pion v3, which then fails with close_notify).
func readUntilClosed(c net.Conn) bool {
	buf := make([]byte, 2048)
	for {
		if _, err := c.Read(buf); err != nil {
			return false
		}
	}
}

// Handshakes: a fresh client (socket included) per iteration against one
// server, cookie exchange on, closed right after.

func BenchmarkHandshakeECDSA(b *testing.B) {
	forImpls(b, kindECDSA, func(b *testing.B, im impl) { benchHandshake(b, im, kindECDSA) })
	// Ours again, each handshake with a leaf the process never saw (see
	// kindECDSAFresh): what our client costs when its certificate cache
	// cannot help. pion keeps no such cache.
	b.Run("impl=dtls-go-freshcert", func(b *testing.B) {
		setupFreshLeaves(b)
		used0 := freshNext.Load()
		benchHandshake(b, impls[0], kindECDSAFresh)
		used := freshNext.Load() - used0
		if used > freshLeafCount {
			b.Errorf("%d leaves presented, more than the %d issued: some were not fresh", used, freshLeafCount)
		}
		b.ReportMetric(float64(used)/float64(b.N), "leaves/op")
	})
	b.Run("impl=floor-crypto", benchCryptoFloor)
}

func BenchmarkHandshakePSK(b *testing.B) {
	forImpls(b, kindPSK, func(b *testing.B, im impl) { benchHandshake(b, im, kindPSK) })
	b.Run("impl=floor-3rtt", func(b *testing.B) { benchUDPRoundTrips(b, 3, 100) })
}

// BenchmarkHandshakeECDSAParallel runs 4×GOMAXPROCS clients at once
// against one server.
func BenchmarkHandshakeECDSAParallel(b *testing.B) {
	forImpls(b, kindECDSA, func(b *testing.B, im impl) {
		addr := start(b, im, kindECDSA, readUntilClosed)
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c, err := im.dial(kindECDSA, addr)
				if err != nil {
					b.Error(err)
					return
				}
				c.Close()
			}
		})
	})
	b.Run("impl=floor-crypto", func(b *testing.B) {
		setupPKI(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				cryptoFloorOnce()
			}
		})
	})
}

func benchHandshake(b *testing.B, im impl, k kind) {
	addr := start(b, im, k, readUntilClosed)
	b.ReportAllocs()
	for b.Loop() {
		c, err := im.dial(k, addr)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// benchCryptoFloor is the public-key work one ECDHE-ECDSA handshake cannot
// avoid, both ends together: the server makes an X25519 key and signs its
// parameters (ECDSA P-256, SHA-256); the client verifies the server's
// chain (x509.Certificate.Verify of the same leaf against the same roots
// and name as the clients: one ECDSA P-256 signature check, the CA's on
// the leaf, with the chain building and name and usage checks around it),
// then the parameters' signature, makes its X25519 key and derives the
// shared secret, and so does the server. It reports the chain
// verification's share as chain-verify-ns.
func benchCryptoFloor(b *testing.B) {
	setupPKI(b)
	b.ReportAllocs()
	var chain time.Duration
	for b.Loop() {
		chain += cryptoFloorOnce()
	}
	b.ReportMetric(float64(chain.Nanoseconds())/float64(b.N), "chain-verify-ns")
}

// cryptoFloorOnce does the floor's work once and returns how long the
// chain verification took.
func cryptoFloorOnce() time.Duration {
	var params [64 + 4 + 32]byte
	rand.Read(params[:64])
	sk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	copy(params[68:], sk.PublicKey().Bytes())
	h := sha256.Sum256(params[:])
	sig, err := ecdsa.SignASN1(rand.Reader, certKey, h[:])
	if err != nil {
		panic(err)
	}
	t0 := time.Now()
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: serverName, CurrentTime: time.Now()}); err != nil {
		panic(err)
	}
	chain := time.Since(t0)
	if !ecdsa.VerifyASN1(leaf.PublicKey.(*ecdsa.PublicKey), h[:], sig) {
		panic("verify")
	}
	ck, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if _, err := ck.ECDH(sk.PublicKey()); err != nil {
		panic(err)
	}
	if _, err := sk.ECDH(ck.PublicKey()); err != nil {
		panic(err)
	}
	return chain
}

// benchUDPRoundTrips is the network floor: n round trips of size-byte
// datagrams per iteration between a connected UDP client and an
// unconnected server socket read by one goroutine.
func benchUDPRoundTrips(b *testing.B, n, size int) {
	addr, stop, err := serveUDP(func(d []byte, reply func([]byte)) { reply(d) })
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	msg, buf := make([]byte, size), make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		for range n {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkEcho100 is the round trip of a 100-byte record: the client
// writes, the server reads and writes it back, the client reads it.
func BenchmarkEcho100(b *testing.B) {
	forImpls(b, kindECDSA, func(b *testing.B, im impl) {
		addr := start(b, im, kindECDSA, func(c net.Conn) bool {
			buf := make([]byte, 2048)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return false
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return false
				}
			}
		})
		c, err := im.dial(kindECDSA, addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Minute))
		msg, buf := make([]byte, 100), make([]byte, 2048)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=floor-udp", func(b *testing.B) { benchUDPRoundTrips(b, 1, 100) })
}

// sink counts the datagrams a receiver got and wakes a waiting sender.
type sink struct {
	got  atomic.Int64
	wake chan struct{}
}

func newSink() *sink { return &sink{wake: make(chan struct{}, 1)} }

func (s *sink) arrived() {
	s.got.Add(1)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

const (
	// window bounds the records in flight in the one-way benchmarks, so
	// that a sender does not just fill the receiver's socket buffer and
	// have the kernel drop the rest: 64 datagrams of 1 KB fit in Linux's
	// default 208 KB receive buffer and in a Listener's per-connection
	// queue.
	window = 64
	// lostAfter is how long the sender waits for a record in flight
	// before counting it lost.
	lostAfter = 5 * time.Millisecond
)

// sendPaced writes b.N records of size bytes to w, never more than window
// ahead of what s counted at the receiver, and reports the bytes delivered
// per second at the receiver.
func sendPaced(b *testing.B, w net.Conn, s *sink, size int) {
	msg := make([]byte, size)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	wait := func() bool { // false: nothing arrived for lostAfter
		timer.Reset(lostAfter)
		defer timer.Stop()
		select {
		case <-s.wake:
			return true
		case <-timer.C:
			return false
		}
	}
	var sent, lost int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for sent-lost-s.got.Load() >= window {
			if !wait() {
				lost = sent - s.got.Load()
			}
		}
		if _, err := w.Write(msg); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	for s.got.Load() < sent-lost {
		if !wait() {
			break
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	got := s.got.Load()
	b.ReportMetric(float64(got)*float64(size)/elapsed.Seconds()/1e6, "delivered-MB/s")
	b.ReportMetric(100*float64(got)/float64(sent), "%delivered")
}

// BenchmarkOneWay1000 sends 1000-byte records from a client to a server
// as fast as the receiver takes them (see window).
func BenchmarkOneWay1000(b *testing.B) {
	const size = 1000
	forImpls(b, kindECDSA, func(b *testing.B, im impl) {
		s := newSink()
		addr := start(b, im, kindECDSA, func(c net.Conn) bool {
			buf := make([]byte, 2048)
			for {
				if _, err := c.Read(buf); err != nil {
					return false
				}
				s.arrived()
			}
		})
		c, err := im.dial(kindECDSA, addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		sendPaced(b, c, s, size)
	})
	b.Run("impl=floor-udp", func(b *testing.B) { benchUDPOneWay(b, size) })
}

// idleConns is how many established connections BenchmarkIdleConn holds.
const idleConns = 1000

// BenchmarkIdleConn measures what an established, idle server connection
// costs: heap and goroutine stacks, and goroutines, per connection. The
// clients are ours for every server, on sockets of their own; they are
// dropped (socket closed, no close_notify) before the server side is
// measured. Run it with -benchtime=1x: the iteration count is ignored.
func BenchmarkIdleConn(b *testing.B) {
	forImpls(b, kindECDSA, func(b *testing.B, im impl) {
		var (
			mu   sync.Mutex
			held []net.Conn
			all  = make(chan struct{})
		)
		addr := start(b, im, kindECDSA, func(c net.Conn) bool {
			mu.Lock()
			held = append(held, c)
			if len(held) == idleConns {
				close(all)
			}
			mu.Unlock()
			return true
		})
		mem0, g0 := memAndGoroutines()
		type client struct {
			raw *net.UDPConn
			c   *dtls.Conn
		}
		clients := make([]client, 0, idleConns)
		cfg := ourClientConfig(kindECDSA)
		for range idleConns {
			raw, err := net.DialUDP("udp", nil, addr)
			if err != nil {
				b.Fatal(err)
			}
			c := dtls.Client(raw, cfg)
			if err := c.Handshake(); err != nil {
				b.Fatal(err)
			}
			clients = append(clients, client{raw, c})
		}
		select {
		case <-all:
		case <-time.After(30 * time.Second):
			b.Fatalf("only %d of %d connections accepted", len(held), idleConns)
		}
		mem1, _ := memAndGoroutines()
		for _, c := range clients {
			c.raw.Close()
		}
		clients = nil
		mem2, g2 := memAndGoroutines()
		b.ReportMetric(float64(mem2-mem0)/idleConns, "server-B/conn")
		b.ReportMetric(float64(g2-g0)/idleConns, "server-goroutines/conn")
		b.ReportMetric(float64(mem1-mem2)/idleConns, "our-client-B/conn")
		runtime.KeepAlive(held)
	})
}

// memAndGoroutines returns the bytes of heap and goroutine stacks in use,
// and the number of goroutines, once the garbage is collected.
func memAndGoroutines() (int64, int) {
	time.Sleep(100 * time.Millisecond) // let exiting goroutines exit
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc + ms.StackInuse), runtime.NumGoroutine()
}

// benchUDPOneWay is the one-way floor: size-byte datagrams over raw UDP,
// paced as the records of BenchmarkOneWay1000 and BenchmarkDTLS13Records1000.
func benchUDPOneWay(b *testing.B, size int) {
	s := newSink()
	addr, stop, err := serveUDP(func([]byte, func([]byte)) { s.arrived() })
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	sendPaced(b, c, s, size)
}
