package dtls

import "time"

// This file is the DTLS 1.2 handshake transport (RFC 6347 §4.2.2-§4.2.4):
// it fragments our flights to the MTU, retransmits them whole, and keeps
// the retransmission deadline. The peer's messages are reassembled and
// reordered by the reassembler it embeds (reassembly.go), and round trips
// are estimated by rttStats (rtt.go); both are shared with DTLS 1.3, whose
// ACK-driven transport goes beside this one. It is sans-I/O: no
// goroutines, no timers, no sockets. Every call that depends on time takes
// now, so tests drive it with a virtual clock.
//
// The caller (the handshake state machine and the record layer) seals and
// sends what appendFlightDatagrams returns, opens records and hands handshake
// payloads to handleRecord, and reads complete messages with nextMessage.

// Timer design (RFC 6347 §4.2.4, §4.2.4.1; RFC 9147 §5.8.2). The timer of
// a flight starts at the transport's initial timeout and doubles on every
// expiry up to maxRetransmitTimeout; after maxRetransmissions the caller
// gives up. The initial timeout is Config.RetransmitTimeout if set, else
// 1.5 times a known round-trip time (setInitialRTT: the cookie round trip
// on a server, a cached session's on a client), else 1 s (400 ms for
// DTLS-SRTP). When a flight is answered without having been
// retransmitted, the time from sending it to the first fragment of the
// answer is a round-trip sample (Karn's rule: a retransmitted flight's
// answer is ambiguous) for rttStats, and the next flights start at RFC
// 6298's RTO = SRTT + 4·RTTVAR, never below the floor
// (Config.RetransmitTimeout, or minRetransmitTimeout). The sample includes
// the peer's computation, which makes this more cautious than RFC 9147's
// "MAY be adjusted to 1.5 times the measured round trip time". After a
// flight that needed retransmissions the backed-off value is kept for the
// next flight (RFC 6347 §4.2.4.1), but at most maxRetainedRTO (or the
// estimate, if larger). LOSS.md has the measurements.
const (
	// minResendInterval rate-limits the resends that a retransmission of
	// the peer's previous flight triggers (RFC 6347 §4.2.4, "read
	// retransmit"): a retransmitted flight arrives as a burst and should
	// cause one resend, not one per datagram. It is half the smallest
	// timer we start (minRetransmitTimeout), so it does not suppress the
	// answer to a genuine retransmission. It also bounds the amplification
	// from forged epoch-0 fragments with an old message_seq to twenty
	// flights a second, to our peer, while the handshake lasts.
	minResendInterval = minRetransmitTimeout / 2

	// maxRetainedRTO caps the backed-off timer a flight inherits from a
	// previous one that needed retransmissions. The peer has answered,
	// so the path is not dead, and RFC 6347 §4.2.4.1 starts a path it
	// knows nothing about at 1 s: inheriting more only stalls the
	// handshake (at 30% loss a flight lost seven times in a row carried a
	// 12.8-60 s timer into the next two flights). Within a flight the
	// timer still doubles to 60 s.
	maxRetainedRTO = time.Second

	// maxMTU is the largest MTU the transport fragments to: the largest
	// UDP payload over IPv4, which is also the most we read. Larger values
	// are clamped.
	maxMTU = maxDatagramSize

	// maxFragmentLen is the most handshake message bytes we put in one
	// record: the record plaintext limit (2^14, RFC 6347 §4.1) less the
	// handshake header.
	maxFragmentLen = maxPlaintext - handshakeHeaderLen

	// maxOutgoingMessageLen is the longest body the 24-bit length field
	// of the handshake header can describe.
	maxOutgoingMessageLen = 1<<24 - 1
)

// outRecord is one record the caller must seal and send.
type outRecord struct {
	epoch uint64
	typ   recordType // recordTypeHandshake or recordTypeChangeCipherSpec
	data  []byte     // plaintext payload: handshake header (12 bytes) + fragment, or {1} for ChangeCipherSpec
	// entry is the flight entry the fragment belongs to and off its
	// offset in the body, for DTLS 1.3 ACKs (transport_dtls13.go).
	entry int
	off   uint32
}

