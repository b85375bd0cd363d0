package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/cmd/dtls/internal/tracefmt"
)

func init() {
	register(&command{
		name:    "client",
		summary: "send stdin lines over DTLS and print the replies (like mbedTLS's dtls_client)",
		run:     runClient,
	})
}

const clientSynopsis = `client [-connect ADDR] [-ca FILE | -insecure] [-servername NAME]
       [-psk HEX [-psk-identity ID]] [-ciphers LIST] [-mtu N] [-keylog FILE] [-pcap FILE]
       [-version 1.2|1.3] [-v LEVEL] [-wait DURATION]

Connects, sends each line of standard input (without its line ending) as
one datagram, and prints each datagram received as a line on standard
output. Empty lines are not sent. At the end of input it waits -wait for
outstanding replies, sends close_notify and exits 0. A failed handshake
exits 1 with the alert or error on stderr, and so does a server that
closes the connection (close_notify) before all the input was sent and
as many datagrams came back as were sent: an echo that was cut short. From -v 2 it prints a ladder
diagram of the handshake on stderr when it ends.
`

const (
	// defaultClientWait is how long the client waits for replies after
	// the end of its input: an echo over loopback takes far less.
	defaultClientWait = 500 * time.Millisecond
	// readerStopWait bounds how long the client waits, after Close, for its
	// reader goroutine to see the connection closed.
	readerStopWait = time.Second
	// exitInterrupted is the shell's status for a process ended by SIGINT.
	exitInterrupted = 130
	// defaultPSKIdentity is the identity OpenSSL's s_client and mbedTLS's
	// dtls_client send when none is given.
	defaultPSKIdentity = "Client_identity"
)

type clientOptions struct {
	connect    string
	caFile     string
	insecure   bool
	serverName string
	wait       time.Duration
	commonFlags
}

func parseClientFlags(args []string, w io.Writer) (*clientOptions, error) {
	o := &clientOptions{}
	o.pskIdentity = defaultPSKIdentity
	fs := newFlagSet("client", clientSynopsis, w)
	fs.StringVar(&o.connect, "connect", "127.0.0.1:4433", "connect to the server at UDP address `ADDR`")
	fs.StringVar(&o.caFile, "ca", "", "verify the server against the CA certificates in PEM `FILE` (default: the system roots)")
	fs.BoolVar(&o.insecure, "insecure", false, "accept any server certificate (for testing, e.g. against the self-signed one of 'dtls server')")
	fs.StringVar(&o.serverName, "servername", "", "`NAME` to verify the certificate against and send as SNI (default: the host of -connect)")
	fs.DurationVar(&o.wait, "wait", defaultClientWait, "at the end of input, wait this `DURATION` for replies before closing")
	o.register(fs, "PSK identity `ID` to send")
	if err := parseArgs(fs, args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.caFile != "" && o.insecure {
		return nil, usageErrorf("-ca and -insecure exclude each other")
	}
	if set["psk-identity"] && !o.pskSet {
		return nil, usageErrorf("-psk-identity needs -psk")
	}
	if o.wait < 0 {
		return nil, usageErrorf("-wait %v: want a duration ≥ 0", o.wait)
	}
	if _, _, err := net.SplitHostPort(o.connect); err != nil {
		return nil, usageErrorf("-connect %q: want HOST:PORT", o.connect)
	}
	if err := o.resolve(); err != nil {
		return nil, err
	}
	return o, nil
}

// clientConfig builds the client's Config from its flags. The returned
// closer (possibly nil) closes the key log.
func clientConfig(o *clientOptions, p *tracefmt.Printer) (*dtls.Config, io.Closer, error) {
	cfg := &dtls.Config{
		ServerName:         o.serverName,
		InsecureSkipVerify: o.insecure,
	}
	if cfg.ServerName == "" {
		// As crypto/tls.Dial does; the library sends no SNI for an IP.
		cfg.ServerName, _, _ = net.SplitHostPort(o.connect)
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("-ca %s: no PEM certificate found", o.caFile)
		}
		cfg.RootCAs = pool
	}
	if o.psk != nil {
		key := o.psk
		cfg.PSK = func(hint []byte) ([]byte, error) {
			if len(hint) > 0 {
				p.Printf(tracefmt.LevelLadder, "server's PSK identity hint %q", hint)
			}
			return key, nil
		}
		cfg.PSKIdentity = []byte(o.pskIdentity)
	}
	closer, err := o.applyTo(cfg, p)
	if err != nil {
		return nil, nil, err
	}
	return cfg, closer, nil
}

