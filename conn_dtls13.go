package dtls

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// The DTLS 1.3 parts of a Conn's record handling (RFC 9147 §4, §7): the
// unified-header receive path beside the 1.2 one (one record layer, one
// epoch table: recordLayer.open13), ACKs sent and received, and the
// handshake records that arrive after the handshake.

// readRecord13 processes the first record of c.pending, a DTLSCiphertext
// (its first byte is 001xxxxx). Before DTLS 1.3 is negotiated such a
// record cannot be opened: a client that offered 1.3 keeps a few (the
// server's encrypted flight overtaking its ServerHello), anything else
// drops the rest of the datagram, whose record boundaries it cannot know.
func (c *Conn) readRecord13() ([]byte, error) {
	if c.vers != VersionDTLS13 {
		if c.vers == 0 && c.offered13 && !c.handshakeComplete.Load() && len(c.future) < maxFutureRecords {
			c.future = append(c.future, slices.Clone(c.pending))
		} else {
			c.drop(dropBadHeader, recordHeader{})
		}
		c.pending = nil
		return nil, nil
	}
	rec := c.pending
	hdr, data, rest, state, reason := c.rl.open13(c.pending)
	c.pending = rest
	if reason == dropUnknownEpoch && c.skipEarlyRecord(hdr, len(rec)-len(rest)) {
		return nil, nil // 0-RTT data we rejected (early_data_dtls13.go)
	}
	if reason == dropUnknownEpoch && !c.handshakeComplete.Load() && len(c.future) < maxFutureRecords {
		// An epoch whose keys we do not have yet (the server's
		// handshake records ahead of its ServerHello, the client's
		// application data ahead of its Finished): kept until they are
		// installed (installReadEpoch13 replays them).
		c.future = append(c.future, slices.Clone(rec[:len(rec)-len(rest)]))
		return nil, nil
	}
	if reason != dropNone {
		if state == usageExhausted {
			// RFC 9147 §4.5.3: past the integrity limit of the key the
			// connection must end; the one case a bad record is not
			// silent.
			return nil, c.fail(alertBadRecordMAC, errors.New("dtls: too many records failed authentication (AEAD integrity limit)"))
		}
		c.drop(reason, hdr)
		return nil, nil
	}
	return c.handleOpened(hdr, data)
}

// installReadEpoch13 starts reading an epoch and replays the records of
// it that arrived early.
func (c *Conn) installReadEpoch13(keys *epochKeys13) error {
	if err := c.rl.installReadEpoch13(keys); err != nil {
		return c.fail(alertInternalError, err)
	}
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceEpochChanged, Epoch: keys.epoch, Reason: "read"})
	}
	future := c.future
	c.future = nil
	saved := c.pending
	for _, d := range future {
		c.pending = d
		for len(c.pending) > 0 {
			var err error
			if classifyRecord(c.pending[0]) == classCiphertext13 {
				_, err = c.readRecord13()
			} else {
				_, err = c.readRecord(nil, false)
			}
			if err != nil {
				c.pending = saved
				return err
			}
		}
	}
	c.pending = saved
	return nil
}

// installWriteEpoch13 makes keys the current write epoch.
func (c *Conn) installWriteEpoch13(keys *epochKeys13) {
	c.rl.installWriteEpoch13(keys)
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceEpochChanged, Epoch: keys.epoch, Reason: "write"})
	}
}

// handleHandshakeRecord13 hands a DTLS 1.3 handshake record to the
// transport and notes it for the next ACK (RFC 9147 §7: records "processed
// or buffered"; records whose every fragment was refused are not).
func (c *Conn) handleHandshakeRecord13(hdr recordHeader, data []byte) error {
	now := time.Now()
	resend, dropped, why := c.hs.handleRecord(hdr.epoch, data, now)
	if dropped > 0 {
		c.drops[dropBadHandshake].Add(uint64(dropped))
		if c.config.Tracer != nil {
			c.trace(&TraceEvent{Kind: TraceRecordDropped, Epoch: hdr.epoch, Seq: hdr.seq, ContentType: uint8(hdr.typ), Reason: why})
		}
	}
	if hdr.epoch != 0 || c.vers == VersionDTLS13 {
		c.hs.noteReceived13(recordNumber{hdr.epoch, hdr.seq}, now)
	}
	if resend {
		return c.sendFlight(true, "peer repeated")
	}
	return nil
}

