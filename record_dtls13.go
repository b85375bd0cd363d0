package dtls

// The DTLS 1.3 record layer pieces (RFC 9147 §4): the unified header of
// DTLSCiphertext, first-byte demultiplexing against DTLS 1.2 and RFC 9146
// CID records, record number encryption, sequence number and epoch
// reconstruction, the DTLSInnerPlaintext with its padding, AEAD protection
// with the per-record nonce, and the AEAD limits of §4.5.3.
//
// How these pieces (this file, key_schedule_dtls13.go, ack_dtls13.go,
// keyshare_dtls13.go, cipher_suites_dtls13.go,
// handshake_messages_dtls13.go) plug into the Conn, as built (issue 12;
// what is not built yet is marked so):
//
// Demultiplexing. The read loop (Conn.readRecord) splits a datagram
// record by record by its first byte (classifyRecord): plaintext records
// to the 1.2 header code (epoch 0 in both versions: ClientHello,
// HelloRetryRequest, ServerHello, plaintext alerts, and ACKs before any
// keys); tls12_cid to the 1.2 CID path; unified headers to
// Conn.readRecord13 and recordLayer.open13, only once 1.3 is negotiated
// (a client that offered 1.3 keeps a few until its ServerHello; anything
// else drops them). The version is decided once, from the ServerHello's
// supported_versions (client) or the ClientHello's (select13, and the
// Listener's hello gate), and selects the record path for the life of
// the connection.
//
// Epoch table. There is one receive path: recordLayer's table of 64-bit
// epochs (record.go, maxEpochs), whose slots take an epochKeys13 for a
// 1.3 epoch (installReadEpoch13, installWriteEpoch13). The unified
// header's two epoch bits pick the held epoch with those low bits
// (readState13): installReadEpoch13 keeps the held epochs distinct in
// them, the reconstruction of RFC 9147 §4.2.2 restricted to the epochs we
// have keys for, and each slot reconstructs sequence numbers around its
// own expected value. A 1.3 connection holds 0, 2 and 3: the server keeps
// epoch 2's read keys after the handshake to take, and re-ACK, a
// retransmitted client Finished. A peer's KeyUpdate adds read epoch N+1
// beside N; ours (sent when the peer asks) moves the write side only once
// it is ACKed (erratum 8047; Conn.handleKeyUpdate). Our own KeyUpdate
// (Conn.UpdateKeys, or Write at usageKeyUpdate of the write key) follows
// the same rule; the peer's old read epoch goes one retransmission
// timeout after a record of its new one decrypts (maxReadEpochs13 in
// conn_dtls13.go). Epoch 1, 0-RTT, is read by a server that accepted
// early data and written by its client (early_data_dtls13.go); epoch 3's
// keys replace it, sharing its epoch bits, once the client's Finished
// verified. A key at its integrity limit (usageExhausted on failures)
// closes the connection (§4.5.3), the one case where bad records are not
// silent.
//
// ACKs (§7), built in transport_dtls13.go and conn_dtls13.go. The
// handshake transport (flight.go, sans-I/O) remembers, for every
// handshake record it sends, the recordNumber and the byte range of the
// message it carried; an ACK marks those bytes received, a retransmission
// resends only the rest, in new records, and a flight ACKed in full stops
// its timer. On the receive side it lists the recordNumbers of the
// peer's handshake records it processed (bounded by maxACKRecordNumbers)
// and ACKs them when the ACK timer, a quarter of the retransmission
// timeout (BoringSSL's choice), fires while the peer's flight is
// incomplete; our next flight is the implicit ACK and clears the list.
// The server ACKs the client's final flight at once. An ACK goes in the
// current write epoch, never epoch 1 (epoch 0 then; erratum 8107), and
// only once 1.3 is known. message_seq never resets, and the transcript
// hashes messages with appendTranscriptMessage13's 4-byte header.
//
// HelloRetryRequest and the hello gate (hello_gate.go, cookie_dtls13.go).
// The Listener's gate answers a first ClientHello that offers 1.3 (parsed
// by clientHelloMsg13, fragmented or not, through the same bounded
// pre-cookie pool, with no cryptography but hashing it into the cookie
// and the cookie's HMAC) with a stateless HelloRetryRequest, never larger
// than what the client sent. Its cookie, one format for the Listener and
// a Conn made by Server, carries Hash(ClientHello1), the chosen suite and
// group, the time and a key id in the clear, under an HMAC (nothing in it
// is secret: cookie_dtls13.go says why no AEAD) with the gate's rotating
// keys or, in a fleet, the period keys derived from Config.FleetSecret,
// over those fields, the client address and the ClientHello fields the
// second one repeats. selected_group asks for our preferred group
// (X25519MLKEM768 by default) when the client's share is for
// another, so the post-quantum group costs no round trip beyond the
// cookie's. A second ClientHello whose cookie verifies (one HMAC, with
// the key its key id names, compared in constant time; same address;
// younger than maxHRRCookieAge) creates the connection, which takes what
// the cookie carries from the Listener (Conn.admitted13) rather than
// checking it again; only then do the key exchange and ML-KEM run, and
// the transcript starts with message_hash of the hash from the cookie
// followed by the HelloRetryRequest rebuilt byte for byte from the
// cookie's fields. A Conn made by Server sends the same cookie in a
// HelloRetryRequest of its own flight.
//
// Key schedule. The handshake state keeps the keySchedule13 stages; each
// traffic secret becomes an epoch through newEpochKeys13 and a key log
// line (CLIENT_HANDSHAKE_TRAFFIC_SECRET and the rest).

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"slices"
)

