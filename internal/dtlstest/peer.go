// Package dtlstest holds the helpers that the tests of package dtls, of
// cmd/dtls and of the interop and examples modules share: certificates and
// the rule for peers that are not installed. It depends only on the
// standard library, so any test in the repository can import it; Go's
// internal rule lets every package under github.com/dtls-go/dtls do so,
// including the interop and examples modules.
//
// Helpers that need the unexported types of package dtls stay in that
// package's own _test.go files.
package dtlstest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// UnderCI reports whether the tests run under CI (CI=true), where every
// peer and tool must be installed.
func UnderCI() bool { return os.Getenv("CI") == "true" }

// Missing reports that something the test needs is not there: a peer
// program, a tool, a library's headers, a privilege. The test is skipped,
// or fails under CI=true: CI must never pass by not running a test.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if UnderCI() {
		tb.Fatalf("%s (required under CI=true: .ci/run must provide it)", msg)
	}
	tb.Skip(msg)
}

// LookPath returns the path of the program bin, or calls Missing.
func LookPath(tb testing.TB, bin string) string {
	tb.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		Missing(tb, "%s not found: %v", bin, err)
	}
	return path
}

// NoTest returns a testing.TB for helpers that are called where no test is
// at hand, such as a table row's closure: Fatal and Fatalf panic, and any
// other method but Helper must not be called.
func NoTest() testing.TB { return noTest{} }

type noTest struct{ testing.TB }

func (noTest) Helper()                           {}
func (noTest) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (noTest) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
