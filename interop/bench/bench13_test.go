package bench

// The DTLS 1.3 rows (BENCHMARKS.md, "DTLS 1.3"): dtls-go against pion v4,
// both pinned to 1.3 (impl13_test.go), and a floor, as sub-benchmarks
// impl=NAME of one benchmark each, as in bench_test.go. Their names all
// start with BenchmarkDTLS13 and match none of the patterns bench.sh runs
// for the 1.2 rows.
//
// Every handshake row has both servers make the cookie exchange (RFC 9147
// §5.1): the first ClientHello is answered by a HelloRetryRequest, so a
// handshake takes two round trips before the client's Finished.

import (
	"crypto"
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func forImpls13(b *testing.B, f func(b *testing.B, im impl13)) {
	setupPKI(b)
	for _, im := range impls13 {
		b.Run("impl="+im.name, func(b *testing.B) { f(b, im) })
	}
}

func start13(b *testing.B, im impl13, k kind13, h handler) (*net.UDPAddr, *atomic.Int64) {
	full := new(atomic.Int64)
	addr, stop, err := im.serve(k, h, full)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stop)
	return addr, full
}

// BenchmarkDTLS13FullECDSA: a full handshake, P-256 certificate
// (ecdsa_secp256r1_sha256), X25519, TLS_AES_128_GCM_SHA256, a fresh
// client and socket per iteration, closed right after.
func BenchmarkDTLS13FullECDSA(b *testing.B) {
	forImpls13(b, func(b *testing.B, im impl13) { benchHandshake13(b, im, k13ECDSA) })
	b.Run("impl=floor", func(b *testing.B) { benchFloor13(b, newHandshakeFloor13(b, true, false)) })
}

// BenchmarkDTLS13FullPSK: an external PSK, psk_dhe_ke with X25519.
func BenchmarkDTLS13FullPSK(b *testing.B) {
	forImpls13(b, func(b *testing.B, im impl13) { benchHandshake13(b, im, k13PSK) })
	b.Run("impl=floor", func(b *testing.B) { benchFloor13(b, newHandshakeFloor13(b, false, false)) })
}

// BenchmarkDTLS13FullHybrid: as FullECDSA with X25519MLKEM768, which the
// servers ask for in the cookie's HelloRetryRequest
// (TestRoundTrips13 checks that this costs no extra round trip).
func BenchmarkDTLS13FullHybrid(b *testing.B) {
	forImpls13(b, func(b *testing.B, im impl13) { benchHandshake13(b, im, k13Hybrid) })
	b.Run("impl=floor", func(b *testing.B) { benchFloor13(b, newHandshakeFloor13(b, true, true)) })
}

// BenchmarkDTLS13Resume: a resumed handshake, the ticket of an earlier
// certificate handshake's NewSessionTicket offered as a psk_dhe_ke PSK
// (X25519). Every timed handshake must have resumed: a server that
// fetched its certificate during the loop fails the benchmark.
func BenchmarkDTLS13Resume(b *testing.B) {
	forImpls13(b, func(b *testing.B, im impl13) {
		var first atomic.Bool
		addr, full := start13(b, im, k13Resume, func(c net.Conn) bool {
			// The first connection's server writes one record after
			// its NewSessionTicket, so that the client, reading it,
			// has the ticket.
			if first.CompareAndSwap(false, true) {
				if _, err := c.Write([]byte("t")); err != nil {
					return false
				}
			}
			return readUntilClosed(c)
		})
		cl := im.client(k13Resume)
		c, err := cl.dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 16)); err != nil {
			b.Fatal(err)
		}
		// pion stores the ticket in a goroutine of its own.
		for deadline := time.Now().Add(5 * time.Second); !cl.pin(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("no session ticket")
			}
		}
		c.Close()
		full0 := full.Load()
		b.ReportAllocs()
		for b.Loop() {
			c, err := cl.dial(addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		if n := full.Load() - full0; n != 0 {
			b.Fatalf("%d of %d handshakes did not resume", n, b.N)
		}
	})
	b.Run("impl=floor", func(b *testing.B) { benchFloor13(b, newHandshakeFloor13(b, false, false)) })
}

