//go:build linux

package bench

// Scaling across cores (issue 14): the receive path for established
// connections and the server's CPU time per handshake, at whatever
// GOMAXPROCS -cpu sets (bench.sh: -cpu 1,2). The load comes from a child
// process (this test binary, run again with benchChildEnv set), so that
// the server's process does nothing but serve, and its CPU time
// (getrusage) is the server's alone.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"golang.org/x/net/ipv4"
)

func init() {
	childVerbs["send"] = func(args []string) error {
		if len(args) != 3 {
			return fmt.Errorf("send FILE ADDR ROUND, not %q", args)
		}
		round, err := strconv.Atoi(args[2])
		if err != nil {
			return err
		}
		return childSend(args[0], args[1], round)
	}
	childVerbs["handshake"] = func(args []string) error {
		if len(args) != 4 {
			return fmt.Errorf("handshake N CONC ADDR CAFILE, not %q", args)
		}
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		conc, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		return childHandshakes(n, conc, args[2], args[3])
	}
}

// cpuTime is the CPU time, user and system, this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ---- Receive path ----

// recvPeers is how many established connections the receive benchmark
// spreads its records over, and recvBatch how many records the sender
// hands the kernel per system call (sendmmsg), to keep it light.
const (
	recvPeers = 256
	recvBatch = 32
	// recvPayload is the size of each record's application data, a
	// typical CoAP or telemetry message.
	recvPayload = 100
	// recvQuiet ends a measurement when no record arrived for this long:
	// the sender is done, and what is still missing was dropped.
	recvQuiet = 100 * time.Millisecond
	// recvRound is how many records a round sends per socket: about
	// what a 4 MiB receive buffer (Linux's default net.core.rmem_max,
	// and the Listener's default ReceiveBufferSize) holds of these
	// small datagrams, each accounted with its kernel overhead.
	recvRound = 5000
)

// captureConn is a client's connected socket that, once capturing is
// set, keeps what the client writes instead of sending it: records sealed
// in advance, for a sender in another process.
type captureConn struct {
	*net.UDPConn
	capturing atomic.Bool
	mu        sync.Mutex
	records   [][]byte
}

// Close leaves the socket open while capturing: the benchmark closes it
// once every peer has its own port.
func (c *captureConn) Close() error {
	if c.capturing.Load() {
		return nil
	}
	return c.UDPConn.Close()
}

func (c *captureConn) Write(b []byte) (int, error) {
	if c.capturing.Load() {
		c.mu.Lock()
		c.records = append(c.records, append([]byte(nil), b...))
		c.mu.Unlock()
		return len(b), nil
	}
	return c.UDPConn.Write(b)
}

// BenchmarkReceive measures records per second on the receive path:
// recvPeers established connections, each read by its own goroutine (the
// application's Read), receive b.N records of recvPayload bytes in
// total, sealed in advance and sent from each peer's own address by a
// child process, as fast as it can, recvBatch at a time. It reports the
// records delivered to Read per second (see the rounds below),
// the server's CPU time per record delivered, and the share delivered
// (the rest was dropped by a full socket or queue).
func BenchmarkReceive(b *testing.B) {
	setupPKI(b)
	b.Run("impl=dtls-go", func(b *testing.B) { benchReceive(b, 0) })
	b.Run("impl=dtls-go-1socket", func(b *testing.B) { benchReceive(b, 1) })
}

