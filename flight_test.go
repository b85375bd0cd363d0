package dtls

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// t0 is the start of the virtual clock; tests advance plain time.Time
// values and never sleep.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testBody returns n deterministic bytes that differ between seeds.
func testBody(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed*31 + byte(i*7+i>>8)
	}
	return b
}

// fragment encodes one handshake fragment: header + data, with
// fragment_length = len(data).
func fragment(typ handshakeType, length int, seq uint16, off int, data []byte) []byte {
	return rawFragment(typ, length, seq, off, len(data), data)
}

// rawFragment encodes a header with an arbitrary fragment_length.
func rawFragment(typ handshakeType, length int, seq uint16, off, fragLen int, data []byte) []byte {
	h := handshakeHeader{typ: typ, length: uint32(length), messageSeq: seq, fragmentOffset: uint32(off), fragmentLength: uint32(fragLen)}
	return append(h.appendTo(nil), data...)
}

func drain(rx *handshakeTransport) []inMessage {
	var msgs []inMessage
	for {
		m, ok := rx.nextMessage()
		if !ok {
			return msgs
		}
		msgs = append(msgs, m)
	}
}

func flatten(dgs [][]outRecord) []outRecord {
	var recs []outRecord
	for _, dg := range dgs {
		recs = append(recs, dg...)
	}
	return recs
}

func datagramSize(dg []outRecord, overhead func(uint64) int) int {
	n := 0
	for _, r := range dg {
		n += recordHeaderLen + recordOverhead(overhead, r.epoch) + len(r.data)
	}
	return n
}

// feed hands every handshake record to rx and fails on any drop.
func feed(t *testing.T, rx *handshakeTransport, recs []outRecord, now time.Time) {
	t.Helper()
	for _, r := range recs {
		if r.typ != recordTypeHandshake {
			continue
		}
		if _, dropped, reason := rx.handleRecord(r.epoch, r.data, now); dropped != 0 {
			t.Fatalf("record dropped: %d, %s", dropped, reason)
		}
		if rx.bufferedBytes() > maxHandshakeBuffered {
			t.Fatalf("buffered %d > maxHandshakeBuffered", rx.bufferedBytes())
		}
	}
}

type sentMessage struct {
	epoch      uint64
	typ        handshakeType
	body       []byte
	transcript []byte
}

func checkMessages(t *testing.T, got []inMessage, want []sentMessage, firstSeq uint16) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i, m := range got {
		w := want[i]
		if m.seq != firstSeq+uint16(i) || m.typ != w.typ || m.epoch != w.epoch {
			t.Errorf("message %d: seq %d type %v epoch %d, want seq %d type %v epoch %d", i, m.seq, m.typ, m.epoch, firstSeq+uint16(i), w.typ, w.epoch)
		}
		if !bytes.Equal(m.body, w.body) {
			t.Errorf("message %d (%v): body differs (len %d, want %d)", i, m.typ, len(m.body), len(w.body))
		}
		if tr := m.transcript(); !bytes.Equal(tr, w.transcript) {
			t.Errorf("message %d (%v): transcript differs", i, m.typ)
		}
	}
}

// checkFragmentation verifies that each message's fragments tile its body
// exactly, without overlap or bytes past its end (OpenSSL CVE-2026-84782:
// a retransmission that reads past a half-written message).
func checkFragmentation(t *testing.T, recs []outRecord, want []sentMessage) {
	t.Helper()
	covered := make(map[uint16]int) // seq -> next expected offset
	for _, r := range recs {
		if r.typ == recordTypeChangeCipherSpec {
			if !bytes.Equal(r.data, []byte{1}) {
				t.Fatalf("ChangeCipherSpec payload %x", r.data)
			}
			continue
		}
		var h handshakeHeader
		if !h.unmarshal(r.data) || int(h.fragmentLength) != len(r.data)-handshakeHeaderLen {
			t.Fatalf("record does not hold exactly one valid fragment")
		}
		if len(r.data) > maxPlaintext {
			t.Fatalf("record of %d bytes exceeds maxPlaintext", len(r.data))
		}
		if int(h.fragmentOffset) != covered[h.messageSeq] {
			t.Fatalf("seq %d: fragment at %d, want %d (fragments must be contiguous and not overlap)", h.messageSeq, h.fragmentOffset, covered[h.messageSeq])
		}
		w := want[h.messageSeq]
		if !bytes.Equal(r.data[handshakeHeaderLen:], w.body[h.fragmentOffset:h.fragmentOffset+h.fragmentLength]) {
			t.Fatalf("seq %d: fragment bytes differ", h.messageSeq)
		}
		covered[h.messageSeq] += int(h.fragmentLength)
		if h.fragmentLength == 0 && h.length != 0 {
			t.Fatalf("empty fragment of a non-empty message")
		}
	}
	for seq, w := range want {
		if covered[uint16(seq)] != len(w.body) {
			t.Fatalf("seq %d: fragments cover %d of %d bytes", seq, covered[uint16(seq)], len(w.body))
		}
	}
}

