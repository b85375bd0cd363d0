package replay

import (
	"math/rand/v2"
	"testing"
)

// model is a trivially correct anti-replay window: a map of every accepted
// sequence number and the right edge. The ring-based Window must agree with
// it on every Check.
type model struct {
	size    uint64
	seen    map[uint64]bool
	top     uint64
	started bool
}

func newModel(size int) *model {
	m := &model{seen: make(map[uint64]bool)}
	if size > 0 {
		if size > MaxSize {
			size = MaxSize
		}
		m.size = uint64((size + 63) / 64 * 64)
	}
	return m
}

func (m *model) check(seq uint64) Result {
	if m.size == 0 || !m.started || seq > m.top {
		return Fresh
	}
	if m.top-seq >= m.size {
		return TooOld
	}
	if m.seen[seq] {
		return Duplicate
	}
	return Fresh
}

func (m *model) accept(seq uint64) {
	if m.size == 0 || m.check(seq) != Fresh {
		return
	}
	m.seen[seq] = true
	if !m.started || seq > m.top {
		m.started, m.top = true, seq
	}
	// Forget what is out of the window, to keep the model small; this does
	// not change its answers.
	if len(m.seen) > 4*int(m.size) {
		for s := range m.seen {
			if m.top-s >= m.size {
				delete(m.seen, s)
			}
		}
	}
}

func (m *model) reset() {
	m.seen = make(map[uint64]bool)
	m.top, m.started = 0, false
}

const maxSeq = 1<<48 - 1

type step struct {
	accept bool   // Accept seq, else Check seq
	seq    uint64 //
	want   Result // for Check
}

func acc(seq uint64) step              { return step{accept: true, seq: seq} }
func chk(seq uint64, want Result) step { return step{seq: seq, want: want} }

func TestWindowTable(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		steps []step
	}{
		{"first record is seq 0", 64, []step{
			chk(0, Fresh), acc(0), chk(0, Duplicate), chk(1, Fresh),
		}},
		{"first record far from 0", 64, []step{
			chk(5000, Fresh), acc(5000), chk(5000, Duplicate), chk(4999, Fresh), chk(5000-63, Fresh), chk(5000-64, TooOld),
		}},
		{"in order", 64, []step{
			acc(0), acc(1), acc(2), chk(0, Duplicate), chk(1, Duplicate), chk(2, Duplicate), chk(3, Fresh),
		}},
		{"window edge size 64", 64, []step{
			acc(100), chk(100-63, Fresh), chk(100-64, TooOld), acc(37), chk(37, Duplicate), acc(36), chk(36, TooOld),
		}},
		{"window edge size 128", 128, []step{
			acc(1000), chk(1000-127, Fresh), chk(1000-128, TooOld), acc(873), chk(873, Duplicate),
		}},
		{"window edge size 1000 rounds to 1024", 1000, []step{
			acc(5000), chk(5000-1023, Fresh), chk(5000-1024, TooOld),
		}},
		{"window edge size 4096", 4096, []step{
			acc(10000), chk(10000-4095, Fresh), chk(10000-4096, TooOld),
		}},
		{"size over the maximum is clamped", 100000, []step{
			acc(10000), chk(10000-4095, Fresh), chk(10000-4096, TooOld),
		}},
		{"edge when the right edge is word aligned", 64, []step{
			acc(128), chk(65, Fresh), chk(64, TooOld), acc(65), chk(65, Duplicate),
		}},
		{"edge when the right edge ends a word", 64, []step{
			acc(127), chk(64, Fresh), chk(63, TooOld), acc(64), chk(64, Duplicate),
		}},
		{"reordered inside the window", 64, []step{
			acc(10), acc(8), acc(9), chk(8, Duplicate), chk(9, Duplicate), chk(7, Fresh), acc(7), chk(7, Duplicate),
		}},
		{"jump by exactly one word", 64, []step{
			acc(5), acc(69), chk(5, TooOld), chk(6, Fresh), chk(69, Duplicate), chk(68, Fresh),
		}},
		{"jump by exactly one word keeps old bits in a wider window", 128, []step{
			acc(5), acc(69), chk(5, Duplicate), chk(6, Fresh), chk(69, Duplicate),
		}},
		{"jump by exactly the window", 64, []step{
			acc(0), acc(1), acc(64), chk(0, TooOld), chk(1, Duplicate), chk(2, Fresh), chk(63, Fresh), chk(64, Duplicate),
		}},
		{"jump by one ring clears stale bits", 64, []step{
			// A ring of 2 words: 1, 2 and 129, 130 share bits of one slot.
			acc(1), acc(2), acc(130), chk(129, Fresh), chk(67, Fresh), chk(66, TooOld), chk(130, Duplicate),
		}},
		{"large jump", 256, []step{
			acc(1), acc(2), acc(3), acc(1 << 40), chk(1<<40-1, Fresh), chk(1<<40-255, Fresh), chk(1<<40-256, TooOld), chk(3, TooOld), chk(1<<40, Duplicate),
		}},
		{"large jump does not resurrect bits of the same ring slot", 64, []step{
			acc(1), acc(2), acc(1 + 128*1000), chk(2+128*1000, Fresh), chk(128*1000+1, Duplicate),
		}},
		{"largest sequence number", 64, []step{
			acc(maxSeq - 1), acc(maxSeq), chk(maxSeq, Duplicate), chk(maxSeq-1, Duplicate), chk(maxSeq-2, Fresh), chk(maxSeq-64, TooOld),
		}},
		{"accepting a TooOld number changes nothing", 64, []step{
			acc(200), acc(10), chk(10, TooOld), chk(200, Duplicate), chk(199, Fresh),
		}},
		{"disabled window accepts everything", 0, []step{
			acc(5), chk(5, Fresh), acc(5), chk(5, Fresh), chk(0, Fresh),
		}},
		{"negative size disables", -1, []step{
			acc(5), chk(5, Fresh),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w Window
			w.Init(tt.size)
			m := newModel(tt.size)
			for i, s := range tt.steps {
				if s.accept {
					w.Accept(s.seq)
					m.accept(s.seq)
					continue
				}
				if got := w.Check(s.seq); got != s.want {
					t.Fatalf("step %d: Check(%d) = %v, want %v", i, s.seq, got, s.want)
				}
				if got := m.check(s.seq); got != s.want {
					t.Fatalf("step %d: model Check(%d) = %v, want %v (bad test row)", i, s.seq, got, s.want)
				}
			}
		})
	}
}

