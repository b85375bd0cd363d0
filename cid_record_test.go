package dtls

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"testing"
)

// testCIDRecordPair is testRecordPair with the CID cid negotiated for
// records from w to r.
func testCIDRecordPair(t testing.TB, kind aeadKind, cid []byte) (w, r *recordLayer) {
	w, r = testRecordPair(t, kind, 64)
	w.writeCID = cid
	r.readCID = cid
	return w, r
}

// TestCIDAdditionalDataKnownAnswer checks RFC 9146 §5's additional data,
// written out by hand from the RFC's layout (not its drafts').
func TestCIDAdditionalDataKnownAnswer(t *testing.T) {
	cid := []byte{0xde, 0xad, 0xbe, 0xef}
	var buf [cidADFixedLen + maxCIDLen]byte
	got := additionalDataCID(buf[:], 1<<48|5, VersionDTLS12, cid, 11)
	want, _ := hex.DecodeString("" +
		"ffffffffffffffff" + // seq_num_placeholder
		"19" + // tls12_cid
		"04" + // cid_length
		"19" + // tls12_cid
		"fefd" + // DTLSCiphertext.version
		"0001" + // epoch
		"000000000005" + // sequence_number
		"deadbeef" + // cid
		"000b") // length_of_DTLSInnerPlaintext
	if !bytes.Equal(got, want) {
		t.Fatalf("additional data\n got %x\nwant %x", got, want)
	}
}

// TestCIDRecordKnownAnswer seals a tls12_cid record and compares it with
// one built directly on crypto/cipher from the RFC 9146 §4 and §5 layouts.
func TestCIDRecordKnownAnswer(t *testing.T) {
	cid := []byte{0xde, 0xad, 0xbe, 0xef}
	w, r := testCIDRecordPair(t, aeadAES128GCM, cid)
	got, err := w.seal(nil, 1, recordTypeApplicationData, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}

	block, _ := aes.NewCipher(bytes.Repeat([]byte{0x42}, 16))
	gcm, _ := cipher.NewGCM(block)
	nonce, _ := hex.DecodeString("17171717" + "0001000000000000") // salt ‖ epoch ‖ seq
	ad, _ := hex.DecodeString("ffffffffffffffff" + "19" + "04" + "19" + "fefd" + "0001" + "000000000000" + "deadbeef" + "0006")
	inner := []byte("hello\x17") // content ‖ real type (application_data), no padding
	ct := gcm.Seal(nil, nonce, inner, ad)
	hdr, _ := hex.DecodeString("19" + "fefd" + "0001" + "000000000000" + "deadbeef")
	want := append(hdr, byte((8+len(ct))>>8), byte(8+len(ct)))
	want = append(want, nonce[4:]...)
	want = append(want, ct...)
	if !bytes.Equal(got, want) {
		t.Fatalf("record\n got %x\nwant %x", got, want)
	}
	if w.expansion(1) != 8+16+len(cid)+1 {
		t.Errorf("expansion = %d", w.expansion(1))
	}

	recs, drops := openCIDDatagram(r, got)
	if len(drops) != 0 || len(recs) != 1 || recs[0].hdr.typ != recordTypeApplicationData || string(recs[0].data) != "hello" {
		t.Fatalf("open: %+v %v", recs, drops)
	}
	if !recs[0].hdr.newest || !bytes.Equal(recs[0].hdr.cid, cid) {
		t.Errorf("header: %+v", recs[0].hdr)
	}

	// Padding after the content type is allowed and stripped.
	padded := append(bytes.Clone(inner), 0, 0, 0)
	nonce[11] = 1
	ad[20], ad[len(ad)-1] = 1, byte(len(padded))
	ct = gcm.Seal(nil, nonce, padded, ad)
	rec := append(bytes.Clone(hdr[:10]), 1)
	rec = append(rec, cid...)
	rec = append(rec, byte((8+len(ct))>>8), byte(8+len(ct)))
	rec = append(rec, nonce[4:]...)
	rec = append(rec, ct...)
	recs, drops = openCIDDatagram(r, rec)
	if len(drops) != 0 || len(recs) != 1 || string(recs[0].data) != "hello" {
		t.Fatalf("padded record: %+v %v", recs, drops)
	}
}

