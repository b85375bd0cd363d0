package netsim

import (
	"errors"
	"math"
	"net"
	"net/netip"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

var (
	addrA = netip.MustParseAddrPort("10.0.0.1:1000")
	addrB = netip.MustParseAddrPort("10.0.0.2:2000")
	addrC = netip.MustParseAddrPort("10.0.0.3:3000")
)

func listenPair(t *testing.T, n *Network) (a, b *PacketConn) {
	t.Helper()
	a, err := n.ListenPacket(addrA)
	if err != nil {
		t.Fatal(err)
	}
	b, err = n.ListenPacket(addrB)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestDeliveryAndDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := New(1, Link{Delay: 30 * time.Millisecond})
		a, b := listenPair(t, n)
		defer a.Close()
		defer b.Close()
		start := time.Now()
		if _, err := a.WriteTo([]byte("hello"), net.UDPAddrFromAddrPort(addrB)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		k, from, err := b.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:k]) != "hello" || from.(*net.UDPAddr).AddrPort() != addrA {
			t.Fatalf("got %q from %v", buf[:k], from)
		}
		if d := time.Since(start); d != 30*time.Millisecond {
			t.Fatalf("delivered after %v, want exactly the 30ms delay", d)
		}
	})
}

func TestReadDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := New(1, Link{})
		a, _ := listenPair(t, n)
		defer a.Close()
		start := time.Now()
		a.SetReadDeadline(start.Add(time.Second))
		_, _, err := a.ReadFrom(make([]byte, 10))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past the deadline: %v", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("timed out after %v", d)
		}
		// A deadline moved while a read is blocked takes effect at once.
		a.SetReadDeadline(time.Time{})
		done := make(chan error)
		go func() {
			_, _, err := a.ReadFrom(make([]byte, 10))
			done <- err
		}()
		synctest.Wait()
		a.SetReadDeadline(time.Now())
		if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read after the deadline moved to now: %v", err)
		}
	})
}

func TestCloseUnblocksRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := New(1, Link{})
		a, _ := listenPair(t, n)
		done := make(chan error)
		go func() {
			_, _, err := a.ReadFrom(make([]byte, 10))
			done <- err
		}()
		synctest.Wait()
		a.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed conn: %v", err)
		}
		if _, err := a.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(addrB)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write on a closed conn: %v", err)
		}
		// The address can be bound again.
		c, err := n.ListenPacket(addrA)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
}

func TestMTUClamp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := New(1, Link{MTU: 200})
		a, b := listenPair(t, n)
		defer a.Close()
		defer b.Close()
		to := net.UDPAddrFromAddrPort(addrB)
		a.WriteTo(make([]byte, 201), to)
		a.WriteTo(make([]byte, 200), to)
		buf := make([]byte, 1000)
		k, _, err := b.ReadFrom(buf)
		if err != nil || k != 200 {
			t.Fatalf("got %d bytes, %v; want the 200-byte datagram only", k, err)
		}
		if s := n.Stats(); s.TooBig != 1 || s.Delivered != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

