package dtls

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"

	"github.com/dtls-go/dtls/internal/replay"
)

// recordHeader is the DTLS 1.2 record header (RFC 6347 §4.1).
type recordHeader struct {
	typ     recordType
	version uint16
	epoch   uint64 // 16 bits on the wire in DTLS 1.2
	seq     uint64 // 48 bits
	length  uint16
	// cid is the Connection ID of a tls12_cid record (RFC 9146 §4),
	// aliasing the datagram; nil for other records.
	cid []byte
	// newest is set by open when the record authenticated and is newer
	// (by epoch, then sequence number) than every record before it: the
	// condition RFC 9146 §6 puts on following a peer to a new address.
	newest bool
}

// maxEpoch12 is the largest epoch a DTLS 1.2 record header can carry: the
// field is 16 bits (RFC 6347 §4.1). Epochs are 64-bit inside the package,
// as DTLS 1.3 counts them (RFC 9147 §4.2.1).
const maxEpoch12 = 1<<16 - 1

// parseRecordHeader reads a record header from the start of b.
func parseRecordHeader(b []byte) (h recordHeader, ok bool) {
	if len(b) < recordHeaderLen {
		return h, false
	}
	h.typ = recordType(b[0])
	h.version = binary.BigEndian.Uint16(b[1:3])
	h.epoch = uint64(binary.BigEndian.Uint16(b[3:5]))
	h.seq = uint64(b[5])<<40 | uint64(b[6])<<32 | uint64(binary.BigEndian.Uint32(b[7:11]))
	h.length = binary.BigEndian.Uint16(b[11:13])
	return h, true
}

// appendRecordHeaderCID appends a record header with a CID between
// sequence_number and length, as tls12_cid records carry it, or a plain
// header when cid is nil.
func appendRecordHeaderCID(b []byte, typ recordType, version uint16, epoch, seq uint64, cid []byte, length int) []byte {
	if cid == nil {
		return appendRecordHeader(b, typ, version, epoch, seq, length)
	}
	b = append(b, byte(typ), byte(version>>8), byte(version),
		byte(epoch>>8), byte(epoch),
		byte(seq>>40), byte(seq>>32), byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq))
	b = append(b, cid...)
	return append(b, byte(length>>8), byte(length))
}

func appendRecordHeader(b []byte, typ recordType, version uint16, epoch, seq uint64, length int) []byte {
	return append(b, byte(typ), byte(version>>8), byte(version),
		byte(epoch>>8), byte(epoch),
		byte(seq>>40), byte(seq>>32), byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq),
		byte(length>>8), byte(length))
}

// dropReason says why an incoming record was discarded. RFC 6347 §4.1.2.7
// asks for invalid records to be dropped silently; we count them by reason
// so that a person debugging a link can see what happened.
type dropReason uint8

const (
	dropNone                 dropReason = iota
	dropBadHeader                       // fewer than 13 bytes, or a length past the datagram's end
	dropBadVersion                      // record version that is not DTLS
	dropBadLength                       // ciphertext too short for the AEAD or longer than allowed
	dropUnknownEpoch                    // an epoch we hold no keys for (old, or too far ahead)
	dropFutureEpoch                     // the next epoch, before its keys: buffered or dropped by the caller
	dropReplayed                        // a sequence number already received
	dropTooOld                          // a sequence number left of the replay window
	dropBadMAC                          // authentication failed
	dropBadContentType                  // a content type not allowed here (plaintext application data, unknown types)
	dropBadHandshake                    // handshake fragments the transport refused
	dropBadCID                          // tls12_cid record without a negotiated CID, with another CID, or a CID-less record where one is due
	dropMalformed                       // an unauthenticated alert or ChangeCipherSpec whose body is not valid
	dropEpoch0AfterHandshake            // an unprotected record after the peer's Finished proved it holds keys
	dropPlaintextAlert                  // an unprotected alert after the peer's ChangeCipherSpec
	dropRRCInvalid                      // a return_routability_check (RFC 9853) malformed or of an unknown msg_type
	dropRRCCookie                       // a path_response or path_drop that answers no challenge of ours
	dropRRCPathDrop                     // a path_drop with our cookie, but not to an old-path challenge (a peer leaving a path it only probed)
	dropEarlyData                       // DTLS 1.3 0-RTT data the server rejected, skipped (RFC 8446 §4.2.10)
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	dropNone:                 "none",
	dropBadHeader:            "bad header",
	dropBadVersion:           "bad version",
	dropBadLength:            "bad length",
	dropUnknownEpoch:         "unknown epoch",
	dropFutureEpoch:          "future epoch",
	dropReplayed:             "replayed",
	dropTooOld:               "too old",
	dropBadMAC:               "bad MAC",
	dropBadContentType:       "bad content type",
	dropBadHandshake:         "bad handshake fragment",
	dropBadCID:               "bad connection ID",
	dropMalformed:            "malformed alert or ChangeCipherSpec",
	dropEpoch0AfterHandshake: "epoch 0 after handshake",
	dropPlaintextAlert:       "plaintext alert after ChangeCipherSpec",
	dropRRCInvalid:           "invalid return_routability_check",
	dropRRCCookie:            "path_response or path_drop with an unknown cookie",
	dropRRCPathDrop:          "path_drop to a new-path challenge",
	dropEarlyData:            "rejected early data",
}

