package dtls

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FuzzEstablishedPair feeds one arbitrary datagram, as an attacker without
// keys would send it, to both sides of two established pairs (one with
// Connection IDs), and checks that every connection survives and delivers
// its next application record both ways (issue 10: nothing an off-path
// attacker sends may end a connection). The pairs are set up once per
// process and reused by every input, over the in-memory link, with no
// goroutine per input: an input costs eight record round trips.
func FuzzEstablishedPair(f *testing.F) {
	plain := newPipePair(f, nil, nil)
	cc, sc := configsFor(f, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	cc.ConnectionIDGenerator = RandomCIDGenerator(4)
	sc.ConnectionIDGenerator = RandomCIDGenerator(8)
	withCID := newPipePair(f, cc, sc)
	// A DTLS 1.3 pair: the unified-header path, ACKs, and the server's
	// kept epoch-2 keys.
	tc := certs(f)["p256"]
	sc13 := &Config{Certificates: []tls.Certificate{tc.tls}, MaxVersion: VersionDTLS13}
	cc13 := &Config{RootCAs: tc.pool, ServerName: "dtls.test", MinVersion: VersionDTLS13, MaxVersion: VersionDTLS13}
	v13 := newPipePair(f, cc13, sc13)
	pairs := []*pipePair{plain, withCID, v13}
	f.Fuzz(func(t *testing.T, d []byte) {
		for i, p := range pairs {
			for _, toClient := range []bool{true, false} {
				p.inject(toClient, d)
				// The side that got the datagram reads the peer's next
				// record, then sends one back.
				if err := p.send(!toClient, "to the target"); err != nil {
					t.Fatalf("pair %d, datagram to client=%v: the target's next Read: %v", i, toClient, err)
				}
				if err := p.send(toClient, "from the target"); err != nil {
					t.Fatalf("pair %d, datagram to client=%v: the target's peer: %v", i, toClient, err)
				}
			}
		}
	})
}

// establishedPairSeeds are the committed corpus of FuzzEstablishedPair:
// each record type in epochs 0, 1 and 2, with and without a CID, truncated
// headers, alerts, ChangeCipherSpecs, and the handshake messages a forger
// would send (ClientHello, HelloVerifyRequest, HelloRequest), alone and
// several to a datagram.
func establishedPairSeeds(t testing.TB) map[string][]byte {
	protected := func(typ recordType, epoch uint64, seq uint64, n int) []byte {
		return append(appendRecordHeader(nil, typ, VersionDTLS12, epoch, seq, n), bytes.Repeat([]byte{0xa5}, n)...)
	}
	cidRecord := func(cid []byte, epoch uint64, n int) []byte {
		return append(appendRecordHeaderCID(nil, recordTypeTLS12CID, VersionDTLS12, epoch, 9, cid, n), bytes.Repeat([]byte{0x5a}, n)...)
	}
	ch := mustClientHello(t)
	_, chMsg, _, _ := parseInitialClientHello(ch)
	chBody, _ := chMsg.marshal()
	withCookie := *chMsg
	withCookie.cookie = bytes.Repeat([]byte{3}, cookieLen)
	cookieBody, _ := withCookie.marshal()
	cookie := bytes.Repeat([]byte{7}, cookieLen)
	seeds := map[string][]byte{
		"ccs":                       plainRecord(recordTypeChangeCipherSpec, 100, []byte{1}),
		"ccs empty":                 plainRecord(recordTypeChangeCipherSpec, 101, nil),
		"ccs two bytes":             plainRecord(recordTypeChangeCipherSpec, 102, []byte{1, 1}),
		"alert fatal":               plainRecord(recordTypeAlert, 103, []byte{alertLevelError, byte(alertHandshakeFailure)}),
		"alert close_notify":        plainRecord(recordTypeAlert, 104, []byte{alertLevelWarning, byte(alertCloseNotify)}),
		"alert no_renegotiation":    plainRecord(recordTypeAlert, 105, []byte{alertLevelWarning, byte(alertNoRenegotiation)}),
		"alert malformed":           plainRecord(recordTypeAlert, 106, []byte{alertLevelError}),
		"application data":          plainRecord(recordTypeApplicationData, 107, []byte("evil")),
		"client hello":              ch,
		"client hello seq 4":        plainMessage(typeClientHello, 4, 108, chBody),
		"client hello with cookie":  plainMessage(typeClientHello, 1, 109, cookieBody),
		"hello verify request":      appendHelloVerifyRequest(nil, 110, 0, cookie),
		"hello verify request seq5": appendHelloVerifyRequest(nil, 111, 5, cookie),
		"hello request":             plainMessage(typeHelloRequest, 5, 112, nil),
		"finished seq 4":            plainMessage(typeFinished, 4, 113, make([]byte, 12)),
		"client key exchange old":   plainMessage(typeClientKeyExchange, 1, 114, []byte{0, 1, 'x'}),
		"handshake header only":     plainRecord(recordTypeHandshake, 115, make([]byte, 11)),
		"truncated header":          appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 0, 116, 40)[:7],
		"length past the datagram":  append(appendRecordHeader(nil, recordTypeAlert, VersionDTLS12, 0, 117, 40), 1, 2),
		"unknown content type":      plainRecord(99, 118, []byte{1, 2, 3}),
		"dtls 1.0 epoch 0":          append(appendRecordHeader(nil, recordTypeAlert, VersionDTLS10, 0, 119, 2), alertLevelError, byte(alertInternalError)),
		"tls version":               append(appendRecordHeader(nil, recordTypeAlert, 0x0303, 0, 120, 2), alertLevelError, byte(alertInternalError)),
		"epoch 1 handshake":         protected(recordTypeHandshake, 1, 5, 64),
		"epoch 1 alert":             protected(recordTypeAlert, 1, 6, 26),
		"epoch 1 application data":  protected(recordTypeApplicationData, 1, 1<<40, 40),
		"epoch 1 short":             protected(recordTypeApplicationData, 1, 7, 5),
		"epoch 1 ccs":               protected(recordTypeChangeCipherSpec, 1, 8, 25),
		"epoch 2 handshake":         protected(recordTypeHandshake, 2, 0, 64),
		"epoch 0xffff":              protected(recordTypeApplicationData, 0xffff, 0, 40),
		"cid 8 epoch 1":             cidRecord(bytes.Repeat([]byte{1}, 8), 1, 40),
		"cid 4 epoch 1":             cidRecord(bytes.Repeat([]byte{2}, 4), 1, 40),
		"cid epoch 0":               cidRecord(bytes.Repeat([]byte{1}, 8), 0, 10),
		"cid truncated":             cidRecord(bytes.Repeat([]byte{1}, 8), 1, 40)[:15],
	}
	// DTLS 1.3: unified headers of each epoch's low bits, with and
	// without length, 8- and 16-bit sequence numbers, a CID bit, too
	// short for the record number mask; ACKs in the clear and garbled.
	for bits := range 4 {
		for _, first := range []byte{0x2c, 0x28, 0x24, 0x20, 0x3c} {
			b := []byte{first | byte(bits), 0, byte(bits), 0, 40}
			seeds[fmt.Sprintf("unified %#x", first|byte(bits))] = append(b, bytes.Repeat([]byte{0xc3}, 40)...)
		}
	}
	seeds["unified short"] = []byte{0x2e, 0, 1, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}
	seeds["unified truncated"] = []byte{0x2e, 0}
	ack, _ := appendACK(nil, []recordNumber{{2, 0}, {2, 1}, {3, 0}, {0, 1}})
	seeds["ack epoch 0"] = plainRecord(recordTypeACK, 121, ack)
	seeds["ack empty"] = plainRecord(recordTypeACK, 122, []byte{0, 0})
	seeds["ack malformed"] = plainRecord(recordTypeACK, 123, []byte{0, 17, 1})
	seeds["1.2 header epoch 3"] = append(appendRecordHeader(nil, recordTypeACK, VersionDTLS12, 3, 0x8a00007b, 3), 0, 17, 1)
	seeds["several records"] = bytes.Join([][]byte{seeds["ccs two bytes"], seeds["alert fatal"], seeds["client hello seq 4"], seeds["epoch 1 alert"]}, nil)
	seeds["alert behind a bad record"] = append(bytes.Clone(seeds["epoch 1 short"]), seeds["alert fatal"]...)
	return seeds
}

var updatePairCorpus = flag.Bool("update-pair-corpus", false, "write FuzzEstablishedPair's seeds under testdata/fuzz")

// TestWriteEstablishedPairCorpus writes establishedPairSeeds as the
// committed corpus:
//
//	go test -run TestWriteEstablishedPairCorpus -update-pair-corpus .
func TestWriteEstablishedPairCorpus(t *testing.T) {
	if !*updatePairCorpus {
		t.Skip("run with -update-pair-corpus to rewrite the seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzEstablishedPair")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range establishedPairSeeds(t) {
		sum := sha256.Sum256(d)
		path := filepath.Join(dir, hex.EncodeToString(sum[:8]))
		if err := os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
