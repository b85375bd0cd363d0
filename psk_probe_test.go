package dtls

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// pskProbe dials a PSK server with client and returns the client's
// handshake error, the server's (from its Tracer) and the alerts the
// server sent.
func pskProbe(t *testing.T, server, client *Config) (clientErr error, serverErr string, alerts []alert) {
	t.Helper()
	var mu sync.Mutex
	failed := make(chan struct{})
	server.Tracer = func(ev *TraceEvent) {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Kind {
		case TraceAlertSent:
			alerts = append(alerts, alert(ev.Alert))
		case TraceHandshakeFailed:
			serverErr = ev.Reason
			close(failed)
		}
	}
	// Below the Listener's janitor interval: see TestHandshakeFailures.
	server.HandshakeTimeout = 500 * time.Millisecond
	client.HandshakeTimeout = 5 * time.Second
	l, _ := echoServer(t, server, nil)
	c, err := Dial("udp", l.Addr().String(), client)
	if err == nil {
		c.Close()
		t.Fatal("handshake succeeded")
	}
	select {
	case <-failed:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's handshake did not fail")
	}
	mu.Lock()
	defer mu.Unlock()
	return err, serverErr, slices.Clone(alerts)
}

// TestUnknownPSKIdentityHidden: by default a client cannot tell an unknown
// PSK identity from a known one with a wrong key (RFC 4279 §2; RFC 8446
// §6.2 lets a 1.3 server send decrypt_error for both): the server answers
// both the same way, while its own error names the identity. In 1.2 that
// is bad_record_mac once the client's Finished fails to authenticate, in
// 1.3 the decrypt_error of a binder that does not verify.
func TestUnknownPSKIdentityHidden(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, v := range []struct {
		name string
		vers uint16
		want alert
	}{{"1.2", VersionDTLS12, alertBadRecordMAC}, {"1.3", VersionDTLS13, alertDecryptError}} {
		t.Run(v.name, func(t *testing.T) {
			pinned := func(c *Config) *Config { c.MaxVersion = v.vers; return c }
			unknown := pinned(pskConfig())
			unknown.PSKIdentity = []byte("mallory")
			wrongKey := pinned(pskConfig())
			wrongKey.PSK = func([]byte) ([]byte, error) { return []byte("wrong key, same length"), nil }

			uErr, uServer, uAlerts := pskProbe(t, pinned(pskConfig()), unknown)
			wErr, wServer, wAlerts := pskProbe(t, pinned(pskConfig()), wrongKey)
			t.Logf("unknown identity: client %q, server alerts %v", uErr, uAlerts)
			t.Logf("wrong key: client %q, server alerts %v", wErr, wAlerts)
			if strings.Contains(uErr.Error(), "unknown PSK identity") {
				t.Errorf("the client learned the identity is unknown: %v", uErr)
			}
			if !slices.Equal(uAlerts, wAlerts) || !slices.Equal(uAlerts, []alert{v.want}) {
				t.Errorf("server alerts: unknown identity %v, wrong key %v; want both [%v]", uAlerts, wAlerts, v.want)
			}
			// The client receives the same alert either way.
			for _, err := range []error{uErr, wErr} {
				if !strings.Contains(err.Error(), "peer sent alert: "+v.want.String()) {
					t.Errorf("client error %q does not carry %v", err, v.want)
				}
			}
			if !strings.Contains(uServer, `unknown PSK identity "mallory"`) {
				t.Errorf("server error %q does not name the unknown identity", uServer)
			}
			if strings.Contains(wServer, "unknown PSK identity") {
				t.Errorf("server error %q calls a wrong key an unknown identity", wServer)
			}
		})
	}
}

// TestUnknownPSKIdentityAlert: InsecureUnknownPSKIdentityAlert restores the
// explicit unknown_psk_identity alert, for debugging, in both versions.
func TestUnknownPSKIdentityAlert(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, vers := range []uint16{VersionDTLS12, VersionDTLS13} {
		t.Run(versionName(vers), func(t *testing.T) {
			server := pskConfig()
			server.InsecureUnknownPSKIdentityAlert = true
			server.MaxVersion = vers
			client := pskConfig()
			client.PSKIdentity = []byte("mallory")
			client.MaxVersion = vers
			err, serverErr, alerts := pskProbe(t, server, client)
			if !strings.Contains(err.Error(), "unknown PSK identity") {
				t.Errorf("client error %q, want the unknown_psk_identity alert", err)
			}
			if !slices.Equal(alerts, []alert{alertUnknownPSKIdentity}) {
				t.Errorf("server sent %v, want [%v]", alerts, alertUnknownPSKIdentity)
			}
			if !strings.Contains(serverErr, `unknown PSK identity "mallory"`) {
				t.Errorf("server error %q", serverErr)
			}
		})
	}
}
