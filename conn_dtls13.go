package dtls

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync/atomic"
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
	if reason == dropUnknownEpoch && c.skipEarlyRecord(hdr) {
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
		switch state {
		case usageExhausted:
			// RFC 9147 §4.5.3: at the integrity limit of the key the
			// connection must end; the one case a bad record is not
			// silent.
			return nil, c.fail(alertBadRecordMAC, fmt.Errorf("%w: %d records of epoch %d failed authentication", ErrAEADIntegrityLimit, c.rl.readFailures13(hdr.epoch), hdr.epoch))
		case usageKeyUpdate:
			// Close to it: ask the peer for new keys (§4.5.3), once
			// per key.
			if c.rl.markUpdateAsked13(hdr.epoch) {
				c.ku.wanted.Or(kuWanted | kuRequestPeer)
				if err := c.serviceKeyUpdate(); err != nil {
					return nil, err
				}
			}
		}
		c.drop(reason, hdr)
		return nil, nil
	}
	if hdr.cid != nil {
		c.peerUsedCID13(hdr.cid)
	}
	c.noteAddrProven(hdr.epoch)
	if c.ku.oldRead {
		c.retireOldReadEpoch13(hdr.epoch)
	}
	data, err := c.handleOpened(hdr, data)
	if data != nil {
		c.ku.peerCount = 0
	}
	return data, err
}

// retireOldReadEpoch13 discards the read epoch before the peer's newest
// once a record of the newest decrypted (RFC 9147 §8: the old keys are
// kept for records still in flight until then) and one retransmission
// timeout more has passed: records the path reordered around the first
// new one (the peer's last ACK or data in the old epoch) still open. A
// third epoch replaces it earlier (maxReadEpochs13).
func (c *Conn) retireOldReadEpoch13(epoch uint64) {
	now := time.Now()
	if c.ku.retireAt.IsZero() {
		if epoch == c.rl.readCur {
			c.ku.retireAt = now.Add(c.hs.rtoEstimate())
		}
		return
	}
	if now.Before(c.ku.retireAt) {
		return
	}
	c.rl.discardRead13Before(c.rl.readCur)
	c.ku.oldRead = false
	c.ku.retireAt = time.Time{}
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceEpochChanged, Epoch: c.rl.readCur - 1, Reason: "read discarded"})
	}
}

// ErrAEADIntegrityLimit is the error of a DTLS 1.3 connection that ended
// because too many records failed authentication under one key: RFC 9147
// §4.5.3 has a receiver close the connection at the AEAD's integrity
// limit (2^36 records for AES-GCM and ChaCha20-Poly1305, 2^23.5 for
// AES-CCM, 2^7 for AES-CCM_8), since past it forgeries may succeed.
var ErrAEADIntegrityLimit = errors.New("dtls: AEAD integrity limit reached: too many records failed authentication")

// installReadEpoch13 starts reading an epoch and replays the records of
// it that arrived early.
func (c *Conn) installReadEpoch13(keys *epochKeys13) error {
	c.applyLimits13(keys)
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
	c.applyLimits13(keys)
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
// RequestConnectionId are handleCIDMessage13 (cid_dtls13.go).
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
	case typeRequestConnectionID:
		if !c.hs.final {
			// A flight of ours awaits its ACK: leave the request
			// unACKed and unprocessed; the peer retransmits it
			// (cid_dtls13.go).
			return nil
		}
		return c.handlePostHandshakeMessages13(hdr, data)
	case typeKeyUpdate, typeNewSessionTicket, typeCertificateRequest,
		typeCertificate, typeCertificateVerify, typeFinished, typeNewConnectionID:
		return c.handlePostHandshakeMessages13(hdr, data)
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
// flight anyway. A malformed protected ACK is a decode_error. Record
// numbers we never sent are ignored (transport13.handleACK): an ACK can
// only complete a flight of ours, so it cannot move our write keys for a
// KeyUpdate that is not out, or not wholly ACKed.
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
	all, progress := c.hs.handleACK(rns)
	if all && c.handshakeComplete.Load() {
		c.hs.flightACKed()
		c.hs.finalFlight() // our last flight is acknowledged: nothing to resend
		if c.ku.pending {
			// RFC 9147 §8 with erratum 8047: the KeyUpdate and every
			// message before it are ACKed (all: every message of its
			// flight, those carried from an unACKed earlier flight
			// included; startPostHandshakeFlight).
			if err := c.updateWriteKeys(); err != nil {
				return err
			}
		}
		// A KeyUpdate, CertificateRequest or answer to one, or a CID
		// update, that waited for this flight's ACK goes now.
		if err := c.serviceKeyUpdate(); err != nil {
			return err
		}
		if err := c.serviceCertRequests(); err != nil {
			return err
		}
		return c.serviceCIDUpdates13()
	}
	if !all && !c.handshakeComplete.Load() && c.hs.partialACKResend(progress, time.Now()) {
		// RFC 9147 §7.2: an ACK that leaves part of our flight
		// unacknowledged gets that part resent, now rather than when
		// our timer fires (LOSS.md: a lost last datagram of the
		// server's flight cost the client's timer and a resent
		// ClientHello before). Not after the handshake: a client ACKs
		// each post-handshake message as it comes (several tickets),
		// so an ACK of the first would resend the others before their
		// own ACKs arrive; the timer resends what is still missing.
		// Resending only what an ACK of a later record shows lost
		// would need per-record loss detection (not done).
		return c.sendFlight(true, "partial ACK")
	}
	return nil
}

