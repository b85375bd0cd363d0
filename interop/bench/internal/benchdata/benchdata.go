// Package benchdata reads the output of the bench package's benchmarks
// (run several times) and formats its figures, for the report and
// report13 commands that write BENCHMARKS.md.
package benchdata

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Samples[benchmark][impl][unit] holds every value of the runs.
type Samples map[string]map[string]map[string][]float64

// Parse reads the lines of file that start with prefix and name a
// sub-benchmark "/impl=…"; a benchmark is keyed by its name after prefix.
// If procs, the GOMAXPROCS of each sample is kept in its impl:
// "dtls-go@2" (-cpu 1,2 runs).
func Parse(file, prefix string, procs bool) (Samples, error) {
	lineRE := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(\w+)/impl=([\w.-]+?)(?:-(\d+))?\s+\d+\s+(.*)$`)
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := Samples{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if procs {
			n := m[3]
			if n == "" {
				n = "1"
			}
			m[2] += "@" + n
		}
		fields := strings.Fields(m[4])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			if s[m[1]] == nil {
				s[m[1]] = map[string]map[string][]float64{}
			}
			if s[m[1]][m[2]] == nil {
				s[m[1]][m[2]] = map[string][]float64{}
			}
			s[m[1]][m[2]][fields[i+1]] = append(s[m[1]][m[2]][fields[i+1]], v)
		}
	}
	return s, sc.Err()
}

// median returns the median of v, NaN if v is empty; it sorts v.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// Med returns the median, NaN without samples.
func (s Samples) Med(bench, impl, unit string) float64 {
	return median(slices.Clone(s[bench][impl][unit]))
}

// N returns the number of samples.
func (s Samples) N(bench, impl, unit string) int { return len(s[bench][impl][unit]) }

// Spread returns the smallest and largest sample, NaN without samples.
func (s Samples) Spread(bench, impl, unit string) (lo, hi float64) {
	v := s[bench][impl][unit]
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(v), slices.Max(v)
}

// Ratio is the median over the runs of a/b, a of impl ia and b of impl
// ib in the same run: the implementations of a row are timed back to
// back in each run, so on a machine whose load changes between runs
// their ratio in one run is steadier than the ratio of the medians
// (which it falls back to if the runs do not pair up).
func (s Samples) Ratio(bench, ia, ib, unit string) float64 {
	a, b := s[bench][ia][unit], s[bench][ib][unit]
	if len(a) != len(b) || len(a) == 0 {
		return s.Med(bench, ia, unit) / s.Med(bench, ib, unit)
	}
	r := make([]float64, len(a))
	for i := range a {
		r[i] = a[i] / b[i]
	}
	return median(r)
}

// Dur formats nanoseconds, "—" for NaN.
func Dur(ns float64) string {
	if math.IsNaN(ns) {
		return "—"
	}
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

// Num formats v followed by unit: whole numbers without decimals, others
// with one; bytes ("B") in KB from 1024 up; "—" for NaN.
func Num(v float64, unit string) string {
	if math.IsNaN(v) {
		return "—"
	}
	switch {
	case unit == "B" && v >= 1024:
		return fmt.Sprintf("%.1f KB", v/1024)
	case unit == "B":
		return fmt.Sprintf("%.0f B", v)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f%s", v, unit)
	}
	return fmt.Sprintf("%.1f%s", v, unit)
}

// Yes formats whether a goal is met.
func Yes(ok bool) string {
	if ok {
		return "**met**"
	}
	return "not met"
}
