package dtls

import (
	"errors"
	"fmt"
)

// RecordDecrypter13 opens the DTLSCiphertext records (RFC 9147 §4) that
// one side of a captured DTLS 1.3 connection sent, for tools that analyze
// traffic (cmd/dtls analyze). It is given that side's traffic secrets,
// as an NSS key log names them (CLIENT_EARLY_TRAFFIC_SECRET for epoch 1,
// CLIENT_HANDSHAKE_TRAFFIC_SECRET or SERVER_HANDSHAKE_TRAFFIC_SECRET for
// epoch 2, CLIENT_TRAFFIC_SECRET_0 or SERVER_TRAFFIC_SECRET_0 for epoch
// 3), and derives from each the record keys and the sn_key of record
// number encryption with the "dtls13" labels (RFC 9147 §5.9, §4.2.3).
// Epochs after 3 follow from the newest application secret by the
// KeyUpdate step (RFC 8446 §7.2) when a record names them.
//
// For each record it parses the unified header, removes the record
// number encryption, rebuilds the 64-bit epoch and sequence number
// closest to those it saw last (RFC 9147 §4.2.2), authenticates and
// decrypts, and strips the padding of the DTLSInnerPlaintext. It keeps no
// replay state (a capture holds retransmissions and duplicates) and never
// modifies the caller's bytes. It is not safe for concurrent use.
type RecordDecrypter13 struct {
	suite  *cipherSuite13 // nil: headers only
	cidLen int
	epochs []*decryptEpoch13 // at most maxDecryptEpochs13, oldest first
	// current is the newest epoch a record opened in, from which the
	// two epoch bits of the next one are expanded.
	current uint64
	scratch []byte
}

// decryptEpoch13 is one epoch of a RecordDecrypter13.
type decryptEpoch13 struct {
	epoch    uint64
	secret   []byte // kept for the KeyUpdate step from epoch 3 on
	keys     *epochKeys13
	expected uint64 // one past the highest sequence number opened
}

// Bounds of a RecordDecrypter13.
const (
	// maxDecryptEpochs13 bounds the epochs a RecordDecrypter13 holds:
	// 1, 2 and 3 and the five newest after KeyUpdates. The unified header
	// tells at most four apart (RFC 9147 §4.2.2); the rest cover records
	// that a capture shows late.
	maxDecryptEpochs13 = 8
	// maxKeyUpdateSteps13 bounds the KeyUpdate steps one record may make
	// the decrypter derive: two epoch bits reach at most two epochs past
	// the current one (RFC 9147 §4.2.2's closest value).
	maxKeyUpdateSteps13 = 2
)

// ErrNoTrafficSecret is returned by RecordDecrypter13.Open for a record of
// an epoch whose traffic secret it was not given (nor could derive).
var ErrNoTrafficSecret = errors.New("dtls: no traffic secret for the record's epoch")

// Record13 is one DTLSCiphertext that RecordDecrypter13.Open read. The
// header fields are set for every record; Epoch, Seq, ContentType,
// Content and Padding only when Decrypted.
type Record13 struct {
	// Len is the length of the whole record, header included.
	Len int
	// CID is the connection ID in the header (nil without the C bit). It
	// aliases the datagram given to Open.
	CID []byte
	// EpochBits are the two low bits of the epoch, as sent in clear.
	EpochBits uint8
	// SeqLen is the length of the encrypted sequence number, 1 or 2
	// bytes; HasLength tells whether the header has a length field (only
	// the last record of a datagram may omit it).
	SeqLen    int
	HasLength bool
	// CiphertextLen is the length of encrypted_record: the protected
	// DTLSInnerPlaintext and the AEAD tag.
	CiphertextLen int

	Decrypted   bool
	Epoch, Seq  uint64
	ContentType uint8  // the inner content type
	Content     []byte // a new slice
	Padding     int    // zero bytes after the content type
}

// NewRecordDecrypter13 returns a decrypter for the records one side sent
// under the given DTLS 1.3 cipher suite (0x1301..0x1305). cidLen is the
// length of the connection ID that the records carry: the one the
// receiving side asked for in its connection_id extension (RFC 9146,
// RFC 9147 §9), 0 for none. A suite of 0 (not yet known) gives a decrypter
// that only parses headers.
func NewRecordDecrypter13(suite uint16, cidLen int) (*RecordDecrypter13, error) {
	if cidLen < 0 || cidLen > maxCIDLen {
		return nil, errors.New("dtls: connection ID length out of range")
	}
	d := &RecordDecrypter13{cidLen: cidLen}
	if suite != 0 {
		if d.suite = cipherSuite13ByID(suite); d.suite == nil {
			return nil, fmt.Errorf("dtls: %#04x is not a DTLS 1.3 cipher suite", suite)
		}
	}
	return d, nil
}

// SetTrafficSecret gives the traffic secret of an epoch (1, 2, 3, or a
// later one): secrets are as long as the suite's hash.
func (d *RecordDecrypter13) SetTrafficSecret(epoch uint64, secret []byte) error {
	if d.suite == nil {
		return errors.New("dtls: cipher suite not known")
	}
	if len(secret) != d.suite.hash.Size() {
		return fmt.Errorf("dtls: %d-byte traffic secret for a suite with a %d-byte hash", len(secret), d.suite.hash.Size())
	}
	return d.install(epoch, secret)
}