// KeyUpdate bounds and state (RFC 9147 §8, erratum 8047).
const (
	// maxReadEpochs13 bounds the application read epochs a DTLS 1.3
	// connection holds: the newest, and the one before it until a record
	// of the newest decrypts (RFC 9147 §8: the old keys stay for records
	// still in flight). The peer may not send with newer keys before we
	// ACK its KeyUpdate, so two suffice; installing a third discards the
	// oldest. Epoch 2 (the server's, for re-ACKing a retransmitted client
	// Finished) goes with the first KeyUpdate: erratum 8047 has the peer
	// update only once all its earlier messages were ACKed.
	maxReadEpochs13 = 2
	// maxPeerKeyUpdates13 bounds the peer's KeyUpdates in a row without
	// application data between them. Each costs us a key derivation and
	// an ACK; an honest peer updates at the AEAD limits (millions of
	// records) or when its application asks, and never needs this many
	// back to back. BoringSSL's limit (kMaxKeyUpdates) is the same 32.
	// Past it the connection ends with unexpected_message.
	maxPeerKeyUpdates13 = 32
	// keyUpdateWaitPoll is how often a Write that waits for new write
	// keys (its key is at its confidentiality limit) checks Close, the
	// write deadline and the connection's error while another goroutine
	// reads.
	keyUpdateWaitPoll = 20 * time.Millisecond
)

// Bits of keyUpdate13.wanted.
const (
	kuWanted      = 1 << iota // a KeyUpdate of ours is to be sent
	kuRequestPeer             // with update_requested
)

// keyUpdate13 is a DTLS 1.3 connection's KeyUpdate state.
type keyUpdate13 struct {
	// Read side (c.in held):
	pending   bool      // our KeyUpdate is out and not yet ACKed: at most one (RFC 9147 §8)
	oldRead   bool      // the read epoch before readCur is still held
	retireAt  time.Time // when it goes (retireOldReadEpoch13); zero until a record of readCur decrypted
	peerCount int       // the peer's KeyUpdates since its last application data

	// wanted holds kuWanted|kuRequestPeer: UpdateKeys, Write at the
	// limit and failed decryptions ask for a KeyUpdate here, from any
	// goroutine; the read side sends it (serviceKeyUpdate).
	wanted atomic.Uint32
	// auto: Write asked for a KeyUpdate for the current write key.
	auto atomic.Bool
	// switched is closed when the write keys move on (c.out held);
	// a Write at the confidentiality limit waits on it.
	switched chan struct{}

	// Counts for ConnectionState and tests: KeyUpdates we sent (first
	// transmissions) and took from the peer.
	sent, received atomic.Uint64

	// testSealLimit and testFailLimit, when set (tests only, before
	// the handshake), replace the suite's confidentiality and integrity
	// limits of every application epoch.
	testSealLimit, testFailLimit uint64
}

// applyLimits13 gives application keys the test limits, if any.
func (c *Conn) applyLimits13(keys *epochKeys13) {
	if keys.epoch < 3 {
		return
	}
	if c.ku.testSealLimit != 0 {
		keys.usage.confidentialityLimit = c.ku.testSealLimit
	}
	if c.ku.testFailLimit != 0 {
		keys.usage.integrityLimit = c.ku.testFailLimit
	}
}

