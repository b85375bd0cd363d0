package dtls_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/dtls-go/dtls"
)

// A PSK server and client on loopback, as a CoAP device and gateway might
// use them: RFC 7252 §9.1.3.1 mandates TLS_PSK_WITH_AES_128_CCM_8, a DTLS
// 1.2 suite, so this client stays on 1.2 (by default a client offers 1.3
// too, where a PSK gets TLS_AES_128_GCM_SHA256 unless CipherSuites names
// another 1.3 suite).
func Example() {
	psk := func([]byte) ([]byte, error) { return []byte("sixteen byte key"), nil }
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{PSK: psk})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 1500)
		n, _ := conn.Read(buf)
		conn.Write(buf[:n])
	}()

	conn, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{
		PSK:          psk,
		PSKIdentity:  []byte("device-42"),
		CipherSuites: []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8},
		MaxVersion:   dtls.VersionDTLS12,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("hello"))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(buf[:n]), dtls.CipherSuiteName(conn.ConnectionState().CipherSuite))
	// Output: hello TLS_PSK_WITH_AES_128_CCM_8
}

// echoOnce accepts one connection on l and sends back what it reads
// first, upper-cased.
func echoOnce(l *dtls.Listener) {
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 1500)
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		conn.Write(bytes.ToUpper(buf[:n]))
	}()
}

// selfSigned returns a P-256 certificate for "localhost", and a pool that
// trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		log.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}

// A client that verifies the server's certificate, as crypto/tls does.
// Both sides speak DTLS 1.3 by default.
func ExampleDial() {
	cert, roots := selfSigned()
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	echoOnce(l)

	conn, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("hello")) // one Write is one record in one datagram
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		log.Fatal(err)
	}
	st := conn.ConnectionState()
	fmt.Println(string(buf[:n]), dtls.CipherSuiteName(st.CipherSuite), st.PeerCertificates[0].Subject.CommonName)
	// Output: HELLO TLS_AES_128_GCM_SHA256 localhost
}

// A server for many peers on one UDP socket: Accept returns each
// connection once its handshake is done; a Conn is a net.Conn.
func ExampleListen() {
	cert, roots := selfSigned()
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return // the listener was closed
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 1500)
				for {
					n, err := conn.Read(buf)
					if err != nil {
						return // io.EOF: the peer sent close_notify
					}
					conn.Write(bytes.ToUpper(buf[:n]))
				}
			}()
		}
	}()

	for _, word := range []string{"one", "two"} {
		conn, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{RootCAs: roots, ServerName: "localhost"})
		if err != nil {
			log.Fatal(err)
		}
		conn.Write([]byte(word))
		buf := make([]byte, 1500)
		n, err := conn.Read(buf)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(buf[:n]))
		conn.Close()
	}
	// Output:
	// ONE
	// TWO
}