func (d *RecordDecrypter13) install(epoch uint64, secret []byte) error {
	k, err := newEpochKeys13(d.suite, epoch, secret)
	if err != nil {
		return err
	}
	e := &decryptEpoch13{epoch: epoch, secret: append([]byte(nil), secret...), keys: k}
	for i, old := range d.epochs {
		if old.epoch == epoch {
			d.epochs[i] = e
			return nil
		}
	}
	if len(d.epochs) == maxDecryptEpochs13 {
		// Forget the oldest epoch past 3, else the oldest.
		drop := 0
		for i, old := range d.epochs {
			if old.epoch > 3 {
				drop = i
				break
			}
		}
		d.epochs = append(d.epochs[:drop], d.epochs[drop+1:]...)
	}
	// Keep the list in epoch order.
	i := len(d.epochs)
	for i > 0 && d.epochs[i-1].epoch > epoch {
		i--
	}
	d.epochs = append(d.epochs, nil)
	copy(d.epochs[i+1:], d.epochs[i:])
	d.epochs[i] = e
	return nil
}

func (d *RecordDecrypter13) held(epoch uint64) *decryptEpoch13 {
	for _, e := range d.epochs {
		if e.epoch == epoch {
			return e
		}
	}
	return nil
}

// derive makes the keys of epoch by KeyUpdate steps from the newest held
// application epoch (3 or later) below it, if that takes at most
// maxKeyUpdateSteps13 steps.
func (d *RecordDecrypter13) derive(epoch uint64) *decryptEpoch13 {
	if d.suite == nil || epoch <= 3 || len(d.epochs) == 0 {
		return nil
	}
	base := d.epochs[len(d.epochs)-1]
	if base.epoch < 3 || base.epoch >= epoch || epoch-base.epoch > maxKeyUpdateSteps13 {
		return nil
	}
	secret := base.secret
	for e := base.epoch + 1; e <= epoch; e++ {
		next, err := nextTrafficSecret13(d.suite.hash, labelPrefixDTLS13, secret)
		if err != nil || d.install(e, next) != nil {
			return nil
		}
		secret = next
	}
	return d.held(epoch)
}

// Open reads the first record of datagram, which must start with a
// unified header (first byte 0x20..0x3f). It returns the record and what
// follows it in the datagram. When the header cannot be parsed, err is
// set and rest is nil: the record boundaries are lost. When the header
// parses but the record does not open (ErrNoTrafficSecret, or a failed
// authentication under every candidate epoch), err is set and rec holds
// the header fields, and rest the next record.
func (d *RecordDecrypter13) Open(datagram []byte) (rec Record13, rest []byte, err error) {
	h, hdr, body, rest, reason := parseUnifiedHeader(datagram, d.cidLen)
	if reason != dropNone {
		return rec, nil, fmt.Errorf("dtls: not a DTLS 1.3 record with a %d-byte CID: %v", d.cidLen, reason)
	}
	rec = Record13{Len: len(hdr) + len(body), CID: h.cid, EpochBits: h.epochBits, SeqLen: h.seqLen,
		HasLength: h.hasLength, CiphertextLen: len(body)}
	// The candidate epochs: the one closest to the current epoch (derived
	// by KeyUpdate steps if need be), then any other held epoch with the
	// same low bits, newest first. Authentication tells which is right.
	first := reconstructEpoch(d.current, h.epochBits)
	var candidates [maxDecryptEpochs13 + 1]*decryptEpoch13
	n := 0
	if e := d.held(first); e != nil {
		candidates[n], n = e, n+1
	} else if e := d.derive(first); e != nil {
		candidates[n], n = e, n+1
	}
	for i := len(d.epochs) - 1; i >= 0; i-- {
		if e := d.epochs[i]; e.epoch != first && uint8(e.epoch&uhEpochMask) == h.epochBits {
			candidates[n], n = e, n+1
		}
	}
	if n == 0 {
		return rec, rest, ErrNoTrafficSecret
	}
	for _, e := range candidates[:n] {
		// Work on a copy: unmasking writes into the header, and opening
		// decrypts in place.
		d.scratch = append(d.scratch[:0], datagram[:rec.Len]...)
		sh, shdr, sbody := h, d.scratch[:len(hdr)], d.scratch[len(hdr):]
		e.keys.unmaskSeq(&sh, shdr, sbody)
		seq := reconstructSeq(e.expected, sh.seqBits, sh.seqLen)
		typ, content, _, reason := e.keys.openRecord13(shdr, sbody, seq)
		if reason != dropNone {
			continue
		}
		if seq >= e.expected && seq < maxSequence13 {
			e.expected = seq + 1
		}
		d.current = max(d.current, e.epoch)
		rec.Decrypted, rec.Epoch, rec.Seq = true, e.epoch, seq
		rec.ContentType = uint8(typ)
		rec.Content = append([]byte(nil), content...)
		rec.Padding = len(body) - e.keys.aead.Overhead() - len(content) - 1
		return rec, rest, nil
	}
	return rec, rest, errors.New("dtls: record does not authenticate under any epoch held")
}
