package bench

// Concurrent handshakes: N clients, each with its own UDP socket, start
// their handshakes at the same moment against one server over 127.0.0.1,
// and each writes one application datagram as soon as its handshake
// returns. One iteration is one such burst. Reported per burst, over all
// iterations:
//
//	handshakes/s     completed handshakes / wall time from the start of the
//	                 burst to the last handshake's return
//	p50-ms, p99-ms   the clients' handshake times (Dial to handshake done)
//	%first-delivered first application datagrams the server read, of the
//	                 handshakes that completed (the server waits up to
//	                 firstDatagramWait for each)
//	failed/op        handshakes that failed in a burst
//
// Both implementations run at their defaults (dtls-go: RFC timers, 1 s or
// 1.5× the cookie round trip; pion: 1 s), ECDHE-ECDSA, DTLS 1.2, cookies
// on. Run it alone with
//
//	go test -run '^$' -bench Concurrent -benchtime 3x ./bench

import (
	"context"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// firstDatagramWait is how long the server waits for the first
// application datagram of a connection before counting it lost.
const firstDatagramWait = 5 * time.Second

// concurrentTimeout bounds one client's handshake.
const concurrentTimeout = 60 * time.Second

func BenchmarkConcurrent1(b *testing.B)   { benchConcurrent(b, 1) }
func BenchmarkConcurrent16(b *testing.B)  { benchConcurrent(b, 16) }
func BenchmarkConcurrent128(b *testing.B) { benchConcurrent(b, 128) }
func BenchmarkConcurrent512(b *testing.B) { benchConcurrent(b, 512) }

// concurrentImpls are the implementations of the concurrency rows: ours
// and pion v4.
func concurrentImpls() []impl { return impls[:2] }

func benchConcurrent(b *testing.B, n int) {
	setupPKI(b)
	for _, im := range concurrentImpls() {
		b.Run("impl="+im.name, func(b *testing.B) {
			firsts := make(chan bool, 1024)
			addr := start(b, im, kindECDSA, func(c net.Conn) bool {
				buf := make([]byte, 2048)
				c.SetReadDeadline(time.Now().Add(firstDatagramWait))
				_, err := c.Read(buf)
				firsts <- err == nil
				if err != nil {
					return false
				}
				c.SetReadDeadline(time.Time{})
				return readUntilClosed(c)
			})
			var (
				times               []time.Duration
				completed, failed   int
				delivered, expected int
				wall                time.Duration
			)
			for b.Loop() {
				r := burst(b, im, addr, n, firsts)
				times = append(times, r.times...)
				completed += len(r.times)
				failed += r.failed
				delivered += r.delivered
				expected += len(r.times)
				wall += r.wall
			}
			if completed > 0 {
				slices.Sort(times)
				b.ReportMetric(float64(completed)/wall.Seconds(), "handshakes/s")
				b.ReportMetric(float64(times[len(times)/2])/1e6, "p50-ms")
				b.ReportMetric(float64(times[min(len(times)-1, len(times)*99/100)])/1e6, "p99-ms")
				b.ReportMetric(100*float64(delivered)/float64(expected), "%first-delivered")
			}
			b.ReportMetric(float64(failed)/float64(b.N), "failed/op")
		})
	}
}

type burstResult struct {
	times     []time.Duration // of the handshakes that completed
	failed    int
	delivered int // first datagrams the server read
	wall      time.Duration
}

// burst runs n clients at once and waits for the server's verdict on each
// completed handshake's first datagram before the clients close.
func burst(b *testing.B, im impl, addr *net.UDPAddr, n int, firsts <-chan bool) burstResult {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		res     burstResult
		lastEnd atomic.Int64
		conns   []net.Conn
	)
	go1 := make(chan struct{})
	begin := time.Now()
	for range n {
		wg.Go(func() {
			<-go1
			t0 := time.Now()
			c, err := dialWithin(im, addr, concurrentTimeout)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.failed++
				return
			}
			c.Write([]byte("first datagram after the handshake"))
			end := time.Since(begin)
			for {
				old := lastEnd.Load()
				if int64(end) <= old || lastEnd.CompareAndSwap(old, int64(end)) {
					break
				}
			}
			res.times = append(res.times, d)
			conns = append(conns, c)
		})
	}
	close(go1)
	wg.Wait()
	res.wall = time.Duration(lastEnd.Load())
	// The server answers once per connection it accepted; a connection
	// whose server side failed its handshake never answers, so wait no
	// longer than the server would.
	timeout := time.After(firstDatagramWait + time.Second)
collect:
	for range len(res.times) {
		select {
		case ok := <-firsts:
			if ok {
				res.delivered++
			}
		case <-timeout:
			break collect
		}
	}
	for _, c := range conns {
		c.Close()
	}
	// Drain verdicts that came after the timeout, so the next burst
	// starts clean.
	for {
		select {
		case <-firsts:
		default:
			return res
		}
	}
}

// dialWithin dials and handshakes with a deadline.
func dialWithin(im impl, addr *net.UDPAddr, d time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		c, err := im.dial(kindECDSA, addr)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		// The dial goroutine ends when the implementation's own
		// handshake timeout (60 s for both) fires.
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}