func (r dropReason) String() string {
	if int(r) < len(dropReasonNames) {
		return dropReasonNames[r]
	}
	return "unknown"
}

// epochKeys protects the records of one epoch in one direction with an
// AEAD, following the nonce rules of the suite:
//
//   - AES-GCM (RFC 5288 §3) and AES-CCM (RFC 6655 §3): nonce = salt(4) ‖
//     nonce_explicit(8), and nonce_explicit travels in the record. We send
//     epoch ‖ sequence_number as nonce_explicit: unique for the life of the
//     keys, never random (pion CVE-2026-26014 repeated random nonces).
//   - ChaCha20-Poly1305 (RFC 7905 §2): nonce = iv(12) XOR (0^32 ‖ epoch ‖
//     sequence_number), nothing explicit in the record.
type epochKeys struct {
	aead        cipher.AEAD
	iv          [12]byte
	explicitLen int
	// Scratch for the nonce and additional data: arrays on the stack would
	// escape through the cipher.AEAD interface and cost an allocation per
	// record. Each epochKeys serves one direction, whose lock guards them.
	nonceBuf [12]byte
	adBuf    [13]byte
	cidADBuf [cidADFixedLen + maxCIDLen]byte
}

func newEpochKeys(kind aeadKind, key, iv []byte) (*epochKeys, error) {
	p := aeadTable[kind]
	if len(key) != p.keyLen || len(iv) != p.fixedIVLen {
		return nil, errors.New("dtls: internal error: wrong key or IV length")
	}
	a, err := kind.newAEAD(key)
	if err != nil {
		return nil, err
	}
	k := &epochKeys{aead: a, explicitLen: p.explicitLen}
	copy(k.iv[:], iv)
	return k, nil
}

// overhead is what protection adds to a plaintext: explicit nonce and tag.
func (k *epochKeys) overhead() int {
	if k == nil {
		return 0
	}
	return k.explicitLen + k.aead.Overhead()
}

// nonce builds the 12-byte AEAD nonce for the record whose 8-byte
// epoch ‖ sequence_number is seq64.
func (k *epochKeys) nonce(n *[12]byte, seq64 uint64) {
	if k.explicitLen == 0 {
		*n = k.iv
		var s [8]byte
		binary.BigEndian.PutUint64(s[:], seq64)
		for i := range s {
			n[4+i] ^= s[i]
		}
		return
	}
	copy(n[:4], k.iv[:4])
	binary.BigEndian.PutUint64(n[4:], seq64)
}

// additionalData builds RFC 6347 §4.1.2.1's AEAD additional data:
// epoch ‖ sequence_number ‖ type ‖ version ‖ length (of the plaintext).
func additionalData(ad *[13]byte, seq64 uint64, typ recordType, version uint16, length int) {
	binary.BigEndian.PutUint64(ad[0:8], seq64)
	ad[8] = byte(typ)
	binary.BigEndian.PutUint16(ad[9:11], version)
	binary.BigEndian.PutUint16(ad[11:13], uint16(length))
}

// cidADFixedLen is the size of RFC 9146 §5's additional data without the
// CID: seq_num_placeholder(8) tls12_cid(1) cid_length(1) tls12_cid(1)
// version(2) epoch(2) sequence_number(6) length_of_DTLSInnerPlaintext(2).
const cidADFixedLen = 23