// handlePostHandshake13 takes a handshake record after a DTLS 1.3
// handshake. A retransmission of the peer's last flight (its Finished
// went unacknowledged: our ACK, or our flight, was lost) is answered with
// an ACK by the server, which keeps the client's epoch-2 keys for it
// (RFC 9147 §5.8.3, §7), and with our final flight by the client.
// NewSessionTicket is stored for resumption and acknowledged. KeyUpdate is handleKeyUpdate. NewConnectionId and
// RequestConnectionId are not implemented: they end the connection with
// unexpected_message.
func (c *Conn) handlePostHandshake13(hdr recordHeader, data []byte) error {
	now := time.Now()
	if hdr.epoch < 3 {
		if _, _, _, ok := parseFragment(data); !ok {
			c.drop(dropBadHandshake, hdr)
			return nil
		}
		if !c.isClient {
			c.hs.noteReceived13(recordNumber{hdr.epoch, hdr.seq}, now)
			if now.Sub(c.lastACK) >= minResendInterval {
				c.lastACK = now
				return c.sendACK()
			}
			return nil
		}
		return c.handleHandshakeRecord13(hdr, data)
	}
	typ, _, _, ok := parseFragment(data)
	if !ok {
		c.drop(dropBadHandshake, hdr)
		return nil
	}
	switch typ {
	case typeKeyUpdate:
		return c.handleKeyUpdate(hdr, data)
	case typeNewSessionTicket:
		if !c.isClient {
			return c.fail(alertUnexpectedMessage, errors.New("dtls: NewSessionTicket from a client"))
		}
		// Reassembled, stored in the ClientSessionCache
		// (resume_dtls13.go) and ACKed at once so that the server
		// stops sending it.
		if err := c.handleHandshakeRecord13(hdr, data); err != nil {
			return err
		}
		for {
			m, ok := c.hs.nextMessage()
			if !ok {
				break
			}
			if m.typ != typeNewSessionTicket {
				return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: unexpected %v after the handshake", m.typ))
			}
			if err := c.handleNewSessionTicket13(m); err != nil {
				return err
			}
		}
		return c.sendACK()
	}
	return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: %v after the DTLS 1.3 handshake is not supported", typ))
}

// parseFragment reads the type, message_seq and whole-message length of
// the first handshake fragment in data.
func parseFragment(data []byte) (typ handshakeType, seq uint16, length uint32, ok bool) {
	var h handshakeHeader
	if !h.unmarshal(data) {
		return 0, 0, 0, false
	}
	return h.typ, h.messageSeq, h.length, true
}

// handleACK takes an ACK record (RFC 9147 §7). An ACK in epoch 0 is
// dropped: it is unauthenticated, and acting on it would let anyone who
// knows the addresses stop our retransmissions (an off-path attacker must
// not be able to stall a handshake). Our epoch-0 flights (ClientHello,
// HelloRetryRequest, ServerHello) are acknowledged by the peer's next
// flight anyway. A malformed protected ACK is a decode_error.
func (c *Conn) handleACK(hdr recordHeader, data []byte) error {
	if c.vers != VersionDTLS13 || hdr.epoch == 0 {
		c.drop(dropBadContentType, hdr)
		return nil
	}
	var buf [16]recordNumber
	rns, ok := parseACK(data, buf[:0])
	if !ok {
		return c.fail(alertDecodeError, errors.New("dtls: malformed ACK"))
	}
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceACKReceived, Epoch: hdr.epoch, Seq: hdr.seq, Length: len(rns), Records: traceRecordNumbers(rns)})
	}
	if c.hs.handleACK(rns) && c.handshakeComplete.Load() {
		c.hs.finalFlight() // our last flight is acknowledged: nothing to resend
		if c.keyUpdatePending {
			return c.updateWriteKeys()
		}
	}
	return nil
}

