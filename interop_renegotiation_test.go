package dtls_test

// Renegotiation refused promptly, against real peers (issue 10 item 7):
// we answer a renegotiation request with a no_renegotiation warning at
// once, in the current epoch, and our connection goes on. Before, a
// renegotiating ClientHello (message_seq 0 in epoch 1) was taken for a
// retransmission and a HelloRequest was ignored, and the peer waited until
// it timed out.
//
//	openssl s_client, "R" typed on its stdin: OpenSSL 3 ends the
//	connection with handshake_failure when refused, at once.
//	gnutls-cli --rehandshake: it reports our warning and tries again.
//	gnutls-serv --echo, "**REHANDSHAKE**" sent to it: it sends a
//	HelloRequest; refused, it goes on echoing.
//
// These are the real-peer checks; the interop matrix (INTEROP.md) holds
// the cells for every peer.

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
)

// renegotiationTimeout bounds one case end to end: a refusal takes a
// round trip, the old behaviour a peer's whole handshake timeout.
const renegotiationTimeout = 20 * time.Second

// refusals returns a Tracer that reports each no_renegotiation we send on
// the channel.
func refusals() (func(*dtls.TraceEvent), chan struct{}) {
	ch := make(chan struct{}, 64)
	return func(ev *dtls.TraceEvent) {
		if ev.Kind == dtls.TraceAlertSent && dtls.AlertName(ev.Alert) == "no renegotiation" {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}, ch
}

func pskServerConfig(psk []byte, tracer func(*dtls.TraceEvent)) *dtls.Config {
	return &dtls.Config{
		CipherSuites: []uint16{dtls.TLS_PSK_WITH_AES_128_GCM_SHA256},
		PSK:          func([]byte) ([]byte, error) { return psk, nil },
		Tracer:       tracer,
	}
}

// TestRenegotiationOpenSSLClient: s_client asks to renegotiate; our server
// refuses at once, and OpenSSL ends the connection with a fatal alert,
// which our Read returns (before, it waited for OpenSSL to time out).
func TestRenegotiationOpenSSLClient(t *testing.T) {
	openssl := requireOpenSSL(t)
	ctx, cancel := context.WithTimeout(context.Background(), renegotiationTimeout)
	defer cancel()
	psk := randomPSK(t)
	tracer, refused := refusals()
	l, err := dtls.Listen("udp", "127.0.0.1:0", pskServerConfig(psk, tracer))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		if _, err := c.Write([]byte(goLine + "\n")); err != nil {
			served <- err
			return
		}
		buf := make([]byte, 1<<14)
		for {
			if _, err := c.Read(buf); err != nil {
				served <- err
				return
			}
		}
	}()
	// No -quiet: it would turn off s_client's command letters.
	cli := startOpenSSL(ctx, t, openssl, []string{"s_client", "-dtls1_2", "-connect", l.Addr().String(),
		"-cipher", "PSK-AES128-GCM-SHA256", "-psk", hex.EncodeToString(psk), "-psk_identity", testPSKIdentity})
	cli.waitLine(ctx, t, goLine)
	cli.send(t, "R\n")
	select {
	case <-refused:
	case <-ctx.Done():
		t.Fatal("we never sent no_renegotiation")
	}
	select {
	case err := <-served:
		var ae dtls.AlertError
		if !errors.As(err, &ae) {
			t.Errorf("our Read: %v, want OpenSSL's fatal alert", err)
		}
	case <-ctx.Done():
		t.Fatal("our connection never saw OpenSSL give up")
	}
	cli.waitExit(t, 1)
	if out := cli.output(); !strings.Contains(out, "no renegotiation") {
		t.Errorf("s_client does not report our refusal:\n%s", out)
	}
}

// TestRenegotiationGnuTLSClient: gnutls-cli --rehandshake asks at once
// after its handshake; it must receive our warning (it then tries again
// until its own timeout: its choice, RFC 5246 §7.2.2).
func TestRenegotiationGnuTLSClient(t *testing.T) {
	cliPath := requireGnuTLS(t, "gnutls-cli")
	ctx, cancel := context.WithTimeout(context.Background(), renegotiationTimeout)
	defer cancel()
	psk := randomPSK(t)
	tracer, refused := refusals()
	l, err := dtls.Listen("udp", "127.0.0.1:0", pskServerConfig(psk, tracer))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Our side reads: requests are answered by Read.
	served := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		_, err = c.Read(make([]byte, 100))
		served <- err
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	cli := startGnuTLS(ctx, t, cliPath, "--udp", "--rehandshake", "-p", port, "127.0.0.1",
		"--pskusername", testPSKIdentity, "--pskkey", hex.EncodeToString(psk),
		"--priority", "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK")
	defer cli.cmd.Process.Kill()
	if !cli.waitFor(ctx, "warning alert has been received") {
		t.Fatalf("gnutls-cli never received our warning:\n%s", cli.output())
	}
	select {
	case <-refused:
	default:
		t.Error("the warning gnutls-cli received is not our no_renegotiation")
	}
	cli.cmd.Process.Kill()
	cancel() // ends our Read
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		t.Errorf("our side: %v", err)
	}
}

// TestRenegotiationGnuTLSServer: gnutls-serv --echo sends a HelloRequest
// when told "**REHANDSHAKE**"; our client refuses it at once and the echo
// goes on (before, the request was ignored and gnutls-serv stalled).
func TestRenegotiationGnuTLSServer(t *testing.T) {
	servPath := requireGnuTLS(t, "gnutls-serv")
	ctx, cancel := context.WithTimeout(context.Background(), renegotiationTimeout)
	defer cancel()
	psk := randomPSK(t)
	pskFile := filepath.Join(t.TempDir(), "psk.txt")
	if err := os.WriteFile(pskFile, []byte(testPSKIdentity+":"+hex.EncodeToString(psk)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	srv := startGnuTLS(ctx, t, servPath, "--udp", "--echo", "-p", port, "--pskpasswd", pskFile,
		"--priority", "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK")
	defer srv.cmd.Process.Kill()
	if !srv.waitFor(ctx, "listening") {
		t.Fatalf("gnutls-serv did not start:\n%s", srv.output())
	}
	tracer, refused := refusals()
	cfg := pskServerConfig(psk, tracer)
	cfg.PSKIdentity = []byte(testPSKIdentity)
	c, err := dtls.DialContext(ctx, "udp", "127.0.0.1:"+port, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("**REHANDSHAKE**\n")); err != nil {
		t.Fatal(err)
	}
	// The HelloRequest is processed inside Read, which returns only with
	// data: read in the background until our refusal went out.
	reading := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 100))
		reading <- err
	}()
	select {
	case <-refused:
	case <-ctx.Done():
		t.Fatalf("we never refused gnutls-serv's HelloRequest:\n%s", srv.output())
	}
	c.SetReadDeadline(time.Now()) // stop that Read
	if err := <-reading; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read while refusing: %v", err)
	}
	if _, err := c.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(renegotiationTimeout / 2))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "after\n" {
		t.Fatalf("echo after the refusal: %q, %v\n%s", buf[:n], err, srv.output())
	}
}
