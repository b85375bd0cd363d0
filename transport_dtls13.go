package dtls

import (
	"slices"
	"time"
)

// The DTLS 1.3 additions to the handshake transport (RFC 9147 §5.8, §7):
// the same flights, fragmentation, reassembly and RFC 6298 timer as DTLS
// 1.2 (flight.go, reassembly.go, rtt.go), plus
//
//   - on the send side, a record of which fragment of which message each
//     handshake record we sent carried, so that an ACK marks those bytes
//     as received and a retransmission resends only the rest, in new
//     records (§7.1); once every byte of a flight is ACKed its timer
//     stops (§5.8.1), and an ACK that leaves part of it unacknowledged
//     gets that part resent at once (§7.2; partialACKResend);
//   - on the receive side, the record numbers of the peer's handshake
//     records we processed, which an ACK names: at once where RFC 9147
//     asks for one (the server after the client's final flight), or when
//     the ACK timer, a quarter of the retransmission timeout (BoringSSL's
//     choice; §7.1 leaves it open), fires while a flight of the peer is
//     incomplete. Our next flight is the implicit ACK of the peer's and
//     clears the list. When our retransmission timer fires during the
//     handshake while we hold authenticated records of the peer's next
//     flight, the peer has ours: we ACK all of its records we have
//     instead of resending (flightACKDue).
//
// A 1.2 connection never allocates this state (handshakeTransport.ack13
// stays nil) and its flights are unchanged.

const (
	// maxSentRecords13 bounds the handshake records of one flight we
	// remember for ACKs: a flight of a few messages over a small MTU,
	// with its retransmissions. When full, the oldest are forgotten; an
	// ACK naming them is then ignored, and their bytes are sent again.
	maxSentRecords13 = 128
	// maxAckSpans13 bounds the acknowledged byte ranges kept per message:
	// ACKs of fragments arrive in any order, adjacent ranges merge, and a
	// message is cut into at most a few dozen fragments.
	maxAckSpans13 = 32
	// ackDelayDiv: the ACK timer is the retransmission timeout over this
	// (RFC 9147 §7.1 asks for an ACK "when it has received a partial
	// flight" after a delay; BoringSSL waits a quarter of its timeout).
	ackDelayDiv = 4
)

// span is the byte range [off, end) of a message body.
type span struct{ off, end uint32 }

// sentRecord13 says what one handshake record we sent carried.
type sentRecord13 struct {
	rn       recordNumber
	entry    int // index in the flight
	off, end uint32
}

// transport13 is the ACK state of a DTLS 1.3 handshake transport.
type transport13 struct {
	sent  []sentRecord13
	acked [maxFlightEntries13][]span // per flight entry
	// allAcked: every byte of the current flight was ACKed, so it is not
	// retransmitted (the peer's next flight may still be missing).
	allAcked bool

	recv     []recordNumber // the peer's handshake records to ACK
	ackArmed bool
	ackAt    time.Time
	// seen is every handshake record of the peer's current flight we
	// processed (recv is those since our last ACK), for the ACK that
	// replaces the retransmission of our flight once an authenticated
	// part of the peer's next one arrived (flightACKDue).
	seen []recordNumber
}

// maxFlightEntries13 is the most messages of a DTLS 1.3 flight of ours:
// the server's ServerHello, EncryptedExtensions, CertificateRequest,
// Certificate, CertificateVerify and Finished. A post-handshake flight
// is held to it too (appendFlight drops its oldest: dropOldest13).
const maxFlightEntries13 = 6

// enable13 switches the transport to DTLS 1.3 ACK handling.
func (t *handshakeTransport) enable13() {
	if t.ack13 == nil {
		t.ack13 = new(transport13)
	}
}

// newFlight forgets the ACK state of a flight that was replaced.
func (a *transport13) newFlight() {
	a.sent = a.sent[:0]
	for i := range a.acked {
		a.acked[i] = a.acked[i][:0]
	}
	a.allAcked = false
}