// additionalDataCID builds RFC 9146 §5's AEAD additional data for a
// tls12_cid record (the layout of the RFC, not of its drafts, which put
// the CID after a plain 13-byte header):
//
//	seq_num_placeholder (8 × 0xff) ‖ tls12_cid ‖ cid_length ‖ tls12_cid ‖
//	version ‖ epoch ‖ sequence_number ‖ cid ‖ length_of_DTLSInnerPlaintext
//
// ad must hold cidADFixedLen+len(cid) bytes; it returns the filled part.
func additionalDataCID(ad []byte, seq64 uint64, version uint16, cid []byte, innerLen int) []byte {
	n := cidADFixedLen + len(cid)
	ad = ad[:n]
	for i := range 8 {
		ad[i] = 0xff
	}
	ad[8] = byte(recordTypeTLS12CID)
	ad[9] = byte(len(cid))
	ad[10] = byte(recordTypeTLS12CID)
	binary.BigEndian.PutUint16(ad[11:13], version)
	binary.BigEndian.PutUint64(ad[13:21], seq64) // epoch ‖ sequence_number
	copy(ad[21:], cid)
	binary.BigEndian.PutUint16(ad[n-2:], uint16(innerLen))
	return ad
}

// maxEpochs bounds the epochs the record layer holds keys for in each
// direction. DTLS 1.2 needs two: a flight spans the key change
// (ClientKeyExchange in epoch 0, Finished in epoch 1) and either may be
// retransmitted. DTLS 1.3 (RFC 9147 §6.1, §8) needs up to five at once:
// epoch 0 for the hellos until the handshake ends, epoch 2 until the
// peer's Finished is acknowledged, epoch 3 and, after a KeyUpdate to N,
// N−1 for records still in flight beside N. Epochs are not indexed by
// epoch&1: 0 and 2, or 2 and N, would share a slot. A full table
// replaces its oldest epoch; the caller discards epochs it is done with.
const maxEpochs = 5

// inlineEpochs is how many epochs a direction holds without an
// allocation: the two of DTLS 1.2, so that a 1.2 connection (and an idle
// one, which keeps its record layer) costs no more than before epochs
// had a table; the others are allocated the first time a third epoch is
// installed.
const inlineEpochs = 2

// noEpoch marks a free slot. RFC 9147 §4.2.1 has a connection end before
// its epoch would wrap, so the largest 64-bit value is never installed.
const noEpoch = ^uint64(0)

// writeEpoch is the write side of one epoch.
type writeEpoch struct {
	epoch  uint64       // noEpoch: a free slot
	keys   *epochKeys   // nil in epoch 0 and in DTLS 1.3 epochs
	keys13 *epochKeys13 // a DTLS 1.3 epoch ≥ 1: unified-header records
	seq    uint64       // next sequence number
}

// readEpoch is the read side of one epoch.
type readEpoch struct {
	epoch  uint64 // noEpoch: a free slot
	keys   *epochKeys
	keys13 *epochKeys13 // a DTLS 1.3 epoch ≥ 1 (open13)
	window replay.Window
	// expected is one more than the highest sequence number that
	// authenticated in a DTLS 1.3 epoch: the value the 8- or 16-bit
	// sequence number of a unified header is reconstructed around
	// (RFC 9147 §4.2.2).
	expected uint64
}

// recordLayer holds both directions of a connection's record layer: a
// small table of epochs on each side (maxEpochs, inlineEpochs of them
// inline), the current write epoch and the highest read epoch. Code is
// append-style: it owns no buffers. The handshake changes it only through
// its methods (install, discard, resetReplay, setWriteSeq,
// setConnectionIDs), never by writing fields.
type recordLayer struct {
	version    uint16 // record version we write
	replaySize int

	writeCur  uint64 // current write epoch
	write     [inlineEpochs]writeEpoch
	writeMore *[maxEpochs - inlineEpochs]writeEpoch // nil until needed
	readCur   uint64                                // highest installed read epoch
	read      [inlineEpochs]readEpoch
	readMore  *[maxEpochs - inlineEpochs]readEpoch // nil until needed

	// Connection IDs (RFC 9146), set when the hellos negotiated them and
	// used in every epoch after 0. writeCID is the peer's: we put it in
	// the records we send, in the tls12_cid format when it is not empty.
	// readCID is ours: records with keys must carry it. An empty CID
	// means plain RFC 6347 records in that direction.
	writeCID []byte
	readCID  []byte
	// readCIDs13 are the other CIDs of ours a DTLS 1.3 peer may put in
	// its records: those our NewConnectionId issued and not yet retired
	// (cid_dtls13.go), all of readCID's length. Changed by the reader
	// only, under the Conn's out lock.
	readCIDs13 [][]byte

	// lastSealed names the last DTLS 1.3 record seal13 wrote, for the
	// transport's record of what an ACK may name and for the Tracer.
	lastSealed     recordNumber
	lastSealedType recordType

	// newestRead is epoch ‖ sequence_number of the newest record that
	// authenticated, valid when anyRead; newestRead13 the same for DTLS
	// 1.3, whose epochs and sequence numbers are 64 bits each.
	newestRead   uint64
	anyRead      bool
	newestRead13 recordNumber
}

