package bench

// Concurrent handshakes: N clients, each with its own UDP socket, start
// their handshakes at the same moment against one server over 127.0.0.1,
// and each writes one application datagram as soon as its handshake
// returns. The clients run in a child process (this test binary again,
// see child_test.go), at the Go default GOMAXPROCS, and report their
// timings to the server's process over a pipe; the server's process does
// nothing but serve. Each implementation's server gets its own clients
// (dtls-go's ours, pion's pion's), with the same chain (impl_test.go),
// each client from a loopback address of its own (clientSource).
// One iteration is one such burst. Reported, over all iterations:
//
//	handshakes/s     completed handshakes / wall time from the start of the
//	                 burst to the last handshake's return, summed over the
//	                 bursts (the child's clock)
//	p50-ms, p99-ms   the clients' handshake times (Dial to handshake done)
//	%first-delivered first application datagrams the server read, of the
//	                 handshakes that completed (the server waits up to
//	                 firstDatagramWait for each)
//	failed/op        handshakes that failed in a burst
//	server-dropped/op, server-failed/op, server-backlog-full/op
//	                 (ours only) datagrams our Listener dropped before a
//	                 connection took them, handshakes it saw fail, and
//	                 connections it closed after their handshake because
//	                 the Accept backlog stayed full, per burst
//	                 (ListenerStats); the drops are also logged by reason
//
// Both implementations run at their defaults (dtls-go: RFC timers, 1 s or
// 1.5× the cookie round trip; pion: 1 s), ECDHE-ECDSA, DTLS 1.2, cookies
// on. Run it alone with
//
//	go test -run '^$' -bench Concurrent -benchtime 3x ./bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	pion4 "github.com/pion/dtls/v4"
)

// firstDatagramWait is how long the server waits for the first
// application datagram of a connection before counting it lost.
const firstDatagramWait = 5 * time.Second

// concurrentTimeout bounds one client's handshake.
const concurrentTimeout = 60 * time.Second

// burstReply starts the child's line with a burst's results; pion may
// log other lines to standard output.
const burstReply = "burst:"

func BenchmarkConcurrent1(b *testing.B)   { benchConcurrent(b, 1) }
func BenchmarkConcurrent16(b *testing.B)  { benchConcurrent(b, 16) }
func BenchmarkConcurrent128(b *testing.B) { benchConcurrent(b, 128) }
func BenchmarkConcurrent512(b *testing.B) { benchConcurrent(b, 512) }

// concurrentImpls are the implementations of the concurrency rows: ours
// and pion v4.
func concurrentImpls() []impl { return impls[:2] }

func implByName(name string) (impl, bool) {
	for _, im := range impls {
		if im.name == name {
			return im, true
		}
	}
	return impl{}, false
}

func init() { childVerbs["burst"] = childBurst }