// The first byte of a DTLSCiphertext unified header (RFC 9147 §4):
//
//	 0 1 2 3 4 5 6 7
//	+-+-+-+-+-+-+-+-+
//	|0|0|1|C|S|L|E E|
//	+-+-+-+-+-+-+-+-+
//
// followed by the Connection ID (if C), an 8-bit (S=0) or 16-bit (S=1)
// sequence number, and a 16-bit length (if L).
const (
	uhFixedMask = 0xe0 // the top three bits, which must read 001
	uhFixedBits = 0x20
	uhCIDBit    = 0x10 // C: a Connection ID follows the first byte
	uhSeq16Bit  = 0x08 // S: the sequence number is 16 bits, else 8
	uhLengthBit = 0x04 // L: a 16-bit length is present
	uhEpochMask = 0x03 // EE: the low two bits of the epoch
)

// Sizes and bounds of DTLS 1.3 records.
const (
	// maxUnifiedHeaderLen is the longest unified header: first byte, a
	// CID of maxCIDLen bytes, 16-bit sequence number, 16-bit length.
	maxUnifiedHeaderLen = 1 + maxCIDLen + 2 + 2
	// maxCiphertext13 bounds encrypted_record: RFC 8446 §5.2 "The length
	// MUST NOT exceed 2^14 + 256 bytes"; a longer record is dropped.
	maxCiphertext13 = 1<<14 + 256
	// maxInnerPlaintext13 bounds the whole DTLSInnerPlaintext (content,
	// type and padding): RFC 8446 §5.4 "The full encoded TLSInnerPlaintext
	// MUST NOT exceed 2^14 + 1 octets."
	maxInnerPlaintext13 = 1<<14 + 1
	// maxEpoch13 is the largest epoch we use: 2^48-1, the bound RFC 9147
	// §8 with errata 8047 and 8050 puts on epochs (DTLS13-NOTES §1). ACKs
	// carry 64 bits, but the key update path never gets near it: a
	// KeyUpdate needs an ACKed round trip, so even 2^16 of them take hours.
	maxEpoch13 = 1<<48 - 1
	// maxSequence13 is the largest sequence number in an epoch: the
	// nonce takes all 64 bits, which must not wrap (RFC 8446 §5.3: an
	// implementation that would need to wrap "MUST either rekey ... or
	// terminate the connection"); in practice the AEAD limits end an
	// epoch long before.
	maxSequence13 = 1<<64 - 1
)