func TestFlightFragmentation(t *testing.T) {
	sizes := []int{0, 1, 500, 3000, 20000}
	types := []handshakeType{typeServerHelloDone, typeHelloRequest, typeServerHello, typeServerKeyExchange, typeCertificate}
	for _, mtu := range []int{1200, 300, minMTU} {
		for _, ov := range []int{0, 24, 29} {
			t.Run(fmt.Sprintf("mtu=%d/overhead=%d", mtu, ov), func(t *testing.T) {
				overhead := func(uint64) int { return ov }
				tx := newHandshakeTransport(mtu, 0, 0)
				var sent []sentMessage
				for i, n := range sizes {
					body := testBody(n, byte(i))
					tr := tx.queueMessage(0, types[i], body)
					h := handshakeHeader{typ: types[i], length: uint32(n), messageSeq: uint16(i), fragmentLength: uint32(n)}
					if want := append(h.appendTo(nil), body...); !bytes.Equal(tr, want) {
						t.Fatalf("queueMessage transcript for %d bytes is not header(offset 0)+body", n)
					}
					sent = append(sent, sentMessage{0, types[i], body, tr})
				}
				dgs := tx.flightDatagrams(overhead)
				for i, dg := range dgs {
					if n := datagramSize(dg, overhead); n > mtu {
						t.Fatalf("datagram %d is %d bytes > mtu %d", i, n, mtu)
					}
				}
				if again := tx.flightDatagrams(overhead); !reflect.DeepEqual(again, dgs) {
					t.Fatalf("retransmission fragments differently")
				}
				recs := flatten(dgs)
				checkFragmentation(t, recs, sent)

				// A second fragmentation at another MTU overlaps the first
				// at different boundaries with the same bytes.
				other := newHandshakeTransport(mtu*2+17, 0, 0)
				for _, m := range sent {
					other.queueMessage(m.epoch, m.typ, m.body)
				}
				otherRecs := flatten(other.flightDatagrams(overhead))

				rng := rand.New(rand.NewPCG(uint64(mtu), uint64(ov)))
				shuffled := func(rs []outRecord) []outRecord {
					rs = append([]outRecord(nil), rs...)
					rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
					return rs
				}
				reversed := append([]outRecord(nil), recs...)
				for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
					reversed[i], reversed[j] = reversed[j], reversed[i]
				}
				orders := []struct {
					name string
					recs []outRecord
				}{
					{"in order", recs},
					{"reversed", reversed},
					{"shuffled", shuffled(recs)},
					{"duplicated", shuffled(append(append([]outRecord(nil), recs...), recs...))},
					{"overlapping", shuffled(append(append([]outRecord(nil), recs...), otherRecs...))},
				}
				for _, o := range orders {
					rx := newHandshakeTransport(mtu, 0, 0)
					feed(t, rx, o.recs, t0)
					checkMessages(t, drain(rx), sent, 0)
					if rx.bufferedBytes() != 0 {
						t.Errorf("%s: %d bytes still buffered after delivery", o.name, rx.bufferedBytes())
					}
				}
			})
		}
	}
}

func TestFlightPacking(t *testing.T) {
	t.Run("small messages share a datagram", func(t *testing.T) {
		tx := newHandshakeTransport(1200, 0, 0)
		for i, n := range []int{70, 0, 200, 38} {
			tx.queueMessage(0, typeServerHello+handshakeType(i), testBody(n, byte(i)))
		}
		dgs := tx.flightDatagrams(nil)
		if len(dgs) != 1 || len(dgs[0]) != 4 {
			t.Fatalf("got %d datagrams (%d records in the first), want 1 datagram of 4 records", len(dgs), len(dgs[0]))
		}
	})
	t.Run("a message that fits an empty datagram is not split", func(t *testing.T) {
		tx := newHandshakeTransport(1200, 0, 0)
		tx.queueMessage(0, typeCertificate, testBody(1000, 1))
		tx.queueMessage(0, typeServerKeyExchange, testBody(500, 2))
		dgs := tx.flightDatagrams(nil)
		if len(dgs) != 2 || len(dgs[0]) != 1 || len(dgs[1]) != 1 {
			t.Fatalf("got %v datagrams, want the 500-byte message whole in a second datagram", len(dgs))
		}
	})
	t.Run("a large message fills the datagram it starts in", func(t *testing.T) {
		tx := newHandshakeTransport(1200, 0, 0)
		tx.queueMessage(0, typeServerHello, testBody(100, 1))
		tx.queueMessage(0, typeCertificate, testBody(3000, 2))
		dgs := tx.flightDatagrams(nil)
		if len(dgs[0]) != 2 {
			t.Fatalf("first datagram has %d records, want ServerHello and the start of Certificate", len(dgs[0]))
		}
		for i, dg := range dgs {
			if n := datagramSize(dg, nil); n > 1200 || (i < len(dgs)-1 && n != 1200) {
				t.Errorf("datagram %d: %d bytes, want every datagram but the last full", i, n)
			}
		}
	})
	t.Run("ChangeCipherSpec in the middle of a flight keeps its place", func(t *testing.T) {
		overhead := func(epoch uint64) int {
			if epoch == 0 {
				return 0
			}
			return 29
		}
		for _, mtu := range []int{1200, minMTU} {
			tx := newHandshakeTransport(mtu, 0, 0)
			cke := tx.queueMessage(0, typeClientKeyExchange, testBody(100, 1))
			tx.queueChangeCipherSpec(0)
			fin := tx.queueMessage(1, typeFinished, testBody(finishedVerifyLen, 2))
			dgs := tx.flightDatagrams(overhead)
			for _, dg := range dgs {
				if n := datagramSize(dg, overhead); n > mtu {
					t.Fatalf("mtu %d: datagram of %d bytes", mtu, n)
				}
			}
			var kinds []string
			for _, r := range flatten(dgs) {
				kinds = append(kinds, fmt.Sprintf("%v/%d", r.typ, r.epoch))
			}
			recs := flatten(dgs)
			ccs := -1
			for i, r := range recs {
				if r.typ == recordTypeChangeCipherSpec {
					if ccs >= 0 || r.epoch != 0 || !bytes.Equal(r.data, []byte{1}) {
						t.Fatalf("mtu %d: bad ChangeCipherSpec records: %v", mtu, kinds)
					}
					ccs = i
				}
			}
			for i, r := range recs {
				if r.typ == recordTypeHandshake && (i < ccs) != (r.epoch == 0) {
					t.Fatalf("mtu %d: order %v: epoch-0 handshake must precede the CCS, epoch-1 follow it", mtu, kinds)
				}
			}
			if mtu == 1200 && len(dgs) != 1 {
				t.Errorf("mtu 1200: %d datagrams, want the whole flight in one", len(dgs))
			}
			rx := newHandshakeTransport(mtu, 0, 0)
			feed(t, rx, recs, t0)
			checkMessages(t, drain(rx), []sentMessage{
				{0, typeClientKeyExchange, testBody(100, 1), cke},
				{1, typeFinished, testBody(finishedVerifyLen, 2), fin},
			}, 0)
		}
	})
	t.Run("MTU is clamped", func(t *testing.T) {
		if got := newHandshakeTransport(10, 0, 0).mtu; got != minMTU {
			t.Errorf("mtu 10 → %d, want minMTU", got)
		}
		if got := newHandshakeTransport(0, 0, 0).mtu; got != defaultMTU {
			t.Errorf("mtu 0 → %d, want defaultMTU", got)
		}
		if got := newHandshakeTransport(1<<20, 0, 0).mtu; got != maxMTU {
			t.Errorf("mtu 1<<20 → %d, want maxMTU", got)
		}
	})
	t.Run("records never exceed maxPlaintext", func(t *testing.T) {
		tx := newHandshakeTransport(maxMTU, 0, 0)
		body := testBody(maxHandshakeMessageLen, 3)
		tx.queueMessage(0, typeCertificate, body)
		for _, r := range flatten(tx.flightDatagrams(nil)) {
			if len(r.data) > maxPlaintext {
				t.Fatalf("record of %d bytes", len(r.data))
			}
		}
	})
	t.Run("absurd overhead still terminates", func(t *testing.T) {
		tx := newHandshakeTransport(minMTU, 0, 0)
		tx.queueMessage(0, typeCertificate, testBody(300, 3))
		tx.queueMessage(0, typeServerHelloDone, nil)
		recs := flatten(tx.flightDatagrams(func(uint64) int { return 1 << 30 }))
		rx := newHandshakeTransport(minMTU, 0, 0)
		feed(t, rx, recs, t0)
		if got := drain(rx); len(got) != 2 {
			t.Fatalf("got %d messages", len(got))
		}
	})
	t.Run("oversized body is refused", func(t *testing.T) {
		tx := newHandshakeTransport(0, 0, 0)
		if tr := tx.queueMessage(0, typeCertificate, make([]byte, maxOutgoingMessageLen+1)); tr != nil || len(tx.flight) != 0 {
			t.Fatalf("a body over 2^24-1 bytes was queued")
		}
	})
}

