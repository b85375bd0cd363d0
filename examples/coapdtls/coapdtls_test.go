package coapdtls_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/examples/coapdtls"
)

func pskConfigs() (server, client *dtls.Config) {
	psk := func([]byte) ([]byte, error) { return []byte("sixteen byte key"), nil }
	suites := []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8}
	return &dtls.Config{PSK: psk, CipherSuites: suites},
		&dtls.Config{PSK: psk, PSKIdentity: []byte("t"), CipherSuites: suites}
}

// AcceptWithContext returns when its context ends; a connection that
// completes its handshake afterwards goes to the next caller. Once closed,
// it returns an error that go-coap takes as "listener closed" (io.EOF).
func TestAcceptWithContext(t *testing.T) {
	scfg, ccfg := pskConfigs()
	l, err := dtls.Listen("udp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	a := coapdtls.NewListener(l)
	defer a.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if c, err := a.AcceptWithContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AcceptWithContext = %v, %v; want the context's error", c, err)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	conn, err := dtls.DialContext(dctx, "udp", a.Addr().String(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := a.AcceptWithContext(dctx)
	if err != nil {
		t.Fatalf("AcceptWithContext: %v", err)
	}
	if c.RemoteAddr().String() != conn.LocalAddr().String() {
		t.Errorf("accepted %v, want %v", c.RemoteAddr(), conn.LocalAddr())
	}
	c.Close()

	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := a.AcceptWithContext(context.Background()); !errors.Is(err, io.EOF) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("AcceptWithContext after Close: %v, want io.EOF and net.ErrClosed", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Closing the dtls.Listener itself, not through the server, ends Serve
// too (rather than a loop of failing Accepts).
func TestServeEndsWhenListenerCloses(t *testing.T) {
	scfg, _ := pskConfigs()
	l, err := dtls.Listen("udp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := coapdtls.NewServer()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(coapdtls.NewListener(l)) }()
	time.Sleep(20 * time.Millisecond) // let Serve reach Accept (not required: either order must end)
	l.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		srv.Stop()
		t.Fatal("Serve did not return after the listener closed")
	}
}

// TestREADME checks that the README's go-coap server is the one
// ExampleNewListener runs.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(readme), "## Using dtls-go with CoAP")
	if !ok {
		t.Fatal(`README has no "Using dtls-go with CoAP" section`)
	}
	_, code, ok := strings.Cut(sec, "```go\n")
	code, _, ok2 := strings.Cut(code, "```")
	if !ok || !ok2 {
		t.Fatal("the section has no go code block")
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, ex, _ := strings.Cut(string(src), "// README begin\n")
	ex, _, _ = strings.Cut(ex, "\t// README end")
	var want []string
	for l := range strings.Lines(ex) {
		want = append(want, strings.TrimPrefix(l, "\t"))
	}
	if got := strings.Join(want, ""); !strings.Contains(code, got) || got == "" {
		t.Errorf("README's code block:\n%s\ndoes not contain ExampleNewListener's server:\n%s", code, got)
	}
}

// Once the dtls.Listener is closed under the adapter, every caller gets
// the listener-closed error, not a wait.
func TestAcceptAfterListenerClosed(t *testing.T) {
	scfg, _ := pskConfigs()
	l, err := dtls.Listen("udp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	a := coapdtls.NewListener(l)
	defer a.Close()
	l.Close()
	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := a.AcceptWithContext(ctx)
		cancel()
		if !errors.Is(err, io.EOF) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("call %d: %v, want io.EOF and net.ErrClosed", i+1, err)
		}
	}
}