// flightEntry is one message, or a ChangeCipherSpec, of our current flight.
type flightEntry struct {
	epoch      uint64
	ccs        bool
	typ        handshakeType
	seq        uint16
	transcript []byte // header with offset 0 + body; the body is transcript[handshakeHeaderLen:]
}

// handshakeTransport is the sans-I/O DTLS 1.2 handshake transport. It is
// not safe for concurrent use.
type handshakeTransport struct {
	mtu        int
	initialRTO time.Duration // timer of a flight before any RTT is known
	minRTO     time.Duration // floor of a timer derived from the RTT
	rto        time.Duration // current retransmission timeout

	// Outgoing: the current flight and the RFC 6347 §4.2.4 state machine.
	sendSeq   uint16
	flight    []flightEntry
	sent      bool // flightSent was called for the current flight (SENDING/WAITING done)
	sendCount int  // flightSent calls for the current flight; >1 means it was retransmitted
	peerMoved bool // a fragment of the peer's next flight arrived after we sent
	final     bool // the current flight ends the handshake (FINISHED state): no timer
	// postHandshake: the current flight is post-handshake messages (DTLS
	// 1.3), started by startPostHandshakeFlight.
	postHandshake bool
	timerArmed    bool
	timerAt       time.Time
	lastSent      time.Time // last (re)transmission, for minResendInterval
	firstSent     time.Time // first transmission of the current flight, for RTT samples

	// Round-trip estimate, from flights answered without retransmission
	// and from setInitialRTT.
	rtt rttStats

	// Incoming: the peer's messages, reassembled and in order
	// (reassembly.go).
	reassembler

	// ack13 is the DTLS 1.3 ACK state (transport_dtls13.go); nil in 1.2.
	ack13 *transport13
}

// newHandshakeTransport returns a transport that fragments to mtu bytes of
// UDP payload (clamped to [minMTU, maxMTU]; 0 means defaultMTU). Its timer
// starts at initialRTO (0 means defaultRetransmitTimeout) and a timer
// derived from a measured RTT never goes below minRTO (0 means
// minRetransmitTimeout, or initialRTO if that is lower); both are capped at
// maxRetransmitTimeout.
func newHandshakeTransport(mtu int, initialRTO, minRTO time.Duration) *handshakeTransport {
	mtu = clampMTU(mtu)
	if initialRTO <= 0 {
		initialRTO = defaultRetransmitTimeout
	}
	initialRTO = min(initialRTO, maxRetransmitTimeout)
	if minRTO <= 0 {
		minRTO = min(minRetransmitTimeout, initialRTO)
	}
	minRTO = min(minRTO, maxRetransmitTimeout)
	return &handshakeTransport{mtu: mtu, initialRTO: initialRTO, minRTO: minRTO, rto: initialRTO}
}

// setInitialRTT gives the transport a round-trip time learned outside it
// (the cookie exchange, a previous connection to the same server). Before
// the first flight is sent, the timer becomes 1.5 times rtt (RFC 9147
// §5.8.2), within [minRTO, maxRetransmitTimeout]; the estimate starts from
// it. A value ≤ 0, or one given after the transport measured an RTT
// itself, is ignored.
func (t *handshakeTransport) setInitialRTT(rtt time.Duration) {
	if rtt <= 0 || t.rtt.hasMeasurement() {
		return
	}
	t.rtt.update(rtt)
	if t.sendCount == 0 {
		t.rto = min(max(rtt*rttTimerFactorNum/rttTimerFactorDen, t.minRTO), maxRetransmitTimeout)
	}
}

// startAt sets the next message_seq to send and to expect (a server that
// answered a cookie-less ClientHello statelessly starts at 1,1 after the
// ClientHello with seq 1 is handed in through handleRecord or injected).
// Buffered peer messages that fall outside the new reorder window are
// discarded.
func (t *handshakeTransport) startAt(sendSeq, recvSeq uint16) {
	t.sendSeq = sendSeq
	t.expectAt(recvSeq)
}

