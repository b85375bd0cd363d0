package dtls

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/tls"
	"errors"
	"io"
	"slices"
)

// Key exchange groups of DTLS 1.3 key_share (RFC 8446 §4.2.8) on
// crypto/ecdh and crypto/mlkem: the library writes no elliptic-curve or
// lattice arithmetic of its own.
//
// The hybrids are those of draft-ietf-tls-ecdhe-mlkem, as Go's
// crypto/tls, pion/dtls v4 and wolfSSL 5.9 implement them. Each share and
// the shared secret concatenate an ML-KEM-768 part and an ECDH part, in an
// order that differs between the two:
//
//	X25519MLKEM768 (0x11EC): ML-KEM first
//	  client share   = encapsulation key (1184) ‖ X25519 public key (32)
//	  server share   = ciphertext (1088)        ‖ X25519 public key (32)
//	  shared secret  = ML-KEM secret (32)       ‖ X25519 secret (32)
//	SecP256r1MLKEM768 (0x11EB): ECDH first
//	  client share   = P-256 point (65, uncompressed) ‖ encapsulation key (1184)
//	  server share   = P-256 point (65)               ‖ ciphertext (1088)
//	  shared secret  = P-256 secret (32)              ‖ ML-KEM secret (32)
//
// Only X25519MLKEM768 is in the default CurvePreferences (config.go);
// SecP256r1MLKEM768 is there for a configuration that wants its ECDH part
// on a NIST curve (FIPS 140), and must be listed explicitly.

// Named groups (IANA "TLS Supported Groups").
const (
	groupSecp256r1         = tls.CurveP256         // 23
	groupSecp384r1         = tls.CurveP384         // 24
	groupX25519            = tls.X25519            // 29
	groupSecP256r1MLKEM768 = tls.SecP256r1MLKEM768 // 0x11EB
	groupX25519MLKEM768    = tls.X25519MLKEM768    // 0x11EC
)

// Sizes of the hybrid shares.
const (
	x25519ShareLen          = 32
	p256ShareLen            = 65                                             // uncompressed point (SEC 1 §2.3.3), the only form 1.3 uses (RFC 8446 §4.2.8.2)
	x25519MLKEM768ClientLen = mlkem.EncapsulationKeySize768 + x25519ShareLen // 1216
	x25519MLKEM768ServerLen = mlkem.CiphertextSize768 + x25519ShareLen       // 1120
	p256MLKEM768ClientLen   = p256ShareLen + mlkem.EncapsulationKeySize768   // 1249
	p256MLKEM768ServerLen   = p256ShareLen + mlkem.CiphertextSize768         // 1153
	// maxKeyShareLen bounds one key_exchange value we accept: the largest
	// share of a group we implement (SecP256r1MLKEM768's client share). A
	// KeyShareEntry is opaque<1..2^16-1> on the wire; a longer one for a
	// group we know is malformed, and one for a group we do not know is
	// never parsed beyond its length.
	maxKeyShareLen = p256MLKEM768ClientLen
)

// isHybrid reports whether group is one of our ML-KEM hybrids.
func isHybrid(group tls.CurveID) bool {
	return group == groupX25519MLKEM768 || group == groupSecP256r1MLKEM768
}

// hybridLayout says where the parts of a hybrid's shares and secret are:
// the ECDH part's length, and whether the ML-KEM part comes first.
func hybridLayout(group tls.CurveID) (ecdhLen int, kemFirst bool) {
	if group == groupX25519MLKEM768 {
		return x25519ShareLen, true
	}
	return p256ShareLen, false
}

// splitHybrid splits a hybrid share of length ecdhLen+kemLen into its
// ECDH and ML-KEM parts; ok is false for any other length.
func splitHybrid(group tls.CurveID, share []byte, kemLen int) (ecdhPart, kemPart []byte, ok bool) {
	ecdhLen, kemFirst := hybridLayout(group)
	if len(share) != ecdhLen+kemLen {
		return nil, nil, false
	}
	if kemFirst {
		return share[kemLen:], share[:kemLen], true
	}
	return share[:ecdhLen], share[ecdhLen:], true
}

// joinHybrid concatenates a hybrid's ECDH and ML-KEM parts in group's
// order.
func joinHybrid(group tls.CurveID, ecdhPart, kemPart []byte) []byte {
	out := make([]byte, 0, len(ecdhPart)+len(kemPart))
	if _, kemFirst := hybridLayout(group); kemFirst {
		return append(append(out, kemPart...), ecdhPart...)
	}
	return append(append(out, ecdhPart...), kemPart...)
}

var (
	errUnsupportedGroup = errors.New("dtls: unsupported key exchange group")
	errBadKeyShare      = errors.New("dtls: invalid key share")
)

// keyShareSupported reports whether we implement group.
func keyShareSupported(group tls.CurveID) bool {
	switch group {
	case groupX25519, groupSecp256r1, groupSecp384r1, groupX25519MLKEM768, groupSecP256r1MLKEM768:
		return true
	}
	return false
}