// A server with a key per device: Config.PSK looks the key up by the
// identity the client sent, and the server's Conn says who it was.
func ExampleConfig_psk() {
	keys := map[string][]byte{"device-1": []byte("key of device 1."), "device-2": []byte("key of device 2.")}
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
		PSK: func(identity []byte) ([]byte, error) {
			if k, ok := keys[string(identity)]; ok {
				return k, nil
			}
			return nil, fmt.Errorf("unknown device %q", identity)
		},
		CipherSuites: []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	identities := make(chan string, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		identities <- string(conn.(*dtls.Conn).ConnectionState().PSKIdentity)
	}()

	conn, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{
		PSK:          func([]byte) ([]byte, error) { return keys["device-2"], nil },
		PSKIdentity:  []byte("device-2"),
		CipherSuites: []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println("server saw", <-identities)
	// Output: server saw device-2
}

// Raw public keys (RFC 7250), as constrained devices use them: each side
// has a key pair and pins the other's public key; no certificates.
func Example_rawPublicKey() {
	serverKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	deviceKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
		RawPublicKey:   true,
		Certificates:   []tls.Certificate{{PrivateKey: serverKey}},
		PeerPublicKeys: []crypto.PublicKey{deviceKey.Public()},
		ClientAuth:     tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	echoOnce(l)

	conn, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{
		RawPublicKey:   true,
		Certificates:   []tls.Certificate{{PrivateKey: deviceKey}},
		PeerPublicKeys: []crypto.PublicKey{serverKey.Public()},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	fmt.Println("pinned key:", serverKey.PublicKey.Equal(st.PeerPublicKey), "certificates:", len(st.PeerCertificates))
	// Output: pinned key: true certificates: 0
}

// Connection IDs (RFC 9146): the server hands out an 8-byte CID that the
// client puts in every record, so that the Listener finds the session
// when the client's address changes (a NAT rebinding). The client asks
// for none of its own: its socket is connected.
func ExampleRandomCIDGenerator() {
	psk := func([]byte) ([]byte, error) { return []byte("sixteen byte key"), nil }
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
		PSK:                   psk,
		ConnectionIDGenerator: dtls.RandomCIDGenerator(8),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	echoOnce(l)

	conn, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{
		PSK:                   psk,
		PSKIdentity:           []byte("device-42"),
		ConnectionIDGenerator: dtls.OnlySendCIDGenerator(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	fmt.Printf("we send a %d-byte CID, we receive a %d-byte one\n", len(st.RemoteConnectionID), len(st.LocalConnectionID))
	// Output: we send a 8-byte CID, we receive a 0-byte one
}

// A key log in the NSS format, for Wireshark or tshark (or dtls analyze,
// for DTLS 1.3) to decrypt a capture: a DTLS 1.3 handshake logs its
// traffic secrets (CLIENT_HANDSHAKE_TRAFFIC_SECRET first), a 1.2 one a
// CLIENT_RANDOM line with its master secret.
func ExampleConfig_keyLogWriter() {
	psk := func([]byte) ([]byte, error) { return []byte("sixteen byte key"), nil }
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{PSK: psk})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	echoOnce(l)

	var keyLog bytes.Buffer // in real use, a file: os.OpenFile(os.Getenv("SSLKEYLOGFILE"), ...)
	conn, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{
		PSK:          psk,
		PSKIdentity:  []byte("device-42"),
		KeyLogWriter: &keyLog,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fields := strings.Fields(keyLog.String())
	fmt.Println(fields[0], len(fields[1])/2, "byte client random,", len(fields[2])/2, "byte secret")
	// Output: CLIENT_HANDSHAKE_TRAFFIC_SECRET 32 byte client random, 32 byte secret
}

// The Tracer sees each datagram, record, handshake message, flight and
// timer; here the handshake messages the client takes in, in order. With
// a PSK and the defaults, that is DTLS 1.3 with psk_dhe_ke: a
// HelloRetryRequest carrying the Listener's cookie (the address check),
// then the server's flight, whose ServerHello carries its ECDHE share.
func ExampleConfig_tracer() {
	psk := func([]byte) ([]byte, error) { return []byte("sixteen byte key"), nil }
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{PSK: psk})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	echoOnce(l)

	conn, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{
		PSK:         psk,
		PSKIdentity: []byte("device-42"),
		Tracer: func(ev *dtls.TraceEvent) {
			if ev.Kind == dtls.TraceHandshakeReceived {
				fmt.Println(dtls.HandshakeTypeName(ev.HandshakeType))
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println(dtls.CipherSuiteName(conn.ConnectionState().CipherSuite))
	// Output:
	// HelloRetryRequest
	// ServerHello
	// EncryptedExtensions
	// Finished
	// TLS_AES_128_GCM_SHA256
}

// Handshakes in a server's log, the way the rest of its code logs. Here
// at Info, without the time and addresses so that the output is the same
// on every run.
func ExampleNewSlogTracer() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "local", "remote":
				return slog.Attr{}
			}
			return a
		},
	}))
	psk := func([]byte) ([]byte, error) { return []byte("sixteen byte key"), nil }
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{PSK: psk})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	echoOnce(l)

	conn, err := dtls.Dial("udp", l.Addr().String(), &dtls.Config{
		PSK:         psk,
		PSKIdentity: []byte("device-42"),
		Tracer:      dtls.NewSlogTracer(logger.With("device", "device-42")),
	})
	if err != nil {
		log.Fatal(err)
	}
	conn.Close()
	// Output:
	// level=INFO msg="handshake done" device=device-42 side=client suite=TLS_AES_128_GCM_SHA256
	// level=INFO msg="alert sent" device=device-42 side=client alert="close notify"
}
