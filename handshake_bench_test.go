package dtls

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"

	"github.com/dtls-go/dtls/internal/dtlstest"
)

// chainPKI is a CA root and a P-256 leaf it issued for "dtls.test": the
// server sends the leaf, the client verifies it against the root, as a
// deployment with a real CA does (a self-signed leaf in the client's
// pool skips the chain's signature check).
type chainPKI struct {
	ca   *dtlstest.CA
	leaf *dtlstest.Cert
}

var (
	chainPKIOnce sync.Once
	chainPKIVal  *chainPKI
)

func benchChainPKI(tb testing.TB) *chainPKI {
	chainPKIOnce.Do(func() {
		ca := dtlstest.NewCA(tb, dtlstest.Spec{Serial: 41})
		chainPKIVal = &chainPKI{ca: ca, leaf: ca.Issue(tb, dtlstest.Spec{Serial: 42})}
	})
	return chainPKIVal
}

// BenchmarkHandshakeChain is a full ECDHE-ECDSA (P-256, X25519)
// handshake through a Listener over loopback, the client verifying a CA
// chain, at each version's defaults otherwise, beside its crypto floor in
// the same run: what both sides must compute at the least (one ECDSA
// signature and its verification, two X25519 key generations and
// exchanges, and the client's x509 chain verification, with its ECDSA
// verification of the leaf's signature). The ratio of each handshake to
// the floor is the figure to compare across runs. Each also reports
// cpu-ns/op, the process's CPU time per iteration (both sides of the
// handshake run in it): on a machine shared with other work, wall time
// includes waiting for a core, and the CPU ratio is the steadier one.
func BenchmarkHandshakeChain(b *testing.B) {
	pki := benchChainPKI(b)
	b.Run("floor", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			chainCryptoFloorOnce(b, pki)
		}
	})
	b.Run("floor-nochain", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			cryptoFloorNoChain(b, pki.leaf.Key.(*ecdsa.PrivateKey))
		}
	})
	for _, v := range []struct {
		name string
		vers uint16
	}{{"v=1.2", VersionDTLS12}, {"v=1.3", VersionDTLS13}} {
		b.Run(v.name, func(b *testing.B) {
			sc := &Config{Certificates: []tls.Certificate{pki.leaf.TLS}, MinVersion: v.vers, MaxVersion: v.vers}
			cc := &Config{RootCAs: pki.ca.Pool, ServerName: "dtls.test", MinVersion: v.vers, MaxVersion: v.vers}
			l, err := Listen("udp", "127.0.0.1:0", sc)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				c, err := Dial("udp", l.Addr().String(), cc)
				if err != nil {
					b.Fatal(err)
				}
				if c.ConnectionState().Version != v.vers || len(c.ConnectionState().VerifiedChains) != 1 {
					b.Fatalf("version %x, %d verified chains", c.ConnectionState().Version, len(c.ConnectionState().VerifiedChains))
				}
				c.Close()
			}
		})
	}
}

// reportCPU starts counting the process's CPU time; the function it
// returns reports it per iteration as cpu-ns/op.
func reportCPU(b *testing.B) func() {
	start, ok := processCPU()
	return func() {
		if end, _ := processCPU(); ok && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// chainCryptoFloorOnce is the floor's work for one handshake.
func chainCryptoFloorOnce(b *testing.B, pki *chainPKI) {
	cryptoFloorNoChain(b, pki.leaf.Key.(*ecdsa.PrivateKey))
	chains, err := pki.leaf.Leaf.Verify(x509.VerifyOptions{Roots: pki.ca.Pool, DNSName: "dtls.test"})
	if err != nil || len(chains) != 1 {
		b.Fatal(err)
	}
}

func cryptoFloorNoChain(b *testing.B, key *ecdsa.PrivateKey) {
	var params [64 + 4 + 32]byte
	rand.Read(params[:64])
	sk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	copy(params[68:], sk.PublicKey().Bytes())
	h := sha256.Sum256(params[:])
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		b.Fatal(err)
	}
	if !ecdsa.VerifyASN1(&key.PublicKey, h[:], sig) {
		b.Fatal("signature does not verify")
	}
	ck, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ck.ECDH(sk.PublicKey()); err != nil {
		b.Fatal(err)
	}
	if _, err := sk.ECDH(ck.PublicKey()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkEcho100Listener is the round trip of a 100-byte record through
// a Listener's connection (the server reads it and writes it back) at
// each version's defaults, beside a raw UDP echo through a socket read by
// one goroutine, in the same run.
func BenchmarkEcho100Listener(b *testing.B) {
	pki := benchChainPKI(b)
	msg, buf := make([]byte, 100), make([]byte, 2048)
	b.Run("floor-udp", func(b *testing.B) {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		defer pc.Close()
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				pc.WriteToUDPAddrPort(buf[:n], from)
			}
		}()
		c, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, v := range []struct {
		name string
		vers uint16
	}{{"v=1.2", VersionDTLS12}, {"v=1.3", VersionDTLS13}} {
		b.Run(v.name, func(b *testing.B) {
			sc := &Config{Certificates: []tls.Certificate{pki.leaf.TLS}, MinVersion: v.vers, MaxVersion: v.vers}
			cc := &Config{RootCAs: pki.ca.Pool, ServerName: "dtls.test", MinVersion: v.vers, MaxVersion: v.vers}
			l, err := Listen("udp", "127.0.0.1:0", sc)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						buf := make([]byte, 2048)
						for {
							n, err := c.Read(buf)
							if err != nil {
								return
							}
							if _, err := c.Write(buf[:n]); err != nil {
								return
							}
						}
					}()
				}
			}()
			c, err := Dial("udp", l.Addr().String(), cc)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
