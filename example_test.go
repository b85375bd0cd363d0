package dtls_test

import (
	"fmt"
	"log"

	"github.com/dtls-go/dtls"
)

// A PSK server and client on loopback, as a CoAP device and gateway might
// use them (RFC 7252 §9.1.3.1 mandates TLS_PSK_WITH_AES_128_CCM_8).
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
