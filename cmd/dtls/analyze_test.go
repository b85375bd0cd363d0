package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
	"github.com/dtls-go/dtls/internal/dtlstest"
)

func runAnalyzeForTest(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), append([]string{"analyze"}, args...), stdio{strings.NewReader(""), &stdout, &stderr})
	if code != exitOK {
		t.Fatalf("analyze exited %d: %s", code, stderr.String())
	}
	return stdout.String()
}

func flightCount(t *testing.T, out string) int {
	m := regexp.MustCompile(`(?m)^flights: (\d+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no flight count in:\n%s", out)
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

// TestAnalyzeOpenSSLCapture captures openssl s_server talking to openssl
// s_client with tshark on loopback and checks the reconstruction. It needs
// root (to capture), openssl and tshark; under CI=true their absence fails.
func TestAnalyzeOpenSSLCapture(t *testing.T) {
	tshark := needTshark(t)
	openssl := dtlstest.LookPath(t, "openssl")
	if os.Geteuid() != 0 {
		dtlstest.Missing(t, "capturing on loopback needs root")
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw.pcapng")
	pcap := filepath.Join(dir, "openssl.pcapng")
	keylog := filepath.Join(dir, "keylog.txt")
	port, probePort := freeUDPPort(t), freeUDPPort(t)
	for i := 0; probePort == port && i < 10; i++ {
		probePort = freeUDPPort(t)
	}
	if probePort == port {
		t.Fatalf("no second free UDP port besides %d", port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// tshark prints "Capturing on" before it starts dumpcap, so that line
	// does not say the capture is running: under load the handshake was
	// over before dumpcap listened, and the capture was empty. Probes to
	// a second port the filter also takes are sent until tshark prints
	// one (-P -l: a summary line per packet); the probes are then
	// filtered out of what analyze reads.
	capCmd := exec.CommandContext(ctx, tshark, "-i", "lo", "-f", fmt.Sprintf("udp port %d or udp port %d", port, probePort), "-w", raw, "-P", "-l")
	capErr, _ := capCmd.StderrPipe()
	capOut, _ := capCmd.StdoutPipe()
	capCmd.WaitDelay = 5 * time.Second
	if err := capCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer capCmd.Process.Kill()
	go io.Copy(io.Discard, capErr)
	waitForCapture(t, capOut, probePort, 20*time.Second)

	psk := "000102030405060708090a0b0c0d0e0f"
	srv := exec.CommandContext(ctx, openssl, "s_server", "-dtls1_2", "-accept", fmt.Sprintf("127.0.0.1:%d", port),
		"-nocert", "-psk", psk, "-psk_identity", "id", "-cipher", "PSK-AES128-CCM8", "-naccept", "1")
	srv.WaitDelay = 5 * time.Second
	srvIn, _ := srv.StdinPipe()
	srvOut, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	// s_server prints ACCEPT once its socket is bound; a client sent
	// before that is refused (a fixed sleep was not enough on a loaded
	// machine).
	waitForLine(t, srvOut, "ACCEPT", 20*time.Second)
	go io.Copy(io.Discard, srvOut)
	cli := exec.CommandContext(ctx, openssl, "s_client", "-dtls1_2", "-connect", fmt.Sprintf("127.0.0.1:%d", port),
		"-psk", psk, "-psk_identity", "id", "-cipher", "PSK-AES128-CCM8", "-keylogfile", keylog, "-quiet", "-no_ign_eof")
	cli.Stdin = strings.NewReader("hello from s_client\n")
	cli.WaitDelay = 5 * time.Second
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("s_client: %v\n%s", err, out)
	}
	srvIn.Close()
	srv.Wait()
	time.Sleep(500 * time.Millisecond) // let tshark write the last packets
	capCmd.Process.Signal(os.Interrupt)
	capCmd.Wait()
	if out, err := exec.CommandContext(ctx, tshark, "-r", raw, "-Y", fmt.Sprintf("udp.port == %d", port), "-w", pcap).CombinedOutput(); err != nil {
		t.Fatalf("tshark filtering out the probes: %v\n%s", err, out)
	}

	out := runAnalyzeForTest(t, pcap, "-keylog", keylog, "-svg", filepath.Join(dir, "ladder.svg"))
	for _, want := range []string{
		"client ClientHello        seq=0",
		"server HelloVerifyRequest seq=0",
		"client ClientHello        seq=1",
		"server ServerHello        seq=1",
		"server ServerHelloDone    seq=2",
		"client ClientKeyExchange  seq=2",
		"client Finished           seq=3",
		"server NewSessionTicket   seq=3",
		"server Finished           seq=4",
		"handshake: complete",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("analysis lacks %q:\n%s", want, out)
		}
	}
	if n := flightCount(t, out); n != 6 {
		t.Errorf("flights: %d, want 6 (ClientHello, HVR, ClientHello, server hello flight, client key flight, server finish)\n%s", n, out)
	}
}

// TestAnalyzeLossyCapture records the client's own view of a handshake
// through a lossy channel (the capture point is before the loss, as with
// tshark on the client host) and checks that analyze reports the
// retransmissions.
func TestAnalyzeLossyCapture(t *testing.T) {
	dir := t.TempDir()
	pcap := filepath.Join(dir, "client-view.pcapng")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	capw := capture.NewWriter(f)
	cert, err := selfSignedCertificate(time.Now(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	roots := x509.NewCertPool()
	roots.AddCert(leaf)

	spc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Seed 3 loses part of each side's flights at 40%.
	l, err := dtls.NewListener(&lossyPacketConn{PacketConn: spc, drop: newDropper(0.4, 3, 1)},
		&dtls.Config{Certificates: []tls.Certificate{cert}, RetransmitTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The server reads until the client's close_notify (or the test's
	// end) rather than closing at once: a DTLS 1.2 server resends its
	// last flight (CCS, Finished) only when the client's retransmitted
	// Finished reaches a connection that is still there (RFC 6347
	// §4.2.4). Closing at Accept left a client whose copy of that flight
	// the link lost with nothing but the close_notify; which copies are
	// lost depends on how many the timers sent, so that happened only
	// under load.
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				stop := context.AfterFunc(ctx, func() { c.Close() })
				defer stop()
				buf := make([]byte, 1<<14)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	raw, err := net.Dial("udp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := dtls.Client(&lossyConn{Conn: raw, drop: newDropper(0.4, 3, 2)}, &dtls.Config{
		RootCAs: roots, ServerName: "localhost", RetransmitTimeout: 50 * time.Millisecond,
		Tracer: capw.Tracer(nil), KeyLogWriter: capw.KeyLogWriter(),
		// The 1.2 flight retransmissions that analyze reports; its
		// 1.3 report does not count retransmissions yet.
		MaxVersion: dtls.VersionDTLS12,
	})
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := capw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	out := runAnalyzeForTest(t, pcap)
	m := regexp.MustCompile(`retransmissions: client (\d+), server (\d+)`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" && m[2] == "0" {
		t.Errorf("no retransmission reported:\n%s", out)
	}
	if !strings.Contains(out, "again") {
		t.Errorf("ladder shows no retransmitted flight:\n%s", out)
	}
	if !strings.Contains(out, "handshake: complete") {
		t.Errorf("handshake not reconstructed:\n%s", out)
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// waitForCapture sends a datagram to 127.0.0.1:probePort every 50 ms
// until the capture prints a line to out (one per captured packet), or d
// passes. Nothing listens on probePort: the datagram only has to pass the
// capture's filter.
func waitForCapture(t *testing.T, out io.Reader, probePort int, d time.Duration) {
	t.Helper()
	line := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(out)
		line <- s.Scan()
		io.Copy(io.Discard, out)
	}()
	probe, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", probePort))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(d)
	for {
		probe.Write([]byte("probe"))
		select {
		case ok := <-line:
			if !ok {
				t.Fatal("the capture ended before it saw a probe")
			}
			return
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the capture saw no probe in %v", d)
		}
	}
}

func waitForLine(t *testing.T, r io.Reader, substr string, d time.Duration) {
	t.Helper()
	found := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			if strings.Contains(s.Text(), substr) {
				found <- true
				return
			}
		}
		found <- false
	}()
	select {
	case ok := <-found:
		if !ok {
			t.Fatalf("never saw %q", substr)
		}
	case <-time.After(d):
		t.Fatalf("timed out waiting for %q", substr)
	}
}
