package dtls

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

func TestACKRoundTrip(t *testing.T) {
	for _, rns := range [][]recordNumber{
		nil,
		{{0, 0}},
		{{2, 0}, {2, 1}, {2, 5}, {3, 1<<48 - 1}},
		{{1<<64 - 1, 1<<64 - 1}},
	} {
		b, err := appendACK([]byte{0xee}, rns)
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != 0xee || len(b) != 1+2+16*len(rns) {
			t.Fatalf("encoded %x", b)
		}
		got, ok := parseACK(b[1:], nil)
		if !ok || !slices.Equal(got, rns) && len(rns) > 0 || len(got) != len(rns) {
			t.Fatalf("parsed %v %v, want %v", got, ok, rns)
		}
	}
}

func TestACKKnownEncoding(t *testing.T) {
	// One RecordNumber {epoch 2, seq 3}: length 16, then two uint64s.
	want := []byte{0, 16, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3}
	b, err := appendACK(nil, []recordNumber{{2, 3}})
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("encoded %x, %v", b, err)
	}
}

func TestACKRejects(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		{0},
		{0, 16},   // length past the end
		{0, 1, 0}, // not a whole RecordNumber
		{0, 0, 0}, // trailing byte
		append([]byte{0, 15}, make([]byte, 15)...),
		append([]byte{0, 16}, make([]byte, 17)...),
	} {
		if _, ok := parseACK(b, nil); ok {
			t.Errorf("%x accepted", b)
		}
	}
	if _, err := appendACK(nil, make([]recordNumber, maxACKRecordNumbers+1)); err == nil {
		t.Error("ACK past maxACKRecordNumbers encoded")
	}
}

func TestACKBound(t *testing.T) {
	// The wire allows 4095 entries; we keep maxACKRecordNumbers.
	n := 0xffff / recordNumberLen
	b := binary.BigEndian.AppendUint16(nil, uint16(n*recordNumberLen))
	for i := range n {
		b = binary.BigEndian.AppendUint64(b, 3)
		b = binary.BigEndian.AppendUint64(b, uint64(i))
	}
	got, ok := parseACK(b, nil)
	if !ok || len(got) != maxACKRecordNumbers || got[maxACKRecordNumbers-1].seq != maxACKRecordNumbers-1 {
		t.Fatalf("ok %v, kept %d", ok, len(got))
	}
	// Reusing the output slice allocates nothing.
	buf := make([]recordNumber, 0, maxACKRecordNumbers)
	if allocs := testing.AllocsPerRun(10, func() { parseACK(b, buf) }); allocs != 0 {
		t.Errorf("%.1f allocations", allocs)
	}
}

func FuzzACK(f *testing.F) {
	f.Add([]byte{0, 0})
	f.Add([]byte{0, 16, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3})
	f.Add([]byte{0, 17, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		rns, ok := parseACK(b, nil)
		if !ok {
			return
		}
		if len(rns) > maxACKRecordNumbers {
			t.Fatalf("kept %d entries", len(rns))
		}
		re, err := appendACK(nil, rns)
		if err != nil {
			t.Fatal(err)
		}
		if len(rns) < maxACKRecordNumbers && !bytes.Equal(re, b) {
			t.Fatalf("re-encoded %x from %x", re, b)
		}
		if !bytes.Equal(re[2:], b[2:2+len(re)-2]) {
			t.Fatalf("re-encoded entries differ")
		}
	})
}
