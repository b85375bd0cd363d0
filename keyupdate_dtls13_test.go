package dtls

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// KeyUpdate tests (RFC 9147 §8 with erratum 8047, §4.5.3): the
// application's UpdateKeys, the automatic update before the
// confidentiality limit (at a limit a test hook makes small), the
// integrity limit, and misbehaving peers. They run over internal/netsim
// under testing/synctest, so the times are virtual and every seed repeats.

// kuCounter counts, from one side's Tracer, the KeyUpdates it sent (by
// message_seq: retransmissions count once), its write epochs, and the
// records it sealed in each epoch.
var kuDebug = os.Getenv("DTLS_KU_DEBUG") != ""

var (
	kuLogMu  sync.Mutex
	kuLogBuf []string
)

func kuLog(format string, args ...any) {
	kuLogMu.Lock()
	defer kuLogMu.Unlock()
	if !strings.Contains(format, "SENT") || !strings.HasSuffix(fmt.Sprint(args[len(args)-1]), "23") {
		kuLogBuf = append(kuLogBuf, time.Now().Format("05.000")+" "+strings.TrimSpace(fmt.Sprintf(format, args...)))
	}
	if len(kuLogBuf) > 400 {
		kuLogBuf = kuLogBuf[200:]
	}
}

func kuDump(t *testing.T) {
	kuLogMu.Lock()
	defer kuLogMu.Unlock()
	for _, l := range kuLogBuf {
		t.Log(l)
	}
}

type kuCounter struct {
	mu        sync.Mutex
	kuSeqs    map[uint16]bool
	requested int // flights "KeyUpdate(update_requested)"
	writes    []uint64
	sealed    map[uint64]int
	discards  int // "read discarded"
}

func newKUCounter() *kuCounter {
	return &kuCounter{kuSeqs: map[uint16]bool{}, sealed: map[uint64]int{}}
}

func (k *kuCounter) trace(ev *TraceEvent) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if kuDebug && (ev.Kind == TraceEpochChanged || ev.Kind == TraceHandshakeSent || ev.Kind == TraceFlightRetransmitted || ev.Kind == TraceTimerArmed || ev.Kind == TraceTimerFired || ev.Kind == TraceFlightSent) {
		kuLog("%p %v epoch=%d reason=%s hs=%d\n", k, ev.Kind, ev.Epoch, ev.Reason, ev.HandshakeType)
	}
	switch ev.Kind {
	case TraceHandshakeSent:
		if ev.HandshakeType == uint8(typeKeyUpdate) && ev.FragmentOffset == 0 {
			k.kuSeqs[ev.MessageSeq] = true
		}
	case TraceFlightSent:
		if ev.Reason == "KeyUpdate(update_requested)" {
			k.requested++
		}
	case TraceEpochChanged:
		switch ev.Reason {
		case "write":
			if ev.Epoch >= 4 {
				k.writes = append(k.writes, ev.Epoch)
			}
		case "read discarded":
			k.discards++
		}
	case TraceRecordDropped, TraceRecordReceived, TraceACKReceived, TraceACKSent, TraceHandshakeReceived:
		if kuDebug {
			kuLog("%p %v epoch=%d seq=%d type=%d reason=%s recs=%v hs=%d\n", k, ev.Kind, ev.Epoch, ev.Seq, ev.ContentType, ev.Reason, ev.Records, ev.HandshakeType)
		}
	case TraceRecordSent:
		if kuDebug {
			kuLog("%p SENT epoch=%d seq=%d type=%d\n", k, ev.Epoch, ev.Seq, ev.ContentType)
		}
		if ev.Epoch >= 3 {
			k.sealed[ev.Epoch]++
		}
	}
}

func (k *kuCounter) snapshot() (kus int, writes []uint64, sealed map[uint64]int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	sealed = make(map[uint64]int, len(k.sealed))
	for e, n := range k.sealed {
		sealed[e] = n
	}
	return len(k.kuSeqs), append([]uint64(nil), k.writes...), sealed
}

