package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
)

// The fleet tests run three `dtls server` processes behind Debian's nginx
// (its UDP stream proxy and njs), as "Running a fleet" in the README
// describes, with the README's nginx configuration and script as they
// stand. The servers are this test binary re-executed as the dtls command
// (TestMain), so no separate build is needed.

// asCommandEnv, set to 1, makes the test binary run as the dtls command.
const asCommandEnv = "DTLS_TEST_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(asCommandEnv) == "1" {
		main() // exits
	}
	os.Exit(m.Run())
}

// Debian's nginx modules: the UDP stream proxy and njs for it.
const nginxModules = "/usr/lib/nginx/modules"

var nginxModuleFiles = []string{"ngx_stream_module.so", "ngx_stream_js_module.so"}

// needNginx returns the nginx binary, or skips the test (fails it under
// CI=true) when nginx or its stream and njs modules are missing.
func needNginx(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing under CI=true (.ci/run installs nginx, libnginx-mod-stream, libnginx-mod-stream-js)", what)
		}
		t.Skipf("%s missing: install nginx, libnginx-mod-stream and libnginx-mod-stream-js", what)
	}
	p, err := exec.LookPath("nginx")
	if err != nil {
		if p, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			missing("nginx")
		}
	}
	for _, m := range nginxModuleFiles {
		if _, err := os.Stat(filepath.Join(nginxModules, m)); err != nil {
			missing(m)
		}
	}
	return p
}

// readmeFleet returns the nginx stream block and the njs script of the
// README's "Running a fleet" section, as they stand.
func readmeFleet(t *testing.T) (stream, script string) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Running a fleet\n")
	if !ok {
		t.Fatal(`README.md has no "Running a fleet" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	block := func(lang string) string {
		_, rest, ok := strings.Cut(sec, "\n```"+lang+"\n")
		if !ok {
			t.Fatalf("no %s block in the README's fleet section", lang)
		}
		body, _, ok := strings.Cut(rest, "\n```\n")
		if !ok {
			t.Fatalf("unterminated %s block", lang)
		}
		return body + "\n"
	}
	return block("nginx"), block("js")
}

// The README's addresses, which the tests replace with free ports.
const (
	readmeFront = "127.0.0.1:4433"
)

func readmeServer(i int) string { return fmt.Sprintf("127.0.0.1:%d", 4434+i) }

// startProcess starts a process whose output goes to a buffer, and kills
// it (and waits for it) when the test ends.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not exit after SIGKILL", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return out
}

// fleetPSK is the servers' PSK; any identity.
const fleetPSK = "00112233445566778899aabbccddeeff"

// fleetServer is one `dtls server` process of a test fleet.
type fleetServer struct {
	addr string
	log  *syncBuffer
}

// connected counts the connections the server logged as established.
func (s *fleetServer) connected() int { return strings.Count(s.log.String(), ": connected in ") }

// startFleet starts three servers, with server ids 1, 2, 3 in 8-byte CIDs,
// all with one fleet secret.
func startFleet(t *testing.T) []*fleetServer {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "fleet.key")
	if err := os.WriteFile(secret, []byte("8f3c9a6b1e2d4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var servers []*fleetServer
	for i := 1; i <= 3; i++ {
		cmd := exec.Command(os.Args[0], "server", "-listen", "127.0.0.1:0", "-psk", fleetPSK,
			"-fleet-secret-file", secret, "-cid", "8", "-server-id", fmt.Sprintf("%02x", i), "-v", "1")
		cmd.Env = append(os.Environ(), asCommandEnv+"=1")
		log := startProcess(t, fmt.Sprintf("server %d", i), cmd)
		servers = append(servers, &fleetServer{log: log})
	}
	re := regexp.MustCompile(`listening on (\S+)`)
	for i, s := range servers {
		waitUntil(t, fmt.Sprintf("server %d listening", i+1), func() bool {
			m := re.FindStringSubmatch(s.log.String())
			if m != nil {
				s.addr = m[1]
			}
			return m != nil
		})
	}
	return servers
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startNginx runs nginx in the foreground, in one process (no master, no
// workers to switch user), with its prefix, pid file and logs in a
// temporary directory, the README's stream block with its addresses
// replaced by the test's, and the given scripts next to its
// configuration. It returns nginx's front address once it listens, and
// its error log (info level: nginx logs each session's upstream there).
func startNginx(t *testing.T, stream string, scripts map[string]string, servers []*fleetServer) (front string, errorLog string) {
	t.Helper()
	nginx := needNginx(t)
	dir := t.TempDir()
	front = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	// In one pass, so that an address put in is not replaced again.
	pairs := []string{readmeFront, front}
	for i, s := range servers {
		pairs = append(pairs, readmeServer(i), s.addr)
	}
	stream = strings.NewReplacer(pairs...).Replace(stream)
	errorLog = filepath.Join(dir, "error.log")
	var conf strings.Builder
	for _, m := range nginxModuleFiles {
		fmt.Fprintf(&conf, "load_module %s;\n", filepath.Join(nginxModules, m))
	}
	fmt.Fprintf(&conf, "daemon off;\nmaster_process off;\npid %s;\nerror_log %s info;\nevents {}\n",
		filepath.Join(dir, "nginx.pid"), errorLog)
	conf.WriteString(stream)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// -e: the error log before the configuration is read, which would
	// otherwise be the compiled-in /var/log/nginx/error.log.
	cmd := exec.Command(nginx, "-p", dir, "-c", confFile, "-e", errorLog)
	startProcess(t, "nginx", cmd)
	// nginx listens once binding its address fails for anyone else.
	frontAddr, _ := net.ResolveUDPAddr("udp", front)
	waitUntil(t, "nginx listening on "+front, func() bool {
		c, err := net.ListenUDP("udp", frontAddr)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.EADDRINUSE)
	})
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(errorLog)
			t.Logf("nginx error log:\n%s", b)
		}
	})
	return front, errorLog
}

