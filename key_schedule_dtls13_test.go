package dtls

import (
	"bytes"
	"crypto"
	"crypto/sha512"
	"encoding/hex"
	"testing"
)

// scheduleInputs are the inputs of one run of the key schedule: the
// (EC)DHE shared secret and three transcript hashes.
type scheduleInputs struct {
	hash                      crypto.Hash
	keyLen                    int
	shared, hello, sFin, cFin string
}

// runSchedule derives every value the tests compare, by name, with the
// given label prefix.
func runSchedule(t *testing.T, prefix string, in scheduleInputs) map[string][]byte {
	t.Helper()
	h := in.hash
	out := map[string][]byte{}
	check := func(name string) func([]byte, error) []byte {
		return func(b []byte, err error) []byte {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out[name] = b
			return b
		}
	}
	early, err := newEarlySecretPrefix(h, prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	out["early"] = early.secret
	check("derived")(early.derive(labelDerived, emptyHash(h)))
	hs, err := early.handshakeSecret(unhex(t, in.shared))
	if err != nil {
		t.Fatal(err)
	}
	out["hs"] = hs.secret
	chs := check("chs")(hs.clientHandshakeTrafficSecret(unhex(t, in.hello)))
	shs := check("shs")(hs.serverHandshakeTrafficSecret(unhex(t, in.hello)))
	ms, err := hs.masterSecret()
	if err != nil {
		t.Fatal(err)
	}
	out["ms"] = ms.secret
	sFin, cFin := unhex(t, in.sFin), unhex(t, in.cFin)
	cap := check("cap")(ms.clientApplicationTrafficSecret(sFin))
	check("sap")(ms.serverApplicationTrafficSecret(sFin))
	exp := check("exp")(ms.exporterMasterSecret(sFin))
	res := check("res")(ms.resumptionMasterSecret(cFin))
	keys, err := deriveTrafficKeys13(h, prefix, shs, in.keyLen)
	if err != nil {
		t.Fatal(err)
	}
	out["key"], out["iv"], out["sn"] = keys.key, keys.iv, keys.snKey
	// The client's Finished covers the transcript through the server's
	// Finished (RFC 8446 §4.4.4), under the client handshake secret.
	check("fk")(finishedKey13(h, prefix, chs))
	check("vd")(finishedVerifyData13(h, prefix, chs, sFin))
	check("upd")(nextTrafficSecret13(h, prefix, cap))
	check("ekm")(exportKeyingMaterial13(h, prefix, exp, "EXPERIMENTAL-dtls-go", []byte("context"), 40))
	check("psk")(resumptionPSK13(h, prefix, res, []byte{0, 0}))
	return out
}

func compareSchedule(t *testing.T, got map[string][]byte, want map[string]string) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: not derived", name)
			continue
		}
		if !bytes.Equal(g, unhex(t, w)) {
			t.Errorf("%s = %x, want %s", name, g, w)
		}
	}
}

// rfc8448Inputs are the inputs of RFC 8448 §3 ("Simple 1-RTT Handshake"):
// the x25519 shared secret and the hashes of ClientHello..ServerHello,
// ..server Finished and ..client Finished.
var rfc8448Inputs = scheduleInputs{
	hash:   crypto.SHA256,
	keyLen: 16,
	shared: "8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d",
	hello:  "860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8",
	sFin:   "9608102a0f1ccc6db6250b7b7e417b1a000eaada3daae4777a7686c9ff83df13",
	cFin:   "209145a96ee8e2a122ff810047cc952684658d6049e86429426db87c54ad143d",
}

