package dtls

import (
	"net/netip"
	"sync"
	"testing"
)

func tableConn(ap netip.AddrPort) *listenerConnIO {
	c := &listenerConnIO{done: make(chan struct{})}
	c.setPeer(ap)
	return c
}

func cidRecord(cid []byte) []byte {
	d := appendRecordHeaderCID(nil, recordTypeTLS12CID, VersionDTLS12, 1, 7, cid, 24)
	return append(d, make([]byte, 24)...)
}

// TestConnTableRouting: records with a CID go to the CID's owner whatever
// their source, CIDs of several lengths coexist, everything else goes by
// address, and remove forgets only what is still the connection's own.
func TestConnTableRouting(t *testing.T) {
	tab := newConnTable()
	a1 := netip.MustParseAddrPort("192.0.2.1:1000")
	a2 := netip.MustParseAddrPort("[2001:db8::1]:2000")
	c1, c2 := tableConn(a1), tableConn(a2)
	if !tab.add(a1, c1) || !tab.add(a2, c2) {
		t.Fatal("add failed")
	}
	if tab.add(a1, c2) {
		t.Fatal("add took another connection's address")
	}
	if !tab.registerCID([]byte{1, 2, 3, 4}, c1) || !tab.registerCID([]byte{9, 9, 9, 9, 9, 9, 9, 9}, c2) {
		t.Fatal("registerCID failed")
	}
	if tab.registerCID([]byte{1, 2, 3, 4}, c2) {
		t.Fatal("a CID in use was registered twice")
	}
	plain := appendRecordHeader(nil, recordTypeApplicationData, VersionDTLS12, 1, 1, 0)
	for _, tc := range []struct {
		name   string
		d      []byte
		from   netip.AddrPort
		want   *listenerConnIO
		byAddr bool
	}{
		{"c1's CID from c2's address", cidRecord([]byte{1, 2, 3, 4}), a2, c1, false},
		{"c2's 8-byte CID from nowhere", cidRecord([]byte{9, 9, 9, 9, 9, 9, 9, 9}), netip.MustParseAddrPort("198.51.100.7:9"), c2, false},
		{"unknown CID from c1's address", cidRecord([]byte{5, 5, 5, 5}), a1, c1, true},
		{"plain record from c2's address", plain, a2, c2, true},
		{"plain record from a stranger", plain, netip.MustParseAddrPort("192.0.2.1:1001"), nil, true},
		{"CID record cut short", cidRecord([]byte{1, 2, 3, 4})[:12], a2, c2, true},
	} {
		got, byAddr := tab.lookup(tc.d, tc.from)
		if got != tc.want || byAddr != tc.byAddr {
			t.Errorf("%s: got %p (by address %v), want %p (%v)", tc.name, got, byAddr, tc.want, tc.byAddr)
		}
	}
	if n := len(tab.snapshot(nil)); n != 2 {
		t.Errorf("snapshot has %d connections, want 2", n)
	}
	tab.remove(c1)
	if got, _ := tab.lookup(cidRecord([]byte{1, 2, 3, 4}), a1); got != nil {
		t.Errorf("removed connection still routed: %p", got)
	}
	if got, _ := tab.lookup(plain, a2); got != c2 {
		t.Errorf("removing c1 disturbed c2")
	}
}

// TestConnTableConcurrentReaders runs lookups from several goroutines, as
// several sockets' readers will, while connections come and go: the race
// detector checks the locking, and every lookup of a connection that is
// never removed finds it.
func TestConnTableConcurrentReaders(t *testing.T) {
	tab := newConnTable()
	stable := netip.MustParseAddrPort("192.0.2.1:1")
	sc := tableConn(stable)
	tab.add(stable, sc)
	tab.registerCID([]byte{7, 7, 7, 7}, sc)
	rec := cidRecord([]byte{7, 7, 7, 7})
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(r), byte(i)}), 1)
				if got, _ := tab.lookup(rec, from); got != sc {
					t.Errorf("reader %d lost the stable connection", r)
					return
				}
				tab.lookup(nil, from)
			}
		})
	}
	wg.Go(func() {
		for i := range 2000 {
			ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 1)
			c := tableConn(ap)
			tab.add(ap, c)
			tab.registerCID([]byte{1, byte(i >> 8), byte(i)}, c)
			tab.remove(c)
		}
	})
	wg.Wait()
	if n := tab.len(); n != 1 {
		t.Errorf("%d addresses left, want 1", n)
	}
}

// TestConnTableMove: a move takes a free address or a closed
// connection's, never a live connection's; the mover is still reached by
// its CID and sends to its new address either way.
func TestConnTableMove(t *testing.T) {
	tab := newConnTable()
	a1 := netip.MustParseAddrPort("192.0.2.1:1000")
	a2 := netip.MustParseAddrPort("192.0.2.2:2000")
	a3 := netip.MustParseAddrPort("192.0.2.3:3000")
	mover, victim := tableConn(a1), tableConn(a2)
	tab.add(a1, mover)
	tab.add(a2, victim)
	tab.registerCID([]byte{1, 1, 1, 1}, mover)
	if tab.move(mover, a2) {
		t.Error("move took a live connection's address")
	}
	if got := tab.byAddress(a2); got != victim {
		t.Errorf("victim's address routed to %p", got)
	}
	if mover.peer.Load().ap != a2 {
		t.Error("the mover does not send to its peer's new address")
	}
	if got, _ := tab.lookup(cidRecord([]byte{1, 1, 1, 1}), a3); got != mover {
		t.Error("the mover lost its CID route")
	}
	if got := tab.byAddress(a1); got != nil {
		t.Error("the mover kept its old address")
	}
	if n := len(tab.snapshot(nil)); n != 2 {
		t.Errorf("snapshot has %d connections, want 2", n)
	}
	if !tab.move(mover, a3) || tab.byAddress(a3) != mover {
		t.Error("move to a free address failed")
	}
	victim.shutdown()
	if !tab.move(mover, a2) || tab.byAddress(a2) != mover {
		t.Error("move to a closed connection's address failed")
	}
}