func runClient(ctx context.Context, args []string, std stdio) int {
	o, err := parseClientFlags(args, std.err)
	if err != nil {
		reportUsage(std.err, "client", err)
		return exitCode(err)
	}
	p := tracefmt.New(std.err, o.verbosity, processStart)
	cfg, keylog, err := clientConfig(o, p)
	if err != nil {
		fmt.Fprintf(std.err, "dtls client: %v\n", err)
		return exitError
	}
	if keylog != nil {
		defer keylog.Close()
	}

	conn, err := dtls.DialContext(ctx, "udp", o.connect, cfg)
	if err == nil {
		err = conn.HandshakeContext(ctx) // a no-op if Dial has done it
	}
	if err != nil {
		fmt.Fprintf(std.err, "dtls client: handshake with %s failed: %v\n", o.connect, err)
		if conn != nil {
			conn.Close()
		}
		return exitError
	}
	st := conn.ConnectionState()
	p.Printf(tracefmt.LevelSummary, "connected to %s: %s", o.connect, describeState(&st))
	return talk(ctx, conn, o.wait, p, std)
}

// talk sends stdin lines and prints received datagrams until the input
// ends (then waits for replies and closes), the peer closes, or ctx ends.
func talk(ctx context.Context, conn *dtls.Conn, wait time.Duration, p *tracefmt.Printer, std stdio) int {
	received := make(chan error, 1)
	var got atomic.Int64 // datagrams received
	go func() { received <- printDatagrams(conn, std.out, &got) }()
	sent, inputDone := 0, false

	// Reading stdin blocks with no way to cancel it, so it gets its own
	// goroutine; stop lets it go once we are done.
	lines := make(chan []byte)
	inputErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		sc := bufio.NewScanner(std.in)
		sc.Buffer(make([]byte, 4096), maxDatagram+2) // a record's payload, plus CR LF
		for sc.Scan() {
			line := bytes.Clone(sc.Bytes())
			select {
			case lines <- line:
			case <-stop:
				return
			}
		}
		inputErr <- sc.Err() // nil at EOF
	}()

	// finish closes the connection (close_notify) and lets the reader see
	// it, so nothing is printed after we return.
	finish := func(code int) int {
		conn.Close()
		select {
		case <-received:
		case <-time.After(readerStopWait):
		}
		return code
	}
	// peerDone reports how the reader ended before we closed.
	peerDone := func(err error) int {
		if errors.Is(err, io.EOF) {
			conn.Close()
			if n := int(got.Load()); !inputDone || n < sent {
				left := ""
				if !inputDone {
					left = ", before the end of the input"
				}
				fmt.Fprintf(std.err, "dtls client: the server closed the connection (close_notify) after %d replies to %d datagrams sent%s\n", n, sent, left)
				return exitError
			}
			p.Printf(tracefmt.LevelSummary, "connection closed by peer (close_notify)")
			return exitOK
		}
		fmt.Fprintf(std.err, "dtls client: read: %v\n", err)
		conn.Close()
		return exitError
	}

	for {
		select {
		case line := <-lines:
			if len(line) == 0 {
				continue
			}
			if _, err := conn.Write(line); err != nil {
				fmt.Fprintf(std.err, "dtls client: write: %v\n", err)
				return finish(exitError)
			}
			sent++
		case err := <-inputErr:
			if err != nil {
				fmt.Fprintf(std.err, "dtls client: reading input: %v\n", err)
				return finish(exitError)
			}
			inputDone = true
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-t.C:
				return finish(exitOK)
			case err := <-received:
				return peerDone(err)
			case <-ctx.Done():
				return finish(exitInterrupted)
			}
		case err := <-received:
			return peerDone(err)
		case <-ctx.Done():
			return finish(exitInterrupted)
		}
	}
}

// printDatagrams prints each datagram read from c as one line, until Read
// fails, and returns that error. It counts the datagrams in count.
func printDatagrams(c net.Conn, w io.Writer, count *atomic.Int64) error {
	buf := make([]byte, maxDatagram+1)
	out := bufio.NewWriter(w)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		count.Add(1)
		d := bytes.TrimSuffix(buf[:n], []byte("\n"))
		d = bytes.TrimSuffix(d, []byte("\r"))
		out.Write(d)
		out.WriteByte('\n')
		if err := out.Flush(); err != nil {
			return err
		}
	}
}
