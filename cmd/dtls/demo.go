package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
	"github.com/dtls-go/dtls/cmd/dtls/internal/ladder"
)

func init() {
	register(&command{
		name:    "demo",
		summary: "run a client and a server in one process and show the whole handshake",
		run:     runDemo,
	})
}

const demoSynopsis = `demo [-loss P] [-mtu N] [-seed S] [-psk] [-version 1.2|1.3 [-keyupdate] [-tickets N]] [-out DIR] [-messages N]

Runs a DTLS server and client in this process over loopback, through a
seeded lossy channel when -loss is above 0, does a handshake and echoes a
few messages: DTLS 1.3 by default, as the library, or 1.2 with
-version 1.2. Prints a ladder diagram of every flight, message,
retransmission, ACK and drop, and writes to DIR:

  handshake.pcapng  the datagrams as UDP, with the session keys embedded:
                    dtls analyze DIR/handshake.pcapng decrypts it (tshark
                    -r DIR/handshake.pcapng too for 1.2; tshark 4.0 does
                    not dissect 1.3)
  handshake.svg     the ladder as a picture
  keylog.txt        the NSS key log (for tools that want it separately)

DIR defaults to a new folder named dtls-demo-<time> in the current one.
`

const (
	// demoTimeout bounds the whole demo, handshake and echoes, so that a
	// very lossy channel ends with an error rather than a hang.
	demoTimeout = 2 * time.Minute
	// demoEchoWait bounds the wait for one echoed message; a lost message
	// (application data is not retransmitted) is reported, not retried.
	demoEchoWait = time.Second
)

type demoOptions struct {
	loss     float64
	mtu      int
	seed     uint64
	psk      bool
	out      string
	messages int
	version  uint16
	// keyUpdate: DTLS 1.3, the client updates its keys (and asks the
	// server to) before the messages.
	keyUpdate bool
	// tickets: DTLS 1.3, the server sends that many NewSessionTickets
	// (Config.SessionTicketsPerConnection) to a client with a cache.
	tickets int
}

func parseDemoFlags(args []string, w io.Writer) (*demoOptions, error) {
	o := &demoOptions{}
	fs := newFlagSet("demo", demoSynopsis, w)
	loss := fs.String("loss", "0", "drop this share of datagrams in each direction: 0.3 or 30%")
	fs.IntVar(&o.mtu, "mtu", 0, "path MTU for the handshake, in bytes of UDP payload, 128 to 65507 (0: the library's 1200)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the lossy channel, for repeatable runs")
	fs.BoolVar(&o.psk, "psk", false, "use a pre-shared key (in 1.2 TLS_PSK_WITH_AES_128_CCM_8, in 1.3 an external PSK with ECDHE) instead of an ECDSA certificate")
	fs.StringVar(&o.out, "out", "", "folder for handshake.pcapng, handshake.svg and keylog.txt")
	fs.IntVar(&o.messages, "messages", 3, "application messages to echo after the handshake")
	fs.BoolVar(&o.keyUpdate, "keyupdate", false, "with -version 1.3: after the handshake the client sends a KeyUpdate asking the server for one too, and the ladder shows the ACKs and the epochs move")
	fs.IntVar(&o.tickets, "tickets", 0, "with -version 1.3: the server sends this many NewSessionTickets (1 to 4) to a client with a session cache, and the ladder shows each and its ACK")
	version := fs.String("version", "1.3", "DTLS version: 1.3 (RFC 9147, the library's default) or 1.2 (RFC 6347)")
	if err := parseArgs(fs, args); err != nil {
		return nil, err
	}
	switch *version {
	case "1.2":
		o.version = dtls.VersionDTLS12
	case "1.3":
		o.version = dtls.VersionDTLS13
	default:
		return nil, usageErrorf("-version %q: 1.2 or 1.3", *version)
	}
	if o.keyUpdate && o.version != dtls.VersionDTLS13 {
		return nil, usageErrorf("-keyupdate needs -version 1.3")
	}
	if o.tickets != 0 && o.version != dtls.VersionDTLS13 {
		return nil, usageErrorf("-tickets needs -version 1.3")
	}
	if o.tickets < 0 || o.tickets > 4 {
		return nil, usageErrorf("-tickets %d: between 1 and 4", o.tickets)
	}
	p, err := parseLoss(*loss)
	if err != nil {
		return nil, err
	}
	o.loss = p
	if err := checkMTU(o.mtu); err != nil {
		return nil, err
	}
	if o.messages < 0 || o.messages > 100 {
		return nil, usageErrorf("-messages %d: between 0 and 100", o.messages)
	}
	return o, nil
}