func fleetClientConfig() *dtls.Config {
	return &dtls.Config{
		PSK:                   func([]byte) ([]byte, error) { return hex.DecodeString(fleetPSK) },
		PSKIdentity:           []byte("device-1"),
		ConnectionIDGenerator: dtls.OnlySendCIDGenerator(), // we send the server's CID
		ClientSessionCache:    dtls.NewLRUClientSessionCache(4),
	}
}

// echo writes msg on c and checks that it comes back.
func echoOnce(t *testing.T, c *dtls.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != msg {
		t.Fatalf("echo of %q: %q, %v", msg, buf[:n], err)
	}
}

// echoAfterMove is echoOnce from a new address: the server checks it
// (RFC 9853) before it sends there, so the first echoes go to the old
// one and are lost; msg is sent again every 100 ms, at most 50 times.
func echoAfterMove(t *testing.T, c *dtls.Conn, msg string) {
	t.Helper()
	buf := make([]byte, 1024)
	for range 50 {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		for {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			if string(buf[:n]) == msg {
				return
			}
		}
	}
	t.Fatalf("no echo of %q from the new address", msg)
}

// serverOf returns the server id a connection's CID names (1 to 3).
func serverOf(t *testing.T, c *dtls.Conn) int {
	t.Helper()
	cid := c.ConnectionState().RemoteConnectionID
	if len(cid) != 8 || cid[0] < 1 || cid[0] > 3 {
		t.Fatalf("server's CID %x does not name a server", cid)
	}
	return int(cid[0])
}

func dialFleet(t *testing.T, front string, cfg *dtls.Config) *dtls.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := dtls.DialContext(ctx, "udp", front, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", front, err)
	}
	return c
}

// TestFleetNginxTicketOnAnotherServer: a ticket one server issued resumes
// on another. nginx hashes the client's address and port; each Dial has a
// new port, so the test dials until a connection lands elsewhere (each
// does with probability 2/3; 30 tries).
func TestFleetNginxTicketOnAnotherServer(t *testing.T) {
	needNginx(t) // before starting servers it would not use
	servers := startFleet(t)
	stream, script := readmeFleet(t)
	front, _ := startNginx(t, stream, map[string]string{"dtls_route.js": script}, servers)

	cfg := fleetClientConfig()
	c := dialFleet(t, front, cfg)
	echoOnce(t, c, "full handshake")
	first := serverOf(t, c)
	if c.ConnectionState().DidResume {
		t.Fatal("first handshake resumed")
	}
	c.Close()
	for try := range 30 {
		c := dialFleet(t, front, cfg)
		echoOnce(t, c, fmt.Sprintf("try %d", try))
		on, resumed := serverOf(t, c), c.ConnectionState().DidResume
		c.Close()
		if !resumed {
			t.Fatalf("try %d, on server %d: did not resume the ticket of server %d", try, on, first)
		}
		if on != first {
			t.Logf("the ticket of server %d resumed on server %d (try %d)", first, on, try)
			// The server's log reaches us through a pipe, a moment later.
			waitUntil(t, fmt.Sprintf("server %d logging a resumed connection", on), func() bool {
				return strings.Contains(servers[on-1].log.String(), ", resumed")
			})
			return
		}
	}
	t.Fatal("30 connections all landed on the first server")
}

// rebindingRelay forwards a client's datagrams to nginx from an outside
// socket that rebind replaces: the client's NAT giving it a new port.
type rebindingRelay struct {
	t      *testing.T
	front  *net.UDPConn
	target *net.UDPAddr
	out    atomic.Pointer[net.UDPConn]
	client atomic.Pointer[net.UDPAddr]
	wg     sync.WaitGroup
}

