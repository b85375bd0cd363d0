package capture

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtls-go/dtls/internal/dtlstest"
)

// tshark returns the path of tshark, skipping the test when it is missing,
// or failing it under CI=true, where a missing peer tool is a failure.
func tshark(t *testing.T) string {
	t.Helper()
	return dtlstest.LookPath(t, "tshark")
}

// checksumGood is tshark's value of ip.checksum.status and
// udp.checksum.status for a verified checksum (0 is bad, 2 unverified).
const checksumGood = "1"

// runTshark runs tshark on file with a fresh, empty configuration (so
// nobody's preferences, such as a key log file, take part) and returns its
// standard output.
func runTshark(t *testing.T, file string, args ...string) string {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(tshark(t), append([]string{"-r", file}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "WIRESHARK_CONFIG_DIR="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// rewriteOpenSSL reads the OpenSSL capture, which has no secrets, and
// writes its datagrams through a Writer, giving the key log to
// KeyLogWriter just before the first datagram at index keyAt (or after the
// last when keyAt is len(datagrams)).
func rewriteOpenSSL(t *testing.T, keyAt func([]Datagram) int) string {
	t.Helper()
	dgs, keyLog := readTestFile(t, "openssl-dtls12.pcapng")
	if len(keyLog) != 0 {
		t.Fatal("the raw capture should carry no secrets")
	}
	keys, err := os.ReadFile("testdata/openssl-dtls12.keylog")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	at := keyAt(dgs)
	for i, d := range dgs {
		if i == at {
			if _, err := w.KeyLogWriter().Write(keys); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.WritePacket(d.Time, d.Src, d.Dst, d.Payload); err != nil {
			t.Fatal(err)
		}
	}
	if at >= len(dgs) {
		if _, err := w.KeyLogWriter().Write(keys); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rewritten.pcapng")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// firstEpoch1 returns the index of the first datagram that holds a record
// of epoch 1: the first the key log is needed for. The client logs its
// secret before it sends that datagram.
func firstEpoch1(dgs []Datagram) int {
	for i, d := range dgs {
		for b := d.Payload; len(b) >= 13; {
			if b[3] == 0 && b[4] == 1 {
				return i
			}
			n := 13 + (int(b[11])<<8 | int(b[12]))
			if n > len(b) {
				break
			}
			b = b[n:]
		}
	}
	return len(dgs)
}

// TestTsharkDecryptsRewrittenCapture proves that tshark, given only the
// file, decrypts a real DTLS 1.2 handshake that went through Writer: it
// decodes both Finished messages (handshake type 20 in epoch 1) and the
// application data of both sides, and finds every checksum right.
func TestTsharkDecryptsRewrittenCapture(t *testing.T) {
	tshark(t)
	dgs, _ := readTestFile(t, "openssl-dtls12.pcapng")
	if i := firstEpoch1(dgs); i == 0 || i >= len(dgs) {
		t.Fatalf("first encrypted datagram at %d of %d: the test data is not what it should be", i, len(dgs))
	}
	for _, tc := range []struct {
		name  string
		keyAt func([]Datagram) int
	}{
		// The way the Tracer and KeyLogWriter work in a live handshake:
		// the client logs its secret right before its first encrypted
		// flight, so the DSB lands mid-file. tshark 4.0 reads a DSB when
		// it reaches it, even with -2: a DSB after the client's
		// ChangeCipherSpec decrypts only the server's side, and one at
		// the end of the file decrypts nothing. So a DSB must precede the
		// first encrypted record, which writing each line at once does.
		{"dsb-before-first-encrypted", firstEpoch1},
		{"dsb-first", func([]Datagram) int { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := rewriteOpenSSL(t, tc.keyAt)
			checkDecrypted(t, file, true)
		})
	}
}

// checkDecrypted runs tshark on file and checks that it decrypted the
// OpenSSL handshake, and, when checksums is set, that every IP and UDP
// checksum is right (a capture taken on lo has UDP checksums left to the
// offload that never happens, so only our own files are checked).
func checkDecrypted(t *testing.T, file string, checksums bool) {
	t.Helper()
	out := runTshark(t, file, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=|",
		"-e", "ip.checksum.status", "-e", "udp.checksum.status",
		"-e", "dtls.record.epoch", "-e", "dtls.handshake.type", "-e", "data.data")
	finished, data := 0, ""
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 5 {
			t.Fatalf("unexpected tshark line %q", line)
		}
		if checksums && (f[0] != checksumGood || f[1] != checksumGood) {
			t.Errorf("bad checksum status ip=%s udp=%s in %q", f[0], f[1], line)
		}
		for _, ht := range strings.Split(f[3], ",") {
			if ht == "20" {
				finished++
			}
		}
		if f[4] != "" {
			for _, h := range strings.Split(f[4], ",") {
				b, _ := hex.DecodeString(h)
				data += string(b)
			}
		}
	}
	if finished != 2 {
		t.Errorf("tshark decoded %d Finished messages, want 2 (decryption failed?)\n%s", finished, out)
	}
	for _, want := range []string{"hello from s_client\n", "hello from s_server\n"} {
		if !strings.Contains(data, want) {
			t.Errorf("decrypted application data %q lacks %q", data, want)
		}
	}
}

// TestTsharkReadsEditcapSecrets checks the test data itself: the same
// capture with the key log injected by Wireshark's own editcap decrypts.
func TestTsharkReadsEditcapSecrets(t *testing.T) {
	checkDecrypted(t, "testdata/openssl-dtls12-dsb.pcapng", false)
}

// TestTsharkIPv6 checks addresses, ports and checksums of IPv6 packets as
// tshark sees them.
func TestTsharkIPv6(t *testing.T) {
	tshark(t)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	src, dst := mustAddrPort("[2001:db8::1]:5684"), mustAddrPort("[2001:db8::2]:40000")
	for _, n := range []int{0, 1, 13, 1200} {
		if err := w.WritePacket(testTime, src, dst, bytes.Repeat([]byte{0xA5}, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "v6.pcapng")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runTshark(t, file, "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=|",
		"-e", "ipv6.src", "-e", "ipv6.dst", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.length", "-e", "udp.checksum.status")
	want := "2001:db8::1|2001:db8::2|5684|40000|8|1\n" +
		"2001:db8::1|2001:db8::2|5684|40000|9|1\n" +
		"2001:db8::1|2001:db8::2|5684|40000|21|1\n" +
		"2001:db8::1|2001:db8::2|5684|40000|1208|1\n"
	if out != want {
		t.Errorf("tshark saw\n%s\nwant\n%s", out, want)
	}
}