// parseLoss reads "0.3", "30%" or "30" (a number above 1 is a percentage).
func parseLoss(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, usageErrorf("-loss %q: want a share like 0.3 or 30%%", s)
	}
	if pct || v > 1 {
		v /= 100
	}
	if v < 0 || v >= 1 {
		return 0, usageErrorf("-loss %q: must be at least 0 and below 100%%", s)
	}
	return v, nil
}

func runDemo(ctx context.Context, args []string, std stdio) int {
	o, err := parseDemoFlags(args, std.err)
	if err != nil {
		reportUsage(std.err, "demo", err)
		return exitCode(err)
	}
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	if err := demo(ctx, o, std); err != nil {
		fmt.Fprintf(std.err, "dtls demo: %v\n", err)
		return exitError
	}
	return exitOK
}

func demo(ctx context.Context, o *demoOptions, std stdio) error {
	dir := o.out
	if dir == "" {
		dir = "dtls-demo-" + time.Now().Format("20060102-150405")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The capture and the key log hold the session keys: readable by
	// their owner only, as `dtls server -pcap` and -keylog make them.
	pcapFile, err := createPrivate(filepath.Join(dir, "handshake.pcapng"))
	if err != nil {
		return err
	}
	defer pcapFile.Close()
	keylogFile, err := createPrivate(filepath.Join(dir, "keylog.txt"))
	if err != nil {
		return err
	}
	defer keylogFile.Close()

	capw := capture.NewWriter(pcapFile)
	lad := ladder.New()
	// The capture holds each datagram once, as it arrived: the view of a
	// capture on the wire between the lossy channel and the receiver. The
	// ladder sees everything, losses included.
	record := capw.Tracer(nil)
	// hrrGroup is the selected_group of the server's HelloRetryRequest
	// (X25519MLKEM768 at the defaults), for the summary: the ladder
	// names the message only.
	var hrrGroup atomic.Uint32
	tracer := func(ev *dtls.TraceEvent) {
		lad.Add(ev)
		if ev.Kind == dtls.TraceDatagramReceived {
			record(ev)
		}
		if ev.Kind == dtls.TraceDatagramSent && !ev.Client {
			helloFragments(ev.Datagram, func(typ uint8, length uint32, _ uint16, off uint32, frag []byte) {
				if typ != hsServerHello || off != 0 || uint32(len(frag)) != length {
					return
				}
				if h, ok := parseHello(false, frag); ok && h.hrr && h.group != 0 {
					hrrGroup.Store(uint32(h.group))
				}
			})
		}
	}
	keylog := io.MultiWriter(keylogFile, capw.KeyLogWriter())

	serverCfg, clientCfg, err := demoConfigs(o)
	if err != nil {
		return err
	}
	for _, c := range []*dtls.Config{serverCfg, clientCfg} {
		c.Tracer = tracer
		c.KeyLogWriter = keylog
		c.MTU = o.mtu
		c.MaxVersion = o.version
	}
	if o.tickets > 0 {
		serverCfg.SessionTicketsPerConnection = o.tickets
		clientCfg.ClientSessionCache = dtls.NewLRUClientSessionCache(1)
	}

	// The channel: two loopback sockets, each dropping o.loss of what it
	// sends, from one seeded source per direction.
	spc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var serverPC net.PacketConn = spc
	if o.loss > 0 {
		serverPC = &lossyPacketConn{PacketConn: spc, drop: newDropper(o.loss, o.seed, 1)}
	}
	l, err := dtls.NewListener(serverPC, serverCfg)
	if err != nil {
		spc.Close()
		return err
	}
	defer l.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	serverDone := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(serverDone)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<14)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
		}
	}()

	raw, err := net.Dial("udp", l.Addr().String())
	if err != nil {
		return err
	}
	var clientConn net.Conn = raw
	if o.loss > 0 {
		clientConn = &lossyConn{Conn: raw, drop: newDropper(o.loss, o.seed, 2)}
	}
	conn := dtls.Client(clientConn, clientCfg)
	start := time.Now()
	hsErr := conn.HandshakeContext(ctx)
	elapsed := time.Since(start)
	echoed := 0
	if hsErr == nil && o.keyUpdate {
		if err := conn.UpdateKeys(true); err != nil {
			fmt.Fprintf(std.err, "dtls demo: KeyUpdate: %v\n", err)
		}
	}
	if hsErr == nil {
		buf := make([]byte, 1<<14)
		for i := 1; i <= o.messages; i++ {
			msg := fmt.Sprintf("message %d", i)
			if _, err := conn.Write([]byte(msg)); err != nil {
				break
			}
			conn.SetReadDeadline(time.Now().Add(demoEchoWait))
			n, err := conn.Read(buf)
			if err == nil && string(buf[:n]) == msg {
				echoed++
			}
		}
	}
	conn.Close()
	if hsErr == nil {
		// Let the server read our close_notify and answer it, so the
		// ladder ends the way a real session does.
		select {
		case <-serverDone:
		case <-time.After(demoEchoWait):
		}
	}
	l.Close()
	wg.Wait()

	if err := lad.Text(std.out); err != nil {
		return err
	}
	svgPath := filepath.Join(dir, "handshake.svg")
	svg, err := os.Create(svgPath)
	if err != nil {
		return err
	}
	if err := lad.SVG(svg); err != nil {
		svg.Close()
		return err
	}
	if err := svg.Close(); err != nil {
		return err
	}
	if err := capw.Close(); err != nil {
		return err
	}
	fmt.Fprintln(std.out)
	if hsErr != nil {
		fmt.Fprintf(std.out, "handshake failed after %v: %v\n", elapsed.Round(time.Microsecond), hsErr)
	} else {
		st := conn.ConnectionState()
		fmt.Fprintf(std.out, "handshake: %s, %v in %v; %d of %d messages echoed\n",
			dtls.CipherSuiteName(st.CipherSuite), st.CurveID, elapsed.Round(time.Microsecond), echoed, o.messages)
	}
	if g := hrrGroup.Load(); g != 0 {
		fmt.Fprintf(std.out, "HelloRetryRequest: asked for a key share for %s\n", groupName(tls.CurveID(g)))
	}
	if o.loss > 0 {
		fmt.Fprintf(std.out, "channel: %.0f%% loss each way, seed %d\n", o.loss*100, o.seed)
	}
	fmt.Fprintf(std.out, "wrote %s, %s and %s\n", filepath.Join(dir, "handshake.pcapng"), svgPath, filepath.Join(dir, "keylog.txt"))
	if o.version == dtls.VersionDTLS13 {
		// tshark 4.0 (Debian 12) does not dissect DTLS 1.3.
		fmt.Fprintf(std.out, "try: go run ./cmd/dtls analyze %s\n", filepath.Join(dir, "handshake.pcapng"))
	} else {
		fmt.Fprintf(std.out, "try: tshark -r %s\n", filepath.Join(dir, "handshake.pcapng"))
	}
	return hsErr
}

