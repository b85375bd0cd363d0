package dtls

import (
	"testing"
	"time"
)

// TestConfigTimeIsNotTheTransportClock: Config.Time moves the clock that
// certificates, sessions and cookies are checked against (crypto/tls's
// meaning), not the transport's: a handshake with a Config.Time years
// away from the wall clock completes, where the handshake deadline and the
// retransmission timer used to be computed from it and compared with
// socket deadlines on the wall clock (a clock in the past ended every
// handshake at once, one in the future never timed out).
func TestConfigTimeIsNotTheTransportClock(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, clock := range []time.Time{
		time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		t.Run(clock.Format("2006"), func(t *testing.T) {
			cc, sc := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
			fixed := func() time.Time { return clock }
			cc.Time, sc.Time = fixed, fixed
			cc.HandshakeTimeout, sc.HandshakeTimeout = 5*time.Second, 5*time.Second
			l, _ := echoServer(t, sc, nil)
			c, err := Dial("udp", l.Addr().String(), cc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			exchange(t, c, "ping")
		})
	}
}
