package dtls

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestListenerClientRestartsOnSamePort is RFC 6347 §4.2.8: a client that
// loses its state (a device reboots) and comes back from the same address
// and port with a new handshake gets a new association; the old one ends.
// Without this the Listener would route the new ClientHello to the dead
// association, which refuses it as a renegotiation, and the device could
// not reconnect until the server's application closed the old connection.
// Written for 1.2 (the refusal is 1.2's no_renegotiation), run in both.
func TestListenerClientRestartsOnSamePort(t *testing.T) {
	checkNoGoroutineLeak(t)
	inBothVersions(t, testListenerClientRestartsOnSamePort)
}

func testListenerClientRestartsOnSamePort(t *testing.T, vers uint16) {
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
	cc.MaxVersion = vers
	l, err := Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c.(*Conn)
		}
	}()
	serverAddr := l.Addr().(*net.UDPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	raw1, err := net.DialUDP("udp", nil, serverAddr)
	if err != nil {
		t.Fatal(err)
	}
	local := raw1.LocalAddr().(*net.UDPAddr)
	c1 := Client(raw1, cc)
	if err := c1.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	s1 := <-accepted
	defer s1.Close()
	// The client "reboots": its socket goes away without a close_notify.
	raw1.Close()

	raw2, err := net.DialUDP("udp", local, serverAddr)
	if err != nil {
		t.Fatal(err)
	}
	c2 := Client(raw2, cc)
	defer c2.Close()
	if err := c2.HandshakeContext(ctx); err != nil {
		t.Fatalf("a new handshake from the same port: %v", err)
	}
	var s2 *Conn
	select {
	case s2 = <-accepted:
	case <-ctx.Done():
		t.Fatal("the new association was not accepted")
	}
	defer s2.Close()

	// The old association has ended: its Read returns at once.
	s1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s1.Read(make([]byte, 10)); !errors.Is(err, ErrPeerRestarted) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("old association's Read: %v, want ErrPeerRestarted", err)
	}
	// The new one carries data.
	if _, err := c2.Write([]byte("after the restart")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	s2.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := s2.Read(buf)
	if err != nil || string(buf[:n]) != "after the restart" {
		t.Fatalf("new association: %q, %v", buf[:n], err)
	}
}