// Record classes by first byte (RFC 9147 §4.1, Figure 4).
type recordClass uint8

const (
	classInvalid      recordClass = iota // reject silently
	classPlaintext                       // DTLSPlaintext: 13-byte header (alert 21, handshake 22, ACK 26; CCS 20 and application_data 23 in 1.2 only)
	classCID12                           // tls12_cid (25): a DTLS 1.2 record with a CID (RFC 9146)
	classCiphertext13                    // 001xxxxx: a DTLS 1.3 unified header
)

// classifyRecord demultiplexes a record by its first byte, as RFC 9147
// §4.1 describes: 20, 21, 22, 23, 26 and 27 (RFC 9853's
// return_routability_check) have the DTLSPlaintext/DTLS 1.2
// header, 25 is a DTLS 1.2 CID record, 0x20..0x3f (the "31 < OCT < 64"
// range) a DTLS 1.3 DTLSCiphertext; everything else is dropped. 24
// (heartbeat) is not implemented and drops too. Which classes a
// connection accepts in its current state (no plaintext application
// data, no tls12_cid in 1.3...) is the caller's decision.
func classifyRecord(first byte) recordClass {
	switch {
	case first&uhFixedMask == uhFixedBits:
		return classCiphertext13
	case first == byte(recordTypeTLS12CID):
		return classCID12
	case first == byte(recordTypeChangeCipherSpec), first == byte(recordTypeAlert),
		first == byte(recordTypeHandshake), first == byte(recordTypeApplicationData),
		first == byte(recordTypeACK), first == byte(recordTypeRRC):
		return classPlaintext
	}
	return classInvalid
}

// unifiedHeader is a parsed DTLSCiphertext header. The sequence number
// bits are as found on the wire: encrypted until unmaskSeq runs.
type unifiedHeader struct {
	first     byte
	cid       []byte // aliases the datagram
	seqBits   uint16 // low 8 or 16 bits of the sequence number
	seqLen    int    // 1 or 2
	epochBits uint8  // low 2 bits of the epoch
	hasLength bool
	headerLen int // bytes from the first byte to encrypted_record
}

// parseUnifiedHeader reads one DTLSCiphertext from the start of datagram.
// cidLen is the length of the CID we asked the peer to use (0 for none):
// the CID's length is never taken from the peer's bytes (mbedTLS
// CVE-2022-46393). A record must carry a CID exactly when we negotiated a
// non-empty one (RFC 9146 §3 and RFC 9147 §9). Without the L bit the
// record runs to the end of the datagram (RFC 9147 §4: only the last
// record may omit it). It returns the header, the header bytes (the AEAD
// additional data once the sequence number is unmasked), the
// encrypted_record, and what follows in the datagram. A ciphertext
// shorter than the RNE sample or longer than maxCiphertext13 is refused
// (RFC 9147 §4.2.3; RFC 8446 §5.2).
func parseUnifiedHeader(datagram []byte, cidLen int) (h unifiedHeader, hdr, body, rest []byte, reason dropReason) {
	if len(datagram) == 0 || datagram[0]&uhFixedMask != uhFixedBits {
		return h, nil, nil, nil, dropBadHeader
	}
	h.first = datagram[0]
	off := 1
	if h.first&uhCIDBit != 0 {
		if cidLen == 0 {
			return h, nil, nil, nil, dropBadCID
		}
		if len(datagram) < off+cidLen {
			return h, nil, nil, nil, dropBadHeader
		}
		h.cid = datagram[off : off+cidLen : off+cidLen]
		off += cidLen
	} else if cidLen != 0 {
		return h, nil, nil, nil, dropBadCID
	}
	h.seqLen = 1
	if h.first&uhSeq16Bit != 0 {
		h.seqLen = 2
	}
	if len(datagram) < off+h.seqLen {
		return h, nil, nil, nil, dropBadHeader
	}
	if h.seqLen == 2 {
		h.seqBits = binary.BigEndian.Uint16(datagram[off:])
	} else {
		h.seqBits = uint16(datagram[off])
	}
	off += h.seqLen
	h.epochBits = h.first & uhEpochMask
	length := len(datagram) - off
	if h.first&uhLengthBit != 0 {
		h.hasLength = true
		if len(datagram) < off+2 {
			return h, nil, nil, nil, dropBadHeader
		}
		length = int(binary.BigEndian.Uint16(datagram[off:]))
		off += 2
		if len(datagram)-off < length {
			return h, nil, nil, nil, dropBadHeader
		}
	}
	h.headerLen = off
	if length < rneSampleLen || length > maxCiphertext13 {
		return h, nil, nil, nil, dropBadLength
	}
	hdr = datagram[:off:off]
	body = datagram[off : off+length : off+length]
	rest = datagram[off+length:]
	return h, hdr, body, rest, dropNone
}

