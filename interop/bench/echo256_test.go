package bench

// Many peers echoing at once: echoPeers clients, each with its own UDP
// socket and goroutine, hold one established connection each to one
// server and echo 100-byte records through it, all at the same time.

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// echoPeers is how many peers echo at once.
	echoPeers = 256
	// echoSize is the size of each record's application data.
	echoSize = 100
	// echoWait bounds one sub-benchmark's wait for an echo: a record
	// lost on the way stops its peer, which then counts as lost.
	echoWait = time.Minute
)

// BenchmarkEcho256 has echoPeers clients echo echoSize-byte records
// through one server at once, one record in flight per peer: each client
// writes, the server's handler for its connection reads it and writes it
// back, the client reads it, and writes the next. An op is one round trip
// of one peer, so ns/op is the wall time over all round trips, and
// round-trips/s its inverse. The clients are the server's own
// implementation's, in the same process; the handshakes are done before
// the timer starts. The floor is the same with raw UDP: one unconnected
// server socket read by GOMAXPROCS goroutines at once, each writing back
// what it read, one datagram per system call (our Listener reads several
// per recvmmsg and has GOMAXPROCS sockets, so it may beat this floor).
func BenchmarkEcho256(b *testing.B) {
	setupPKI(b)
	// The server and the peers last over the rounds of each
	// sub-benchmark (its function runs once per b.N tried).
	for _, im := range impls[:2] {
		var peers []net.Conn
		stop := func() {}
		b.Run("impl="+im.name, func(b *testing.B) {
			if peers == nil {
				addr, stopServer, err := im.serve(kindECDSA, echoHandler)
				if err != nil {
					b.Fatal(err)
				}
				stop = stopServer
				for range echoPeers {
					c, err := im.dial(kindECDSA, addr)
					if err != nil {
						b.Fatal(err)
					}
					peers = append(peers, c)
				}
			}
			runEcho(b, peers)
		})
		for _, c := range peers {
			c.Close()
		}
		stop()
	}
	var peers []net.Conn
	stop := func() {}
	b.Run("impl=floor-udp", func(b *testing.B) {
		if peers == nil {
			addr, stopServer, err := serveUDPReaders(runtime.GOMAXPROCS(0), func(d []byte, reply func([]byte)) { reply(d) })
			if err != nil {
				b.Fatal(err)
			}
			stop = stopServer
			for range echoPeers {
				c, err := net.DialUDP("udp", nil, addr)
				if err != nil {
					b.Fatal(err)
				}
				peers = append(peers, c)
			}
		}
		runEcho(b, peers)
	})
	for _, c := range peers {
		c.Close()
	}
	stop()
}

// echoHandler is a server's side of a connection in the echo benchmarks.
func echoHandler(c net.Conn) bool {
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
}

// runEcho has every peer echo, b.N round trips in all, taken one at a
// time from a shared count, so that a peer served sooner does more.
func runEcho(b *testing.B, peers []net.Conn) {
	var (
		next, lost atomic.Int64
		wg         sync.WaitGroup
	)
	for _, c := range peers {
		c.SetReadDeadline(time.Now().Add(echoWait))
	}
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	for _, c := range peers {
		wg.Go(func() {
			msg, buf := make([]byte, echoSize), make([]byte, 2048)
			for next.Add(1) <= int64(b.N) {
				if _, err := c.Write(msg); err != nil {
					lost.Add(1)
					return
				}
				if _, err := c.Read(buf); err != nil {
					lost.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	b.StopTimer()
	if l := lost.Load(); l > 0 {
		b.Fatalf("%d of %d peers lost a record", l, len(peers))
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "round-trips/s")
}