// pendingSpans returns the parts of entry i's body of length n that no
// ACK covered, appended to dst: all of it in DTLS 1.2.
func (t *handshakeTransport) pendingSpans(dst []span, i int, n uint32) []span {
	if t.ack13 == nil || i >= maxFlightEntries13 || len(t.ack13.acked[i]) == 0 {
		return append(dst, span{0, n})
	}
	off := uint32(0)
	for _, s := range t.ack13.acked[i] { // sorted, disjoint
		if s.off > off {
			dst = append(dst, span{off, s.off})
		}
		off = max(off, s.end)
	}
	if off < n {
		dst = append(dst, span{off, n})
	}
	if n == 0 && len(dst) == 0 {
		return dst
	}
	return dst
}

// startPostHandshakeFlight starts a flight for a post-handshake message
// (a KeyUpdate, tickets, a CertificateRequest, CID messages). The last
// flight of the handshake is dropped: the peer's post-handshake messages
// implicitly acknowledge it. A post-handshake flight of ours that the
// peer has not wholly ACKed is not: its unacknowledged messages are
// carried into the new flight, with what was ACKed of them, so that a
// ticket or a CertificateRequest is not lost to a KeyUpdate sent before
// its ACK came (as NSS keeps every post-handshake message queued until
// ACKed), and a KeyUpdate counts as ACKed only with every earlier
// message (erratum 8047).
func (t *handshakeTransport) startPostHandshakeFlight() {
	var keep []flightEntry
	if t.postHandshake && t.ack13 != nil && !t.ack13.allAcked && len(t.flight) > 0 {
		keep = t.carryUnacked13()
	} else if t.ack13 != nil {
		t.ack13.newFlight()
	}
	t.flight = keep // a new slice: the caller may hold datagrams that alias the old one
	t.postHandshake = true
	// peerMoved starts true: the peer's next post-handshake message (its
	// own KeyUpdate, a ticket) is no answer to this flight, which only an
	// ACK completes, so it must neither give an RTT sample (peerAdvanced
	// would time it from our flight, perhaps minutes old) nor make us
	// resend as a repeated flight of the peer would.
	t.sent, t.peerMoved, t.final, t.timerArmed = false, true, false, false
	t.sendCount = 0
}

// carryUnacked13 returns, in a new slice, the entries of the current
// flight the peer has not wholly ACKed, and moves their ACK state (spans
// and the records that carried them) to their new indices.
func (t *handshakeTransport) carryUnacked13() []flightEntry {
	a := t.ack13
	keep := make([]flightEntry, 0, maxFlightEntries13)
	var idx [maxFlightEntries13]int // old index -> new, -1 dropped
	var acked [maxFlightEntries13][]span
	for i, e := range t.flight {
		if i >= maxFlightEntries13 {
			break
		}
		idx[i] = -1
		if e.ccs || t.entryAcked13(i, e) {
			continue
		}
		idx[i] = len(keep)
		acked[len(keep)] = a.acked[i]
		keep = append(keep, e)
	}
	a.acked = acked
	sent := a.sent[:0]
	for _, r := range a.sent {
		if r.entry >= 0 && r.entry < min(len(t.flight), maxFlightEntries13) && idx[r.entry] >= 0 {
			r.entry = idx[r.entry]
			sent = append(sent, r)
		}
	}
	a.sent = sent
	a.allAcked = false
	return keep
}

// entryAcked13 reports whether every byte of flight entry i was ACKed.
func (t *handshakeTransport) entryAcked13(i int, e flightEntry) bool {
	sp := t.ack13.acked[i]
	if len(e.transcript)-handshakeHeaderLen == 0 {
		return len(sp) != 0
	}
	return len(sp) == 1 && sp[0].off == 0 && sp[0].end >= uint32(len(e.transcript)-handshakeHeaderLen)
}

// dropOldest13 makes room in a post-handshake flight that holds
// maxFlightEntries13 messages (carried ones among them) by dropping its
// oldest, the one that has waited longest for its ACK: past the bound a
// message could never count as ACKed.
func (t *handshakeTransport) dropOldest13() {
	a := t.ack13
	t.flight = append(t.flight[:0:0], t.flight[1:]...)
	copy(a.acked[:], a.acked[1:])
	a.acked[maxFlightEntries13-1] = nil
	sent := a.sent[:0]
	for _, r := range a.sent {
		if r.entry > 0 {
			r.entry--
			sent = append(sent, r)
		}
	}
	a.sent = sent
}