// prepare moves to PREPARING (RFC 6347 §4.2.4) when the current flight was
// sent and the peer's next flight started arriving: the old flight is
// implicitly acknowledged and is discarded.
func (t *handshakeTransport) prepare() {
	if !t.sent || !t.peerMoved {
		return
	}
	t.flight = nil // not reused: the caller may still hold datagrams that alias it
	t.sent, t.peerMoved, t.final, t.timerArmed = false, false, false, false
	t.sendCount = 0
	if t.ack13 != nil {
		t.ack13.newFlight()
	}
}

// queueMessage appends a handshake message to the flight being built and
// returns its transcript bytes (header with offset 0 + body), which must
// not be modified. The first queue call after the current flight was sent
// and the peer's next flight started arriving begins a new flight,
// discarding the old one (RFC 6347 §4.2.4, PREPARING). A body too long for
// the 24-bit length field is refused: nothing is queued and nil returned.
func (t *handshakeTransport) queueMessage(epoch uint64, typ handshakeType, body []byte) (transcript []byte) {
	if len(body) > maxOutgoingMessageLen {
		return nil
	}
	t.prepare()
	h := handshakeHeader{
		typ:            typ,
		length:         uint32(len(body)),
		messageSeq:     t.sendSeq,
		fragmentLength: uint32(len(body)),
	}
	tr := make([]byte, 0, handshakeHeaderLen+len(body))
	tr = h.appendTo(tr)
	tr = append(tr, body...)
	t.appendFlight(flightEntry{epoch: epoch, typ: typ, seq: t.sendSeq, transcript: tr})
	t.sendSeq++
	return tr
}

// queueChangeCipherSpec appends a ChangeCipherSpec to the flight being
// built, with the same new-flight rule as queueMessage. It does not use a
// message_seq.
func (t *handshakeTransport) queueChangeCipherSpec(epoch uint64) {
	t.prepare()
	t.appendFlight(flightEntry{epoch: epoch, ccs: true})
}

// maxFlightEntries is the most entries a flight of ours has: the client's
// Certificate, ClientKeyExchange, CertificateVerify, ChangeCipherSpec and
// Finished, or the server's ServerHello, Certificate, ServerKeyExchange,
// CertificateRequest and ServerHelloDone.
const maxFlightEntries = 5

// appendFlight adds e to the flight being built. A new flight starts with
// room for maxFlightEntries, so that it does not grow append by append.
func (t *handshakeTransport) appendFlight(e flightEntry) {
	if t.flight == nil {
		t.flight = make([]flightEntry, 0, maxFlightEntries)
	}
	if t.postHandshake && t.ack13 != nil && len(t.flight) == maxFlightEntries13 {
		t.dropOldest13()
	}
	t.flight = append(t.flight, e)
}

// flightDatagrams packs the current flight into datagrams of at most mtu
// bytes of UDP payload. Each record costs recordHeaderLen +
// overhead(epoch) + len(data). Messages are fragmented to fit (RFC 6347
// §4.2.3), one fragment per record; several records share a datagram when
// they fit; a ChangeCipherSpec is its own 1-byte record. A message that
// does not fit in what is left of a datagram but fits whole in an empty
// one starts a new datagram, so small messages are never split.
// The result depends only on the flight, the MTU and overhead, so calling
// it again to retransmit yields the same fragmentation. The returned
// slices may alias internal storage valid until the next queue call.
//
// overhead may be nil (no expansion); negative values count as 0 and values
// above maxCiphertextExpansion as that. If the MTU cannot hold one byte of
// fragment after the overheads (impossible for mtu ≥ minMTU and a real
// cipher suite), records carry one byte each and exceed the MTU rather than
// loop.
func (t *handshakeTransport) flightDatagrams(overhead func(epoch uint64) int) [][]outRecord {
	return t.appendFlightDatagrams(nil, overhead)
}