// kuConfigs returns DTLS 1.3-only configs with suite, valid at the
// bubble's virtual time.
func kuConfigs(t testing.TB, suite uint16, seed uint64) (cc, sc *Config) {
	cc, sc = lossConfigs(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	for _, c := range []*Config{cc, sc} {
		c.MinVersion, c.MaxVersion = VersionDTLS13, VersionDTLS13
		c.CipherSuites = []uint16{suite}
	}
	cc.Rand = mrand.NewChaCha8(seedBytes(seed, 'c'))
	sc.Rand = mrand.NewChaCha8(seedBytes(seed, 's'))
	return cc, sc
}

// kuPair makes a client and a server Conn over n (each a connected
// netsim socket) and lets setup adjust them before the handshake, which
// it runs on both. Call it inside a synctest bubble.
func kuPair(t *testing.T, n *netsim.Network, cc, sc *Config, setup func(cli, srv *Conn)) (cli, srv *Conn) {
	t.Helper()
	cconn, err := n.Dial(lossClientAddr, lossServerAddr)
	if err != nil {
		t.Fatal(err)
	}
	sconn, err := n.Dial(lossServerAddr, lossClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	cli, srv = Client(cconn, cc), Server(sconn, sc)
	if setup != nil {
		setup(cli, srv)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	// The client's Read resends its Finished until the server has it.
	buf := make([]byte, 64)
	for {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("server handshake: %v", err)
			}
			cli.SetReadDeadline(time.Time{})
			return cli, srv
		default:
		}
		cli.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		cli.Read(buf)
	}
}

// TestAutoKeyUpdate13 sets the confidentiality limit of both sides to
// kuTestLimit records and sends kuTestRecords application records from
// the client, each echoed by the server, over a path that loses 0% or 10%
// of datagrams; the client resends a record until its echo arrives, as
// an application over UDP would. For every suite it checks that
//
//   - each side sent exactly one KeyUpdate per limit crossing: as many
//     KeyUpdate messages as write epochs after 3, and every epoch it
//     left had sealed at least 7/8 of the limit (aeadKeyUpdateNum/Den)
//     and never more than the limit;
//   - no application record was lost to a key change: every record was
//     echoed, neither side dropped a record for a missing key or a
//     failed authentication, no Write failed, and on the lossless path
//     every record arrived the first time it was sent.
func TestAutoKeyUpdate13(t *testing.T) {
	const (
		kuTestLimit   = 1024
		kuTestRecords = 4000
	)
	seeds := 3
	if n, err := strconv.Atoi(os.Getenv("DTLS_KU_SEEDS")); err == nil {
		seeds = n
	}
	if testing.Short() {
		seeds = 1
	}
	for _, suite := range []uint16{suiteTLSAES128GCMSHA256, suiteTLSChaCha20Poly1305SHA256, suiteTLSAES128CCMSHA256, suiteTLSAES128CCM8SHA256} {
		for _, loss := range []float64{0, 0.1} {
			for seed := range uint64(seeds) {
				name := fmt.Sprintf("%s/loss %.0f%%/seed %d", cipherSuite13ByID(suite).name, loss*100, seed)
				t.Run(name, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						testAutoKeyUpdate(t, suite, loss, seed, kuTestLimit, kuTestRecords)
					})
				})
			}
		}
	}
}

