package dtls_test

import (
	"crypto/rand"
	"fmt"
	"log"

	"github.com/dtls-go/dtls"
)

// Two servers of a fleet share one FleetSecret, so a ticket one issues
// resumes on the other, and each hands out Connection IDs that start with
// its own server id, by which a balancer routes a client whose address
// changed ("Running a fleet" in the README).
func Example_fleet() {
	secret := make([]byte, 32) // made once for the whole fleet, kept like a private key
	if _, err := rand.Read(secret); err != nil {
		log.Fatal(err)
	}
	psk := func([]byte) ([]byte, error) { return []byte("sixteen byte key"), nil }
	server := func(id byte) *dtls.Listener {
		cids, err := dtls.ServerIDCIDGenerator([]byte{id}, 8)
		if err != nil {
			log.Fatal(err)
		}
		l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
			PSK:                   psk,
			FleetSecret:           secret,
			ConnectionIDGenerator: cids,
		})
		if err != nil {
			log.Fatal(err)
		}
		echoOnce(l)
		return l
	}
	a, b := server(1), server(2)
	defer a.Close()
	defer b.Close()

	client := &dtls.Config{
		PSK:                   psk,
		PSKIdentity:           []byte("device-42"),
		ServerName:            "fleet.example", // the session cache's key, the same for every server
		ClientSessionCache:    dtls.NewLRUClientSessionCache(1),
		ConnectionIDGenerator: dtls.OnlySendCIDGenerator(),
	}
	for _, l := range []*dtls.Listener{a, b} {
		conn, err := dtls.Dial("udp", l.Addr().String(), client)
		if err != nil {
			log.Fatal(err)
		}
		// An echo: in DTLS 1.3 the server's ticket arrives after the
		// handshake, with what the client reads.
		if _, err := conn.Write([]byte("ping")); err != nil {
			log.Fatal(err)
		}
		if _, err := conn.Read(make([]byte, 64)); err != nil {
			log.Fatal(err)
		}
		st := conn.ConnectionState()
		fmt.Printf("server id %d, resumed %v\n", st.RemoteConnectionID[0], st.DidResume)
		conn.Close()
	}
	// Output:
	// server id 1, resumed false
	// server id 2, resumed true
}