// appendFlightDatagrams is flightDatagrams appending to dgs, so that a
// caller that only ranges over the datagrams can keep the list on the
// stack.
func (t *handshakeTransport) appendFlightDatagrams(dgs [][]outRecord, overhead func(epoch uint64) int) [][]outRecord {
	// The records of all datagrams go in one slice, which is cut into
	// datagrams at the end: one allocation for the records (more only if
	// fragmentation adds records) instead of a growing slice per datagram.
	var (
		recs    = make([]outRecord, 0, len(t.flight))
		endsBuf [8]int
		ends    = endsBuf[:0] // ends[i]: end in recs of datagram i
		start   int           // start in recs of the datagram being filled
		used    int           // bytes of that datagram
	)
	flush := func() {
		if len(recs) > start {
			ends = append(ends, len(recs))
			start, used = len(recs), 0
		}
	}
	var spansBuf [4]span
	for ei, e := range t.flight {
		perRecord := recordHeaderLen + recordOverhead(overhead, e.epoch)
		if e.ccs {
			if used+perRecord+1 > t.mtu {
				flush()
			}
			recs = append(recs, outRecord{epoch: e.epoch, typ: recordTypeChangeCipherSpec, data: changeCipherSpecBody})
			used += perRecord + 1
			continue
		}
		perRecord += handshakeHeaderLen
		body := e.transcript[handshakeHeaderLen:]
		// The parts of the body still to send: all of it, but for what
		// DTLS 1.3 ACKs covered.
		for _, sp := range t.pendingSpans(spansBuf[:0], ei, uint32(len(body))) {
			end := int(sp.end)
			if len(recs) > start && used+perRecord+end-int(sp.off) > t.mtu && perRecord+end-int(sp.off) <= t.mtu {
				flush()
			}
			for off := int(sp.off); ; {
				room := min(t.mtu-used-perRecord, maxFragmentLen)
				if room < 1 && (room < 0 || off < end) {
					if len(recs) > start {
						flush()
						continue
					}
					room = 1 // an empty datagram cannot hold the overheads: still make progress
				}
				n := min(room, end-off)
				// A message that fits whole is sent as its transcript bytes,
				// whose header already says offset 0 and the full length.
				data := e.transcript
				if n < len(body) {
					h := handshakeHeader{
						typ:            e.typ,
						length:         uint32(len(body)),
						messageSeq:     e.seq,
						fragmentOffset: uint32(off),
						fragmentLength: uint32(n),
					}
					data = make([]byte, 0, handshakeHeaderLen+n)
					data = h.appendTo(data)
					data = append(data, body[off:off+n]...)
				}
				recs = append(recs, outRecord{epoch: e.epoch, typ: recordTypeHandshake, data: data, entry: ei, off: uint32(off)})
				used += perRecord + n
				off += n
				if off >= end {
					break
				}
			}
		}
	}
	flush()
	start = 0
	for _, end := range ends {
		dgs = append(dgs, recs[start:end:end]) // capped: appending to one cannot overwrite the next
		start = end
	}
	return dgs
}

// changeCipherSpecBody is the body of every ChangeCipherSpec record
// (RFC 5246 §7.1). It is shared: never modify it.
var changeCipherSpecBody = []byte{1}

func recordOverhead(overhead func(epoch uint64) int, epoch uint64) int {
	if overhead == nil {
		return 0
	}
	return min(max(overhead(epoch), 0), maxCiphertextExpansion)
}

// flightSent arms the retransmission timer: deadline = now + current RTO.
// Call it after every transmission of the flight, first or repeated. It
// arms nothing for a final flight or an empty flight.
func (t *handshakeTransport) flightSent(now time.Time) {
	if len(t.flight) == 0 {
		return
	}
	t.sent = true
	t.sendCount++
	t.lastSent = now
	if t.sendCount == 1 {
		t.firstSent = now
	}
	if t.final || t.ack13 != nil && t.ack13.allAcked {
		t.timerArmed = false
		return
	}
	// The timer runs even once part of the peer's next flight arrived:
	// until all of it did (and we build our next flight, or finish), the
	// rest may be lost, and resending ours makes the peer resend it
	// (RFC 6347 §4.2.4: a partial flight does not leave WAITING).
	t.timerArmed = true
	t.timerAt = now.Add(t.rto)
}

