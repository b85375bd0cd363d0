package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
)

// TestAnalyze13CIDUpdate captures a server's view (pcapng with the key
// log in it) of a DTLS 1.3 client that asks for spare CIDs, moves to a
// new port with one of them, and then hands the server a new CID of its
// own with cid_immediate: analyze follows the client to the new address
// by the CID in the unified header, and the report and ladder show
// RequestConnectionId, NewConnectionId with their CIDs and usage, the
// return routability check and the CID each side's records carry.
func TestAnalyze13CIDUpdate(t *testing.T) {
	dir := t.TempDir()
	r := newRebindCapture(t, dir, dtls.VersionDTLS13)
	pcap, server := r.pcap, r.server
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := dtls.DialContext(ctx, "udp", r.front.LocalAddr().String(), &dtls.Config{
		RootCAs: r.roots, ServerName: "localhost", ConnectionIDGenerator: dtls.RandomCIDGenerator(4),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	echo := func(msg string) {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	echo("before")
	if n, err := c.RequestConnectionIDs(ctx, 2); err != nil || n != 2 {
		t.Fatalf("RequestConnectionIDs: %d, %v", n, err)
	}
	// An echo, so that the client's ACK of the NewConnectionId has
	// passed the relay before it moves: the first datagram from the new
	// port then carries the spare CID.
	echo("spares")
	if err := c.SwitchConnectionID(); err != nil {
		t.Fatal(err)
	}
	r.rebind()
	r.waitMoved(c)
	if err := c.RotateConnectionID(ctx); err != nil {
		t.Fatal(err)
	}
	echo("rotated")
	c.Close()
	r.finish()

	got := runAnalyzeForTest(t, pcap)
	if testing.Verbose() {
		t.Log(got)
	}
	for _, want := range []string{
		"version: DTLS 1.3",
		"RequestConnectionId(num_cids 2)",
		"NewConnectionId(cid_spare: ",
		"NewConnectionId(cid_immediate: ",
		"client asks for 2 CIDs (RequestConnectionId)",
		"server hands out 2 CIDs, cid_spare",
		"client hands out 1 CID, cid_immediate",
		"client's records carry CID",
		"server's records carry CID",
		"path_challenge",
		"path_response",
		"client sends from",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("analyze output lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "conversation ") != 1 {
		t.Errorf("the moved client is not one conversation:\n%s", got)
	}
	if strings.Contains(got, "without keys") || strings.Contains(got, "did not open") {
		t.Errorf("records left encrypted:\n%s", got)
	}

	// The same capture without the server's NewConnectionId (a capture
	// point that missed it): the client's records under a CID analyze
	// never saw handed out still join the conversation, by the keys.
	// The client's first datagram from its new address must join, not
	// only the server's path_challenge there (under the client's own
	// CID, which the hellos gave): the move is seen at the same time.
	moveLine := func(out string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "client sends from") {
				return strings.TrimSpace(l)
			}
		}
		return ""
	}
	full := got
	lossy := dropNewConnectionID(t, pcap, server.AddrPort(), filepath.Join(dir, "lossy.pcapng"))
	got = runAnalyzeForTest(t, lossy)
	if strings.Count(got, "conversation ") != 1 || moveLine(got) == "" || moveLine(got) != moveLine(full) ||
		!strings.Contains(got, "client's records carry CID") || strings.Contains(got, "cid_spare") {
		t.Errorf("without the NewConnectionId, analyze did not follow the client by its keys (move %q, with it %q):\n%s", moveLine(got), moveLine(full), got)
	}
}

// dropNewConnectionID copies a capture of one DTLS 1.3 connection whose
// server's records carry a 4-byte CID, leaving out the server's
// datagrams whose records open as a NewConnectionId with the key log in
// the capture.
func dropNewConnectionID(t *testing.T, in string, server netip.AddrPort, out string) string {
	t.Helper()
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dgrams, keyLog, err := capture.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var secret []byte
	for _, line := range strings.Split(string(keyLog), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "SERVER_TRAFFIC_SECRET_0" {
			secret, _ = hex.DecodeString(f[2])
		}
	}
	dec, err := dtls.NewRecordDecrypter13(tls.TLS_AES_128_GCM_SHA256, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.SetTrafficSecret(3, secret); err != nil {
		t.Fatal(err)
	}
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	w := capture.NewWriter(o)
	if _, err := w.KeyLogWriter().Write(keyLog); err != nil {
		t.Fatal(err)
	}
	dropped := 0
	for _, d := range dgrams {
		if d.Src == server && len(d.Payload) > 0 && d.Payload[0]&0xe0 == 0x20 {
			if r, _, err := dec.Open(d.Payload); err == nil && r.ContentType == 22 && len(r.Content) > 0 && r.Content[0] == 10 {
				dropped++
				continue
			}
		}
		if err := w.WritePacket(d.Time, d.Src, d.Dst, d.Payload); err != nil {
			t.Fatal(err)
		}
	}
	if dropped == 0 {
		t.Fatal("no NewConnectionId of the server's found")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}
