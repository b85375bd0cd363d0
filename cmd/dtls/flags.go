package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
	"github.com/dtls-go/dtls/cmd/dtls/internal/tracefmt"
)

// maxUDPPayload is the largest -mtu that means anything: a UDP datagram
// over IPv4 carries at most 65507 bytes.
const maxUDPPayload = 65507

// minMTU is the smallest -mtu: the library raises a smaller Config.MTU to
// it (a record and handshake header and an AEAD tag must leave room for
// some payload), so a smaller value is refused rather than silently
// changed.
const minMTU = 128

// checkMTU is the one check of -mtu, for every command that has it.
func checkMTU(mtu int) error {
	if mtu != 0 && (mtu < minMTU || mtu > maxUDPPayload) {
		return usageErrorf("-mtu %d: want 0 (the library's default, 1200) or a UDP payload size from %d to %d", mtu, minMTU, maxUDPPayload)
	}
	return nil
}

// errUsage marks an error in the command line, as opposed to a failure of
// the operation: the former exits with exitUsage.
var errUsage = errors.New("usage error")

// errFlagSyntax is a usage error that the flag package has already printed,
// with the usage, to the flag set's output.
var errFlagSyntax = fmt.Errorf("%w: bad flag", errUsage)

func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

// exitCode maps an error from flag parsing to the process's exit status.
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	}
	return exitError
}

// commonFlags are the flags the server and the client share.
type commonFlags struct {
	pskHex      string
	pskSet      bool // -psk was given, perhaps empty
	pskIdentity string
	ciphers     string
	mtu         int
	keylog      string
	pcap        string
	verbosity   int
	version     string

	// Set by resolve.
	psk        []byte
	suites     []uint16
	maxVersion uint16 // 0: the library's default, DTLS 1.3
}

func (c *commonFlags) register(fs *flag.FlagSet, pskIdentityHelp string) {
	fs.Func("psk", "pre-shared key in `HEX` (not empty); enables the PSK suites", func(v string) error {
		c.pskHex, c.pskSet = v, true
		return nil
	})
	fs.StringVar(&c.pskIdentity, "psk-identity", c.pskIdentity, pskIdentityHelp)
	fs.StringVar(&c.ciphers, "ciphers", "", "comma-separated `LIST` of IANA cipher suite names, in preference order (default: the library's list)")
	fs.IntVar(&c.mtu, "mtu", 0, "largest UDP payload, `N` bytes (128 to 65507), the handshake sends; flights are fragmented to it (0: library default, 1200)")
	fs.StringVar(&c.keylog, "keylog", "", "append NSS key log lines (for Wireshark/tshark) to `FILE`; weakens security")
	fs.StringVar(&c.pcap, "pcap", "", "write every datagram sent and received to `FILE` as pcapng, with the session keys inside (tshark -r FILE decrypts it); weakens security")
	fs.IntVar(&c.verbosity, "v", 0, "debug `LEVEL` on stderr: 0 silent, 1 handshake result and alerts, 2 + a ladder diagram of each handshake when it ends, 3 + live lines for its messages, flights, timers, epochs and drops, 4 + every record and datagram")
	fs.StringVar(&c.version, "version", "1.3", "highest DTLS `VERSION`: 1.3 (the library's default; 1.2 peers get 1.2) or 1.2")
}

// resolve checks the shared flags and decodes their values.
func (c *commonFlags) resolve() error {
	if c.verbosity < tracefmt.LevelSilent || c.verbosity > tracefmt.MaxLevel {
		return usageErrorf("-v %d: want a level from 0 to %d", c.verbosity, tracefmt.MaxLevel)
	}
	if err := checkMTU(c.mtu); err != nil {
		return err
	}
	switch c.version {
	case "1.3":
		c.maxVersion = 0 // the library's default
	case "1.2":
		c.maxVersion = dtls.VersionDTLS12
	default:
		return usageErrorf("-version %q: 1.2 or 1.3", c.version)
	}
	if c.pskSet {
		// An empty -psk "" is refused, not taken for no -psk: a
		// server would then fall back to a certificate.
		if c.pskHex == "" {
			return usageErrorf("-psk is empty: give the key as hex digits, or leave -psk out for a certificate")
		}
		k, err := hex.DecodeString(c.pskHex)
		if err != nil || len(k) == 0 {
			return usageErrorf("-psk: want the key as hex digits, e.g. -psk 0102030405060708090a0b0c0d0e0f10")
		}
		c.psk = k
	}
	if c.ciphers != "" {
		s, err := parseCipherList(c.ciphers)
		if err != nil {
			return err
		}
		c.suites = s
	}
	return nil
}

// parseCipherList turns "NAME,NAME" into suite ids. An unknown name is a
// usage error that lists the names we know.
func parseCipherList(list string) ([]uint16, error) {
	var ids []uint16
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, usageErrorf("-ciphers %q: empty name in the list", list)
		}
		id, ok := dtls.CipherSuiteByName(name)
		if !ok {
			var b strings.Builder
			fmt.Fprintf(&b, "-ciphers: unknown cipher suite %q; valid names are:", name)
			for _, s := range dtls.CipherSuites() {
				b.WriteString("\n\t" + s.Name)
			}
			return nil, usageErrorf("%s", b.String())
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// applyTo sets the Config fields the shared flags decide, and opens the
// key log and the capture; the caller closes the returned Closer (nil
// without -keylog and -pcap), which flushes the capture.
func (c *commonFlags) applyTo(cfg *dtls.Config, p *tracefmt.Printer) (io.Closer, error) {
	cfg.CipherSuites = c.suites
	cfg.MTU = c.mtu
	cfg.MaxVersion = c.maxVersion
	cfg.Tracer = p.Tracer()
	var closers closeAll
	var keyLogs []io.Writer
	if c.keylog != "" {
		f, err := os.OpenFile(c.keylog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("-keylog: %w", err)
		}
		keyLogs = append(keyLogs, f)
		closers = append(closers, f)
	}
	if c.pcap != "" {
		f, err := os.OpenFile(c.pcap, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o600)
		if err != nil {
			closers.Close()
			return nil, fmt.Errorf("-pcap: %w", err)
		}
		w := capture.NewWriter(f)
		cfg.Tracer = w.Tracer(cfg.Tracer)
		keyLogs = append(keyLogs, w.KeyLogWriter())
		// The capture is flushed before its file is closed.
		closers = append(closers, w, f)
	}
	switch len(keyLogs) {
	case 0:
		return nil, nil
	case 1:
		cfg.KeyLogWriter = keyLogs[0]
	default:
		cfg.KeyLogWriter = io.MultiWriter(keyLogs...)
	}
	return closers, nil
}

// closeAll closes several things in order and reports the first error.
type closeAll []io.Closer

func (cs closeAll) Close() error {
	var first error
	for _, c := range cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints its usage, led by synopsis, to w.
func newFlagSet(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: dtls %s\nFlags:\n", strings.TrimRight(synopsis, "\n")+"\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses args, rejecting positional arguments. Errors wrap
// errUsage, or are flag.ErrHelp for -h.
func parseArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errFlagSyntax
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// reportUsage prints a usage error with a pointer to help, unless the flag
// package has printed it already.
func reportUsage(w io.Writer, cmd string, err error) {
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errFlagSyntax) {
		return
	}
	fmt.Fprintf(w, "dtls %s: %s\n", cmd, strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
	fmt.Fprintf(w, "Run 'dtls help %s' for usage.\n", cmd)
}
