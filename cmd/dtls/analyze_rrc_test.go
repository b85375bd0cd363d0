package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
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

// TestAnalyzeMovesBounded checks that a client hopping between addresses
// more than maxListed times is listed up to the bound and the rest counted.
func TestAnalyzeMovesBounded(t *testing.T) {
	server := netip.MustParseAddrPort("127.0.0.1:4433")
	a := newAnalysis(netip.MustParseAddrPort("127.0.0.1:1000"), server)
	start := time.Unix(1, 0)
	const hops = maxListed + 10
	for i := range hops + 1 {
		src := netip.AddrPortFrom(server.Addr(), uint16(1000+i%2))
		a.datagram(capture.Datagram{Time: start.Add(time.Duration(i) * time.Millisecond), Src: src, Dst: server}, &keyLog{})
	}
	if len(a.moves) != maxListed || a.moreMoves != hops-maxListed {
		t.Fatalf("%d moves listed, %d counted; want %d and %d", len(a.moves), a.moreMoves, maxListed, hops-maxListed)
	}
	var b strings.Builder
	a.report(&b)
	if !strings.Contains(b.String(), "(10 more not listed)") {
		t.Errorf("report does not count the moves past the list:\n%s", b.String())
	}
}