func newRebindingRelay(t *testing.T, target string) *rebindingRelay {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	to, _ := net.ResolveUDPAddr("udp", target)
	r := &rebindingRelay{t: t, front: front, target: to}
	r.rebind()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.client.Store(from)
			r.out.Load().WriteToUDP(buf[:n], r.target)
		}
	}()
	t.Cleanup(func() {
		front.Close()
		r.out.Load().Close()
		r.wg.Wait()
	})
	return r
}

// rebind moves the relay's outside traffic to a new port, closes the old
// one, and returns the new port.
func (r *rebindingRelay) rebind() int {
	out, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		r.t.Fatal(err)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, _, err := out.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if c := r.client.Load(); c != nil {
				r.front.WriteToUDP(buf[:n], c)
			}
		}
	}()
	if old := r.out.Swap(out); old != nil {
		old.Close()
	}
	return out.LocalAddr().(*net.UDPAddr).Port
}

// TestFleetNginxCIDRebinding: a client with a CID whose port changes keeps
// its session through nginx. Each new port is a new nginx session, which
// the njs script routes by the server id in the CID; routed by address
// instead, each would reach another server (which drops the unknown CID)
// with probability 2/3, so eight rebinds with no echo lost would pass by
// chance with probability 3^-8 if the CID routing did not work. nginx's
// log must also show each session going to the connection's server.
func TestFleetNginxCIDRebinding(t *testing.T) {
	needNginx(t) // before starting servers it would not use
	servers := startFleet(t)
	stream, script := readmeFleet(t)
	front, errorLog := startNginx(t, stream, map[string]string{"dtls_route.js": script}, servers)

	relay := newRebindingRelay(t, front)
	c := dialFleet(t, relay.front.LocalAddr().String(), fleetClientConfig())
	defer c.Close()
	echoOnce(t, c, "before")
	on := serverOf(t, c)
	const rebinds = 8
	ports := make([]int, 0, rebinds)
	for i := range rebinds {
		ports = append(ports, relay.rebind())
		echoAfterMove(t, c, fmt.Sprintf("after rebind %d", i+1))
	}
	// The servers' logs reach us through pipes, a moment later.
	waitUntil(t, fmt.Sprintf("server %d logging its connection", on), func() bool { return servers[on-1].connected() > 0 })
	for i, s := range servers {
		if want := map[bool]int{true: 1}[i+1 == on]; s.connected() != want {
			t.Errorf("server %d logged %d connections, want %d", i+1, s.connected(), want)
		}
	}
	// A datagram whose CID names no server of the fleet goes nowhere,
	// and nginx goes on.
	forger, err := net.Dial("udp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	forged := append([]byte{25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 9}, make([]byte, 40)...)
	if _, err := forger.Write(forged); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "nginx refusing the forged CID's session", func() bool {
		b, _ := os.ReadFile(errorLog)
		return strings.Contains(string(b), `no port in upstream "dtls_server_9"`)
	})
	echoOnce(t, c, "after a forged CID")

	// nginx logs, for each session, the client and then the upstream:
	//   *N udp client 127.0.0.1:PORT connected to FRONT
	//   *N udp proxy 127.0.0.1:X connected to SERVER
	b, err := os.ReadFile(errorLog)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, port := range ports {
		m := regexp.MustCompile(`\*(\d+) udp client 127\.0\.0\.1:` + fmt.Sprint(port) + ` connected`).FindStringSubmatch(log)
		if m == nil {
			t.Errorf("nginx logged no session from port %d", port)
			continue
		}
		if !regexp.MustCompile(`\*` + m[1] + ` udp proxy \S+ connected to ` + regexp.QuoteMeta(servers[on-1].addr)).MatchString(log) {
			t.Errorf("nginx session %s (port %d) did not go to server %d", m[1], port, on)
		}
	}
}

// splitScript is a test-only njs script: a ClientHello with an empty
// cookie (a client's first) goes to server 1, any other datagram to
// server 2.
const splitScript = `function preread(s) {
    s.on('upstream', function (data, flags) {
        // record header (13) | handshake header (12) | client_version (2) |
        // random (32) | session_id<0..32> | cookie<0..255>
        var first = false;
        if (data.length > 60 && data[0] == 22 && data[13] == 1) {
            var sid = data[59];
            first = data.length > 60 + sid && data[60 + sid] == 0;
        }
        s.variables.dtls_upstream = first ? 'dtls_server_1' : 'dtls_server_2';
        s.done();
    });
}

export default {preread};
`

// helloCounter counts the ClientHellos a client writes.
type helloCounter struct {
	net.Conn
	hellos atomic.Int32
}

