package dtls

import "bytes"

// This file reassembles and reorders the peer's handshake messages (RFC
// 6347 §4.2.2-§4.2.3): fragments go in, complete messages come out in
// message_seq order. DTLS 1.3 uses the same handshake fragments (RFC 9147
// §5.5), so the reassembler is shared: the 1.2 transport (flight.go)
// reacts to what addRecord reports with whole-flight retransmission, and
// the 1.3 transport will answer with ACKs. It is sans-I/O and bounded:
// maxReorderMessages messages ahead, maxHandshakeBuffered bytes.

// Reasons addRecord gives for a dropped fragment, for the caller's
// counters and the Tracer. Each names the advisory class it defends.
const (
	fragEmptyRecord       = "empty handshake record"
	fragTruncatedHeader   = "truncated handshake header"
	fragBadHeader         = "invalid handshake header"              // length > maxHandshakeMessageLen or offset+fragment_length > length
	fragTruncatedFragment = "fragment shorter than fragment_length" //
	fragTooFarAhead       = "message_seq beyond reorder window"     // tinydtls #273
	fragEmptyFragment     = "zero-length fragment of a non-empty message"
	fragInconsistent      = "fragment disagrees with its message's type, length or epoch"
	fragOverlapMismatch   = "overlapping fragment with different bytes"
	fragBufferFull        = "handshake reassembly buffer full"
)

// inMessage is one complete, in-order handshake message from the peer.
type inMessage struct {
	epoch uint64 // epoch all of its fragments arrived in
	typ   handshakeType
	seq   uint16
	body  []byte // the reassembled body (owned by the caller after nextMessage)
}

// transcript returns header+body as it enters the DTLS 1.2 handshake hash:
// the 12-byte header with fragment_offset 0 and fragment_length = length
// (RFC 6347 §4.2.6), whatever fragmentation the message arrived in.
func (m *inMessage) transcript() []byte {
	return m.appendTranscript(make([]byte, 0, handshakeHeaderLen+len(m.body)))
}

// appendTranscript appends what transcript returns to b.
func (m *inMessage) appendTranscript(b []byte) []byte {
	h := handshakeHeader{
		typ:            m.typ,
		length:         uint32(len(m.body)),
		messageSeq:     m.seq,
		fragmentLength: uint32(len(m.body)),
	}
	b = h.appendTo(b)
	return append(b, m.body...)
}

// inReassembly is a peer message being reassembled, or complete and not yet
// taken by nextMessage.
//
// Its fields are ordered, and missing is 32 bits, so that it stays 64
// bytes with a 64-bit epoch: a connection keeps maxReorderMessages of them.
type inReassembly struct {
	epoch   uint64
	used    bool
	typ     handshakeType
	seq     uint16
	missing int32  // body bytes not yet received; at most maxHandshakeMessageLen
	body    []byte // len(body) is the declared length
	// have has one bit per body byte, set once the byte arrived. It is nil
	// when the message arrived whole or is complete: a bitmap bounds the
	// bookkeeping by the message length whatever the number, order and
	// overlap of fragments.
	have []byte
}

func (r *inReassembly) cost() int { return len(r.body) + len(r.have) }

// reassembler holds the peer's handshake messages until they are
// complete and their turn comes. It is not safe for concurrent use.
type reassembler struct {
	// recvSeq is the next message_seq to deliver; it is wider than
	// message_seq so that it cannot wrap back into the window.
	recvSeq uint32
	// in is indexed by message_seq % maxReorderMessages. It is allocated
	// at the first fragment and given up when the handshake completes
	// with nothing buffered (shrink): an idle connection does not keep
	// its 1 KB, and a post-handshake message allocates it again.
	in       *[maxReorderMessages]inReassembly
	buffered int // bytes held in in[], ≤ maxHandshakeBuffered
}

// shrink gives up the reorder slots when nothing is buffered in them.
func (t *reassembler) shrink() {
	if t.in == nil || t.buffered != 0 {
		return
	}
	for i := range t.in {
		if t.in[i].used {
			return
		}
	}
	t.in = nil
}

