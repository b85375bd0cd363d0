package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
)

// TestAnalyzeRRC captures a server's view of a client whose NAT rebinds
// mid-session under a CID: analyze follows the session to the new
// address and shows the return routability check (RFC 9853) that moved
// the server.
func TestAnalyzeRRC(t *testing.T) {
	r := newRebindCapture(t, t.TempDir(), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := dtls.DialContext(ctx, "udp", r.front.LocalAddr().String(), &dtls.Config{
		RootCAs: r.roots, ServerName: "localhost", ConnectionIDGenerator: dtls.OnlySendCIDGenerator(),
		// tls12_cid records; TestAnalyze13CIDUpdate follows a 1.3
		// client by the CID in the unified header.
		MaxVersion: dtls.VersionDTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	c.Write([]byte("before"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	r.rebind()
	r.waitMoved(c)
	c.Close()
	r.finish()

	got := runAnalyzeForTest(t, r.pcap)
	for _, want := range []string{"path_challenge to 127.0.0.1:", "path_response", "client address changes", "client sends from"} {
		if !strings.Contains(got, want) {
			t.Errorf("analyze output lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "conversation ") != 1 {
		t.Errorf("the rebound client is not one conversation:\n%s", got)
	}
}