func newRecordLayer(replaySize int) *recordLayer {
	rl := &recordLayer{version: VersionDTLS12, replaySize: replaySize}
	rl.write[0] = writeEpoch{epoch: 0}
	rl.write[1] = writeEpoch{epoch: noEpoch}
	rl.read[0] = readEpoch{epoch: 0}
	rl.read[0].window.Init(replaySize)
	rl.read[1] = readEpoch{epoch: noEpoch}
	return rl
}

var errSequenceExhausted = errors.New("dtls: record sequence numbers exhausted; the connection must be closed")

// writeAt returns write slot i < maxEpochs, or nil for an overflow slot
// not allocated yet.
func (rl *recordLayer) writeAt(i int) *writeEpoch {
	if i < inlineEpochs {
		return &rl.write[i]
	}
	if rl.writeMore == nil {
		return nil
	}
	return &rl.writeMore[i-inlineEpochs]
}

// readAt is writeAt for the read side.
func (rl *recordLayer) readAt(i int) *readEpoch {
	if i < inlineEpochs {
		return &rl.read[i]
	}
	if rl.readMore == nil {
		return nil
	}
	return &rl.readMore[i-inlineEpochs]
}

// writeState returns the write side of epoch, or nil.
func (rl *recordLayer) writeState(epoch uint64) *writeEpoch {
	if epoch == noEpoch {
		return nil // the mark of a free slot
	}
	for i := range maxEpochs {
		w := rl.writeAt(i)
		if w == nil {
			break
		}
		if w.epoch == epoch {
			return w
		}
	}
	return nil
}

// readState returns the read side of epoch, or nil.
func (rl *recordLayer) readState(epoch uint64) *readEpoch {
	if epoch == noEpoch {
		return nil // the mark of a free slot
	}
	for i := range maxEpochs {
		r := rl.readAt(i)
		if r == nil {
			break
		}
		if r.epoch == epoch {
			return r
		}
	}
	return nil
}

// writeSlot returns the slot for a new write epoch: a free one, or the
// one holding the oldest epoch. The overflow slots are allocated the
// first time the inline ones are all in use.
func (rl *recordLayer) writeSlot() *writeEpoch {
	var oldest *writeEpoch
	for i := range maxEpochs {
		w := rl.writeAt(i)
		if w == nil {
			more := new([maxEpochs - inlineEpochs]writeEpoch)
			for j := range more {
				more[j].epoch = noEpoch
			}
			rl.writeMore = more
			return &more[0]
		}
		if w.epoch == noEpoch {
			return w
		}
		if oldest == nil || w.epoch < oldest.epoch {
			oldest = w
		}
	}
	return oldest
}

// readSlot is writeSlot for the read side.
func (rl *recordLayer) readSlot() *readEpoch {
	var oldest *readEpoch
	for i := range maxEpochs {
		r := rl.readAt(i)
		if r == nil {
			more := new([maxEpochs - inlineEpochs]readEpoch)
			for j := range more {
				more[j].epoch = noEpoch
			}
			rl.readMore = more
			return &more[0]
		}
		if r.epoch == noEpoch {
			return r
		}
		if oldest == nil || r.epoch < oldest.epoch {
			oldest = r
		}
	}
	return oldest
}

// installWriteKeys moves the write side to the next epoch with keys.
func (rl *recordLayer) installWriteKeys(keys *epochKeys) {
	rl.installWriteEpoch(rl.writeCur+1, keys)
}

// installWriteEpoch makes epoch, protected by keys, the current write
// epoch. Its sequence numbers start at 0.
func (rl *recordLayer) installWriteEpoch(epoch uint64, keys *epochKeys) {
	w := rl.writeState(epoch)
	if w == nil {
		w = rl.writeSlot()
	}
	*w = writeEpoch{epoch: epoch, keys: keys}
	rl.writeCur = epoch
}

// installWriteEpoch13 makes epoch, protected by the DTLS 1.3 keys13,
// the current write epoch: its records get the unified header.
func (rl *recordLayer) installWriteEpoch13(keys *epochKeys13) {
	w := rl.writeState(keys.epoch)
	if w == nil {
		w = rl.writeSlot()
	}
	*w = writeEpoch{epoch: keys.epoch, keys13: keys}
	rl.writeCur = keys.epoch
}

