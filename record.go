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
	epoch   uint16
	seq     uint64 // 48 bits
	length  uint16
}

// parseRecordHeader reads a record header from the start of b.
func parseRecordHeader(b []byte) (h recordHeader, ok bool) {
	if len(b) < recordHeaderLen {
		return h, false
	}
	h.typ = recordType(b[0])
	h.version = binary.BigEndian.Uint16(b[1:3])
	h.epoch = binary.BigEndian.Uint16(b[3:5])
	h.seq = uint64(b[5])<<40 | uint64(b[6])<<32 | uint64(binary.BigEndian.Uint32(b[7:11]))
	h.length = binary.BigEndian.Uint16(b[11:13])
	return h, true
}

func appendRecordHeader(b []byte, typ recordType, version, epoch uint16, seq uint64, length int) []byte {
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
	dropNone           dropReason = iota
	dropBadHeader                 // fewer than 13 bytes, or a length past the datagram's end
	dropBadVersion                // record version that is not DTLS
	dropBadLength                 // ciphertext too short for the AEAD or longer than allowed
	dropUnknownEpoch              // an epoch we hold no keys for (old, or too far ahead)
	dropFutureEpoch               // the next epoch, before its keys: buffered or dropped by the caller
	dropReplayed                  // a sequence number already received
	dropTooOld                    // a sequence number left of the replay window
	dropBadMAC                    // authentication failed
	dropBadContentType            // a content type not allowed here (plaintext application data, unknown types)
	dropBadHandshake              // handshake fragments the transport refused
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	dropNone:           "none",
	dropBadHeader:      "bad header",
	dropBadVersion:     "bad version",
	dropBadLength:      "bad length",
	dropUnknownEpoch:   "unknown epoch",
	dropFutureEpoch:    "future epoch",
	dropReplayed:       "replayed",
	dropTooOld:         "too old",
	dropBadMAC:         "bad MAC",
	dropBadContentType: "bad content type",
	dropBadHandshake:   "bad handshake fragment",
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

// writeEpoch is the write side of one epoch.
type writeEpoch struct {
	valid bool
	epoch uint16
	keys  *epochKeys // nil in epoch 0
	seq   uint64     // next sequence number
}

// readEpoch is the read side of one epoch.
type readEpoch struct {
	valid  bool
	epoch  uint16
	keys   *epochKeys
	window replay.Window
}

// recordLayer holds both directions of a connection's record layer. It keeps
// the current and the previous epoch on each side: a DTLS 1.2 flight spans
// the key change (ClientKeyExchange in epoch 0, Finished in epoch 1), and
// either may be retransmitted. Code is append-style: it owns no buffers.
type recordLayer struct {
	version    uint16 // record version we write
	replaySize int

	writeCur uint16 // current write epoch
	write    [2]writeEpoch
	readCur  uint16 // highest installed read epoch
	read     [2]readEpoch
}

func newRecordLayer(replaySize int) *recordLayer {
	rl := &recordLayer{version: VersionDTLS12, replaySize: replaySize}
	rl.write[0] = writeEpoch{valid: true}
	rl.read[0] = readEpoch{valid: true}
	rl.read[0].window.Init(replaySize)
	return rl
}

var errSequenceExhausted = errors.New("dtls: record sequence numbers exhausted; the connection must be closed")

// writeState returns the write side of epoch, or nil.
func (rl *recordLayer) writeState(epoch uint16) *writeEpoch {
	w := &rl.write[epoch&1]
	if !w.valid || w.epoch != epoch {
		return nil
	}
	return w
}

// installWriteKeys moves the write side to the next epoch with keys.
func (rl *recordLayer) installWriteKeys(keys *epochKeys) {
	rl.writeCur++
	rl.write[rl.writeCur&1] = writeEpoch{valid: true, epoch: rl.writeCur, keys: keys}
}

// installReadKeys accepts records of the next epoch with keys.
func (rl *recordLayer) installReadKeys(keys *epochKeys) {
	rl.readCur++
	r := &rl.read[rl.readCur&1]
	*r = readEpoch{valid: true, epoch: rl.readCur, keys: keys}
	r.window.Init(rl.replaySize)
}

// expansion returns the bytes protection adds to a record payload of epoch
// (explicit nonce and tag), not counting the record header.
func (rl *recordLayer) expansion(epoch uint16) int {
	if w := rl.writeState(epoch); w != nil {
		return w.keys.overhead()
	}
	return 0
}

// seal appends one record of typ carrying payload, protected with the keys
// of epoch, to dst. It refuses to reuse a sequence number: when the 48-bit
// space of an epoch is exhausted the connection must end (RFC 6347 §4.1).
func (rl *recordLayer) seal(dst []byte, epoch uint16, typ recordType, payload []byte) ([]byte, error) {
	w := rl.writeState(epoch)
	if w == nil {
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
	seq64 := uint64(epoch)<<48 | seq
	k := w.keys
	length := len(payload)
	if k != nil {
		length += k.overhead()
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

// record is one record opened by the record layer.
type record struct {
	hdr  recordHeader
	data []byte // the plaintext, decrypted in place inside the datagram
}

// nextRecord splits the first record off a datagram. rest is what follows;
// when the header is unusable the rest of the datagram is dropped too, since
// record boundaries are lost.
func nextRecord(datagram []byte) (hdr recordHeader, body, rest []byte, reason dropReason) {
	hdr, ok := parseRecordHeader(datagram)
	if !ok {
		return hdr, nil, nil, dropBadHeader
	}
	end := recordHeaderLen + int(hdr.length)
	if end > len(datagram) {
		return hdr, nil, nil, dropBadHeader
	}
	return hdr, datagram[recordHeaderLen:end], datagram[end:], dropNone
}

// open authenticates and decrypts one record in place. body is the bytes
// after the header. It updates the replay window only for records that
// authenticate (RFC 6347 §4.1.2.6), and never fails the connection: every
// problem is a drop reason.
func (rl *recordLayer) open(hdr recordHeader, body []byte) ([]byte, dropReason) {
	if hdr.version != VersionDTLS12 && !(hdr.version == VersionDTLS10 && hdr.epoch == 0) {
		// A DTLS 1.2 peer may put DTLS 1.0 in the record of its first
		// ClientHello (RFC 6347 §4.1), so 1.0 is tolerated in epoch 0 only.
		return nil, dropBadVersion
	}
	if hdr.epoch == rl.readCur+1 && rl.readCur != 0xffff {
		return nil, dropFutureEpoch
	}
	r := &rl.read[hdr.epoch&1]
	if !r.valid || r.epoch != hdr.epoch {
		return nil, dropUnknownEpoch
	}
	switch r.window.Check(hdr.seq) {
	case replay.Duplicate:
		return nil, dropReplayed
	case replay.TooOld:
		return nil, dropTooOld
	}
	k := r.keys
	if k == nil {
		if len(body) > maxPlaintext {
			return nil, dropBadLength
		}
		r.window.Accept(hdr.seq)
		return body, dropNone
	}
	plain, reason := k.open(hdr, body)
	if reason != dropNone {
		return nil, reason
	}
	r.window.Accept(hdr.seq)
	return plain, dropNone
}

// open authenticates and decrypts one record's body in place.
func (k *epochKeys) open(hdr recordHeader, body []byte) ([]byte, dropReason) {
	if len(body) < k.overhead() || len(body) > maxPlaintext+maxCiphertextExpansion {
		// mbedTLS CVE-2023-43615: a record shorter than the tag must not
		// underflow; OpenSSL CVE-2026-75806: nor may it kill the association.
		return nil, dropBadLength
	}
	seq64 := uint64(hdr.epoch)<<48 | hdr.seq
	nonce, ad := &k.nonceBuf, &k.adBuf
	if k.explicitLen > 0 {
		copy(nonce[:4], k.iv[:4])
		copy(nonce[4:], body[:k.explicitLen])
	} else {
		k.nonce(nonce, seq64)
	}
	ciphertext := body[k.explicitLen:]
	plainLen := len(ciphertext) - k.aead.Overhead()
	if plainLen > maxPlaintext {
		return nil, dropBadLength
	}
	additionalData(ad, seq64, hdr.typ, hdr.version, plainLen)
	plain, err := k.aead.Open(ciphertext[:0], nonce[:], ciphertext, ad[:])
	if err != nil {
		return nil, dropBadMAC
	}
	return plain, dropNone
}

// discardReadEpoch forgets an old read epoch, so that its records are no
// longer accepted (tinydtls CVE-2021-42146: epoch reuse).
func (rl *recordLayer) discardReadEpoch(epoch uint16) {
	r := &rl.read[epoch&1]
	if r.valid && r.epoch == epoch && epoch != rl.readCur {
		*r = readEpoch{}
	}
}