func TestFlightWholeMessageIsCopied(t *testing.T) {
	rx := newHandshakeTransport(0, 0, 0)
	payload := fragment(typeServerHello, 5, 0, 0, []byte("hello"))
	rx.handleRecord(0, payload, t0)
	clear(payload) // the caller reuses its datagram buffer
	m, ok := rx.nextMessage()
	if !ok || string(m.body) != "hello" {
		t.Fatalf("got %q, %v", m.body, ok)
	}
}

func TestFlightRetransmissionTimer(t *testing.T) {
	tx := newHandshakeTransport(1200, time.Second, time.Second)
	if _, ok := tx.deadline(); ok {
		t.Fatal("timer armed before anything was sent")
	}
	tx.queueMessage(0, typeClientHello, testBody(100, 1))
	tx.flightDatagrams(nil)
	now := t0
	tx.flightSent(now)
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i, w := range want {
		d, ok := tx.deadline()
		if !ok || d != now.Add(w*time.Second) {
			t.Fatalf("retransmission %d: deadline %v (armed %v), want now+%ds", i, d.Sub(now), ok, w)
		}
		if tx.timerFired(d.Add(-time.Nanosecond)) {
			t.Fatalf("retransmission %d: fired before the deadline", i)
		}
		now = d
		if !tx.timerFired(now) {
			t.Fatalf("retransmission %d: did not fire at the deadline", i)
		}
		if tx.timerFired(now) {
			t.Fatalf("retransmission %d: fired twice", i)
		}
		if _, ok := tx.deadline(); ok {
			t.Fatalf("retransmission %d: still armed after firing", i)
		}
		tx.flightSent(now)
	}

	// The peer's next flight starting to arrive does not stop the timer:
	// the rest of it may be lost, and resending ours makes the peer
	// resend it. The backed-off RTO is kept for our next flight, but no
	// more than maxRetainedRTO.
	tx.handleRecord(0, fragment(typeHelloVerifyRequest, 3, 0, 0, []byte{1, 2, 3}), now)
	if _, ok := tx.deadline(); !ok {
		t.Fatal("timer stopped by the first fragment of the peer's next flight")
	}
	if tx.rto != maxRetainedRTO {
		t.Fatalf("rto %v after a lossy flight, want it capped at %v", tx.rto, maxRetainedRTO)
	}
	// Building our next flight stops the old timer; sending it arms the
	// retained RTO.
	tx.queueMessage(0, typeClientHello, testBody(100, 2))
	if _, ok := tx.deadline(); ok {
		t.Fatal("timer of the old flight still armed after a new flight was queued")
	}
	tx.flightSent(now)
	if d, ok := tx.deadline(); !ok || d != now.Add(maxRetainedRTO) {
		t.Fatalf("deadline now+%v (armed %v), want now+%v", d.Sub(now), ok, maxRetainedRTO)
	}
	// Once the handshake is over, finalFlight stops it for good.
	tx.finalFlight()
	if tx.timerFired(now.Add(time.Hour)) {
		t.Fatal("timer fired after finalFlight")
	}
}