// handleKeyUpdate takes the peer's KeyUpdate (RFC 8446 §4.6.3, RFC 9147
// §8): from the next epoch on, its records use the next traffic secret;
// the old epoch's keys stay for records still in flight. The KeyUpdate is
// ACKed; if it asks for one, we send our own, and switch our write keys
// only once that is ACKed (§8, erratum 8047).
func (c *Conn) handleKeyUpdate(hdr recordHeader, data []byte) error {
	if err := c.handleHandshakeRecord13(hdr, data); err != nil {
		return err
	}
	for {
		m, ok := c.hs.nextMessage()
		if !ok {
			break
		}
		ku := new(keyUpdateMsg13)
		if err := c.parseHandshakeMsg(m, typeKeyUpdate, ku.unmarshal); err != nil {
			return err
		}
		if !ku.valid() {
			return c.fail(alertIllegalParameter, errors.New("dtls: KeyUpdate with an invalid request_update"))
		}
		if m.epoch != c.rl.readCur {
			// A KeyUpdate in an older epoch than the one it moves
			// from (its own update already happened).
			return c.fail(alertUnexpectedMessage, errors.New("dtls: KeyUpdate not in the current epoch"))
		}
		s := &c.state
		next, err := nextTrafficSecret13(s.suite13.hash, labelPrefixDTLS13, s.peerSecret)
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		keys, err := newEpochKeys13(s.suite13, c.rl.readCur+1, next)
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		if err := c.installReadEpoch13(keys); err != nil {
			return err
		}
		s.peerSecret = next
		if ku.requestUpdate == keyUpdateRequested && !c.keyUpdatePending {
			// The ACK first: the peer's own update waits for it.
			if err := c.sendACK(); err != nil {
				return err
			}
			if err := c.sendKeyUpdate(); err != nil {
				return err
			}
		}
	}
	if a := c.hs.ack13; a != nil && len(a.recv) == 0 {
		return nil // ACKed above, before our own KeyUpdate
	}
	return c.sendACK()
}

// sendKeyUpdate sends KeyUpdate(update_not_requested) in our current
// epoch, retransmitted until ACKed.
func (c *Conn) sendKeyUpdate() error {
	c.hs.startPostHandshakeFlight()
	body, _ := (&keyUpdateMsg13{requestUpdate: keyUpdateNotRequested}).marshal()
	if c.hs.queueMessage(c.rl.writeCur, typeKeyUpdate, body) == nil {
		return c.fail(alertInternalError, errors.New("dtls: KeyUpdate not queued"))
	}
	c.keyUpdatePending = true
	return c.sendFlight(false, "KeyUpdate")
}

// updateWriteKeys moves our write side to the next epoch once our
// KeyUpdate is ACKed.
func (c *Conn) updateWriteKeys() error {
	s := &c.state
	next, err := nextTrafficSecret13(s.suite13.hash, labelPrefixDTLS13, s.ourSecret)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	c.out.Lock()
	keys, err := newEpochKeys13(s.suite13, c.rl.writeCur+1, next)
	if err == nil {
		c.rl.installWriteEpoch13(keys)
	}
	c.out.Unlock()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	s.ourSecret = next
	c.keyUpdatePending = false
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceEpochChanged, Epoch: keys.epoch, Reason: "write"})
	}
	return nil
}

// sendACK sends an ACK for the peer's handshake records noted since the
// last one, in the current write epoch (RFC 9147 §7 with erratum 8107:
// never epoch 1; epoch 0 before we have keys).
func (c *Conn) sendACK() error {
	rns := c.hs.takeACK()
	if len(rns) > maxACKRecordNumbers {
		rns = rns[len(rns)-maxACKRecordNumbers:]
	}
	c.out.Lock()
	defer c.out.Unlock()
	var body [2 + 16*recordNumberLen]byte
	payload, err := appendACK(body[:0], rns)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	epoch := c.rl.writeCur
	if epoch == 1 {
		epoch = 0
	}
	buf, err := c.rl.seal(c.outBuffer(recordHeaderLen+len(payload)+c.rl.expansion(epoch)), epoch, recordTypeACK, payload)
	if err != nil {
		return err
	}
	if c.config.Tracer != nil {
		c.traceRecordSent(buf, len(payload))
		c.trace(&TraceEvent{Kind: TraceACKSent, Epoch: epoch, Length: len(rns), Records: traceRecordNumbers(rns)})
		c.trace(&TraceEvent{Kind: TraceDatagramSent, Length: len(buf), Datagram: buf})
	}
	return c.io.writeDatagram(buf)
}

// traceRecordNumbers copies record numbers for a TraceEvent.
func traceRecordNumbers(rns []recordNumber) []TraceRecordNumber {
	out := make([]TraceRecordNumber, len(rns))
	for i, rn := range rns {
		out[i] = TraceRecordNumber{Epoch: rn.epoch, Seq: rn.seq}
	}
	return out
}

// ackTimer sends the ACK that the ACK timer asked for, if it expired.
func (c *Conn) ackTimer(now time.Time) error {
	if !c.hs.ackDue(now) {
		return nil
	}
	return c.sendACK()
}
