package dtls

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/tls"
	"errors"
	"io"
)

// Key exchange groups of DTLS 1.3 key_share (RFC 8446 §4.2.8) on
// crypto/ecdh and crypto/mlkem: the library writes no elliptic-curve or
// lattice arithmetic of its own.
//
// X25519MLKEM768 is the hybrid of draft-ietf-tls-ecdhe-mlkem (codepoint
// 0x11EC), as Go's crypto/tls, pion/dtls v4 and wolfSSL 5.9 implement it:
//
//	client share   = ML-KEM-768 encapsulation key (1184) ‖ X25519 public key (32)
//	server share   = ML-KEM-768 ciphertext (1088)       ‖ X25519 public key (32)
//	shared secret  = ML-KEM-768 shared secret (32)      ‖ X25519 shared secret (32)
//
// The ML-KEM part comes first in all three, unlike the draft's other
// hybrids (SecP256r1MLKEM768 puts the ECDH share first).

// Named groups (IANA "TLS Supported Groups").
const (
	groupSecp256r1      = tls.CurveP256 // 23
	groupSecp384r1      = tls.CurveP384 // 24
	groupX25519         = tls.X25519    // 29
	groupX25519MLKEM768 = tls.CurveID(0x11ec)
)

// Sizes of the X25519MLKEM768 shares.
const (
	x25519ShareLen          = 32
	x25519MLKEM768ClientLen = mlkem.EncapsulationKeySize768 + x25519ShareLen // 1216
	x25519MLKEM768ServerLen = mlkem.CiphertextSize768 + x25519ShareLen       // 1120
	// maxKeyShareLen bounds one key_exchange value we accept: the largest
	// share of a group we implement (the hybrid client share). A
	// KeyShareEntry is opaque<1..2^16-1> on the wire; a longer one for a
	// group we know is malformed, and one for a group we do not know is
	// never parsed beyond its length.
	maxKeyShareLen = x25519MLKEM768ClientLen
)

var (
	errUnsupportedGroup = errors.New("dtls: unsupported key exchange group")
	errBadKeyShare      = errors.New("dtls: invalid key share")
)

// keyShareSupported reports whether we implement group.
func keyShareSupported(group tls.CurveID) bool {
	switch group {
	case groupX25519, groupSecp256r1, groupSecp384r1, groupX25519MLKEM768:
		return true
	}
	return false
}

func ecdhCurve(group tls.CurveID) ecdh.Curve {
	switch group {
	case groupX25519, groupX25519MLKEM768:
		return ecdh.X25519()
	case groupSecp256r1:
		return ecdh.P256()
	case groupSecp384r1:
		return ecdh.P384()
	}
	return nil
}

// keySharePrivate13 is the client's secret for one offered key share.
type keySharePrivate13 struct {
	group tls.CurveID
	ecdh  *ecdh.PrivateKey
	mlkem *mlkem.DecapsulationKey768 // X25519MLKEM768 only
}

// generateKeyShare13 makes a client key share for group and returns the
// secret and the key_exchange bytes to send. rand feeds the ECDH key
// (crypto/ecdh may ignore it, as Go 1.26 does by default); ML-KEM keys
// always come from crypto/rand.
func generateKeyShare13(rand io.Reader, group tls.CurveID) (*keySharePrivate13, []byte, error) {
	curve := ecdhCurve(group)
	if curve == nil {
		return nil, nil, errUnsupportedGroup
	}
	priv, err := curve.GenerateKey(rand)
	if err != nil {
		return nil, nil, err
	}
	k := &keySharePrivate13{group: group, ecdh: priv}
	if group != groupX25519MLKEM768 {
		return k, priv.PublicKey().Bytes(), nil
	}
	if k.mlkem, err = mlkem.GenerateKey768(); err != nil {
		return nil, nil, err
	}
	return k, k.share(), nil
}

// share returns the key_exchange bytes of k.
func (k *keySharePrivate13) share() []byte {
	pub := k.ecdh.PublicKey().Bytes()
	if k.mlkem == nil {
		return pub
	}
	out := make([]byte, 0, x25519MLKEM768ClientLen)
	out = append(out, k.mlkem.EncapsulationKey().Bytes()...)
	return append(out, pub...)
}

