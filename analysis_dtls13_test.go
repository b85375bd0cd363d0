package dtls

import (
	"bytes"
	"errors"
	"testing"
)

// TestRecordDecrypter13WolfSSL opens every encrypted record of wolfSSL's
// captures through the exported RecordDecrypter13 with nothing but the
// key log's traffic secrets, and checks that it finds the same records
// (epoch, sequence number, content) as the step-by-step decoding of
// dtls13_capture_test.go.
func TestRecordDecrypter13WolfSSL(t *testing.T) {
	for _, tc := range []struct {
		file  string
		suite uint16
		cid   int
	}{
		{"wolfssl-x25519mlkem768-aes256gcm.txt", suiteTLSAES256GCMSHA384, 0},
		{"wolfssl-p256-chacha20.txt", suiteTLSChaCha20Poly1305SHA256, 0},
		{"wolfssl-p256-aes128ccm.txt", suiteTLSAES128CCMSHA256, 0},
		{"wolfssl-p256-aes128ccm8.txt", suiteTLSAES128CCM8SHA256, 0},
		{"wolfssl-psk-aes128gcm.txt", suiteTLSAES128GCMSHA256, 0},
		{"wolfssl-cid-aes256gcm.txt", suiteTLSAES256GCMSHA384, 4},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c := loadCapture13(t, tc.file)
			want := decodeCapture13(t, c, tc.cid)
			var dec [2]*RecordDecrypter13 // [0] server, [1] client, as decodeCapture13
			for dir, names := range [2][2]string{
				{"SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"},
				{"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"},
			} {
				d, err := NewRecordDecrypter13(tc.suite, tc.cid)
				if err != nil {
					t.Fatal(err)
				}
				for i, name := range names {
					if err := d.SetTrafficSecret(uint64(2+i), c.keylog[name]); err != nil {
						t.Fatal(err)
					}
				}
				dec[dir] = d
			}
			got := [2]map[recordNumber]bool{{}, {}}
			var acks [2][]recordNumber
			for _, dg := range c.datagrams {
				dir := 0
				if dg.fromClient {
					dir = 1
				}
				orig := bytes.Clone(dg.b)
				b := dg.b
				for len(b) > 0 {
					if classifyRecord(b[0]) == classPlaintext {
						_, _, rest, reason := nextRecord(b)
						if reason != dropNone {
							t.Fatal(reason)
						}
						b = rest
						continue
					}
					rec, rest, err := dec[dir].Open(b)
					if err != nil {
						t.Fatalf("record %x: %v", b[:min(len(b), 8)], err)
					}
					if !rec.Decrypted || rec.Len != len(b)-len(rest) || len(rec.CID) != tc.cid ||
						rec.EpochBits != uint8(rec.Epoch&3) || rec.CiphertextLen != rec.Len-(1+tc.cid+rec.SeqLen+2*b2i(rec.HasLength)) {
						t.Fatalf("record %+v", rec)
					}
					got[dir][recordNumber{rec.Epoch, rec.Seq}] = true
					if recordType(rec.ContentType) == recordTypeACK {
						rns, ok := parseACK(rec.Content, nil)
						if !ok {
							t.Fatalf("ACK %x", rec.Content)
						}
						acks[dir] = append(acks[dir], rns...)
					}
					b = rest
				}
				if !bytes.Equal(orig, dg.b) {
					t.Fatal("Open modified the datagram")
				}
			}
			for dir := range 2 {
				for rn := range want.sent[dir] {
					if rn.epoch != 0 && !got[dir][rn] {
						t.Errorf("direction %d: record %+v not opened", dir, rn)
					}
				}
				for rn := range got[dir] {
					if !want.sent[dir][rn] {
						t.Errorf("direction %d: record %+v opened, not in the capture", dir, rn)
					}
				}
				if len(acks[dir]) != len(want.acks[dir]) {
					t.Errorf("direction %d: %d ACKed records, want %d", dir, len(acks[dir]), len(want.acks[dir]))
				}
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestRecordDecrypter13KeyUpdate seals records in epochs 3 to 6 (each
// secret the KeyUpdate step of the one before) and checks that a
// decrypter given only epoch 3's secret opens them all, in order and with
// a late epoch-4 record after epoch 5 began, and that records of an epoch
// with no secret, or from a decrypter without a suite, still show their
// headers.
func TestRecordDecrypter13KeyUpdate(t *testing.T) {
	suite := cipherSuite13ByID(suiteTLSAES128GCMSHA256)
	secret := bytes.Repeat([]byte{7}, 32)
	cid := []byte{0xc1, 0xd0}
	var keys []*epochKeys13
	s := secret
	for epoch := uint64(3); epoch <= 6; epoch++ {
		k, err := newEpochKeys13(suite, epoch, s)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
		if s, err = nextTrafficSecret13(suite.hash, labelPrefixDTLS13, s); err != nil {
			t.Fatal(err)
		}
	}
	seal := func(k *epochKeys13, seq uint64, content string) []byte {
		b, err := k.sealRecord13(nil, cid, seq, recordTypeApplicationData, []byte(content), 3, seq%2 == 0, true)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	d, err := NewRecordDecrypter13(suiteTLSAES128GCMSHA256, len(cid))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetTrafficSecret(3, secret); err != nil {
		t.Fatal(err)
	}
	type sent struct {
		epoch, seq uint64
	}
	order := []sent{{3, 0}, {3, 1}, {3, 300}, {4, 0}, {4, 1}, {5, 0}, {4, 2}, {5, 1}, {6, 0}, {6, 1}}
	var datagram []byte
	for _, o := range order {
		datagram = append(datagram, seal(keys[o.epoch-3], o.seq, "data")...)
	}
	rest := datagram
	for _, o := range order {
		rec, r, err := d.Open(rest)
		if err != nil {
			t.Fatalf("record %+v: %v", o, err)
		}
		if rec.Epoch != o.epoch || rec.Seq != o.seq || string(rec.Content) != "data" || rec.Padding != 3 ||
			recordType(rec.ContentType) != recordTypeApplicationData || !bytes.Equal(rec.CID, cid) {
			t.Fatalf("record %+v opened as %+v", o, rec)
		}
		rest = r
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes left", len(rest))
	}

	// Without the secret of epoch 2, and without a suite: headers only.
	hs, err := newEpochKeys13(suite, 2, secret)
	if err != nil {
		t.Fatal(err)
	}
	rec2 := seal(hs, 5, "finished")
	two := append(bytes.Clone(rec2), rec2...)
	d3 := mustDecrypter13(t, suiteTLSAES128GCMSHA256, len(cid))
	if err := d3.SetTrafficSecret(3, secret); err != nil {
		t.Fatal(err)
	}
	for _, dd := range []*RecordDecrypter13{d3, mustDecrypter13(t, 0, len(cid))} {
		rec, rest, err := dd.Open(two)
		if !errors.Is(err, ErrNoTrafficSecret) || rec.Decrypted || rec.EpochBits != 2 || rec.Len != len(rec2) ||
			!bytes.Equal(rest, rec2) || rec.CiphertextLen != len("finished")+1+3+16 {
			t.Fatalf("epoch 2 without its secret: %+v, %d left, %v", rec, len(rest), err)
		}
	}
	// A wrong CID length loses the record boundaries.
	if _, rest, err := mustDecrypter13(t, suiteTLSAES128GCMSHA256, 0).Open(rec2); err == nil || rest != nil {
		t.Fatalf("CID record read without a CID length: %v", err)
	}
	// A tampered record does not open, and leaves the decrypter working.
	bad := bytes.Clone(rec2)
	bad[len(bad)-1] ^= 1
	if err := d.SetTrafficSecret(2, secret); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Open(bad); err == nil || errors.Is(err, ErrNoTrafficSecret) {
		t.Fatalf("tampered record: %v", err)
	}
	if rec, _, err := d.Open(rec2); err != nil || rec.Epoch != 2 || rec.Seq != 5 {
		t.Fatalf("epoch 2 record: %+v %v", rec, err)
	}
	if _, err := NewRecordDecrypter13(0xc02b, 0); err == nil {
		t.Error("a DTLS 1.2 suite accepted")
	}
	if err := d.SetTrafficSecret(7, secret[:20]); err == nil {
		t.Error("a short secret accepted")
	}
}

func mustDecrypter13(t *testing.T, suite uint16, cidLen int) *RecordDecrypter13 {
	t.Helper()
	d, err := NewRecordDecrypter13(suite, cidLen)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// FuzzRecordDecrypter13 feeds arbitrary datagrams to a decrypter holding
// keys for epochs 2 and 3: it must never panic, and a record it reports
// must lie within the datagram.
func FuzzRecordDecrypter13(f *testing.F) {
	for _, name := range captureFiles13 {
		c := loadCapture13(f, name)
		for _, d := range c.datagrams {
			if len(d.b) > 0 && classifyRecord(d.b[0]) == classCiphertext13 {
				f.Add(d.b)
			}
		}
	}
	secret := bytes.Repeat([]byte{9}, 32)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, cidLen := range []int{0, 4} {
			d := mustDecrypter13(t, suiteTLSChaCha20Poly1305SHA256, cidLen)
			d.SetTrafficSecret(2, secret)
			d.SetTrafficSecret(3, secret)
			rest := b
			for i := 0; len(rest) > 0 && i < 64; i++ {
				rec, r, err := d.Open(rest)
				if r == nil {
					if err == nil {
						t.Fatal("no rest and no error")
					}
					break
				}
				if rec.Len <= 0 || rec.Len > len(rest) || len(r) != len(rest)-rec.Len {
					t.Fatalf("record of %d bytes in %d", rec.Len, len(rest))
				}
				rest = r
			}
		}
	})
}
