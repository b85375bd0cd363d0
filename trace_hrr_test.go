package dtls

import (
	"sync"
	"testing"
)

// TestTraceHelloRetryRequest: a Tracer sees a DTLS 1.3 HelloRetryRequest
// as such (HandshakeTypeName says HelloRetryRequest), sent by the
// Listener's stateless gate and received by the client, while the real
// ServerHello that follows stays a ServerHello.
func TestTraceHelloRetryRequest(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	cc.MaxVersion, sc.MaxVersion = VersionDTLS13, VersionDTLS13
	var mu sync.Mutex
	seen := map[string][]string{}
	tracer := func(side string) func(*TraceEvent) {
		return func(e *TraceEvent) {
			if e.Kind == TraceHandshakeSent || e.Kind == TraceHandshakeReceived {
				mu.Lock()
				seen[side] = append(seen[side], e.Kind.String()+" "+HandshakeTypeName(e.HandshakeType))
				mu.Unlock()
			}
		}
	}
	cc.Tracer, sc.Tracer = tracer("client"), tracer("server")
	l, _ := echoServer(t, sc, nil)
	c, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c, "ping")
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	has := func(side, want string) bool {
		for _, s := range seen[side] {
			if s == want {
				return true
			}
		}
		return false
	}
	for _, w := range []struct{ side, ev string }{
		{"server", "handshake sent HelloRetryRequest"},
		{"client", "handshake received HelloRetryRequest"},
		{"server", "handshake sent ServerHello"},
		{"client", "handshake received ServerHello"},
	} {
		if !has(w.side, w.ev) {
			t.Errorf("%s trace lacks %q: %v", w.side, w.ev, seen[w.side])
		}
	}
}