// TestKeyScheduleTLS13RFC8448 runs the schedule with TLS 1.3's "tls13 "
// prefix against the values RFC 8448 §3 publishes: it proves the
// machinery (HKDF-Expand-Label, Derive-Secret, the stages, traffic keys,
// Finished) that the DTLS prefix then only relabels.
func TestKeyScheduleTLS13RFC8448(t *testing.T) {
	got := runSchedule(t, labelPrefixTLS13, rfc8448Inputs)
	compareSchedule(t, got, map[string]string{
		"early":   "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a",
		"derived": "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba",
		"hs":      "1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac",
		"chs":     "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21",
		"shs":     "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38",
		"ms":      "18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919",
		"cap":     "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5",
		"sap":     "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643",
		"exp":     "fe22f881176eda18eb8f44529e6792c50c9a3f89452f68d8ae311b4309d3cf50",
		"res":     "7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c",
		"key":     "3fce516009c21727d0f2e4e86ee403bc",
		"iv":      "5d313eb2671276ee13000b30",
		"fk":      "b80ad01015fb2f0bd65ff7d4da5d6bf83f84821d1f87fdc7d3c75b5a7b42d9c4",
		"vd":      "a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61",
	})
}

// The DTLS 1.3 vectors below were computed with an independent
// implementation, pion/dtls v4.0.1's pkg/crypto/keyschedule
// (HkdfExtract, HkdfExpandLabel and DeriveSecret with its "dtls13"
// prefix, plus crypto/hmac for verify_data), from the same inputs: RFC
// 8448 §3's for SHA-256, and for SHA-384 the same shared secret with
// SHA-384("hello"), ("server finished") and ("client finished") as the
// transcript hashes. The exporter is "EXPERIMENTAL-dtls-go" with context
// "context" and 40 bytes; the ticket nonce is 0x0000.
func TestKeyScheduleDTLS13(t *testing.T) {
	s384 := func(s string) string {
		h := sha512.Sum384([]byte(s))
		return hex.EncodeToString(h[:])
	}
	for _, tc := range []struct {
		name string
		in   scheduleInputs
		want map[string]string
	}{
		{"SHA256", rfc8448Inputs, map[string]string{
			"early":   "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a",
			"derived": "b17bce9451ee8bc6e8aebc0aa9e98295677a4a6a91f78440833146e465f2ff95",
			"hs":      "ca3b00400dda5821d05b71540280b71dff23443b9bf31cb2c5ce0dd3f755e643",
			"chs":     "0ac2c35eb415ee9574894b75d7a89af77aba06c2a783252418b7f5b78ddf8e21",
			"shs":     "6d05b4d8ef3771d0b4dfa393174f6ab2a6be24b1e04616f335a49a8960c2865b",
			"ms":      "f7f6fb3779f75e7496ca68e2a332b8bbf1728dc0aa0b856b0e990a4a7eaf7c2b",
			"cap":     "bde222b5fbd46ed6672fbd446d0b4b6bab8f54ad5266f98383ce404c9f49551c",
			"sap":     "82e651e01cad4cddcb820e6f6612466f5ca2e52b139c2ef4d203ed9d60f9fd3d",
			"exp":     "966041b5faa05c0ddd6b7c5070f9d95920ca6add84572c7195a42947f9b1a45d",
			"res":     "21b306131c27b1728ca349d29d365fd899ab5bf98a58b5a90c189fc88850da81",
			"key":     "12f611f4342abaef95b288b8c8d3214f",
			"iv":      "b591a94e51d6613c57230bf2",
			"sn":      "ae97e68b65fce8c01138a0540e642193",
			"fk":      "b755f52f7af2d93b03ff65537cd0c2e170ae507dfa9fb5ef043246f63be7719e",
			"vd":      "0b99d347d1b28788dd99d05336bed935da4294d362ea7f06fce9edf1c6c512fe",
			"upd":     "641620e1fb95a9e31c7f5456f454bf2d321a4413773c31e0cc0c62e0ef3fce44",
			"ekm":     "9dde57164c1b4bc7a5b3fedcf29b20f00e62b8a413912bf2bc4c014b115e093818ab660efff0d2a3",
			"psk":     "639c558fa649e94ad58a28015dbec2bcdbdc6cc12a2e6b813de5351e3883a36e",
		}},
		{"SHA384", scheduleInputs{
			hash: crypto.SHA384, keyLen: 32, shared: rfc8448Inputs.shared,
			hello: s384("hello"), sFin: s384("server finished"), cFin: s384("client finished"),
		}, map[string]string{
			"early":   "7ee8206f5570023e6dc7519eb1073bc4e791ad37b5c382aa10ba18e2357e716971f9362f2c2fe2a76bfd78dfec4ea9b5",
			"derived": "27008605d3396f8844197565caecc592b3e58f2eae55f841b577cfbcabb47e221f674ed3a68aa893439cf557f111c0fc",
			"hs":      "ab864cf4002bec9f2c3086a8ad9db25986089f1e07c50c42383e2dbafdd0a841cbeac0ed7cd0999986fd6a7cdcc3462d",
			"chs":     "c756a5aa1da699d7af658fad4797aeac2f38ea9596f3b70212ee9969029853b95e949f370f117729faefb9f4ed519142",
			"shs":     "dd8d58946d46dea0a0b4b94a86188e72578a16ddfe42d33077110c0dd3f5024e572a759940fe5cc4bcaa56c00d054c35",
			"ms":      "a199324e7b8fcc10a80e639b981aef0c6b67e370158bc8c62579b02f85c7dcdc3ed7d2353f5c950836a52413f5168563",
			"cap":     "457ed7fa678352c0db55d51aacbac2652628760871ccb42a84e75bb5a71f98d8b9a81e8986fccb31f004c9e3446d392d",
			"sap":     "541c7090ecb1442afe26e381671899bdb0a92c4f80afffb69a72b24b0284171a62d608d5be07391ca188e2805a8df8c5",
			"exp":     "5c5886b4f428679eb6866df183223a6a04c479a7ee8711937b7ec7bc65dcc3e9cd9391cddada059b6bf4a35002ffbcf9",
			"res":     "a82ecd35a2dacfeca72619b08a640f91f85a74153b5a5d27435082346e65b1fa16f59849b78ea121a62f4774efa1b96b",
			"key":     "770682d4c44afeb7ef2f9edb87af39f5c7408a2325b552cb1c3344ae14bb7e12",
			"iv":      "75922553b0aa1b729ce1c796",
			"sn":      "a6f84b564322a3410a32e7fcb497e48d20a9e4a4a8a1ab4d6f0e783308431942",
			"fk":      "f771307ad055f3f590fb84148a0b06a98dc6743ce94deecefa93017c4ae6ac50dadcd95ff492ab9e824863f1e710d58f",
			"vd":      "866c3f96cba71de6fa3731b1c7e9e0f1d08ff1df64f2fcba6685f109970cfada696fa9d41cd149d16affe26660daf6aa",
			"upd":     "29d4d8a581e040700fa9b966996958f38e991379dd2e53d188e9046e5542b1a07131a66f43d12bc5917c538d24ae8531",
			"ekm":     "1a07b8f96a2dcdee05fbe2e390366d88a524b14a8ee21c7169b341729622306466431240250247f2",
			"psk":     "1fc177777112a3dd263eeed77c920cc45549d685437b5575653f34da3cc8a620c382f66f8a491f918775fe2c7e9bda94",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runSchedule(t, labelPrefixDTLS13, tc.in)
			compareSchedule(t, got, tc.want)
			if len(got) != len(tc.want) {
				t.Errorf("derived %d values, the vector has %d", len(got), len(tc.want))
			}
		})
	}
}