func openCIDDatagram(rl *recordLayer, dgram []byte) (recs []record, drops []dropReason) {
	for len(dgram) > 0 {
		hdr, body, rest, reason := nextRecordCID(dgram, len(rl.readCID))
		if reason != dropNone {
			return recs, append(drops, reason)
		}
		dgram = rest
		plain, reason := rl.open(&hdr, body)
		if reason != dropNone {
			drops = append(drops, reason)
			continue
		}
		recs = append(recs, record{hdr: hdr, data: plain})
	}
	return recs, drops
}

func TestCIDRecordRoundTripAllAEADs(t *testing.T) {
	for _, kind := range allAEADs {
		for _, n := range []int{1, 8, maxCIDLen} {
			cid := bytes.Repeat([]byte{0xc1}, n)
			w, r := testCIDRecordPair(t, kind, cid)
			var dgram []byte
			for _, typ := range []recordType{recordTypeApplicationData, recordTypeAlert, recordTypeHandshake} {
				var err error
				if dgram, err = w.seal(dgram, 1, typ, []byte{1, 2}); err != nil {
					t.Fatal(err)
				}
			}
			if dgram, err := w.seal(dgram, 1, recordTypeApplicationData, bytes.Repeat([]byte{9}, maxPlaintext)); err != nil {
				t.Fatal(err)
			} else {
				recs, drops := openCIDDatagram(r, dgram)
				if len(drops) != 0 || len(recs) != 4 {
					t.Fatalf("%s cid %d: %d records, drops %v", aeadName(kind), n, len(recs), drops)
				}
				for i, typ := range []recordType{recordTypeApplicationData, recordTypeAlert, recordTypeHandshake, recordTypeApplicationData} {
					if recs[i].hdr.typ != typ {
						t.Errorf("record %d type %v", i, recs[i].hdr.typ)
					}
				}
				if len(recs[3].data) != maxPlaintext {
					t.Errorf("large record: %d bytes", len(recs[3].data))
				}
			}
		}
	}
}

// TestCIDRecordDrops feeds malformed and misdirected tls12_cid records to
// the opener: each is dropped with a reason, nothing panics, and every
// length comes from our own CID length (mbedTLS CVE-2022-46393).
func TestCIDRecordDrops(t *testing.T) {
	cid := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	k := aeadTable[aeadAES128GCM]
	sealWith := func(fn func(w *recordLayer)) []byte {
		w, _ := testCIDRecordPair(t, aeadAES128GCM, cid)
		if fn != nil {
			fn(w)
		}
		out, err := w.seal(nil, 1, recordTypeApplicationData, []byte("data"))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	good := sealWith(nil)
	// sealInner seals an arbitrary DTLSInnerPlaintext under the test keys.
	sealInner := func(inner []byte) []byte {
		block, _ := aes.NewCipher(bytes.Repeat([]byte{0x42}, k.keyLen))
		gcm, _ := cipher.NewGCM(block)
		nonce := append(bytes.Repeat([]byte{0x17}, 4), 0, 1, 0, 0, 0, 0, 0, 0)
		var adBuf [cidADFixedLen + maxCIDLen]byte
		ad := additionalDataCID(adBuf[:], 1<<48, VersionDTLS12, cid, len(inner))
		ct := gcm.Seal(nil, nonce, inner, ad)
		rec := appendRecordHeaderCID(nil, recordTypeTLS12CID, VersionDTLS12, 1, 0, cid, 8+len(ct))
		rec = append(rec, nonce[4:]...)
		return append(rec, ct...)
	}
	plainEpoch0 := appendRecordHeaderCID(nil, recordTypeTLS12CID, VersionDTLS12, 0, 0, cid, 20)
	plainEpoch0 = append(plainEpoch0, make([]byte, 20)...)

	tests := []struct {
		name   string
		dgram  []byte
		cidLen int // our CID length; -1 for none negotiated
		want   dropReason
	}{
		{"no CID negotiated", good, -1, dropBadCID},
		{"header shorter than our CID", good[:11+4], 8, dropBadHeader},
		{"no length after the CID", good[:11+8+1], 8, dropBadHeader},
		{"length past the datagram", good[:len(good)-1], 8, dropBadHeader},
		{"another CID", sealWith(func(w *recordLayer) { w.writeCID = []byte{8, 7, 6, 5, 4, 3, 2, 1} }), 8, dropBadCID},
		{"CID in epoch 0", plainEpoch0, 8, dropBadCID},
		{"plain record where the CID is due", sealWith(func(w *recordLayer) { w.writeCID = nil }), 8, dropBadCID},
		{"bad MAC", func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 1; return b }(), 8, dropBadMAC},
		{"too short for the tag", func() []byte {
			b := appendRecordHeaderCID(nil, recordTypeTLS12CID, VersionDTLS12, 1, 0, cid, 10)
			return append(b, make([]byte, 10)...)
		}(), 8, dropBadLength},
		{"empty inner plaintext", sealInner(nil), 8, dropBadLength},
		{"inner plaintext all zeros", sealInner(make([]byte, 16)), 8, dropBadContentType},
		{"inner type tls12_cid", sealInner([]byte{'x', byte(recordTypeTLS12CID)}), 8, dropBadContentType},
		{"content over 2^14", sealInner(append(make([]byte, maxPlaintext+1), byte(recordTypeApplicationData))), 8, dropBadLength},
		{"padding over the limit", sealInner(append(append(make([]byte, maxPlaintext), byte(recordTypeApplicationData)), make([]byte, maxCIDPadding)...)), 8, dropBadLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, r := testCIDRecordPair(t, aeadAES128GCM, cid)
			if tt.cidLen < 0 {
				r.readCID = nil
			}
			recs, drops := openCIDDatagram(r, bytes.Clone(tt.dgram))
			if len(recs) != 0 || len(drops) != 1 || drops[0] != tt.want {
				t.Fatalf("records %d, drops %v; want drop %v", len(recs), drops, tt.want)
			}
			if r.anyRead {
				t.Error("a dropped record counted as the newest")
			}
		})
	}

	// Replays are dropped, and only a newer record is the newest.
	w, r := testCIDRecordPair(t, aeadAES128GCM, cid)
	r1, _ := w.seal(nil, 1, recordTypeApplicationData, []byte("1"))
	r2, _ := w.seal(nil, 1, recordTypeApplicationData, []byte("2"))
	if recs, _ := openCIDDatagram(r, bytes.Clone(r2)); len(recs) != 1 || !recs[0].hdr.newest {
		t.Fatal("newest record not marked")
	}
	if recs, _ := openCIDDatagram(r, bytes.Clone(r1)); len(recs) != 1 || recs[0].hdr.newest {
		t.Fatal("reordered older record marked newest")
	}
	if _, drops := openCIDDatagram(r, bytes.Clone(r2)); len(drops) != 1 || drops[0] != dropReplayed {
		t.Fatalf("replay: %v", drops)
	}
}

