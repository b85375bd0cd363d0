package main

import (
	"bytes"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
	"github.com/dtls-go/dtls/cmd/dtls/internal/ladder"
	"github.com/dtls-go/dtls/internal/dtlstest"
)

// TestEarlyData13LadderAndAnalyze resumes a DTLS 1.3 session with 0-RTT
// data and checks what the tools show of it: the ladder of both sides'
// Tracer events draws the early datagram as an epoch-1 record, and
// analyze, reading the client's pcapng with its key log inside, decrypts
// epoch 1 with CLIENT_EARLY_TRAFFIC_SECRET and reports the early data
// accepted.
func TestEarlyData13LadderAndAnalyze(t *testing.T) {
	cert := dtlstest.SelfSigned(t, dtlstest.Spec{Serial: 7, IsCA: true})
	sc := &dtls.Config{Certificates: []tls.Certificate{cert.TLS}, MaxVersion: dtls.VersionDTLS13, MaxEarlyData: 4096}
	cc := &dtls.Config{RootCAs: cert.Pool, ServerName: "dtls.test", MaxVersion: dtls.VersionDTLS13,
		EnableEarlyData: true, ClientSessionCache: dtls.NewLRUClientSessionCache(2)}
	// The first connection gets the ticket; the second sends 0-RTT data.
	connect(t, cc, sc, nil, nil)
	pcap := filepath.Join(t.TempDir(), "early.pcapng")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := capture.NewWriter(f)
	lad := ladder.New()
	var mu sync.Mutex
	add := func(ev *dtls.TraceEvent) {
		mu.Lock()
		lad.Add(ev)
		mu.Unlock()
	}
	cc2 := cc.Clone()
	cc2.Tracer = w.Tracer(add)
	cc2.KeyLogWriter = w.KeyLogWriter()
	sc2 := sc.Clone()
	sc2.Tracer = add
	accepted := connect(t, cc2, sc2, []byte("early bird"), nil)
	if !accepted {
		t.Fatal("early data not accepted")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := lad.Text(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "ApplicationData 10B e1 ─") {
		t.Errorf("ladder has no epoch-1 early datagram:\n%s", text.String())
	}
	out := runAnalyzeForTest(t, pcap)
	for _, want := range []string{
		"version: DTLS 1.3",
		"key log: CLIENT_EARLY_TRAFFIC_SECRET, ",
		"client encrypted epochs: 1, 2, 3\n",
		"early data: offered, accepted",
		"ApplicationData 10B e1 s0",
		"handshake: complete (both Finished seen)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("analyze report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// connect runs one handshake between cc and sc over loopback sockets, the
// client queueing early, then echoes one datagram so that the client
// reads the server's NewSessionTicket. It reports whether the server
// accepted the early data, which must then be what the client queued.
func connect(t *testing.T, cc, sc *dtls.Config, early []byte, _ any) bool {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	laddr := pc.LocalAddr().(*net.UDPAddr)
	pc.Close()
	sconn, err := net.DialUDP("udp", laddr, uc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	cli, srv := dtls.Client(uc, cc), dtls.Server(sconn, sc)
	defer cli.Close()
	defer srv.Close()
	if early != nil {
		if _, err := cli.WriteEarlyData(early); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		accepted bool
		early    [][]byte
		err      error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		if r.err = srv.Handshake(); r.err == nil {
			r.accepted = srv.ConnectionState().EarlyDataAccepted
			r.early = srv.EarlyData()
			buf := make([]byte, 100)
			var n int
			if n, r.err = srv.Read(buf); r.err == nil {
				_, r.err = srv.Write(buf[:n])
			}
		}
		done <- r
	}()
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client: %v", err)
	}
	if _, err := cli.Write([]byte("echo")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := cli.Read(buf); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("server: %v", r.err)
	}
	if r.accepted != cli.ConnectionState().EarlyDataAccepted {
		t.Fatalf("server accepted early data %v, client thinks %v", r.accepted, !r.accepted)
	}
	if r.accepted && (len(r.early) != 1 || !bytes.Equal(r.early[0], early)) {
		t.Fatalf("server's early data %q, sent %q", r.early, early)
	}
	return r.accepted
}
