package dtls

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
)

// writeCounter records each Write call separately.
type writeCounter struct {
	mu     sync.Mutex
	writes [][]byte
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, append([]byte{}, p...))
	return len(p), nil
}

func TestWriteKeyLog(t *testing.T) {
	// The client random and master secret of the first OpenSSL recording
	// in prf_test.go; want is the line OpenSSL wrote to its -keylogfile.
	rec := opensslRecordings[0]
	w := &writeCounter{}
	if err := writeKeyLog(w, unhex(t, rec.clientRandom), unhex(t, rec.masterSecret)); err != nil {
		t.Fatal(err)
	}
	want := "CLIENT_RANDOM 62db4d23094ecf4e7858a57bf89a6d6a42b7e42f16b070f9824842a801e95240 " +
		"ebdb3be5d918c5879800e1cbceb7cf16000ec89461569c1de181b28e71d2bbae57c6278e02bb20184ad4b6ea724ab2f8\n"
	if len(w.writes) != 1 {
		t.Fatalf("%d Write calls, want 1", len(w.writes))
	}
	if got := string(w.writes[0]); got != want {
		t.Errorf("key log line:\n got %q\nwant %q", got, want)
	}
	if len(want) != len("CLIENT_RANDOM ")+64+1+96+1 {
		t.Errorf("test line has the wrong shape")
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteKeyLogError(t *testing.T) {
	if err := writeKeyLog(errWriter{}, make([]byte, 32), make([]byte, 48)); err == nil {
		t.Error("write error not returned")
	}
}

// TestWriteKeyLogConcurrent writes from many goroutines into a writer that
// is not itself safe for concurrent use; the package mutex must keep lines
// whole (and the race detector quiet).
func TestWriteKeyLogConcurrent(t *testing.T) {
	var buf bytes.Buffer
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			random := bytes.Repeat([]byte{byte(i)}, 32)
			for range 20 {
				if err := writeKeyLog(&buf, random, make([]byte, 48)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 16*20 {
		t.Fatalf("%d lines, want %d", len(lines), 16*20)
	}
	for _, l := range lines {
		if len(l) != len("CLIENT_RANDOM ")+64+1+96 || !strings.HasPrefix(l, "CLIENT_RANDOM ") {
			t.Fatalf("mangled line %q", l)
		}
	}
}