func testAutoKeyUpdate(t *testing.T, suite uint16, loss float64, seed uint64, limit uint64, records int) {
	n := netsim.New(seed, netsim.Link{Loss: loss, Delay: lossDelay})
	cc, sc := kuConfigs(t, suite, seed)
	ck, sk := newKUCounter(), newKUCounter()
	cc.Tracer, sc.Tracer = ck.trace, sk.trace
	cli, srv := kuPair(t, n, cc, sc, func(cli, srv *Conn) {
		cli.ku.testSealLimit, srv.ku.testSealLimit = limit, limit
	})
	received := make(map[string]int)
	var srvWriteErr error
	var srvReadErr atomic.Pointer[error]
	var wg sync.WaitGroup
	defer func() {
		cli.Close()
		srv.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		buf := make([]byte, 100)
		for {
			k, err := srv.Read(buf)
			if err != nil {
				srvReadErr.Store(&err)
				return
			}
			received[string(buf[:k])]++
			if _, err := srv.Write(buf[:k]); err != nil {
				srvWriteErr = err
				return
			}
		}
	})
	buf := make([]byte, 100)
	sends := 0
	for i := range records {
		msg := strconv.Itoa(i)
		got := false
		for try := 0; try < 300 && !got; try++ {
			if _, err := cli.Write([]byte(msg)); err != nil {
				t.Fatalf("client Write %d: %v", i, err)
			}
			sends++
			deadline := time.Now().Add(100 * time.Millisecond)
			for !got {
				cli.SetReadDeadline(deadline)
				k, err := cli.Read(buf)
				if isTimeout(err) {
					break
				}
				if err != nil {
					t.Fatalf("client Read at record %d: %v", i, err)
				}
				got = string(buf[:k]) == msg
			}
		}
		if !got {
			if kuDebug {
				kuDump(t)
			}
			if p := srvReadErr.Load(); p != nil {
				t.Fatalf("record %d never echoed: server Read: %v", i, *p)
			}
			t.Fatalf("record %d never echoed", i)
		}
	}
	cli.Close()
	srv.Close()
	wg.Wait()

	if srvWriteErr != nil {
		t.Errorf("server Write: %v", srvWriteErr)
	}
	if len(received) != records {
		t.Errorf("server received %d distinct records, want %d", len(received), records)
	}
	for name, c := range map[string]*Conn{"client": cli, "server": srv} {
		for _, r := range []dropReason{dropBadMAC, dropUnknownEpoch, dropFutureEpoch} {
			if d := c.drops[r].Load(); d != 0 {
				t.Errorf("%s dropped %d records: %v", name, d, r)
			}
		}
	}
	if loss == 0 && sends != records {
		t.Errorf("lossless path: %d sends for %d records", sends, records)
	}
	threshold := int(limit / aeadKeyUpdateDen * aeadKeyUpdateNum)
	for name, k := range map[string]*kuCounter{"client": ck, "server": sk} {
		kus, writes, sealed := k.snapshot()
		// The last KeyUpdate may still wait for its ACK when the test
		// ends.
		if kus != len(writes) && kus != len(writes)+1 {
			t.Errorf("%s: %d KeyUpdates sent, %d write epoch changes", name, kus, len(writes))
		}
		last := uint64(3)
		for _, e := range writes {
			if e != last+1 {
				t.Errorf("%s: write epoch %d after %d", name, e, last)
			}
			// The epoch it left sealed at least the threshold (the
			// KeyUpdate started there) and at most the limit.
			if s := sealed[last]; s < threshold || s > int(limit) {
				t.Errorf("%s: epoch %d sealed %d records, want %d..%d", name, last, s, threshold, limit)
			}
			last = e
		}
		if s := sealed[last]; s > int(limit) {
			t.Errorf("%s: last epoch %d sealed %d records, past the limit %d", name, last, s, limit)
		}
		// Every record the side sealed in its application epochs,
		// divided by the limit, crossed it this many times at least.
		total := 0
		for _, s := range sealed {
			total += s
		}
		if min := total / int(limit); len(writes) < min {
			t.Errorf("%s: %d KeyUpdates for %d records at limit %d", name, len(writes), total, limit)
		}
		per := make([]int, 0, last-2)
		for e := uint64(3); e <= last; e++ {
			per = append(per, sealed[e])
		}
		t.Logf("%s: %d records in epochs 3..%d, %d KeyUpdates (one per %d..%d records): per epoch %v", name, total, last, len(writes), threshold, limit, per)
	}
}

