// Package replay: placeholder until the real implementation lands.
package replay

type Window struct {
	size int
	seen map[uint64]bool
	max  uint64
	any  bool
}

type Result uint8

const (
	Fresh Result = iota
	Duplicate
	TooOld
)

func (w *Window) Init(size int) { w.size = size; w.seen = map[uint64]bool{}; w.any = false; w.max = 0 }
func (w *Window) Check(seq uint64) Result {
	if w.size <= 0 {
		return Fresh
	}
	if w.any && seq+uint64(w.size) <= w.max {
		return TooOld
	}
	if w.seen[seq] {
		return Duplicate
	}
	return Fresh
}
func (w *Window) Accept(seq uint64) {
	if w.size <= 0 {
		return
	}
	w.seen[seq] = true
	if !w.any || seq > w.max {
		w.max = seq
	}
	w.any = true
}
func (w *Window) Reset() { w.Init(w.size) }
