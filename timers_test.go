package dtls

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// Tests of the retransmission timer's defaults (RFC 6347 §4.2.4.1, RFC
// 9147 §5.8.2), of the round-trip times it learns from the cookie exchange
// and from a cached session, and of the bound on retransmissions.

func TestRTTStats(t *testing.T) {
	var r rttStats
	if r.hasMeasurement() {
		t.Fatal("zero rttStats has a measurement")
	}
	if _, ok := r.rto(0); ok {
		t.Fatal("rto without a sample")
	}
	// RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4·RTTVAR = 3R.
	r.update(100 * time.Millisecond)
	if d, ok := r.rto(0); !ok || d != 300*time.Millisecond {
		t.Fatalf("rto after one 100ms sample: %v, %v; want 300ms", d, ok)
	}
	// §2.3: RTTVAR = 3/4·50 + 1/4·|100-60| = 47.5ms; SRTT = 7/8·100 + 1/8·60 = 95ms.
	r.update(60 * time.Millisecond)
	if r.smoothedRTT() != 95*time.Millisecond || r.rttvar != 47500*time.Microsecond || r.latestRTT() != 60*time.Millisecond {
		t.Fatalf("srtt %v rttvar %v latest %v; want 95ms, 47.5ms, 60ms", r.smoothedRTT(), r.rttvar, r.latestRTT())
	}
	if d, _ := r.rto(time.Second); d != time.Second {
		t.Fatalf("rto %v, want the 1s floor", d)
	}
	r.update(time.Hour)
	if d, _ := r.rto(0); d != maxRetransmitTimeout {
		t.Fatalf("rto %v, want the %v cap", d, maxRetransmitTimeout)
	}
	var z rttStats
	z.update(0) // a zero sample still counts as a measurement
	if !z.hasMeasurement() {
		t.Fatal("a zero sample left no measurement")
	}
}

func TestRetransmitTimeoutDefaults(t *testing.T) {
	for _, tt := range []struct {
		name           string
		config         *Config
		initial, floor time.Duration
	}{
		{"nil", nil, time.Second, 100 * time.Millisecond},
		{"zero", &Config{}, time.Second, 100 * time.Millisecond},
		{"DTLS-SRTP", &Config{SRTPProtectionProfiles: []uint16{SRTP_AES128_CM_HMAC_SHA1_80}}, 400 * time.Millisecond, 100 * time.Millisecond},
		{"configured", &Config{RetransmitTimeout: 250 * time.Millisecond}, 250 * time.Millisecond, 250 * time.Millisecond},
		{"configured DTLS-SRTP", &Config{RetransmitTimeout: 2 * time.Second, SRTPProtectionProfiles: []uint16{SRTP_AES128_CM_HMAC_SHA1_80}}, 2 * time.Second, 2 * time.Second},
		{"too long", &Config{RetransmitTimeout: time.Hour}, maxRetransmitTimeout, maxRetransmitTimeout},
	} {
		initial, floor := tt.config.retransmitTimeouts()
		if initial != tt.initial || floor != tt.floor {
			t.Errorf("%s: initial %v floor %v, want %v and %v", tt.name, initial, floor, tt.initial, tt.floor)
		}
	}
}

func TestFlightSetInitialRTT(t *testing.T) {
	firstTimer := func(tx *handshakeTransport) time.Duration {
		t.Helper()
		tx.queueMessage(0, typeServerHello, testBody(10, 1))
		tx.flightSent(t0)
		d, ok := tx.deadline()
		if !ok {
			t.Fatal("no timer")
		}
		return d.Sub(t0)
	}
	for _, tt := range []struct {
		name           string
		initial, floor time.Duration
		rtt            time.Duration
		want           time.Duration
	}{
		{"no RTT", 0, 0, 0, time.Second},
		{"RTT 200ms", 0, 0, 200 * time.Millisecond, 300 * time.Millisecond},
		{"RTT 1s", 0, 0, time.Second, 1500 * time.Millisecond},
		{"RTT under the floor", 0, 0, 20 * time.Millisecond, minRetransmitTimeout},
		{"RTT of an hour", 0, 0, time.Hour, maxRetransmitTimeout},
		{"configured floor", 2 * time.Second, 2 * time.Second, 200 * time.Millisecond, 2 * time.Second},
		{"configured, longer RTT", 200 * time.Millisecond, 200 * time.Millisecond, time.Second, 1500 * time.Millisecond},
	} {
		tx := newHandshakeTransport(1200, tt.initial, tt.floor)
		tx.setInitialRTT(tt.rtt)
		if got := firstTimer(tx); got != tt.want {
			t.Errorf("%s: first timer %v, want %v", tt.name, got, tt.want)
		}
	}
	// Once the transport measured an RTT itself, a late external one is
	// ignored.
	tx := newHandshakeTransport(1200, 0, 0)
	tx.queueMessage(0, typeClientHello, testBody(10, 1))
	tx.flightSent(t0)
	tx.handleRecord(0, fragment(typeHelloVerifyRequest, 3, 0, 0, []byte{1, 2, 3}), t0.Add(40*time.Millisecond))
	tx.setInitialRTT(time.Second)
	if tx.rtt.smoothedRTT() != 40*time.Millisecond {
		t.Errorf("srtt %v, want the measured 40ms", tx.rtt.smoothedRTT())
	}
}

