package dtls

// The DTLS 1.3 key schedule (RFC 9147 §5.9, RFC 8446 §7.1).
//
// DTLS 1.3 derives its secrets exactly as TLS 1.3 does, except that the
// HkdfLabel's label carries the prefix "dtls13" (six bytes, no trailing
// space) where TLS 1.3 has "tls13 " (RFC 9147 §5.9). Go's own TLS 1.3 key
// schedule (crypto/internal/fips140/tls13) hard-codes "tls13 " and is not
// importable, so this file rebuilds the schedule on crypto/hkdf and
// crypto/hmac. The prefix is a parameter of hkdfExpandLabel only so that
// the tests can run the same code with "tls13 " against RFC 8448's
// published values; every caller in the library uses labelPrefixDTLS13.
//
// The shape follows RFC 8446 §7.1:
//
//	            0
//	            |
//	  PSK ->  HKDF-Extract = Early Secret
//	            +-> Derive-Secret(., "ext binder" | "res binder", "") = binder_key
//	            +-> Derive-Secret(., "c e traffic", ClientHello)
//	            +-> Derive-Secret(., "e exp master", ClientHello)
//	            v
//	      Derive-Secret(., "derived", "")
//	            |
//	(EC)DHE -> HKDF-Extract = Handshake Secret
//	            +-> Derive-Secret(., "c hs traffic", ClientHello...ServerHello)
//	            +-> Derive-Secret(., "s hs traffic", ClientHello...ServerHello)
//	            v
//	      Derive-Secret(., "derived", "")
//	            |
//	   0 -> HKDF-Extract = Master Secret
//	            +-> Derive-Secret(., "c ap traffic", ClientHello...server Finished)
//	            +-> Derive-Secret(., "s ap traffic", ClientHello...server Finished)
//	            +-> Derive-Secret(., "exp master", ClientHello...server Finished)
//	            +-> Derive-Secret(., "res master", ClientHello...client Finished)
//
// Transcript hashes are passed in as finished digests (the Sum of the
// transcript hash), which is what the handshake keeps anyway and what RFC
// 8448 publishes. In DTLS 1.3 the transcript hashes the messages with
// TLS-style four-byte headers, without message_seq and the fragment
// fields (RFC 9147 §5.2); building it is the handshake's job.

import (
	"crypto"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"strings"
)

// HkdfLabel prefixes (RFC 9147 §5.9; RFC 8446 §7.1).
const (
	labelPrefixDTLS13 = "dtls13"
	labelPrefixTLS13  = "tls13 " // tests only: RFC 8448 vectors
)

// Bounds of HkdfLabel (RFC 8446 §7.1): label<7..255> (prefix included),
// context<0..255>, and a uint16 length. hkdf.Expand adds its own bound of
// 255 hash lengths of output.
const (
	maxHkdfLabelLen   = 255
	maxHkdfContextLen = 255
)

// Labels of the key schedule (RFC 8446 §7.1, §7.3, §4.6.1, §7.5;
// RFC 9147 §4.2.3 for "sn").
const (
	labelExtBinder       = "ext binder"
	labelResBinder       = "res binder"
	labelClientEarly     = "c e traffic"
	labelEarlyExporter   = "e exp master"
	labelDerived         = "derived"
	labelClientHandshake = "c hs traffic"
	labelServerHandshake = "s hs traffic"
	labelClientTraffic   = "c ap traffic"
	labelServerTraffic   = "s ap traffic"
	labelExporterMaster  = "exp master"
	labelResumption      = "res master"
	labelExporter        = "exporter"
	labelResumptionPSK   = "resumption"
	labelKey             = "key"
	labelIV              = "iv"
	labelSN              = "sn"
	labelFinished        = "finished"
	labelTrafficUpdate   = "traffic upd"
)

var errHkdfLabel = errors.New("dtls: HKDF-Expand-Label label or context too long")

