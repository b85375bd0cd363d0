package dtls

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"fmt"
	"testing"
)

// testRecordPair returns a writer and a reader record layer that share keys
// of the given AEAD in epoch 1.
func testRecordPair(t testing.TB, kind aeadKind, window int) (w, r *recordLayer) {
	t.Helper()
	p := aeadTable[kind]
	key := bytes.Repeat([]byte{0x42}, p.keyLen)
	iv := bytes.Repeat([]byte{0x17}, p.fixedIVLen)
	w, r = newRecordLayer(window), newRecordLayer(window)
	wk, err := newEpochKeys(kind, key, iv)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := newEpochKeys(kind, key, iv)
	if err != nil {
		t.Fatal(err)
	}
	w.installWriteKeys(wk)
	r.installReadKeys(rk)
	return w, r
}

var allAEADs = []aeadKind{aeadAES128GCM, aeadAES256GCM, aeadChaCha20Poly1305, aeadAES128CCM, aeadAES256CCM, aeadAES128CCM8}

func aeadName(k aeadKind) string {
	return map[aeadKind]string{aeadAES128GCM: "AES128GCM", aeadAES256GCM: "AES256GCM",
		aeadChaCha20Poly1305: "ChaCha20", aeadAES128CCM: "AES128CCM", aeadAES256CCM: "AES256CCM",
		aeadAES128CCM8: "AES128CCM8"}[k]
}

