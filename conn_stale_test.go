package dtls

import (
	"bytes"
	"net"
	"testing"
)

// staleRecordConn returns records queued in stale before what the socket
// holds, as a client whose port was just used by another connection
// receives that connection's late packets.
type staleRecordConn struct {
	net.Conn
	stale [][]byte
}

func (c *staleRecordConn) Read(b []byte) (int, error) {
	if len(c.stale) > 0 {
		n := copy(b, c.stale[0])
		c.stale = c.stale[1:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// TestStaleEpoch1AlertDuringHandshake: an epoch-1 close_notify of some
// earlier connection, arriving before our epoch-1 keys, is buffered as a
// future-epoch record, fails authentication once the keys are in, and must
// be dropped, not end the handshake as a wrong PSK would.
func TestStaleEpoch1AlertDuringHandshake(t *testing.T) {
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
	cc.MaxVersion = VersionDTLS12 // a 1.2 epoch-1 record (1.3's epoch 1 is 0-RTT)
	l, _ := echoServer(t, sc, nil)
	raw, err := net.Dial("udp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	stale := appendRecordHeader(nil, recordTypeAlert, VersionDTLS12, 1, 3, 8+2+16)
	stale = append(stale, bytes.Repeat([]byte{0x5a}, 8+2+16)...)
	c := Client(&staleRecordConn{Conn: raw, stale: [][]byte{stale}}, cc)
	defer c.Close()
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if got := c.Stats().Dropped[dropBadMAC.String()]; got != 1 {
		t.Errorf("bad MAC drops = %d, want 1", got)
	}
	exchange(t, c, "after a stale record")
}
