// Package bench holds side-by-side benchmarks of dtls-go, pion/dtls v4 and
// v3, and the floors they are measured against (the crypto a handshake
// cannot avoid, raw UDP over loopback). See bench.sh and BENCHMARKS.md.
package bench