func TestWindowSize(t *testing.T) {
	for _, tt := range []struct{ in, want int }{
		{-5, 0}, {0, 0}, {1, 64}, {63, 64}, {64, 64}, {65, 128}, {1000, 1024}, {4096, 4096}, {4097, 4096}, {1 << 30, 4096},
	} {
		var w Window
		w.Init(tt.in)
		if got := w.Size(); got != tt.want {
			t.Errorf("Init(%d): Size() = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestWindowZeroValue(t *testing.T) {
	var w Window
	w.Accept(1)
	if got := w.Check(1); got != TooOld {
		t.Errorf("zero Window: Check = %v, want %v (fail closed)", got, TooOld)
	}
	if got := w.Check(2); got != TooOld {
		t.Errorf("zero Window: Check = %v, want %v (fail closed)", got, TooOld)
	}
}

func TestWindowReset(t *testing.T) {
	var w Window
	w.Init(64)
	w.Accept(1000)
	w.Accept(999)
	w.Reset()
	for _, s := range []uint64{0, 999, 1000, 1} {
		if got := w.Check(s); got != Fresh {
			t.Errorf("after Reset: Check(%d) = %v, want Fresh", s, got)
		}
	}
	w.Accept(3)
	if got := w.Check(1000); got != Fresh {
		t.Errorf("after Reset: stale bit for 1000 (same ring slot as 3? %v)", got)
	}
	if got := w.Check(3); got != Duplicate {
		t.Errorf("after Reset and Accept(3): Check(3) = %v", got)
	}
	// Re-Init to a different size reuses or grows the ring and clears it.
	w.Init(4096)
	if got := w.Check(3); got != Fresh {
		t.Errorf("after re-Init: Check(3) = %v", got)
	}
	w.Accept(4095)
	w.Init(64)
	if got := w.Check(4095); got != Fresh {
		t.Errorf("after shrinking re-Init: Check(4095) = %v", got)
	}
}

// TestWindowRandomized compares the window with the map model over 100k
// random operations per size: in-order runs, reordering, duplicates, records
// far behind, jumps of every scale, failed authentication and resets.
func TestWindowRandomized(t *testing.T) {
	for _, size := range []int{64, 128, 1000, 4096} {
		t.Run("", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(size), 42))
			var w Window
			w.Init(size)
			m := newModel(size)
			W := uint64(w.Size())
			var next uint64 // sender's next sequence number
			for i := range 100_000 {
				var seq uint64
				switch r := rng.IntN(100); {
				case r < 50: // in order
					seq = next
					next++
				case r < 75: // reordered or replayed near the edge
					back := rng.Uint64N(W + 70)
					if back > next {
						back = next
					}
					seq = next - back
				case r < 85: // a small gap
					next += rng.Uint64N(3 * wordBits)
					seq = next
					next++
				case r < 90: // a jump of one or more words or rings
					next += wordBits*rng.Uint64N(2*W/wordBits+2) + rng.Uint64N(2)
					seq = next
					next++
				case r < 91: // a huge jump
					next += rng.Uint64N(1 << 40)
					next &= maxSeq >> 1
					seq = next
					next++
				case r < 92:
					w.Reset()
					m.reset()
					continue
				default: // anything near the right edge
					seq = m.top + rng.Uint64N(2*W) - W
					if seq > maxSeq {
						seq = rng.Uint64N(W)
					}
				}
				got, want := w.Check(seq), m.check(seq)
				if got != want {
					t.Fatalf("op %d: Check(%d) = %v, model says %v (top %d)", i, seq, got, want, m.top)
				}
				// Authentication fails for some records; sometimes the
				// caller accepts without checking.
				if (got == Fresh && rng.IntN(10) != 0) || rng.IntN(50) == 0 {
					w.Accept(seq)
					m.accept(seq)
				}
			}
		})
	}
}

