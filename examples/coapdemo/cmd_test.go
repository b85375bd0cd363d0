package coapdemo_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtls-go/dtls/examples/coapdemo"
)

// TestCommands runs cmd/coap-server and cmd/coap-client (RunServer and
// RunClient, as their main functions do) with the credentials as files
// and flags: GET, a block-wise PUT of a file and GET back, observe.
func TestCommands(t *testing.T) {
	p := newTestPKI(t)
	dir := t.TempDir()
	srvKey, cliKey := newRPKKey(t, "server"), newRPKKey(t, "client")
	// The client's pin on the server as a PUBLIC KEY file; the server's
	// pin on the client as the client's private key file, the way
	// libcoap's -M files are.
	srvPub := filepath.Join(dir, "server-pub.pem")
	der, err := x509.MarshalPKIXPublicKey(srvKey.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := writePEM(srvPub, "PUBLIC KEY", der); err != nil {
		t.Fatal(err)
	}
	payload := filepath.Join(dir, "payload")
	if err := os.WriteFile(payload, payload8K, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		server, client []string
	}{
		{"PSK", []string{"-psk", testPSK, "-identity", "device-1"}, []string{"-psk", testPSK, "-identity", "device-1"}},
		{"PSK/CID", []string{"-psk", testPSK, "-cid"}, []string{"-psk", testPSK, "-cid"}},
		{"Certificates", []string{"-cert", p.serverCert, "-key", p.serverKey, "-ca", p.caFile},
			[]string{"-cert", p.clientCert, "-key", p.clientKey, "-ca", p.caFile, "-servername", "localhost"}},
		{"RPK", []string{"-rpk", srvKey.file, "-peer-rpk", cliKey.file}, []string{"-rpk", cliKey.file, "-peer-rpk", srvPub}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
			defer cancel()
			addr := make(chan net.Addr, 1)
			done := make(chan error, 1)
			sctx, stop := context.WithCancel(ctx)
			go func() {
				done <- coapdemo.RunServer(sctx, append([]string{"-addr", "127.0.0.1:0", "-tick", "50ms"}, tc.server...),
					io.Discard, func(a net.Addr) { addr <- a })
			}()
			defer func() {
				stop()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("RunServer: %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Error("RunServer did not return")
				}
			}()
			var a net.Addr
			select {
			case a = <-addr:
			case err := <-done:
				t.Fatalf("RunServer: %v", err)
			}
			client := func(args ...string) string {
				t.Helper()
				var out, errs bytes.Buffer
				args = append(append([]string{"-addr", a.String(), "-timeout", "10s"}, tc.client...), args...)
				if err := coapdemo.RunClient(ctx, args, &out, &errs); err != nil {
					t.Fatalf("RunClient %q: %v\n%s", args, err, errs.String())
				}
				return out.String()
			}
			if got := client("/hello"); got != coapdemo.Hello+"\n" {
				t.Errorf("GET /hello: %q", got)
			}
			client("-m", "put", "-f", payload, "/data")
			if got := client("/data"); got != string(payload8K)+"\n" {
				t.Errorf("GET /data: %d bytes, want the %d PUT", len(got)-1, len(payload8K))
			}
			checkRising(t, strings.Fields(client("-observe", "2", "/counter")), 3)
		})
	}
}

func TestCommandErrors(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{},                        // no credentials
		{"-rpk", "/nonexistent"},  // no such file
		{"-psk", "x", "extra"},    // a stray argument
		{"-cert", "/nonexistent"}, // no such file
		{"-no-such-flag"},
	} {
		if err := coapdemo.RunServer(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), io.Discard, nil); err == nil {
			t.Errorf("RunServer %q succeeded", args)
		}
	}
	for _, args := range [][]string{
		{"/hello"},    // no credentials
		{"-psk", "x"}, // no path
		{"-psk", "x", "-m", "delete", "-addr", "127.0.0.1:9", "-timeout", "1s", "/x"}, // no such method
	} {
		if err := coapdemo.RunClient(ctx, args, io.Discard, io.Discard); err == nil {
			t.Errorf("RunClient %q succeeded", args)
		}
	}
}
