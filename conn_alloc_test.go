package dtls

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// TestConnRecordPathAllocs checks that an established connection's Write
// and Read allocate nothing, in both directions: a client Conn on its own
// socket and a Conn accepted by a Listener (whose reader goroutine's work
// is counted too, since AllocsPerRun counts the whole process).
func TestConnRecordPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	for _, sc := range []suiteCase{
		{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"},
		{TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "p256"},
		{TLS_PSK_WITH_AES_128_CCM_8, ""},
		{suiteTLSAES128GCMSHA256, "p256"},
		{suiteTLSChaCha20Poly1305SHA256, "p256"},
	} {
		t.Run(CipherSuiteName(sc.suite), func(t *testing.T) {
			cc, scfg := configsFor(t, sc)
			cc.MaxVersion = VersionDTLS12 // the 1.2 suite's record path, as named
			if sc.suite == suiteTLSAES128GCMSHA256 || sc.suite == suiteTLSChaCha20Poly1305SHA256 {
				// DTLS 1.3: the unified-header record path.
				cc, scfg = configs13(t, "p256")
				cc.CipherSuites, scfg.CipherSuites = []uint16{sc.suite}, []uint16{sc.suite}
			}
			l, err := Listen("udp", "127.0.0.1:0", scfg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}()
			client, err := Dial("udp", l.Addr().String(), cc)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, ok := <-accepted
			if !ok {
				t.Fatal("Accept failed")
			}
			defer server.Close()
			// A deadline set once costs nothing per call; it keeps a lost
			// datagram from hanging the test.
			client.SetReadDeadline(time.Now().Add(time.Minute))
			server.SetReadDeadline(time.Now().Add(time.Minute))
			msg := bytes.Repeat([]byte{'x'}, 1000)
			buf := make([]byte, 2048)
			for name, pair := range map[string][2]net.Conn{
				"client Write, accepted Read": {client, server},
				"accepted Write, client Read": {server, client},
			} {
				w, r := pair[0], pair[1]
				allocs := testing.AllocsPerRun(200, func() {
					if _, err := w.Write(msg); err != nil {
						t.Fatal(err)
					}
					n, err := r.Read(buf)
					if err != nil || !bytes.Equal(buf[:n], msg) {
						t.Fatalf("Read: %d bytes, %v", n, err)
					}
				})
				if allocs != 0 {
					t.Errorf("%s: %.2f allocations per record", name, allocs)
				}
			}
		})
	}
}