// TestUpdateKeys13 calls UpdateKeys on the client at once after the
// handshake, before the server's ACK of its Finished can have arrived (the
// KeyUpdate must wait for it: erratum 8047), with update_requested: both
// sides end in write epoch 4, and data flows both ways.
func TestUpdateKeys13(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: lossDelay})
		cc, sc := kuConfigs(t, suiteTLSAES128GCMSHA256, 1)
		ck, sk := newKUCounter(), newKUCounter()
		cc.Tracer, sc.Tracer = ck.trace, sk.trace
		cli, srv := kuPair(t, n, cc, sc, nil)
		if err := cli.UpdateKeys(true); err != nil {
			t.Fatal(err)
		}
		if err := cli.UpdateKeys(true); err != nil { // merged into the first
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			buf := make([]byte, 100)
			for {
				k, err := srv.Read(buf)
				if err != nil {
					return
				}
				srv.Write(buf[:k])
			}
		})
		buf := make([]byte, 100)
		// Until both sides moved, and dropped the old read keys one
		// retransmission timeout after the first record of the new
		// epoch (a few seconds at most, virtual).
		for range 100 {
			cli.Write([]byte("x"))
			cli.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			cli.Read(buf)
			ck.mu.Lock()
			cd := ck.discards
			ck.mu.Unlock()
			sk.mu.Lock()
			sd := sk.discards
			sk.mu.Unlock()
			if cd > 0 && sd > 0 {
				break
			}
		}
		cli.Close()
		wg.Wait()
		srv.Close()
		ckus, cw, _ := ck.snapshot()
		skus, sw, _ := sk.snapshot()
		if ckus != 1 || len(cw) != 1 || cw[0] != 4 {
			t.Errorf("client: %d KeyUpdates, write epochs %v", ckus, cw)
		}
		if skus != 1 || len(sw) != 1 || sw[0] != 4 {
			t.Errorf("server: %d KeyUpdates, write epochs %v (it must answer update_requested)", skus, sw)
		}
		if ck.requested != 1 || sk.requested != 0 {
			t.Errorf("update_requested sent by client %d, server %d times; want 1, 0", ck.requested, sk.requested)
		}
		if sk.discards != 1 || ck.discards != 1 {
			t.Errorf("old read epochs discarded: client %d, server %d; want 1 each", ck.discards, sk.discards)
		}
		if got := cli.ku.received.Load(); got != 1 {
			t.Errorf("client took %d KeyUpdates", got)
		}
	})
}

// TestUpdateKeysErrors: UpdateKeys needs a completed DTLS 1.3 handshake.
func TestUpdateKeysErrors(t *testing.T) {
	c := Client(nil, &Config{})
	if err := c.UpdateKeys(false); !errors.Is(err, errHandshakeNotComplete) {
		t.Errorf("before the handshake: %v", err)
	}
	c.handshakeComplete.Store(true)
	c.vers = VersionDTLS12
	if err := c.UpdateKeys(false); err == nil {
		t.Error("UpdateKeys on DTLS 1.2 succeeded")
	}
}

// settle lets a synctest bubble's network deliver what is in flight (a
// few one-way delays of virtual time) and its goroutines act on it.
func settle() { time.Sleep(5 * lossDelay) }

// testSendRaw13 seals payload as one record of typ in c's current write
// epoch and sends it: a misbehaving peer's own records, bypassing the
// rules the Conn follows.
func testSendRaw13(c *Conn, typ recordType, payload []byte) error {
	c.out.Lock()
	defer c.out.Unlock()
	rec, err := c.rl.seal(nil, c.rl.writeCur, typ, payload)
	if err != nil {
		return err
	}
	return c.io.writeDatagram(rec)
}

// testSendKeyUpdate13 sends a KeyUpdate with request_update req as the
// next handshake message of c, without waiting for anything.
func testSendKeyUpdate13(c *Conn, req uint8) error {
	h := handshakeHeader{typ: typeKeyUpdate, length: 1, messageSeq: c.hs.sendSeq, fragmentLength: 1}
	c.hs.sendSeq++
	return testSendRaw13(c, recordTypeHandshake, append(h.appendTo(nil), req))
}

