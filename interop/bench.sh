#!/bin/sh
# bench.sh runs the side-by-side benchmarks of interop/bench (dtls-go, pion/dtls
# v4 and v3, and their floors) COUNT times, summarises them with benchstat and
# writes ../BENCHMARKS.md. Each repetition runs every benchmark once, so the
# implementations and floors of a row are timed back to back, interleaved
# with the other repetitions: on a shared machine that is what keeps ratios
# honest.
#
#	COUNT=6 BENCHTIME=1s ./bench.sh
set -u
cd "$(dirname "$0")"
COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/bench.test" ./bench
for i in $(seq "$COUNT"); do
	echo "run $i of $COUNT" >&2
	"$tmp/bench.test" -test.run '^$' -test.bench 'Handshake(ECDSA|PSK)|Echo|OneWay' -test.benchtime "$BENCHTIME" >>"$tmp/bench.txt"
	# A concurrency iteration is a burst of 1 to 512 handshakes, by clients
	# in a child process: more bursts where they are short.
	"$tmp/bench.test" -test.run '^$' -test.bench 'Concurrent(1|16)$' -test.benchtime 20x >>"$tmp/bench.txt"
	"$tmp/bench.test" -test.run '^$' -test.bench 'Concurrent(128|512)$' -test.benchtime 3x >>"$tmp/bench.txt"
	# The idle measurement opens 1000 connections whatever b.N is.
	"$tmp/bench.test" -test.run '^$' -test.bench 'IdleConn' -test.benchtime 1x >>"$tmp/bench.txt"
	# Scaling across cores: the same benchmarks at GOMAXPROCS 1 and 2,
	# back to back, the load in a child process (multicore_test.go).
	"$tmp/bench.test" -test.run '^$' -test.bench 'Receive|HandshakeCPU' -test.cpu 1,2 >>"$tmp/multicore.txt"
done
go run golang.org/x/perf/cmd/benchstat@latest -col /impl "$tmp/bench.txt" >"$tmp/benchstat.txt"
go run ./bench/report -in "$tmp/bench.txt" -benchstat "$tmp/benchstat.txt" -multicore "$tmp/multicore.txt" -notes bench/notes.md -out ../BENCHMARKS.md
cp "$tmp/bench.txt" bench/last-run.txt
cp "$tmp/multicore.txt" bench/last-run-multicore.txt
echo "wrote ../BENCHMARKS.md and bench/last-run.txt" >&2

# DTLS 1.3 (bench/bench13_test.go): dtls-go against pion v4, both pinned to
# 1.3, COUNT interleaved runs, and TestRoundTrips13 for the hybrid group's
# round trips; appended to ../BENCHMARKS.md as its "DTLS 1.3" section.
bench13() {
	go test -c -o "$tmp/bench13.test" ./bench
	for i in $(seq "$COUNT"); do
		echo "DTLS 1.3 run $i of $COUNT" >&2
		"$tmp/bench13.test" -test.run '^$' -test.bench '^BenchmarkDTLS13' -test.benchtime "$BENCHTIME" >>"$tmp/bench13.txt"
	done
	"$tmp/bench13.test" -test.run '^TestRoundTrips13$' -test.v >"$tmp/roundtrips13.txt" 2>&1
	go run ./bench/report13 -in "$tmp/bench13.txt" -roundtrips "$tmp/roundtrips13.txt" -notes bench/notes13.md >>../BENCHMARKS.md
	cat "$tmp/bench13.txt" "$tmp/roundtrips13.txt" >bench/last-run13.txt
	echo "appended the DTLS 1.3 section to ../BENCHMARKS.md; raw output in bench/last-run13.txt" >&2
}
bench13
