package dtls

import (
	"bytes"
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/rand"
	"crypto/tls"
	"testing"
)

func TestKeyShare13RoundTrip(t *testing.T) {
	for _, tc := range []struct {
		group                   tls.CurveID
		clientLen, serverLen, n int
	}{
		{groupX25519, 32, 32, 32},
		{groupSecp256r1, 65, 65, 32},
		{groupSecp384r1, 97, 97, 48},
		{groupX25519MLKEM768, 1216, 1120, 64},
		{groupSecP256r1MLKEM768, 1249, 1153, 64},
	} {
		priv, share, err := generateKeyShare13(rand.Reader, tc.group)
		if err != nil {
			t.Fatalf("%v: %v", tc.group, err)
		}
		if len(share) != tc.clientLen || !keyShareSupported(tc.group) {
			t.Fatalf("%v: client share %d bytes", tc.group, len(share))
		}
		sShare, sSecret, err := serverKeyShare13(rand.Reader, tc.group, share)
		if err != nil {
			t.Fatalf("%v: server: %v", tc.group, err)
		}
		if len(sShare) != tc.serverLen || len(sSecret) != tc.n {
			t.Fatalf("%v: server share %d, secret %d", tc.group, len(sShare), len(sSecret))
		}
		cSecret, err := priv.clientSharedSecret(sShare)
		if err != nil {
			t.Fatalf("%v: client: %v", tc.group, err)
		}
		if !bytes.Equal(cSecret, sSecret) {
			t.Fatalf("%v: secrets differ", tc.group)
		}
		// A second exchange gives another secret.
		_, s2, err := serverKeyShare13(rand.Reader, tc.group, share)
		if err != nil || bytes.Equal(s2, sSecret) {
			t.Fatalf("%v: repeated secret (%v)", tc.group, err)
		}
	}
}

// RFC 7748 §6.1's X25519 example: Alice's and Bob's keys and their
// shared secret.
const (
	rfc7748AlicePriv = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
	rfc7748AlicePub  = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
	rfc7748BobPriv   = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
	rfc7748BobPub    = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
	rfc7748Shared    = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
)

func x25519Key(t *testing.T, h string) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().NewPrivateKey(unhex(t, h))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyShareX25519KAT(t *testing.T) {
	client := &keySharePrivate13{group: groupX25519, ecdh: x25519Key(t, rfc7748AlicePriv)}
	if got := client.share(); !bytes.Equal(got, unhex(t, rfc7748AlicePub)) {
		t.Fatalf("client share %x", got)
	}
	sShare, ss, err := serverKeyShareWith(groupX25519, client.share(), x25519Key(t, rfc7748BobPriv), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sShare, unhex(t, rfc7748BobPub)) || !bytes.Equal(ss, unhex(t, rfc7748Shared)) {
		t.Fatalf("server share %x secret %x", sShare, ss)
	}
	cs, err := client.clientSharedSecret(sShare)
	if err != nil || !bytes.Equal(cs, ss) {
		t.Fatalf("client secret %x %v", cs, err)
	}
}

// TestKeyShareX25519MLKEM768Layout pins the hybrid's byte layout
// (draft-ietf-tls-ecdhe-mlkem: ML-KEM first in both shares and in the
// secret) with deterministic keys: RFC 7748's X25519 keys, an ML-KEM key
// from a fixed seed, and a fixed encapsulation randomness. The X25519
// half of the secret is RFC 7748's known answer; the ML-KEM half must be
// what decapsulating the ciphertext found at the ciphertext's offset
// yields.
func TestKeyShareX25519MLKEM768Layout(t *testing.T) {
	seed := make([]byte, mlkem.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		t.Fatal(err)
	}
	client := &keySharePrivate13{group: groupX25519MLKEM768, ecdh: x25519Key(t, rfc7748AlicePriv), mlkem: dk}
	cShare := client.share()
	if len(cShare) != 1216 || !bytes.Equal(cShare[:1184], dk.EncapsulationKey().Bytes()) ||
		!bytes.Equal(cShare[1184:], unhex(t, rfc7748AlicePub)) {
		t.Fatal("client share is not encapsulation key ‖ X25519 public key")
	}
	m := bytes.Repeat([]byte{0x42}, 32)
	var wantKEM, wantCT []byte
	encap := func(ek *mlkem.EncapsulationKey768) ([]byte, []byte) {
		ss, ct, err := mlkemtest.Encapsulate768(ek, m)
		if err != nil {
			t.Fatal(err)
		}
		wantKEM, wantCT = ss, ct
		return ss, ct
	}
	sShare, ss, err := serverKeyShareWith(groupX25519MLKEM768, cShare, x25519Key(t, rfc7748BobPriv), encap)
	if err != nil {
		t.Fatal(err)
	}
	if len(sShare) != 1120 || !bytes.Equal(sShare[:1088], wantCT) || !bytes.Equal(sShare[1088:], unhex(t, rfc7748BobPub)) {
		t.Fatal("server share is not ciphertext ‖ X25519 public key")
	}
	if len(ss) != 64 || !bytes.Equal(ss[:32], wantKEM) || !bytes.Equal(ss[32:], unhex(t, rfc7748Shared)) {
		t.Fatalf("secret is not ML-KEM ‖ X25519: %x", ss)
	}
	if k, err := dk.Decapsulate(sShare[:1088]); err != nil || !bytes.Equal(k, wantKEM) {
		t.Fatal("ciphertext does not decapsulate to the ML-KEM half")
	}
	cs, err := client.clientSharedSecret(sShare)
	if err != nil || !bytes.Equal(cs, ss) {
		t.Fatalf("client secret %x %v", cs, err)
	}
}