// TestMisbehavingKeyUpdatePeer13: a client that breaks the KeyUpdate
// rules against our server. Each row says what the server must do: end
// the connection with the alert, or carry on (want 0) and pass check.
func TestMisbehavingKeyUpdatePeer13(t *testing.T) {
	for _, tc := range []struct {
		name string
		// peer runs on the client, with its c.in held (no Read runs).
		peer  func(t *testing.T, cli, srv *Conn)
		want  alert // 0: the connection must survive
		check func(t *testing.T, cli, srv *Conn, sk *kuCounter)
	}{
		{"KeyUpdate flood past the bound", func(t *testing.T, cli, srv *Conn) {
			for range maxPeerKeyUpdates13 + 1 {
				if err := testSendKeyUpdate13(cli, keyUpdateNotRequested); err != nil {
					t.Fatal(err)
				}
				settle()
				if err := cli.updateWriteKeys(); err != nil { // without waiting for the ACK
					t.Fatal(err)
				}
			}
		}, alertUnexpectedMessage, nil},
		{"KeyUpdates up to the bound, then data", func(t *testing.T, cli, srv *Conn) {
			for range maxPeerKeyUpdates13 {
				testSendKeyUpdate13(cli, keyUpdateNotRequested)
				settle()
				cli.updateWriteKeys()
			}
			if err := testSendRaw13(cli, recordTypeApplicationData, []byte("after the updates")); err != nil {
				t.Fatal(err)
			}
			settle()
			for range maxPeerKeyUpdates13 {
				testSendKeyUpdate13(cli, keyUpdateNotRequested)
				settle()
				cli.updateWriteKeys()
			}
		}, 0, func(t *testing.T, cli, srv *Conn, sk *kuCounter) {
			if got := srv.ku.received.Load(); got != 2*maxPeerKeyUpdates13 {
				t.Errorf("server took %d KeyUpdates, want %d", got, 2*maxPeerKeyUpdates13)
			}
		}},
		{"second KeyUpdate before the first is ACKed", func(t *testing.T, cli, srv *Conn) {
			testSendKeyUpdate13(cli, keyUpdateNotRequested)
			testSendKeyUpdate13(cli, keyUpdateNotRequested) // same epoch
		}, alertUnexpectedMessage, nil},
		{"KeyUpdate with request_update 2", func(t *testing.T, cli, srv *Conn) {
			testSendKeyUpdate13(cli, 2)
		}, alertIllegalParameter, nil},
		{"ACKs for post-handshake messages never sent", func(t *testing.T, cli, srv *Conn) {
			if err := srv.UpdateKeys(false); err != nil { // goes when the server's Read runs
				t.Fatal(err)
			}
			settle()
			var fake []recordNumber
			for seq := range uint64(40) {
				fake = append(fake, recordNumber{3, 1000 + seq}, recordNumber{4, seq}, recordNumber{2, seq})
			}
			body, _ := appendACK(nil, fake)
			testSendRaw13(cli, recordTypeACK, body)
			settle()
			if _, w, _ := srvKU(srv); len(w) != 0 {
				t.Errorf("server moved its write keys on an ACK of records it never sent: %v", w)
			}
		}, 0, func(t *testing.T, cli, srv *Conn, sk *kuCounter) {
			// The client's real ACK (its Read ran in the exchange)
			// moved the server on.
			if _, w, _ := sk.snapshot(); len(w) != 1 || w[0] != 4 {
				t.Errorf("server write epochs %v after the real ACK, want [4]", w)
			}
		}},
		{"epoch jump without KeyUpdate", func(t *testing.T, cli, srv *Conn) {
			cli.updateWriteKeys()
			testSendRaw13(cli, recordTypeApplicationData, []byte("in epoch 4 without KeyUpdate"))
			settle()
			if d := srv.drops[dropUnknownEpoch].Load(); d == 0 {
				t.Error("the server did not drop the record of an epoch it has no keys for")
			}
			cli.rl.installWriteEpoch13(cli.rl.writeState(3).keys13) // back, to exchange below
			cli.rl.writeCur = 3
		}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := netsim.New(1, netsim.Link{Delay: lossDelay})
				cc, sc := kuConfigs(t, suiteTLSAES128GCMSHA256, 1)
				sk := newKUCounter()
				sc.Tracer = sk.trace
				cli, srv := kuPair(t, n, cc, sc, nil)
				defer cli.Close()
				defer srv.Close()
				var srvErr atomic.Pointer[error]
				var wg sync.WaitGroup
				wg.Go(func() {
					buf := make([]byte, 100)
					for {
						k, err := srv.Read(buf)
						if err != nil {
							srvErr.Store(&err)
							return
						}
						srv.Write(buf[:k])
					}
				})
				defer wg.Wait()
				defer srv.Close()
				settle()
				cli.in.Lock()
				tc.peer(t, cli, srv)
				cli.in.Unlock()
				settle()
				got := alert(srv.alertSent.Load() - 1)
				if tc.want != 0 {
					if srv.alertSent.Load() == 0 || got != tc.want {
						t.Fatalf("server alert %v (sent %v), want %v", got, srv.alertSent.Load() != 0, tc.want)
					}
					if p := srvErr.Load(); p == nil {
						t.Error("server Read did not fail")
					} else {
						t.Logf("server: %v", *p)
					}
					return
				}
				if srv.alertSent.Load() != 0 {
					t.Fatalf("server sent %v after %d KeyUpdates; drops %v", got, srv.ku.received.Load(), srv.Stats().Dropped)
				}
				// The connection still works both ways.
				cli.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := cli.Write([]byte("still there")); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 100)
				for {
					k, err := cli.Read(buf)
					if err != nil {
						t.Fatalf("client Read: %v", err)
					}
					if string(buf[:k]) == "still there" {
						break
					}
				}
				if tc.check != nil {
					tc.check(t, cli, srv, sk)
				}
			})
		})
	}
}