// clientSharedSecret completes the client's side with the server's
// key_exchange. Any malformed share (wrong length, invalid point, an
// X25519 result of all zeros, which crypto/ecdh refuses) is an error, for
// the caller to answer with illegal_parameter (RFC 8446 §4.2.8).
func (k *keySharePrivate13) clientSharedSecret(serverShare []byte) ([]byte, error) {
	if k.mlkem == nil {
		return ecdhShared(k.ecdh, serverShare)
	}
	if len(serverShare) != x25519MLKEM768ServerLen {
		return nil, errBadKeyShare
	}
	ssKEM, err := k.mlkem.Decapsulate(serverShare[:mlkem.CiphertextSize768])
	if err != nil {
		return nil, errBadKeyShare
	}
	ssECDH, err := ecdhShared(k.ecdh, serverShare[mlkem.CiphertextSize768:])
	if err != nil {
		return nil, err
	}
	return append(ssKEM, ssECDH...), nil
}

func ecdhShared(priv *ecdh.PrivateKey, peer []byte) ([]byte, error) {
	pub, err := priv.Curve().NewPublicKey(peer)
	if err != nil {
		return nil, errBadKeyShare
	}
	ss, err := priv.ECDH(pub)
	if err != nil {
		return nil, errBadKeyShare
	}
	return ss, nil
}

// serverKeyShare13 answers a client's key_exchange for group: it returns
// the server's key_exchange and the shared secret. For X25519MLKEM768 it
// encapsulates to the client's ML-KEM key, so it must only run once the
// client's address is proven (after the cookie: DTLS13-NOTES §3, pion PR
// #878's DoS).
func serverKeyShare13(rand io.Reader, group tls.CurveID, clientShare []byte) (serverShare, sharedSecret []byte, err error) {
	curve := ecdhCurve(group)
	if curve == nil {
		return nil, nil, errUnsupportedGroup
	}
	priv, err := curve.GenerateKey(rand)
	if err != nil {
		return nil, nil, err
	}
	return serverKeyShareWith(group, clientShare, priv, (*mlkem.EncapsulationKey768).Encapsulate)
}

// serverKeyShareWith is serverKeyShare13 with the server's ECDH key and
// the ML-KEM encapsulation given, so that tests can make both
// deterministic.
func serverKeyShareWith(group tls.CurveID, clientShare []byte, priv *ecdh.PrivateKey,
	encapsulate func(*mlkem.EncapsulationKey768) (sharedKey, ciphertext []byte)) (serverShare, sharedSecret []byte, err error) {
	if group != groupX25519MLKEM768 {
		ss, err := ecdhShared(priv, clientShare)
		if err != nil {
			return nil, nil, err
		}
		return priv.PublicKey().Bytes(), ss, nil
	}
	if len(clientShare) != x25519MLKEM768ClientLen {
		return nil, nil, errBadKeyShare
	}
	// NewEncapsulationKey768 checks the key's encoding (FIPS 203 §7.2's
	// modulus check).
	ek, err := mlkem.NewEncapsulationKey768(clientShare[:mlkem.EncapsulationKeySize768])
	if err != nil {
		return nil, nil, errBadKeyShare
	}
	ssECDH, err := ecdhShared(priv, clientShare[mlkem.EncapsulationKeySize768:])
	if err != nil {
		return nil, nil, err
	}
	ssKEM, ct := encapsulate(ek)
	serverShare = make([]byte, 0, x25519MLKEM768ServerLen)
	serverShare = append(serverShare, ct...)
	serverShare = append(serverShare, priv.PublicKey().Bytes()...)
	sharedSecret = make([]byte, 0, len(ssKEM)+len(ssECDH))
	sharedSecret = append(sharedSecret, ssKEM...)
	sharedSecret = append(sharedSecret, ssECDH...)
	return serverShare, sharedSecret, nil
}