// NIST CAVS 14.1 ECC CDH Primitive (SP 800-56A) vector for P-256, as Go's
// crypto/ecdh tests use it: our private key d, our public key, the
// peer's public key and the shared x-coordinate.
const (
	nistP256Priv    = "7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534"
	nistP256Pub     = "04ead218590119e8876b29146ff89ca61770c4edbbf97d38ce385ed281d8a6b23028af61281fd35e2fa7002523acc85a429cb06ee6648325389f59edfce1405141"
	nistP256PeerPub = "04700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac"
	nistP256Shared  = "46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b"
)

// TestKeyShareSecP256r1MLKEM768Layout pins SecP256r1MLKEM768's layout
// (draft-ietf-tls-ecdhe-mlkem: the ECDH part first in both shares and in
// the secret, unlike X25519MLKEM768) as a known answer on the server's
// side: a client share of the NIST vector's peer point and an ML-KEM key
// from a fixed seed, the server's key the vector's d, a fixed
// encapsulation randomness. The server's share must be the vector's
// public key then the ciphertext, the secret the vector's shared value
// then the ML-KEM key that the ciphertext decapsulates to. A client
// with a random P-256 key then completes the exchange with the same
// server key.
func TestKeyShareSecP256r1MLKEM768Layout(t *testing.T) {
	seed := make([]byte, mlkem.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		t.Fatal(err)
	}
	cShare := append(unhex(t, nistP256PeerPub), dk.EncapsulationKey().Bytes()...)
	m := bytes.Repeat([]byte{0x42}, 32)
	var wantKEM, wantCT []byte
	encap := func(ek *mlkem.EncapsulationKey768) ([]byte, []byte) {
		ss, ct, err := mlkemtest.Encapsulate768(ek, m)
		if err != nil {
			t.Fatal(err)
		}
		wantKEM, wantCT = ss, ct
		return ss, ct
	}
	serverKey, err := ecdh.P256().NewPrivateKey(unhex(t, nistP256Priv))
	if err != nil {
		t.Fatal(err)
	}
	sShare, ss, err := serverKeyShareWith(groupSecP256r1MLKEM768, cShare, serverKey, encap)
	if err != nil {
		t.Fatal(err)
	}
	if len(sShare) != 1153 || !bytes.Equal(sShare[:65], unhex(t, nistP256Pub)) || !bytes.Equal(sShare[65:], wantCT) {
		t.Fatal("server share is not P-256 point ‖ ciphertext")
	}
	if len(ss) != 64 || !bytes.Equal(ss[:32], unhex(t, nistP256Shared)) || !bytes.Equal(ss[32:], wantKEM) {
		t.Fatalf("secret is not P-256 ‖ ML-KEM: %x", ss)
	}
	if k, err := dk.Decapsulate(sShare[65:]); err != nil || !bytes.Equal(k, wantKEM) {
		t.Fatal("ciphertext does not decapsulate to the ML-KEM half")
	}
	// The client's side of the same layout.
	clientKey, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	client := &keySharePrivate13{group: groupSecP256r1MLKEM768, ecdh: clientKey, mlkem: dk}
	cShare = client.share()
	if len(cShare) != 1249 || !bytes.Equal(cShare[:65], clientKey.PublicKey().Bytes()) || !bytes.Equal(cShare[65:], dk.EncapsulationKey().Bytes()) {
		t.Fatal("client share is not P-256 point ‖ encapsulation key")
	}
	sShare, ss, err = serverKeyShareWith(groupSecP256r1MLKEM768, cShare, serverKey, encap)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := client.clientSharedSecret(sShare)
	if err != nil || !bytes.Equal(cs, ss) {
		t.Fatalf("client secret %x %v", cs, err)
	}
}