// createPrivate creates or truncates a file that only its owner may read
// (0600). A file that existed keeps its mode, so it is made afresh.
func createPrivate(name string) (*os.File, error) {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// demoConfigs returns the server's and the client's configuration: an
// ECDSA P-256 certificate the client trusts, or a PSK.
func demoConfigs(o *demoOptions) (server, client *dtls.Config, err error) {
	if o.psk {
		key := []byte("demo pre-shared key, 32 bytes..")
		psk := func([]byte) ([]byte, error) { return key, nil }
		suites := []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8}
		return &dtls.Config{PSK: psk, PSKIdentityHint: []byte("demo"), CipherSuites: suites},
			&dtls.Config{PSK: psk, PSKIdentity: []byte("demo-client"), CipherSuites: suites}, nil
	}
	cert, err := selfSignedCertificate(time.Now(), "localhost")
	if err != nil {
		return nil, nil, err
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return &dtls.Config{Certificates: []tls.Certificate{cert}},
		&dtls.Config{RootCAs: roots, ServerName: "localhost"}, nil
}

// dropper decides, from a seeded source, which datagrams the channel loses.
type dropper struct {
	mu   sync.Mutex
	rng  *mrand.Rand
	loss float64
}

func newDropper(loss float64, seed, stream uint64) *dropper {
	return &dropper{rng: mrand.New(mrand.NewPCG(seed, stream)), loss: loss}
}

func (d *dropper) drop() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rng.Float64() < d.loss
}

type lossyPacketConn struct {
	net.PacketConn
	drop *dropper
}

func (l *lossyPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if l.drop.drop() {
		return len(b), nil
	}
	return l.PacketConn.WriteTo(b, addr)
}

type lossyConn struct {
	net.Conn
	drop *dropper
}

func (l *lossyConn) Write(b []byte) (int, error) {
	if l.drop.drop() {
		return len(b), nil
	}
	return l.Conn.Write(b)
}