// appendUnifiedHeader appends a unified header for a record of epoch and
// sequence number seq with the sequence number in clear: the AEAD's
// additional data is this header as written (RFC 9147 §4), and
// sealRecord13 masks the sequence number afterwards. seq16 picks the
// 16-bit form: RFC 9147 §4 allows both, and only the 16-bit one lets the
// receiver reconstruct across a gap of more than 2^7 records (2^15 with
// it). withLength includes the length field, which every record but the
// last of a datagram needs. cid must be the length the peer asked for.
func appendUnifiedHeader(dst []byte, cid []byte, epoch, seq uint64, seq16, withLength bool, length int) []byte {
	first := byte(uhFixedBits) | byte(epoch&uhEpochMask)
	if len(cid) > 0 {
		first |= uhCIDBit
	}
	if seq16 {
		first |= uhSeq16Bit
	}
	if withLength {
		first |= uhLengthBit
	}
	dst = append(dst, first)
	dst = append(dst, cid...)
	if seq16 {
		dst = append(dst, byte(seq>>8), byte(seq))
	} else {
		dst = append(dst, byte(seq))
	}
	if withLength {
		dst = append(dst, byte(length>>8), byte(length))
	}
	return dst
}

// reconstruct returns the value closest to expected whose low bits bits
// equal low: RFC 9147 §4.2.2 has the receiver pick the full sequence
// number closest to the one it expects, which is the algorithm of RFC
// 9000 Appendix A.3 (ties go to the larger value). max bounds the result: a candidate
// above it is not taken. expected is the next value the receiver expects:
// one more than the highest authenticated one so far.
func reconstruct(expected, low uint64, bits uint, max uint64) uint64 {
	win := uint64(1) << bits
	hwin := win / 2
	mask := win - 1
	candidate := (expected &^ mask) | (low & mask)
	// candidate is within one window of expected; move it to the side
	// where it is closer, without wrapping past 0 or max.
	switch {
	case expected >= hwin && candidate <= expected-hwin && candidate <= max-win:
		candidate += win
	case candidate > expected && candidate-expected > hwin && candidate >= win:
		candidate -= win
	}
	if candidate > max && candidate >= win {
		candidate -= win
	}
	return candidate
}

// reconstructSeq rebuilds a 64-bit sequence number from its low 8 or 16
// bits, closest to expected.
func reconstructSeq(expected uint64, low uint16, seqLen int) uint64 {
	return reconstruct(expected, uint64(low), uint(8*seqLen), maxSequence13)
}

// reconstructEpoch rebuilds an epoch from its low two bits, closest to the
// receiver's current epoch. The caller then looks the result up among the
// epochs it holds keys for and drops the record if it has none: RFC 9147
// §4.2.2 leaves at most four epochs distinguishable, so the table of
// read epochs stays within a window of four.
func reconstructEpoch(current uint64, low uint8) uint64 {
	return reconstruct(current, uint64(low), 2, maxEpoch13)
}

