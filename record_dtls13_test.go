package dtls

import (
	"bytes"
	"crypto"
	"fmt"
	"testing"
)

func TestClassifyRecord(t *testing.T) {
	for b := range 256 {
		got := classifyRecord(byte(b))
		var want recordClass
		switch {
		case b >= 0x20 && b <= 0x3f:
			want = classCiphertext13
		case b == 25:
			want = classCID12
		case b == 20 || b == 21 || b == 22 || b == 23 || b == 26 || b == 27:
			want = classPlaintext
		default:
			want = classInvalid
		}
		if got != want {
			t.Errorf("first byte %d: class %d, want %d", b, got, want)
		}
	}
}

func TestUnifiedHeaderRoundTrip(t *testing.T) {
	body := bytes.Repeat([]byte{0xab}, 20)
	for _, cid := range [][]byte{nil, {1, 2, 3, 4}} {
		for _, seq16 := range []bool{false, true} {
			for _, withLength := range []bool{false, true} {
				for _, epoch := range []uint64{0, 2, 3, 7, 1 << 40} {
					name := fmt.Sprintf("cid%d/seq16=%v/len=%v/epoch%d", len(cid), seq16, withLength, epoch)
					const seq = 0x123456
					rec := appendUnifiedHeader(nil, cid, epoch, seq, seq16, withLength, len(body))
					hdrLen := len(rec)
					rec = append(rec, body...)
					trailer := []byte{0x16, 0xfe, 0xfd}
					datagram := rec
					if withLength {
						datagram = append(bytes.Clone(rec), trailer...)
					}
					h, hdr, gotBody, rest, reason := parseUnifiedHeader(datagram, len(cid))
					if reason != dropNone {
						t.Fatalf("%s: dropped: %v", name, reason)
					}
					if h.headerLen != hdrLen || !bytes.Equal(hdr, rec[:hdrLen]) || !bytes.Equal(gotBody, body) {
						t.Fatalf("%s: header %d bytes %x body %x", name, h.headerLen, hdr, gotBody)
					}
					if withLength && !bytes.Equal(rest, trailer) || !withLength && len(rest) != 0 {
						t.Fatalf("%s: rest %x", name, rest)
					}
					if !bytes.Equal(h.cid, cid) || h.epochBits != uint8(epoch&3) || h.hasLength != withLength {
						t.Fatalf("%s: parsed %+v", name, h)
					}
					wantSeq := uint16(seq & 0xff)
					if seq16 {
						wantSeq = seq & 0xffff
					}
					if h.seqBits != wantSeq {
						t.Fatalf("%s: seq bits %x, want %x", name, h.seqBits, wantSeq)
					}
				}
			}
		}
	}
}

func TestUnifiedHeaderRejects(t *testing.T) {
	body := make([]byte, 16)
	good := append(appendUnifiedHeader(nil, nil, 2, 1, true, true, 16), body...)
	withCID := append(appendUnifiedHeader(nil, []byte{9, 9}, 2, 1, true, true, 16), body...)
	for _, tc := range []struct {
		name   string
		b      []byte
		cidLen int
		want   dropReason
	}{
		{"empty", nil, 0, dropBadHeader},
		{"plaintext first byte", append([]byte{22}, good[1:]...), 0, dropBadHeader},
		{"0x40", append([]byte{0x40}, good[1:]...), 0, dropBadHeader},
		{"CID bit without a negotiated CID", withCID, 0, dropBadCID},
		{"no CID where one is due", good, 2, dropBadCID},
		{"truncated CID", withCID[:2], 2, dropBadHeader},
		{"truncated sequence", good[:2], 0, dropBadHeader},
		{"truncated length", good[:4], 0, dropBadHeader},
		{"length past the datagram", good[:len(good)-1], 0, dropBadHeader},
		{"ciphertext shorter than the RNE sample", append(appendUnifiedHeader(nil, nil, 2, 1, true, true, 15), body[:15]...), 0, dropBadLength},
		{"no length, short", append(appendUnifiedHeader(nil, nil, 2, 1, true, false, 0), body[:15]...), 0, dropBadLength},
		{"no length, too long", append(appendUnifiedHeader(nil, nil, 2, 1, true, false, 0), make([]byte, maxCiphertext13+1)...), 0, dropBadLength},
	} {
		if _, _, _, _, reason := parseUnifiedHeader(tc.b, tc.cidLen); reason != tc.want {
			t.Errorf("%s: reason %v, want %v", tc.name, reason, tc.want)
		}
	}
}

