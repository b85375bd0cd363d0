package interop_test

// Listener.Shutdown as another library sees it: every pion client, the one
// our application accepted and the one still waiting in the Accept
// backlog, gets a close_notify, so that its Read returns io.EOF at once
// instead of waiting for a timeout.

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
)

func TestPionSeesShutdown(t *testing.T) {
	tc := pionCase{name: "PSK-CCM8", suite: dtls.TLS_PSK_WITH_AES_128_CCM_8, psk: true}
	for _, impl := range pionImpls {
		t.Run(impl.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
			defer cancel()
			pc := newPionCell(t, tc, newTestPKI(t), false)
			l := listen(t, serverPSKConfig(pc.psk, tc.suite))

			var clients []net.Conn
			for range 2 {
				conn, _, err := impl.dial(ctx, l.Addr().(*net.UDPAddr), pc)
				if err != nil {
					t.Fatalf("pion client handshake: %v", err)
				}
				defer conn.Close()
				clients = append(clients, conn)
			}
			// One is accepted and served; the other waits in the
			// backlog. Which one Accept returns first is not the dial
			// order: each handshake's goroutine queues its connection
			// after sending the last flight, so the first can queue
			// after the second under load. The client served is the
			// one whose address the accepted connection has.
			served := make(chan error, 1)
			accepted, err := l.AcceptContext(ctx)
			if err != nil {
				t.Fatalf("Accept: %v", err)
			}
			// pion's clients are bound to the wildcard address: the
			// port tells them apart.
			first := -1
			for i, c := range clients {
				if c.LocalAddr().(*net.UDPAddr).Port == accepted.RemoteAddr().(*net.UDPAddr).Port {
					first = i
				}
			}
			if first < 0 {
				t.Fatalf("accepted a connection from %v, neither client's address (%v, %v)", accepted.RemoteAddr(), clients[0].LocalAddr(), clients[1].LocalAddr())
			}
			t.Logf("accepted client %d first", first)
			go func() {
				buf := make([]byte, 1<<14)
				for {
					n, err := accepted.Read(buf)
					if err != nil {
						served <- err
						return
					}
					accepted.Write(buf[:n])
				}
			}()
			if _, err := clients[first].Write([]byte(pionLine)); err != nil {
				t.Fatal(err)
			}
			clients[first].SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := clients[first].Read(make([]byte, 100)); err != nil {
				t.Fatalf("pion client: no echo: %v", err)
			}

			if err := l.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			for i, c := range clients {
				// A deadline well under caseTimeout: a pion client
				// that was told nothing would fail with a timeout here.
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Read(make([]byte, 100)); !errors.Is(err, io.EOF) {
					t.Errorf("pion client %d: Read after our Shutdown: %v, want io.EOF", i, err)
				}
			}
			if err := <-served; !errors.Is(err, dtls.ErrListenerClosed) {
				t.Errorf("our accepted connection: %v, want ErrListenerClosed", err)
			}
		})
	}
}
