package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls/internal/dtlstest"
)

func runDemoForTest(t *testing.T, args ...string) (dir, out string) {
	t.Helper()
	dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	code := dispatch(ctx, append([]string{"demo", "-out", dir}, args...), stdio{strings.NewReader(""), &stdout, &stderr})
	if code != exitOK {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, f := range []string{"handshake.pcapng", "handshake.svg", "keylog.txt"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	return dir, stdout.String()
}

// needTshark returns tshark's path; a missing tshark skips the test, except
// under CI=true where it fails.
func needTshark(t *testing.T) string {
	t.Helper()
	return dtlstest.LookPath(t, "tshark")
}

// tsharkFields runs tshark with no option but the fields to print: the
// capture must carry its own keys.
func tsharkFields(t *testing.T, tshark, file string, fields ...string) [][]string {
	t.Helper()
	args := []string{"-r", file, "-T", "fields", "-E", "separator=|"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tshark, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no user profile: keys come from the file alone
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		rows = append(rows, strings.Split(line, "|"))
	}
	return rows
}

func TestDemoCapturedHandshakeDecrypts(t *testing.T) {
	tshark := needTshark(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string // handshake types tshark must decode
	}{
		// DTLS 1.2: tshark 4.0 does not dissect 1.3.
		{"ecdsa", []string{"-version", "1.2"}, []string{"1", "3", "2", "11", "12", "14", "16", "20"}},
		{"psk", []string{"-psk", "-version", "1.2"}, []string{"1", "3", "2", "12", "14", "16", "20"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, out := runDemoForTest(t, tc.args...)
			for _, s := range []string{"ClientHello", "HelloVerifyRequest", "ServerHelloDone", "Finished", "done:", "3 of 3 messages echoed"} {
				if !strings.Contains(out, s) {
					t.Errorf("demo output lacks %q:\n%s", s, out)
				}
			}
			var types []string
			var plain []string
			for _, row := range tsharkFields(t, tshark, filepath.Join(dir, "handshake.pcapng"), "dtls.handshake.type", "data.data") {
				for _, ty := range strings.Split(row[0], ",") {
					if ty != "" && !slices.Contains(types, ty) {
						types = append(types, ty)
					}
				}
				if len(row) > 1 && row[1] != "" {
					for _, h := range strings.Split(row[1], ",") {
						b, _ := hex.DecodeString(h)
						plain = append(plain, string(b))
					}
				}
			}
			for _, w := range tc.want {
				if !slices.Contains(types, w) {
					t.Errorf("tshark did not decode handshake type %s (decoded %v): the Finished (20) needs decryption", w, types)
				}
			}
			for _, m := range []string{"message 1", "message 2", "message 3"} {
				if !slices.Contains(plain, m) {
					t.Errorf("tshark did not decrypt %q (got %q)", m, plain)
				}
			}
		})
	}
}

// TestDemoLossFreeLosesNothing: without loss the demo calls no record
// lost. The server's close_notify, sent after the client closed, is "not
// read", which is what happened.
func TestDemoLossFreeLosesNothing(t *testing.T) {
	dir, out := runDemoForTest(t, "-messages", "1")
	svg, err := os.ReadFile(filepath.Join(dir, "handshake.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"ladder": out, "SVG": string(svg)} {
		if !strings.Contains(s, "not read: client closed") {
			t.Errorf("%s does not say the server's close_notify was not read:\n%s", name, s)
		}
	}
	if strings.Contains(out, "lost") {
		t.Errorf("loss-free ladder calls a record lost:\n%s", out)
	}
	// DTLS 1.3 at the defaults: the HelloRetryRequest that the cookie
	// costs asks for the hybrid, whose share fragments the second
	// ClientHello (the Listener reports the fragment it holds).
	for _, s := range []string{"X25519MLKEM768 in", "HelloRetryRequest: asked for a key share for X25519MLKEM768", "ClientHello seq=1 [0+"} {
		if !strings.Contains(out, s) {
			t.Errorf("demo output lacks %q:\n%s", s, out)
		}
	}
	// The SVG's legend says "lost" once; no arrow may.
	if n := strings.Count(string(svg), ">lost<"); n != 1 {
		t.Errorf("loss-free SVG says lost %d times, want once (the legend)", n)
	}
}

func TestDemoLossShowsRetransmissions(t *testing.T) {
	// Seed 3 at 30% loss and MTU 300 loses part of the server's flight
	// (checked when this test was written); any seed that loses a
	// handshake datagram would do.
	_, out := runDemoForTest(t, "-loss", "30%", "-seed", "3", "-mtu", "300", "-messages", "1")
	for _, s := range []string{"lost", "again", "done:"} {
		if !strings.Contains(out, s) {
			t.Errorf("demo output lacks %q:\n%s", s, out)
		}
	}
}

func TestParseLoss(t *testing.T) {
	for in, want := range map[string]float64{"0": 0, "0.3": 0.3, "30%": 0.3, "30": 0.3, "5%": 0.05} {
		got, err := parseLoss(in)
		if err != nil || got != want {
			t.Errorf("parseLoss(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"1", "100%", "-1", "x", ""} {
		if _, err := parseLoss(in); err == nil {
			t.Errorf("parseLoss(%q) accepted", in)
		}
	}
}

func TestDemoDTLS13(t *testing.T) {
	_, out := runDemoForTest(t, "-version", "1.3", "-messages", "1")
	for _, s := range []string{"EncryptedExtensions", "CertificateVerify", "Finished seq=2 e2", "ACK e3", "ApplicationData 9B e3", "done: TLS_AES_128_GCM_SHA256", "dtls analyze"} {
		if !strings.Contains(out, s) {
			t.Errorf("demo output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "unknown") {
		t.Errorf("the ladder names something unknown:\n%s", out)
	}
}

// TestDemoDTLS13Tickets: with -tickets 3 the ladder shows three
// NewSessionTickets of the server, each with its own message_seq.
func TestDemoDTLS13Tickets(t *testing.T) {
	_, out := runDemoForTest(t, "-version", "1.3", "-tickets", "3", "-messages", "2")
	seqs := map[string]bool{}
	for l := range strings.Lines(out) {
		if _, after, ok := strings.Cut(l, "NewSessionTicket seq="); ok {
			seqs[strings.Fields(after)[0]] = true
		}
	}
	if len(seqs) != 3 {
		t.Errorf("ladder shows NewSessionTickets with seq %v, want 3:\n%s", seqs, out)
	}
	if _, err := parseDemoFlags([]string{"-version", "1.2", "-tickets", "2"}, io.Discard); err == nil {
		t.Error("-tickets with -version 1.2 accepted")
	}
}

// TestDemoDTLS13KeyUpdate: with -keyupdate the ladder shows the client's
// KeyUpdate (the ladder labels it by type), the server's answer,
// the ACKs, and records of both sides in epoch 4.
func TestDemoDTLS13KeyUpdate(t *testing.T) {
	_, out := runDemoForTest(t, "-version", "1.3", "-keyupdate", "-messages", "3")
	for _, s := range []string{"KeyUpdate seq=3 e3 ─", "─ F3 KeyUpdate seq=", "ACK e4 ─", "ApplicationData 9B e4 ─", "─ ApplicationData 9B e4"} {
		if !strings.Contains(out, s) {
			t.Errorf("demo output lacks %q:\n%s", s, out)
		}
	}
	if _, err := parseDemoFlags([]string{"-version", "1.2", "-keyupdate"}, io.Discard); err == nil {
		t.Error("-keyupdate with -version 1.2 accepted")
	}
}
