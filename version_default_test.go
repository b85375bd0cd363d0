package dtls

import (
	"bytes"
	"net"
	"testing"
)

// Helpers and tests for DTLS 1.3 as the default version; tests of 1.2
// behaviour pin MaxVersion VersionDTLS12 where they build their Configs.

// versionName names a version for subtest names.
func versionName(vers uint16) string {
	switch vers {
	case VersionDTLS12:
		return "1.2"
	case VersionDTLS13:
		return "1.3"
	}
	return "unknown"
}

// inBothVersions runs f as subtests "1.2" and "1.3", with the version for
// the test to pin in its client's MaxVersion. It is for tests written for
// DTLS 1.2 whose behaviour 1.3 must have too: pinned to 1.2 they would
// leave 1.3 untested, unpinned they would silently have stopped testing
// 1.2 when 1.3 became the default.
func inBothVersions(t *testing.T, f func(t *testing.T, vers uint16)) {
	t.Helper()
	for _, vers := range []uint16{VersionDTLS12, VersionDTLS13} {
		t.Run(versionName(vers), func(t *testing.T) { f(t, vers) })
	}
}

// TestStaleRecord13DuringHandshake is TestStaleEpoch1AlertDuringHandshake
// for DTLS 1.3: a record of some earlier connection in the unified header
// (epoch bits 2, the handshake epoch), arriving before our handshake keys,
// fails to decrypt once they are in and must be dropped, not end the
// handshake.
func TestStaleRecord13DuringHandshake(t *testing.T) {
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
	l, _ := echoServer(t, sc, nil)
	raw, err := net.Dial("udp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// 001CSLEE: no CID, 16-bit sequence number, length present, epoch 2.
	stale := []byte{0x2e, 0x00, 0x03, 0x00, 24}
	stale = append(stale, bytes.Repeat([]byte{0x5a}, 24)...)
	c := Client(&staleRecordConn{Conn: raw, stale: [][]byte{stale}}, cc)
	defer c.Close()
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if v := c.ConnectionState().Version; v != VersionDTLS13 {
		t.Fatalf("version %#x, want 1.3", v)
	}
	dropped := 0
	for _, n := range c.Stats().Dropped {
		dropped += int(n)
	}
	if dropped == 0 {
		t.Error("the stale record was not counted as dropped")
	}
	exchange(t, c, "after a stale record")
}