// installReadEpoch13 accepts DTLS 1.3 records of keys.epoch. The unified
// header names an epoch by its low two bits, so an epoch that shares
// them with an older one replaces it (RFC 9147 §4.2.2 leaves at most
// four epochs distinguishable; a connection holds 0, 2, 3 and, after a
// KeyUpdate, N−1 and N).
// An epoch older than the one holding its low bits is refused.
func (rl *recordLayer) installReadEpoch13(keys *epochKeys13) error {
	for i := range maxEpochs {
		r := rl.readAt(i)
		if r == nil {
			break
		}
		if r.keys13 != nil && r.epoch&uhEpochMask == keys.epoch&uhEpochMask {
			if r.epoch > keys.epoch {
				return errors.New("dtls: internal error: read epoch installed out of order")
			}
			*r = readEpoch{epoch: noEpoch}
		}
	}
	r := rl.readState(keys.epoch)
	if r == nil {
		r = rl.readSlot()
	}
	*r = readEpoch{epoch: keys.epoch, keys13: keys}
	r.window.Init(rl.replaySize)
	rl.readCur = max(rl.readCur, keys.epoch)
	return nil
}

// readState13 returns the DTLS 1.3 read epoch whose low two bits are
// bits, or nil: the reconstruction of RFC 9147 §4.2.2 (the epoch closest
// to the current one) restricted to the epochs we hold keys for, which
// installReadEpoch13 keeps distinct in their low bits.
func (rl *recordLayer) readState13(bits uint8) *readEpoch {
	for i := range maxEpochs {
		r := rl.readAt(i)
		if r == nil {
			break
		}
		if r.keys13 != nil && uint8(r.epoch&uhEpochMask) == bits {
			return r
		}
	}
	return nil
}

// installReadKeys accepts records of the next epoch with keys.
func (rl *recordLayer) installReadKeys(keys *epochKeys) {
	rl.installReadEpoch(rl.readCur+1, keys)
}

// installReadEpoch accepts records of epoch, protected by keys, with a
// fresh replay window; readCur becomes epoch if it is higher.
func (rl *recordLayer) installReadEpoch(epoch uint64, keys *epochKeys) {
	r := rl.readState(epoch)
	if r == nil {
		r = rl.readSlot()
	}
	*r = readEpoch{epoch: epoch, keys: keys}
	r.window.Init(rl.replaySize)
	rl.readCur = max(rl.readCur, epoch)
}

// resetReplay empties the replay window of read epoch epoch: a stateless
// server numbers its records afresh after the cookie exchange (RFC 6347
// §4.2.1), and handshake messages are deduplicated by message_seq.
func (rl *recordLayer) resetReplay(epoch uint64) {
	if r := rl.readState(epoch); r != nil {
		r.window.Reset()
	}
}

// setWriteSeq sets the next sequence number of write epoch epoch: a
// Listener's connection continues from the record sequence number its
// stateless HelloVerifyRequest used (RFC 6347 §4.2.1).
func (rl *recordLayer) setWriteSeq(epoch, seq uint64) {
	if w := rl.writeState(epoch); w != nil {
		w.seq = seq
	}
}

// setConnectionIDs installs the negotiated Connection IDs (RFC 9146 §3):
// read is ours, which the peer's protected records must carry, and write
// is the peer's, which ours carry, from the first epoch with keys on.
func (rl *recordLayer) setConnectionIDs(read, write []byte) {
	rl.readCID, rl.writeCID = read, write
}

// expansion returns the bytes protection adds to a record payload of epoch
// (explicit nonce and tag, and with a CID the CID and the inner content
// type), not counting the 13 bytes of a plain record header.
func (rl *recordLayer) expansion(epoch uint64) int {
	if w := rl.writeState(epoch); w != nil && w.keys13 != nil {
		// A unified header instead of the 13-byte one the callers
		// count, the inner content type and the tag.
		return max(0, w.keys13.overhead(len(rl.writeCID))-recordHeaderLen)
	} else if w != nil {
		n := w.keys.overhead()
		if w.keys != nil && len(rl.writeCID) > 0 {
			n += len(rl.writeCID) + 1
		}
		return n
	}
	return 0
}

