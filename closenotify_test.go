package dtls

import (
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// TestCloseNotifyOvertakesFinished: a server that closes right after its
// handshake sends its close_notify just behind its last flight; when the
// network reorders them the client reads the protected close_notify
// before the Finished. The handshake must still complete, and Read then
// return io.EOF: the alert is the peer's (it authenticated under the new
// keys, which the peer uses only after its Finished), so it is held until
// the Finished arrives instead of failing a handshake about to succeed.
func TestCloseNotifyOvertakesFinished(t *testing.T) {
	overtaken := 0
	for seed := uint64(1); seed <= 24; seed++ {
		synctest.Test(t, func(t *testing.T) {
			n := netsim.New(seed, netsim.Link{Delay: 10 * time.Millisecond})
			n.SetLink(lossServerAddr, lossClientAddr, netsim.Link{Delay: 10 * time.Millisecond, Reorder: 0.5})
			cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
			// The server's Finished ends a 1.2 handshake; a 1.3 one
			// ends with the client's, and the server's close_notify
			// comes only after it arrived.
			cc.MaxVersion = VersionDTLS12
			var mu sync.Mutex
			var alertFirst, done bool
			cc.Tracer = func(e *TraceEvent) {
				mu.Lock()
				defer mu.Unlock()
				switch e.Kind {
				case TraceAlertReceived:
					if !done {
						alertFirst = true
					}
				case TraceHandshakeDone:
					done = true
				}
			}
			l := simListener(t, n, sc)
			go func() {
				if c, err := l.Accept(); err == nil {
					c.Close() // close_notify right behind the last flight
				}
			}()
			nc, err := n.Dial(lossClientAddr, lossServerAddr)
			if err != nil {
				t.Fatal(err)
			}
			c := Client(nc, cc)
			defer c.Close()
			if err := c.Handshake(); err != nil {
				t.Fatalf("seed %d: handshake: %v", seed, err)
			}
			if _, err := c.Read(make([]byte, 10)); err != io.EOF {
				t.Errorf("seed %d: Read: %v, want io.EOF", seed, err)
			}
			mu.Lock()
			if alertFirst {
				overtaken++
			}
			mu.Unlock()
		})
	}
	// The seeds are fixed, so this is deterministic: it checks that the
	// case the test is about happened at all.
	if overtaken == 0 {
		t.Error("no seed had the close_notify overtake the Finished; change the seeds")
	}
	t.Logf("%d of 24 seeds reordered the close_notify ahead of the Finished", overtaken)
}

// TestCloseNotifyOvertakesFinished13 is the DTLS 1.3 counterpart: the
// client's Finished ends a 1.3 handshake, so the client closing right
// after its handshake sends its close_notify (epoch 3) just behind its
// Finished (epoch 2), and reordering delivers it first. The server's
// handshake must still complete and its Read return io.EOF.
func TestCloseNotifyOvertakesFinished13(t *testing.T) {
	overtaken := 0
	for seed := uint64(1); seed <= 24; seed++ {
		synctest.Test(t, func(t *testing.T) {
			n := netsim.New(seed, netsim.Link{Delay: 10 * time.Millisecond})
			n.SetLink(lossClientAddr, lossServerAddr, netsim.Link{Delay: 10 * time.Millisecond, Reorder: 0.5})
			cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
			var mu sync.Mutex
			var alertFirst, done bool
			sc.Tracer = func(e *TraceEvent) {
				mu.Lock()
				defer mu.Unlock()
				switch e.Kind {
				case TraceAlertReceived:
					if !done {
						alertFirst = true
					}
				case TraceHandshakeDone:
					done = true
				}
			}
			l := simListener(t, n, sc)
			served := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					served <- err
					return
				}
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Read(make([]byte, 10))
				served <- err
			}()
			nc, err := n.Dial(lossClientAddr, lossServerAddr)
			if err != nil {
				t.Fatal(err)
			}
			c := Client(nc, cc)
			if err := c.Handshake(); err != nil {
				t.Fatalf("seed %d: handshake: %v", seed, err)
			}
			if v := c.ConnectionState().Version; v != VersionDTLS13 {
				t.Fatalf("version %#x, want 1.3", v)
			}
			c.Close() // close_notify right behind the Finished
			if err := <-served; err != io.EOF {
				t.Errorf("seed %d: server Read: %v, want io.EOF", seed, err)
			}
			mu.Lock()
			if alertFirst {
				overtaken++
			}
			mu.Unlock()
		})
	}
	if overtaken == 0 {
		t.Error("no seed had the close_notify overtake the Finished; change the seeds")
	}
	t.Logf("%d of 24 seeds reordered the close_notify ahead of the Finished", overtaken)
}
