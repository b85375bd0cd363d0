package dtls

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

func TestHelloRetryRequestRandom(t *testing.T) {
	sum := sha256.Sum256([]byte("HelloRetryRequest"))
	if !bytes.Equal(helloRetryRequestRandom, sum[:]) {
		t.Fatalf("helloRetryRequestRandom %x, want %x", helloRetryRequestRandom, sum)
	}
	if string(downgradeCanaryTLS12) != "DOWNGRD\x01" || len(downgradeCanaryTLS11) != 8 {
		t.Fatal("downgrade sentinels")
	}
}

func fullClientHello13() *clientHelloMsg13 {
	return &clientHelloMsg13{
		clientHelloMsg: clientHelloMsg{
			vers:                         VersionDTLS12,
			random:                       testRandom,
			cipherSuites:                 []uint16{suiteTLSAES128GCMSHA256, suiteTLSChaCha20Poly1305SHA256, 0xc02b},
			compressionMethods:           []uint8{compressionNone},
			serverName:                   "example.com",
			supportedCurves:              []tls.CurveID{groupX25519MLKEM768, tls.X25519, tls.CurveP256},
			supportedSignatureAlgorithms: testSigAlgs,
			alpnProtocols:                []string{"coap"},
			hasConnectionID:              true,
			connectionID:                 []byte{7, 7},
		},
		supportedVersions: []uint16{VersionDTLS13, VersionDTLS12},
		cookieExt:         bytes.Repeat([]byte{0xc0}, 100),
		hasKeyShare:       true,
		keyShares: []keyShare13{
			{group: tls.X25519, data: bytes.Repeat([]byte{1}, 32)},
			{group: groupX25519MLKEM768, data: bytes.Repeat([]byte{2}, 1216)},
		},
		pskModes: []uint8{pskModeDHE},
		pskIdentities: []pskIdentity13{
			{label: []byte("ticket-1"), obfuscatedTicketAge: 12345},
			{label: []byte("external"), obfuscatedTicketAge: 0},
		},
		pskBinders:                       [][]byte{bytes.Repeat([]byte{0xb1}, 32), bytes.Repeat([]byte{0xb2}, 48)},
		supportedSignatureAlgorithmsCert: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		earlyData:                        true,
		postHandshakeAuth:                true,
	}
}

// extensionOrder lists the extension ids of a marshaled ClientHello.
func extensionOrder(t *testing.T, body []byte) []uint16 {
	t.Helper()
	_, exts, ok := splitClientHello(body)
	if !ok {
		t.Fatal("does not split")
	}
	s := cryptobyte.String(exts)
	var ids []uint16
	for !s.Empty() {
		var id uint16
		var data cryptobyte.String
		if !s.ReadUint16(&id) || !s.ReadUint16LengthPrefixed(&data) {
			t.Fatal("bad extension block")
		}
		ids = append(ids, id)
	}
	return ids
}

func TestClientHello13RoundTrip(t *testing.T) {
	m := fullClientHello13()
	b, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got clientHelloMsg13
	if !got.unmarshal(b) {
		t.Fatal("does not parse")
	}
	if !bytes.Equal(got.original, b) {
		t.Fatal("original is not the body")
	}
	got.original, got.extensions = nil, nil
	if b2, err := got.marshal(); err != nil || !bytes.Equal(b2, b) {
		t.Fatalf("round trip: %x\n      became %x (%v)", b, b2, err)
	}
	if !slicesEqualFunc(got.keyShares, m.keyShares, func(a, b keyShare13) bool { return a.group == b.group && bytes.Equal(a.data, b.data) }) ||
		!bytes.Equal(got.cookieExt, m.cookieExt) || len(got.pskIdentities) != 2 ||
		string(got.pskIdentities[1].label) != "external" || got.pskIdentities[0].obfuscatedTicketAge != 12345 ||
		!bytes.Equal(got.pskBinders[1], m.pskBinders[1]) || !got.earlyData || !got.postHandshakeAuth ||
		got.serverName != "example.com" || len(got.supportedVersions) != 2 {
		t.Fatalf("fields lost: %+v", got)
	}
	ids := extensionOrder(t, b)
	if ids[0] != extensionSupportedVersions || ids[1] != extensionCookie {
		t.Errorf("supported_versions and cookie not first: %v", ids)
	}
	if ids[len(ids)-1] != extensionPreSharedKey {
		t.Errorf("pre_shared_key not last: %v", ids)
	}
	for i, id := range ids {
		if id == extensionKeyShare && i < 2 {
			t.Errorf("key_share before the cookie: %v", ids)
		}
	}
	// The binders are the tail: 2-byte length, then each binder.
	tr, err := m.truncatedForBinders(b)
	if err != nil {
		t.Fatal(err)
	}
	tail := b[len(tr):]
	want := append([]byte{0, 1 + 32 + 1 + 48, 32}, m.pskBinders[0]...)
	want = append(append(want, 48), m.pskBinders[1]...)
	if !bytes.Equal(tail, want) {
		t.Fatalf("binders tail %x", tail)
	}
	// A 1.2-only ClientHello marshals as the 1.2 codec does.
	m12 := &clientHelloMsg13{clientHelloMsg: m.clientHelloMsg}
	b13, err := m12.marshal()
	if err != nil {
		t.Fatal(err)
	}
	b12, err := m.clientHelloMsg.marshal()
	if err != nil || !bytes.Equal(b12, b13) {
		t.Fatalf("1.2 ClientHello differs through the 1.3 codec (%v)", err)
	}
	if _, err := m12.truncatedForBinders(b13); err == nil {
		t.Error("binders of a ClientHello without PSKs")
	}
}

