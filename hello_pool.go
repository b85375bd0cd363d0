package dtls

import (
	"net/netip"
	"time"
)

// Limits of the pre-cookie ClientHello reassembly. A ClientHello may be
// fragmented like any handshake message (RFC 6347 §4.2.3): OpenSSL's
// s_client -mtu 256 splits the cookie-bearing one, and a client that
// offers a session ticket at a small MTU must. Before a valid cookie the
// Listener keeps nothing for a peer but these fragments, in a small pool
// bounded per source and in total, with no cryptography: a spoofed flood
// of first fragments costs a bounded, reused amount of memory and evicts
// only other fragments.
const (
	// maxFragmentedHelloLen bounds the declared length of a ClientHello
	// reassembled before a cookie. Typical ClientHellos are a few hundred
	// bytes; a session ticket that carries a client certificate chain
	// adds a few KB.
	maxFragmentedHelloLen = 8 << 10
	// helloPoolEntries bounds the ClientHellos being reassembled at once:
	// 32 × (8 KiB + a 1 KiB bitmap), under 300 KiB, allocated as used
	// and reused. A client sends the fragments of one ClientHello back
	// to back, so an entry usually completes within a millisecond; when
	// all are taken the oldest entry makes room.
	helloPoolEntries = 32
	// helloPoolPerSource bounds the entries of one source (an IPv4
	// address or IPv6 /64): a source at its limit replaces its own
	// oldest entry, so that it cannot crowd out others.
	helloPoolPerSource = 4
	// helloFragmentLifetime is how long an incomplete ClientHello is
	// kept after its last fragment arrived: long enough for the client's
	// next retransmission to fill a hole left by a lost fragment, however
	// far its timer has backed off. RFC 6347 §4.2.4.1 and RFC 9147
	// §5.8.2 double the timer up to 60 s (maxRetransmitTimeout); the
	// margin covers the path's delay. Counting from the first fragment
	// with a 2 s lifetime (as before) let only the first retransmission
	// combine with what arrived earlier: at MTU 200 and 50% loss, where a
	// DTLS 1.3 ClientHello with its cookie takes two datagrams, one
	// handshake in ten then lost every later attempt's lone fragment and
	// gave up (LOSS.md). The pool's size, not the lifetime, bounds the
	// memory: a flood evicts the oldest entries as before.
	helloFragmentLifetime = maxRetransmitTimeout + 5*time.Second
)

// helloPool reassembles fragmented ClientHellos that arrive before the
// cookie exchange is done, keyed by source address and port,
// message_seq and declared length. It is version-neutral (the handshake
// header is the same in DTLS 1.2 and 1.3), does no cryptography, and is
// not safe for concurrent use: a Listener's reader owns it.
type helloPool struct {
	entries [helloPoolEntries]helloEntry
}

// helloEntry is one ClientHello being reassembled.
type helloEntry struct {
	used      bool
	from      netip.AddrPort
	src       netip.Prefix
	msgSeq    uint16
	recordSeq uint64 // the highest record sequence number of its fragments
	firstSeq  uint64 // the lowest
	fragments int    // fragments taken, duplicates included
	created   int64  // when the first fragment arrived (Listener.nanotime)
	last      int64  // when the last fragment arrived, for helloFragmentLifetime
	received  int    // bytes of the datagrams that carried its fragments
	body      []byte // len(body) is the declared length; the buffer is reused
	have      []byte // one bit per body byte received
	missing   int
}

// helloFragment reports whether a handshake header describes a fragment
// of a ClientHello the pool takes: fragmented, and not too long.
func helloFragment(h *handshakeHeader) bool {
	return h.typ == typeClientHello && h.length <= maxFragmentedHelloLen &&
		(h.fragmentOffset != 0 || h.fragmentLength != h.length)
}

// add takes one fragment of a ClientHello from the address from, in a
// record with sequence number recordSeq that arrived in a datagram of
// datagramLen bytes, at now. It returns the entry when this fragment
// completed it; the caller reads it and then calls release.
// evicted reports an incomplete entry that was dropped to make room or
// because it expired.
func (p *helloPool) add(now int64, from netip.AddrPort, recordSeq uint64, h *handshakeHeader, frag []byte, datagramLen int) (done *helloEntry, evicted int) {
	src := sourcePrefix(from.Addr())
	var e, free, oldest, oldestOfSrc *helloEntry
	perSource := 0
	for i := range p.entries {
		x := &p.entries[i]
		if x.used && now-x.last > int64(helloFragmentLifetime) {
			x.used = false
			evicted++
		}
		if !x.used {
			if free == nil {
				free = x
			}
			continue
		}
		if x.from == from && x.msgSeq == h.messageSeq && len(x.body) == int(h.length) {
			e = x
		}
		if oldest == nil || x.created < oldest.created {
			oldest = x
		}
		if x.src == src {
			perSource++
			if oldestOfSrc == nil || x.created < oldestOfSrc.created {
				oldestOfSrc = x
			}
		}
	}
	if e == nil {
		switch {
		case perSource >= helloPoolPerSource:
			e = oldestOfSrc
			evicted++
		case free != nil:
			e = free
		default:
			e = oldest
			evicted++
		}
		e.start(now, from, src, h)
	}
	e.last = now
	e.received += datagramLen
	if e.fragments == 0 || recordSeq < e.firstSeq {
		e.firstSeq = recordSeq
	}
	e.fragments++
	e.recordSeq = max(e.recordSeq, recordSeq)
	off := int(h.fragmentOffset)
	for i, b := range frag {
		k := off + i
		if e.have[k/8]&(1<<(k%8)) == 0 {
			e.have[k/8] |= 1 << (k % 8)
			e.body[k] = b
			e.missing--
		}
	}
	if e.missing > 0 {
		return nil, evicted
	}
	return e, evicted
}

// start makes e an empty entry for the message h describes.
func (e *helloEntry) start(now int64, from netip.AddrPort, src netip.Prefix, h *handshakeHeader) {
	n := int(h.length)
	if cap(e.body) < n {
		e.body = make([]byte, n, max(n, 1024))
	}
	e.body = e.body[:n]
	bm := bitmapLen(h.length)
	if cap(e.have) < bm {
		e.have = make([]byte, bm, max(bm, 128))
	}
	e.have = e.have[:bm]
	clear(e.have)
	*e = helloEntry{used: true, from: from, src: src, msgSeq: h.messageSeq, created: now,
		body: e.body, have: e.have, missing: n}
}

// sampleSeq returns the record sequence number of the first record of a
// completed ClientHello, for the cookie's round-trip sample
// (cookieGenerator.roundTrip), if its fragments came in consecutive
// records, one each, as one transmission sends them; ok=false when they
// came from several transmissions (some lost, or duplicated), whose
// first record would time the client's retransmission timer too (Karn's
// rule).
func (e *helloEntry) sampleSeq() (seq uint64, ok bool) {
	return e.firstSeq, e.recordSeq-e.firstSeq+1 == uint64(e.fragments)
}

// release frees an entry that add returned.
func (p *helloPool) release(e *helloEntry) { e.used = false }