// hkdfExpandLabel is HKDF-Expand-Label (RFC 8446 §7.1) with the given label
// prefix:
//
//	HKDF-Expand-Label(Secret, Label, Context, Length) =
//	     HKDF-Expand(Secret, HkdfLabel, Length)
//	struct {
//	    uint16 length = Length;
//	    opaque label<7..255> = prefix + Label;
//	    opaque context<0..255> = Context;
//	} HkdfLabel;
func hkdfExpandLabel(h crypto.Hash, prefix string, secret []byte, label string, context []byte, length int) ([]byte, error) {
	if len(prefix)+len(label) > maxHkdfLabelLen || len(context) > maxHkdfContextLen ||
		length < 0 || length > 0xffff {
		return nil, errHkdfLabel
	}
	// Built as the string hkdf.Expand takes: one allocation, not a
	// slice and its copy.
	var info strings.Builder
	info.Grow(2 + 1 + len(prefix) + len(label) + 1 + len(context))
	info.WriteByte(byte(length >> 8))
	info.WriteByte(byte(length))
	info.WriteByte(byte(len(prefix) + len(label)))
	info.WriteString(prefix)
	info.WriteString(label)
	info.WriteByte(byte(len(context)))
	info.Write(context)
	return hkdf.Expand(h.New, secret, info.String(), length)
}

// expandLabel13 is HKDF-Expand-Label with the DTLS 1.3 prefix.
func expandLabel13(h crypto.Hash, secret []byte, label string, context []byte, length int) ([]byte, error) {
	return hkdfExpandLabel(h, labelPrefixDTLS13, secret, label, context, length)
}

// deriveSecret is Derive-Secret(Secret, Label, Messages) =
// HKDF-Expand-Label(Secret, Label, Transcript-Hash(Messages), Hash.length)
// (RFC 8446 §7.1), with the transcript hash already computed.
func deriveSecret(h crypto.Hash, prefix string, secret []byte, label string, transcriptHash []byte) ([]byte, error) {
	return hkdfExpandLabel(h, prefix, secret, label, transcriptHash, h.Size())
}

// emptyHash returns Transcript-Hash("") = Hash(""), the context of the
// "derived" and binder steps. The suites' two hashes have theirs computed
// once; callers only read it.
func emptyHash(h crypto.Hash) []byte {
	switch h {
	case crypto.SHA256:
		return emptySHA256[:]
	case crypto.SHA384:
		return emptySHA384[:]
	}
	return h.New().Sum(nil)
}

var (
	emptySHA256 = sha256.Sum256(nil)
	emptySHA384 = sha512.Sum384(nil)
)

// zeroEarly13 is, for each suite hash, the Early Secret without a PSK,
// HKDF-Extract(0, 0), with its Derive-Secret(., "derived", ""): constants
// of the hash, the start of every certificate handshake's schedule,
// computed once (init) rather than in each handshake. Shared, so never
// modified.
var zeroEarly13 = map[crypto.Hash]*keySchedule13{}

func init() {
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
		k, err := extractEarly13(h, labelPrefixDTLS13, nil)
		if err != nil {
			continue // derived in each handshake instead
		}
		if k.derived, err = k.derive(labelDerived, emptyHash(h)); err != nil {
			continue
		}
		zeroEarly13[h] = k
	}
}

// keySchedule13 holds the current stage of one connection's key schedule:
// the hash of its cipher suite, the label prefix, and the secret of the
// stage (Early, Handshake or Master Secret). The stage methods return the
// next stage; they never modify the receiver.
type keySchedule13 struct {
	hash   crypto.Hash
	prefix string
	secret []byte
	// derived, if not nil, is Derive-Secret(secret, "derived", ""),
	// computed ahead (zeroEarly13).
	derived []byte
}

// newEarlySecret13 returns the Early Secret: HKDF-Extract(0, PSK). A nil
// psk (no PSK) is Hash.length zero bytes.
func newEarlySecret13(h crypto.Hash, psk []byte) (*keySchedule13, error) {
	return newEarlySecretPrefix(h, labelPrefixDTLS13, psk)
}

func newEarlySecretPrefix(h crypto.Hash, prefix string, psk []byte) (*keySchedule13, error) {
	if k := zeroEarly13[h]; psk == nil && prefix == labelPrefixDTLS13 && k != nil {
		return k, nil
	}
	return extractEarly13(h, prefix, psk)
}

func extractEarly13(h crypto.Hash, prefix string, psk []byte) (*keySchedule13, error) {
	if psk == nil {
		psk = make([]byte, h.Size())
	}
	// HKDF-Extract(salt, IKM): the salt of the first stage is 0, i.e.
	// absent (RFC 5869 §2.2 pads a missing salt with zeros).
	s, err := hkdf.Extract(h.New, psk, nil)
	if err != nil {
		return nil, err
	}
	return &keySchedule13{hash: h, prefix: prefix, secret: s}, nil
}