func TestFlightRTOFollowsRTT(t *testing.T) {
	tx := newHandshakeTransport(1200, 100*time.Millisecond, 100*time.Millisecond)
	tx.queueMessage(0, typeClientHello, testBody(10, 1))
	tx.flightSent(t0)
	if !tx.timerFired(t0.Add(100 * time.Millisecond)) {
		t.Fatal("no timeout")
	}
	tx.flightSent(t0.Add(100 * time.Millisecond)) // rto now 200ms
	tx.handleRecord(0, fragment(typeHelloVerifyRequest, 1, 0, 0, []byte{9}), t0.Add(150*time.Millisecond))
	if tx.rto != 200*time.Millisecond {
		t.Fatalf("rto %v, want 200ms kept after a retransmitted flight", tx.rto)
	}
	if tx.rtt.hasMeasurement() {
		t.Fatalf("srtt %v from the answer to a retransmitted flight (Karn's rule)", tx.rtt.smoothedRTT())
	}
	// Next flight, answered without retransmission after 400ms: a slow
	// path. RTO = SRTT + 4·RTTVAR = 400 + 4·200 ms.
	tx.queueMessage(0, typeClientHello, testBody(20, 2))
	now := t0.Add(time.Second)
	tx.flightSent(now)
	if d, _ := tx.deadline(); d != now.Add(200*time.Millisecond) {
		t.Fatalf("deadline now+%v, want the kept RTO of 200ms", d.Sub(now))
	}
	tx.handleRecord(0, fragment(typeServerHello, 1, 1, 0, []byte{9}), now.Add(400*time.Millisecond))
	if tx.rto != 1200*time.Millisecond {
		t.Fatalf("rto %v after a 400ms round trip, want 1.2s", tx.rto)
	}
	// A fast exchange pulls it down, never below the initial timeout.
	for i := range 50 {
		tx.queueMessage(0, typeClientKeyExchange, testBody(20, 3))
		now = now.Add(10 * time.Second)
		tx.flightSent(now)
		tx.handleRecord(0, fragment(typeFinished, 1, uint16(2+i), 0, []byte{9}), now.Add(time.Millisecond))
		tx.nextMessage()
		tx.nextMessage()
	}
	if tx.rto != 100*time.Millisecond {
		t.Fatalf("rto %v after fast round trips, want the 100ms floor", tx.rto)
	}
}

// TestFlightDeadPeerBackoff: a flight nobody answers is sent six times in
// the first minute (1 s doubling), then once a minute, and the transport
// tells the caller to stop after maxRetransmissions.
func TestFlightDeadPeerBackoff(t *testing.T) {
	tx := newHandshakeTransport(1200, 0, 0)
	tx.queueMessage(0, typeClientHello, testBody(10, 1))
	now := t0
	tx.flightSent(now)
	sends := 1
	for !tx.retransmitLimitReached() {
		d, ok := tx.deadline()
		if !ok {
			t.Fatal("timer not armed")
		}
		now = d
		if !tx.timerFired(now) {
			t.Fatal("did not fire")
		}
		tx.flightSent(now)
		sends++
		if now.Sub(t0) <= time.Minute && sends > 6 {
			t.Fatalf("%d sends within the first minute", sends)
		}
	}
	// 6 sends by 31 s, then one every 60 s up to the 13th at 423 s.
	if sends != 1+maxRetransmissions || now.Sub(t0) != 423*time.Second {
		t.Fatalf("%d sends, the last at %v; want %d, at 423s", sends, now.Sub(t0), 1+maxRetransmissions)
	}
}

func TestFlightNewFlightDiscardsOld(t *testing.T) {
	tx := newHandshakeTransport(1200, 0, 0)
	tx.queueMessage(0, typeClientHello, testBody(50, 1))
	tx.flightSent(t0)
	// Nothing from the peer yet: a queue call appends to the same flight.
	tx.queueMessage(0, typeCertificate, testBody(10, 2))
	if len(tx.flight) != 2 {
		t.Fatalf("flight has %d entries, want 2", len(tx.flight))
	}
	tx.handleRecord(0, fragment(typeHelloVerifyRequest, 3, 0, 0, []byte{1, 2, 3}), t0.Add(time.Millisecond))
	if m, ok := tx.nextMessage(); !ok || m.typ != typeHelloVerifyRequest {
		t.Fatal("HelloVerifyRequest not delivered")
	}
	tr := tx.queueMessage(0, typeClientHello, testBody(60, 3))
	if len(tx.flight) != 1 || tx.flight[0].seq != 2 || tr[5] != 2 {
		t.Fatalf("new flight: %d entries, seq %d; want only the new ClientHello with seq 2", len(tx.flight), tx.flight[0].seq)
	}
	if _, ok := tx.deadline(); ok {
		t.Fatal("new flight has a timer before it was sent")
	}
}

// A server that answered the first ClientHello statelessly starts at 1,1.
func TestFlightStartAt(t *testing.T) {
	srv := newHandshakeTransport(1200, 0, 0)
	// A message already buffered for seq 0 falls out of the window.
	srv.handleRecord(0, fragment(typeClientHello, 4, 0, 0, []byte("ch-0")), t0)
	srv.startAt(1, 1)
	if srv.bufferedBytes() != 0 {
		t.Fatalf("%d bytes buffered outside the window after startAt", srv.bufferedBytes())
	}
	srv.handleRecord(0, fragment(typeClientHello, 4, 1, 0, []byte("ch-1")), t0)
	m, ok := srv.nextMessage()
	if !ok || m.seq != 1 || string(m.body) != "ch-1" {
		t.Fatalf("got %v %q", ok, m.body)
	}
	tr := srv.queueMessage(0, typeServerHello, []byte("sh"))
	if tr[4] != 0 || tr[5] != 1 {
		t.Fatalf("ServerHello message_seq %d, want 1", int(tr[4])<<8|int(tr[5]))
	}
	// A late copy of the first ClientHello (seq 0) is old: no resend, since
	// nothing was sent.
	if resend, dropped, _ := srv.handleRecord(0, fragment(typeClientHello, 4, 0, 0, []byte("ch-0")), t0.Add(time.Second)); resend || dropped != 0 {
		t.Fatalf("resend %v dropped %d", resend, dropped)
	}
}

