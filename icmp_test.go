package dtls

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// udpRelay forwards datagrams between one client and a server through a
// socket that can be closed (so that the client's kernel answers its
// datagrams with ICMP port unreachable) and reopened on the same port.
type udpRelay struct {
	t      *testing.T
	addr   *net.UDPAddr
	up     *net.UDPConn // connected to the server; kept across restarts
	mu     sync.Mutex
	down   *net.UDPConn
	client *net.UDPAddr
	wg     sync.WaitGroup
}

func newUDPRelay(t *testing.T, server net.Addr) *udpRelay {
	up, err := net.DialUDP("udp", nil, server.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{t: t, up: up}
	r.start(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	r.wg.Add(1)
	go func() { // server -> client
		defer r.wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, err := up.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			r.mu.Lock()
			down, client := r.down, r.client
			r.mu.Unlock()
			if down != nil && client != nil {
				down.WriteToUDP(buf[:n], client)
			}
		}
	}()
	t.Cleanup(func() {
		r.stop()
		up.Close()
		r.wg.Wait()
	})
	return r
}

func (r *udpRelay) start(at *net.UDPAddr) {
	down, err := net.ListenUDP("udp", at)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.down, r.addr = down, down.LocalAddr().(*net.UDPAddr)
	r.mu.Unlock()
	r.wg.Add(1)
	go func() { // client -> server
		defer r.wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, from, err := down.ReadFromUDP(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			r.mu.Lock()
			r.client = from
			r.mu.Unlock()
			r.up.Write(buf[:n])
		}
	}()
}

func (r *udpRelay) stop() {
	r.mu.Lock()
	down := r.down
	r.down = nil
	r.mu.Unlock()
	if down != nil {
		down.Close()
	}
}

// TestICMPRefusedDoesNotEndConnection: an ICMP port unreachable (which an
// off-path attacker can forge) neither fails a Read or a Write nor ends
// the connection: once the path works again, so does the connection.
func TestICMPRefusedDoesNotEndConnection(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
	l, _ := echoServer(t, sc, nil)
	r := newUDPRelay(t, l.Addr())
	c, err := Dial("udp", r.addr.String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange(t, c, "before")

	r.stop()
	// Each datagram to the closed port draws an ICMP port unreachable,
	// which Linux reports on the socket's next Read or Write.
	for i := 0; i < 3; i++ {
		if _, err := c.Write([]byte("into the void")); err != nil {
			t.Fatalf("Write after ICMP unreachable: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = c.Read(make([]byte, 100))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read with the path down: got %v, want a timeout", err)
	}
	if n, ok := c.io.(*netConnIO); !ok || !n.refused.Load() {
		t.Fatalf("the socket never reported ICMP unreachable: the test did not test it")
	}
	c.SetReadDeadline(time.Time{})

	r.start(r.addr)
	exchange(t, c, "after")
}

// TestICMPRefusedHandshakeHint: a client whose server's port is closed
// does not fail at the first ICMP unreachable but times out, and the
// error says what the socket saw.
func TestICMPRefusedHandshakeHint(t *testing.T) {
	checkNoGoroutineLeak(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	cc := pskConfig()
	cc.HandshakeTimeout = 1500 * time.Millisecond
	_, err = Dial("udp", addr, cc)
	if !errors.Is(err, ErrHandshakeTimeout) {
		t.Fatalf("handshake to a closed port: got %v, want ErrHandshakeTimeout", err)
	}
	if !strings.Contains(err.Error(), "ICMP unreachable") {
		t.Errorf("error does not mention the ICMP unreachable: %v", err)
	}
}
