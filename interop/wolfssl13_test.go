package interop_test

// wolfSSL 5.9 with DTLS 1.3, built from Debian's wolfssl source package by
// .ci/wolfssl (Debian 12's own libwolfssl-dev is 5.5.4, without DTLS 1.3).
// Until our DTLS 1.3 handshake exists, this proves the peer itself: its
// example server and client complete DTLS 1.3 handshakes with each other
// on loopback and exchange data both ways, for the cells our 1.3 work will
// later take one side of. Each run also leaves wolfSSL's NSS key log in
// the scratch directory, checked for the DTLS 1.3 secrets.

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls/internal/dtlstest"
)

// wolfssl13Env names the directory .ci/wolfssl prints: client, server and
// the certs tree the programs look for.
const wolfssl13Env = "DTLS_WOLFSSL13"

// wolfssl13Dir finds the DTLS 1.3 wolfSSL build: $DTLS_WOLFSSL13, else the
// newest build in .ci/wolfssl's default cache. Missing, it skips the test,
// or fails it under CI=true.
func wolfssl13Dir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(wolfssl13Env)
	if dir == "" {
		if cache, err := os.UserCacheDir(); err == nil {
			dirs, _ := filepath.Glob(filepath.Join(cache, "dtls-go", "wolfssl13-*"))
			if len(dirs) > 0 {
				dir = dirs[len(dirs)-1]
			}
		}
	}
	for _, p := range []string{"server", "client"} {
		if st, err := os.Stat(filepath.Join(dir, p)); dir == "" || err != nil || st.Mode()&0o111 == 0 {
			msg := "wolfSSL with DTLS 1.3 not built (run .ci/wolfssl, or set " + wolfssl13Env + ")"
			dtlstest.Missing(t, "%s", msg)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "stamp")); err == nil {
		first, _, _ := strings.Cut(string(b), "\n")
		t.Logf("wolfSSL DTLS 1.3 build: %s (%s)", first, dir)
	}
	return dir
}

// wolfssl13Workdir makes a scratch directory the wolfSSL programs can run
// in: they look for ./certs/dh2048.pem (walking up from their working
// directory) and write ./sslkeylog.log there.
func wolfssl13Workdir(t *testing.T, dir string) string {
	t.Helper()
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "certs"), filepath.Join(work, "certs")); err != nil {
		t.Fatal(err)
	}
	return work
}

// inDir runs bin with args in dir, through a shell that execs it (so that
// killing the process kills the program).
func inDir(dir, bin string, args ...string) []string {
	return append([]string{"-c", `cd "$1" && shift && exec "$@"`, "sh", dir, bin}, args...)
}

func TestWolfSSL13SelfInterop(t *testing.T) {
	dir := wolfssl13Dir(t)
	server, client := filepath.Join(dir, "server"), filepath.Join(dir, "client")
	sh := requirePeer(t, "sh", "sh")
	for _, tc := range []struct {
		name  string
		extra []string // for both sides
		want  []string // in the client's output
	}{
		// Certificates (the bundled ones; -d on both sides skips their
		// verification, as they may have expired).
		{"ECDHE-cert", nil, []string{"SSL cipher suite is TLS_AES_256_GCM_SHA384"}},
		{"X25519MLKEM768", []string{"--pqc", "X25519MLKEM768"}, []string{"SSL curve name is X25519MLKEM768"}},
		{"AES128-CCM", []string{"-l", "TLS13-AES128-CCM-SHA256"}, []string{"SSL cipher suite is TLS_AES_128_CCM_SHA256"}},
		{"ChaCha20", []string{"-l", "TLS13-CHACHA20-POLY1305-SHA256"}, []string{"SSL cipher suite is TLS_CHACHA20_POLY1305_SHA256"}},
		{"AES128-CCM8", []string{"-l", "TLS13-AES128-CCM-8-SHA256"}, []string{"SSL cipher suite is TLS_AES_128_CCM_8_SHA256"}},
		{"PSK", []string{"-s", "-l", "TLS13-AES128-GCM-SHA256"}, []string{"SSL cipher suite is TLS_AES_128_GCM_SHA256"}},
		// RFC 9146 CIDs in DTLS 1.3 (the argument is the CID's bytes as
		// text).
		{"CID", []string{"--cid", "dtls"}, []string{"CID extension was negotiated"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			work := wolfssl13Workdir(t, dir)
			srv, port := startServerProc(ctx, t, sh, func(port int) []string {
				return inDir(work, server, append([]string{"-u", "-v", "4", "-p", strconv.Itoa(port), "-d"}, tc.extra...)...)
			})
			cl := startProc(ctx, t, sh, inDir(work, client, append([]string{"-u", "-v", "4", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-d"}, tc.extra...)...)...)
			cl.waitExit(t, 0)
			srv.waitExit(t, 0)
			out := cl.output()
			// The server's answer to the client's "hello wolfssl!".
			for _, w := range append([]string{"SSL version is DTLSv1.3", "I hear you fa shizzle!"}, tc.want...) {
				if !strings.Contains(out, w) {
					t.Errorf("client output lacks %q:\n%s", w, out)
				}
			}
			if !strings.Contains(srv.output(), "SSL version is DTLSv1.3") {
				t.Errorf("server did not report DTLS 1.3:\n%s", srv.output())
			}
			keylog, err := os.ReadFile(filepath.Join(work, "sslkeylog.log"))
			if err != nil {
				t.Fatalf("no key log: %v", err)
			}
			for _, label := range []string{"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"} {
				if !strings.Contains(string(keylog), label+" ") {
					t.Errorf("key log lacks %s", label)
				}
			}
		})
	}
}