// aeadUsage13 counts, per key, the records sealed and the records that
// failed authentication, against the suite's RFC 9147 §4.5.3 limits.
type aeadUsage13 struct {
	sealed, failed                       uint64
	confidentialityLimit, integrityLimit uint64
}

// usage13 reports what the counters ask of the connection.
type usage13 uint8

const (
	usageOK        usage13 = iota
	usageKeyUpdate         // past aeadKeyUpdateNum/Den of a limit: send a KeyUpdate (update_requested after failures)
	usageExhausted         // at the limit: stop using the key; after failures, close the connection (RFC 9147 §4.5.3)
)

func checkLimit(n, limit uint64) usage13 {
	switch {
	case n >= limit:
		return usageExhausted
	case n >= limit/aeadKeyUpdateDen*aeadKeyUpdateNum:
		return usageKeyUpdate
	}
	return usageOK
}

// aeadControlReserve bounds the records a write key keeps, below its
// confidentiality limit, for ACKs and the retransmissions of our
// KeyUpdate: application data stops that many records short of the limit
// (a sixteenth of it when smaller), so that the KeyUpdate that retires
// the key can still be resent and the peer's records ACKed while Write
// waits for the new key. An ACK that would pass the limit is not sent.
const aeadControlReserve = 1024

// appSealState is sealState for application data, which leaves the
// aeadControlReserve to the handshake transport.
func (u *aeadUsage13) appSealState() usage13 {
	reserve := min(u.confidentialityLimit/16, aeadControlReserve)
	if u.sealed >= u.confidentialityLimit-reserve {
		return usageExhausted
	}
	return checkLimit(u.sealed, u.confidentialityLimit)
}

// sealState reports whether the key may seal another record. It does not
// count: noteSealed does, after a record went out.
func (u *aeadUsage13) sealState() usage13 { return checkLimit(u.sealed, u.confidentialityLimit) }

func (u *aeadUsage13) noteSealed() { u.sealed++ }

// noteFailed counts a record that failed authentication and reports the
// state: once the failures reach the integrity limit, RFC 9147 §4.5.3
// has the connection closed (the one exception to dropping bad records
// silently), with a KeyUpdate requested before that point.
func (u *aeadUsage13) noteFailed() usage13 {
	u.failed++
	return checkLimit(u.failed, u.integrityLimit)
}

// epochKeys13 protects the records of one epoch in one direction.
type epochKeys13 struct {
	epoch uint64
	aead  cipher.AEAD
	iv    [aeadNonceLen13]byte
	rne   *recordNumberMasker
	usage aeadUsage13
	// updateAsked: failures of this read key neared the integrity limit
	// and we asked the peer for a KeyUpdate (once per key).
	updateAsked bool
	// Scratch, as in epochKeys: kept here so that it does not escape
	// through the cipher.AEAD interface per record. One direction's lock
	// guards it.
	nonceBuf [aeadNonceLen13]byte
	maskBuf  [rneSampleLen]byte
}

var errLimitReached = errors.New("dtls: AEAD usage limit of the key reached")

// newEpochKeys13 derives the keys of one epoch and direction from its
// traffic secret (RFC 8446 §7.3, RFC 9147 §4.2.3).
func newEpochKeys13(suite *cipherSuite13, epoch uint64, trafficSecret []byte) (*epochKeys13, error) {
	if epoch > maxEpoch13 {
		return nil, errors.New("dtls: epoch out of range")
	}
	tk, err := deriveTrafficKeys13(suite.hash, labelPrefixDTLS13, trafficSecret, suite.keyLen)
	if err != nil {
		return nil, err
	}
	return newEpochKeys13FromKeys(suite, epoch, tk)
}

