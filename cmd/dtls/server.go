package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/cmd/dtls/internal/tracefmt"
)

func init() {
	register(&command{
		name:    "server",
		summary: "run a DTLS echo server (like mbedTLS's dtls_server)",
		run:     runServer,
	})
}

const serverSynopsis = `server [-listen ADDR] [-cert FILE -key FILE] [-psk HEX [-psk-identity ID]]
       [-ciphers LIST] [-mtu N] [-idle-timeout DURATION] [-max-conns N] [-once]
       [-shutdown-timeout DURATION] [-fleet-secret-file FILE]
       [-cid N [-server-id HEX]] [-keylog FILE] [-pcap FILE] [-version 1.2|1.3] [-v LEVEL]

Accepts DTLS 1.3 and 1.2 connections and echoes every datagram back on each, one
goroutine per connection. Without -cert and -psk it makes a self-signed
ECDSA P-256 certificate (its SHA-256 fingerprint is printed at -v 1).
Prints "listening on ADDR" to stderr once ready. From -v 2 it prints a
ladder diagram of each connection's handshake, headed by the peer's
address, when that handshake ends.

A connection whose peer sends nothing for -idle-timeout ends (NATs may
forget an idle UDP mapping after 5 minutes, RFC 4787), and at -max-conns
connections a new one ends the longest-idle one, whose peer is sent a
close_notify: a peer that vanishes leaves neither a connection nor a
goroutine behind. At -v 1 it logs each handshake, completed or failed,
says why each connection ended, and prints the listener's counters (drops by reason, handshakes, evictions)
when it exits.

On SIGINT or SIGTERM it shuts down gracefully (Listener.Shutdown): it
stops accepting, lets handshakes in progress finish for up to
-shutdown-timeout, and sends every connection's peer a close_notify.

Several servers behind one balancer (see "Running a fleet" in the
README) share -fleet-secret-file: each then accepts the others'
HelloVerifyRequest cookies and resumes their session tickets. The file
holds the secret as hex digits, at least 64 (32 bytes), made once for the
fleet, e.g. with: openssl rand -hex 32. With -cid N the server hands out
N-byte Connection IDs (RFC 9146), random, or led by -server-id, a
different one on each server, by which the balancer routes a client
whose address changed.
`

// maxDatagram is the read buffer of an echo loop: a record's payload is at
// most 2^14 bytes (RFC 6347 §4.1), so one record always fits.
const maxDatagram = 1 << 14

type serverOptions struct {
	listen      string
	certFile    string
	keyFile     string
	once        bool
	idleTimeout time.Duration
	maxConns    int
	// shutdownTimeout bounds the graceful shutdown on SIGINT/SIGTERM.
	shutdownTimeout time.Duration
	// fleetSecretFile holds Config.FleetSecret in hex.
	fleetSecretFile string
	cidLen          int    // -cid: 0 for no CIDs
	serverIDHex     string // -server-id
	fleetSecret     []byte // set by parseServerFlags from fleetSecretFile
	serverID        []byte // set by parseServerFlags from serverIDHex
	commonFlags
}

// Defaults of -idle-timeout and -max-conns: the library's for a Listener
// (Config.IdleTimeout, Config.MaxConnections).
const (
	defaultIdleTimeout = 5 * time.Minute
	defaultMaxConns    = 10000
	// defaultShutdownTimeout is how long a shutdown waits for handshakes
	// in progress: a peer that is there finishes within a few round
	// trips, or a retransmission or two.
	defaultShutdownTimeout = 5 * time.Second
	// minFleetSecret is the shortest fleet secret, in bytes, that the
	// library accepts (Config.FleetSecret).
	minFleetSecret = 32
)