// derive is Derive-Secret on the receiver's secret.
func (k *keySchedule13) derive(label string, transcriptHash []byte) ([]byte, error) {
	return deriveSecret(k.hash, k.prefix, k.secret, label, transcriptHash)
}

// next extracts the following stage: HKDF-Extract(Derive-Secret(.,
// "derived", ""), ikm). A nil ikm is Hash.length zero bytes (the Master
// Secret's input, and the Handshake Secret's in a psk_ke handshake).
func (k *keySchedule13) next(ikm []byte) (*keySchedule13, error) {
	salt := k.derived
	if salt == nil {
		var err error
		if salt, err = k.derive(labelDerived, emptyHash(k.hash)); err != nil {
			return nil, err
		}
	}
	if ikm == nil {
		ikm = make([]byte, k.hash.Size())
	}
	s, err := hkdf.Extract(k.hash.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	return &keySchedule13{hash: k.hash, prefix: k.prefix, secret: s}, nil
}

// Early Secret stage.

// binderKey returns the PSK binder key (RFC 8446 §7.1): "res binder" for a
// resumption PSK, "ext binder" for an external one. The binder itself is a
// Finished MAC under it (RFC 8446 §4.2.11.2): finishedVerifyData13 with
// this key as base key.
func (k *keySchedule13) binderKey(external bool) ([]byte, error) {
	label := labelResBinder
	if external {
		label = labelExtBinder
	}
	return k.derive(label, emptyHash(k.hash))
}

// clientEarlyTrafficSecret is the 0-RTT secret (epoch 1 in DTLS 1.3).
func (k *keySchedule13) clientEarlyTrafficSecret(chHash []byte) ([]byte, error) {
	return k.derive(labelClientEarly, chHash)
}

// earlyExporterMasterSecret is the exporter secret of 0-RTT data.
func (k *keySchedule13) earlyExporterMasterSecret(chHash []byte) ([]byte, error) {
	return k.derive(labelEarlyExporter, chHash)
}

// handshakeSecret extracts the Handshake Secret from the (EC)DHE or KEM
// shared secret; nil for psk_ke.
func (k *keySchedule13) handshakeSecret(sharedSecret []byte) (*keySchedule13, error) {
	return k.next(sharedSecret)
}

// Handshake Secret stage (epoch 2).

func (k *keySchedule13) clientHandshakeTrafficSecret(helloHash []byte) ([]byte, error) {
	return k.derive(labelClientHandshake, helloHash)
}

func (k *keySchedule13) serverHandshakeTrafficSecret(helloHash []byte) ([]byte, error) {
	return k.derive(labelServerHandshake, helloHash)
}

// masterSecret extracts the Master Secret.
func (k *keySchedule13) masterSecret() (*keySchedule13, error) {
	return k.next(nil)
}

// Master Secret stage (epoch 3 and later).

func (k *keySchedule13) clientApplicationTrafficSecret(serverFinishedHash []byte) ([]byte, error) {
	return k.derive(labelClientTraffic, serverFinishedHash)
}

func (k *keySchedule13) serverApplicationTrafficSecret(serverFinishedHash []byte) ([]byte, error) {
	return k.derive(labelServerTraffic, serverFinishedHash)
}

func (k *keySchedule13) exporterMasterSecret(serverFinishedHash []byte) ([]byte, error) {
	return k.derive(labelExporterMaster, serverFinishedHash)
}

func (k *keySchedule13) resumptionMasterSecret(clientFinishedHash []byte) ([]byte, error) {
	return k.derive(labelResumption, clientFinishedHash)
}

// exportKeyingMaterial13 is the TLS 1.3 exporter (RFC 8446 §7.5):
//
//	TLS-Exporter(label, context_value, key_length) =
//	    HKDF-Expand-Label(Derive-Secret(Secret, label, ""),
//	                      "exporter", Hash(context_value), key_length)
//
// with the exporter master secret (or the early one). A nil context hashes
// as the empty string, as RFC 8446 §7.5 says "no context" and "empty
// context" give the same output. The error covers a label over 249 bytes
// and a key_length over 255 hash lengths, both under the caller's control.
func exportKeyingMaterial13(h crypto.Hash, prefix string, exporterSecret []byte, label string, context []byte, length int) ([]byte, error) {
	secret, err := deriveSecret(h, prefix, exporterSecret, label, emptyHash(h))
	if err != nil {
		return nil, err
	}
	ch := h.New()
	ch.Write(context)
	return hkdfExpandLabel(h, prefix, secret, labelExporter, ch.Sum(nil), length)
}

// resumptionPSK13 is the PSK of a ticket (RFC 8446 §4.6.1):
// HKDF-Expand-Label(resumption_master_secret, "resumption", ticket_nonce,
// Hash.length). ticket_nonce<0..255> fits the HkdfLabel context.
func resumptionPSK13(h crypto.Hash, prefix string, resumptionSecret, nonce []byte) ([]byte, error) {
	return hkdfExpandLabel(h, prefix, resumptionSecret, labelResumptionPSK, nonce, h.Size())
}

// trafficKeys13 are the keys of one direction of one epoch (RFC 8446 §7.3,
// RFC 9147 §4.2.3):
//
//	[sender]_write_key = HKDF-Expand-Label(Secret, "key", "", key_length)
//	[sender]_write_iv  = HKDF-Expand-Label(Secret, "iv", "", iv_length)
//	[sender]_sn_key    = HKDF-Expand-Label(Secret, "sn", "", key_length)
type trafficKeys13 struct {
	key, iv, snKey []byte
}

// deriveTrafficKeys13 derives the traffic keys of secret for an AEAD with
// the given key length; the IV is always 12 bytes for the five suites
// (RFC 8446 §5.3: iv_length = max(8 bytes, N_MIN), 12 for all of them).
func deriveTrafficKeys13(h crypto.Hash, prefix string, secret []byte, keyLen int) (trafficKeys13, error) {
	var t trafficKeys13
	var err error
	if t.key, err = hkdfExpandLabel(h, prefix, secret, labelKey, nil, keyLen); err != nil {
		return t, err
	}
	if t.iv, err = hkdfExpandLabel(h, prefix, secret, labelIV, nil, aeadNonceLen13); err != nil {
		return t, err
	}
	// RFC 9147 §4.2.3: the sn_key's length is that of the AEAD key; for
	// ChaCha20 it is the 32-byte ChaCha20 key.
	t.snKey, err = hkdfExpandLabel(h, prefix, secret, labelSN, nil, keyLen)
	return t, err
}

// nextTrafficSecret13 is the KeyUpdate step (RFC 8446 §7.2):
// application_traffic_secret_N+1 = HKDF-Expand-Label(
// application_traffic_secret_N, "traffic upd", "", Hash.length).
func nextTrafficSecret13(h crypto.Hash, prefix string, secret []byte) ([]byte, error) {
	return hkdfExpandLabel(h, prefix, secret, labelTrafficUpdate, nil, h.Size())
}

// finishedKey13 is finished_key = HKDF-Expand-Label(BaseKey, "finished",
// "", Hash.length) (RFC 8446 §4.4.4).
func finishedKey13(h crypto.Hash, prefix string, baseKey []byte) ([]byte, error) {
	return hkdfExpandLabel(h, prefix, baseKey, labelFinished, nil, h.Size())
}

// finishedVerifyData13 is verify_data = HMAC(finished_key,
// Transcript-Hash(Handshake Context, Certificate*, CertificateVerify*))
// (RFC 8446 §4.4.4); also the PSK binder with the binder key as base key
// (§4.2.11.2).
func finishedVerifyData13(h crypto.Hash, prefix string, baseKey, transcriptHash []byte) ([]byte, error) {
	fk, err := finishedKey13(h, prefix, baseKey)
	if err != nil {
		return nil, err
	}
	return finishedMAC13(h, fk, transcriptHash), nil
}

// finishedMAC13 is HMAC(finished_key, transcriptHash), for a finished_key
// already expanded (a client keeps its binders' between its two
// ClientHellos).
func finishedMAC13(h crypto.Hash, finishedKey, transcriptHash []byte) []byte {
	mac := hmac.New(h.New, finishedKey)
	mac.Write(transcriptHash)
	return mac.Sum(nil)
}

// verifyFinished13 reports in constant time whether got is the verify_data
// (or binder) of baseKey over transcriptHash. A wrong length is refused
// without comparing.
func verifyFinished13(h crypto.Hash, prefix string, baseKey, transcriptHash, got []byte) bool {
	want, err := finishedVerifyData13(h, prefix, baseKey, transcriptHash)
	if err != nil {
		return false
	}
	return hmac.Equal(want, got)
}