func TestReconstruct(t *testing.T) {
	for _, tc := range []struct {
		expected, low uint64
		bits          uint
		max, want     uint64
	}{
		// RFC 9000 Appendix A.3's example: expected 0xa82f30eb, 16 bits 0x9b32.
		{0xa82f30eb, 0x9b32, 16, 1<<62 - 1, 0xa82f9b32},
		{0, 0, 16, maxSequence13, 0},
		{0, 0xffff, 16, maxSequence13, 0xffff}, // nothing below 0
		{1, 0xff, 8, maxSequence13, 0xff},
		{0x100, 0xff, 8, maxSequence13, 0xff},  // just behind
		{0x180, 0x00, 8, maxSequence13, 0x200}, // tie at half a window goes forward
		{0x17f, 0x00, 8, maxSequence13, 0x100},
		{0x1fe, 0x01, 8, maxSequence13, 0x201},
		{0x10000, 0xfffe, 16, maxSequence13, 0xfffe},
		{maxSequence13, 0x00, 8, maxSequence13, maxSequence13 - 0xff}, // never above max
		{maxSequence13 - 1, 0xff, 8, maxSequence13, maxSequence13},
		// Epochs: 2 bits.
		{2, 2, 2, maxEpoch13, 2},
		{2, 3, 2, maxEpoch13, 3},
		{3, 0, 2, maxEpoch13, 4},
		{4, 3, 2, maxEpoch13, 3},
		{5, 2, 2, maxEpoch13, 6},
		{1, 3, 2, maxEpoch13, 3},
		{0, 3, 2, maxEpoch13, 3},
		{maxEpoch13, 0, 2, maxEpoch13, maxEpoch13 - 3},
	} {
		if got := reconstruct(tc.expected, tc.low, tc.bits, tc.max); got != tc.want {
			t.Errorf("reconstruct(%#x, %#x, %d) = %#x, want %#x", tc.expected, tc.low, tc.bits, got, tc.want)
		}
	}
	// Exhaustively near the bottom: the result is the value with the
	// given low bits closest to expected, ties going to the larger one
	// (RFC 9000 A.3's comparisons), and never below 0.
	for exp := uint64(0); exp < 700; exp++ {
		for low := uint64(0); low < 256; low++ {
			base := exp&^0xff | low
			best := base
			dist := func(a uint64) uint64 {
				if a > exp {
					return a - exp
				}
				return exp - a
			}
			for _, c := range []uint64{base - 256, base + 256} {
				if c > 1<<40 { // base-256 wrapped below 0
					continue
				}
				if dist(c) < dist(best) || dist(c) == dist(best) && c > best {
					best = c
				}
			}
			if got := reconstruct(exp, low, 8, maxSequence13); got != best {
				t.Fatalf("reconstruct(%d, %d) = %d, want %d", exp, low, got, best)
			}
		}
	}
}