func parseServerFlags(args []string, w io.Writer) (*serverOptions, error) {
	o := &serverOptions{}
	fs := newFlagSet("server", serverSynopsis, w)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:4433", "listen on UDP address `ADDR`")
	fs.StringVar(&o.certFile, "cert", "", "certificate chain PEM `FILE` (with -key)")
	fs.StringVar(&o.keyFile, "key", "", "private key PEM `FILE` (with -cert)")
	fs.BoolVar(&o.once, "once", false, "exit (status 0) after the first connection ends, by close_notify or error")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", defaultIdleTimeout, "end a connection whose peer sent nothing for `DURATION` (0: never)")
	fs.IntVar(&o.maxConns, "max-conns", defaultMaxConns, "keep at most `N` connections, ending the longest-idle one for a new one")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "on SIGINT/SIGTERM, wait up to `DURATION` for handshakes in progress")
	fs.StringVar(&o.fleetSecretFile, "fleet-secret-file", "", "read the fleet's shared secret (hex, at least 32 bytes) from `FILE`: cookies and session tickets then work across the servers that share it")
	fs.IntVar(&o.cidLen, "cid", 0, "hand out `N`-byte Connection IDs, 1 to 255 (0: none)")
	fs.StringVar(&o.serverIDHex, "server-id", "", "with -cid, start every Connection ID with these `HEX` bytes, which name this server to the balancer")
	o.register(fs, "PSK identity `ID` to accept (default: any)")
	if err := parseArgs(fs, args); err != nil {
		return nil, err
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, usageErrorf("-cert and -key go together")
	}
	if o.pskIdentity != "" && !o.pskSet {
		return nil, usageErrorf("-psk-identity needs -psk")
	}
	if o.idleTimeout < 0 {
		return nil, usageErrorf("-idle-timeout %v is negative (0 means never)", o.idleTimeout)
	}
	if o.maxConns < 1 {
		return nil, usageErrorf("-max-conns %d: at least 1", o.maxConns)
	}
	if o.shutdownTimeout < 0 {
		return nil, usageErrorf("-shutdown-timeout %v is negative", o.shutdownTimeout)
	}
	if o.cidLen < 0 || o.cidLen > 255 {
		return nil, usageErrorf("-cid %d: want a length from 1 to 255, or 0 for none", o.cidLen)
	}
	if o.serverIDHex != "" {
		id, err := hex.DecodeString(o.serverIDHex)
		if err != nil || len(id) == 0 {
			return nil, usageErrorf("-server-id %q: want hex digits, e.g. -server-id 01", o.serverIDHex)
		}
		if o.cidLen == 0 {
			return nil, usageErrorf("-server-id needs -cid")
		}
		if _, err := dtls.ServerIDCIDGenerator(id, o.cidLen); err != nil {
			return nil, usageErrorf("-server-id %s -cid %d: %v", o.serverIDHex, o.cidLen, err)
		}
		o.serverID = id
	}
	if o.fleetSecretFile != "" {
		b, err := os.ReadFile(o.fleetSecretFile)
		if err != nil {
			return nil, fmt.Errorf("-fleet-secret-file: %w", err)
		}
		secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(secret) < minFleetSecret {
			return nil, usageErrorf("-fleet-secret-file %s: want at least %d hex digits (%d bytes), e.g. from openssl rand -hex 32", o.fleetSecretFile, 2*minFleetSecret, minFleetSecret)
		}
		o.fleetSecret = secret
	}
	if err := o.resolve(); err != nil {
		return nil, err
	}
	return o, nil
}

// serverConfig builds the server's Config from its flags. The returned
// closer (possibly nil) closes the key log.
func serverConfig(o *serverOptions, p *tracefmt.Printer) (*dtls.Config, io.Closer, error) {
	cfg := &dtls.Config{IdleTimeout: o.idleTimeout, MaxConnections: o.maxConns}
	if o.idleTimeout == 0 {
		cfg.IdleTimeout = -1 // never
	}
	switch {
	case o.certFile != "":
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	case o.psk == nil:
		host, _, _ := net.SplitHostPort(o.listen)
		cert, err := selfSignedCertificate(time.Now(), host)
		if err != nil {
			return nil, nil, fmt.Errorf("making a self-signed certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		p.Printf(tracefmt.LevelSummary, "self-signed ECDSA P-256 certificate, SHA-256 fingerprint %s", fingerprint(cert.Certificate[0]))
	}
	if o.psk != nil {
		key, want := o.psk, o.pskIdentity
		cfg.PSK = func(identity []byte) ([]byte, error) {
			if want != "" && string(identity) != want {
				return nil, fmt.Errorf("unknown PSK identity %q", identity)
			}
			return key, nil
		}
	}

	cfg.FleetSecret = o.fleetSecret
	switch {
	case o.serverID != nil:
		gen, err := dtls.ServerIDCIDGenerator(o.serverID, o.cidLen)
		if err != nil {
			return nil, nil, err
		}
		cfg.ConnectionIDGenerator = gen
	case o.cidLen > 0:
		cfg.ConnectionIDGenerator = dtls.RandomCIDGenerator(o.cidLen)
	}

	closer, err := o.applyTo(cfg, p)
	if err != nil {
		return nil, nil, err
	}
	return cfg, closer, nil
}

func runServer(ctx context.Context, args []string, std stdio) int {
	o, err := parseServerFlags(args, std.err)
	if err != nil {
		reportUsage(std.err, "server", err)
		return exitCode(err)
	}
	p := tracefmt.New(std.err, o.verbosity, processStart)
	cfg, keylog, err := serverConfig(o, p)
	if err != nil {
		fmt.Fprintf(std.err, "dtls server: %v\n", err)
		return exitError
	}
	if keylog != nil {
		defer keylog.Close()
	}
	l, err := dtls.Listen("udp", o.listen, cfg)
	if err != nil {
		fmt.Fprintf(std.err, "dtls server: %v\n", err)
		return exitError
	}
	addr := o.listen
	if a := l.Addr(); a != nil {
		addr = a.String()
	}
	fmt.Fprintf(std.err, "listening on %s\n", addr)
	if st := l.Stats(); st.ReceiveBufferCapped {
		p.Printf(tracefmt.LevelSummary, "socket receive buffer: %d bytes, less than asked for (raise net.core.rmem_max on Linux)", st.ReceiveBufferSize)
	}
	code := serve(ctx, l, o.once, o.shutdownTimeout, p, std.err)
	p.Printf(tracefmt.LevelSummary, "listener: %s", describeStats(l.Stats()))
	return code
}

// serve accepts connections until ctx is done, the listener fails or, with
// once, the first connection has ended.
func serve(ctx context.Context, l *dtls.Listener, once bool, shutdownTimeout time.Duration, p *tracefmt.Printer, stderr io.Writer) int {
	var (
		wg       sync.WaitGroup
		firstEnd = make(chan struct{})
	)
	// Shutdown unblocks Accept, lets handshakes in progress finish and
	// sends every connection's peer a close_notify, which ends their
	// echo loops (Read returns dtls.ErrListenerClosed).
	shutdown := sync.OnceFunc(func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := l.Shutdown(sctx); err != nil {
			p.Printf(tracefmt.LevelSummary, "shutdown: %v; handshakes still in progress were aborted", err)
		}
	})
	returned := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-firstEnd:
		case <-returned:
		}
		shutdown()
	}()
	defer wg.Wait()
	defer shutdown()
	defer close(returned)

	accepted := 0
	for {
		c, err := l.Accept()
		if err != nil {
			select {
			case <-ctx.Done():
				p.Printf(tracefmt.LevelSummary, "interrupted, shutting down")
				return exitOK
			case <-firstEnd:
				return exitOK
			default:
			}
			fmt.Fprintf(stderr, "dtls server: accept: %v\n", err)
			return exitError
		}
		accepted++
		if once && accepted > 1 {
			// -once serves one peer; later ones are turned away.
			c.Close()
			continue
		}
		first := accepted == 1
		wg.Go(func() {
			echo(ctx, c, p, stderr)
			c.Close()
			if first && once {
				close(firstEnd)
			}
		})
	}
}

