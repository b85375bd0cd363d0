package dtls

import (
	"crypto/tls"
	mrand "math/rand/v2"
	"testing"
)

// TestHostile13Pair sends an established DTLS 1.3 pair datagrams an
// attacker without keys could send, mutated from FuzzEstablishedPair's
// seeds and random ones (unified headers among them), from a fixed seed,
// each followed by a record each way that must arrive. It found a
// 1.2-header record naming epoch 3 read as plaintext (recordLayer.open).
func TestHostile13Pair(t *testing.T) {
	tc := certs(t)["p256"]
	sc13 := &Config{Certificates: []tls.Certificate{tc.tls}, MaxVersion: VersionDTLS13}
	cc13 := &Config{RootCAs: tc.pool, ServerName: "dtls.test", MinVersion: VersionDTLS13, MaxVersion: VersionDTLS13}
	p := newPipePair(t, cc13, sc13)
	seeds := establishedPairSeeds(t)
	var list [][]byte
	// The one the loop found first: a 1.2-header ACK naming epoch 3.
	regression := []byte{0x1a, 0xfe, 0xfd, 0, 3, 0, 0, 0x8a, 0, 0, 0x7b, 0, 3, 0, 0x11, 1}
	p.inject(true, regression)
	if err := p.send(false, "after the regression input"); err != nil {
		t.Fatalf("1.2-header record of a 1.3 epoch: %v", err)
	}
	for _, d := range seeds {
		list = append(list, d)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	var hist [][]byte
	for i := 0; i < hostile13Iterations; i++ {
		d := append([]byte(nil), list[rng.IntN(len(list))]...)
		for range rng.IntN(4) {
			if len(d) > 0 {
				d[rng.IntN(len(d))] = byte(rng.IntN(256))
			}
		}
		if rng.IntN(2) == 0 {
			d = make([]byte, rng.IntN(120))
			for k := range d {
				d[k] = byte(rng.IntN(256))
			}
			if len(d) > 0 && rng.IntN(2) == 0 {
				d[0] = 0x20 | byte(rng.IntN(32))
			}
		}
		if rng.IntN(3) == 0 && len(d) > 1 {
			d = d[:rng.IntN(len(d))]
		}
		hist = append(hist, d)
		for _, toClient := range []bool{true, false} {
			p.inject(toClient, d)
			if err := p.send(!toClient, "to the target"); err != nil {
				for j := max(0, len(hist)-5); j < len(hist); j++ {
					t.Logf("hist %d: %x", j, hist[j])
				}
				t.Fatalf("iter %d toClient=%v: %v", i, toClient, err)
			}
			if err := p.send(toClient, "from the target"); err != nil {
				t.Fatalf("iter %d toClient=%v peer: %v", i, toClient, err)
			}
		}
	}
}

// hostile13Iterations bounds TestHostile13Pair: 20000 datagrams each way
// take about half a second.
const hostile13Iterations = 20000