func TestFlightRetransmitLimit(t *testing.T) {
	tx := newHandshakeTransport(1200, 0, 0)
	tx.queueMessage(0, typeClientHello, testBody(10, 1))
	now := t0
	tx.flightSent(now)
	for i := range maxRetransmissions {
		if tx.retransmitLimitReached() {
			t.Fatalf("limit reached after %d retransmissions", i)
		}
		d, _ := tx.deadline()
		now = d
		if !tx.timerFired(now) {
			t.Fatal("timer did not fire")
		}
		tx.flightSent(now)
	}
	if !tx.retransmitLimitReached() {
		t.Fatalf("limit not reached after %d retransmissions", maxRetransmissions)
	}
	// A new flight starts counting again.
	tx.handleRecord(0, fragment(typeHelloVerifyRequest, 3, 0, 0, []byte{1, 2, 3}), now)
	tx.nextMessage()
	tx.queueMessage(0, typeClientHello, testBody(10, 2))
	tx.flightSent(now)
	if tx.retransmitLimitReached() {
		t.Fatal("limit carried over to the next flight")
	}
}

// TestHandshakeGivesUpAfterMaxRetransmissions: with a deadline longer than
// the backoff, a handshake with a dead peer ends after maxRetransmissions
// retransmissions of its flight, with an error that says so, instead of
// sending one flight a minute until the deadline.
func TestHandshakeGivesUpAfterMaxRetransmissions(t *testing.T) {
	checkNoGoroutineLeak(t)
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{Delay: lossDelay})
		cc, _ := lossConfigs(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		cc.HandshakeTimeout = 24 * time.Hour
		conn, err := n.Dial(lossClientAddr, lossServerAddr) // nobody listens there
		if err != nil {
			t.Fatal(err)
		}
		c := Client(conn, cc)
		defer c.Close()
		start := time.Now()
		err = c.Handshake()
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "gave up") || !strings.Contains(err.Error(), "12 retransmissions") {
			t.Fatalf("handshake with a black hole: %v", err)
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("error %v is not a timeout", err)
		}
		// 1+2+4+8+16+32 s, then 60 s seven times: the 12th retransmission
		// at 423 s, and its timer expires at 483 s.
		if want := 483 * time.Second; took != want {
			t.Errorf("gave up after %v, want %v", took, want)
		}
		if s := n.StatsTo(lossServerAddr); s.Sent != 1+maxRetransmissions {
			t.Errorf("%d ClientHellos sent, want %d", s.Sent, 1+maxRetransmissions)
		}
	})
}

// timerRecorder records the Timeout of every TraceTimerArmed event.
type timerRecorder struct {
	mu     sync.Mutex
	timers []time.Duration
}

func (r *timerRecorder) trace(ev *TraceEvent) {
	if ev.Kind == TraceTimerArmed {
		r.mu.Lock()
		r.timers = append(r.timers, ev.Timeout)
		r.mu.Unlock()
	}
}

func (r *timerRecorder) first(t *testing.T) time.Duration {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.timers) == 0 {
		t.Fatal("no timer armed")
	}
	return r.timers[0]
}

// TestListenerCookieRTT: the Listener measures the round trip from its
// stateless HelloVerifyRequest to the ClientHello that returns the cookie,
// and the server's first flight starts its timer at 1.5 times it (RFC 9147
// §5.8.2) instead of 1 s.
func TestListenerCookieRTT(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, tt := range []struct {
		oneWay time.Duration
		want   time.Duration
	}{
		{50 * time.Millisecond, 150 * time.Millisecond}, // RTT 100 ms
		{300 * time.Millisecond, 900 * time.Millisecond},
		{10 * time.Millisecond, minRetransmitTimeout}, // 1.5 × 20 ms is below the floor
	} {
		cc, sc := lossConfigs(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
		// DTLS 1.2: the 1.3 server does not yet time its stateless
		// HelloRetryRequest (a gap, not a 1.2-only feature).
		cc.MaxVersion = VersionDTLS12
		var rec timerRecorder
		sc.Tracer = rec.trace
		res := lossHandshake(t, netsim.Link{Delay: tt.oneWay}, 1, cc, sc)
		if res.err != nil {
			t.Fatal(res.err)
		}
		if got := rec.first(t); got != tt.want {
			t.Errorf("one-way delay %v: server's first timer %v, want %v", tt.oneWay, got, tt.want)
		}
	}
}

// TestClientCachedRTT: a client that resumes from its ClientSessionCache
// starts the timer at 1.5 times the round-trip time measured on the
// connection that made the session (RFC 9147 §5.8.2: "from previous
// connections to the same server"), and at 1 s when it knows nothing. In
// 1.3 the round trip is kept with the ticket (resume_dtls13.go), so a
// connection that closes before its NewSessionTicket leaves none.
func TestClientCachedRTT(t *testing.T) {
	inBothVersions(t, func(t *testing.T, vers uint16) {
		checkNoGoroutineLeak(t)
		cc, sc := lossConfigs(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
		cc.ClientSessionCache = NewLRUClientSessionCache(1)
		cc.MaxVersion = vers
		if vers == VersionDTLS13 {
			cc.CipherSuites = nil
		}
		link := netsim.Link{Delay: 40 * time.Millisecond} // every exchange takes 80 ms of virtual time
		for i, want := range []time.Duration{defaultRetransmitTimeout, 120 * time.Millisecond} {
			var rec timerRecorder
			cc.Tracer = rec.trace
			res := lossHandshake(t, link, uint64(i+1), cc, sc)
			if res.err != nil {
				t.Fatal(res.err)
			}
			if got := rec.first(t); got != want {
				t.Errorf("handshake %d: client's first timer %v, want %v", i+1, got, want)
			}
		}
	})
}