func ecdhCurve(group tls.CurveID) ecdh.Curve {
	switch group {
	case groupX25519, groupX25519MLKEM768:
		return ecdh.X25519()
	case groupSecp256r1, groupSecP256r1MLKEM768:
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
	mlkem *mlkem.DecapsulationKey768 // hybrids only
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
	if !isHybrid(group) {
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
	return joinHybrid(k.group, pub, k.mlkem.EncapsulationKey().Bytes())
}

// clientSharedSecret completes the client's side with the server's
// key_exchange. Any malformed share (wrong length, invalid point, an
// X25519 result of all zeros, which crypto/ecdh refuses) is an error, for
// the caller to answer with illegal_parameter (RFC 8446 §4.2.8).
func (k *keySharePrivate13) clientSharedSecret(serverShare []byte) ([]byte, error) {
	if k.mlkem == nil {
		return ecdhShared(k.ecdh, serverShare)
	}
	ecdhPart, ct, ok := splitHybrid(k.group, serverShare, mlkem.CiphertextSize768)
	if !ok {
		return nil, errBadKeyShare
	}
	ssKEM, err := k.mlkem.Decapsulate(ct)
	if err != nil {
		return nil, errBadKeyShare
	}
	ssECDH, err := ecdhShared(k.ecdh, ecdhPart)
	if err != nil {
		return nil, err
	}
	return joinHybrid(k.group, ssECDH, ssKEM), nil
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
// the server's key_exchange and the shared secret. For a hybrid it
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
	if !isHybrid(group) {
		ss, err := ecdhShared(priv, clientShare)
		if err != nil {
			return nil, nil, err
		}
		return priv.PublicKey().Bytes(), ss, nil
	}
	ecdhPart, ekBytes, ok := splitHybrid(group, clientShare, mlkem.EncapsulationKeySize768)
	if !ok {
		return nil, nil, errBadKeyShare
	}
	// NewEncapsulationKey768 checks the key's encoding (FIPS 203 §7.2's
	// modulus check).
	ek, err := mlkem.NewEncapsulationKey768(ekBytes)
	if err != nil {
		return nil, nil, errBadKeyShare
	}
	ssECDH, err := ecdhShared(priv, ecdhPart)
	if err != nil {
		return nil, nil, err
	}
	ssKEM, ct := encapsulate(ek)
	return joinHybrid(group, priv.PublicKey().Bytes(), ct), joinHybrid(group, ssECDH, ssKEM), nil
}

// Group selection of a DTLS 1.3 server, shared by the connection
// (serverHandshakeState13.processClientHello), the Listener's stateless
// HelloRetryRequest (hrrParamsFor) and its 0-RTT admission
// (Config.admitEarlyData).
//
// RFC 8446 §4.2.8: "If the server selects an (EC)DHE group and the
// client did not offer a compatible "key_share" extension in the initial
// ClientHello, the server MUST respond with a HelloRetryRequest (Section
// 4.1.4)", whose selected_group the second ClientHello's one share must
// match. Which group to select is the server's choice: it may accept a
// share the client sent for a group both support even when it prefers
// another, and then SHOULD list its preferences in supported_groups in
// EncryptedExtensions (RFC 8446 §4.2.7: a server that "has a group it
// prefers to the ones in the "key_share" extension but is still willing
// to accept the ClientHello"). RFC 9147 §5.1 has DTLS servers do the
// cookie exchange (SHOULD) but lets them skip it "when a session is
// resumed or, more generically, when the DTLS handshake uses a PSK-based
// key exchange and the IP address matches one associated with the PSK".
//
// Our policy: when a HelloRetryRequest goes out anyway, for the cookie,
// it asks for preferredGroup13 (the hybrid by default) if the client sent
// no share for it, so post-quantum costs no round trip of its own and
// the client's first ClientHello stays one datagram (it carries an X25519
// share only). When no HelloRetryRequest would otherwise be sent (cookie
// off: Config.InsecureSkipHelloVerify or a Listener without cookies; a
// 0-RTT ClientHello admitted without a cookie, where a HelloRetryRequest
// would also cost the early data, RFC 8446 §4.2.10), the server takes
// offeredShare13, the client's share it prefers most, and sends a
// HelloRetryRequest only if there is none. The ML-KEM work happens in
// either case only after the address is proven or deliberately not
// checked (serverKeyShare13).

// preferredGroup13 is our most preferred group among those the client
// lists in supported_groups, or 0.
func preferredGroup13(cfg *Config, ch *clientHelloMsg13) tls.CurveID {
	for _, g := range cfg.groups13() {
		if slices.Contains(ch.supportedCurves, g) {
			return g
		}
	}
	return 0
}

// offeredShare13 is the client's key share for our most preferred group
// among those it both lists in supported_groups and sent a share for (0
// and nil if none).
func offeredShare13(cfg *Config, ch *clientHelloMsg13) (tls.CurveID, []byte) {
	for _, g := range cfg.groups13() {
		if !slices.Contains(ch.supportedCurves, g) {
			continue
		}
		if share := keyShareFor(ch, g); share != nil {
			return g, share
		}
	}
	return 0, nil
}