// serverAfterClientHello returns a server transport that received a
// ClientHello (seq 0) and sent its flight (ServerHello, Certificate,
// ServerHelloDone) at t0, and the client's ClientHello records.
func serverAfterClientHello(t *testing.T) (*handshakeTransport, []outRecord) {
	t.Helper()
	cli := newHandshakeTransport(1200, 0, 0)
	cli.queueMessage(0, typeClientHello, testBody(5000, 1)) // 5 datagrams
	chRecs := flatten(cli.flightDatagrams(nil))
	if len(chRecs) != 5 {
		t.Fatalf("ClientHello in %d records, want 5", len(chRecs))
	}
	srv := newHandshakeTransport(1200, 0, 0)
	feed(t, srv, chRecs, t0.Add(-50*time.Millisecond))
	if len(drain(srv)) != 1 {
		t.Fatal("ClientHello not delivered")
	}
	srv.queueMessage(0, typeServerHello, testBody(80, 2))
	srv.queueMessage(0, typeCertificate, testBody(2000, 3))
	srv.queueMessage(0, typeServerHelloDone, nil)
	srv.flightDatagrams(nil)
	srv.flightSent(t0)
	return srv, chRecs
}

func TestFlightResendOnPeerRetransmission(t *testing.T) {
	srv, chRecs := serverAfterClientHello(t)
	countResends := func(start time.Time) int {
		n := 0
		for i, r := range chRecs {
			resend, dropped, reason := srv.handleRecord(r.epoch, r.data, start.Add(time.Duration(i)*time.Millisecond))
			if dropped != 0 {
				t.Fatalf("dropped %d: %s", dropped, reason)
			}
			if resend {
				n++
				srv.flightSent(start.Add(time.Duration(i) * time.Millisecond))
			}
		}
		return n
	}
	// Our flight crossed a retransmission sent just before it arrived.
	if n := countResends(t0.Add(10 * time.Millisecond)); n != 0 {
		t.Fatalf("%d resends right after sending, want 0", n)
	}
	// The client's timer fired: its 5-datagram flight causes one resend.
	if n := countResends(t0.Add(time.Second)); n != 1 {
		t.Fatalf("%d resends for one retransmitted flight, want 1", n)
	}
	// Another copy within minResendInterval of that resend: none.
	if n := countResends(t0.Add(time.Second + minResendInterval/2)); n != 0 {
		t.Fatalf("%d resends within minResendInterval, want 0", n)
	}
	if n := countResends(t0.Add(time.Second + minResendInterval + 10*time.Millisecond)); n != 1 {
		t.Fatalf("%d resends after minResendInterval, want 1", n)
	}
	// A resend re-arms the timer through flightSent without backing off.
	d, ok := srv.deadline()
	if want := t0.Add(time.Second + minResendInterval + 10*time.Millisecond).Add(defaultRetransmitTimeout); !ok || d != want {
		t.Fatalf("deadline %v (armed %v), want %v", d, ok, want)
	}
	// Even if the caller forgets flightSent, the rest of a burst does not
	// resend again.
	later := t0.Add(10 * time.Second)
	n := 0
	for _, r := range chRecs {
		if resend, _, _ := srv.handleRecord(r.epoch, r.data, later); resend {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d resends for a burst without flightSent, want 1", n)
	}
}

func TestFlightNoResendOnceThePeerMovedOn(t *testing.T) {
	srv, chRecs := serverAfterClientHello(t)
	// The client's next flight starts arriving...
	srv.handleRecord(0, fragment(typeClientKeyExchange, 100, 1, 0, testBody(50, 9)), t0.Add(2*time.Second))
	// ...so a stray old ClientHello does not make us resend a flight the
	// peer evidently has.
	for _, r := range chRecs {
		if resend, _, _ := srv.handleRecord(r.epoch, r.data, t0.Add(5*time.Second)); resend {
			t.Fatal("resend after the peer moved on")
		}
	}
}

func TestFlightFinalFlight(t *testing.T) {
	srv, _ := serverAfterClientHello(t)
	// Client flight 5: ClientKeyExchange (epoch 0), CCS, Finished (epoch 1).
	cli := newHandshakeTransport(1200, 0, 0)
	cli.startAt(1, 1)
	cli.queueMessage(0, typeClientKeyExchange, testBody(66, 4))
	cli.queueChangeCipherSpec(0)
	cli.queueMessage(1, typeFinished, testBody(12, 5))
	flight5 := flatten(cli.flightDatagrams(nil))
	now := t0.Add(100 * time.Millisecond)
	feed(t, srv, flight5, now)
	if got := drain(srv); len(got) != 2 || got[1].epoch != 1 {
		t.Fatalf("flight 5 not delivered: %d messages", len(got))
	}
	// Server's final flight: CCS + Finished.
	srv.queueChangeCipherSpec(0)
	srv.queueMessage(1, typeFinished, testBody(12, 6))
	srv.finalFlight()
	first := srv.flightDatagrams(nil)
	srv.flightSent(now)
	if _, ok := srv.deadline(); ok {
		t.Fatal("final flight armed a timer")
	}
	if srv.timerFired(now.Add(time.Hour)) {
		t.Fatal("final flight timer fired")
	}
	// The client's Finished was lost on the way back: it retransmits
	// flight 5, and we resend our final flight, once per burst.
	resends := 0
	for i, r := range flight5 {
		if r.typ != recordTypeHandshake {
			continue
		}
		resend, dropped, _ := srv.handleRecord(r.epoch, r.data, now.Add(time.Second+time.Duration(i)*time.Millisecond))
		if dropped != 0 {
			t.Fatal("dropped")
		}
		if resend {
			resends++
			if again := srv.flightDatagrams(nil); !reflect.DeepEqual(again, first) {
				t.Fatal("final flight changed")
			}
			srv.flightSent(now.Add(time.Second))
		}
	}
	if resends != 1 {
		t.Fatalf("%d resends of the final flight, want 1", resends)
	}
	if _, ok := srv.deadline(); ok {
		t.Fatal("resending the final flight armed a timer")
	}
	// finalFlight after flightSent disarms too.
	cli2 := newHandshakeTransport(0, 0, 0)
	cli2.queueMessage(1, typeFinished, testBody(12, 1))
	cli2.flightSent(t0)
	cli2.finalFlight()
	if _, ok := cli2.deadline(); ok {
		t.Fatal("finalFlight after flightSent left the timer armed")
	}
}

type testRecord struct {
	epoch uint64
	data  []byte
}

func rec(data ...[]byte) testRecord { return testRecord{0, bytes.Join(data, nil)} }
func recEpoch(epoch uint64, data ...[]byte) testRecord {
	return testRecord{epoch, bytes.Join(data, nil)}
}

type wantMessage struct {
	typ  handshakeType
	body []byte
}

// TestFlightRejections is the misbehaving-peer table for the reassembler.
// Each row names the advisory whose class of bug it rules out.
func TestFlightRejections(t *testing.T) {
	b100 := testBody(100, 1)
	alt100 := testBody(100, 2)
	big := testBody(maxHandshakeMessageLen, 3)
	var manyEmpty [][]byte
	for range 1000 {
		manyEmpty = append(manyEmpty, rawFragment(typeCertificate, 100, 0, 50, 0, nil))
	}

	tests := []struct {
		name        string
		advisory    string
		recs        []testRecord
		wantDropped int
		wantReason  string // of the last drop
		want        []wantMessage
		check       func(t *testing.T, rx *handshakeTransport)
	}{
		{
			name: "message_seq past the reorder window is dropped", advisory: "tinydtls #273",
			recs:        []testRecord{rec(fragment(typeServerHello, 3, maxReorderMessages, 0, []byte("abc")))},
			wantDropped: 1, wantReason: fragTooFarAhead,
			check: func(t *testing.T, rx *handshakeTransport) {
				if rx.bufferedBytes() != 0 {
					t.Errorf("buffered %d", rx.bufferedBytes())
				}
			},
		},
		{
			name: "last message_seq inside the reorder window is buffered", advisory: "tinydtls #273",
			recs: []testRecord{rec(fragment(typeServerHello, 3, maxReorderMessages-1, 0, []byte("abc")))},
			check: func(t *testing.T, rx *handshakeTransport) {
				if rx.bufferedBytes() != 3 {
					t.Errorf("buffered %d, want 3", rx.bufferedBytes())
				}
			},
		},
		{
			name: "declared length above maxHandshakeMessageLen is refused before allocating", advisory: "OpenSSL CVE-2026-95690, pion CVE-2022-29189",
			recs:        []testRecord{rec(fragment(typeCertificate, maxHandshakeMessageLen+1, 0, 0, b100))},
			wantDropped: 1, wantReason: fragBadHeader,
		},
		{
			name: "fragment past the declared length", advisory: "GnuTLS CVE-2026-33846",
			recs:        []testRecord{rec(fragment(typeCertificate, 100, 0, 50, b100[:60]))},
			wantDropped: 1, wantReason: fragBadHeader,
		},
		{
			name: "truncated header", advisory: "pion CVE-2022-29190",
			recs:        []testRecord{rec(fragment(typeServerHello, 3, 0, 0, []byte("abc"))[:11])},
			wantDropped: 1, wantReason: fragTruncatedHeader,
		},
		{
			name: "trailing bytes after a valid fragment", advisory: "pion CVE-2022-29190",
			recs:        []testRecord{rec(fragment(typeServerHello, 3, 0, 0, []byte("abc")), []byte{1, 2, 3, 4, 5})},
			wantDropped: 1, wantReason: fragTruncatedHeader,
			want: []wantMessage{{typeServerHello, []byte("abc")}},
		},
		{
			name: "fragment shorter than fragment_length ends the record", advisory: "class of mbedTLS CVE-2022-35409, tinydtls #70: a length that runs past the data",
			recs: []testRecord{rec(
				rawFragment(typeCertificate, 100, 0, 0, 100, b100[:50]),
			), rec(
				// The inner bytes look like a valid fragment but belong to
				// the truncated one: nothing of this record is used.
				rawFragment(typeCertificate, 100, 0, 0, 100, fragment(typeServerHello, 3, 0, 0, []byte("abc"))),
			)},
			wantDropped: 2, wantReason: fragTruncatedFragment,
			check: func(t *testing.T, rx *handshakeTransport) {
				if rx.bufferedBytes() != 0 {
					t.Errorf("buffered %d", rx.bufferedBytes())
				}
			},
		},
		{
			name: "fragments disagree on type", advisory: "GnuTLS CVE-2026-33846",
			recs: []testRecord{
				rec(fragment(typeCertificate, 100, 0, 0, b100[:50])),
				rec(fragment(typeServerKeyExchange, 100, 0, 50, b100[50:])),
			},
			wantDropped: 1, wantReason: fragInconsistent,
		},
		{
			name: "fragments disagree on length", advisory: "GnuTLS CVE-2026-33846",
			recs: []testRecord{
				rec(fragment(typeCertificate, 100, 0, 0, b100[:50])),
				rec(fragment(typeCertificate, 200, 0, 50, testBody(150, 9))),
				rec(fragment(typeCertificate, 100, 0, 50, b100[50:])),
			},
			wantDropped: 1, wantReason: fragInconsistent,
			want: []wantMessage{{typeCertificate, b100}},
		},
		{
			name: "a shorter length cannot complete a message early", advisory: "GnuTLS CVE-2026-33846",
			recs: []testRecord{
				rec(fragment(typeCertificate, 100, 0, 0, b100[:50])),
				rec(fragment(typeCertificate, 50, 0, 0, b100[:50])),
			},
			wantDropped: 1, wantReason: fragInconsistent,
		},
		{
			name: "a message spanning a key change", advisory: "wolfSSL CVE-2023-6937",
			recs: []testRecord{
				recEpoch(0, fragment(typeFinished, 100, 0, 0, b100[:50])),
				recEpoch(1, fragment(typeFinished, 100, 0, 50, b100[50:])),
				recEpoch(0, fragment(typeFinished, 100, 0, 50, b100[50:])),
			},
			wantDropped: 1, wantReason: fragInconsistent,
			want: []wantMessage{{typeFinished, b100}},
		},
		{
			name: "overlap with different bytes: first writer wins", advisory: "GnuTLS CVE-2026-33846",
			recs: []testRecord{
				rec(fragment(typeCertificate, 100, 0, 0, b100[:60])),
				rec(fragment(typeCertificate, 100, 0, 40, alt100[40:])),
				rec(fragment(typeCertificate, 100, 0, 40, b100[40:])),
			},
			wantDropped: 1, wantReason: fragOverlapMismatch,
			want: []wantMessage{{typeCertificate, b100}},
		},
		{
			name: "overlap with equal bytes is fine", advisory: "RFC 6347 §4.2.3",
			recs: []testRecord{
				rec(fragment(typeCertificate, 100, 0, 40, b100[40:])),
				rec(fragment(typeCertificate, 100, 0, 0, b100[:60])),
				rec(fragment(typeCertificate, 100, 0, 10, b100[10:20])),
			},
			want: []wantMessage{{typeCertificate, b100}},
		},
		{
			name: "a different copy of a complete buffered message", advisory: "GnuTLS CVE-2026-33846",
			recs: []testRecord{
				rec(fragment(typeCertificate, 100, 1, 0, b100)),
				rec(fragment(typeCertificate, 100, 1, 0, alt100)),
				rec(fragment(typeCertificate, 100, 1, 30, alt100[30:31])),
				rec(fragment(typeCertificate, 100, 1, 30, b100[30:90])), // an equal duplicate is not a drop
				rec(fragment(typeServerHello, 3, 0, 0, []byte("abc"))),
			},
			wantDropped: 2, wantReason: fragOverlapMismatch,
			want: []wantMessage{{typeServerHello, []byte("abc")}, {typeCertificate, b100}},
		},
		{
			name: "zero-length fragment at a nonzero offset", advisory: "GnuTLS CVE-2026-33845",
			recs: []testRecord{
				rec(rawFragment(typeCertificate, 100, 0, 100, 0, nil)),
				rec(rawFragment(typeCertificate, 100, 0, 50, 0, nil)),
			},
			wantDropped: 2, wantReason: fragEmptyFragment,
			check: func(t *testing.T, rx *handshakeTransport) {
				if rx.bufferedBytes() != 0 {
					t.Errorf("an empty fragment allocated %d bytes", rx.bufferedBytes())
				}
			},
		},
		{
			name: "zero-length fragments cannot complete a message", advisory: "GnuTLS CVE-2026-33845, OpenSSL CVE-2014-3507",
			recs: []testRecord{
				rec(fragment(typeCertificate, 100, 0, 0, b100[:99])),
				rec(rawFragment(typeCertificate, 100, 0, 99, 0, nil)),
				rec(rawFragment(typeCertificate, 100, 0, 100, 0, nil)),
			},
			wantDropped: 2, wantReason: fragEmptyFragment,
		},
		{
			name: "zero-length fragment at offset 0 of a non-empty message", advisory: "OpenSSL CVE-2014-3507",
			recs:        []testRecord{rec(rawFragment(typeCertificate, 100, 0, 0, 0, nil))},
			wantDropped: 1, wantReason: fragEmptyFragment,
		},
		{
			name: "zero-length message completes with one zero-length fragment", advisory: "GnuTLS CVE-2026-33845",
			recs: []testRecord{rec(fragment(typeServerHelloDone, 0, 0, 0, nil))},
			want: []wantMessage{{typeServerHelloDone, []byte{}}},
		},
		{
			name: "zero-length future message is buffered and delivered in order", advisory: "mbedTLS CVE-2026-50713",
			recs: []testRecord{
				rec(fragment(typeServerHelloDone, 0, 1, 0, nil)),
				rec(fragment(typeServerHelloDone, 0, 1, 0, nil)),
				rec(fragment(typeCertificate, 100, 0, 0, b100)),
			},
			want: []wantMessage{{typeCertificate, b100}, {typeServerHelloDone, []byte{}}},
		},
		{
			name: "a thousand empty fragments in one record terminate", advisory: "pion CVE-2022-29190",
			recs:        []testRecord{rec(manyEmpty...)},
			wantDropped: 1000, wantReason: fragEmptyFragment,
		},
		{
			name: "empty record", advisory: "tinydtls #59 (length 0 underflow)",
			recs:        []testRecord{rec()},
			wantDropped: 1, wantReason: fragEmptyRecord,
		},
		{
			name: "early messages cannot exceed maxHandshakeBuffered", advisory: "OpenSSL CVE-2026-95690, pion CVE-2022-29189, pion CVE-2026-135392",
			recs: func() []testRecord {
				var rs []testRecord
				for seq := uint16(1); seq < maxReorderMessages; seq++ {
					rs = append(rs, rec(fragment(typeCertificate, maxHandshakeMessageLen, seq, 0, []byte{1})))
				}
				return rs
			}(),
			wantDropped: maxReorderMessages - 1 - maxHandshakeBuffered/(maxHandshakeMessageLen+maxHandshakeMessageLen/8),
			wantReason:  fragBufferFull,
		},
		{
			name: "the next expected message evicts messages further ahead", advisory: "pion CVE-2026-135392 (without starving the handshake)",
			recs: func() []testRecord {
				var rs []testRecord
				for seq := uint16(1); seq < maxReorderMessages; seq++ {
					rs = append(rs, rec(fragment(typeCertificate, maxHandshakeMessageLen, seq, 0, []byte{1})))
				}
				for off := 0; off < len(big); off += 10000 {
					rs = append(rs, rec(fragment(typeCertificate, len(big), 0, off, big[off:min(off+10000, len(big))])))
				}
				return rs
			}(),
			wantDropped: maxReorderMessages - 1 - maxHandshakeBuffered/(maxHandshakeMessageLen+maxHandshakeMessageLen/8),
			wantReason:  fragBufferFull,
			want:        []wantMessage{{typeCertificate, big}},
		},
		{
			name: "fragments of a delivered message are old, not dropped", advisory: "RFC 6347 §4.2.2",
			recs: []testRecord{
				rec(fragment(typeServerHello, 3, 0, 0, []byte("abc"))),
				rec(fragment(typeServerHello, 3, 0, 0, []byte("xyz"))),
			},
			want: []wantMessage{{typeServerHello, []byte("abc")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rx := newHandshakeTransport(0, 0, 0)
			var got []inMessage
			dropped, reason := 0, ""
			for _, r := range tt.recs {
				_, d, why := rx.handleRecord(r.epoch, r.data, t0)
				if d > 0 {
					dropped, reason = dropped+d, why
				} else if why != "" {
					t.Errorf("reason %q without a drop", why)
				}
				if rx.bufferedBytes() > maxHandshakeBuffered {
					t.Fatalf("%s: buffered %d > %d", tt.advisory, rx.bufferedBytes(), maxHandshakeBuffered)
				}
				got = append(got, drain(rx)...)
			}
			if dropped != tt.wantDropped || reason != tt.wantReason {
				t.Errorf("%s: dropped %d (%q), want %d (%q)", tt.advisory, dropped, reason, tt.wantDropped, tt.wantReason)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%s: delivered %d messages, want %d", tt.advisory, len(got), len(tt.want))
			}
			for i, m := range got {
				if m.typ != tt.want[i].typ || !bytes.Equal(m.body, tt.want[i].body) {
					t.Errorf("%s: message %d is %v (%d bytes), want %v (%d bytes)", tt.advisory, i, m.typ, len(m.body), tt.want[i].typ, len(tt.want[i].body))
				}
			}
			if tt.check != nil {
				tt.check(t, rx)
			}
		})
	}
}

// checkAccounting recomputes the buffered bytes from the slots.
func checkAccounting(t *testing.T, rx *handshakeTransport) {
	t.Helper()
	sum := 0
	if rx.in == nil {
		if rx.bufferedBytes() != 0 {
			t.Fatalf("%d bytes buffered without reorder slots", rx.bufferedBytes())
		}
		return
	}
	for i := range rx.in {
		r := &rx.in[i]
		if !r.used {
			continue
		}
		sum += r.cost()
		if !rx.inWindow(uint32(r.seq)) || uint32(r.seq)%maxReorderMessages != uint32(i) {
			t.Fatalf("slot %d holds seq %d outside the window at %d", i, r.seq, rx.recvSeq)
		}
	}
	if sum != rx.bufferedBytes() || sum > maxHandshakeBuffered {
		t.Fatalf("bufferedBytes %d, slots hold %d (max %d)", rx.bufferedBytes(), sum, maxHandshakeBuffered)
	}
}

// FuzzReassembler splits the input into records (a control byte for the
// epoch and clock, a 2-byte length, the payload) and feeds them to
// handleRecord. It must never panic, hang or buffer more than
// maxHandshakeBuffered, and every delivered message must be consistent.
func FuzzReassembler(f *testing.F) {
	// Seeds from real flights at a small MTU, in and out of order.
	tx := newHandshakeTransport(minMTU, 0, 0)
	tx.queueMessage(0, typeServerHello, testBody(90, 1))
	tx.queueMessage(0, typeCertificate, testBody(700, 2))
	tx.queueMessage(0, typeServerHelloDone, nil)
	tx.queueChangeCipherSpec(0)
	tx.queueMessage(1, typeFinished, testBody(12, 3))
	recs := flatten(tx.flightDatagrams(func(e uint64) int { return 29 * int(e) }))
	encode := func(rs []outRecord) []byte {
		var b []byte
		for _, r := range rs {
			if r.typ != recordTypeHandshake {
				continue
			}
			b = append(b, byte(r.epoch), byte(len(r.data)>>8), byte(len(r.data)))
			b = append(b, r.data...)
		}
		return b
	}
	f.Add(encode(recs))
	rev := append([]outRecord(nil), recs...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	f.Add(encode(rev))

	f.Fuzz(func(t *testing.T, data []byte) {
		rx := newHandshakeTransport(minMTU, time.Second, time.Second)
		// Something sent, so the resend and timer paths run too.
		rx.queueMessage(0, typeClientHello, testBody(300, 7))
		rx.flightSent(t0)
		now := t0
		var next uint16
		for len(data) >= 3 {
			ctl, n := data[0], int(data[1])<<8|int(data[2])
			data = data[3:]
			n = min(n, len(data))
			payload := data[:n]
			data = data[n:]
			now = now.Add(time.Duration(ctl>>2) * 10 * time.Millisecond)

			resend, dropped, reason := rx.handleRecord(uint64(ctl&3), payload, now)
			if (dropped > 0) != (reason != "") || dropped < 0 {
				t.Fatalf("dropped %d with reason %q", dropped, reason)
			}
			checkAccounting(t, rx)
			for {
				m, ok := rx.nextMessage()
				if !ok {
					break
				}
				if m.seq != next {
					t.Fatalf("delivered seq %d, want %d", m.seq, next)
				}
				next++
				tr := m.transcript()
				var h handshakeHeader
				if !h.unmarshal(tr) || int(h.length) != len(m.body) || int(h.fragmentLength) != len(m.body) ||
					h.fragmentOffset != 0 || h.messageSeq != m.seq || h.typ != m.typ || len(tr) != handshakeHeaderLen+len(m.body) {
					t.Fatalf("inconsistent message %+v", h)
				}
			}
			checkAccounting(t, rx)
			if resend {
				rx.flightDatagrams(nil)
				rx.flightSent(now)
			}
			if rx.timerFired(now) {
				rx.flightSent(now)
			}
		}
	})
}