// noteSent records that the handshake record rn carried bytes [off, end)
// of flight entry i.
func (t *handshakeTransport) noteSent13(rn recordNumber, i int, off, end uint32) {
	a := t.ack13
	if a == nil {
		return
	}
	if len(a.sent) == maxSentRecords13 {
		copy(a.sent, a.sent[1:])
		a.sent = a.sent[:len(a.sent)-1]
	}
	a.sent = append(a.sent, sentRecord13{rn: rn, entry: i, off: off, end: end})
}

// handleACK marks the records an ACK names as received. It reports
// whether the whole flight is now acknowledged, and then stops the
// retransmission timer (RFC 9147 §7.1: a sender "MUST NOT retransmit"
// ACKed records, and once all are ACKed the flight is done), and whether
// the ACK covered bytes no earlier one did (progress). Record numbers we
// never sent, or forgot, are ignored.
func (t *handshakeTransport) handleACK(rns []recordNumber) (all, progress bool) {
	a := t.ack13
	if a == nil || len(t.flight) == 0 {
		return false, false
	}
	for _, rn := range rns {
		for j := range a.sent {
			if a.sent[j].rn == rn {
				s := a.sent[j]
				progress = a.addSpan(s.entry, span{s.off, s.end}) || progress
			}
		}
	}
	for i, e := range t.flight {
		if e.ccs {
			continue
		}
		if i >= maxFlightEntries13 || !t.entryAcked13(i, e) {
			return false, progress
		}
	}
	a.allAcked = true
	t.timerArmed = false
	return true, progress
}

// addSpan merges s into entry i's sorted list of acknowledged spans. It
// reports whether s covered bytes the list did not.
func (a *transport13) addSpan(i int, s span) bool {
	if i < 0 || i >= maxFlightEntries13 {
		return false
	}
	list := a.acked[i]
	for _, x := range list {
		if x.off <= s.off && s.end <= x.end {
			return false // already acknowledged
		}
	}
	out := make([]span, 0, len(list)+1) // built while list is read
	placed := false
	for _, x := range list {
		switch {
		case x.end < s.off:
			out = append(out, x)
		case s.end < x.off:
			if !placed {
				out = append(out, s)
				placed = true
			}
			out = append(out, x)
		default: // overlapping or adjacent: merge into s
			s = span{min(s.off, x.off), max(s.end, x.end)}
		}
	}
	if !placed {
		out = append(out, s)
	}
	if len(out) > maxAckSpans13 {
		return false // too fragmented to track: the bytes are sent again
	}
	a.acked[i] = out
	return true
}

// noteReceived13 records a handshake record of the peer to ACK and arms
// the ACK timer.
func (t *handshakeTransport) noteReceived13(rn recordNumber, now time.Time) {
	a := t.ack13
	if a == nil {
		return
	}
	for _, r := range a.recv {
		if r == rn {
			return
		}
	}
	if len(a.recv) < maxACKRecordNumbers {
		a.recv = append(a.recv, rn)
	}
	if len(a.seen) < maxACKRecordNumbers && !slices.Contains(a.seen, rn) {
		a.seen = append(a.seen, rn)
	}
	if !a.ackArmed {
		a.ackArmed = true
		a.ackAt = now.Add(max(t.rto/ackDelayDiv, time.Millisecond))
	}
}

// takeACK returns the record numbers to ACK and clears them and the ACK
// timer; the slice is valid until the next noteReceived13.
func (t *handshakeTransport) takeACK() []recordNumber {
	a := t.ack13
	if a == nil {
		return nil
	}
	rns := a.recv
	a.recv = a.recv[:0]
	a.ackArmed = false
	return rns
}

// implicitACK clears the records to ACK: our next flight acknowledges
// the peer's (RFC 9147 §7.1).
func (t *handshakeTransport) implicitACK() {
	if a := t.ack13; a != nil {
		a.recv = a.recv[:0]
		a.seen = a.seen[:0]
		a.ackArmed = false
	}
}