// TestRecordNumberMaskKAT checks the mask against RFC 9001 Appendix A: RFC
// 9147 §4.2.3 defines record number encryption exactly as QUIC's header
// protection (AES-ECB of the sample; ChaCha20 with the sample's first four
// bytes as counter and the rest as nonce).
func TestRecordNumberMaskKAT(t *testing.T) {
	for _, tc := range []struct {
		name         string
		kind         rneKind
		key, sample  string
		wantMaskHead string
	}{
		// RFC 9001 A.2 (client Initial hp key) and A.5 (ChaCha20 short header).
		{"AES", rneAES, "9f50449e04a0e810283a1e9933adedd2", "d1b1c98dd7689fb8ec11d242b123dc9b", "437b9aec36"},
		{"ChaCha20", rneChaCha20, "25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4", "5e5cd55c41f69080575d7999c25a5bfb", "aefefe7d03"},
	} {
		m, err := newRecordNumberMasker(tc.kind, unhex(t, tc.key))
		if err != nil {
			t.Fatal(err)
		}
		var out [rneSampleLen]byte
		m.mask(&out, unhex(t, tc.sample))
		if want := unhex(t, tc.wantMaskHead); !bytes.Equal(out[:len(want)], want) {
			t.Errorf("%s: mask %x, want %x...", tc.name, out, want)
		}
	}
	if _, err := newRecordNumberMasker(rneChaCha20, make([]byte, 16)); err == nil {
		t.Error("16-byte ChaCha20 sn_key accepted")
	}
}

// TestNonceKAT checks the per-record nonce and AEAD against RFC 9001
// Appendix A.5, whose construction (iv XOR the left-padded 64-bit packet
// number) is RFC 9147 §4's for the record sequence number.
func TestNonceKAT(t *testing.T) {
	suite := cipherSuite13ByID(suiteTLSChaCha20Poly1305SHA256)
	k, err := newEpochKeys13FromKeys(suite, 3, trafficKeys13{
		key:   unhex(t, "c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8"),
		iv:    unhex(t, "e0459b3474bdd0e44a41c144"),
		snKey: unhex(t, "25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4"),
	})
	if err != nil {
		t.Fatal(err)
	}
	const seq = 654360564
	if got, want := k.nonce(seq), unhex(t, "e0459b3474bdd0e46d417eb0"); !bytes.Equal(got, want) {
		t.Fatalf("nonce %x, want %x", got, want)
	}
	ct := k.aead.Seal(nil, k.nonce(seq), []byte{0x01}, unhex(t, "4200bff4"))
	if want := unhex(t, "655e5cd55c41f69080575d7999c25a5bfb"); !bytes.Equal(ct, want) {
		t.Fatalf("ciphertext %x, want %x", ct, want)
	}
}

// testEpochKeys13 derives a pair of identical keys (sender and receiver)
// for suite from a fixed secret.
func testEpochKeys13(t testing.TB, suite *cipherSuite13, epoch uint64) (send, recv *epochKeys13) {
	t.Helper()
	secret := bytes.Repeat([]byte{0x5a ^ byte(epoch)}, suite.hash.Size())
	var err error
	if send, err = newEpochKeys13(suite, epoch, secret); err != nil {
		t.Fatal(err)
	}
	if recv, err = newEpochKeys13(suite, epoch, secret); err != nil {
		t.Fatal(err)
	}
	return send, recv
}

// openDatagram13 runs the receive path on one record: parse, unmask the
// sequence number, reconstruct it from expected, open.
func openDatagram13(k *epochKeys13, datagram []byte, cidLen int, expected uint64) (recordType, []byte, uint64, []byte, dropReason) {
	h, hdr, body, rest, reason := parseUnifiedHeader(datagram, cidLen)
	if reason != dropNone {
		return 0, nil, 0, nil, reason
	}
	if reconstructEpoch(k.epoch, h.epochBits) != k.epoch {
		return 0, nil, 0, nil, dropUnknownEpoch
	}
	k.unmaskSeq(&h, hdr, body)
	seq := reconstructSeq(expected, h.seqBits, h.seqLen)
	typ, content, _, reason := k.openRecord13(hdr, body, seq)
	return typ, content, seq, rest, reason
}