// seal appends one record of typ carrying payload, protected with the keys
// of epoch, to dst. It refuses to reuse a sequence number: when the 48-bit
// space of an epoch is exhausted the connection must end (RFC 6347 §4.1).
func (rl *recordLayer) seal(dst []byte, epoch uint64, typ recordType, payload []byte) ([]byte, error) {
	w := rl.writeState(epoch)
	if w != nil && w.keys13 != nil {
		return rl.seal13(dst, w, typ, payload)
	}
	if w == nil || epoch > maxEpoch12 {
		return dst, errors.New("dtls: internal error: no keys for epoch")
	}
	if len(payload) > maxPlaintext {
		return dst, errors.New("dtls: record payload too large")
	}
	if w.seq > maxSequenceNumber {
		return dst, errSequenceExhausted
	}
	seq := w.seq
	w.seq++
	seq64 := epoch<<48 | seq
	k := w.keys
	length := len(payload)
	if k != nil {
		length += k.overhead()
	}
	if k != nil && len(rl.writeCID) > 0 {
		return rl.sealCID(dst, k, epoch, seq, typ, payload), nil
	}
	dst = appendRecordHeader(dst, typ, rl.version, epoch, seq, length)
	if k == nil {
		return append(dst, payload...), nil
	}
	nonce, ad := &k.nonceBuf, &k.adBuf
	k.nonce(nonce, seq64)
	additionalData(ad, seq64, typ, rl.version, len(payload))
	if k.explicitLen > 0 {
		dst = append(dst, nonce[4:12]...)
	}
	return k.aead.Seal(dst, nonce[:], payload, ad[:]), nil
}

// seal13 appends one DTLS 1.3 record of w's epoch (RFC 9147 §4): the
// unified header with a 16-bit sequence number and a length, so that
// records can share a datagram in any order, sealed and with its
// sequence number encrypted (sealRecord13).
func (rl *recordLayer) seal13(dst []byte, w *writeEpoch, typ recordType, payload []byte) ([]byte, error) {
	if len(payload) > maxPlaintext {
		return dst, errors.New("dtls: record payload too large")
	}
	if w.seq > maxSequenceNumber {
		return dst, errSequenceExhausted
	}
	out, err := w.keys13.sealRecord13(dst, rl.writeCID, w.seq, typ, payload, 0, true, true)
	if err != nil {
		return dst, err
	}
	rl.lastSealed, rl.lastSealedType = recordNumber{epoch: w.epoch, seq: w.seq}, typ
	w.seq++
	return out, nil
}

// open13 reads the first DTLSCiphertext of datagram (RFC 9147 §4): the
// unified header, the epoch among those held, record number decryption,
// sequence number reconstruction, the replay check, then authentication
// and decryption in place. Like open it never fails the connection: a
// bad record is a drop reason, and changes nothing but the key's count of
// authentication failures, whose usage13 the caller acts on (§4.5.3).
// rest is what follows the record; nil when the header was unusable. The
// header returned carries the inner content type and the full epoch and
// sequence number.
func (rl *recordLayer) open13(datagram []byte) (hdr recordHeader, data, rest []byte, state usage13, reason dropReason) {
	h, hb, body, rest, reason := parseUnifiedHeader(datagram, len(rl.readCID))
	hdr.version = VersionDTLS13
	if reason != dropNone {
		return hdr, nil, nil, usageOK, reason
	}
	if string(h.cid) != string(rl.readCID) && !rl.issuedCID13(h.cid) {
		// Ours, and no other (RFC 9146 §3 with RFC 9147 §9): the
		// Listener may have routed the datagram by address.
		return hdr, nil, nil, usageOK, dropBadCID
	}
	hdr.cid = h.cid
	r := rl.readState13(h.epochBits)
	if r == nil {
		hdr.epoch = uint64(h.epochBits)
		return hdr, nil, rest, usageOK, dropUnknownEpoch
	}
	k := r.keys13
	k.unmaskSeq(&h, hb, body)
	hdr.epoch = r.epoch
	hdr.seq = reconstructSeq(r.expected, h.seqBits, h.seqLen)
	switch r.window.Check(hdr.seq) {
	case replay.Duplicate:
		return hdr, nil, rest, usageOK, dropReplayed
	case replay.TooOld:
		return hdr, nil, rest, usageOK, dropTooOld
	}
	typ, content, state, reason := k.openRecord13(hb, body, hdr.seq)
	if reason != dropNone {
		return hdr, nil, rest, state, reason
	}
	r.window.Accept(hdr.seq)
	if hdr.seq >= r.expected && hdr.seq < maxSequence13 {
		r.expected = hdr.seq + 1
	}
	// The newest record yet (RFC 9146 §6: only it may move the peer).
	n := recordNumber{hdr.epoch, hdr.seq}
	if !rl.anyRead || n.epoch > rl.newestRead13.epoch || n.epoch == rl.newestRead13.epoch && n.seq > rl.newestRead13.seq {
		hdr.newest, rl.newestRead13, rl.anyRead = true, n, true
	}
	hdr.typ = typ
	if len(content) > maxPlaintext {
		return hdr, nil, rest, usageOK, dropBadLength
	}
	return hdr, content, rest, usageOK, dropNone
}

