// Package interop holds the interoperability tests of github.com/dtls-go/dtls
// against other DTLS 1.2 implementations: pion/dtls v3 and v4 in process,
// and OpenSSL, GnuTLS, mbedTLS (a small C peer built at test time, and
// mbedTLS's own ssl_client2/ssl_server2, which ../.ci/mbedtls-programs
// builds), wolfSSL (another small C peer) and libcoap as processes; the root package has more OpenSSL
// tests. conformance_test.go holds the cases other implementations' tools
// found: P-384 certificates, renegotiation refused, a fragmented
// ClientHello. It is a module of its own so that the library's go.mod never
// requires pion.
//
// matrix.sh runs all of them and renders INTEROP.md; see that file for the
// conventions test names follow (Test<Peer>/<our role>/<feature>).
package interop

//go:generate ./matrix.sh