func newEpochKeys13FromKeys(suite *cipherSuite13, epoch uint64, tk trafficKeys13) (*epochKeys13, error) {
	if len(tk.key) != suite.keyLen || len(tk.iv) != aeadNonceLen13 {
		return nil, errors.New("dtls: internal error: wrong key or IV length")
	}
	a, err := suite.aead.newAEAD(tk.key)
	if err != nil {
		return nil, err
	}
	m, err := newRecordNumberMasker(suite.rne, tk.snKey)
	if err != nil {
		return nil, err
	}
	k := &epochKeys13{epoch: epoch, aead: a, rne: m,
		usage: aeadUsage13{confidentialityLimit: suite.confidentialityLimit, integrityLimit: suite.integrityLimit}}
	copy(k.iv[:], tk.iv)
	return k, nil
}

// nonce is RFC 9147 §4 / RFC 8446 §5.3's per-record nonce: the 64-bit
// sequence number, left-padded to iv_length, XORed with the IV. The epoch
// is not part of it: every epoch has its own keys.
func (k *epochKeys13) nonce(seq uint64) []byte {
	k.nonceBuf = k.iv
	for i := range 8 {
		k.nonceBuf[aeadNonceLen13-1-i] ^= byte(seq >> (8 * i))
	}
	return k.nonceBuf[:]
}

// minInnerPlaintext is the shortest DTLSInnerPlaintext that yields an
// encrypted_record of at least rneSampleLen bytes with this key's tag.
func (k *epochKeys13) minInnerPlaintext() int {
	return max(1, rneSampleLen-k.aead.Overhead())
}

// overhead is what a record adds to its content: the longest header
// (16-bit sequence number and length), the inner content type and the
// tag. It leaves out the padding that minInnerPlaintext adds to very short
// records (only with CCM_8's 8-byte tag), which never matters for sizing
// records to the MTU.
func (k *epochKeys13) overhead(cidLen int) int {
	return 1 + cidLen + 2 + 2 + 1 + k.aead.Overhead()
}

// sealRecord13 appends one protected DTLSCiphertext to dst: the unified
// header with the low 16 bits of seq (8 if !seq16), the
// DTLSInnerPlaintext {content, type, padding zeros} sealed with the
// per-record nonce and the header as additional data, and then the
// sequence number bytes in the header XORed with the record number mask
// (RFC 9147 §4.2.3). padding adds that many zeros; the record is padded
// further where the ciphertext would be shorter than the RNE sample.
// It counts the record against the confidentiality limit and refuses to
// seal once the limit is reached.
func (k *epochKeys13) sealRecord13(dst []byte, cid []byte, seq uint64, typ recordType, content []byte, padding int, seq16, withLength bool) ([]byte, error) {
	if k.usage.sealState() == usageExhausted {
		return dst, errLimitReached
	}
	if typ == 0 || padding < 0 {
		return dst, errors.New("dtls: invalid record content type or padding")
	}
	inner := len(content) + 1 + padding
	inner = max(inner, k.minInnerPlaintext())
	if inner > maxInnerPlaintext13 {
		return dst, errors.New("dtls: record content and padding too long")
	}
	ctLen := inner + k.aead.Overhead()
	start := len(dst)
	dst = appendUnifiedHeader(dst, cid, k.epoch, seq, seq16, withLength, ctLen)
	hdrEnd := len(dst)
	// The plaintext is built in place after the header, then sealed over
	// itself (cipher.AEAD allows exact overlap).
	dst = append(dst, content...)
	dst = append(dst, byte(typ))
	for range inner - len(content) - 1 {
		dst = append(dst, 0)
	}
	// Room for the tag, so that Seal does not reallocate.
	dst = slices.Grow(dst, k.aead.Overhead())
	hdr := dst[start:hdrEnd]
	pt := dst[hdrEnd:]
	sealed := k.aead.Seal(pt[:0], k.nonce(seq), pt, hdr)
	dst = dst[:hdrEnd+len(sealed)]
	k.rne.mask(&k.maskBuf, sealed)
	off := start + 1 + len(cid)
	n := 1
	if seq16 {
		n = 2
	}
	for i := range n {
		dst[off+i] ^= k.maskBuf[i]
	}
	k.usage.noteSealed()
	return dst, nil
}