// TestKeyScheduleDTLS13Prefix checks that the library's entry points use
// the DTLS prefix, not TLS's: the same inputs give different secrets.
func TestKeyScheduleDTLS13Prefix(t *testing.T) {
	early, err := newEarlySecret13(crypto.SHA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	if early.prefix != labelPrefixDTLS13 {
		t.Fatalf("prefix %q", early.prefix)
	}
	secret := unhex(t, rfc8448Inputs.shared)
	d, err := expandLabel13(crypto.SHA256, secret, labelKey, nil, 16)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := hkdfExpandLabel(crypto.SHA256, labelPrefixTLS13, secret, labelKey, nil, 16)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(d, tl) {
		t.Fatal("dtls13 and tls13 labels derive the same key")
	}
}

func TestHkdfExpandLabelBounds(t *testing.T) {
	secret := make([]byte, 32)
	long := string(make([]byte, 250))
	if _, err := hkdfExpandLabel(crypto.SHA256, labelPrefixDTLS13, secret, long, nil, 16); err == nil {
		t.Error("label of 256 bytes with the prefix accepted")
	}
	if _, err := hkdfExpandLabel(crypto.SHA256, labelPrefixDTLS13, secret, "x", make([]byte, 256), 16); err == nil {
		t.Error("context of 256 bytes accepted")
	}
	if _, err := hkdfExpandLabel(crypto.SHA256, labelPrefixDTLS13, secret, "x", nil, 255*32+1); err == nil {
		t.Error("output of more than 255 hash lengths accepted")
	}
	if _, err := exportKeyingMaterial13(crypto.SHA256, labelPrefixDTLS13, secret, long, nil, 16); err == nil {
		t.Error("exporter label too long accepted")
	}
}

func TestVerifyFinished13(t *testing.T) {
	h := crypto.SHA256
	base := unhex(t, "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
	th := unhex(t, rfc8448Inputs.sFin)
	vd, err := finishedVerifyData13(h, labelPrefixTLS13, base, th)
	if err != nil {
		t.Fatal(err)
	}
	if !verifyFinished13(h, labelPrefixTLS13, base, th, vd) {
		t.Fatal("own verify_data refused")
	}
	for i := range vd {
		bad := bytes.Clone(vd)
		bad[i] ^= 0x80
		if verifyFinished13(h, labelPrefixTLS13, base, th, bad) {
			t.Fatalf("verify_data with byte %d flipped accepted", i)
		}
	}
	if verifyFinished13(h, labelPrefixTLS13, base, th, vd[:len(vd)-1]) {
		t.Fatal("truncated verify_data accepted")
	}
	if verifyFinished13(h, labelPrefixDTLS13, base, th, vd) {
		t.Fatal("verify_data of the tls13 prefix accepted under dtls13")
	}
}

func TestBinderKey13(t *testing.T) {
	early, err := newEarlySecret13(crypto.SHA256, []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	ext, err := early.binderKey(true)
	if err != nil {
		t.Fatal(err)
	}
	res, err := early.binderKey(false)
	if err != nil {
		t.Fatal(err)
	}
	want, err := expandLabel13(crypto.SHA256, early.secret, labelExtBinder, emptyHash(crypto.SHA256), 32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ext, want) || bytes.Equal(ext, res) {
		t.Fatalf("binder keys: ext %x res %x", ext, res)
	}
}

// TestZeroEarly13 checks the precomputed Early Secret without a PSK and
// its "derived" salt against a fresh extraction, and that the Handshake
// Secret after it is the one computed step by step (RFC 8446 §7.1), for
// both suite hashes; a PSK's Early Secret is never the shared one.
func TestZeroEarly13(t *testing.T) {
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
		k, err := newEarlySecret13(h, nil)
		if err != nil {
			t.Fatal(err)
		}
		if k != zeroEarly13[h] || k.derived == nil {
			t.Fatalf("%v: the precomputed Early Secret was not used", h)
		}
		fresh, err := extractEarly13(h, labelPrefixDTLS13, make([]byte, h.Size()))
		if err != nil {
			t.Fatal(err)
		}
		salt, err := fresh.derive(labelDerived, h.New().Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k.secret, fresh.secret) || !bytes.Equal(k.derived, salt) {
			t.Fatalf("%v: precomputed Early Secret or salt differs", h)
		}
		if !bytes.Equal(emptyHash(h), h.New().Sum(nil)) {
			t.Fatalf("%v: emptyHash differs", h)
		}
		shared := bytes.Repeat([]byte{7}, 32)
		a, err := k.handshakeSecret(shared)
		if err != nil {
			t.Fatal(err)
		}
		b, err := fresh.handshakeSecret(shared)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.secret, b.secret) {
			t.Fatalf("%v: Handshake Secret differs", h)
		}
		p, err := newEarlySecret13(h, bytes.Repeat([]byte{1}, h.Size()))
		if err != nil {
			t.Fatal(err)
		}
		if p == zeroEarly13[h] || p.derived != nil || bytes.Equal(p.secret, k.secret) {
			t.Fatalf("%v: a PSK's Early Secret took the shared one", h)
		}
	}
}