func TestRecord13RoundTrip(t *testing.T) {
	for _, suite := range cipherSuites13 {
		t.Run(suite.name, func(t *testing.T) {
			for _, tc := range []struct {
				cid        []byte
				seq        uint64
				seq16      bool
				withLength bool
				content    []byte
				padding    int
			}{
				{nil, 0, true, true, []byte("hello"), 0},
				{nil, 1, false, false, nil, 0}, // empty content: padded to the RNE sample
				{[]byte{1, 2, 3, 4, 5, 6, 7, 8}, 300, true, false, []byte("with a CID"), 17},
				{nil, 0x1_0000_0005, true, true, bytes.Repeat([]byte{7}, 1000), 0},
				{nil, 7, true, true, make([]byte, maxPlaintext), 0},
				{nil, 8, true, true, []byte{0, 0, 0}, 100}, // content ending in zeros
			} {
				send, recv := testEpochKeys13(t, suite, 3)
				rec, err := send.sealRecord13(nil, tc.cid, tc.seq, recordTypeApplicationData, tc.content, tc.padding, tc.seq16, tc.withLength)
				if err != nil {
					t.Fatal(err)
				}
				if rec[0]&uhFixedMask != uhFixedBits || rec[0]&uhEpochMask != 3 {
					t.Fatalf("first byte %#x", rec[0])
				}
				datagram := append(bytes.Clone(rec), []byte{0x3f, 1, 2}...)
				if !tc.withLength {
					datagram = bytes.Clone(rec)
				}
				expected := tc.seq - min(tc.seq, 20) // receiver a little behind
				typ, content, seq, rest, reason := openDatagram13(recv, datagram, len(tc.cid), expected)
				if reason != dropNone {
					t.Fatalf("seq %d: dropped: %v", tc.seq, reason)
				}
				if typ != recordTypeApplicationData || !bytes.Equal(content, tc.content) || seq != tc.seq {
					t.Fatalf("seq %d: got type %v seq %d content %d bytes", tc.seq, typ, seq, len(content))
				}
				if tc.withLength && !bytes.Equal(rest, []byte{0x3f, 1, 2}) {
					t.Fatalf("rest %x", rest)
				}
			}
		})
	}
}

// TestRecord13SequenceEncrypted checks that the wire sequence number is
// the clear one XORed with the mask of the ciphertext.
func TestRecord13SequenceEncrypted(t *testing.T) {
	send, _ := testEpochKeys13(t, cipherSuites13[0], 2)
	rec, err := send.sealRecord13(nil, nil, 0xbeef, recordTypeHandshake, []byte("x"), 0, true, true)
	if err != nil {
		t.Fatal(err)
	}
	var mask [rneSampleLen]byte
	send.rne.mask(&mask, rec[5:])
	if got := [2]byte{rec[1] ^ mask[0], rec[2] ^ mask[1]}; got != [2]byte{0xbe, 0xef} {
		t.Fatalf("unmasked sequence %x", got)
	}
}

func TestRecord13Tamper(t *testing.T) {
	for _, suite := range cipherSuites13 {
		send, _ := testEpochKeys13(t, suite, 2)
		rec, err := send.sealRecord13(nil, nil, 42, recordTypeHandshake, []byte("finished"), 0, true, true)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rec {
			_, recv := testEpochKeys13(t, suite, 2)
			bad := bytes.Clone(rec)
			bad[i] ^= 0x01
			typ, _, seq, _, reason := openDatagram13(recv, bad, 0, 40)
			if reason == dropNone {
				// A flipped bit in the masked sequence number changes the
				// nonce and the additional data; a flipped epoch bit picks
				// another epoch. Nothing may authenticate.
				t.Fatalf("%s: byte %d flipped: accepted as type %v seq %d", suite.name, i, typ, seq)
			}
			if reason == dropBadMAC && recv.usage.failed != 1 {
				t.Fatalf("%s: failures counted %d", suite.name, recv.usage.failed)
			}
		}
	}
}