// expectAt sets the next message_seq to deliver. Buffered messages that
// fall outside the new reorder window are discarded.
func (t *reassembler) expectAt(recvSeq uint16) {
	t.recvSeq = uint32(recvSeq)
	if t.in == nil {
		return
	}
	for i := range t.in {
		r := &t.in[i]
		if r.used && !t.inWindow(uint32(r.seq)) {
			t.release(r)
		}
	}
}

// addRecord takes the plaintext payload of one handshake record (it may
// hold several fragments back to back) received in epoch. It reports
// whether a fragment of an already delivered message arrived (old: the
// peer retransmitted) and whether one of a message not yet delivered was
// accepted (moved: the peer moved on), and how many fragments it dropped,
// with the reason for the last one. Bad fragments are dropped silently:
// epoch-0 records can be forged by anyone who knows the addresses.
func (t *reassembler) addRecord(epoch uint64, payload []byte) (old, moved bool, dropped int, reason string) {
	if len(payload) == 0 {
		return false, false, 1, fragEmptyRecord
	}
	// Every iteration consumes at least handshakeHeaderLen bytes or stops,
	// so no input can loop (pion CVE-2022-29190).
	for len(payload) > 0 {
		var h handshakeHeader
		if len(payload) < handshakeHeaderLen {
			dropped, reason = dropped+1, fragTruncatedHeader
			break
		}
		// unmarshal rejects length > maxHandshakeMessageLen and
		// fragment_offset+fragment_length > length. The framing of the
		// rest of the record cannot be trusted after a bad header.
		if !h.unmarshal(payload) {
			dropped, reason = dropped+1, fragBadHeader
			break
		}
		end := handshakeHeaderLen + int(h.fragmentLength)
		if len(payload) < end {
			dropped, reason = dropped+1, fragTruncatedFragment
			break
		}
		frag := payload[handshakeHeaderLen:end]
		payload = payload[end:]

		switch st, why := t.handleFragment(epoch, &h, frag); st {
		case fragmentOld:
			old = true
		case fragmentAccepted:
			moved = true
		case fragmentDropped:
			dropped, reason = dropped+1, why
		}
	}
	return old, moved, dropped, reason
}

type fragmentStatus uint8

const (
	fragmentAccepted fragmentStatus = iota // stored, or a duplicate of stored bytes
	fragmentOld                            // message_seq already delivered: the peer retransmitted
	fragmentDropped
)

func (t *reassembler) inWindow(seq uint32) bool {
	return seq >= t.recvSeq && seq-t.recvSeq < maxReorderMessages
}