// UpdateKeys sends a DTLS 1.3 KeyUpdate (RFC 8446 §4.6.3, RFC 9147 §8):
// our sending keys move to the next traffic secret once the peer has
// ACKed the KeyUpdate and every message before it (erratum 8047), and
// with requestPeer the KeyUpdate asks the peer to update its own sending
// keys as well (update_requested).
//
// The connection also updates its keys by itself before a key reaches the
// usage limits of RFC 9147 §4.5.3, so most applications never call this;
// it is for policies such as rekeying every hour. The name follows the
// message and pion/dtls v4's method of the same name (crypto/tls and
// quic-go expose none): it starts an update, it does not wait for it.
//
// At most one KeyUpdate of ours is outstanding: while one waits for its
// ACK, or while an earlier post-handshake flight of ours does, the new
// request is kept and sent after it (or merged into the one already
// waiting to go). The ACK is taken by Read: as with every DTLS 1.3
// post-handshake message, a connection that nobody reads keeps its old
// keys (and a Write at the key's limit then reads for it). It fails
// before the handshake completes and on DTLS 1.2.
func (c *Conn) UpdateKeys(requestPeer bool) error {
	if !c.handshakeComplete.Load() {
		return errHandshakeNotComplete
	}
	if c.vers != VersionDTLS13 {
		return errors.New("dtls: KeyUpdate needs DTLS 1.3")
	}
	if err := c.fatal(); err != nil {
		return err
	}
	if c.closed.Load() {
		return net.ErrClosed
	}
	return c.requestKeyUpdate(requestPeer)
}

// requestKeyUpdate asks for a KeyUpdate of ours. When no Read is in
// progress it is sent here; otherwise the reader is woken and sends it.
func (c *Conn) requestKeyUpdate(requestPeer bool) error {
	v := uint32(kuWanted)
	if requestPeer {
		v |= kuRequestPeer
	}
	c.ku.wanted.Or(v)
	if c.in.TryLock() {
		defer c.in.Unlock()
		return c.serviceKeyUpdate()
	}
	c.io.interrupt() // the Read holding c.in calls serviceKeyUpdate
	return nil
}

// serviceKeyUpdate sends the KeyUpdate asked for, if any, once nothing
// of ours waits for an ACK. Called with c.in held.
func (c *Conn) serviceKeyUpdate() error {
	v := c.ku.wanted.Load()
	if v == 0 || c.vers != VersionDTLS13 || !c.handshakeComplete.Load() || c.fatal() != nil {
		return nil
	}
	if c.ku.pending {
		// The one outstanding moves our keys as well: a second would
		// only wait behind it (RFC 9147 §8 allows one at a time).
		c.ku.wanted.Store(0)
		return nil
	}
	extend := false
	if c.hs.postHandshakeBusy() {
		if extend = c.hs.extendPostHandshakeFlight(); !extend {
			return nil // sent when that flight is ACKed (handleACK)
		}
	}
	c.ku.wanted.Store(0)
	return c.sendKeyUpdate(v&kuRequestPeer != 0, extend)
}

// handlePostHandshakeMessages13 hands a post-handshake handshake record
// to the transport and takes the messages it completes, in order:
// KeyUpdate (handleKeyUpdate), NewSessionTicket (stored for resumption),
// CertificateRequest and the client's answer to ours
// (posthandshake_auth_dtls13.go). What it took is ACKed, unless a flight
// of ours already acknowledged it.
func (c *Conn) handlePostHandshakeMessages13(hdr recordHeader, data []byte) error {
	if err := c.handleHandshakeRecord13(hdr, data); err != nil {
		return err
	}
	acked, issueCIDs := false, 0
	for {
		m, ok := c.hs.nextMessage()
		if !ok {
			break
		}
		var err error
		switch m.typ {
		case typeKeyUpdate:
			err = c.handleKeyUpdate(m, &acked)
		case typeNewSessionTicket:
			if !c.isClient {
				return c.fail(alertUnexpectedMessage, errors.New("dtls: NewSessionTicket from a client"))
			}
			err = c.handleNewSessionTicket13(m)
		case typeCertificateRequest:
			err = c.handleCertRequest13(m)
		case typeCertificate, typeCertificateVerify, typeFinished:
			err = c.handleCertAnswer13(m)
		case typeNewConnectionID:
			err = c.handleNewConnectionID13(m)
		case typeRequestConnectionID:
			var n int
			n, err = c.handleRequestConnectionID13(m)
			issueCIDs += n
		default:
			err = c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: unexpected %v after the handshake", m.typ))
		}
		if err != nil {
			return err
		}
	}
	if a := c.hs.ack13; a != nil && len(a.recv) > 0 {
		if err := c.sendACK(); err != nil {
			return err
		}
	}
	if issueCIDs > 0 {
		// RequestConnectionId answered with NewConnectionId(cid_spare)
		// (cid_dtls13.go).
		if _, err := c.issueConnectionIDs13(issueCIDs, cidSpare); err != nil {
			return err
		}
	}
	// A client answers a queued CertificateRequest when it may; a CID
	// update of ours goes when nothing else waits.
	if err := c.serviceCertRequests(); err != nil {
		return err
	}
	return c.serviceCIDUpdates13()
}