func TestRecord13WrongEpochKeys(t *testing.T) {
	suite := cipherSuites13[0]
	send, _ := testEpochKeys13(t, suite, 3)
	rec, err := send.sealRecord13(nil, nil, 1, recordTypeApplicationData, []byte("data"), 0, true, true)
	if err != nil {
		t.Fatal(err)
	}
	other, err := newEpochKeys13(suite, 3, bytes.Repeat([]byte{0x11}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, reason := openDatagram13(other, rec, 0, 0); reason != dropBadMAC {
		t.Fatalf("record under other keys: %v", reason)
	}
}

func TestRecord13AllZeroInner(t *testing.T) {
	// A DTLSInnerPlaintext of zeros only has no content type (RFC 8446
	// §5.4): sealed by hand, it must be dropped.
	send, recv := testEpochKeys13(t, cipherSuites13[0], 3)
	hdr := appendUnifiedHeader(nil, nil, 3, 5, true, true, 20+16)
	ct := send.aead.Seal(nil, send.nonce(5), make([]byte, 20), hdr)
	var mask [rneSampleLen]byte
	send.rne.mask(&mask, ct)
	rec := append(bytes.Clone(hdr), ct...)
	rec[1] ^= mask[0]
	rec[2] ^= mask[1]
	if _, _, _, _, reason := openDatagram13(recv, rec, 0, 5); reason != dropBadContentType {
		t.Fatalf("all-zero inner plaintext: %v", reason)
	}
}

func TestRecord13Limits(t *testing.T) {
	send, _ := testEpochKeys13(t, cipherSuites13[0], 3)
	if _, err := send.sealRecord13(nil, nil, 1, recordTypeApplicationData, make([]byte, maxInnerPlaintext13), 0, true, true); err == nil {
		t.Error("content of 2^14+1 bytes sealed")
	}
	if _, err := send.sealRecord13(nil, nil, 1, recordTypeApplicationData, nil, maxInnerPlaintext13, true, true); err == nil {
		t.Error("padding past 2^14+1 sealed")
	}
	if _, err := send.sealRecord13(nil, nil, 1, 0, []byte("x"), 0, true, true); err == nil {
		t.Error("content type 0 sealed")
	}
	// Confidentiality limit: pretend the key has sealed nearly all it may.
	send.usage.sealed = send.usage.confidentialityLimit - 1
	if send.usage.sealState() != usageKeyUpdate {
		t.Errorf("state near the limit: %v", send.usage.sealState())
	}
	if _, err := send.sealRecord13(nil, nil, 2, recordTypeApplicationData, []byte("last"), 0, true, true); err != nil {
		t.Fatalf("last record refused: %v", err)
	}
	if _, err := send.sealRecord13(nil, nil, 3, recordTypeApplicationData, []byte("over"), 0, true, true); err != errLimitReached {
		t.Fatalf("record past the limit: %v", err)
	}
}

func TestAEADLimitStates(t *testing.T) {
	for _, suite := range cipherSuites13 {
		u := aeadUsage13{confidentialityLimit: suite.confidentialityLimit, integrityLimit: suite.integrityLimit}
		if u.sealState() != usageOK {
			t.Errorf("%s: fresh key state %v", suite.name, u.sealState())
		}
		u.failed = suite.integrityLimit/aeadKeyUpdateDen*aeadKeyUpdateNum - 2
		if s := u.noteFailed(); s != usageOK {
			t.Errorf("%s: below the update point: %v", suite.name, s)
		}
		if s := u.noteFailed(); s != usageKeyUpdate {
			t.Errorf("%s: at the update point: %v", suite.name, s)
		}
		u.failed = suite.integrityLimit - 1
		if s := u.noteFailed(); s != usageExhausted {
			t.Errorf("%s: at the integrity limit: %v", suite.name, s)
		}
	}
	if s := cipherSuite13ByID(suiteTLSAES128CCM8SHA256); s.integrityLimit != 128 || !s.ccm8 {
		t.Errorf("CCM_8 limits %+v", s)
	}
}

func TestCipherSuites13(t *testing.T) {
	want := map[uint16]struct {
		name   string
		keyLen int
		hash   crypto.Hash
		tag    int
	}{
		0x1301: {"TLS_AES_128_GCM_SHA256", 16, crypto.SHA256, 16},
		0x1302: {"TLS_AES_256_GCM_SHA384", 32, crypto.SHA384, 16},
		0x1303: {"TLS_CHACHA20_POLY1305_SHA256", 32, crypto.SHA256, 16},
		0x1304: {"TLS_AES_128_CCM_SHA256", 16, crypto.SHA256, 16},
		0x1305: {"TLS_AES_128_CCM_8_SHA256", 16, crypto.SHA256, 8},
	}
	if len(cipherSuites13) != len(want) {
		t.Fatalf("%d suites", len(cipherSuites13))
	}
	for id, w := range want {
		s := cipherSuite13ByID(id)
		if s == nil || s.name != w.name || s.keyLen != w.keyLen || s.hash != w.hash {
			t.Fatalf("suite %#x: %+v", id, s)
		}
		send, _ := testEpochKeys13(t, s, 2)
		if send.aead.Overhead() != w.tag || send.aead.NonceSize() != aeadNonceLen13 {
			t.Errorf("%s: tag %d nonce %d", s.name, send.aead.Overhead(), send.aead.NonceSize())
		}
	}
	if cipherSuite13ByID(0x1306) != nil || cipherSuite13ByID(0xc02b) != nil {
		t.Error("unknown id found")
	}
}

func TestSealRecord13Allocs(t *testing.T) {
	for _, suite := range cipherSuites13 {
		send, recv := testEpochKeys13(t, suite, 3)
		buf := make([]byte, 0, 2048)
		content := make([]byte, 1000)
		r := newReadTable13(0, defaultReplayWindow)
		r.installReadEpoch13(recv)
		var seq uint64
		allocs := testing.AllocsPerRun(100, func() {
			rec, err := send.sealRecord13(buf[:0], nil, seq, recordTypeApplicationData, content, 0, true, true)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, _, _, _, reason := openTable13(r, rec); reason != dropNone {
				t.Fatal(reason)
			}
			seq++
		})
		if allocs != 0 {
			t.Errorf("%s: seal+open: %.1f allocations per record", suite.name, allocs)
		}
	}
}

// BenchmarkRecord13 seals and opens 1000-byte records through
// sealRecord13 and the record layer's open13, per suite.
func BenchmarkRecord13(b *testing.B) {
	for _, suite := range cipherSuites13 {
		b.Run(suite.name, func(b *testing.B) {
			send, recv := testEpochKeys13(b, suite, 3)
			r := newReadTable13(0, defaultReplayWindow)
			r.installReadEpoch13(recv)
			buf := make([]byte, 0, 2048)
			content := make([]byte, 1000)
			b.SetBytes(int64(len(content)))
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				rec, err := send.sealRecord13(buf[:0], nil, seq, recordTypeApplicationData, content, 0, true, true)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, _, _, _, reason := openTable13(r, rec); reason != dropNone {
					b.Fatal(reason)
				}
				seq++
			}
		})
	}
}

// FuzzUnifiedHeader parses arbitrary datagrams as DTLS 1.3 records: no
// panic, the parts stay inside the datagram, and what parses re-encodes to
// the same header bytes.
func FuzzUnifiedHeader(f *testing.F) {
	body := make([]byte, 16)
	f.Add(append(appendUnifiedHeader(nil, nil, 2, 1, true, true, 16), body...), uint8(0))
	f.Add(append(appendUnifiedHeader(nil, []byte{1, 2, 3}, 3, 1, false, false, 0), body...), uint8(3))
	f.Add([]byte{0x2f, 0, 0, 0, 0}, uint8(0))
	f.Add([]byte{0x3c, 0xff}, uint8(8))
	// wolfSSL's encrypted records, as sent.
	for _, name := range captureFiles13 {
		for _, d := range loadCapture13(f, name).datagrams {
			if classifyRecord(d.b[0]) == classCiphertext13 {
				cidLen := uint8(0)
				if d.b[0]&uhCIDBit != 0 {
					cidLen = 4 // the CID capture's "dtls"
				}
				f.Add(d.b, cidLen)
			}
		}
	}
	f.Fuzz(func(t *testing.T, datagram []byte, cidLen uint8) {
		n := int(cidLen) % 17
		for len(datagram) > 0 {
			h, hdr, body, rest, reason := parseUnifiedHeader(datagram, n)
			if reason != dropNone {
				return
			}
			if len(hdr)+len(body)+len(rest) != len(datagram) || len(hdr) != h.headerLen {
				t.Fatalf("parts %d+%d+%d of %d", len(hdr), len(body), len(rest), len(datagram))
			}
			if len(body) < rneSampleLen || len(body) > maxCiphertext13 || len(h.cid) != n {
				t.Fatalf("body %d cid %d", len(body), len(h.cid))
			}
			re := appendUnifiedHeader(nil, h.cid, uint64(h.epochBits), uint64(h.seqBits), h.seqLen == 2, h.hasLength, len(body))
			if !bytes.Equal(re, hdr) {
				t.Fatalf("re-encoded %x, parsed %x", re, hdr)
			}
			if !h.hasLength && len(rest) != 0 {
				t.Fatal("record without length left bytes behind")
			}
			datagram = rest
		}
	})
}

// FuzzOpenRecord13 feeds arbitrary datagrams to the whole receive path of
// one epoch: nothing forged authenticates, nothing panics, and a record
// sealed from the fuzzer's content opens to it.
func FuzzOpenRecord13(f *testing.F) {
	send, _ := testEpochKeys13(f, cipherSuites13[0], 3)
	rec, err := send.sealRecord13(nil, nil, 9, recordTypeHandshake, []byte("seed"), 0, true, true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rec, []byte("content"), uint64(9))
	f.Add([]byte{0x2b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, datagram, content []byte, seq uint64) {
		_, recv := testEpochKeys13(t, cipherSuites13[0], 3)
		// A datagram may hold more records after the first: only the
		// record that opened must be the genuine one.
		if _, _, _, rest, reason := openDatagram13(recv, bytes.Clone(datagram), 0, seq); reason == dropNone && !bytes.Equal(datagram[:len(datagram)-len(rest)], rec) {
			t.Fatalf("forged record accepted: %x", datagram)
		}
		if len(content) > maxPlaintext {
			return
		}
		seq &= 1<<48 - 1
		s, r := testEpochKeys13(t, cipherSuites13[2], 3)
		out, err := s.sealRecord13(nil, nil, seq, recordTypeApplicationData, content, len(content)%7, true, true)
		if err != nil {
			t.Fatal(err)
		}
		typ, got, gotSeq, _, reason := openDatagram13(r, out, 0, seq)
		if reason != dropNone || typ != recordTypeApplicationData || !bytes.Equal(got, content) || gotSeq != seq {
			t.Fatalf("round trip: %v %v seq %d", reason, typ, gotSeq)
		}
	})
}

func TestReadEpochs13(t *testing.T) {
	suite := cipherSuites13[0]
	send2, recv2 := testEpochKeys13(t, suite, 2)
	secret3 := bytes.Repeat([]byte{0x33}, 32)
	send3, _ := newEpochKeys13(suite, 3, secret3)
	recv3, _ := newEpochKeys13(suite, 3, secret3)
	r := newReadTable13(0, 64)
	r.installReadEpoch13(recv2)
	r.installReadEpoch13(recv3)
	seal := func(k *epochKeys13, seq uint64, msg string) []byte {
		t.Helper()
		rec, err := k.sealRecord13(nil, nil, seq, recordTypeApplicationData, []byte(msg), 0, true, true)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	open := func(rec []byte) (recordNumber, string, dropReason) {
		rn, _, content, _, _, reason := openTable13(r, bytes.Clone(rec))
		return rn, string(content), reason
	}
	// In order, out of order, both epochs interleaved.
	for _, tc := range []struct {
		k   *epochKeys13
		seq uint64
	}{{send2, 0}, {send3, 0}, {send3, 2}, {send2, 1}, {send3, 1}, {send3, 300}, {send3, 299}, {send3, 30000}} {
		msg := fmt.Sprintf("e%d s%d", tc.k.epoch, tc.seq)
		rn, got, reason := open(seal(tc.k, tc.seq, msg))
		if reason != dropNone || got != msg || rn != (recordNumber{tc.k.epoch, tc.seq}) {
			t.Fatalf("%s: %v %q %+v", msg, reason, got, rn)
		}
	}
	// Replays and records left of the window.
	if _, _, reason := open(seal(send3, 30000, "again")); reason != dropReplayed {
		t.Errorf("replay: %v", reason)
	}
	if _, _, reason := open(seal(send3, 30000-100, "old")); reason != dropTooOld {
		t.Errorf("left of the window: %v", reason)
	}
	// A forged record does not move the window or the expected number.
	forged := seal(send3, 30010, "forged")
	forged[len(forged)-1] ^= 1
	if _, _, reason := open(forged); reason != dropBadMAC {
		t.Errorf("forged: %v", reason)
	}
	if _, got, reason := open(seal(send3, 30001, "next")); reason != dropNone || got != "next" {
		t.Errorf("after a forgery: %v", reason)
	}
	// Epochs without keys: 0 (plaintext never has a unified header), 1.
	send1, _ := testEpochKeys13(t, suite, 1)
	if _, _, reason := open(seal(send1, 0, "early")); reason != dropUnknownEpoch {
		t.Errorf("epoch 1 without keys: %v", reason)
	}
	// Epoch 6 takes epoch 2's slot; epoch 2's records no longer open.
	send6, recv6 := testEpochKeys13(t, suite, 6)
	if err := r.installReadEpoch13(recv6); err != nil {
		t.Fatal(err)
	}
	has := func(e uint64) bool { rs := r.readState(e); return rs != nil && rs.keys13 != nil }
	if has(2) || !has(6) || !has(3) {
		t.Fatal("slots after installing epoch 6")
	}
	if _, _, reason := open(seal(send2, 5, "stale")); reason != dropBadMAC {
		t.Errorf("epoch 2 record after epoch 6: %v", reason)
	}
	if rn, _, reason := open(seal(send6, 0, "six")); reason != dropNone || rn.epoch != 6 {
		t.Errorf("epoch 6: %v %+v", reason, rn)
	}
	if err := r.installReadEpoch13(recv2); err == nil {
		t.Error("epoch 2 reinstalled over epoch 6")
	}
	r.discardReadEpoch(3)
	if has(3) {
		t.Error("discard")
	}
	if _, _, reason := open(seal(send3, 30002, "gone")); reason != dropUnknownEpoch {
		t.Errorf("discarded epoch: %v", reason)
	}
}

// newReadTable13 is a record layer that reads DTLS 1.3 records with a CID
// of cidLen bytes (the epochs are installed by the caller).
func newReadTable13(cidLen, window int) *recordLayer {
	rl := newRecordLayer(window)
	if cidLen > 0 {
		rl.setConnectionIDs(make([]byte, cidLen), nil)
	}
	return rl
}

// openTable13 is open13 with the record number split out.
func openTable13(rl *recordLayer, datagram []byte) (rn recordNumber, typ recordType, content, rest []byte, state usage13, reason dropReason) {
	hdr, content, rest, state, reason := rl.open13(datagram)
	return recordNumber{hdr.epoch, hdr.seq}, hdr.typ, content, rest, state, reason
}