// handleFragment applies one parsed fragment. h passed unmarshal, so
// offset+fragmentLength ≤ length ≤ maxHandshakeMessageLen and
// len(frag) == fragmentLength.
func (t *reassembler) handleFragment(epoch uint64, h *handshakeHeader, frag []byte) (fragmentStatus, string) {
	seq := uint32(h.messageSeq)
	if seq < t.recvSeq {
		return fragmentOld, ""
	}
	// Only a bounded window of future messages is buffered (tinydtls #273).
	if !t.inWindow(seq) {
		return fragmentDropped, fragTooFarAhead
	}
	// A zero-length fragment carries nothing and must not be able to
	// complete a message (GnuTLS CVE-2026-33845, OpenSSL CVE-2014-3507).
	// The one legitimate zero-length fragment is the whole of a
	// zero-length message, which has offset 0.
	if h.fragmentLength == 0 && h.length != 0 {
		return fragmentDropped, fragEmptyFragment
	}

	if t.in == nil {
		t.in = new([maxReorderMessages]inReassembly)
	}
	r := &t.in[seq%maxReorderMessages]
	if r.used && uint32(r.seq) != seq {
		t.release(r) // cannot happen: slots are released as the window moves
	}
	if !r.used {
		whole := h.fragmentOffset == 0 && h.fragmentLength == h.length
		cost := int(h.length)
		if !whole {
			cost += bitmapLen(h.length)
		}
		// Nothing is allocated unless the declared length fits in the
		// budget (OpenSSL CVE-2026-95690, pion CVE-2022-29189 and
		// CVE-2026-135392).
		if !t.makeRoom(seq, cost) {
			return fragmentDropped, fragBufferFull
		}
		// The caller reuses the datagram buffer, so the fragment is
		// copied; a message that arrives whole is copied exactly once.
		*r = inReassembly{
			used:  true,
			typ:   h.typ,
			epoch: epoch,
			seq:   h.messageSeq,
			body:  make([]byte, h.length),
		}
		t.buffered += cost
		if whole {
			copy(r.body, frag)
			return fragmentAccepted, ""
		}
		r.have = make([]byte, bitmapLen(h.length))
		r.missing = int32(h.length)
	}

	// All fragments of a message agree on type, length and epoch (GnuTLS
	// CVE-2026-33846; wolfSSL CVE-2023-6937: a message must not span a key
	// change).
	if r.typ != h.typ || uint32(len(r.body)) != h.length || r.epoch != epoch {
		return fragmentDropped, fragInconsistent
	}

	off, end := int(h.fragmentOffset), int(h.fragmentOffset+h.fragmentLength)
	if r.have == nil { // complete: every byte is held
		if !bytes.Equal(r.body[off:end], frag) {
			return fragmentDropped, fragOverlapMismatch
		}
		return fragmentAccepted, ""
	}
	// Overlaps are legal (RFC 6347 §4.2.3), but the first writer wins: a
	// fragment that contradicts bytes we hold is dropped whole.
	for i := off; i < end; i++ {
		if r.have[i>>3]&(1<<(i&7)) != 0 && r.body[i] != frag[i-off] {
			return fragmentDropped, fragOverlapMismatch
		}
	}
	for i := off; i < end; i++ {
		if r.have[i>>3]&(1<<(i&7)) == 0 {
			r.have[i>>3] |= 1 << (i & 7)
			r.body[i] = frag[i-off]
			r.missing--
		}
	}
	if r.missing == 0 {
		t.buffered -= len(r.have)
		r.have = nil
	}
	return fragmentAccepted, ""
}

func bitmapLen(length uint32) int { return int(length+7) / 8 }

// makeRoom ensures cost more bytes fit in maxHandshakeBuffered, evicting
// buffered messages further ahead than seq, furthest first: the message we
// need next always finds room (maxHandshakeMessageLen plus its bitmap is
// below maxHandshakeBuffered), and the peer retransmits what was evicted.
func (t *reassembler) makeRoom(seq uint32, cost int) bool {
	for t.buffered+cost > maxHandshakeBuffered {
		if t.in == nil {
			return false
		}
		var victim *inReassembly
		for i := range t.in {
			r := &t.in[i]
			if r.used && uint32(r.seq) > seq && (victim == nil || r.seq > victim.seq) {
				victim = r
			}
		}
		if victim == nil {
			return false
		}
		t.release(victim)
	}
	return true
}

func (t *reassembler) release(r *inReassembly) {
	t.buffered -= r.cost()
	*r = inReassembly{}
}

// nextMessage returns the next complete message in message_seq order, if
// any. Its body is handed over to the caller.
func (t *reassembler) nextMessage() (inMessage, bool) {
	if t.in == nil || t.recvSeq > 0xffff {
		return inMessage{}, false
	}
	r := &t.in[t.recvSeq%maxReorderMessages]
	if !r.used || uint32(r.seq) != t.recvSeq || r.have != nil {
		return inMessage{}, false
	}
	m := inMessage{epoch: r.epoch, typ: r.typ, seq: r.seq, body: r.body}
	t.release(r)
	t.recvSeq++
	return m, true
}

// bufferedBytes returns the bytes held for incomplete and not yet delivered
// peer messages (bodies and reassembly bitmaps); it never exceeds
// maxHandshakeBuffered.
func (t *reassembler) bufferedBytes() int { return t.buffered }

// peekMessage reports the type and epoch of the next message in
// message_seq order if it is complete, without taking it.
func (t *reassembler) peekMessage() (typ handshakeType, epoch uint64, ok bool) {
	if t.in == nil || t.recvSeq > 0xffff {
		return 0, 0, false
	}
	r := &t.in[t.recvSeq%maxReorderMessages]
	if !r.used || uint32(r.seq) != t.recvSeq || r.have != nil {
		return 0, 0, false
	}
	return r.typ, r.epoch, true
}
