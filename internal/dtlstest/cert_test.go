package dtlstest

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedVerifies(t *testing.T) {
	for _, kind := range []string{P256, P384, P521, Ed25519, RSA} {
		c := SelfSigned(t, Spec{Key: NewKey(t, kind), Names: []string{"dtls.test", "127.0.0.1"}})
		for _, at := range []time.Time{time.Now(), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)} {
			if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: "dtls.test", Roots: c.Pool, CurrentTime: at}); err != nil {
				t.Errorf("%s at %v: %v", kind, at, err)
			}
		}
		if err := c.Leaf.VerifyHostname("127.0.0.1"); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}
}

func TestCAIssues(t *testing.T) {
	ca := NewCA(t, Spec{})
	leaf := ca.Issue(t, Spec{Names: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: leaf.Pool}); err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: SelfSigned(t, Spec{}).Pool}); err == nil {
		t.Fatal("leaf verified against an unrelated root")
	}
	dir := t.TempDir()
	leaf.WriteFiles(t, filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"))
	ca.WriteFile(t, filepath.Join(dir, "ca.pem"))
	kp, err := tls.LoadX509KeyPair(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !kp.Leaf.Equal(leaf.Leaf) {
		t.Fatal("written certificate differs")
	}
}

func TestMissingSkipsOrFails(t *testing.T) {
	t.Setenv("CI", "")
	var skipped bool
	t.Run("local", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		LookPath(t, "dtlstest-no-such-program")
	})
	if !skipped {
		t.Error("a missing program did not skip the test")
	}
}