// srvKU reads the server's KeyUpdate counts from its Tracer-less state:
// KeyUpdates it sent and its write epoch changes are in its Tracer
// (sc.Tracer), so this returns the write epochs past 3 from the record
// layer under the write lock.
func srvKU(c *Conn) (sent uint64, writes []uint64, cur uint64) {
	c.out.Lock()
	defer c.out.Unlock()
	for e := uint64(4); e <= c.rl.writeCur; e++ {
		writes = append(writes, e)
	}
	return c.ku.sent.Load(), writes, c.rl.writeCur
}

// TestIntegrityLimit13 sets the server's integrity limit to 16 records
// and sends it forged DTLSCiphertext records (RFC 9147 §4.5.3): at 14
// failures (7/8) it asks for a KeyUpdate with update_requested; 15 leave
// it running; the 16th closes the connection with bad_record_mac and
// ErrAEADIntegrityLimit.
func TestIntegrityLimit13(t *testing.T) {
	const limit = 16
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: lossDelay})
		cc, sc := kuConfigs(t, suiteTLSAES128GCMSHA256, 1)
		sk := newKUCounter()
		sc.Tracer = sk.trace
		cli, srv := kuPair(t, n, cc, sc, func(cli, srv *Conn) { srv.ku.testFailLimit = limit })
		defer cli.Close()
		var srvErr atomic.Pointer[error]
		var wg sync.WaitGroup
		wg.Go(func() {
			buf := make([]byte, 100)
			for {
				if _, err := srv.Read(buf); err != nil {
					srvErr.Store(&err)
					return
				}
			}
		})
		defer wg.Wait()
		defer srv.Close()
		rng := mrand.New(mrand.NewPCG(1, 2))
		forge := func() {
			// Epoch bits 3, 16-bit sequence number, length, and 32
			// bytes no key opens.
			rec := []byte{0x2f, 0, 0, 0, 32}
			for range 32 {
				rec = append(rec, byte(rng.Uint32()))
			}
			n.Inject(lossClientAddr, lossServerAddr, rec)
			settle()
		}
		for tries := 0; srv.drops[dropBadMAC].Load() < limit-1 && tries < 100; tries++ {
			forge()
		}
		if got := srv.drops[dropBadMAC].Load(); got != limit-1 {
			t.Fatalf("%d forgeries failed, want %d", got, limit-1)
		}
		if p := srvErr.Load(); p != nil {
			t.Fatalf("server ended before the limit: %v", *p)
		}
		sk.mu.Lock()
		req := sk.requested
		sk.mu.Unlock()
		if req != 1 {
			t.Errorf("server sent %d KeyUpdate(update_requested), want 1 (at %d failures)", req, limit/aeadKeyUpdateDen*aeadKeyUpdateNum)
		}
		for tries := 0; srvErr.Load() == nil && tries < 100; tries++ {
			forge()
		}
		p := srvErr.Load()
		if p == nil || !errors.Is(*p, ErrAEADIntegrityLimit) {
			t.Fatalf("server error %v, want ErrAEADIntegrityLimit", p)
		}
		if a := alert(srv.alertSent.Load() - 1); a != alertBadRecordMAC {
			t.Errorf("server sent %v, want bad_record_mac", a)
		}
		if got := srv.drops[dropBadMAC].Load(); got != limit-1 {
			// The record at the limit ends the connection instead of
			// being counted as a drop.
			t.Errorf("%d drops counted", got)
		}
		t.Logf("server: %v", *p)
	})
}