func benchConcurrent(b *testing.B, n int) {
	caFile := writeCAFile(b)
	for _, im := range concurrentImpls() {
		b.Run("impl="+im.name, func(b *testing.B) {
			firsts := make(chan bool, 1024)
			handle := func(c net.Conn) bool {
				buf := make([]byte, 2048)
				c.SetReadDeadline(time.Now().Add(firstDatagramWait))
				_, err := c.Read(buf)
				firsts <- err == nil
				if err != nil {
					return false
				}
				c.SetReadDeadline(time.Time{})
				return readUntilClosed(c)
			}
			// Ours is started here rather than through im.serve, to
			// read its Listener's counts of what it dropped: where the
			// retransmissions in the tail come from.
			var (
				addr *net.UDPAddr
				l    *dtls.Listener
			)
			if im.name == "dtls-go" {
				var err error
				if l, err = dtls.Listen("udp", "127.0.0.1:0", ourServerConfig(kindECDSA)); err != nil {
					b.Fatal(err)
				}
				var stop func()
				if addr, stop, err = acceptLoop(l, nil, handle); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(stop)
			} else {
				addr = start(b, im, kindECDSA, handle)
			}
			ch, err := startChild(fmt.Sprintf("burst %s %s %s", im.name, addr, caFile), 0)
			if err != nil {
				b.Fatal(err)
			}
			clients := &burstClients{child: ch, out: bufio.NewReader(ch.stdout)}
			// One handshake first, not counted: both processes' first
			// handshake pays for one-time setup (crypto tables, pools).
			if _, err := clients.burst(1, firsts); err != nil {
				ch.Process.Kill()
				ch.Wait()
				b.Fatal(err)
			}
			var (
				times               []time.Duration
				completed, failed   int
				delivered, expected int
				wall                time.Duration
			)
			for b.Loop() {
				r, err := clients.burst(n, firsts)
				if err != nil {
					ch.Process.Kill()
					ch.Wait()
					b.Fatal(err)
				}
				times = append(times, r.times...)
				completed += len(r.times)
				failed += r.failed
				delivered += r.delivered
				expected += len(r.times)
				wall += r.wall
			}
			if err := ch.Wait(); err != nil {
				b.Fatal(err)
			}
			if completed > 0 {
				slices.Sort(times)
				b.ReportMetric(float64(completed)/wall.Seconds(), "handshakes/s")
				b.ReportMetric(float64(times[len(times)/2])/1e6, "p50-ms")
				b.ReportMetric(float64(times[min(len(times)-1, len(times)*99/100)])/1e6, "p99-ms")
				b.ReportMetric(100*float64(delivered)/float64(expected), "%first-delivered")
			}
			b.ReportMetric(float64(failed)/float64(b.N), "failed/op")
			if l != nil {
				st := l.Stats()
				var dropped uint64
				for _, n := range st.Dropped {
					dropped += n
				}
				b.ReportMetric(float64(dropped)/float64(b.N), "server-dropped/op")
				b.ReportMetric(float64(st.HandshakesFailed)/float64(b.N), "server-failed/op")
				b.ReportMetric(float64(st.BacklogFull)/float64(b.N), "server-backlog-full/op")
				if dropped > 0 {
					// By reason, the whole run's: which limit or which
					// lost state they come from.
					b.Logf("server dropped, by reason: %v", st.Dropped)
				}
			}
		})
	}
}

type burstResult struct {
	times     []time.Duration // of the handshakes that completed
	failed    int
	delivered int // first datagrams the server read
	wall      time.Duration
}

// burstClients is the server's side of the child running the clients.
type burstClients struct {
	child *child
	out   *bufio.Reader
}

// reply reads the child's next line that starts with prefix.
func (bc *burstClients) reply(prefix string) (string, error) {
	for {
		line, err := bc.out.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("clients' process: %w", err)
		}
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.TrimSpace(rest), nil
		}
	}
}

// burst has the child run n clients at once, waits for the server's
// verdict on each completed handshake's first datagram, and then has the
// child close its connections (with a close_notify each).
func (bc *burstClients) burst(n int, firsts <-chan bool) (burstResult, error) {
	var res burstResult
	if _, err := fmt.Fprintf(bc.child.stdin, "go %d\n", n); err != nil {
		return res, err
	}
	line, err := bc.reply(burstReply)
	if err != nil {
		return res, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return res, fmt.Errorf("clients' process answered %q", line)
	}
	nums := make([]int64, len(f))
	for i, w := range f {
		if nums[i], err = strconv.ParseInt(w, 10, 64); err != nil {
			return res, fmt.Errorf("clients' process answered %q", line)
		}
	}
	res.failed, res.wall = int(nums[0]), time.Duration(nums[1])
	for _, d := range nums[2:] {
		res.times = append(res.times, time.Duration(d))
	}
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
	if _, err := io.WriteString(bc.child.stdin, "close\n"); err != nil {
		return res, err
	}
	if _, err := bc.reply("closed"); err != nil {
		return res, err
	}
	// Drain verdicts that came after the timeout, so the next burst
	// starts clean.
	for {
		select {
		case <-firsts:
		default:
			return res, nil
		}
	}
}