func openDatagram(t *testing.T, rl *recordLayer, dgram []byte) (recs []record, drops []dropReason) {
	t.Helper()
	for len(dgram) > 0 {
		hdr, body, rest, reason := nextRecord(dgram)
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

func TestRecordRoundTripAllAEADs(t *testing.T) {
	for _, kind := range allAEADs {
		t.Run(aeadName(kind), func(t *testing.T) {
			w, r := testRecordPair(t, kind, 64)
			var dgram []byte
			var err error
			payloads := [][]byte{{}, []byte("hello"), bytes.Repeat([]byte{0xaa}, 1000), bytes.Repeat([]byte{1}, maxPlaintext)}
			for _, p := range payloads {
				dgram, err = w.seal(dgram, 1, recordTypeApplicationData, p)
				if err != nil {
					t.Fatal(err)
				}
			}
			wantLen := 0
			for _, p := range payloads {
				wantLen += recordHeaderLen + len(p) + aeadTable[kind].explicitLen + aeadTable[kind].tagLen
			}
			if len(dgram) != wantLen {
				t.Fatalf("datagram is %d bytes, want %d", len(dgram), wantLen)
			}
			if got := w.expansion(1); got != aeadTable[kind].explicitLen+aeadTable[kind].tagLen {
				t.Errorf("overhead = %d", got)
			}
			recs, drops := openDatagram(t, r, dgram)
			if len(drops) != 0 || len(recs) != len(payloads) {
				t.Fatalf("got %d records, drops %v", len(recs), drops)
			}
			for i, rec := range recs {
				if !bytes.Equal(rec.data, payloads[i]) {
					t.Errorf("record %d: payload mismatch", i)
				}
				if rec.hdr.seq != uint64(i) || rec.hdr.epoch != 1 || rec.hdr.typ != recordTypeApplicationData {
					t.Errorf("record %d: header %+v", i, rec.hdr)
				}
			}
		})
	}
}

// TestRecordDrops checks that every kind of bad record is dropped with its
// reason, and that the connection's state still accepts good records after.
func TestRecordDrops(t *testing.T) {
	for _, kind := range allAEADs {
		t.Run(aeadName(kind), func(t *testing.T) {
			w, r := testRecordPair(t, kind, 64)
			r.discardReadEpoch(0) // the handshake is over: plaintext is no longer read
			seal := func(p string) []byte {
				b, err := w.seal(nil, 1, recordTypeApplicationData, []byte(p))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			good := seal("one")
			check := func(name string, dgram []byte, want dropReason) {
				t.Helper()
				recs, drops := openDatagram(t, r, dgram)
				if want == dropNone {
					if len(recs) != 1 || len(drops) != 0 {
						t.Errorf("%s: want accepted, got drops %v", name, drops)
					}
					return
				}
				if len(recs) != 0 || len(drops) != 1 || drops[0] != want {
					t.Errorf("%s: got %d records, drops %v, want %v", name, len(recs), drops, want)
				}
			}
			flip := func(b []byte, i int) []byte {
				c := bytes.Clone(b)
				c[i] ^= 1
				return c
			}
			// Every single-bit flip after the header's length field fails
			// authentication (nonce, ciphertext, tag); flips in the
			// authenticated header fields do too.
			for i := 0; i < len(good); i++ {
				d := flip(good, i)
				switch {
				case i == 0: // type is authenticated
					check("flip type", d, dropBadMAC)
				case i < 3:
					check("flip version", d, dropBadVersion)
				case i < 5:
					check("flip epoch", d, dropUnknownEpoch)
				case i < 11:
					check(fmt.Sprintf("flip seq byte %d", i), d, dropBadMAC)
				case i == 11:
					check("flip length high byte", d, dropBadHeader)
				case i == 12:
					// One byte shorter: the record fails authentication
					// and the byte left over is not a record.
					if recs, drops := openDatagram(t, r, d); len(recs) != 0 || len(drops) != 2 || drops[0] != dropBadMAC || drops[1] != dropBadHeader {
						t.Errorf("flip length low byte: got %d records, drops %v", len(recs), drops)
					}
				default:
					check(fmt.Sprintf("flip byte %d", i), d, dropBadMAC)
				}
			}
			check("good", good, dropNone)
			check("replayed", good, dropReplayed)
			check("truncated header", good[:12], dropBadHeader)
			short := bytes.Clone(good[:recordHeaderLen+3])
			short[11], short[12] = 0, 3
			short[10] = 0xff // a fresh sequence number
			check("shorter than the tag", short, dropBadLength)
			// Records far in the past fall out of the window.
			for i := 0; i < 70; i++ {
				seal("x")
			}
			late := seal("late")
			for i := 0; i < 70; i++ {
				check("in order", seal("y"), dropNone)
			}
			check("too old", late, dropTooOld)
			// An unknown epoch, and epoch 0 plaintext, after keys changed.
			plain, _ := newRecordLayer(64).seal(nil, 0, recordTypeApplicationData, []byte("x"))
			plain[3], plain[4] = 0, 7
			check("unknown epoch", plain, dropUnknownEpoch)
			check("still working", seal("two"), dropNone)
		})
	}
}

func TestRecordSequenceExhaustion(t *testing.T) {
	w, _ := testRecordPair(t, aeadAES128GCM, 64)
	w.write[1].seq = maxSequenceNumber
	if _, err := w.seal(nil, 1, recordTypeApplicationData, []byte("last")); err != nil {
		t.Fatalf("last sequence number refused: %v", err)
	}
	if _, err := w.seal(nil, 1, recordTypeApplicationData, []byte("wrap")); err != errSequenceExhausted {
		t.Fatalf("wrap allowed: %v", err)
	}
}

// TestRecordGCMNonceExplicit pins the wire format of an AES-128-GCM record:
// the explicit nonce is epoch‖seq and the additional data is RFC 6347's.
// The expected bytes were computed independently with crypto/cipher below.
func TestRecordGCMNonceExplicit(t *testing.T) {
	w, _ := testRecordPair(t, aeadAES128GCM, 64)
	w.write[1].seq = 5
	got, err := w.seal(nil, 1, recordTypeApplicationData, []byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(bytes.Repeat([]byte{0x42}, 16))
	g, _ := cipher.NewGCM(block)
	nonce, _ := hex.DecodeString("171717170001000000000005")
	ad, _ := hex.DecodeString("000100000000000517fefd0003")
	want, _ := hex.DecodeString("17fefd000100000000000500" + "1b" + "0001000000000005")
	want = g.Seal(want, nonce, []byte("abc"), ad)
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
}

func TestRecordChaChaNonce(t *testing.T) {
	k := &epochKeys{explicitLen: 0}
	copy(k.iv[:], bytes.Repeat([]byte{0xff}, 12))
	var n [12]byte
	k.nonce(&n, 1<<48|2)
	if got := hex.EncodeToString(n[:]); got != "fffffffffffefffffffffffd" {
		t.Fatalf("nonce %s", got)
	}
}

func TestRecordAllocs(t *testing.T) {
	for _, kind := range allAEADs {
		w, r := testRecordPair(t, kind, 64)
		buf := make([]byte, 0, 2048)
		payload := bytes.Repeat([]byte{7}, 1000)
		allocs := testing.AllocsPerRun(100, func() {
			out, err := w.seal(buf[:0], 1, recordTypeApplicationData, payload)
			if err != nil {
				t.Fatal(err)
			}
			hdr, body, _, _ := nextRecord(out)
			if _, reason := r.open(&hdr, body); reason != dropNone {
				t.Fatal(reason)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: seal+open allocates %.1f times per record", aeadName(kind), allocs)
		}
	}
}

// BenchmarkRecord compares seal+open of a 1000-byte record through the record
// layer with bare cipher.AEAD Seal+Open of the same size in the same run.
func BenchmarkRecord(b *testing.B) {
	for _, kind := range allAEADs {
		b.Run(aeadName(kind)+"/record", func(b *testing.B) {
			w, r := testRecordPair(b, kind, 64)
			buf := make([]byte, 0, 2048)
			payload := bytes.Repeat([]byte{7}, 1000)
			b.SetBytes(1000)
			b.ReportAllocs()
			for b.Loop() {
				out, _ := w.seal(buf[:0], 1, recordTypeApplicationData, payload)
				hdr, body, _, _ := nextRecord(out)
				if _, reason := r.open(&hdr, body); reason != dropNone {
					b.Fatal(reason)
				}
			}
		})
		b.Run(aeadName(kind)+"/bare", func(b *testing.B) {
			a, err := kind.newAEAD(make([]byte, aeadTable[kind].keyLen))
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 2048)
			payload := bytes.Repeat([]byte{7}, 1000)
			nonce := make([]byte, 12)
			ad := make([]byte, 13)
			b.SetBytes(1000)
			b.ReportAllocs()
			for b.Loop() {
				ct := a.Seal(buf[:0], nonce, payload, ad)
				if _, err := a.Open(ct[:0], nonce, ct, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzRecordOpen feeds arbitrary datagrams to a record layer holding epoch 0
// and epoch 1 keys: nothing may panic, and nothing forged may authenticate.
func FuzzRecordOpen(f *testing.F) {
	w, _ := testRecordPair(f, aeadAES128GCM, 64)
	good, _ := w.seal(nil, 1, recordTypeApplicationData, []byte("seed"))
	plain, _ := newRecordLayer(64).seal(nil, 0, recordTypeHandshake, []byte("hs"))
	f.Add(good)
	f.Add(plain)
	f.Add(append(bytes.Clone(plain), good...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, dgram []byte) {
		for _, kind := range []aeadKind{aeadAES128GCM, aeadChaCha20Poly1305, aeadAES128CCM8} {
			_, r := testRecordPair(t, kind, 64)
			d := bytes.Clone(dgram)
			for n := 0; len(d) > 0; n++ {
				if n > len(dgram) {
					t.Fatal("record loop does not terminate")
				}
				hdr, body, rest, reason := nextRecord(d)
				if reason != dropNone {
					break
				}
				d = rest
				plain, reason := r.open(&hdr, body)
				if reason == dropNone && hdr.epoch == 1 && kind != aeadAES128GCM {
					t.Fatalf("forged record authenticated: %x", plain)
				}
			}
		}
	})
}

// TestRecordEpochTable checks that the record layer holds the epochs DTLS
// 1.3 needs at once (0, 2, 3, N−1 and N after KeyUpdates), which two slots
// indexed by epoch&1 could not: each opens only its own records, a
// discarded epoch opens nothing, and a full table gives up its oldest.
func TestRecordEpochTable(t *testing.T) {
	kind := aeadAES128GCM
	p := aeadTable[kind]
	keys := func(b byte) *epochKeys {
		k, err := newEpochKeys(kind, bytes.Repeat([]byte{b}, p.keyLen), bytes.Repeat([]byte{b}, p.fixedIVLen))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	r := newRecordLayer(64)
	const n = 9
	// Handshake keys (2), application keys (3), then KeyUpdates to n:
	// as a 1.3 reader does, each update discards the epoch before the
	// previous one, but 2 and 3 stay until the caller is done with them.
	for e := uint64(2); e <= n; e++ {
		if e-2 > 3 {
			r.discardReadEpoch(e - 2)
		}
		r.installReadEpoch(e, keys(byte(e)))
	}
	if r.readCur != n {
		t.Fatalf("current read epoch %d, want %d", r.readCur, n)
	}
	held := []uint64{0, 2, 3, n - 1, n}
	for _, e := range held {
		if r.readState(e) == nil {
			t.Errorf("read epoch %d not held", e)
		}
	}
	w2 := newRecordLayer(64)
	for _, e := range held[1:] {
		w2.installWriteEpoch(e, keys(byte(e)))
	}
	for _, e := range held {
		rec, err := w2.seal(nil, e, recordTypeApplicationData, []byte("epoch"))
		if err != nil {
			t.Fatalf("seal in epoch %d: %v", e, err)
		}
		hdr, body, _, reason := nextRecord(rec)
		if reason != dropNone || hdr.epoch != e {
			t.Fatalf("epoch %d: header %+v, %v", e, hdr, reason)
		}
		if e == 0 {
			continue // plaintext application data is the Conn's to refuse
		}
		if got, reason := r.open(&hdr, body); reason != dropNone || string(got) != "epoch" {
			t.Errorf("open in epoch %d: %q, %v", e, got, reason)
		}
	}
	for _, e := range []uint64{1, 4, 5, 6, 7} {
		if r.readState(e) != nil {
			t.Errorf("read epoch %d held after discard", e)
		}
	}
	// A sixth epoch replaces the oldest, 0.
	r.installReadEpoch(n+1, keys(n+1))
	if r.readState(0) != nil || r.readState(2) == nil || r.readState(n+1) == nil {
		t.Error("a full table did not replace its oldest epoch")
	}

	// DTLS 1.2's two epochs fit in the inline slots: no table is
	// allocated for them.
	w12, r12 := testRecordPair(t, kind, 64)
	if w12.writeMore != nil || r12.readMore != nil {
		t.Error("epochs 0 and 1 allocated overflow slots")
	}
}