func benchHandshake13(b *testing.B, im impl13, k kind13) {
	addr, _ := start13(b, im, k, readUntilClosed)
	cl := im.client(k)
	b.ReportAllocs()
	for b.Loop() {
		c, err := cl.dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// handshakeFloor13 is what a 1.3 handshake with the cookie exchange
// cannot avoid, both ends together: every public-key operation, and two
// round trips of small datagrams over loopback (ClientHello and
// HelloRetryRequest, second ClientHello and the server's flight; the
// client's Finished is not waited for).
//
// Public-key work, per handshake:
//   - key exchange, X25519: the client makes a key pair, the server makes
//     one and derives the shared secret, the client derives it.
//   - X25519MLKEM768 (hybrid): the client's first X25519 key pair, for
//     the share of its first ClientHello (both implementations send
//     one, so that it fits a datagram; the HelloRetryRequest discards
//     it), then the hybrid: the client makes an ML-KEM-768 key and an
//     X25519 key pair, the server encapsulates to the ML-KEM key and does
//     its X25519 as above, the client decapsulates and derives X25519.
//   - certificate: the server signs CertificateVerify (ECDSA P-256,
//     SHA-256), the client verifies it, and verifies every signature of
//     the certificate chain below the trusted root (none when the server's
//     certificate is the root itself).
//
// It excludes everything else: the datagrams' real sizes (a certificate
// flight is ~1 KB, a hybrid share 1216 and 1120 bytes), the client's
// Finished and the server's processing of it, the key schedule (HKDF),
// transcript hashes, record protection, sockets and goroutines per
// connection, certificate parsing and chain building, and allocation.
type handshakeFloor13 struct {
	certificate, hybrid bool
	signer              crypto.Signer
	leaf                *x509.Certificate
	chain               []*x509.Certificate // leaf first, verified up to a root
}

func newHandshakeFloor13(b *testing.B, certificate, hybrid bool) *handshakeFloor13 {
	setupPKI(b)
	f := &handshakeFloor13{certificate: certificate, hybrid: hybrid}
	if !certificate {
		return f
	}
	f.signer = cert.PrivateKey.(crypto.Signer)
	inter := x509.NewCertPool()
	for i, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			f.leaf = c
		} else {
			inter.AddCert(c)
		}
	}
	chains, err := f.leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "localhost"})
	if err != nil {
		b.Fatal(err)
	}
	f.chain = chains[0]
	return f
}

// crypto does the public-key work of one handshake.
func (f *handshakeFloor13) crypto() {
	x := ecdh.X25519()
	if f.hybrid {
		if _, err := x.GenerateKey(rand.Reader); err != nil { // the first ClientHello's share
			panic(err)
		}
		dk, err := mlkem.GenerateKey768()
		if err != nil {
			panic(err)
		}
		ek, err := mlkem.NewEncapsulationKey768(dk.EncapsulationKey().Bytes())
		if err != nil {
			panic(err)
		}
		_, ct := ek.Encapsulate()
		if _, err := dk.Decapsulate(ct); err != nil {
			panic(err)
		}
	}
	ck, _ := x.GenerateKey(rand.Reader)
	sk, _ := x.GenerateKey(rand.Reader)
	if _, err := sk.ECDH(ck.PublicKey()); err != nil {
		panic(err)
	}
	if _, err := ck.ECDH(sk.PublicKey()); err != nil {
		panic(err)
	}
	if !f.certificate {
		return
	}
	// CertificateVerify's content (RFC 8446 §4.4.3): 64 spaces, the
	// context string, a zero byte, the transcript hash.
	var content [64 + 33 + 1 + sha256.Size]byte
	for i := range 64 {
		content[i] = ' '
	}
	copy(content[64:], "TLS 1.3, server CertificateVerify")
	rand.Read(content[98:])
	h := sha256.Sum256(content[:])
	sig, err := f.signer.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		panic(err)
	}
	if err := f.leaf.CheckSignature(x509.ECDSAWithSHA256, content[:], sig); err != nil {
		panic(err)
	}
	for i := 0; i+1 < len(f.chain); i++ {
		if err := f.chain[i].CheckSignatureFrom(f.chain[i+1]); err != nil {
			panic(err)
		}
	}
}

// benchFloor13 times f's public-key work and two UDP round trips of
// 100-byte datagrams, one after the other, per iteration.
func benchFloor13(b *testing.B, f *handshakeFloor13) {
	addr, stop, err := serveUDP(func(d []byte, reply func([]byte)) { reply(d) })
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	msg, buf := make([]byte, 100), make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		f.crypto()
		for range 2 {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkDTLS13Records1000 sends 1000-byte records (AES-128-GCM) from
// a client to a server as fast as the receiver takes them, as
// BenchmarkOneWay1000 does in 1.2.
func BenchmarkDTLS13Records1000(b *testing.B) {
	const size = 1000
	forImpls13(b, func(b *testing.B, im impl13) {
		s := newSink()
		addr, _ := start13(b, im, k13ECDSA, func(c net.Conn) bool {
			buf := make([]byte, 2048)
			for {
				if _, err := c.Read(buf); err != nil {
					return false
				}
				s.arrived()
			}
		})
		c, err := im.client(k13ECDSA).dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		sendPaced(b, c, s, size)
	})
	b.Run("impl=floor-udp", func(b *testing.B) { benchUDPOneWay(b, size) })
}

// BenchmarkDTLS13RoundTrip100 is the round trip of a 100-byte record, as
// BenchmarkEcho100 in 1.2.
func BenchmarkDTLS13RoundTrip100(b *testing.B) {
	forImpls13(b, func(b *testing.B, im impl13) {
		addr, _ := start13(b, im, k13ECDSA, func(c net.Conn) bool {
			buf := make([]byte, 2048)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return false
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return false
				}
			}
		})
		c, err := im.client(k13ECDSA).dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Minute))
		msg, buf := make([]byte, 100), make([]byte, 2048)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=floor-udp", func(b *testing.B) { benchUDPRoundTrips(b, 1, 100) })
}