func TestCIDRecordAllocs(t *testing.T) {
	w, r := testCIDRecordPair(t, aeadAES128GCM, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	buf := make([]byte, 0, 2048)
	payload := bytes.Repeat([]byte{7}, 1000)
	allocs := testing.AllocsPerRun(100, func() {
		out, err := w.seal(buf[:0], 1, recordTypeApplicationData, payload)
		if err != nil {
			t.Fatal(err)
		}
		hdr, body, _, _ := nextRecordCID(out, 8)
		if _, reason := r.open(&hdr, body); reason != dropNone {
			t.Fatal(reason)
		}
	})
	if allocs != 0 {
		t.Errorf("seal+open of a tls12_cid record allocates %.1f times", allocs)
	}
}

func FuzzRecordOpenCID(f *testing.F) {
	cid := []byte{1, 2, 3, 4}
	w, _ := testCIDRecordPair(f, aeadAES128GCM, cid)
	good, _ := w.seal(nil, 1, recordTypeApplicationData, []byte("seed"))
	f.Add(good)
	f.Add(good[:14])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, dgram []byte) {
		for _, n := range []int{0, 4, maxCIDLen} {
			_, r := testCIDRecordPair(t, aeadChaCha20Poly1305, bytes.Repeat([]byte{1}, n))
			if n == 0 {
				r.readCID = nil
			}
			d := bytes.Clone(dgram)
			for i := 0; len(d) > 0; i++ {
				if i > len(dgram) {
					t.Fatal("record loop does not terminate")
				}
				hdr, body, rest, reason := nextRecordCID(d, n)
				if reason != dropNone {
					break
				}
				if len(hdr.cid) != 0 && len(hdr.cid) != n {
					t.Fatalf("CID of %d bytes parsed with our length %d", len(hdr.cid), n)
				}
				d = rest
				if plain, reason := r.open(&hdr, body); reason == dropNone && hdr.epoch == 1 {
					t.Fatalf("forged record authenticated: %x", plain)
				}
			}
		}
	})
}
