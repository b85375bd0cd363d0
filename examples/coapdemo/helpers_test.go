package coapdemo_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/examples/coapdemo"
	"github.com/dtls-go/dtls/examples/coapdtls"
	"github.com/dtls-go/dtls/internal/dtlstest"
	"github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/options"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// caseTimeout bounds one test case: handshake, requests, notifications.
const caseTimeout = 20 * time.Second

// payload8K is the block-wise payload: 8 KiB, eight 1024-byte blocks
// (RFC 7959 §2.2: SZX 6), in a pattern that shows a lost or repeated
// block.
var payload8K = func() []byte {
	b := make([]byte, 8<<10)
	for i := range b {
		b[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i%36] ^ byte(i/1024)&7
	}
	return b
}()

// testPKI is a CA and the certificates it signed, in memory and as PEM
// files for libcoap.
type testPKI struct {
	roots                 *x509.CertPool
	server, client        tls.Certificate
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
}

var (
	pkiOnce sync.Once
	pki     *testPKI
	pkiErr  error
)

// newTestPKI returns the package's PKI, made once (files in a directory
// that TestMain removes).
func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pki, pkiErr = makePKI(pkiDir) })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pki
}

var pkiDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "coapdemo-pki")
	if err != nil {
		panic(err)
	}
	pkiDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// makePKI makes the CA and the two leaves with dtlstest; the keys are
// written as SEC 1 "EC PRIVATE KEY" PEM, which every libcoap backend reads.
func makePKI(dir string) (*testPKI, error) {
	tb := dtlstest.NoTest() // made once for the package, not for one test
	ca := dtlstest.NewCA(tb, dtlstest.Spec{})
	p := &testPKI{roots: ca.Pool}
	p.caFile = filepath.Join(dir, "ca.pem")
	if err := writePEM(p.caFile, "CERTIFICATE", ca.Cert.Raw); err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (tls.Certificate, string, string, error) {
		c := ca.Issue(tb, dtlstest.Spec{Serial: serial, Names: []string{cn, "127.0.0.1"},
			ExtKeyUsage: []x509.ExtKeyUsage{usage}})
		kder, err := x509.MarshalECPrivateKey(c.Key.(*ecdsa.PrivateKey))
		if err != nil {
			return tls.Certificate{}, "", "", err
		}
		cf, kf := filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+"-key.pem")
		if err := writePEM(cf, "CERTIFICATE", c.TLS.Certificate[0]); err != nil {
			return tls.Certificate{}, "", "", err
		}
		if err := writePEM(kf, "EC PRIVATE KEY", kder); err != nil {
			return tls.Certificate{}, "", "", err
		}
		return tls.Certificate{Certificate: c.TLS.Certificate, PrivateKey: c.Key}, cf, kf, nil
	}
	var err error
	if p.server, p.serverCert, p.serverKey, err = leaf(2, "localhost", x509.ExtKeyUsageServerAuth); err != nil {
		return nil, err
	}
	if p.client, p.clientCert, p.clientKey, err = leaf(3, "dtls-go-client", x509.ExtKeyUsageClientAuth); err != nil {
		return nil, err
	}
	return p, nil
}

func writePEM(file, typ string, der []byte) error {
	return os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// rpkKey is a P-256 key for raw public keys, and the file libcoap's -M
// takes: the key as a SEC 1 "EC PRIVATE KEY" PEM.
type rpkKey struct {
	key  *ecdsa.PrivateKey
	file string
}

func newRPKKey(t *testing.T, name string) *rpkKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), name+"-rpk.pem")
	if err := writePEM(f, "EC PRIVATE KEY", der); err != nil {
		t.Fatal(err)
	}
	return &rpkKey{key: k, file: f}
}

// credCase is one way to authenticate, for both sides.
type credCase struct {
	name           string
	server, client coapdemo.Credentials
	suite          uint16 // if not 0, the suite both must agree on
	rpk            bool
}

const testPSK = "dtls-go-coap-secret"

func credCases(t *testing.T) []credCase {
	p := newTestPKI(t)
	srvKey, cliKey := newRPKKey(t, "server"), newRPKKey(t, "client")
	return []credCase{
		{name: "PSK-CCM8",
			server: coapdemo.Credentials{PSK: []byte(testPSK), PSKIdentity: []byte("device-1")},
			client: coapdemo.Credentials{PSK: []byte(testPSK), PSKIdentity: []byte("device-1")},
			suite:  dtls.TLS_PSK_WITH_AES_128_CCM_8},
		{name: "RPK", rpk: true,
			server: coapdemo.Credentials{RawPublicKey: true, Certificate: &tls.Certificate{PrivateKey: srvKey.key}, PeerPublicKeys: []crypto.PublicKey{cliKey.key.Public()}},
			client: coapdemo.Credentials{RawPublicKey: true, Certificate: &tls.Certificate{PrivateKey: cliKey.key}, PeerPublicKeys: []crypto.PublicKey{srvKey.key.Public()}}},
		{name: "Certificates",
			server: coapdemo.Credentials{Certificate: &p.server, CAs: p.roots},
			client: coapdemo.Credentials{Certificate: &p.client, CAs: p.roots, ServerName: "localhost"}},
	}
}

// testServer is the example server on a loopback Listener.
type testServer struct {
	app   *coapdemo.Server
	srv   *server.Server
	l     *dtls.Listener
	addr  string
	conns chan *udpclient.Conn // every connection the server gets, as it gets it
	done  chan error
}

func startServer(t *testing.T, cfg *dtls.Config) *testServer {
	t.Helper()
	l, err := dtls.Listen("udp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{app: coapdemo.NewServer(), l: l, addr: l.Addr().String(),
		conns: make(chan *udpclient.Conn, 16), done: make(chan error, 1)}
	ts.srv = coapdtls.NewServer(
		options.WithMux(ts.app.Handler()),
		options.WithErrors(func(err error) { t.Logf("server: %v", err) }),
		options.WithOnNewConn(func(cc *udpclient.Conn) {
			select {
			case ts.conns <- cc:
			default:
			}
		}),
	)
	go func() { ts.done <- ts.srv.Serve(coapdtls.NewListener(l)) }()
	t.Cleanup(func() {
		ts.srv.Stop()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Stop")
		}
	})
	return ts
}

func (ts *testServer) port() string {
	_, p, _ := net.SplitHostPort(ts.addr)
	return p
}

func dial(ctx context.Context, t *testing.T, addr string, cfg *dtls.Config) *udpclient.Conn {
	t.Helper()
	cc, err := coapdtls.Dial(ctx, addr, cfg, options.WithErrors(func(err error) { t.Logf("client: %v", err) }))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// do runs one request with coapdemo.Do and returns its output lines.
func do(ctx context.Context, t *testing.T, cc *udpclient.Conn, r coapdemo.Request) [][]byte {
	t.Helper()
	var out bytes.Buffer
	if err := coapdemo.Do(ctx, cc, r, &out); err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	return bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
}

func itoa(n int) string { return strconv.Itoa(n) }
