package dtls

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"runtime"
	"sync"
	"time"
)

// maxVerifiedChains bounds verifiedChainCache: how many distinct peer
// chains keep their verification result. A client talking to a few
// servers, or a server whose clients share a few certificates, hits it on
// every handshake; an entry holds its chains' parsed certificates (a few
// kilobytes), so the bound caps the cache near a megabyte whatever peers
// present.
const maxVerifiedChains = 64

// verifiedChainCache holds successful x509 chain verifications, so that
// a handshake with a peer whose chain was verified before skips
// buildChains and its signature checks (in a profile of a client's
// handshake with a CA-issued leaf, x509's Verify was about 8% of the
// handshake's CPU, an ECDSA verification per certificate in the chain).
//
// Why a cached success is the answer Verify would give now: Verify's
// result is a function of the chain, the options and the time. The key
// holds every option that we set, by value or identity:
//
//   - the chain: a SHA-256 of every certificate's DER, in order, leaf
//     first. The intermediates pool is built from that chain alone, so it
//     is covered too.
//   - the roots: the *x509.CertPool pointer. A CertPool can only grow
//     (it has AddCert, AppendCertsFromPEM and AddCertWithConstraint, no
//     way to remove one), and a chain that verifies against a pool still
//     does against a superset: the path found is still there. A Config
//     whose RootCAs or ClientCAs is replaced by another pool has another
//     key, and the entry for the old pool is never used for it. The
//     key's pointer keeps the pool alive, so its address is never reused
//     while an entry names it.
//   - DNSName (the client's ServerName; empty when a server verifies a
//     client) and the key usage asked for (server or client auth).
//   - the time: an entry is used only while now is within every returned
//     chain's certificates' validity (the latest NotBefore to the earliest
//     NotAfter, with Verify's own inclusive bounds), and is removed when
//     found outside it. Within that window each chain returned is still
//     valid at now, so Verify would succeed. A chain that failed only on
//     time when the entry was made (a second path through a certificate
//     not yet valid) may be valid now; a fresh Verify could then return
//     more chains than the cached answer. VerifiedChains may lack such a
//     later-valid path; the verdict is the same.
//
// One input is not in the key: a constraint given to
// CertPool.AddCertWithConstraint is a function, and it is taken to depend
// on the chain alone, as those of Go's own root store do (a distrust
// after a date, checked against the chain's NotBefore). A constraint that
// consults state which changes (a revocation list) is not re-run for a
// chain whose success is cached; such a check belongs in
// VerifyPeerCertificate or VerifyConnection, which run every time.
//
// Only successes are cached: a failure is verified again each time, so a
// chain that fails and is later fixed by the user adding a root (the pool
// grows) is accepted, and no input from the network can fill the cache
// with anything that did not verify. Verify is not cached where the
// platform verifies rather than Go: with no roots (the system's), or on
// the systems whose verifier Go calls for system pools (Darwin, iOS and
// Windows), whose answers follow the system's trust settings and may
// check revocation online, and change without our pointer changing.
//
// Config.VerifyPeerCertificate and VerifyConnection are not part of this:
// they run on every handshake, after the chain check, cached or not.
// Callers get a copy of the chains' slices (the certificates themselves
// are shared and must not be modified, as ConnectionState's always were).
var verifiedChainCache = struct {
	sync.Mutex
	m map[verifiedChainKey]*verifiedChainEntry
}{m: make(map[verifiedChainKey]*verifiedChainEntry)}

type verifiedChainKey struct {
	roots      *x509.CertPool
	dnsName    string
	clientAuth bool
	chain      [sha256.Size]byte
}

type verifiedChainEntry struct {
	chains              [][]*x509.Certificate
	notBefore, notAfter time.Time
}

// verifyCacheable reports whether Verify's answer for roots may be
// cached: see verifiedChainCache.
func verifyCacheable(roots *x509.CertPool) bool {
	if roots == nil {
		return false
	}
	switch runtime.GOOS {
	case "darwin", "ios", "windows":
		return false
	}
	return true
}

// verifyChain verifies certs (leaf first, the rest as intermediates)
// against roots at now, for dnsName (none if empty) and for server or
// client authentication, through verifiedChainCache.
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, dnsName string, clientAuth bool, now time.Time) ([][]*x509.Certificate, error) {
	verify := func() ([][]*x509.Certificate, error) {
		// The options, and the intermediates' pool, only when Verify
		// runs: a cache hit needs neither.
		opts := x509.VerifyOptions{
			Roots:         roots,
			CurrentTime:   now,
			DNSName:       dnsName,
			Intermediates: intermediatePool(certs[1:]),
		}
		if clientAuth {
			opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		return certs[0].Verify(opts)
	}
	if !verifyCacheable(roots) {
		return verify()
	}
	key := verifiedChainKey{roots: roots, dnsName: dnsName, clientAuth: clientAuth, chain: chainDigest(certs)}
	cache := &verifiedChainCache
	cache.Lock()
	if e, ok := cache.m[key]; ok {
		if !now.Before(e.notBefore) && !now.After(e.notAfter) {
			chains := cloneChains(e.chains)
			cache.Unlock()
			return chains, nil
		}
		delete(cache.m, key)
	}
	cache.Unlock()
	chains, err := verify()
	if err != nil {
		return nil, err
	}
	e := &verifiedChainEntry{chains: cloneChains(chains)}
	for i, chain := range chains {
		for j, cert := range chain {
			if (i == 0 && j == 0) || cert.NotBefore.After(e.notBefore) {
				e.notBefore = cert.NotBefore
			}
			if (i == 0 && j == 0) || cert.NotAfter.Before(e.notAfter) {
				e.notAfter = cert.NotAfter
			}
		}
	}
	cache.Lock()
	if _, ok := cache.m[key]; !ok && len(cache.m) >= maxVerifiedChains {
		for k := range cache.m { // map order: an arbitrary entry goes
			delete(cache.m, k)
			break
		}
	}
	cache.m[key] = e
	cache.Unlock()
	return chains, nil
}

// chainDigest is SHA-256 over each certificate's DER with its length
// before it, so that no two chains share an input.
func chainDigest(certs []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	for _, cert := range certs {
		binary.BigEndian.PutUint32(n[:], uint32(len(cert.Raw)))
		h.Write(n[:])
		h.Write(cert.Raw)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// cloneChains copies the slices of chains, not the certificates.
func cloneChains(chains [][]*x509.Certificate) [][]*x509.Certificate {
	n := 0
	for _, chain := range chains {
		n += len(chain)
	}
	out, all := make([][]*x509.Certificate, len(chains)), make([]*x509.Certificate, 0, n)
	for i, chain := range chains {
		start := len(all)
		all = append(all, chain...)
		out[i] = all[start:len(all):len(all)]
	}
	return out
}
