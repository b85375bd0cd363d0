package dtls

import (
	"runtime"
	"testing"
	"time"
)

func TestPeerCertCache(t *testing.T) {
	der := certs(t)["p256"].tls.Certificate[0]
	a, err := parsePeerCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parsePeerCertificate(der)
	if err != nil || a != b {
		t.Fatalf("second parse: %p, %v; want the cached %p", b, err, a)
	}
	if _, err := parsePeerCertificate(der[:len(der)-1]); err == nil {
		t.Fatal("truncated certificate parsed")
	}
	a, b = nil, nil
	// Once no one holds the certificate, its entry goes. The chain
	// verifications other tests cached hold theirs: let them go first.
	verifiedChainCache.Lock()
	clear(verifiedChainCache.m)
	verifiedChainCache.Unlock()
	for deadline := time.Now().Add(5 * time.Second); ; {
		runtime.GC()
		peerCertCache.Lock()
		_, ok := peerCertCache.m[string(der)]
		peerCertCache.Unlock()
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cache entry outlived its certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