// issuedCID13 reports whether cid is one of readCIDs13.
func (rl *recordLayer) issuedCID13(cid []byte) bool {
	for _, c := range rl.readCIDs13 {
		if string(c) == string(cid) {
			return true
		}
	}
	return false
}

// sealCID appends a tls12_cid record (RFC 9146 §4): the peer's CID in the
// header, and the real content type inside the encrypted
// DTLSInnerPlaintext (content ‖ type, no padding). The inner plaintext is
// built in dst and sealed in place.
func (rl *recordLayer) sealCID(dst []byte, k *epochKeys, epoch, seq uint64, typ recordType, payload []byte) []byte {
	seq64 := epoch<<48 | seq
	innerLen := len(payload) + 1
	dst = appendRecordHeaderCID(dst, recordTypeTLS12CID, rl.version, epoch, seq, rl.writeCID, innerLen+k.overhead())
	nonce := &k.nonceBuf
	k.nonce(nonce, seq64)
	ad := additionalDataCID(k.cidADBuf[:], seq64, rl.version, rl.writeCID, innerLen)
	if k.explicitLen > 0 {
		dst = append(dst, nonce[4:12]...)
	}
	start := len(dst)
	dst = append(dst, payload...)
	dst = append(dst, byte(typ))
	return k.aead.Seal(dst[:start], nonce[:], dst[start:], ad)
}

// record is one record opened by the record layer.
type record struct {
	hdr  recordHeader
	data []byte // the plaintext, decrypted in place inside the datagram
}

// nextRecord splits the first record off a datagram. rest is what follows;
// when the header is unusable the rest of the datagram is dropped too, since
// record boundaries are lost.
func nextRecord(datagram []byte) (hdr recordHeader, body, rest []byte, reason dropReason) {
	return nextRecordCID(datagram, 0)
}

// nextRecordCID is nextRecord for a connection whose own (receive) CID is
// cidLen bytes long. A tls12_cid record's header does not say how long its
// CID is (RFC 9146 §4): only our negotiated length does, so the peer's
// bytes never size anything here (mbedTLS CVE-2022-46393). Such a record
// is refused without a CID of our own; the CID aliases the datagram.
func nextRecordCID(datagram []byte, cidLen int) (hdr recordHeader, body, rest []byte, reason dropReason) {
	hdr, ok := parseRecordHeader(datagram)
	if !ok {
		return hdr, nil, nil, dropBadHeader
	}
	hlen := recordHeaderLen
	if hdr.typ == recordTypeTLS12CID {
		if cidLen == 0 {
			return hdr, nil, nil, dropBadCID
		}
		hlen += cidLen
		if len(datagram) < hlen {
			return hdr, nil, nil, dropBadHeader
		}
		hdr.cid = datagram[11 : 11+cidLen : 11+cidLen]
		hdr.length = binary.BigEndian.Uint16(datagram[11+cidLen:])
	}
	end := hlen + int(hdr.length)
	if end > len(datagram) {
		return hdr, nil, nil, dropBadHeader
	}
	return hdr, datagram[hlen:end], datagram[end:], dropNone
}

