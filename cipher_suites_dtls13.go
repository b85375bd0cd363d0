package dtls

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"errors"

	"golang.org/x/crypto/chacha20"
)

// DTLS 1.3 cipher suites (RFC 8446 §B.4, RFC 9147 §4.2.3 for record
// number encryption). A 1.3 suite names only the record protection and the
// hash of the key schedule; key exchange and authentication are negotiated
// by extensions. The AEADs themselves are the 1.2 code's (aeadKind.newAEAD:
// crypto/aes with crypto/cipher's GCM, x/crypto's ChaCha20-Poly1305, and
// internal/ccm on crypto/aes for CCM and CCM_8); only the nonce (iv XOR
// the 64-bit sequence number, RFC 9147 §4 / RFC 8446 §5.3) differs.
//
// The identifiers stay unexported until the 1.3 handshake is wired in and
// Config can select them.
const (
	suiteTLSAES128GCMSHA256        uint16 = 0x1301
	suiteTLSAES256GCMSHA384        uint16 = 0x1302
	suiteTLSChaCha20Poly1305SHA256 uint16 = 0x1303
	suiteTLSAES128CCMSHA256        uint16 = 0x1304
	suiteTLSAES128CCM8SHA256       uint16 = 0x1305
)

// aeadNonceLen13 is iv_length for every 1.3 suite (RFC 8446 §5.3: the
// per-record nonce is max(8, N_MIN) = 12 bytes for all five AEADs).
const aeadNonceLen13 = 12

// rneSampleLen is how much of the ciphertext keys record number
// encryption (RFC 9147 §4.2.3: one AES block, or ChaCha20's 4-byte
// counter and 12-byte nonce). Ciphertexts are never shorter: the sender
// pads the DTLSInnerPlaintext, the receiver drops shorter records.
const rneSampleLen = 16

// AEAD limits of RFC 9147 §4.5.3 and Appendix B, per key (so per epoch
// and direction), in records.
const (
	// aeadGCMConfidentialityLimit is RFC 8446 §5.5's 2^24.5 full-size
	// records for AES-GCM, rounded down; RFC 9147 §4.5.3 applies it to
	// DTLS.
	aeadGCMConfidentialityLimit = 23726566
	// aeadCCMConfidentialityLimit is RFC 9147 Appendix B's 2^23 records
	// for AEAD_AES_128_CCM (and CCM_8, whose confidentiality is the same).
	aeadCCMConfidentialityLimit = 1 << 23
	// aeadChaChaConfidentialityLimit: RFC 9147 §4.5.3 / RFC 8446 §5.5 put
	// ChaCha20-Poly1305's limit above the number of possible records; the
	// 64-bit sequence number (which must not wrap) is the bound.
	aeadChaChaConfidentialityLimit = 1<<64 - 1
	// aeadGCMIntegrityLimit and aeadChaChaIntegrityLimit are RFC 9147
	// §4.5.3's 2^36 records failing authentication (AES-GCM,
	// ChaCha20-Poly1305).
	aeadGCMIntegrityLimit    = 1 << 36
	aeadChaChaIntegrityLimit = 1 << 36
	// aeadCCMIntegrityLimit is RFC 9147 §4.5.3's 2^23.5 for
	// AEAD_AES_128_CCM, rounded down.
	aeadCCMIntegrityLimit = 11863283
	// aeadCCM8IntegrityLimit is RFC 9147 Appendix B.3's 2^7 for
	// AEAD_AES_128_CCM_8: an 8-byte tag admits few forgery attempts, which
	// is why the suite needs extra safeguards and is off by default.
	aeadCCM8IntegrityLimit = 1 << 7
	// aeadKeyUpdateNum/aeadKeyUpdateDen is the fraction of a limit at
	// which a sender (for sealed records) or a receiver (for failed ones,
	// with update_requested) starts a KeyUpdate: RFC 9147 §4.5.3 wants the
	// update before the limit is reached, and a KeyUpdate needs a round
	// trip to be ACKed before the new keys replace the old, so it starts
	// with an eighth of the budget left.
	aeadKeyUpdateNum, aeadKeyUpdateDen = 7, 8
)

// rneKind names how a suite encrypts record numbers (RFC 9147 §4.2.3).
type rneKind uint8

const (
	rneAES      rneKind = iota + 1 // Mask = AES-ECB(sn_key, Ciphertext[0..15])
	rneChaCha20                    // Mask = ChaCha20(sn_key, counter=Ciphertext[0..3], nonce=Ciphertext[4..15])
)