// handleKeyUpdate takes the peer's KeyUpdate (RFC 8446 §4.6.3, RFC 9147
// §8): from the next epoch on, its records use the next traffic secret;
// the old epoch's keys stay until a record of the new one decrypts
// (readRecord13). The KeyUpdate is ACKed; if it asks for one, we send
// our own, and switch our write keys only once that is ACKed (§8,
// erratum 8047). A KeyUpdate ends the peer's post-handshake messages in
// its epoch (erratum 8047), so one found in an epoch older than the
// newest is an unexpected_message; more than maxPeerKeyUpdates13 in a
// row without application data end the connection the same way. *acked
// says whether the records taken so far were ACKed already.
func (c *Conn) handleKeyUpdate(m inMessage, acked *bool) error {
	ku := new(keyUpdateMsg13)
	if err := c.parseHandshakeMsg(m, typeKeyUpdate, ku.unmarshal); err != nil {
		return err
	}
	if !ku.valid() {
		return c.fail(alertIllegalParameter, errors.New("dtls: KeyUpdate with an invalid request_update"))
	}
	if m.epoch != c.rl.readCur {
		// A message in the epoch a KeyUpdate already ended: the peer
		// sent a second KeyUpdate before switching to the keys of its
		// first.
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: KeyUpdate in epoch %d, after the peer's KeyUpdate to epoch %d", m.epoch, c.rl.readCur))
	}
	c.ku.peerCount++
	if c.ku.peerCount > maxPeerKeyUpdates13 {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: more than %d KeyUpdates from the peer without application data", maxPeerKeyUpdates13))
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
	c.applyLimits13(keys)
	if err := c.installReadEpoch13(keys); err != nil {
		return err
	}
	c.rl.discardRead13Before(keys.epoch + 1 - maxReadEpochs13)
	c.ku.oldRead, c.ku.retireAt = true, time.Time{}
	c.ku.received.Add(1)
	s.peerSecret = next
	if ku.requestUpdate == keyUpdateRequested {
		// RFC 8446 §4.6.3: answer with update_not_requested, unless an
		// update of ours is already out or asked for.
		if !*acked {
			// The ACK first, so that the peer's own update does not
			// wait for ours.
			if err := c.sendACK(); err != nil {
				return err
			}
			*acked = true
		}
		c.ku.wanted.Or(kuWanted)
		return c.serviceKeyUpdate()
	}
	return nil
}

// sendKeyUpdate sends a KeyUpdate in our current epoch, retransmitted
// until ACKed: as a flight of its own, or with extend added to our
// post-handshake flight still waiting for its ACK
// (extendPostHandshakeFlight). Called with c.in held.
func (c *Conn) sendKeyUpdate(requestPeer, extend bool) error {
	ku := &keyUpdateMsg13{requestUpdate: keyUpdateNotRequested}
	if requestPeer {
		ku.requestUpdate = keyUpdateRequested
	}
	body, err := ku.marshal()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	if !extend {
		c.hs.startPostHandshakeFlight()
	}
	if c.hs.queueMessage(c.rl.writeCur, typeKeyUpdate, body) == nil {
		return c.fail(alertInternalError, errors.New("dtls: KeyUpdate not queued"))
	}
	c.ku.pending = true
	c.ku.sent.Add(1)
	why := "KeyUpdate"
	if requestPeer {
		why = "KeyUpdate(update_requested)"
	}
	return c.sendFlight(false, why)
}

// updateWriteKeys moves our write side to the next epoch once our
// KeyUpdate is ACKed, and wakes Writes waiting for it.
func (c *Conn) updateWriteKeys() error {
	s := &c.state
	next, err := nextTrafficSecret13(s.suite13.hash, labelPrefixDTLS13, s.ourSecret)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	c.out.Lock()
	keys, err := newEpochKeys13(s.suite13, c.rl.writeCur+1, next)
	if err == nil {
		c.applyLimits13(keys)
		c.rl.installWriteEpoch13(keys)
		c.ku.auto.Store(false)
		if c.ku.switched != nil {
			close(c.ku.switched)
			c.ku.switched = nil
		}
	}
	c.out.Unlock()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	s.ourSecret = next
	c.ku.pending = false
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceEpochChanged, Epoch: keys.epoch, Reason: "write"})
	}
	return nil
}

