package bench

// Load generators in a process of their own: the test binary, run again
// with benchChildEnv set to "VERB ARG...", runs childVerbs[VERB] instead
// of the tests. Benchmarks that measure a server this way keep the
// clients' CPU time, garbage and goroutines out of the server's process.

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// benchChildEnv, when set, makes the test binary a load generator.
const benchChildEnv = "DTLS_BENCH_CHILD"

// childVerbs are the load generators, by name; each gets the words after
// its name.
var childVerbs = map[string]func(args []string) error{}

func TestMain(m *testing.M) {
	if v := os.Getenv(benchChildEnv); v != "" {
		if err := runChild(v); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(spec string) error {
	words := strings.Fields(spec)
	if len(words) == 0 || childVerbs[words[0]] == nil {
		return fmt.Errorf("unknown child %q", spec)
	}
	return childVerbs[words[0]](words[1:])
}

// child is a load generator process, with pipes to its stdin and from
// its stdout.
type child struct {
	*exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
}

// Wait closes the child's stdin and waits for it to exit.
func (c *child) Wait() error {
	c.stdin.Close()
	return c.Cmd.Wait()
}

// startChild runs the test binary as a load generator. procs, if not 0,
// is its GOMAXPROCS; 0 leaves the Go default (every core).
func startChild(spec string, procs int) (*child, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+spec)
	if procs > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("GOMAXPROCS=%d", procs))
	}
	cmd.Stderr = os.Stderr
	c := &child{Cmd: cmd}
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if c.stdout, err = cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	return c, cmd.Start()
}

// writeCAFile writes the root CA certificate (DER) to a temporary file,
// removed when b ends, for a child to trust.
func writeCAFile(b *testing.B) string {
	setupPKI(b)
	f, err := os.CreateTemp("", "dtls-bench-ca-*")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(ca.Cert.Raw); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.Remove(f.Name()) })
	return f.Name()
}

// loadRoots makes the root CA in file (DER) a child's roots.
func loadRoots(file string) error {
	der, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	roots = x509.NewCertPool()
	roots.AddCert(root)
	return nil
}
