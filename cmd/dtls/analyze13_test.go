package main

import (
	"bufio"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls/capture"
)

// writeCapture13 turns one of testdata/dtls13's wolfSSL handshakes (hex
// datagrams and wolfSSL's key log) into a pcapng file, the datagrams a
// millisecond apart, and writes the key log beside it. It returns both
// paths.
func writeCapture13(t testing.TB, name string) (pcap, keylog string) {
	t.Helper()
	in, err := os.Open(filepath.Join("..", "..", "testdata", "dtls13", name))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dir := t.TempDir()
	pcap = filepath.Join(dir, strings.TrimSuffix(name, ".txt")+".pcapng")
	keylog = filepath.Join(dir, "keylog.txt")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := capture.NewWriter(f)
	client, server := netip.MustParseAddrPort("127.0.0.1:40001"), netip.MustParseAddrPort("127.0.0.1:11111")
	at := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	var keys strings.Builder
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "C", "S":
			b, err := hex.DecodeString(fields[1])
			if err != nil {
				t.Fatal(err)
			}
			src, dst := client, server
			if fields[0] == "S" {
				src, dst = server, client
			}
			at = at.Add(time.Millisecond)
			if err := w.WritePacket(at, src, dst, b); err != nil {
				t.Fatal(err)
			}
		case "K":
			keys.WriteString(strings.Join(fields[1:], " ") + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keylog, []byte(keys.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return pcap, keylog
}

func TestAnalyze13Dump(t *testing.T) {
	for _, n := range []string{"wolfssl-x25519mlkem768-aes256gcm.txt", "wolfssl-cid-aes256gcm.txt", "wolfssl-psk-aes128gcm.txt"} {
		p, k := writeCapture13(t, n)
		t.Log(runAnalyzeForTest(t, p, "-keylog", k))
		if n == "wolfssl-cid-aes256gcm.txt" {
			t.Log(runAnalyzeForTest(t, p))
		}
	}
}
