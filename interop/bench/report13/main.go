// Command report13 turns the output of the bench package's DTLS 1.3
// benchmarks (BenchmarkDTLS13*, run several times) and of TestRoundTrips13
// (-test.v) into the "DTLS 1.3" section of BENCHMARKS.md, written to
// standard output: medians of each figure, dtls-go beside pion/dtls v4 and
// the floors, the ratios and whether each goal is met.
//
//	go run ./bench/report13 -in bench13.txt -roundtrips roundtrips13.txt -notes bench/notes13.md >>../BENCHMARKS.md
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"regexp"
	"strings"

	"github.com/dtls-go/dtls/interop/bench/internal/benchdata"
)

type samples = benchdata.Samples

var (
	dur = benchdata.Dur
	yes = benchdata.Yes
)

func parse(file string) (samples, error) { return benchdata.Parse(file, "BenchmarkDTLS13", false) }

// num formats a count: no decimals if whole, one otherwise.
func num(v float64) string { return benchdata.Num(v, "") }

func kb(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.1f KB", v/1024)
}

// roundTrips reads TestRoundTrips13's -test.v output: for each pair of
// client and server, the flights of an X25519 and of an X25519MLKEM768
// handshake, and whether the test passed.
type roundTrips struct {
	pairs  []string
	x, h   map[string]int // flights per pair
	passed bool
	found  bool
}

var (
	runRE    = regexp.MustCompile(`^=== RUN\s+TestRoundTrips13/(\S+)$`)
	flightRE = regexp.MustCompile(`roundtrip13_test\.go:\d+: (X25519|X25519MLKEM768): \[(.*)\]$`)
)

func parseRoundTrips(file string) (roundTrips, error) {
	rt := roundTrips{x: map[string]int{}, h: map[string]int{}}
	if file == "" {
		return rt, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return rt, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	pair := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := runRE.FindStringSubmatch(line); m != nil {
			pair = m[1]
			rt.pairs = append(rt.pairs, pair)
			continue
		}
		if m := flightRE.FindStringSubmatch(line); m != nil && pair != "" {
			n := strings.Count(m[2], "{")
			if m[1] == "X25519" {
				rt.x[pair] = n
			} else {
				rt.h[pair] = n
			}
			continue
		}
		if strings.HasPrefix(line, "--- PASS: TestRoundTrips13 ") {
			rt.passed, rt.found = true, true
		}
		if strings.HasPrefix(line, "--- FAIL: TestRoundTrips13 ") {
			rt.found = true
		}
	}
	return rt, sc.Err()
}