// childBurst is the clients' process: "burst IMPL ADDR CAFILE". On each
// "go N" line it runs N clients of IMPL at once against ADDR, trusting the
// root CA in CAFILE, and answers with a line: burstReply, the number of
// failed handshakes, the burst's wall time and each completed handshake's
// time, in nanoseconds. On "close" it closes the burst's connections and
// answers "closed".
func childBurst(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("burst IMPL ADDR CAFILE, not %q", args)
	}
	im, ok := implByName(args[0])
	if !ok {
		return fmt.Errorf("no implementation %q", args[0])
	}
	addr, err := net.ResolveUDPAddr("udp", args[1])
	if err != nil {
		return err
	}
	if err := loadRoots(args[2]); err != nil {
		return err
	}
	var conns []net.Conn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	defer closeAll()
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "go":
			n, err := strconv.Atoi(arg)
			if err != nil {
				return fmt.Errorf("bad command %q", in.Text())
			}
			closeAll()
			var r burstResult
			r, conns = clientBurst(im, addr, n)
			fmt.Fprintf(out, "%s %d %d", burstReply, r.failed, r.wall.Nanoseconds())
			for _, d := range r.times {
				fmt.Fprintf(out, " %d", d.Nanoseconds())
			}
			fmt.Fprintln(out)
		case "close":
			closeAll()
			fmt.Fprintln(out, "closed")
		default:
			return fmt.Errorf("unknown command %q", in.Text())
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
	return in.Err()
}

// clientBurst runs n clients at once; each writes its first datagram as
// soon as its handshake returns. It returns the open connections.
func clientBurst(im impl, addr *net.UDPAddr, n int) (burstResult, []net.Conn) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		res     burstResult
		lastEnd atomic.Int64
		conns   []net.Conn
	)
	go1 := make(chan struct{})
	begin := time.Now()
	for i := range n {
		wg.Go(func() {
			<-go1
			t0 := time.Now()
			c, err := dialWithin(im, clientSource(i), addr, concurrentTimeout)
			d := time.Since(t0)
			if err != nil {
				mu.Lock()
				res.failed++
				mu.Unlock()
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
			mu.Lock()
			res.times = append(res.times, d)
			conns = append(conns, c)
			mu.Unlock()
		})
	}
	close(go1)
	wg.Wait()
	res.wall = time.Duration(lastEnd.Load())
	return res, conns
}

// clientSource is the local address of the i-th client of a burst: each
// its own, in 127.1.0.0/16 (Linux delivers all of 127.0.0.0/8 on
// loopback), as the devices of a fleet would each have their own. From
// one address our Listener runs at most MaxHandshakesPerSource (64 by
// default) handshakes at once and drops the other ClientHellos, which
// would make the rows measure that limit and the clients' retransmission
// timers.
func clientSource(i int) *net.UDPAddr {
	return &net.UDPAddr{IP: net.IPv4(127, 1, byte(1+i/250), byte(1+i%250))}
}

// dialFrom is im.dial from the local address laddr.
func dialFrom(im impl, laddr, raddr *net.UDPAddr) (net.Conn, error) {
	switch im.name {
	case "dtls-go":
		raw, err := net.DialUDP("udp", laddr, raddr)
		if err != nil {
			return nil, err
		}
		c := dtls.Client(raw, ourClientConfig(kindECDSA))
		if err := c.Handshake(); err != nil {
			raw.Close()
			return nil, err
		}
		return c, nil
	case "pion-v4":
		raw, err := net.ListenUDP("udp", laddr) // as pion4.Dial does
		if err != nil {
			return nil, err
		}
		c, err := pion4.Client(raw, raddr, pion4ClientOptions(kindECDSA)...)
		if err != nil {
			raw.Close()
			return nil, err
		}
		if err := c.HandshakeContext(context.Background()); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("no dialFrom for %s", im.name)
}

// dialWithin dials from laddr and handshakes with a deadline.
func dialWithin(im impl, laddr, addr *net.UDPAddr, d time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		c, err := dialFrom(im, laddr, addr)
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