// keyUpdateDue13 reports, after Write sealed a record (c.out held),
// whether the write key just passed aeadKeyUpdateNum/Den of its
// confidentiality limit (RFC 9147 §4.5.3: update before the limit), once
// per key.
func (c *Conn) keyUpdateDue13() bool {
	return c.vers == VersionDTLS13 && c.rl.writeUsage13() != usageOK && !c.ku.auto.Swap(true)
}

// waitWriteKeys13 waits until the write key may seal again: it is at its
// confidentiality limit (RFC 9147 §4.5.3: it must not be used further)
// and our KeyUpdate waits for its ACK. Records are never sealed past the
// limit, nor dropped: Write waits. When no Read is in progress, it reads
// the connection itself for the ACK (queuing application data for the
// next Read); otherwise it waits for the reader to take the ACK. Close,
// the write deadline and a fatal error end the wait. Called without
// c.out.
func (c *Conn) waitWriteKeys13() error {
	for {
		if err := c.fatal(); err != nil {
			return err
		}
		if c.closed.Load() {
			return net.ErrClosed
		}
		d := loadDeadline(&c.writeDeadline)
		if !d.IsZero() && !time.Now().Before(d) {
			return os.ErrDeadlineExceeded
		}
		c.out.Lock()
		if c.rl.writeUsage13() != usageExhausted {
			c.out.Unlock()
			return nil
		}
		if c.ku.switched == nil {
			c.ku.switched = make(chan struct{})
		}
		ch := c.ku.switched
		c.out.Unlock()
		if c.in.TryLock() {
			err := c.pumpForKeyUpdate(d)
			c.in.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		wait := keyUpdateWaitPoll
		if !d.IsZero() {
			wait = min(wait, time.Until(d))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// pumpForKeyUpdate reads for a Write that waits for new write keys, with
// c.in held: the KeyUpdate (if it still waits to go), its ACK,
// retransmissions (pumpRecord).
func (c *Conn) pumpForKeyUpdate(deadline time.Time) error {
	ctx := context.Background()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	err := c.pumpRecord(ctx, c.serviceKeyUpdate)
	if errors.Is(err, context.DeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	return err
}

// pumpRecord is a read by a caller other than Read, with c.in held: it
// sends what service has waiting (a KeyUpdate, CertificateRequests), then
// processes the next record, holding application data for the next Read
// (holdAppData). A ctx that ends the read returns its error.
func (c *Conn) pumpRecord(ctx context.Context, service func() error) error {
	defer func() {
		if len(c.pending) == 0 {
			c.io.release()
		}
	}()
	if err := service(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, c.io.interrupt)
	defer stop()
	data, err := c.readRecord(ctx, false)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return err
	}
	if data != nil {
		c.holdAppData(data)
	}
	return nil
}

// sendACK sends an ACK for the peer's handshake records noted since the
// last one, in the current write epoch (RFC 9147 §7 with erratum 8107:
// never epoch 1; epoch 0 before we have keys).
func (c *Conn) sendACK() error {
	return c.sendACKOf(c.hs.takeACK())
}

// sendFlightACK sends, when our retransmission timer fires during the
// handshake and the peer's next flight has begun (flightACKDue), an ACK
// of every record of that flight we have, instead of our flight, and
// rearms the timer as a retransmission would.
func (c *Conn) sendFlightACK() error {
	if err := c.sendACKOf(c.hs.takeFlightACK()); err != nil {
		return err
	}
	c.out.Lock()
	c.hs.flightSent(time.Now())
	c.out.Unlock()
	return nil
}

// sendACKOf sends an ACK of rns.
func (c *Conn) sendACKOf(rns []recordNumber) error {
	c.out.Lock()
	defer c.out.Unlock()
	epoch := c.rl.writeCur
	if epoch == 1 {
		epoch = 0
	}
	// One datagram: the newest record numbers that fit the MTU (and
	// maxACKRecordNumbers); the peer resends what the ACK leaves out.
	fit := (c.hs.mtu - recordHeaderLen - c.rl.expansion(epoch) - 2) / recordNumberLen
	if n := min(max(fit, 1), maxACKRecordNumbers); len(rns) > n {
		rns = rns[len(rns)-n:]
	}
	var body [2 + ackStackRecordNumbers*recordNumberLen]byte
	payload, err := appendACK(body[:0], rns)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	buf, err := c.rl.seal(c.outBuffer(recordHeaderLen+len(payload)+c.rl.expansion(epoch)), epoch, recordTypeACK, payload)
	if errors.Is(err, errLimitReached) {
		// The write key is spent and our KeyUpdate not yet ACKed: the
		// ACK is not sent, and the peer resends what it named.
		return nil
	}
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