func TestWindowAllocs(t *testing.T) {
	var w Window
	w.Init(1024)
	seq := uint64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		for range 10 {
			if w.Check(seq) == Fresh {
				w.Accept(seq)
			}
			w.Check(seq - 3)
			seq += 7
		}
		seq += 1 << 20 // a large jump
		w.Accept(seq)
		w.Reset()
	})
	if allocs != 0 {
		t.Errorf("Check/Accept/Reset allocate %v times per run, want 0", allocs)
	}
}

// FuzzWindow decodes the input as a size selector followed by 3-byte
// operations and compares the window with the map model after each one.
func FuzzWindow(f *testing.F) {
	f.Add([]byte{2, 0, 0, 0, 0, 0, 1, 1, 0, 63, 3, 0, 64})
	f.Add([]byte{6, 0, 0x10, 0, 4, 0xff, 0xff, 2, 0, 1, 1, 0, 1})
	sizes := []int{0, 1, 64, 100, 128, 1000, 4096}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		size := sizes[int(data[0])%len(sizes)]
		data = data[1:]
		var w Window
		w.Init(size)
		m := newModel(size)
		for ; len(data) >= 3; data = data[3:] {
			op, d := data[0], uint64(data[1])<<8|uint64(data[2])
			var seq uint64
			switch op % 8 {
			case 0, 1: // ahead of the edge
				seq = m.top + d
			case 2, 3: // behind the edge
				seq = m.top - min(d, m.top)
			case 4: // a jump in words
				seq = m.top + d*wordBits
			case 5: // a huge jump
				seq = (m.top + d<<24) & maxSeq
			case 6:
				w.Reset()
				m.reset()
				continue
			case 7: // absolute
				seq = d
			}
			got, want := w.Check(seq), m.check(seq)
			if got != want {
				t.Fatalf("Check(%d) = %v, model %v (top %d)", seq, got, want, m.top)
			}
			if op&0x80 == 0 { // high bit: authentication failed
				w.Accept(seq)
				m.accept(seq)
			}
			// Probe the whole neighbourhood of the edge.
			for _, s := range []uint64{m.top, m.top + 1, m.top - 1, m.top - m.size + 1, m.top - m.size, m.top - 64, m.top - 65} {
				if s > m.top+1 { // wrapped below zero
					continue
				}
				if got, want := w.Check(s), m.check(s); got != want {
					t.Fatalf("probe Check(%d) = %v, model %v (top %d)", s, got, want, m.top)
				}
			}
		}
	})
}

func BenchmarkWindowInOrder(b *testing.B) {
	var w Window
	w.Init(64)
	b.ReportAllocs()
	for i := range b.N {
		seq := uint64(i)
		if w.Check(seq) == Fresh {
			w.Accept(seq)
		}
	}
}

func BenchmarkWindowReordered(b *testing.B) {
	var w Window
	w.Init(1024)
	rng := rand.New(rand.NewPCG(1, 2))
	seqs := make([]uint64, 4096)
	for i := range seqs {
		seqs[i] = uint64(i) + rng.Uint64N(512)
	}
	b.ReportAllocs()
	base := uint64(0)
	for i := range b.N {
		j := i % len(seqs)
		if j == 0 {
			base += uint64(len(seqs))
		}
		seq := base + seqs[j]
		if w.Check(seq) == Fresh {
			w.Accept(seq)
		}
	}
}
