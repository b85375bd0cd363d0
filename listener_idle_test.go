package dtls

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// simListener starts a Listener on n at lossServerAddr that nobody serves:
// the test accepts.
func simListener(t *testing.T, n *netsim.Network, config *Config) *Listener {
	t.Helper()
	pc, err := n.ListenPacket(lossServerAddr)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(pc, config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// readErr runs Read on c in a goroutine and returns where its error
// arrives.
func readErr(c net.Conn) <-chan error {
	ch := make(chan error, 1)
	go func() {
		buf := make([]byte, 100)
		for {
			if _, err := c.Read(buf); err != nil {
				ch <- err
				return
			}
		}
	}()
	return ch
}

// endedErrors are the errors a Listener's connection may end with.
var endedErrors = []error{ErrPeerRestarted, ErrListenerClosed, ErrIdleTimeout, ErrEvicted}

// checkEnded checks that err is want, none of the other ended errors,
// and net.ErrClosed.
func checkEnded(t *testing.T, what string, err, want error) {
	t.Helper()
	for _, e := range endedErrors {
		if errors.Is(err, e) != (e == want) {
			t.Errorf("%s: Read returned %v; errors.Is(%v) = %v", what, err, e, errors.Is(err, e))
		}
	}
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("%s: %v is not net.ErrClosed", what, err)
	}
}

// TestListenerIdleTimeout is issue 10 finding 5: a peer that vanishes
// without a close_notify used to leave its connection, its table entry and
// the application's reader behind for ever. After the default 5 minutes
// without an authenticated record the connection ends and Read returns
// ErrIdleTimeout; a peer that keeps talking stays.
func TestListenerIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: time.Millisecond})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		l := simListener(t, n, sc)
		silent := simDial(t, n, lossClientAddr, cc)
		s1, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		talker := simDial(t, n, netip.MustParseAddrPort("10.0.0.7:7777"), cc)
		s2, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		silentErr, talkerErr := readErr(s1), readErr(s2)
		if _, err := silent.Write([]byte("once")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for time.Since(start) < 2*defaultListenerIdleTimeout {
			time.Sleep(time.Minute)
			if _, err := talker.Write([]byte("still here")); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case err := <-silentErr:
			checkEnded(t, "silent peer", err, ErrIdleTimeout)
		default:
			t.Fatalf("the silent peer's connection is still open after %v", time.Since(start))
		}
		select {
		case err := <-talkerErr:
			t.Fatalf("the talking peer's connection ended: %v", err)
		default:
		}
		if _, err := s1.Write([]byte("x")); !errors.Is(err, ErrIdleTimeout) {
			t.Errorf("Write after the idle timeout: %v", err)
		}
		s := l.Stats()
		if s.IdleTimeouts != 1 || s.Connections != 1 {
			t.Errorf("IdleTimeouts %d, Connections %d; want 1, 1", s.IdleTimeouts, s.Connections)
		}
		s1.Close()
		s2.Close()
	})
}

// TestListenerIdleTimeoutNegative: a negative IdleTimeout keeps a silent
// connection.
func TestListenerIdleTimeoutNegative(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		sc.IdleTimeout = -1
		l := simListener(t, n, sc)
		simDial(t, n, lossClientAddr, cc)
		time.Sleep(time.Hour)
		if s := l.Stats(); s.Connections != 1 || s.IdleTimeouts != 0 {
			t.Errorf("after an hour: %d connections, %d idle timeouts", s.Connections, s.IdleTimeouts)
		}
	})
}

// TestListenerMaxConnections: with MaxConnections established, a new
// handshake evicts the longest-idle connection, whose peer gets a
// close_notify and whose Read returns ErrEvicted.
func TestListenerMaxConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: time.Millisecond})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		sc.MaxConnections = 2
		l := simListener(t, n, sc)
		var clients []*Conn
		var reads []<-chan error
		for i := range 2 {
			clients = append(clients, simDial(t, n, netip.AddrPortFrom(lossClientAddr.Addr(), uint16(100+i)), cc))
			s, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			reads = append(reads, readErr(s))
			time.Sleep(10 * time.Second)
		}
		// The first is the older, but it talks: the second is the
		// longest idle.
		if _, err := clients[0].Write([]byte("awake")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * janitorInterval)
		simDial(t, n, netip.AddrPortFrom(lossClientAddr.Addr(), 102), cc)
		s3, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s3.Close()
		synctest.Wait()
		select {
		case err := <-reads[1]:
			checkEnded(t, "evicted", err, ErrEvicted)
		default:
			t.Fatal("the longest-idle connection was not evicted")
		}
		select {
		case err := <-reads[0]:
			t.Fatalf("the active connection ended: %v", err)
		default:
		}
		clients[1].SetReadDeadline(time.Now().Add(time.Second))
		if _, err := clients[1].Read(make([]byte, 10)); err != io.EOF {
			t.Errorf("evicted peer's Read: %v, want io.EOF (close_notify)", err)
		}
		if s := l.Stats(); s.Evicted != 1 || s.Connections != 2 {
			t.Errorf("Evicted %d, Connections %d; want 1, 2", s.Evicted, s.Connections)
		}
	})
}

// TestListenerClosedError: closing the Listener ends its connections with
// ErrListenerClosed.
func TestListenerClosedError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		l := simListener(t, n, sc)
		simDial(t, n, lossClientAddr, cc)
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		errc := readErr(s)
		l.Close()
		checkEnded(t, "listener closed", <-errc, ErrListenerClosed)
	})
}

// TestDialIdleTimeout: a client Conn with IdleTimeout set ends its Read
// with ErrIdleTimeout when the server stays silent; without it, only the
// read deadline ends a Read.
func TestDialIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{})
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		l := simListener(t, n, sc)
		cc.IdleTimeout = time.Minute
		c := simDial(t, n, lossClientAddr, cc)
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		start := time.Now()
		_, err = c.Read(make([]byte, 10))
		if !errors.Is(err, ErrIdleTimeout) || time.Since(start) != cc.IdleTimeout {
			t.Errorf("Read: %v after %v, want ErrIdleTimeout after %v", err, time.Since(start), cc.IdleTimeout)
		}
		if _, err := c.Read(make([]byte, 10)); !errors.Is(err, ErrIdleTimeout) {
			t.Errorf("second Read: %v", err)
		}

		cc.IdleTimeout = 0
		c2 := simDial(t, n, netip.MustParseAddrPort("10.0.0.2:1"), cc)
		c2.SetReadDeadline(time.Now().Add(time.Hour))
		if _, err := c2.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read without IdleTimeout: %v, want the deadline", err)
		}
	})
}
