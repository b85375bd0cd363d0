package main

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
	"github.com/dtls-go/dtls/internal/dtlstest"
)

// TestTickets13Analyze: a server that sends three NewSessionTickets
// (Config.SessionTicketsPerConnection); analyze, reading the client's
// pcapng with its key log, lists each ticket with its own message_seq
// and the client's ACKs of them.
func TestTickets13Analyze(t *testing.T) {
	cert := dtlstest.SelfSigned(t, dtlstest.Spec{Serial: 7, IsCA: true})
	sc := &dtls.Config{Certificates: []tls.Certificate{cert.TLS}, MaxVersion: dtls.VersionDTLS13, SessionTicketsPerConnection: 3}
	cc := &dtls.Config{RootCAs: cert.Pool, ServerName: "dtls.test", MaxVersion: dtls.VersionDTLS13,
		ClientSessionCache: dtls.NewLRUClientSessionCache(2)}
	pcap := filepath.Join(t.TempDir(), "tickets.pcapng")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := capture.NewWriter(f)
	cc.Tracer = w.Tracer(nil)
	cc.KeyLogWriter = w.KeyLogWriter()
	connect(t, cc, sc, nil, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out := runAnalyzeForTest(t, pcap)
	var tickets []string
	for _, m := range messageList(out) {
		if strings.HasPrefix(m, "server NewSessionTicket ") {
			tickets = append(tickets, m)
		}
	}
	if len(tickets) != 3 || tickets[0] == tickets[1] || tickets[1] == tickets[2] {
		t.Errorf("analyze lists NewSessionTickets %q, want 3 with their own message_seq", tickets)
	}
	if n := strings.Count(out, "(NewSessionTicket seq="); n < 3 {
		t.Errorf("the ACKs name %d NewSessionTickets, want 3", n)
	}
	if t.Failed() {
		t.Log(out)
	}
}