// deadline returns the retransmission deadline, ok=false when no timer is
// armed.
func (t *handshakeTransport) deadline() (time.Time, bool) {
	if a := t.ack13; a != nil && a.ackArmed && (!t.timerArmed || a.ackAt.Before(t.timerAt)) {
		return a.ackAt, true // the DTLS 1.3 ACK timer (transport_dtls13.go)
	}
	return t.timerAt, t.timerArmed
}

// timerFired reports whether the retransmission timer is armed and expired
// at now. If so it disarms the timer and doubles the RTO (capped at
// maxRetransmitTimeout, RFC 6347 §4.2.4.1): the caller resends
// flightDatagrams and calls flightSent again, unless retransmitLimitReached.
func (t *handshakeTransport) timerFired(now time.Time) bool {
	if !t.timerArmed || now.Before(t.timerAt) {
		return false
	}
	t.timerArmed = false
	t.rto = min(2*t.rto, maxRetransmitTimeout)
	return true
}

// retransmitLimitReached reports whether the current flight was already
// retransmitted maxRetransmissions times: when its timer fires again, the
// caller gives up instead of sending it once more.
func (t *handshakeTransport) retransmitLimitReached() bool {
	return t.sendCount > maxRetransmissions
}

// finalFlight marks the current flight as the last of the handshake: no
// timer, but it is kept and resent when the peer repeats its own last
// flight (RFC 6347 §4.2.4, the FINISHED state). It may be called before or
// after flightSent.
func (t *handshakeTransport) finalFlight() {
	t.final = true
	t.timerArmed = false
}

// handleRecord takes the plaintext payload of one handshake record (it may
// hold several fragments back to back) received in epoch.
//
// resend=true means the peer repeated an earlier flight (a fragment with
// message_seq below the next expected one arrived while we wait for its
// next flight, or after our final flight), so the caller should resend our
// current flight now and call flightSent. Resends are rate limited to one
// per minResendInterval since the last transmission.
//
// A valid fragment of a new message (message_seq at or above the next
// expected) shows the peer has moved on: no resends for its old messages
// from then on, and if our flight was answered without being
// retransmitted, it gives a round-trip sample and the RTO returns to the
// estimate (RFC 6347 §4.2.4.1). The timer keeps running until our next
// flight or the end of the handshake.
//
// Bad fragments are dropped silently: handleRecord returns how many were
// dropped and the reason for the last one, for the caller's counters. It
// never returns an error that would end the handshake, since epoch-0
// records can be forged by anyone who knows the addresses.
func (t *handshakeTransport) handleRecord(epoch uint64, payload []byte, now time.Time) (resend bool, dropped int, reason string) {
	old, moved, dropped, reason := t.addRecord(epoch, payload)
	if moved {
		t.peerAdvanced(now)
	}
	if old && t.sent && !t.peerMoved && now.Sub(t.lastSent) >= minResendInterval {
		// Count the resend as a transmission now, so that the rest of a
		// retransmitted burst does not trigger another one even if the
		// caller is late to call flightSent.
		t.lastSent = now
		resend = true
	}
	return resend, dropped, reason
}

// peerAdvanced records that a fragment of the peer's next flight arrived.
// The timer keeps running until that flight is complete (see flightSent);
// the RTO for our next flight is settled now: from a fresh round-trip
// sample if our flight went out once, else the backed-off value is kept.
func (t *handshakeTransport) peerAdvanced(now time.Time) {
	if !t.sent || t.peerMoved {
		return
	}
	t.peerMoved = true
	if t.sendCount <= 1 {
		t.rtt.update(now.Sub(t.firstSent))
		t.rto = t.rtoEstimate()
		return
	}
	t.rto = min(t.rto, max(maxRetainedRTO, t.rtoEstimate()))
}

// rtoEstimate is the timeout for a flight that follows a clean exchange:
// RFC 6298's SRTT + K·RTTVAR, at least minRTO, at most
// maxRetransmitTimeout; the initial timeout before any sample.
func (t *handshakeTransport) rtoEstimate() time.Duration {
	if d, ok := t.rtt.rto(t.minRTO); ok {
		return d
	}
	return t.initialRTO
}