func (c *helloCounter) Write(b []byte) (int, error) {
	if len(b) > 13 && b[0] == 22 && b[13] == 1 {
		c.hellos.Add(1)
	}
	return c.Conn.Write(b)
}

// TestFleetNginxHelloOnTwoServers: a client whose first ClientHello
// reaches one server and whose second reaches another completes, with two
// ClientHellos: the second server accepts the first's cookie. nginx does
// not move a client between servers by itself (a session per client
// address), so the README's configuration is changed here, and only here:
// splitScript routes, proxy_responses 1 ends each nginx session with its
// answer, so that every datagram is routed afresh, and proxy_bind
// 127.0.0.2:$remote_port makes every session of the client reach the
// servers from one address, as a source-preserving balancer would (the
// cookie is bound to the address the server sees).
func TestFleetNginxHelloOnTwoServers(t *testing.T) {
	needNginx(t) // before starting servers it would not use
	servers := startFleet(t)
	stream, script := readmeFleet(t)
	for _, r := range [][2]string{
		{"js_import dtls_route.js;", "js_import dtls_route.js;\n    js_import split.js;"},
		{"js_preread dtls_route.preread;", "js_preread split.preread;\n        proxy_responses 1;\n        proxy_bind 127.0.0.2:$remote_port;"},
	} {
		if !strings.Contains(stream, r[0]) {
			t.Fatalf("the README's stream block has no %q", r[0])
		}
		stream = strings.Replace(stream, r[0], r[1], 1)
	}
	front, _ := startNginx(t, stream, map[string]string{"dtls_route.js": script, "split.js": splitScript}, servers)

	raw, err := net.Dial("udp", front)
	if err != nil {
		t.Fatal(err)
	}
	counter := &helloCounter{Conn: raw}
	cfg := fleetClientConfig()
	cfg.CipherSuites = []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8} // flights of one datagram each
	// DTLS 1.2: splitScript tells the first ClientHello by its empty
	// legacy cookie, which a 1.3 ClientHello leaves empty in both (its
	// cookie is an extension), and proxy_responses 1 lets one datagram
	// of each flight through, which 1.2's are here. 1.3 cookies across a
	// fleet: TestFleetListeners in the package.
	cfg.MaxVersion = dtls.VersionDTLS12
	c := dtls.Client(counter, cfg)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	echoOnce(t, c, "split")
	if on := serverOf(t, c); on != 2 {
		t.Errorf("connected to server %d, want 2", on)
	}
	if n := counter.hellos.Load(); n != 2 {
		t.Errorf("%d ClientHellos, want 2 (the second server accepting the first's cookie)", n)
	}
	waitUntil(t, "server 2 logging its connection", func() bool { return servers[1].connected() > 0 })
	if servers[0].connected() != 0 || servers[1].connected() != 1 {
		t.Errorf("connections: server 1 %d, server 2 %d; want 0 and 1", servers[0].connected(), servers[1].connected())
	}
}

// TestFleetServerFlags checks the fleet flags of `dtls server`.
func TestFleetServerFlags(t *testing.T) {
	dir := t.TempDir()
	good, short := filepath.Join(dir, "good"), filepath.Join(dir, "short")
	os.WriteFile(good, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	os.WriteFile(short, []byte(strings.Repeat("ab", 31)), 0o600)
	o, err := parseServerFlags([]string{"-fleet-secret-file", good, "-cid", "8", "-server-id", "0a0b"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := serverConfig(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cfg.FleetSecret, bytes.Repeat([]byte{0xab}, 32)) || cfg.ConnectionIDGenerator == nil {
		t.Fatalf("config: %+v", cfg)
	}
	if cid := cfg.ConnectionIDGenerator(); len(cid) != 8 || cid[0] != 0x0a || cid[1] != 0x0b {
		t.Errorf("CID %x", cid)
	}
	o, _ = parseServerFlags([]string{"-cid", "4"}, io.Discard)
	if cfg, _, _ := serverConfig(o, nil); cfg.ConnectionIDGenerator == nil || len(cfg.ConnectionIDGenerator()) != 4 || cfg.FleetSecret != nil {
		t.Errorf("-cid 4: %+v", cfg)
	}
	for _, args := range [][]string{
		{"-fleet-secret-file", short},
		{"-server-id", "01"},
		{"-cid", "4", "-server-id", "01"},
		{"-cid", "8", "-server-id", "zz"},
		{"-cid", "256"},
		{"-cid", "-1"},
	} {
		if _, err := parseServerFlags(args, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
	}
	if _, err := parseServerFlags([]string{"-fleet-secret-file", filepath.Join(dir, "none")}, io.Discard); err == nil || errors.Is(err, errUsage) {
		t.Errorf("missing secret file: %v, want an error that is not a usage error", err)
	}
}
