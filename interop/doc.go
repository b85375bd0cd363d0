// Package interop holds the interoperability tests of github.com/dtls-go/dtls
// against other DTLS 1.2 implementations: pion/dtls v3 and v4 in process,
// and GnuTLS, mbedTLS (a small C peer built at test time) and libcoap as
// processes. The OpenSSL tests live in the root package. It is a module of
// its own so that the library's go.mod never requires pion.
//
// matrix.sh runs all of them and renders INTEROP.md; see that file for the
// conventions test names follow (Test<Peer>/<our role>/<feature>).
package interop

//go:generate ./matrix.sh