func benchReceive(b *testing.B, sockets int) {
	cfg := ourServerConfig(kindPSK)
	cfg.ListenerSockets = sockets
	l, err := dtls.Listen("udp", "127.0.0.1:0", cfg)
	if err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	// last is when the latest record reached Read, in unix nanoseconds.
	var last atomic.Int64
	addr, stop, err := acceptLoop(l, nil, func(c net.Conn) bool {
		buf := make([]byte, 2048)
		for {
			if _, err := c.Read(buf); err != nil {
				return false
			}
			got.Add(1)
			last.Store(time.Now().UnixNano())
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer stop()

	// Handshake the peers, then have each seal its share of b.N.
	per := (b.N + recvPeers - 1) / recvPeers
	file, err := os.CreateTemp("", "dtls-recv-*")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(file.Name())
	w := bufio.NewWriter(file)
	msg := make([]byte, recvPayload)
	total := 0
	var held []*net.UDPConn
	closeSockets := func() {
		for _, uc := range held {
			uc.Close()
		}
	}
	defer closeSockets()
	for range recvPeers {
		uc, err := net.DialUDP("udp", nil, addr)
		if err != nil {
			b.Fatal(err)
		}
		cc := &captureConn{UDPConn: uc}
		c := dtls.Client(cc, ourClientConfig(kindPSK))
		if err := c.Handshake(); err != nil {
			b.Fatal(err)
		}
		cc.capturing.Store(true)
		for range per {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
		}
		records := cc.records
		// Its close_notify is captured and never sent; the socket stays
		// open until every peer has one, so that no two share a port.
		c.Close()
		held = append(held, uc)
		binary.Write(w, binary.BigEndian, uint16(uc.LocalAddr().(*net.UDPAddr).Port))
		binary.Write(w, binary.BigEndian, uint32(len(records)))
		for _, r := range records {
			binary.Write(w, binary.BigEndian, uint16(len(r)))
			w.Write(r)
		}
		total += len(records)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	file.Close()
	closeSockets()
	// Let every handshake's last flight settle before the timing starts.
	time.Sleep(50 * time.Millisecond)
	runtime.GC()

	// Rounds: the child stops this process (SIGSTOP), sends a round of
	// records, which wait in the sockets' receive buffers, and lets it
	// go on (SIGCONT); the server then drains them with both cores to
	// itself, and the round is timed from then to its last record read.
	// A sender on the same two cores cannot otherwise outrun the server:
	// on loopback the kernel's receive work runs in the sender's call.
	b.ResetTimer()
	cpu0 := cpuTime()
	child, err := startChild(fmt.Sprintf("send %s %s %d", file.Name(), addr, recvRound*l.Stats().Sockets), 1)
	if err != nil {
		b.Fatal(err)
	}
	var drained time.Duration
	var n int64
	for {
		before := got.Load()
		if _, err := child.stdin.Write([]byte{'r'}); err != nil {
			break
		}
		// The child answers with when it continued this process
		// (unix nanoseconds, the same clock as last).
		var ack [8]byte
		if _, err := io.ReadFull(child.stdout, ack[:]); err != nil {
			break // no records left
		}
		cont := int64(binary.BigEndian.Uint64(ack[:]))
		// This process was stopped and has been continued: the round
		// is in the sockets.
		for n := before; ; {
			time.Sleep(recvQuiet)
			if m := got.Load(); m == n {
				break
			} else {
				n = m
			}
		}
		if got.Load() > before {
			// From the moment the round could be read: the Listener's
			// readers may take much of it before the first Read.
			drained += time.Duration(last.Load() - cont)
		}
		n = got.Load()
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if err := child.Wait(); err != nil {
		b.Fatal(err)
	}
	if n == 0 {
		b.Fatal("no record delivered")
	}
	b.ReportMetric(float64(n)/drained.Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "server-CPU-ns/record")
	b.ReportMetric(100*float64(n)/float64(total), "%delivered")
	b.ReportMetric(float64(l.Stats().Sockets), "sockets")
	// The cores the server had while draining: below GOMAXPROCS when
	// other work on the machine took them (the CPU time outside the
	// drains, while waiting for the sender, is nearly nothing).
	b.ReportMetric(cpu.Seconds()/drained.Seconds(), "server-cores")
}

// childSend sends the records in file to addr, each from its peer's port,
// round-robin over the peers, recvBatch records of a peer per sendmmsg.
func childSend(file, addr string, round int) error {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	type peer struct {
		pc      *ipv4.PacketConn
		records [][]byte
	}
	var peers []*peer
	for {
		var port uint16
		var count uint32
		if err := binary.Read(r, binary.BigEndian, &port); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
		if err := binary.Read(r, binary.BigEndian, &count); err != nil {
			return err
		}
		p := &peer{}
		for range count {
			var n uint16
			if err := binary.Read(r, binary.BigEndian, &n); err != nil {
				return err
			}
			rec := make([]byte, n)
			if _, err := io.ReadFull(r, rec); err != nil {
				return err
			}
			p.records = append(p.records, rec)
		}
		uc, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)}, raddr)
		if err != nil {
			return err
		}
		defer uc.Close()
		p.pc = ipv4.NewPacketConn(uc)
		peers = append(peers, p)
	}
	msgs := make([]ipv4.Message, recvBatch)
	parent := os.Getppid()
	// Whatever happens here, the server is not left stopped.
	defer syscall.Kill(parent, syscall.SIGCONT)
	in := bufio.NewReader(os.Stdin)
	for left := true; left; {
		if _, err := in.ReadByte(); err != nil {
			return nil
		}
		syscall.Kill(parent, syscall.SIGSTOP)
		// Round-robin over the peers, up to round records in all.
		left = false
		for sent := 0; sent < round; {
			progress := false
			for _, p := range peers {
				k := min(recvBatch, len(p.records), round-sent)
				if k == 0 {
					continue
				}
				for i := range k {
					msgs[i].Buffers = [][]byte{p.records[i]}
				}
				m, err := p.pc.WriteBatch(msgs[:k], 0)
				if err != nil {
					m = max(m, 1) // skip what could not be sent
				}
				p.records = p.records[m:]
				sent += m
				progress = true
			}
			if !progress {
				break
			}
		}
		for _, p := range peers {
			left = left || len(p.records) > 0
		}
		cont := time.Now().UnixNano()
		syscall.Kill(parent, syscall.SIGCONT)
		os.Stdout.Write(binary.BigEndian.AppendUint64(nil, uint64(cont)))
	}
	return nil
}

// ---- Server CPU time per handshake ----

// handshakeBatch is how many full handshakes one iteration of
// BenchmarkHandshakeCPU runs, from a child process, hsConcurrency at a
// time.
const (
	handshakeBatch = 200
	hsConcurrency  = 16
)

// BenchmarkHandshakeCPU measures the server's CPU time per full
// ECDHE-ECDSA handshake (cookie exchange included), with the clients
// (ours) in a child process limited to one core: "server-CPU-µs/hs". An
// iteration is handshakeBatch handshakes.
func BenchmarkHandshakeCPU(b *testing.B) {
	setupPKI(b)
	for _, im := range impls[:2] {
		b.Run("impl="+im.name, func(b *testing.B) {
			var done atomic.Int64
			caFile := writeCAFile(b)
			addr := start(b, im, kindECDSA, func(c net.Conn) bool {
				done.Add(1)
				return readUntilClosed(c)
			})
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				child, err := startChild(fmt.Sprintf("handshake %d %d %s %s", handshakeBatch, hsConcurrency, addr, caFile), 1)
				if err != nil {
					b.Fatal(err)
				}
				if err := child.Wait(); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime() - cpu0
			b.StopTimer()
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*handshakeBatch), "server-CPU-µs/hs")
			b.ReportMetric(float64(done.Load())/float64(b.N*handshakeBatch)*100, "%completed")
		})
	}
}

// childHandshakes runs n full handshakes against addr, conc at a time,
// each on a fresh socket, closed with a close_notify.
func childHandshakes(n, conc int, addr, caFile string) error {
	if err := loadRoots(caFile); err != nil {
		return err
	}
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				c, err := dialOurs(kindECDSA, raddr)
				if err != nil {
					failed.Add(1)
					continue
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d handshakes failed", f, n)
	}
	return nil
}
