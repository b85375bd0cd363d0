package dtls_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/dtls-go/dtls"
)

// A server logs every handshake, completed or failed, with a typed cause,
// through Config.HandshakeOutcome, without a Tracer that sees every packet.
func ExampleHandshakeOutcome() {
	keys := map[string][]byte{"device-42": []byte("sixteen byte key")}
	outcomes := make(chan dtls.HandshakeOutcome, 2)
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
		PSK: func(identity []byte) ([]byte, error) {
			if k, ok := keys[string(identity)]; ok {
				return k, nil
			}
			return nil, errors.New("no such device")
		},
		HandshakeOutcome: func(o dtls.HandshakeOutcome) {
			outcomes <- o // a real server would log o.RemoteAddr, o.Duration...
		},
		// An unknown identity is not told to the client (RFC 4279 §2):
		// its handshake fails as with a wrong key, in DTLS 1.3 at once
		// (decrypt_error), in 1.2 when the server has had no
		// authenticated message for a quarter of this. Short here so
		// that the example is quick either way.
		HandshakeTimeout: 2 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	for _, identity := range []string{"device-7", "device-42"} {
		conn, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{
			PSK:          func([]byte) ([]byte, error) { return []byte("sixteen byte key"), nil },
			PSKIdentity:  []byte(identity),
			CipherSuites: []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8},
		})
		if err == nil {
			defer conn.Close()
		}
		o := <-outcomes
		switch {
		case o.Err == nil:
			fmt.Printf("%s: connected\n", o.PSKIdentity)
		case errors.Is(o.Err, dtls.ErrUnknownPSKIdentity):
			fmt.Printf("%s: unknown device\n", o.PSKIdentity)
		case errors.Is(o.Err, dtls.ErrHandshakeTimeout):
			fmt.Printf("%v: timed out\n", o.RemoteAddr)
		default:
			fmt.Printf("%v: %v\n", o.RemoteAddr, o.Err)
		}
	}
	s := l.Stats()
	fmt.Println(s.HandshakesStarted, "started,", s.HandshakesCompleted, "completed,", s.HandshakesFailed, "failed")
	// Output:
	// device-7: unknown device
	// device-42: connected
	// 2 started, 1 completed, 1 failed
}

// A server that shuts down gracefully, as on SIGTERM: Shutdown stops
// accepting, lets handshakes in progress finish, and sends every
// connection's peer a close_notify, so that a client's Read returns
// io.EOF at once.
func ExampleListener_Shutdown() {
	psk := func([]byte) ([]byte, error) { return []byte("sixteen byte key"), nil }
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{PSK: psk})
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 1500)
		for { // echo until the Listener shuts down
			n, err := conn.Read(buf)
			if err != nil {
				served <- err
				return
			}
			conn.Write(buf[:n])
		}
	}()

	conn, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{
		PSK:          psk,
		PSKIdentity:  []byte("device-42"),
		CipherSuites: []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("hello"))
	buf := make([]byte, 1500)
	if _, err := conn.Read(buf); err != nil {
		log.Fatal(err)
	}

	// In a server: ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM);
	// <-ctx.Done(), then this.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	_, err = conn.Read(buf)
	fmt.Println("client:", err == io.EOF)
	fmt.Println("server:", errors.Is(<-served, dtls.ErrListenerClosed))
	_, err = l.Accept()
	fmt.Println("accept:", err)
	// Output:
	// client: true
	// server: true
	// accept: use of closed network connection
}

// A server sets the Listener's limits in its Config (Listen checks them)
// and reads what happened from Listener.Stats: handshakes, connections,
// and every datagram it dropped, by reason.
func ExampleListener_Stats() {
	key := []byte("sixteen byte key")
	psk := func([]byte) ([]byte, error) { return key, nil }
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
		PSK:                    psk,
		CipherSuites:           []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8},
		MaxHandshakes:          64, // in progress at once
		MaxHandshakesPerSource: 8,  // from one IPv4 address or IPv6 /64
		MaxConnections:         1000,
		IdleTimeout:            10 * time.Minute,
		AcceptBacklog:          32,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{})
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Read(make([]byte, 100)) // io.EOF after the client's close_notify
			c.Close()
		}
		close(accepted)
	}()

	c, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{
		PSK: psk, PSKIdentity: []byte("device-1"), CipherSuites: []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8},
	})
	if err != nil {
		log.Fatal(err)
	}
	c.Close()
	<-accepted

	s := l.Stats()
	fmt.Println("started:", s.HandshakesStarted, "completed:", s.HandshakesCompleted, "failed:", s.HandshakesFailed)
	fmt.Println("connections now:", s.Connections)
	// Output:
	// started: 1 completed: 1 failed: 0
	// connections now: 0
}

// A handler tells why its connection ended from Read's error: the peer
// closed (io.EOF), went silent for Config.IdleTimeout (ErrIdleTimeout),
// came back from the same address as a new connection (ErrPeerRestarted),
// or the Listener was closed or shut down (ErrListenerClosed). Each of
// these also matches net.ErrClosed.
func ExampleErrIdleTimeout() {
	key := []byte("sixteen byte key")
	psk := func([]byte) ([]byte, error) { return key, nil }
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
		PSK:          psk,
		CipherSuites: []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8},
		// Short for the example; the Listener never ends a connection
		// sooner than HandshakeTimeout.
		HandshakeTimeout: 500 * time.Millisecond,
		IdleTimeout:      500 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	why := make(chan string)
	go func() {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		_, err = c.Read(make([]byte, 100))
		switch {
		case errors.Is(err, io.EOF):
			why <- "the peer closed"
		case errors.Is(err, dtls.ErrIdleTimeout):
			why <- "idle timeout"
		case errors.Is(err, dtls.ErrPeerRestarted):
			why <- "the peer restarted"
		case errors.Is(err, dtls.ErrListenerClosed):
			why <- "the listener closed"
		default:
			why <- err.Error()
		}
	}()

	// A device that handshakes, then goes silent without a close_notify.
	c, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{
		PSK: psk, PSKIdentity: []byte("device-1"), CipherSuites: []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-why)
	c.Close()
	// Output: idle timeout
}