// same reports whether every pair took as many flights with the hybrid
// group as with X25519, and describes it.
func (rt roundTrips) same() (bool, string) {
	if !rt.found || len(rt.pairs) == 0 {
		return false, "round trips not checked (no TestRoundTrips13 output)"
	}
	ok := rt.passed
	var parts []string
	for _, p := range rt.pairs {
		if rt.x[p] != rt.h[p] || rt.x[p] == 0 {
			ok = false
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d", p, rt.x[p], rt.h[p]))
	}
	if !ok {
		return false, "flights, both ways, X25519/hybrid, client-to-server: " + strings.Join(parts, ", ")
	}
	return true, fmt.Sprintf("checked: %d flights, both ways, with either group, for all %d client/server pairs, the first answered by the cookie's HelloRetryRequest",
		rt.x[rt.pairs[0]], len(rt.pairs))
}

func main() {
	in := flag.String("in", "bench13.txt", "raw go test -bench output of the BenchmarkDTLS13 benchmarks")
	rtFile := flag.String("roundtrips", "", "go test -v output of TestRoundTrips13")
	notes := flag.String("notes", "", "hand-written notes (Markdown) to include after the table")
	flag.Parse()
	s, err := parse(*in)
	if err != nil {
		log.Fatal(err)
	}
	rt, err := parseRoundTrips(*rtFile)
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }

	runs := len(s["FullECDSA"]["dtls-go"]["ns/op"])
	p("\n## DTLS 1.3\n\n")
	p("dtls-go and pion/dtls v4, both pinned to DTLS 1.3 (RFC 9147), TLS_AES_128_GCM_SHA256, in the same run\n")
	p("(%d runs of each benchmark; figures are medians, ratios the median of the ratios within each run;\n", runs)
	p("benchmarks `BenchmarkDTLS13*` in `interop/bench/bench13_test.go`),\n")
	p("with the certificate and PSK of the rows above. Both servers make the cookie exchange: a\n")
	p("HelloRetryRequest answers every first ClientHello, so a handshake is two round trips before the\n")
	p("client's Finished. Each handshake row's floor is every public-key operation both ends must make, plus\n")
	p("two UDP round trips of 100-byte datagrams; it leaves out the key schedule, transcript hashes, record\n")
	p("protection, the real datagram sizes, per-connection setup and allocation (`handshakeFloor13`).\n\n")
	p("| what | dtls-go | pion v4 | floor | dtls-go / floor | dtls-go vs pion v4 | goal | met? |\n")
	p("|---|---|---|---|---|---|---|---|\n")

	// handshake writes a handshake row; note follows dtls-go's figures,
	// met says whether the goal is met given how many times faster than
	// pion v4 dtls-go is.
	handshake := func(bench, what, note, floor, goal string, met func(faster float64) string) {
		o, v4 := s.Med(bench, "dtls-go", "ns/op"), s.Med(bench, "pion-v4", "ns/op")
		oa, v4a := s.Med(bench, "dtls-go", "allocs/op"), s.Med(bench, "pion-v4", "allocs/op")
		ob, v4b := s.Med(bench, "dtls-go", "B/op"), s.Med(bench, "pion-v4", "B/op")
		fl := s.Med(bench, "floor", "ns/op")
		faster := s.Ratio(bench, "pion-v4", "dtls-go", "ns/op")
		p("| %s | %s, %s allocs, %s%s | %s, %s allocs, %s | %s (%s) | %.2f× (pion v4 %.2f×) | %.2f× faster, %.1f× fewer allocs | %s | %s |\n",
			what, dur(o), num(oa), kb(ob), note, dur(v4), num(v4a), kb(v4b), dur(fl), floor,
			s.Ratio(bench, "dtls-go", "floor", "ns/op"), s.Ratio(bench, "pion-v4", "floor", "ns/op"), faster, v4a/oa, goal, met(faster))
	}
	twice := func(faster float64) string { return yes(faster >= 2) }
	handshake("FullECDSA", "ECDHE-ECDSA handshake (P-256 cert, X25519, cookie HelloRetryRequest)", "",
		"sign + verify + X25519 keygen×2, ECDH×2 + 2 UDP round trips", "≥ 2× pion", twice)
	handshake("FullPSK", "PSK handshake, external PSK, psk_dhe_ke (X25519); pion's client offers psk_dhe_ke only", "",
		"X25519 keygen×2, ECDH×2 + 2 UDP round trips", "≥ 2× pion", twice)
	// The hybrid row also states its cost over X25519 and the round trips.
	same, how := rt.same()
	handshake("FullHybrid", "hybrid X25519MLKEM768 handshake (P-256 cert; the servers ask for the group in the cookie's HelloRetryRequest)",
		" (+"+dur(s.Med("FullHybrid", "dtls-go", "ns/op")-s.Med("FullECDSA", "dtls-go", "ns/op"))+" over X25519)",
		"as ECDSA + X25519 keygen for the first ClientHello + ML-KEM-768 keygen, encaps, decaps",
		"≥ 2× pion, no extra round trip ("+how+")", func(faster float64) string { return yes(faster >= 2 && same) })
	handshake("Resume", "resumed handshake (1.3 ticket from NewSessionTicket as a psk_dhe_ke PSK, X25519); every timed handshake checked to resume", "",
		"X25519 keygen×2, ECDH×2 + 2 UDP round trips", "— (issue 13: a row)", func(float64) string { return "—" })

	// Records one way.
	{
		const bench = "Records1000"
		o, v4 := s.Med(bench, "dtls-go", "delivered-MB/s"), s.Med(bench, "pion-v4", "delivered-MB/s")
		_, oa := s.Spread(bench, "dtls-go", "allocs/op") // the largest of the runs
		v4a := s.Med(bench, "pion-v4", "allocs/op")
		od, v4d := s.Med(bench, "dtls-go", "%delivered"), s.Med(bench, "pion-v4", "%delivered")
		fl := s.Med(bench, "floor-udp", "delivered-MB/s")
		p("| 1000-byte records one way, delivered at the receiver (AES-128-GCM) | %.0f MB/s, %s allocs/record (largest of the runs), %.0f%% delivered | %.0f MB/s, %s allocs, %.0f%% | %.0f MB/s raw UDP | %.0f%% of raw UDP (pion v4 %.0f%%) | %.2f× | 0 allocs | %s |\n",
			o, num(oa), od, v4, num(v4a), v4d, fl, 100*s.Ratio(bench, "dtls-go", "floor-udp", "delivered-MB/s"),
			100*s.Ratio(bench, "pion-v4", "floor-udp", "delivered-MB/s"), s.Ratio(bench, "dtls-go", "pion-v4", "delivered-MB/s"), yes(oa == 0))
	}
	// Echo.
	{
		const bench = "RoundTrip100"
		o, v4 := s.Med(bench, "dtls-go", "ns/op"), s.Med(bench, "pion-v4", "ns/op")
		_, oa := s.Spread(bench, "dtls-go", "allocs/op") // the largest of the runs
		v4a := s.Med(bench, "pion-v4", "allocs/op")
		fl := s.Med(bench, "floor-udp", "ns/op")
		p("| 100-byte echo round trip | %s, %s allocs (largest of the runs) | %s, %s allocs | %s (UDP round trip) | %.2f× (pion v4 %.2f×) | %.2f× faster | 0 allocs | %s |\n",
			dur(o), num(oa), dur(v4), num(v4a), dur(fl), s.Ratio(bench, "dtls-go", "floor-udp", "ns/op"),
			s.Ratio(bench, "pion-v4", "floor-udp", "ns/op"), s.Ratio(bench, "pion-v4", "dtls-go", "ns/op"), yes(oa == 0))
	}
	p("\n")
	if *notes != "" {
		b, err := os.ReadFile(*notes)
		if err != nil {
			log.Fatal(err)
		}
		p("%s", b)
	}
}
