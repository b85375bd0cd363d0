package coapdemo_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/examples/coapdemo"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// TestGoCoAP runs go-coap's server and client, both on dtls-go, with each
// kind of credentials: GET, an 8 KiB PUT and GET (block-wise both ways),
// and an observation of /counter with three notifications.
func TestGoCoAP(t *testing.T) {
	for _, tc := range credCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
			defer cancel()
			scfg, err := tc.server.ServerConfig()
			if err != nil {
				t.Fatal(err)
			}
			ccfg, err := tc.client.ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			var rec recordCounter
			ccfg.Tracer = rec.trace
			ts := startServer(t, scfg)
			cc := dial(ctx, t, ts.addr, ccfg)

			// The CoAP connection runs on our Conn, and the handshake
			// went the way the credentials say.
			dc, ok := cc.NetConn().(*dtls.Conn)
			if !ok {
				t.Fatalf("NetConn is %T, want *dtls.Conn", cc.NetConn())
			}
			st := dc.ConnectionState()
			if tc.suite != 0 && st.CipherSuite != tc.suite {
				t.Errorf("suite %s, want %s", dtls.CipherSuiteName(st.CipherSuite), dtls.CipherSuiteName(tc.suite))
			}
			if tc.rpk {
				want := tc.client.PeerPublicKeys[0].(*ecdsa.PublicKey)
				if k, ok := st.PeerPublicKey.(*ecdsa.PublicKey); !ok || !k.Equal(want) || len(st.PeerCertificates) != 0 {
					t.Errorf("peer key %v, %d certificates; want the server's raw key", st.PeerPublicKey, len(st.PeerCertificates))
				}
			}
			if tc.server.Certificate != nil && !tc.rpk && (len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "localhost") {
				t.Errorf("server certificate not seen")
			}
			var srvConn *dtls.Conn
			select {
			case c := <-ts.conns:
				srvConn, _ = c.NetConn().(*dtls.Conn)
			case <-ctx.Done():
				t.Fatal("the server got no connection")
			}
			if srvConn == nil {
				t.Fatal("the server's CoAP connection is not on a *dtls.Conn")
			}
			if string(srvConn.ConnectionState().PSKIdentity) != string(tc.client.PSKIdentity) {
				t.Errorf("server saw PSK identity %q", srvConn.ConnectionState().PSKIdentity)
			}
			if tc.server.CAs != nil && (len(srvConn.ConnectionState().PeerCertificates) == 0 ||
				srvConn.ConnectionState().PeerCertificates[0].Subject.CommonName != "dtls-go-client") {
				t.Error("the server did not authenticate the client's certificate")
			}

			t.Run("GET", func(t *testing.T) {
				if got := do(ctx, t, cc, coapdemo.Request{Method: "get", Path: "/hello"}); len(got) != 1 || string(got[0]) != coapdemo.Hello {
					t.Errorf("GET /hello: %q", got)
				}
			})
			t.Run("PUT", func(t *testing.T) {
				do(ctx, t, cc, coapdemo.Request{Method: "put", Path: "/data", Body: []byte("put-by-go-coap")})
				if got := ts.app.Data(); string(got) != "put-by-go-coap" {
					t.Errorf("/data holds %q after the PUT", got)
				}
			})
			t.Run("Observe", func(t *testing.T) { checkObserve(ctx, t, cc, ts) })
			t.Run("Block8K", func(t *testing.T) { checkBlockwise(ctx, t, cc, &rec, "/data") })
		})
	}
}

// checkBlockwise PUTs payload8K to path and GETs it back. The client's
// Tracer counts application records: each way the body must have taken
// at least eight (RFC 7959 §2.2, 1024-byte blocks).
func checkBlockwise(ctx context.Context, t *testing.T, cc *udpclient.Conn, rec *recordCounter, path string) {
	t.Helper()
	sent, recvd := rec.counts()
	if got := do(ctx, t, cc, coapdemo.Request{Method: "put", Path: path, Body: payload8K}); len(got) != 1 || len(got[0]) != 0 {
		t.Errorf("PUT %s: %q", path, got)
	}
	sent2, _ := rec.counts()
	if n := sent2 - sent; n < 8 {
		t.Errorf("PUT of 8 KiB went in %d records, want block-wise (8 or more)", n)
	}
	var out bytes.Buffer
	if err := coapdemo.Do(ctx, cc, coapdemo.Request{Method: "get", Path: path}, &out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if got := bytes.TrimSuffix(out.Bytes(), []byte("\n")); !bytes.Equal(got, payload8K) {
		t.Errorf("GET %s: %d bytes, want the %d PUT", path, len(got), len(payload8K))
	}
	_, recvd2 := rec.counts()
	if n := recvd2 - recvd; n < 8 {
		t.Errorf("GET of 8 KiB came in %d records, want block-wise (8 or more)", n)
	}
}

// checkObserve observes /counter while the server notifies three times.
func checkObserve(ctx context.Context, t *testing.T, cc *udpclient.Conn, ts *testServer) {
	t.Helper()
	before := ts.app.Observers()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// Notify until stopped: a notification sent before the
		// registration reached the server is simply not seen.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				ts.app.Notify()
			}
		}
	}()
	got := do(ctx, t, cc, coapdemo.Request{Method: "get", Path: "/counter", Observe: 3})
	if len(got) != 4 {
		t.Fatalf("observe /counter: %q, want the answer and 3 notifications", got)
	}
	prev := -1
	for _, b := range got {
		n, err := strconv.Atoi(string(b))
		if err != nil || n <= prev {
			t.Errorf("observe /counter: %q, want rising numbers", got)
			break
		}
		prev = n
	}
	// Do cancelled the observation (RFC 7641 §3.6): the server forgets it.
	deadline := time.Now().Add(5 * time.Second)
	for ts.app.Observers() != before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := ts.app.Observers(); n != before {
		t.Errorf("%d observations left after cancelling, want %d", n, before)
	}
}

// recordCounter is a Tracer that counts application data records.
type recordCounter struct {
	sent, received atomic.Int64
}

func (r *recordCounter) trace(ev *dtls.TraceEvent) {
	if ev.ContentType != 23 { // application_data
		return
	}
	switch ev.Kind {
	case dtls.TraceRecordSent:
		r.sent.Add(1)
	case dtls.TraceRecordReceived:
		r.received.Add(1)
	}
}

func (r *recordCounter) counts() (sent, received int64) { return r.sent.Load(), r.received.Load() }
