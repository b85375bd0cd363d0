// Package replay implements the anti-replay sliding window of RFC 6347
// §4.1.2.6 (borrowed from RFC 4303 §3.4.3) over 48-bit DTLS record sequence
// numbers.
//
// The window is a ring of 64-bit words in the style of RFC 6479: advancing
// the right edge clears whole words instead of shifting a bitmap, so a
// record costs O(1) work for a small jump and at most one pass over the ring
// for a large one, and nothing is allocated after Init.
package replay

// MaxSize is the largest window Init accepts, in records. Larger requests
// are clamped: the window costs one bit per record, and 4096 records
// (520 bytes) already absorbs far more reordering than a UDP path produces.
const MaxSize = 4096

// wordBits is the number of sequence numbers one ring word tracks.
const wordBits = 64

// Result is the verdict of Check on a record's sequence number.
type Result uint8

const (
	// Fresh: the record is to the right of the window, or inside it and
	// not seen yet. Authenticate it, then Accept it.
	Fresh Result = iota
	// Duplicate: a record with this sequence number was already accepted.
	Duplicate
	// TooOld: the sequence number is left of the window; whether it was
	// seen is no longer known, so it must be treated as a replay.
	TooOld
)

func (r Result) String() string {
	switch r {
	case Fresh:
		return "fresh"
	case Duplicate:
		return "duplicate"
	case TooOld:
		return "too old"
	}
	return "unknown"
}

// Window is an anti-replay sliding window over 48-bit record sequence
// numbers (RFC 6347 §4.1.2.6). Its right edge is the highest sequence
// number accepted so far; a window of size W remembers the W sequence
// numbers ending there.
//
// The zero value is not usable until Init: until then Check reports every
// record TooOld, so a forgotten Init fails loudly instead of silently
// turning replay protection off. A Window is not safe for concurrent use.
type Window struct {
	// ring holds size/64+1 words. Bit (s % 64) of word (s/64) % len(ring)
	// is set when s was accepted. The one extra word lets the window span
	// exactly size sequence numbers whatever the alignment of its right
	// edge, because size consecutive numbers touch at most size/64+1 words.
	ring        []uint64
	size        uint64 // window width in records; 0 means disabled
	top         uint64 // highest accepted sequence number, valid if started
	started     bool   // at least one record was accepted since Init/Reset
	initialized bool
}

// Init prepares the window for size records, rounded up to a multiple of
// 64 and clamped to MaxSize. size <= 0 disables the window: Check then
// always returns Fresh. Init may be called again to resize; it resets the
// window and reuses the ring when it is large enough.
func (w *Window) Init(size int) {
	w.initialized = true
	w.started = false
	w.top = 0
	if size <= 0 {
		w.size = 0
		w.ring = w.ring[:0]
		return
	}
	if size > MaxSize {
		size = MaxSize
	}
	words := (size + wordBits - 1) / wordBits
	w.size = uint64(words * wordBits)
	n := words + 1
	if cap(w.ring) >= n {
		w.ring = w.ring[:n]
		clear(w.ring)
	} else {
		w.ring = make([]uint64, n)
	}
}

// Size returns the window width in records after rounding, 0 when the
// window is disabled.
func (w *Window) Size() int { return int(w.size) }

// Reset forgets every accepted sequence number, as for a new epoch, keeping
// the size chosen by Init.
func (w *Window) Reset() {
	w.started = false
	w.top = 0
	clear(w.ring)
}

// Check reports whether a record with sequence number seq may be
// processed. It does not modify the window: call it before authenticating
// the record, and call Accept only once the record authenticated, so that
// forged records cannot move the window (RFC 6347 §4.1.2.6).
func (w *Window) Check(seq uint64) Result {
	if !w.initialized {
		return TooOld
	}
	if w.size == 0 || !w.started || seq > w.top {
		return Fresh
	}
	if w.top-seq >= w.size {
		return TooOld
	}
	if w.ring[w.word(seq)]&(1<<(seq%wordBits)) != 0 {
		return Duplicate
	}
	return Fresh
}

// Accept marks seq as seen and, if it is right of the window, slides the
// window to end at seq. Call it only after the record authenticated.
// Accepting a sequence number that Check would not call Fresh changes
// nothing.
func (w *Window) Accept(seq uint64) {
	if !w.initialized || w.size == 0 {
		return
	}
	switch {
	case !w.started:
		// The ring is all zero after Init and Reset.
		w.started = true
		w.top = seq
	case seq > w.top:
		// Clear the words that enter the window between the old and the
		// new right edge. A jump of a whole ring or more clears it all.
		from, to := w.top/wordBits, seq/wordBits
		if to-from >= uint64(len(w.ring)) {
			clear(w.ring)
		} else {
			for i := from + 1; i <= to; i++ {
				w.ring[i%uint64(len(w.ring))] = 0
			}
		}
		w.top = seq
	case w.top-seq >= w.size:
		return // TooOld: outside the window, nothing to record
	}
	w.ring[w.word(seq)] |= 1 << (seq % wordBits)
}

func (w *Window) word(seq uint64) uint64 {
	return (seq / wordBits) % uint64(len(w.ring))
}