// flightACKDue reports whether, when our retransmission timer fires
// during the handshake, an ACK should go out instead of our flight: an
// authenticated record (epoch 2 or later) of the peer's next flight
// arrived, so the peer has all of ours (it builds its flight only once
// ours is complete: the flight is implicitly acknowledged, RFC 9147 §7),
// and resending it would only tell the peer what an ACK of what we have
// of its flight tells better: which of its records to resend (§7.1, §7.2).
// An epoch-0 record does not count: anyone who knows the addresses can
// forge one, and must not stop our retransmissions.
func (t *handshakeTransport) flightACKDue() bool {
	a := t.ack13
	if a == nil || !t.peerMoved {
		return false
	}
	for _, rn := range a.seen {
		if rn.epoch >= 2 {
			return true
		}
	}
	return false
}

// takeFlightACK returns every record of the peer's current flight we
// processed, for the ACK that flightACKDue asks for, and clears the ACK
// timer, whose ACK this one includes.
func (t *handshakeTransport) takeFlightACK() []recordNumber {
	a := t.ack13
	a.recv = a.recv[:0]
	a.ackArmed = false
	return a.seen
}

// partialACKResend reports whether an ACK that left the current flight
// partly unacknowledged should make us resend the rest now (RFC 9147
// §7.2 asks for that): when it acknowledged something new (progress;
// bounded by the flight's records), or the last transmission was at
// least minResendInterval ago (the peer's timer fired while it still
// misses part of our flight: flightACKDue). It counts the resend as a
// transmission.
func (t *handshakeTransport) partialACKResend(progress bool, now time.Time) bool {
	if t.ack13 == nil || len(t.flight) == 0 || !t.sent || t.final || t.ack13.allAcked {
		return false
	}
	if !progress && now.Sub(t.lastSent) < minResendInterval {
		return false
	}
	t.lastSent = now
	return true
}

// ackDue reports whether the ACK timer has expired at now.
func (t *handshakeTransport) ackDue(now time.Time) bool {
	a := t.ack13
	return a != nil && a.ackArmed && !now.Before(a.ackAt)
}

// postHandshakeBusy reports whether a flight of ours still waits for the
// peer: a DTLS 1.3 client's final flight until the server ACKs it, a
// NewSessionTicket or KeyUpdate until ACKed. A KeyUpdate of ours waits
// for it (RFC 9147 §8 with erratum 8047: the new keys only once the
// KeyUpdate and every message before it are ACKed, which holds when the
// KeyUpdate starts a flight of its own after the last one was ACKed).
func (t *handshakeTransport) postHandshakeBusy() bool {
	return len(t.flight) > 0 && !t.final && (t.ack13 == nil || !t.ack13.allAcked)
}

// flightACKed resets the retransmission timeout when an ACK completed
// our flight: from the estimate of the handshake's round trips rather
// than the value the timer doubled, so that a post-handshake flight
// (KeyUpdate, NewSessionTicket) after a lossy stretch starts from the
// path's RTT. A post-handshake ACK gives no RTT sample: the peer may
// take it late (an application that reads rarely), which would inflate
// the estimate for good.
func (t *handshakeTransport) flightACKed() {
	t.rto = t.rtoEstimate()
}

// extendPostHandshakeFlight reopens our post-handshake flight that still
// waits for its ACK (a NewSessionTicket) so that a KeyUpdate joins it,
// and reports whether it did. RFC 9147 §8 with erratum 8047 lets the
// KeyUpdate go before the ticket is ACKed, as long as the keys change
// only once both are, which the flight's ACK state then says. A flight
// of the handshake (the client's Finished, epoch 2) or one that holds a
// KeyUpdate already is not reopened: the KeyUpdate waits for its ACK.
func (t *handshakeTransport) extendPostHandshakeFlight() bool {
	if t.ack13 == nil || len(t.flight) == 0 || len(t.flight) >= maxFlightEntries13 || t.final {
		return false
	}
	for _, e := range t.flight {
		if e.ccs || e.epoch < 3 || e.typ == typeKeyUpdate {
			return false
		}
	}
	t.sent, t.timerArmed, t.sendCount = false, false, 0
	t.ack13.allAcked = false
	return true
}