// TestUpdateKeysWhileReading13 calls UpdateKeys on a Listener's
// connection while another goroutine's Read is blocked on it: the Read is
// woken (the connection's interrupt), sends the KeyUpdate, and takes the
// ACK; the server's write side and the client's read side reach epoch 4,
// and the echo goes on.
func TestUpdateKeysWhileReading13(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: lossDelay})
		cc, sc := kuConfigs(t, suiteTLSAES128GCMSHA256, 1)
		ck, sk := newKUCounter(), newKUCounter()
		cc.Tracer, sc.Tracer = ck.trace, sk.trace
		spc, err := n.ListenPacket(lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		l, err := NewListener(spc, sc)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan *Conn, 1)
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			c := nc.(*Conn)
			defer c.Close()
			if err := c.Handshake(); err != nil {
				return
			}
			accepted <- c
			buf := make([]byte, 100)
			for {
				k, err := c.Read(buf)
				if err != nil {
					return
				}
				c.Write(buf[:k])
			}
		})
		cconn, err := n.Dial(lossClientAddr, lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		cli := Client(cconn, cc)
		defer cli.Close()
		if err := cli.Handshake(); err != nil {
			t.Fatal(err)
		}
		srv := <-accepted
		buf := make([]byte, 100)
		// The client's Read takes the server's ACK of its Finished and
		// its ticket, so that the server is idle in Read.
		cli.SetReadDeadline(time.Now().Add(time.Second))
		cli.Read(buf)
		if err := srv.UpdateKeys(true); err != nil {
			t.Fatal(err)
		}
		for range 20 {
			cli.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			cli.Write([]byte("x"))
			cli.Read(buf)
			if _, sw, _ := sk.snapshot(); len(sw) == 1 {
				if _, cw, _ := ck.snapshot(); len(cw) == 1 {
					break
				}
			}
		}
		if kus, sw, _ := sk.snapshot(); kus != 1 || len(sw) != 1 || sw[0] != 4 {
			t.Errorf("server: %d KeyUpdates, write epochs %v", kus, sw)
		}
		if kus, cw, _ := ck.snapshot(); kus != 1 || len(cw) != 1 || cw[0] != 4 {
			t.Errorf("client: %d KeyUpdates, write epochs %v (it must answer update_requested)", kus, cw)
		}
		cli.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := cli.Write([]byte("after")); err != nil {
			t.Fatal(err)
		}
		for {
			k, err := cli.Read(buf)
			if err != nil {
				t.Fatalf("echo after the KeyUpdates: %v", err)
			}
			if string(buf[:k]) == "after" {
				break
			}
		}
		cli.Close()
	})
}
