package dtls

import (
	"net/netip"
	"slices"
	"sync"
)

// connTable routes a Listener's datagrams to its connections: by the CID
// that a tls12_cid record carries (RFC 9146), else by source address.
//
// Every datagram looks the table up, so the read side takes only a read
// lock: readers never wait for one another, only for the rare writer (a
// handshake that starts or ends, a CID registered, a peer that moved).
// Nothing in it refers to a socket, so that several sockets of one
// Listener, each with its own reader, can share one table and a peer whose
// datagrams land on another socket (a NAT rebinding, a CID migration)
// still reaches its connection.
type connTable struct {
	mu     sync.RWMutex
	byAddr map[netip.AddrPort]*listenerConnIO
	// byCID routes tls12_cid records by the CID we gave each connection,
	// so that a peer whose address changes keeps its session. cidLens
	// lists the distinct lengths of those CIDs (one, with a fixed-length
	// generator), since a record does not say how long its CID is.
	byCID   map[string]*listenerConnIO
	cidLens []int
}

func newConnTable() *connTable {
	return &connTable{
		byAddr: make(map[netip.AddrPort]*listenerConnIO),
		byCID:  make(map[string]*listenerConnIO),
	}
}

// lookup returns the connection a datagram from the address from belongs
// to, or nil. byAddr says it was found by address rather than by CID.
func (t *connTable) lookup(d []byte, from netip.AddrPort) (cio *listenerConnIO, byAddr bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if cio = t.lookupCIDLocked(d); cio != nil {
		return cio, false
	}
	return t.byAddr[from], true
}

// lookupCIDLocked returns the connection whose CID the datagram's first
// record carries, if it is a tls12_cid record (RFC 9146 §4) or a DTLS 1.3
// unified header with the C bit set (RFC 9147 §4). Only the CID lengths
// we handed out are tried, each bounded by the datagram.
func (t *connTable) lookupCIDLocked(d []byte) *listenerConnIO {
	if len(d) == 0 {
		return nil
	}
	// Where the CID starts: in a tls12_cid record where a plain record
	// has its length field; in a unified header right after the first
	// byte (001CSLEE), which is followed by at least a sequence number.
	var off, after int
	switch {
	case recordType(d[0]) == recordTypeTLS12CID:
		off, after = recordHeaderLen-2, 2
	case d[0]&uhFixedMask == uhFixedBits && d[0]&uhCIDBit != 0:
		off, after = 1, 1
	default:
		return nil
	}
	for _, n := range t.cidLens {
		if len(d) < off+n+after {
			continue
		}
		if cio := t.byCID[string(d[off:off+n])]; cio != nil {
			return cio
		}
	}
	return nil
}

// byAddress returns the connection routed from ap, or nil.
func (t *connTable) byAddress(ap netip.AddrPort) *listenerConnIO {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byAddr[ap]
}

// add routes the datagrams of ap to cio, unless another connection holds
// that address.
func (t *connTable) add(ap netip.AddrPort, cio *listenerConnIO) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if other := t.byAddr[ap]; other != nil && other != cio {
		return false
	}
	t.byAddr[ap] = cio
	return true
}

// registerCID reserves cid for cio, unless another connection holds it
// or cio is closed.
func (t *connTable) registerCID(cid []byte, cio *listenerConnIO) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cio.isDone() {
		// Closed: remove has run or runs without seeing this CID, so
		// an entry added now would route to nothing for ever.
		return false
	}
	if _, taken := t.byCID[string(cid)]; taken {
		return false
	}
	t.byCID[string(cid)] = cio
	cio.cids = append(cio.cids, string(cid))
	if !slices.Contains(t.cidLens, len(cid)) {
		t.cidLens = append(t.cidLens, len(cid))
	}
	return true
}

// retireCID stops routing cid to cio: a DTLS 1.3 CID the peer no
// longer uses (cid_dtls13.go).
func (t *connTable) retireCID(cid []byte, cio *listenerConnIO) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := slices.Index(cio.cids, string(cid))
	if i < 0 {
		return
	}
	cio.cids = slices.Delete(cio.cids, i, i+1)
	if t.byCID[string(cid)] == cio {
		delete(t.byCID, string(cid))
	}
}

// move moves cio's peer to newAP: we send there from now on. The
// datagrams of newAP are routed to cio too, unless another live
// connection holds that address: one connection's move never takes
// another's entry (RFC 9146 §6 lets a peer's authenticated, newest record
// move that peer, not anyone else). A CID connection needs no address
// entry anyway: its peer's records are routed by the CID. move reports
// whether cio holds newAP's entry afterwards. The lock orders it with
// remove.
func (t *connTable) move(cio *listenerConnIO, newAP netip.AddrPort) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cio.isDone() {
		return false // closed: remove has run or will find nothing
	}
	old := cio.peer.Load()
	if old.ap == newAP {
		return t.byAddr[newAP] == cio
	}
	cio.setPeer(newAP)
	if t.byAddr[old.ap] == cio {
		delete(t.byAddr, old.ap)
	}
	if other := t.byAddr[newAP]; other != nil && !other.isDone() {
		return false
	}
	t.byAddr[newAP] = cio
	return true
}

// remove forgets cio's address and CID, where they are still cio's.
func (t *connTable) remove(cio *listenerConnIO) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ap := cio.peer.Load().ap
	if t.byAddr[ap] == cio {
		delete(t.byAddr, ap)
	}
	for _, cid := range cio.cids {
		if t.byCID[cid] == cio {
			delete(t.byCID, cid)
		}
	}
}

// len returns the number of addresses routed.
func (t *connTable) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byAddr)
}

// snapshot appends every connection in the table to dst, once each.
func (t *connTable) snapshot(dst []*listenerConnIO) []*listenerConnIO {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, cio := range t.byAddr {
		dst = append(dst, cio)
	}
	for cid, cio := range t.byCID {
		// A connection is routed by address only from its peer's
		// address; one that could not take that address is only here,
		// once under each of its CIDs: counted under its first.
		if t.byAddr[cio.peer.Load().ap] != cio && len(cio.cids) > 0 && cio.cids[0] == cid {
			dst = append(dst, cio)
		}
	}
	return dst
}