func TestKeyShare13Rejects(t *testing.T) {
	for _, g := range []tls.CurveID{groupX25519, groupSecp256r1, groupSecp384r1, groupX25519MLKEM768, groupSecP256r1MLKEM768} {
		priv, share, err := generateKeyShare13(rand.Reader, g)
		if err != nil {
			t.Fatal(err)
		}
		for name, bad := range map[string][]byte{
			"empty":     nil,
			"short":     share[:len(share)-1],
			"long":      append(bytes.Clone(share), 0),
			"all zeros": make([]byte, len(share)), // low-order X25519 point, invalid P-256/P-384 encoding
		} {
			if g == groupX25519MLKEM768 && name == "all zeros" {
				// The zero ML-KEM key is well formed; the zero X25519
				// point is not.
				bad = bytes.Clone(share)
				clear(bad[mlkem.EncapsulationKeySize768:])
			}
			if _, _, err := serverKeyShare13(rand.Reader, g, bad); err == nil {
				t.Errorf("%v: server accepted %s client share", g, name)
			}
		}
		// A client share whose ML-KEM key is not reduced mod q (its
		// last 32 bytes are the seed ρ, not coefficients).
		if isHybrid(g) {
			bad := bytes.Clone(share)
			_, ek, _ := splitHybrid(g, bad, mlkem.EncapsulationKeySize768)
			for i := range len(ek) - 32 {
				ek[i] = 0xff
			}
			if _, _, err := serverKeyShare13(rand.Reader, g, bad); err == nil {
				t.Errorf("%v: unreduced ML-KEM encapsulation key accepted", g)
			}
			// A valid ML-KEM key with an invalid ECDH part: zeros,
			// no point's encoding for P-256, a low-order point for
			// X25519.
			bad = bytes.Clone(share)
			ecdhPart, _, _ := splitHybrid(g, bad, mlkem.EncapsulationKeySize768)
			clear(ecdhPart)
			if _, _, err := serverKeyShare13(rand.Reader, g, bad); err == nil {
				t.Errorf("%v: invalid ECDH part accepted", g)
			}
		}
		sShare, _, err := serverKeyShare13(rand.Reader, g, share)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range [][]byte{nil, sShare[:len(sShare)-1], append(bytes.Clone(sShare), 1)} {
			if _, err := priv.clientSharedSecret(bad); err == nil {
				t.Errorf("%v: client accepted a server share of %d bytes", g, len(bad))
			}
		}
	}
	if _, _, err := generateKeyShare13(rand.Reader, tls.CurveP521); err != errUnsupportedGroup {
		t.Errorf("P-521: %v", err)
	}
	if _, _, err := serverKeyShare13(rand.Reader, 0x6399, make([]byte, 32)); err != errUnsupportedGroup {
		t.Errorf("unknown group: %v", err)
	}
}

// FuzzKeyShare13 hands arbitrary key_exchange bytes to both sides of every
// group: an error or a secret, never a panic.
func FuzzKeyShare13(f *testing.F) {
	f.Add(uint8(0), make([]byte, 32))
	f.Add(uint8(3), make([]byte, 1216))
	f.Add(uint8(1), append([]byte{4}, make([]byte, 64)...))
	f.Add(uint8(4), append([]byte{4}, make([]byte, 1248)...))
	groups := []tls.CurveID{groupX25519, groupSecp256r1, groupSecp384r1, groupX25519MLKEM768, groupSecP256r1MLKEM768}
	privs := make([]*keySharePrivate13, len(groups))
	for i, g := range groups {
		p, _, err := generateKeyShare13(rand.Reader, g)
		if err != nil {
			f.Fatal(err)
		}
		privs[i] = p
	}
	f.Fuzz(func(t *testing.T, gi uint8, share []byte) {
		i := int(gi) % len(groups)
		if len(share) > maxKeyShareLen {
			share = share[:maxKeyShareLen]
		}
		if sShare, ss, err := serverKeyShare13(rand.Reader, groups[i], share); err == nil && (len(sShare) == 0 || len(ss) == 0) {
			t.Fatal("empty share or secret without an error")
		}
		if ss, err := privs[i].clientSharedSecret(share); err == nil && len(ss) == 0 {
			t.Fatal("empty secret without an error")
		}
	})
}
