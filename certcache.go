package dtls

import (
	"crypto/x509"
	"runtime"
	"sync"
	"weak"
)

// peerCertCache holds the certificates peers presented, parsed, for as
// long as some connection still uses them (as crypto/tls's client does):
// a server's certificate arrives unchanged on every handshake, and parsing
// it is a good part of a client's non-cryptographic handshake work. The
// entries are weak, so the cache holds nothing that no Conn references.
var peerCertCache = struct {
	sync.Mutex
	m map[string]weak.Pointer[x509.Certificate]
}{m: make(map[string]weak.Pointer[x509.Certificate])}

// parsePeerCertificate is x509.ParseCertificate through peerCertCache. The
// result is shared and must not be modified, like ConnectionState's.
func parsePeerCertificate(der []byte) (*x509.Certificate, error) {
	c := &peerCertCache
	c.Lock()
	wp, ok := c.m[string(der)]
	c.Unlock()
	if ok {
		if cert := wp.Value(); cert != nil {
			return cert, nil
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	key, wp := string(der), weak.Make(cert)
	c.Lock()
	c.m[key] = wp
	c.Unlock()
	runtime.AddCleanup(cert, func(key string) {
		c.Lock()
		if c.m[key] == wp {
			delete(c.m, key)
		}
		c.Unlock()
	}, key)
	return cert, nil
}

// intermediatePool returns a pool holding certs, or nil when there are
// none: most chains are one certificate, and an empty pool still costs
// allocations on every handshake.
func intermediatePool(certs []*x509.Certificate) *x509.CertPool {
	if len(certs) == 0 {
		return nil
	}
	p := x509.NewCertPool()
	for _, cert := range certs {
		p.AddCert(cert)
	}
	return p
}