// echo runs one connection's handshake and writes every datagram back.
func echo(ctx context.Context, c net.Conn, p *tracefmt.Printer, stderr io.Writer) {
	peer := "?"
	if a := c.RemoteAddr(); a != nil {
		peer = a.String()
	}
	if dc, ok := c.(*dtls.Conn); ok { // Accept returns it handshaken
		st := dc.ConnectionState()
		p.Printf(tracefmt.LevelSummary, "%s: connected in %v, %s", peer, st.HandshakeDuration.Round(time.Microsecond), describeState(&st))
	}
	buf := make([]byte, maxDatagram)
	for {
		n, err := c.Read(buf)
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				p.Printf(tracefmt.LevelSummary, "%s: closed by peer (close_notify)", peer)
			case errors.Is(err, dtls.ErrIdleTimeout):
				p.Printf(tracefmt.LevelSummary, "%s: closed: nothing from the peer for the idle timeout", peer)
			case errors.Is(err, dtls.ErrEvicted):
				p.Printf(tracefmt.LevelSummary, "%s: closed: evicted, the longest idle at -max-conns", peer)
			case errors.Is(err, dtls.ErrPeerRestarted):
				p.Printf(tracefmt.LevelSummary, "%s: closed: the peer started a new connection from the same port", peer)
			case errors.Is(err, dtls.ErrListenerClosed):
				p.Printf(tracefmt.LevelSummary, "%s: closed: the server is shutting down", peer)
			case errors.Is(err, net.ErrClosed) || ctx.Err() != nil:
			default:
				fmt.Fprintf(stderr, "dtls server: %s: %v\n", peer, err)
			}
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			fmt.Fprintf(stderr, "dtls server: %s: write: %v\n", peer, err)
			return
		}
	}
}

// describeStats summarizes a Listener's counters, for -v 1.
func describeStats(s dtls.ListenerStats) string {
	out := fmt.Sprintf("handshakes %d started, %d completed, %d failed (%d stalled, %d evicted); %d connections, %d idle timeouts, %d evicted",
		s.HandshakesStarted, s.HandshakesCompleted, s.HandshakesFailed, s.HandshakesStalled, s.HandshakesEvicted,
		s.Connections, s.IdleTimeouts, s.Evicted)
	reasons := make([]string, 0, len(s.Dropped))
	for r := range s.Dropped {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for i, r := range reasons {
		if i == 0 {
			out += "; dropped"
		}
		out += fmt.Sprintf(" %s: %d", r, s.Dropped[r])
	}
	return out
}

// describeState summarizes what a handshake negotiated, for -v 1.
func describeState(st *dtls.ConnectionState) string {
	s := dtls.CipherSuiteName(st.CipherSuite)
	if st.CurveID != 0 {
		s += ", " + st.CurveID.String()
	}
	if len(st.PSKIdentity) > 0 {
		s += fmt.Sprintf(", PSK identity %q", st.PSKIdentity)
	}
	if len(st.PeerCertificates) > 0 {
		s += ", peer " + st.PeerCertificates[0].Subject.String()
	}
	if st.ExtendedMasterSecret {
		s += ", extended master secret"
	}
	if st.DidResume {
		s += ", resumed"
	}
	if len(st.LocalConnectionID) > 0 {
		s += fmt.Sprintf(", CID %x", st.LocalConnectionID)
	}
	return s
}
