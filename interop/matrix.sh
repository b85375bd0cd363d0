#!/usr/bin/env bash
# Regenerates ../INTEROP.md, the interop matrix: runs the root package's
# OpenSSL tests, this module's tests and the examples module's CoAP tests
# with -json and renders the cells.
# Exits non-zero if a cell failed (INTEROP.md is still written, with the
# failures listed). Run from anywhere; `go generate` in interop/ runs it.
set -euo pipefail
cd "$(dirname "$0")"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Test failures show up as FAIL cells; don't stop before rendering them.
(cd .. && go test -count=1 -json -run '^(TestOpenSSL|TestGnuTLS)' .) >"$out" || true
go test -count=1 -json ./... >>"$out" || true
status=0
go run ./internal/matrix <"$out" >../INTEROP.md.new || status=$?
if ((status > 1)); then
	rm -f ../INTEROP.md.new
	exit "$status"
fi
# The go-coap section: the examples module's CoAP tests, rendered by its
# own command and appended.
(cd ../examples && go test -count=1 -json -run '^(TestGoCoAP|TestLibCoAP|TestDeviceReboot)$' ./coapdemo/) >"$out" || true
coap=0
(cd ../examples && go run ./internal/coapmatrix) <"$out" >>../INTEROP.md.new || coap=$?
if ((coap > 1)); then
	rm -f ../INTEROP.md.new
	exit "$coap"
fi
if ((coap == 1)); then
	status=1
fi
mv ../INTEROP.md.new ../INTEROP.md
echo "wrote INTEROP.md" >&2
exit "$status"
