package dtls

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"hash"
)

// DTLS 1.2 uses the TLS 1.2 key schedule unchanged (RFC 6347 §4.2.6 adds
// only the handshake header fields to the transcript). The labels below are
// the ASCII strings of RFC 5246 §8.1, §6.3, §7.4.9 and RFC 7627 §4.
const (
	masterSecretLabel         = "master secret"
	extendedMasterSecretLabel = "extended master secret"
	keyExpansionLabel         = "key expansion"
	clientFinishedLabel       = "client finished"
	serverFinishedLabel       = "server finished"
)

// maxPSKLen is the longest pre-shared key the PSK premaster secrets can
// carry: both RFC 4279 §2 and RFC 5489 §2 encode it as opaque<0..2^16-1>.
// The handshake must refuse a longer key from Config.PSK before it gets here.
const maxPSKLen = 1<<16 - 1

// prfHash returns the constructor of the PRF hash of a TLS 1.2 cipher suite.
// Every suite we implement uses SHA-256 or SHA-384 (RFC 5246 §5, RFC 5289);
// anything else is a bug in the cipher suite table.
func prfHash(h crypto.Hash) func() hash.Hash {
	switch h {
	case crypto.SHA256:
		return sha256.New
	case crypto.SHA384:
		return sha512.New384
	}
	panic("dtls: unsupported PRF hash " + h.String())
}

// hashSum appends the hash of data to dst, with SHA-256 or SHA-384 (the
// transcript and signature hashes of our suites and schemes). The
// standard library's one-shot functions do not allocate.
func hashSum(h crypto.Hash, dst, data []byte) []byte {
	switch h {
	case crypto.SHA256:
		s := sha256.Sum256(data)
		return append(dst, s[:]...)
	case crypto.SHA384:
		s := sha512.Sum384(data)
		return append(dst, s[:]...)
	case crypto.SHA512:
		s := sha512.Sum512(data)
		return append(dst, s[:]...)
	}
	panic("dtls: unsupported hash " + h.String())
}