func TestClientHello13Rejects(t *testing.T) {
	base := fullClientHello13()
	for _, tc := range []struct {
		name   string
		mutate func(m *clientHelloMsg13)
	}{
		{"binders fewer than identities", func(m *clientHelloMsg13) { m.pskBinders = m.pskBinders[:1] }},
		{"short binder", func(m *clientHelloMsg13) { m.pskBinders[0] = make([]byte, 31) }},
		{"empty identity", func(m *clientHelloMsg13) { m.pskIdentities[0].label = nil }},
		{"empty key share", func(m *clientHelloMsg13) { m.keyShares[0].data = nil }},
		{"too many versions", func(m *clientHelloMsg13) { m.supportedVersions = make([]uint16, 128) }},
	} {
		m := fullClientHello13()
		tc.mutate(m)
		if _, err := m.marshal(); err == nil {
			t.Errorf("%s: marshaled", tc.name)
		}
	}
	_ = base

	// Hand-built extension blocks the parser must refuse.
	hello := func(exts ...[]byte) []byte {
		m := fullClientHello13()
		m12 := &clientHelloMsg13{clientHelloMsg: m.clientHelloMsg}
		m12.hasConnectionID, m12.serverName, m12.alpnProtocols = false, "", nil
		m12.supportedCurves, m12.supportedSignatureAlgorithms = nil, nil
		b, err := m12.marshal()
		if err != nil {
			t.Fatal(err)
		}
		fixed, _, _ := splitClientHello(b)
		var block []byte
		for _, e := range exts {
			block = append(block, e...)
		}
		out := append(bytes.Clone(fixed), byte(len(block)>>8), byte(len(block)))
		return append(out, block...)
	}
	ext := func(id uint16, data ...byte) []byte {
		return append([]byte{byte(id >> 8), byte(id), byte(len(data) >> 8), byte(len(data))}, data...)
	}
	share := func(g uint16, n int) []byte {
		return append([]byte{byte(g >> 8), byte(g), byte(n >> 8), byte(n)}, bytes.Repeat([]byte{9}, n)...)
	}
	keyShareExt := func(entries ...[]byte) []byte {
		var list []byte
		for _, e := range entries {
			list = append(list, e...)
		}
		return ext(extensionKeyShare, append([]byte{byte(len(list) >> 8), byte(len(list))}, list...)...)
	}
	psk := ext(extensionPreSharedKey, append([]byte{0, 7, 0, 1, 'x', 0, 0, 0, 0, 0, 33, 32}, make([]byte, 32)...)...)
	var manyShares [][]byte
	for i := range maxKeyShares13 + 1 {
		manyShares = append(manyShares, share(uint16(0x100+i), 1))
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"empty supported_versions", hello(ext(extensionSupportedVersions, 0))},
		{"odd supported_versions", hello(ext(extensionSupportedVersions, 3, 0xfe, 0xfc, 0xfe))},
		{"empty cookie", hello(ext(extensionCookie, 0, 0))},
		{"duplicate key share group", hello(keyShareExt(share(29, 32), share(29, 32)))},
		{"empty key_exchange", hello(keyShareExt(share(29, 0)))},
		{"too many key shares", hello(keyShareExt(manyShares...))},
		{"empty psk modes", hello(ext(extensionPSKModes, 0))},
		{"trailing byte in early_data", hello(ext(extensionEarlyData, 0))},
		{"binder without identity", hello(ext(extensionPreSharedKey, append([]byte{0, 0, 0, 33, 32}, make([]byte, 32)...)...))},
		{"duplicate extension", hello(ext(extensionCookie, 0, 1, 1), ext(extensionCookie, 0, 1, 1))},
	} {
		var m clientHelloMsg13
		if m.unmarshal(tc.body) {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	// pre_shared_key not last parses, flagged for illegal_parameter.
	var m clientHelloMsg13
	if !m.unmarshal(hello(psk, ext(extensionEarlyData))) || !m.pskNotLast {
		t.Error("pre_shared_key before early_data not flagged")
	}
	if !m.unmarshal(hello(ext(extensionEarlyData), psk)) || m.pskNotLast || len(m.pskIdentities) != 1 {
		t.Error("pre_shared_key last refused or flagged")
	}
	// An empty key_share list is valid: the client asks for an HRR.
	if !m.unmarshal(hello(keyShareExt())) || !m.hasKeyShare || len(m.keyShares) != 0 {
		t.Error("empty key_share refused")
	}
}

func TestServerHello13RoundTrip(t *testing.T) {
	for _, m := range []*serverHelloMsg13{
		{vers: VersionDTLS12, random: testRandom, cipherSuite: suiteTLSAES128GCMSHA256,
			supportedVersion: VersionDTLS13, serverShare: keyShare13{tls.X25519, bytes.Repeat([]byte{3}, 32)},
			hasSelectedIdentity: true, selectedIdentity: 1, hasConnectionID: true, connectionID: []byte{}},
		{vers: VersionDTLS12, random: helloRetryRequestRandom, cipherSuite: suiteTLSAES128GCMSHA256,
			supportedVersion: VersionDTLS13, selectedGroup: groupX25519MLKEM768, cookie: []byte("cookie")},
		{vers: VersionDTLS12, random: helloRetryRequestRandom, cipherSuite: suiteTLSAES128CCMSHA256,
			supportedVersion: VersionDTLS13, cookie: []byte("cookie only")},
	} {
		b, err := m.marshal()
		if err != nil {
			t.Fatal(err)
		}
		var got serverHelloMsg13
		if !got.unmarshal(b) {
			t.Fatalf("%x does not parse", b)
		}
		got.original, got.extensions = nil, nil
		if got.sessionIDEcho == nil {
			got.sessionIDEcho = m.sessionIDEcho
		}
		if got.connectionID != nil && len(got.connectionID) == 0 {
			got.connectionID = m.connectionID
		}
		if b2, err := got.marshal(); err != nil || !bytes.Equal(b2, b) {
			t.Fatalf("round trip: %x\n      became %x (%v)", b, b2, err)
		}
		if got.isHelloRetryRequest() != bytes.Equal(m.random, helloRetryRequestRandom) {
			t.Fatal("isHelloRetryRequest")
		}
	}
	// HRR key_share is 2 bytes; a ServerHello's is a KeyShareEntry.
	hrr := &serverHelloMsg13{vers: VersionDTLS12, random: helloRetryRequestRandom, selectedGroup: tls.X25519}
	b, _ := hrr.marshal()
	sh := bytes.Clone(b)
	copy(sh[2:], testRandom) // the same bytes as a ServerHello
	var m serverHelloMsg13
	if m.unmarshal(sh) {
		t.Error("2-byte key_share accepted in a ServerHello")
	}
	bad := &serverHelloMsg13{vers: VersionDTLS12, random: testRandom, serverShare: keyShare13{group: tls.X25519}}
	if _, err := bad.marshal(); err == nil {
		t.Error("empty server share marshaled")
	}
}

func TestEncryptedExtensions13RoundTrip(t *testing.T) {
	for _, m := range []*encryptedExtensionsMsg13{
		{},
		{serverNameAck: true, supportedGroups: []tls.CurveID{tls.X25519}, alpnProtocol: "coap",
			hasSRTP: true, srtpProtectionProfile: 7, srtpMKI: []byte{}, earlyData: true,
			hasClientCertType: true, clientCertType: 2, hasServerCertType: true, serverCertType: 2},
	} {
		b, err := m.marshal()
		if err != nil {
			t.Fatal(err)
		}
		var got encryptedExtensionsMsg13
		if !got.unmarshal(b) {
			t.Fatalf("%x does not parse", b)
		}
		got.extensions = nil
		if got.srtpMKI != nil && len(got.srtpMKI) == 0 {
			got.srtpMKI = m.srtpMKI
		}
		if b2, err := got.marshal(); err != nil || !bytes.Equal(b2, b) {
			t.Fatalf("round trip: %x\n      became %x (%v)", b, b2, err)
		}
	}
	var m encryptedExtensionsMsg13
	for _, b := range [][]byte{
		nil,
		{0, 4, 0, 0, 0, 0, 0},          // trailing byte
		{0, 8, 0, 0, 0, 0, 0, 0, 0, 0}, // duplicate server_name
		{0, 5, 0, byte(extensionServerName), 0, 1, 0},        // server_name ack with data
		{0, 5, 0, byte(extensionClientCertType), 0, 1, 2, 9}, // trailing in block
	} {
		if m.unmarshal(b) {
			t.Errorf("%x accepted", b)
		}
	}
}

func TestCertificateRequest13RoundTrip(t *testing.T) {
	m := &certificateRequestMsg13{
		context:                          []byte{1, 2, 3},
		supportedSignatureAlgorithms:     testSigAlgs,
		supportedSignatureAlgorithmsCert: []tls.SignatureScheme{tls.Ed25519},
		certificateAuthorities:           [][]byte{[]byte("dn-1"), []byte("dn-2")},
	}
	b, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got certificateRequestMsg13
	if !got.unmarshal(b) {
		t.Fatal("does not parse")
	}
	got.extensions = nil
	if b2, err := got.marshal(); err != nil || !bytes.Equal(b2, b) {
		t.Fatalf("round trip: %x\n      became %x (%v)", b, b2, err)
	}
	if _, err := (&certificateRequestMsg13{}).marshal(); err == nil {
		t.Error("no signature_algorithms marshaled")
	}
	// Without signature_algorithms it does not parse.
	if got.unmarshal([]byte{0, 0, 0}) {
		t.Error("CertificateRequest without signature_algorithms parsed")
	}
}

func TestCertificate13RoundTrip(t *testing.T) {
	for _, m := range []*certificateMsg13{
		{context: []byte{}, entries: nil},
		{context: []byte{9}, entries: []certificateEntry13{
			{data: []byte("leaf"), ocspStaple: []byte("ocsp"), scts: [][]byte{[]byte("sct1"), []byte("sct2")}},
			{data: []byte("intermediate")},
		}},
	} {
		b, err := m.marshal()
		if err != nil {
			t.Fatal(err)
		}
		var got certificateMsg13
		if !got.unmarshal(b) {
			t.Fatalf("%x does not parse", b)
		}
		if len(got.context) == 0 {
			got.context = m.context
		}
		if b2, err := got.marshal(); err != nil || !bytes.Equal(b2, b) {
			t.Fatalf("round trip: %x\n      became %x (%v)", b, b2, err)
		}
	}
	many := &certificateMsg13{}
	for range maxCertificateEntries13 + 1 {
		many.entries = append(many.entries, certificateEntry13{data: []byte{1}})
	}
	if _, err := many.marshal(); err == nil {
		t.Error("too many entries marshaled")
	}
	// Build the over-long list by hand: the parser refuses it.
	b := []byte{0}
	var list []byte
	for range maxCertificateEntries13 + 1 {
		list = append(list, 0, 0, 1, 0xaa, 0, 0)
	}
	b = append(b, byte(len(list)>>16), byte(len(list)>>8), byte(len(list)))
	b = append(b, list...)
	var got certificateMsg13
	if got.unmarshal(b) {
		t.Error("too many entries parsed")
	}
	for _, bad := range [][]byte{
		{0, 0, 0, 5, 0, 0, 0, 0, 0},          // empty cert_data
		{0, 0, 0, 6, 0, 0, 1, 0xaa, 0, 1},    // extensions length past the end
		{0, 0, 0, 6, 0, 0, 1, 0xaa, 0, 0, 0}, // trailing byte
	} {
		if got.unmarshal(bad) {
			t.Errorf("%x parsed", bad)
		}
	}
}

func TestNewSessionTicket13RoundTrip(t *testing.T) {
	for _, m := range []*newSessionTicketMsg13{
		{lifetime: 3600, ageAdd: 0xdeadbeef, nonce: []byte{0, 1}, label: []byte("ticket")},
		{lifetime: maxTicketLifetime13, nonce: []byte{}, label: []byte("t"), hasMaxEarlyData: true, maxEarlyData: 1 << 14},
	} {
		b, err := m.marshal()
		if err != nil {
			t.Fatal(err)
		}
		var got newSessionTicketMsg13
		if !got.unmarshal(b) {
			t.Fatalf("%x does not parse", b)
		}
		if len(got.nonce) == 0 {
			got.nonce = m.nonce
		}
		if b2, err := got.marshal(); err != nil || !bytes.Equal(b2, b) {
			t.Fatalf("round trip: %x\n      became %x (%v)", b, b2, err)
		}
	}
	if _, err := (&newSessionTicketMsg13{lifetime: maxTicketLifetime13 + 1, label: []byte("t")}).marshal(); err == nil {
		t.Error("lifetime over seven days marshaled")
	}
	var m newSessionTicketMsg13
	over := []byte{0, 0x09, 0x3a, 0x81, 0, 0, 0, 0, 0, 0, 1, 't', 0, 0} // 604801 s
	if m.unmarshal(over) {
		t.Error("lifetime over seven days parsed")
	}
	if !m.unmarshal([]byte{0, 0x09, 0x3a, 0x80, 0, 0, 0, 0, 0, 0, 1, 't', 0, 0}) {
		t.Error("seven days refused")
	}
	if m.unmarshal([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Error("empty ticket parsed")
	}
}

func TestSmallMessages13(t *testing.T) {
	var ku keyUpdateMsg13
	for _, v := range []uint8{keyUpdateNotRequested, keyUpdateRequested} {
		b, err := (&keyUpdateMsg13{requestUpdate: v}).marshal()
		if err != nil || !ku.unmarshal(b) || ku.requestUpdate != v || !ku.valid() {
			t.Fatalf("KeyUpdate %d", v)
		}
	}
	if !ku.unmarshal([]byte{2}) || ku.valid() {
		t.Error("KeyUpdate 2 must parse (for illegal_parameter) and be invalid")
	}
	if ku.unmarshal(nil) || ku.unmarshal([]byte{0, 0}) {
		t.Error("KeyUpdate of the wrong length parsed")
	}
	if _, err := (&keyUpdateMsg13{requestUpdate: 2}).marshal(); err == nil {
		t.Error("KeyUpdate 2 marshaled")
	}

	var rc requestConnectionIDMsg13
	if b, _ := (&requestConnectionIDMsg13{numCIDs: 5}).marshal(); !rc.unmarshal(b) || rc.numCIDs != 5 {
		t.Error("RequestConnectionId round trip")
	}
	if rc.unmarshal([]byte{1, 2}) {
		t.Error("RequestConnectionId of two bytes parsed")
	}

	nc := &newConnectionIDMsg13{cids: [][]byte{{1, 2, 3}, {}, {4}}, usage: cidSpare}
	b, err := nc.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, []byte{0, 7, 3, 1, 2, 3, 0, 1, 4, 1}) {
		t.Fatalf("NewConnectionId %x", b)
	}
	var got newConnectionIDMsg13
	if !got.unmarshal(b) || got.usage != cidSpare || len(got.cids) != 3 || !bytes.Equal(got.cids[2], []byte{4}) || !got.empty {
		t.Fatalf("NewConnectionId parsed %+v", got)
	}
	for _, bad := range [][]byte{
		{0, 0, 2},       // usage 2
		{0, 2, 5, 1, 0}, // CID past its list
		{0, 0, 0, 0},    // trailing
	} {
		if got.unmarshal(bad) {
			t.Errorf("%x parsed", bad)
		}
	}
	many := []byte{0, byte(2 * (maxNewCIDs13 + 1))}
	for range maxNewCIDs13 + 1 {
		many = append(many, 1, 0xcc)
	}
	many = append(many, 0, 0) // an empty one past the bound
	many[1] += 2
	if !got.unmarshal(append(many, cidImmediate)) || len(got.cids) != maxNewCIDs13 || !got.empty {
		t.Errorf("a NewConnectionId of %d CIDs: %d kept, empty %v; want the first %d, and the empty one seen",
			maxNewCIDs13+2, len(got.cids), got.empty, maxNewCIDs13)
	}
	if _, err := (&newConnectionIDMsg13{cids: make([][]byte, maxNewCIDs13+1)}).marshal(); err == nil {
		t.Error("too many CIDs marshaled")
	}
}

func TestTranscript13Encoding(t *testing.T) {
	if got := appendTranscriptMessage13([]byte{0xff}, typeFinished, []byte{1, 2, 3}); !bytes.Equal(got, []byte{0xff, 20, 0, 0, 3, 1, 2, 3}) {
		t.Fatalf("transcript message %x", got)
	}
	ch := []byte("client hello body")
	h := sha256.Sum256(append([]byte{1, 0, 0, byte(len(ch))}, ch...))
	want := append([]byte{254, 0, 0, 32}, h[:]...)
	if got := messageHash13(crypto.SHA256, ch); !bytes.Equal(got, want) {
		t.Fatalf("message_hash %x, want %x", got, want)
	}
	sm := signedMessage13(false, []byte{0xaa})
	if len(sm) != 64+len("TLS 1.3, client CertificateVerify")+1+1 || sm[0] != 0x20 || sm[63] != 0x20 ||
		string(sm[64:97]) != "TLS 1.3, client CertificateVerify" || sm[97] != 0 || sm[98] != 0xaa {
		t.Fatalf("signed message %q", sm)
	}
}

// message13Codecs are the 1.3 message types the fuzz target drives.
var message13Codecs = []func() handshakeMessage{
	func() handshakeMessage { return new(clientHelloMsg13) },
	func() handshakeMessage { return new(serverHelloMsg13) },
	func() handshakeMessage { return new(encryptedExtensionsMsg13) },
	func() handshakeMessage { return new(certificateRequestMsg13) },
	func() handshakeMessage { return new(certificateMsg13) },
	func() handshakeMessage { return new(newSessionTicketMsg13) },
	func() handshakeMessage { return new(keyUpdateMsg13) },
	func() handshakeMessage { return new(requestConnectionIDMsg13) },
	func() handshakeMessage { return new(newConnectionIDMsg13) },
}

// FuzzHandshakeMessages13 parses arbitrary bodies as each 1.3 message: no
// panic, and whatever parses and marshals again parses to the same bytes.
func FuzzHandshakeMessages13(f *testing.F) {
	seeds := []handshakeMessage{
		fullClientHello13(),
		&serverHelloMsg13{vers: VersionDTLS12, random: helloRetryRequestRandom, supportedVersion: VersionDTLS13, selectedGroup: tls.X25519, cookie: []byte("c")},
		&encryptedExtensionsMsg13{serverNameAck: true, alpnProtocol: "coap"},
		&certificateRequestMsg13{supportedSignatureAlgorithms: testSigAlgs},
		&certificateMsg13{entries: []certificateEntry13{{data: []byte("leaf"), ocspStaple: []byte("o")}}},
		&newSessionTicketMsg13{lifetime: 1, label: []byte("t"), hasMaxEarlyData: true},
		&keyUpdateMsg13{requestUpdate: 1},
		&requestConnectionIDMsg13{numCIDs: 2},
		&newConnectionIDMsg13{cids: [][]byte{{1}}},
	}
	for i, m := range seeds {
		b, err := m.marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	// wolfSSL's ClientHellos and ServerHellos (plaintext, unfragmented
	// records only), as the ClientHello and ServerHello codecs.
	for _, name := range captureFiles13 {
		for _, d := range loadCapture13(f, name).datagrams {
			hdr, body, _, reason := nextRecord(d.b)
			var h handshakeHeader
			if reason != dropNone || hdr.typ != recordTypeHandshake || !h.unmarshal(body) ||
				h.fragmentLength != h.length || int(h.length) != len(body)-handshakeHeaderLen {
				continue
			}
			which := uint8(0)
			if h.typ == typeServerHello {
				which = 1
			}
			f.Add(which, body[handshakeHeaderLen:])
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		newMsg := message13Codecs[int(which)%len(message13Codecs)]
		m := newMsg()
		if !m.unmarshal(body) {
			return
		}
		b1, err := m.marshal()
		if err != nil {
			return // parsed values marshal may refuse (e.g. KeyUpdate 2)
		}
		m2 := newMsg()
		if !m2.unmarshal(b1) {
			t.Fatalf("%T: own output %x does not parse", m, b1)
		}
		b2, err := m2.marshal()
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("%T: not idempotent: %x vs %x (%v)", m, b1, b2, err)
		}
	})
}

func slicesEqualFunc[T any](a, b []T, eq func(T, T) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !eq(a[i], b[i]) {
			return false
		}
	}
	return true
}
