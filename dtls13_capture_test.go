package dtls

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// The DTLS 1.3 pieces against real traffic: handshakes between wolfSSL
// 5.9.2's example client and server (testdata/dtls13, with the key log
// wolfSSL wrote), decoded with nothing but this package's 1.3 code. It
// checks, against an implementation that is not ours:
//
//   - the unified header, record number decryption (AES and ChaCha20),
//     sequence reconstruction, the per-record nonce and the AEAD
//     additional data, and the DTLSInnerPlaintext: every encrypted record
//     opens with keys derived from wolfSSL's traffic secrets by
//     deriveTrafficKeys13 (the "dtls13" labels);
//   - the transcript with TLS-style headers and message_hash after a
//     HelloRetryRequest, CertificateVerify's signed content, and the
//     Finished MAC of both sides (finishedKey13 with "dtls13");
//   - the parsers of ClientHello (both), HelloRetryRequest, ServerHello,
//     EncryptedExtensions, Certificate, CertificateVerify, Finished,
//     NewSessionTicket and ACK, on wolfSSL's bytes;
//   - X25519MLKEM768's share sizes as wolfSSL sends them.

type captured13 struct {
	datagrams []struct {
		fromClient bool
		b          []byte
	}
	keylog map[string][]byte
}

func loadCapture13(t testing.TB, name string) *captured13 {
	t.Helper()
	f, err := os.Open("testdata/dtls13/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &captured13{keylog: map[string][]byte{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "C", "S":
			b, err := hex.DecodeString(fields[1])
			if err != nil {
				t.Fatal(err)
			}
			c.datagrams = append(c.datagrams, struct {
				fromClient bool
				b          []byte
			}{fields[0] == "C", b})
		case "K":
			secret, err := hex.DecodeString(fields[3])
			if err != nil {
				t.Fatal(err)
			}
			c.keylog[fields[1]] = secret
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

type message13 struct {
	fromClient bool
	typ        handshakeType
	body       []byte
}

// reassembly13 rebuilds the handshake messages of one direction from their
// fragments, in message_seq order.
type reassembly13 struct {
	next    uint16
	pending map[uint16]*struct {
		typ  handshakeType
		buf  []byte
		have int
	}
}

func (r *reassembly13) add(t *testing.T, b []byte, fromClient bool, out *[]message13) {
	t.Helper()
	if r.pending == nil {
		r.pending = map[uint16]*struct {
			typ  handshakeType
			buf  []byte
			have int
		}{}
	}
	for len(b) > 0 {
		var h handshakeHeader
		if !h.unmarshal(b) || len(b) < handshakeHeaderLen+int(h.fragmentLength) {
			t.Fatalf("bad handshake fragment %x", b)
		}
		frag := b[handshakeHeaderLen : handshakeHeaderLen+int(h.fragmentLength)]
		b = b[handshakeHeaderLen+int(h.fragmentLength):]
		if h.messageSeq < r.next {
			continue // a retransmission
		}
		p := r.pending[h.messageSeq]
		if p == nil {
			p = &struct {
				typ  handshakeType
				buf  []byte
				have int
			}{typ: h.typ, buf: make([]byte, h.length)}
			r.pending[h.messageSeq] = p
		}
		copy(p.buf[h.fragmentOffset:], frag)
		p.have += len(frag) // wolfSSL's fragments on loopback do not overlap
		for {
			q := r.pending[r.next]
			if q == nil || q.have < len(q.buf) {
				break
			}
			*out = append(*out, message13{fromClient, q.typ, q.buf})
			delete(r.pending, r.next)
			r.next++
		}
	}
}

func TestDTLS13WolfSSLCapture(t *testing.T) {
	for _, tc := range []struct {
		file     string
		suite    uint16
		group    tls.CurveID
		hrrGroup tls.CurveID // 0: the HelloRetryRequest asks for the cookie only
		shares   [2]int      // client and server key_exchange lengths
		cid      string      // the CID both sides asked for, if any
	}{
		// wolfSSL's client sends an empty key_share rather than fragment
		// the first ClientHello, and the server's HelloRetryRequest asks
		// for the hybrid group along with the cookie.
		{"wolfssl-x25519mlkem768-aes256gcm.txt", suiteTLSAES256GCMSHA384, groupX25519MLKEM768, groupX25519MLKEM768, [2]int{1216, 1120}, ""},
		// A P-256 share in the first ClientHello: the HelloRetryRequest
		// carries only the cookie.
		{"wolfssl-p256-chacha20.txt", suiteTLSChaCha20Poly1305SHA256, groupSecp256r1, 0, [2]int{65, 65}, ""},
		// CCM through internal/ccm, and CCM_8, whose 8-byte tag makes
		// wolfSSL pad short records (a close_notify) to the 16-byte RNE
		// sample.
		{"wolfssl-p256-aes128ccm.txt", suiteTLSAES128CCMSHA256, groupSecp256r1, 0, [2]int{65, 65}, ""},
		{"wolfssl-p256-aes128ccm8.txt", suiteTLSAES128CCM8SHA256, groupSecp256r1, 0, [2]int{65, 65}, ""},
		// Connection IDs: every encrypted record carries the C bit and
		// the receiver's 4-byte CID.
		{"wolfssl-cid-aes256gcm.txt", suiteTLSAES256GCMSHA384, groupSecp256r1, 0, [2]int{65, 65}, "dtls"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			checkCapture13(t, loadCapture13(t, tc.file), tc.suite, tc.group, tc.hrrGroup, tc.shares, tc.cid)
		})
	}
}

// decoded13 is what decodeCapture13 found in a capture.
type decoded13 struct {
	msgs    []message13
	suite   *cipherSuite13
	sent    [2]map[recordNumber]bool // [0] server, [1] client
	acks    [2][]recordNumber
	appData [2][]byte
	alerts  [2][]byte
}

// decodeCapture13 decrypts and reassembles a capture with the key log.
func decodeCapture13(t *testing.T, c *captured13, cidLen int) *decoded13 {
	var (
		msgs        []message13
		reasm       [2]reassembly13 // [0] server, [1] client
		suite       *cipherSuite13
		keys        = map[[2]uint64]*epochKeys13{} // {fromClient, epoch}
		expected    = map[[2]uint64]uint64{}
		curEpoch    = [2]uint64{2, 2}
		sent        [2]map[recordNumber]bool
		acks        [2][]recordNumber
		appData     [2][]byte
		alerts      [2][]byte
		encrypted   int
		tables      [2]*recordLayer
		secretNames = map[[2]uint64]string{
			{0, 2}: "SERVER_HANDSHAKE_TRAFFIC_SECRET", {1, 2}: "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
			{0, 3}: "SERVER_TRAFFIC_SECRET_0", {1, 3}: "CLIENT_TRAFFIC_SECRET_0",
		}
	)
	sent[0], sent[1] = map[recordNumber]bool{}, map[recordNumber]bool{}
	for _, d := range c.datagrams {
		dir := 0
		if d.fromClient {
			dir = 1
		}
		b := bytes.Clone(d.b)
		for len(b) > 0 {
			switch classifyRecord(b[0]) {
			case classPlaintext:
				hdr, body, rest, reason := nextRecord(b)
				if reason != dropNone || hdr.epoch != 0 || hdr.typ != recordTypeHandshake {
					t.Fatalf("plaintext record %+v: %v", hdr, reason)
				}
				sent[dir][recordNumber{0, hdr.seq}] = true
				reasm[dir].add(t, body, d.fromClient, &msgs)
				b = rest
			case classCiphertext13:
				if suite == nil {
					t.Fatal("encrypted record before the ServerHello")
				}
				// The same record through the record layer, on a copy (both
				// decrypt in place); compared with the step-by-step path
				// below.
				if tables[dir] == nil {
					tables[dir] = newReadTable13(cidLen, defaultReplayWindow)
					if cidLen > 0 && len(b) > cidLen {
						// The receiver's CID, as its first record
						// carries it: open13 accepts no other.
						tables[dir].readCID = bytes.Clone(b[1 : 1+cidLen])
					}
					for _, epoch := range []uint64{2, 3} {
						k, err := newEpochKeys13(suite, epoch, c.keylog[secretNames[[2]uint64{uint64(dir), epoch}]])
						if err != nil {
							t.Fatal(err)
						}
						tables[dir].installReadEpoch13(k)
					}
				}
				rnT, typT, contentT, restT, _, reasonT := openTable13(tables[dir], bytes.Clone(b))
				h, hdr, body, rest, reason := parseUnifiedHeader(b, cidLen)
				if reason != dropNone {
					t.Fatalf("unified header %x: %v", b[:min(len(b), 8)], reason)
				}
				epoch := reconstructEpoch(curEpoch[dir], h.epochBits)
				ke := [2]uint64{uint64(dir), epoch}
				k := keys[ke]
				if k == nil {
					secret := c.keylog[secretNames[ke]]
					if secret == nil {
						t.Fatalf("no secret for direction %d epoch %d", dir, epoch)
					}
					var err error
					if k, err = newEpochKeys13(suite, epoch, secret); err != nil {
						t.Fatal(err)
					}
					keys[ke] = k
				}
				curEpoch[dir] = max(curEpoch[dir], epoch)
				k.unmaskSeq(&h, hdr, body)
				seq := reconstructSeq(expected[ke], h.seqBits, h.seqLen)
				typ, content, _, reason := k.openRecord13(hdr, body, seq)
				if reason != dropNone {
					t.Fatalf("record %d of epoch %d from dir %d: %v", seq, epoch, dir, reason)
				}
				if reasonT != dropNone || rnT != (recordNumber{epoch, seq}) || typT != typ ||
					!bytes.Equal(contentT, content) || len(restT) != len(rest) {
					t.Fatalf("open13: %v %+v %v, step by step: {%d %d} %v", reasonT, rnT, typT, epoch, seq, typ)
				}
				encrypted++
				expected[ke] = max(expected[ke], seq+1)
				sent[dir][recordNumber{epoch, seq}] = true
				switch typ {
				case recordTypeHandshake:
					reasm[dir].add(t, content, d.fromClient, &msgs)
				case recordTypeACK:
					rns, ok := parseACK(content, nil)
					if !ok {
						t.Fatalf("ACK %x does not parse", content)
					}
					acks[dir] = append(acks[dir], rns...)
				case recordTypeApplicationData:
					appData[dir] = append(appData[dir], content...)
				case recordTypeAlert:
					alerts[dir] = append(alerts[dir], content...)
				default:
					t.Fatalf("inner content type %v", typ)
				}
				b = rest
			default:
				t.Fatalf("record with first byte %#x", b[0])
			}
		}
		// The ServerHello decides the suite for what follows.
		if suite == nil {
			for _, m := range msgs {
				if m.typ != typeServerHello {
					continue
				}
				var sh serverHelloMsg13
				if sh.unmarshal(m.body) && !sh.isHelloRetryRequest() {
					suite = cipherSuite13ByID(sh.cipherSuite)
				}
			}
		}
	}
	if encrypted < 8 {
		t.Fatalf("only %d encrypted records", encrypted)
	}
	return &decoded13{msgs: msgs, suite: suite, sent: sent, acks: acks, appData: appData, alerts: alerts}
}

func checkCapture13(t *testing.T, c *captured13, wantSuite uint16, wantGroup, hrrGroup tls.CurveID, shares [2]int, cid string) {
	d := decodeCapture13(t, c, len(cid))
	msgs, suite := d.msgs, d.suite
	// The handshake, message by message.
	wantTypes := []struct {
		fromClient bool
		typ        handshakeType
	}{
		{true, typeClientHello}, {false, typeServerHello}, {true, typeClientHello}, {false, typeServerHello},
		{false, typeEncryptedExtensions}, {false, typeCertificate}, {false, typeCertificateVerify},
		{false, typeFinished}, {true, typeFinished}, {false, typeNewSessionTicket},
	}
	if len(msgs) != len(wantTypes) {
		for _, m := range msgs {
			t.Logf("client %v: %v (%d bytes)", m.fromClient, m.typ, len(m.body))
		}
		t.Fatalf("%d messages, want %d", len(msgs), len(wantTypes))
	}
	for i, w := range wantTypes {
		if msgs[i].fromClient != w.fromClient || msgs[i].typ != w.typ {
			t.Fatalf("message %d: client %v %v, want client %v %v", i, msgs[i].fromClient, msgs[i].typ, w.fromClient, w.typ)
		}
	}
	var ch1, ch2 clientHelloMsg13
	var hrr, sh serverHelloMsg13
	var ee encryptedExtensionsMsg13
	var cert certificateMsg13
	var cv certificateVerifyMsg
	var sFin, cFin finishedMsg
	var nst newSessionTicketMsg13
	for i, m := range []handshakeMessage{&ch1, &hrr, &ch2, &sh, &ee, &cert, &cv, &sFin, &cFin, &nst} {
		if !m.unmarshal(msgs[i].body) {
			t.Fatalf("message %d (%v) does not parse: %x", i, msgs[i].typ, msgs[i].body)
		}
	}
	for _, ch := range []*clientHelloMsg13{&ch1, &ch2} {
		if ch.vers != VersionDTLS12 || len(ch.cookie) != 0 || !slicesContains(ch.supportedVersions, VersionDTLS13) || !ch.hasKeyShare || ch.pskNotLast {
			t.Errorf("ClientHello: version %#x legacy cookie %x versions %x key_share %v", ch.vers, ch.cookie, ch.supportedVersions, ch.hasKeyShare)
		}
	}
	if !hrr.isHelloRetryRequest() || len(hrr.cookie) == 0 || hrr.selectedGroup != hrrGroup || hrr.supportedVersion != VersionDTLS13 {
		t.Errorf("HelloRetryRequest: %+v", hrr)
	}
	var share []byte
	for _, ks := range ch2.keyShares {
		if ks.group == wantGroup {
			share = ks.data
		}
	}
	if !bytes.Equal(ch2.cookieExt, hrr.cookie) || len(share) != shares[0] ||
		hrrGroup != 0 && len(ch2.keyShares) != 1 {
		t.Errorf("second ClientHello: cookie %v, key shares %+v", bytes.Equal(ch2.cookieExt, hrr.cookie), ch2.keyShares)
	}
	if sh.isHelloRetryRequest() || sh.vers != VersionDTLS12 || sh.supportedVersion != VersionDTLS13 ||
		sh.cipherSuite != wantSuite || sh.serverShare.group != wantGroup || len(sh.serverShare.data) != shares[1] ||
		len(sh.sessionIDEcho) != 0 {
		t.Errorf("ServerHello: version %#x/%#x suite %#x share %v/%d", sh.vers, sh.supportedVersion, sh.cipherSuite, sh.serverShare.group, len(sh.serverShare.data))
	}
	// connection_id travels in the ClientHello and ServerHello in 1.3 too.
	if cid != "" && (!ch2.hasConnectionID || string(ch2.connectionID) != cid ||
		!sh.hasConnectionID || string(sh.connectionID) != cid) {
		t.Errorf("connection_id: client %v %q, server %v %q", ch2.hasConnectionID, ch2.connectionID, sh.hasConnectionID, sh.connectionID)
	}
	if cid == "" && (ch2.hasConnectionID || sh.hasConnectionID) {
		t.Error("connection_id without CIDs")
	}
	if len(cert.context) != 0 || len(cert.entries) != 1 {
		t.Fatalf("Certificate: context %x, %d entries", cert.context, len(cert.entries))
	}
	leaf, err := x509.ParseCertificate(cert.entries[0].data)
	if err != nil || leaf.Subject.CommonName != "dtls-go test" {
		t.Fatalf("certificate: %v %v", err, leaf)
	}
	if nst.lifetime == 0 || len(nst.label) == 0 {
		t.Errorf("NewSessionTicket: %+v", nst)
	}

	// The transcript (RFC 9147 §5.2, RFC 8446 §4.4.1): ClientHello1
	// replaced by message_hash, then every message with a 4-byte header.
	th := suite.hash.New()
	th.Write(messageHash13(suite.hash, msgs[0].body))
	sum := func() []byte { return th.Sum(nil) }
	for i := 1; i <= 5; i++ { // HRR .. Certificate
		th.Write(appendTranscriptMessage13(nil, msgs[i].typ, msgs[i].body))
	}
	// CertificateVerify signs the transcript through Certificate.
	if cv.signatureAlgorithm != tls.ECDSAWithP256AndSHA256 {
		t.Fatalf("CertificateVerify with %v", cv.signatureAlgorithm)
	}
	digest := sha256Sum(signedMessage13(true, sum()))
	if !ecdsa.VerifyASN1(leaf.PublicKey.(*ecdsa.PublicKey), digest, cv.signature) {
		t.Error("server CertificateVerify does not verify over signedMessage13")
	}
	th.Write(appendTranscriptMessage13(nil, msgs[6].typ, msgs[6].body))
	if len(sFin.verifyData) != suite.hash.Size() ||
		!verifyFinished13(suite.hash, labelPrefixDTLS13, c.keylog["SERVER_HANDSHAKE_TRAFFIC_SECRET"], sum(), sFin.verifyData) {
		t.Error("server Finished does not verify")
	}
	th.Write(appendTranscriptMessage13(nil, msgs[7].typ, msgs[7].body))
	if !verifyFinished13(suite.hash, labelPrefixDTLS13, c.keylog["CLIENT_HANDSHAKE_TRAFFIC_SECRET"], sum(), cFin.verifyData) {
		t.Error("client Finished does not verify")
	}

	checkRecords13(t, d)
}

func slicesContains(list []uint16, v uint16) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// captureFiles13 are the captures in testdata/dtls13, also fuzz seeds.
var captureFiles13 = []string{"wolfssl-x25519mlkem768-aes256gcm.txt", "wolfssl-p256-chacha20.txt",
	"wolfssl-p256-aes128ccm.txt", "wolfssl-p256-aes128ccm8.txt", "wolfssl-psk-aes128gcm.txt",
	"wolfssl-cid-aes256gcm.txt"}

// checkRecords13 checks the non-handshake records of a capture: ACKs name
// only records the other side sent, the application data went both ways,
// and a close_notify ended it.
func checkRecords13(t *testing.T, d *decoded13) {
	t.Helper()
	for dir := range 2 {
		if len(d.acks[dir]) == 0 {
			t.Errorf("direction %d sent no ACK", dir)
		}
		for _, rn := range d.acks[dir] {
			if !d.sent[1-dir][rn] {
				t.Errorf("direction %d ACKs %+v, never sent", dir, rn)
			}
		}
	}
	if !bytes.Contains(d.appData[1], []byte("hello wolfssl!")) || !bytes.Contains(d.appData[0], []byte("I hear you fa shizzle!")) {
		t.Errorf("application data: client %q, server %q", d.appData[1], d.appData[0])
	}
	if !bytes.Equal(d.alerts[1], []byte{1, 0}) && !bytes.Equal(d.alerts[0], []byte{1, 0}) {
		t.Errorf("no close_notify: %x %x", d.alerts[0], d.alerts[1])
	}
}

// TestDTLS13WolfSSLPSKKeySchedule runs the whole key schedule against
// wolfSSL: in an external-PSK handshake without (EC)DHE (psk_ke) every
// secret follows from the PSK and the transcript, so the binders wolfSSL's
// client sent, and the traffic secrets in its key log, must be exactly
// what keySchedule13 derives with the "dtls13" labels. It covers the Early
// Secret, "ext binder", "derived", the Handshake and Master Secrets, the
// four traffic secrets, and the binder over a truncated ClientHello, in
// both ClientHellos (the second after a HelloRetryRequest, over
// message_hash).
func TestDTLS13WolfSSLPSKKeySchedule(t *testing.T) {
	c := loadCapture13(t, "wolfssl-psk-aes128gcm.txt")
	d := decodeCapture13(t, c, 0)
	checkRecords13(t, d)
	msgs, suite := d.msgs, d.suite
	want := []handshakeType{typeClientHello, typeServerHello, typeClientHello, typeServerHello,
		typeEncryptedExtensions, typeFinished, typeFinished, typeNewSessionTicket}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(msgs), len(want))
	}
	for i, typ := range want {
		if msgs[i].typ != typ {
			t.Fatalf("message %d is %v, want %v", i, msgs[i].typ, typ)
		}
	}
	var ch1, ch2 clientHelloMsg13
	var hrr, sh serverHelloMsg13
	if !ch1.unmarshal(msgs[0].body) || !hrr.unmarshal(msgs[1].body) || !ch2.unmarshal(msgs[2].body) || !sh.unmarshal(msgs[3].body) {
		t.Fatal("hellos do not parse")
	}
	if suite.id != suiteTLSAES128GCMSHA256 || !hrr.isHelloRetryRequest() || !sh.hasSelectedIdentity ||
		sh.selectedIdentity != 0 || sh.serverShare.group != 0 || len(ch2.pskIdentities) != 1 ||
		!containsUint8(ch2.pskModes, pskModePlain) {
		t.Fatalf("not a psk_ke handshake: suite %#x, identity %v/%d, share %v", suite.id, sh.hasSelectedIdentity, sh.selectedIdentity, sh.serverShare.group)
	}
	h := suite.hash
	psk := bytes.Repeat([]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}, 4)
	early, err := newEarlySecret13(h, psk)
	if err != nil {
		t.Fatal(err)
	}
	binderKey, err := early.binderKey(true)
	if err != nil {
		t.Fatal(err)
	}
	// The binder's transcript: the ClientHello up to its binders, with
	// the message length of the whole ClientHello (RFC 8446 §4.2.11.2).
	truncated := func(ch *clientHelloMsg13, body []byte) []byte {
		tr, err := ch.truncatedForBinders(body)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{byte(typeClientHello), byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, tr...)
	}
	th := h.New()
	th.Write(truncated(&ch1, msgs[0].body))
	if !verifyFinished13(h, labelPrefixDTLS13, binderKey, th.Sum(nil), ch1.pskBinders[0]) {
		t.Error("first ClientHello's binder does not verify")
	}
	th.Reset()
	th.Write(messageHash13(h, msgs[0].body))
	th.Write(appendTranscriptMessage13(nil, msgs[1].typ, msgs[1].body))
	th.Write(truncated(&ch2, msgs[2].body))
	if !verifyFinished13(h, labelPrefixDTLS13, binderKey, th.Sum(nil), ch2.pskBinders[0]) {
		t.Error("second ClientHello's binder does not verify")
	}

	// The traffic secrets. psk_ke: no (EC)DHE input to the Handshake Secret.
	hs, err := early.handshakeSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	th.Reset()
	th.Write(messageHash13(h, msgs[0].body))
	for _, m := range msgs[1:4] {
		th.Write(appendTranscriptMessage13(nil, m.typ, m.body))
	}
	check := func(label string) func([]byte, error) {
		return func(got []byte, err error) {
			t.Helper()
			if err != nil || !bytes.Equal(got, c.keylog[label]) {
				t.Errorf("%s = %x (%v), wolfSSL's key log says %x", label, got, err, c.keylog[label])
			}
		}
	}
	check("CLIENT_HANDSHAKE_TRAFFIC_SECRET")(hs.clientHandshakeTrafficSecret(th.Sum(nil)))
	check("SERVER_HANDSHAKE_TRAFFIC_SECRET")(hs.serverHandshakeTrafficSecret(th.Sum(nil)))
	ms, err := hs.masterSecret()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs[4:6] { // EncryptedExtensions, server Finished
		th.Write(appendTranscriptMessage13(nil, m.typ, m.body))
	}
	check("CLIENT_TRAFFIC_SECRET_0")(ms.clientApplicationTrafficSecret(th.Sum(nil)))
	check("SERVER_TRAFFIC_SECRET_0")(ms.serverApplicationTrafficSecret(th.Sum(nil)))
}

func containsUint8(list []uint8, v uint8) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