// unmaskSeq decrypts the sequence number bits of h with this key's record
// number mask over body (RFC 9147 §4.2.3), and writes them back into hdr,
// which then holds the header as the sender authenticated it. It works on
// the caller's datagram: call it once, with the keys of the epoch the
// header names.
func (k *epochKeys13) unmaskSeq(h *unifiedHeader, hdr, body []byte) {
	k.rne.mask(&k.maskBuf, body)
	off := 1 + len(h.cid)
	for i := range h.seqLen {
		hdr[off+i] ^= k.maskBuf[i]
	}
	if h.seqLen == 2 {
		h.seqBits = binary.BigEndian.Uint16(hdr[off:])
	} else {
		h.seqBits = uint16(hdr[off])
	}
}

// openRecord13 authenticates and decrypts the encrypted_record body with
// the full sequence number seq (reconstructed by the caller from the
// unmasked bits) and hdr as additional data. It decrypts in place and
// returns the content and its inner content type, with the padding
// removed (RFC 8446 §5.4: the type is the last non-zero byte). A failure
// counts against the integrity limit; the returned usage13 tells the
// caller when to request a KeyUpdate or close. Records that fail are
// dropped silently (RFC 9147 §4.5.2): reason says why.
func (k *epochKeys13) openRecord13(hdr, body []byte, seq uint64) (typ recordType, content []byte, state usage13, reason dropReason) {
	pt, err := k.aead.Open(body[:0], k.nonce(seq), body, hdr)
	if err != nil {
		return 0, nil, k.usage.noteFailed(), dropBadMAC
	}
	if len(pt) > maxInnerPlaintext13 {
		return 0, nil, usageOK, dropBadLength
	}
	// Strip the zero padding. The scan is bounded by the record length
	// (maxCiphertext13).
	i := len(pt) - 1
	for i >= 0 && pt[i] == 0 {
		i--
	}
	if i < 0 {
		// All zeros: no content type. RFC 8446 §5.4 makes this an
		// unexpected_message; RFC 9147 §4.5.2 lets DTLS drop it.
		return 0, nil, usageOK, dropBadContentType
	}
	return recordType(pt[i]), pt[:i:i], usageOK, dropNone
}

// writeUsage13 reports the confidentiality state of the current DTLS 1.3
// write key for application data (usageOK for DTLS 1.2 epochs and epoch
// 0).
func (rl *recordLayer) writeUsage13() usage13 {
	if w := rl.writeState(rl.writeCur); w != nil && w.keys13 != nil {
		return w.keys13.usage.appSealState()
	}
	return usageOK
}

// readFailures13 returns how many records of read epoch failed
// authentication.
func (rl *recordLayer) readFailures13(epoch uint64) uint64 {
	if r := rl.readState(epoch); r != nil && r.keys13 != nil {
		return r.keys13.usage.failed
	}
	return 0
}

// markUpdateAsked13 notes that we asked the peer to replace the keys of
// read epoch epoch (their failures neared the integrity limit), and
// reports whether this is the first time.
func (rl *recordLayer) markUpdateAsked13(epoch uint64) bool {
	r := rl.readState(epoch)
	if r == nil || r.keys13 == nil || r.keys13.updateAsked {
		return false
	}
	r.keys13.updateAsked = true
	return true
}

// discardRead13Before drops the DTLS 1.3 read epochs older than epoch
// (epoch 0's plaintext slot stays: it never opens protected records).
func (rl *recordLayer) discardRead13Before(epoch uint64) {
	for i := range maxEpochs {
		r := rl.readAt(i)
		if r == nil {
			break
		}
		if r.keys13 != nil && r.epoch < epoch && r.epoch != rl.readCur {
			*r = readEpoch{epoch: noEpoch}
		}
	}
}