// open authenticates and decrypts one record in place. body is the bytes
// after the header. It updates the replay window only for records that
// authenticate (RFC 6347 §4.1.2.6), and never fails the connection: every
// problem is a drop reason. For a tls12_cid record it replaces hdr.typ
// with the content type found inside (RFC 9146 §4). It sets hdr.newest.
func (rl *recordLayer) open(hdr *recordHeader, body []byte) ([]byte, dropReason) {
	if hdr.version != VersionDTLS12 && !(hdr.version == VersionDTLS10 && hdr.epoch == 0) {
		// A DTLS 1.2 peer may put DTLS 1.0 in the record of its first
		// ClientHello (RFC 6347 §4.1), so 1.0 is tolerated in epoch 0 only.
		return nil, dropBadVersion
	}
	if hdr.epoch == rl.readCur+1 {
		return nil, dropFutureEpoch
	}
	r := rl.readState(hdr.epoch)
	if r == nil {
		return nil, dropUnknownEpoch
	}
	if r.keys13 != nil {
		// A DTLS 1.3 epoch's records have the unified header (open13):
		// one with the 1.2 header naming it is not ours to open, and
		// must not pass as plaintext for want of 1.2 keys.
		return nil, dropBadHeader
	}
	isCID := hdr.typ == recordTypeTLS12CID
	if r.keys == nil && isCID || r.keys != nil && isCID != (len(rl.readCID) > 0) ||
		isCID && string(hdr.cid) != string(rl.readCID) {
		// A CID travels only under keys, and once ours is negotiated
		// every protected record must carry it, and no other.
		return nil, dropBadCID
	}
	switch r.window.Check(hdr.seq) {
	case replay.Duplicate:
		return nil, dropReplayed
	case replay.TooOld:
		return nil, dropTooOld
	}
	seq64 := hdr.epoch<<48 | hdr.seq
	newest := !rl.anyRead || seq64 > rl.newestRead
	k := r.keys
	if k == nil {
		if len(body) > maxPlaintext {
			return nil, dropBadLength
		}
		r.window.Accept(hdr.seq)
		rl.accepted(hdr, seq64, newest)
		return body, dropNone
	}
	plain, reason := k.open(hdr, body)
	if reason != dropNone {
		return nil, reason
	}
	r.window.Accept(hdr.seq)
	rl.accepted(hdr, seq64, newest)
	return plain, dropNone
}

// open authenticates and decrypts one record's body in place. For a
// tls12_cid record it also unwraps the DTLSInnerPlaintext and sets hdr.typ
// to the real content type.
func (k *epochKeys) open(hdr *recordHeader, body []byte) ([]byte, dropReason) {
	if len(body) < k.overhead() || len(body) > maxPlaintext+maxCiphertextExpansion {
		// mbedTLS CVE-2023-43615: a record shorter than the tag must not
		// underflow; OpenSSL CVE-2026-75806: nor may it kill the association.
		return nil, dropBadLength
	}
	isCID := hdr.typ == recordTypeTLS12CID
	seq64 := hdr.epoch<<48 | hdr.seq
	nonce := &k.nonceBuf
	if k.explicitLen > 0 {
		copy(nonce[:4], k.iv[:4])
		copy(nonce[4:], body[:k.explicitLen])
	} else {
		k.nonce(nonce, seq64)
	}
	ciphertext := body[k.explicitLen:]
	plainLen := len(ciphertext) - k.aead.Overhead()
	var ad []byte
	if isCID {
		// DTLSInnerPlaintext: content ‖ type ‖ zeros. TLS 1.3 allows
		// it 2^14+1 bytes (RFC 8446 §5.4); the padding limit is ours.
		if plainLen < 1 || plainLen > maxPlaintext+maxCIDPadding {
			return nil, dropBadLength
		}
		ad = additionalDataCID(k.cidADBuf[:], seq64, hdr.version, hdr.cid, plainLen)
	} else {
		if plainLen > maxPlaintext {
			return nil, dropBadLength
		}
		additionalData(&k.adBuf, seq64, hdr.typ, hdr.version, plainLen)
		ad = k.adBuf[:]
	}
	plain, err := k.aead.Open(ciphertext[:0], nonce[:], ciphertext, ad)
	if err != nil {
		return nil, dropBadMAC
	}
	if isCID {
		// The real content type is the last non-zero byte.
		i := len(plain) - 1
		for i >= 0 && plain[i] == 0 {
			i--
		}
		if i < 0 || recordType(plain[i]) == recordTypeTLS12CID {
			return nil, dropBadContentType
		}
		if i > maxPlaintext {
			return nil, dropBadLength
		}
		hdr.typ = recordType(plain[i])
		plain = plain[:i]
	}
	return plain, dropNone
}

// accepted notes a record that authenticated and passed the replay check.
func (rl *recordLayer) accepted(hdr *recordHeader, seq64 uint64, newest bool) {
	hdr.newest = newest
	if newest {
		rl.newestRead, rl.anyRead = seq64, true
	}
}

// discardReadEpoch forgets an old read epoch, so that its records are no
// longer accepted (tinydtls CVE-2021-42146: epoch reuse).
func (rl *recordLayer) discardReadEpoch(epoch uint64) {
	if r := rl.readState(epoch); r != nil && epoch != rl.readCur {
		*r = readEpoch{epoch: noEpoch}
	}
}