// TestRates sends many datagrams and checks that loss, duplication and
// reordering happen at about the configured rates.
func TestRates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count = 20000
		n := New(7, Link{Loss: 0.3, Dup: 0.1, Reorder: 0.2, Delay: 10 * time.Millisecond})
		a, b := listenPair(t, n)
		defer a.Close()
		defer b.Close()
		to := net.UDPAddrFromAddrPort(addrB)
		got := make(chan []int)
		go func() {
			var seqs []int
			buf := make([]byte, 10)
			for {
				b.SetReadDeadline(time.Now().Add(time.Second))
				k, _, err := b.ReadFrom(buf)
				if err != nil {
					got <- seqs
					return
				}
				seqs = append(seqs, int(buf[0])<<8|int(buf[1]))
				_ = k
			}
		}()
		for i := range count {
			a.WriteTo([]byte{byte(i >> 8), byte(i)}, to)
			if i%100 == 99 {
				time.Sleep(time.Millisecond) // spread the sends so delays interleave
			}
		}
		seqs := <-got
		s := n.Stats()
		near := func(name string, got int, want float64) {
			if math.Abs(float64(got)-want) > 0.05*count {
				t.Errorf("%s: %d, want about %.0f", name, got, want)
			}
		}
		near("lost", s.Lost, 0.3*count)
		near("duplicated", s.Duplicated, 0.1*0.7*count)
		near("reordered", s.Reordered, 0.2*0.77*count)
		if len(seqs) != s.Delivered || s.Delivered != count-s.Lost+s.Duplicated {
			t.Errorf("received %d, stats %+v", len(seqs), s)
		}
		inversions := 0
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				inversions++
			}
		}
		if inversions == 0 {
			t.Error("no datagram arrived out of order")
		}
	})
}

// TestSeedRepeatable checks that a seed fixes which datagrams are lost.
func TestSeedRepeatable(t *testing.T) {
	run := func(seed uint64) []bool {
		var out []bool
		synctest.Test(t, func(t *testing.T) {
			n := New(seed, Link{Loss: 0.5})
			a, b := listenPair(t, n)
			defer a.Close()
			defer b.Close()
			to := net.UDPAddrFromAddrPort(addrB)
			buf := make([]byte, 10)
			for i := range 200 {
				a.WriteTo([]byte{byte(i)}, to)
				b.SetReadDeadline(time.Now().Add(time.Millisecond))
				_, _, err := b.ReadFrom(buf)
				out = append(out, err == nil)
			}
		})
		return out
	}
	x, y, z := run(1), run(1), run(2)
	same := func(p, q []bool) bool {
		for i := range p {
			if p[i] != q[i] {
				return false
			}
		}
		return true
	}
	if !same(x, y) {
		t.Error("the same seed lost different datagrams")
	}
	if same(x, z) {
		t.Error("different seeds lost the same datagrams")
	}
}

func TestConnFiltersByPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := New(1, Link{})
		srv, err := n.ListenPacket(addrB)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		c, err := n.Dial(addrA, addrB)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.RemoteAddr().(*net.UDPAddr).AddrPort() != addrB || c.LocalAddr().(*net.UDPAddr).AddrPort() != addrA {
			t.Fatalf("addresses %v %v", c.LocalAddr(), c.RemoteAddr())
		}
		n.Inject(addrC, addrA, []byte("spoof"))
		srv.WriteTo([]byte("real"), net.UDPAddrFromAddrPort(addrA))
		buf := make([]byte, 10)
		k, err := c.Read(buf)
		if err != nil || string(buf[:k]) != "real" {
			t.Fatalf("read %q, %v", buf[:k], err)
		}
		c.Write([]byte("back"))
		k, from, err := srv.ReadFrom(buf)
		if err != nil || string(buf[:k]) != "back" || from.(*net.UDPAddr).AddrPort() != addrA {
			t.Fatalf("server read %q from %v, %v", buf[:k], from, err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v", err)
		}
	})
}

func TestBlackHoleCounted(t *testing.T) {
	n := New(1, Link{})
	a, err := n.ListenPacket(addrA)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for range 3 {
		a.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(addrC))
	}
	if s := n.StatsTo(addrC); s.Sent != 3 || s.NoListener != 3 {
		t.Fatalf("stats to a black hole: %+v", s)
	}
	if _, err := n.ListenPacket(addrA); err == nil {
		t.Fatal("bound the same address twice")
	}
}

func TestQueueFull(t *testing.T) {
	n := New(1, Link{})
	a, b := listenPair(t, n)
	defer a.Close()
	defer b.Close()
	for range QueueLen + 5 {
		a.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(addrB))
	}
	if s := n.Stats(); s.QueueFull != 5 || s.Delivered != QueueLen {
		t.Fatalf("stats %+v", s)
	}
}