// prf12 fills result with the TLS 1.2 PRF of RFC 5246 §5:
//
//	PRF(secret, label, seed) = P_hash(secret, label + seed)
//	P_hash(secret, seed) = HMAC(secret, A(1) + seed) + HMAC(secret, A(2) + seed) + ...
//	A(0) = seed, A(i) = HMAC(secret, A(i-1))
//
// The output is truncated to len(result).
func prf12(h crypto.Hash, result, secret []byte, label string, seed []byte) {
	mac := hmac.New(prfHash(h), secret)
	// One allocation holds label + seed, A(i) and an output block.
	size := mac.Size()
	buf := make([]byte, 0, len(label)+len(seed)+2*size)
	labelSeed := append(append(buf, label...), seed...)
	rest := buf[len(labelSeed):len(labelSeed)]

	// A(1) = HMAC(secret, label + seed).
	mac.Write(labelSeed)
	a := mac.Sum(rest[:0:size])
	block := rest[size:size]
	for len(result) > 0 {
		mac.Reset()
		mac.Write(a)
		mac.Write(labelSeed)
		block = mac.Sum(block[:0])
		n := copy(result, block)
		result = result[n:]
		if len(result) == 0 {
			break
		}
		// A(i+1) = HMAC(secret, A(i)). Sum appends to a[:0] after a has
		// been consumed, so reusing its storage is safe.
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
}

// masterFromPreMasterSecret derives the 48-byte master secret of RFC 5246
// §8.1 from the premaster secret and the two hello randoms.
func masterFromPreMasterSecret(h crypto.Hash, preMasterSecret, clientRandom, serverRandom []byte) []byte {
	seed := make([]byte, 0, len(clientRandom)+len(serverRandom))
	seed = append(seed, clientRandom...)
	seed = append(seed, serverRandom...)

	master := make([]byte, masterSecretLen)
	prf12(h, master, preMasterSecret, masterSecretLabel, seed)
	return master
}

// extMasterFromPreMasterSecret derives the master secret of RFC 7627 §4,
// which binds it to the handshake: sessionHash is the hash (with the PRF
// hash) of the handshake messages up to and including ClientKeyExchange. In
// DTLS those messages carry their 12-byte headers as if unfragmented, and
// the transcript starts at the ClientHello that carries the cookie
// (RFC 6347 §4.2.6).
func extMasterFromPreMasterSecret(h crypto.Hash, preMasterSecret, sessionHash []byte) []byte {
	master := make([]byte, masterSecretLen)
	prf12(h, master, preMasterSecret, extendedMasterSecretLabel, sessionHash)
	return master
}

// keysFromMasterSecret expands the master secret into the traffic keys of
// RFC 5246 §6.3. The seed is server_random + client_random (the reverse of
// the master secret's seed). AEAD suites have no MAC keys, so the key block
// is client_write_key, server_write_key, client_write_IV, server_write_IV;
// for the GCM and CCM suites the IV is the 4-byte implicit nonce part (RFC
// 5288 §3, RFC 6655 §3).
//
// The four slices share one allocation but have their capacity capped, so
// appending to one cannot overwrite another.
func keysFromMasterSecret(h crypto.Hash, masterSecret, clientRandom, serverRandom []byte, keyLen, ivLen int) (clientKey, serverKey, clientIV, serverIV []byte) {
	seed := make([]byte, 0, len(serverRandom)+len(clientRandom))
	seed = append(seed, serverRandom...)
	seed = append(seed, clientRandom...)

	block := make([]byte, 2*keyLen+2*ivLen)
	prf12(h, block, masterSecret, keyExpansionLabel, seed)

	next := func(n int) []byte {
		b := block[:n:n]
		block = block[n:]
		return b
	}
	clientKey = next(keyLen)
	serverKey = next(keyLen)
	clientIV = next(ivLen)
	serverIV = next(ivLen)
	return
}

// finishedVerifyData computes the verify_data of a Finished message (RFC
// 5246 §7.4.9): PRF(master_secret, finished_label, transcriptHash), 12
// bytes for every suite we implement. transcriptHash covers the handshake
// messages before this Finished, each with its DTLS header as if
// unfragmented (RFC 6347 §4.2.6).
func finishedVerifyData(h crypto.Hash, masterSecret []byte, fromClient bool, transcriptHash []byte) []byte {
	out := make([]byte, finishedVerifyLen)
	fillFinishedVerifyData(h, out, masterSecret, fromClient, transcriptHash)
	return out
}

// fillFinishedVerifyData is finishedVerifyData into out, which must be
// finishedVerifyLen bytes: a caller that only compares it can keep it on
// the stack.
func fillFinishedVerifyData(h crypto.Hash, out, masterSecret []byte, fromClient bool, transcriptHash []byte) {
	label := serverFinishedLabel
	if fromClient {
		label = clientFinishedLabel
	}
	prf12(h, out, masterSecret, label, transcriptHash)
}

// exportKeyingMaterial implements the keying material exporter of RFC 5705
// §4:
//
//	PRF(master_secret, label, client_random + server_random [+ context_length + context])
//
// A nil context means no context, which is different from an empty one
// (RFC 5705 §4): a non-nil context, even of length zero, is included with
// its uint16 length. Labels that the key schedule itself uses are refused,
// so that an exporter can never reveal a key or a Finished value.
func exportKeyingMaterial(h crypto.Hash, masterSecret, clientRandom, serverRandom []byte, label string, context []byte, length int) ([]byte, error) {
	switch label {
	case clientFinishedLabel, serverFinishedLabel, masterSecretLabel, keyExpansionLabel, extendedMasterSecretLabel:
		return nil, errors.New("dtls: reserved ExportKeyingMaterial label: " + label)
	}
	if length < 0 {
		return nil, errors.New("dtls: negative ExportKeyingMaterial length")
	}

	seedLen := len(clientRandom) + len(serverRandom)
	if context != nil {
		if len(context) > 1<<16-1 {
			return nil, errors.New("dtls: ExportKeyingMaterial context too long")
		}
		seedLen += 2 + len(context)
	}
	seed := make([]byte, 0, seedLen)
	seed = append(seed, clientRandom...)
	seed = append(seed, serverRandom...)
	if context != nil {
		seed = binary.BigEndian.AppendUint16(seed, uint16(len(context)))
		seed = append(seed, context...)
	}

	out := make([]byte, length)
	prf12(h, out, masterSecret, label, seed)
	return out, nil
}

// pskPreMasterSecret builds the premaster secret of plain PSK key exchange
// (RFC 4279 §2): other_secret is N zero bytes, where N is the PSK length.
//
//	uint16 N | N zero bytes | uint16 N | psk
//
// len(psk) must not exceed maxPSKLen.
func pskPreMasterSecret(psk []byte) []byte {
	if len(psk) > maxPSKLen {
		panic("dtls: PSK longer than 65535 bytes")
	}
	n := len(psk)
	out := make([]byte, 0, 2+n+2+n)
	out = binary.BigEndian.AppendUint16(out, uint16(n))
	out = append(out, make([]byte, n)...)
	out = binary.BigEndian.AppendUint16(out, uint16(n))
	out = append(out, psk...)
	return out
}

// ecdhePSKPreMasterSecret builds the premaster secret of ECDHE_PSK key
// exchange (RFC 5489 §2): other_secret is the ECDH shared secret.
//
//	uint16 len(ecdhe) | ecdhe secret | uint16 len(psk) | psk
//
// len(psk) must not exceed maxPSKLen; ECDH secrets are at most 66 bytes.
func ecdhePSKPreMasterSecret(ecdheSecret, psk []byte) []byte {
	if len(psk) > maxPSKLen || len(ecdheSecret) > 1<<16-1 {
		panic("dtls: ECDHE_PSK premaster secret component longer than 65535 bytes")
	}
	out := make([]byte, 0, 2+len(ecdheSecret)+2+len(psk))
	out = binary.BigEndian.AppendUint16(out, uint16(len(ecdheSecret)))
	out = append(out, ecdheSecret...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(psk)))
	out = append(out, psk...)
	return out
}
