package dtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dtls-go/dtls/internal/dtlstest"
)

// cachedEntry returns verifiedChainCache's entry for the arguments, or nil.
func cachedEntry(certs []*x509.Certificate, roots *x509.CertPool, dnsName string, clientAuth bool) *verifiedChainEntry {
	c := &verifiedChainCache
	c.Lock()
	defer c.Unlock()
	return c.m[verifiedChainKey{roots: roots, dnsName: dnsName, clientAuth: clientAuth, chain: chainDigest(certs)}]
}

// TestVerifyChainCache checks that a cached success is used only for the
// same chain, roots, name and key usage, and only within the validity of
// every certificate in its chains, including the CA's.
func TestVerifyChainCache(t *testing.T) {
	if !verifyCacheable(x509.NewCertPool()) {
		t.Skip("the verification cache is off on this platform")
	}
	day := 24 * time.Hour
	caStart := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	caEnd := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ca := dtlstest.NewCA(t, dtlstest.Spec{Serial: 51, NotBefore: caStart, NotAfter: caEnd})
	// The leaf starts after the CA and outlives it: the window is the
	// leaf's start to the CA's end.
	leaf := ca.Issue(t, dtlstest.Spec{Serial: 52, NotBefore: caStart.Add(day), NotAfter: caEnd.Add(365 * day),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	certs := []*x509.Certificate{leaf.Leaf}
	now := caStart.Add(100 * day)

	chains, err := verifyChain(certs, ca.Pool, "dtls.test", false, now)
	if err != nil || len(chains) != 1 || len(chains[0]) != 2 {
		t.Fatalf("first verification: %d chains, %v", len(chains), err)
	}
	e := cachedEntry(certs, ca.Pool, "dtls.test", false)
	if e == nil {
		t.Fatal("a success was not cached")
	}
	if !e.notBefore.Equal(leaf.Leaf.NotBefore) || !e.notAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("window %v to %v, want the leaf's start %v to the CA's end %v", e.notBefore, e.notAfter, leaf.Leaf.NotBefore, ca.Cert.NotAfter)
	}
	// What a caller gets is its own: changing it leaves the entry alone.
	chains[0][0] = nil
	chains[0] = append(chains[0], ca.Cert)
	again, err := verifyChain(certs, ca.Pool, "dtls.test", false, now)
	if err != nil || len(again) != 1 || len(again[0]) != 2 || again[0][0] != leaf.Leaf || again[0][1] != ca.Cert {
		t.Fatalf("cached verification: %v, %v", again, err)
	}

	otherCA := dtlstest.NewCA(t, dtlstest.Spec{Serial: 53})
	for _, tc := range []struct {
		name       string
		roots      *x509.CertPool
		dnsName    string
		clientAuth bool
		now        time.Time
	}{
		{"other name", ca.Pool, "other.test", false, now},
		{"other roots", otherCA.Pool, "dtls.test", false, now},
		{"client auth", ca.Pool, "", true, now},
		{"before the leaf", ca.Pool, "dtls.test", false, leaf.Leaf.NotBefore.Add(-time.Second)},
		{"after the CA", ca.Pool, "dtls.test", false, ca.Cert.NotAfter.Add(time.Second)},
	} {
		if chains, err := verifyChain(certs, tc.roots, tc.dnsName, tc.clientAuth, tc.now); err == nil {
			t.Errorf("%s: verified, %d chains", tc.name, len(chains))
		}
	}
	if cachedEntry(certs, ca.Pool, "dtls.test", false) != nil {
		t.Error("an entry used outside its window was kept")
	}
	if cachedEntry(certs, ca.Pool, "", true) != nil || cachedEntry(certs, otherCA.Pool, "dtls.test", false) != nil {
		t.Error("a failure was cached")
	}
	// The bounds are inclusive, as Verify's own.
	for _, at := range []time.Time{leaf.Leaf.NotBefore, ca.Cert.NotAfter} {
		if _, err := verifyChain(certs, ca.Pool, "dtls.test", false, at); err != nil {
			t.Errorf("at %v: %v", at, err)
		}
		if _, err := verifyChain(certs, ca.Pool, "dtls.test", false, at); err != nil {
			t.Errorf("cached, at %v: %v", at, err)
		}
	}
	// No roots means the system's: never cached.
	if _, err := verifyChain(certs, nil, "dtls.test", false, now); err == nil {
		t.Error("verified against the system roots")
	}
	if cachedEntry(certs, nil, "dtls.test", false) != nil {
		t.Error("a verification against the system roots was cached")
	}
}

// TestVerifyChainCacheBound fills the cache past maxVerifiedChains.
func TestVerifyChainCacheBound(t *testing.T) {
	if !verifyCacheable(x509.NewCertPool()) {
		t.Skip("the verification cache is off on this platform")
	}
	ca := dtlstest.NewCA(t, dtlstest.Spec{Serial: 54})
	key := dtlstest.NewKey(t, dtlstest.P256)
	for i := range maxVerifiedChains + 8 {
		leaf := ca.Issue(t, dtlstest.Spec{Serial: int64(100 + i), Key: key})
		if _, err := verifyChain([]*x509.Certificate{leaf.Leaf}, ca.Pool, "dtls.test", false, time.Now()); err != nil {
			t.Fatal(err)
		}
		verifiedChainCache.Lock()
		n := len(verifiedChainCache.m)
		verifiedChainCache.Unlock()
		if n > maxVerifiedChains {
			t.Fatalf("%d entries after %d verifications", n, i+1)
		}
	}
}

// TestVerifyChainCacheCallbacks: the callbacks run on every handshake,
// when the chain's verification comes from the cache too, and still
// refuse; a failed verification is not cached, so adding the root to the
// pool afterwards lets the same chain through.
func TestVerifyChainCacheCallbacks(t *testing.T) {
	checkNoGoroutineLeak(t)
	ca := dtlstest.NewCA(t, dtlstest.Spec{Serial: 55})
	leaf := ca.Issue(t, dtlstest.Spec{Serial: 56})
	for _, vers := range []uint16{VersionDTLS12, VersionDTLS13} {
		t.Run(fmt.Sprintf("%x", vers), func(t *testing.T) {
			var peerCalls, connCalls int
			var refuse bool
			errRefused := errors.New("refused by the callback")
			pool := x509.NewCertPool()
			cc := &Config{RootCAs: pool, ServerName: "dtls.test", MinVersion: vers, MaxVersion: vers,
				VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
					peerCalls++
					if len(chains) != 1 || len(chains[0]) != 2 {
						return fmt.Errorf("%d verified chains", len(chains))
					}
					return nil
				},
				VerifyConnection: func(cs ConnectionState) error {
					connCalls++
					if refuse {
						return errRefused
					}
					return nil
				}}
			sc := &Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: vers, MaxVersion: vers}
			handshake := func() error {
				cli, srv := connectedPair(t, cc, sc)
				defer cli.Close()
				defer srv.Close()
				errc := make(chan error, 1)
				go func() { errc <- srv.Handshake() }()
				cli.SetDeadline(time.Now().Add(10 * time.Second))
				srv.SetDeadline(time.Now().Add(10 * time.Second))
				err := cli.Handshake()
				if err != nil {
					cli.Close()
					srv.Close()
				}
				<-errc
				return err
			}
			// The pool lacks the CA: refused, and not cached.
			if err := handshake(); err == nil {
				t.Fatal("handshake without the root succeeded")
			}
			pool.AddCert(ca.Cert)
			for i := range 3 {
				if err := handshake(); err != nil {
					t.Fatalf("handshake %d: %v", i, err)
				}
			}
			if peerCalls != 3 || connCalls != 3 {
				t.Errorf("VerifyPeerCertificate called %d times, VerifyConnection %d, want 3 each", peerCalls, connCalls)
			}
			refuse = true
			if err := handshake(); !errors.Is(err, errRefused) {
				t.Errorf("refusing VerifyConnection after cached verifications: %v", err)
			}
		})
	}
}