// cipherSuite13 is one DTLS 1.3 cipher suite.
type cipherSuite13 struct {
	id     uint16
	name   string
	aead   aeadKind
	keyLen int
	hash   crypto.Hash
	rne    rneKind
	// confidentialityLimit and integrityLimit are the §4.5.3 limits, in
	// records sealed and records failing authentication per key.
	confidentialityLimit, integrityLimit uint64
	// ccm8 marks TLS_AES_128_CCM_8_SHA256, which may only be used when a
	// Config names it (RFC 9147 Appendix B.3; OpenSSL refuses it).
	ccm8 bool
}

// cipherSuites13 in our order of preference: AES-GCM first where AES is
// fast, ChaCha20-Poly1305, then CCM for constrained peers (CoAP's
// mandatory TLS_AES_128_CCM_SHA256, RFC 7925 and RFC 9147 §4.5.3).
var cipherSuites13 = []*cipherSuite13{
	{suiteTLSAES128GCMSHA256, "TLS_AES_128_GCM_SHA256", aeadAES128GCM, 16, crypto.SHA256, rneAES, aeadGCMConfidentialityLimit, aeadGCMIntegrityLimit, false},
	{suiteTLSAES256GCMSHA384, "TLS_AES_256_GCM_SHA384", aeadAES256GCM, 32, crypto.SHA384, rneAES, aeadGCMConfidentialityLimit, aeadGCMIntegrityLimit, false},
	{suiteTLSChaCha20Poly1305SHA256, "TLS_CHACHA20_POLY1305_SHA256", aeadChaCha20Poly1305, 32, crypto.SHA256, rneChaCha20, aeadChaChaConfidentialityLimit, aeadChaChaIntegrityLimit, false},
	{suiteTLSAES128CCMSHA256, "TLS_AES_128_CCM_SHA256", aeadAES128CCM, 16, crypto.SHA256, rneAES, aeadCCMConfidentialityLimit, aeadCCMIntegrityLimit, false},
	{suiteTLSAES128CCM8SHA256, "TLS_AES_128_CCM_8_SHA256", aeadAES128CCM8, 16, crypto.SHA256, rneAES, aeadCCMConfidentialityLimit, aeadCCM8IntegrityLimit, true},
}

// cipherSuite13ByID returns the 1.3 suite with the given id, or nil.
func cipherSuite13ByID(id uint16) *cipherSuite13 {
	for _, s := range cipherSuites13 {
		if s.id == id {
			return s
		}
	}
	return nil
}

// recordNumberMasker computes the record number encryption mask of RFC
// 9147 §4.2.3 from a ciphertext sample. One per epoch and direction.
type recordNumberMasker struct {
	block  cipher.Block // AES suites: the block cipher keyed with sn_key
	chacha [chacha20.KeySize]byte
	kind   rneKind
}

var errRNEKey = errors.New("dtls: wrong record number key length")

func newRecordNumberMasker(kind rneKind, snKey []byte) (*recordNumberMasker, error) {
	m := &recordNumberMasker{kind: kind}
	switch kind {
	case rneAES:
		b, err := aes.NewCipher(snKey)
		if err != nil {
			return nil, err
		}
		m.block = b
	case rneChaCha20:
		if len(snKey) != chacha20.KeySize {
			return nil, errRNEKey
		}
		copy(m.chacha[:], snKey)
	default:
		return nil, errors.New("dtls: unknown record number encryption")
	}
	return m, nil
}

// mask writes the 16-byte mask for the ciphertext sample (its first
// rneSampleLen bytes) into out. The caller guarantees len(sample) >=
// rneSampleLen.
func (m *recordNumberMasker) mask(out *[rneSampleLen]byte, sample []byte) {
	switch m.kind {
	case rneAES:
		// "Mask = AES-ECB(sn_key, Ciphertext[0..15])": one block.
		m.block.Encrypt(out[:], sample[:rneSampleLen])
	case rneChaCha20:
		// "Mask = ChaCha20(sn_key, Ciphertext[0..3], Ciphertext[4..15])":
		// the first four bytes are the block counter, little-endian as in
		// QUIC (RFC 9001 §5.4.4) and as pion and wolfSSL read them; the
		// next twelve the nonce. The mask is the key stream, i.e. zeros
		// encrypted.
		c, err := chacha20.NewUnauthenticatedCipher(m.chacha[:], sample[4:rneSampleLen])
		if err != nil {
			// Key and nonce sizes are fixed above; unreachable.
			clear(out[:])
			return
		}
		c.SetCounter(uint32(sample[0]) | uint32(sample[1])<<8 | uint32(sample[2])<<16 | uint32(sample[3])<<24)
		clear(out[:])
		c.XORKeyStream(out[:], out[:])
	}
}
