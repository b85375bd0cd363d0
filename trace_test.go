package dtls

import (
	"testing"
	"time"
)

// BenchmarkTracer measures the record write path with no Tracer, which
// must cost nothing (no allocation, no event built), against a Tracer that
// does nothing with its events.
func BenchmarkTracer(b *testing.B) {
	for _, tc := range []struct {
		name   string
		tracer func(*TraceEvent)
	}{
		{"nil", nil},
		{"noop", func(*TraceEvent) {}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cc, sc := configsFor(b, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
			l, err := Listen("udp", "127.0.0.1:0", sc)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 2048)
				for {
					c.SetReadDeadline(time.Now().Add(time.Second))
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
			cc.Tracer = tc.tracer
			c, err := Dial("udp", l.Addr().String(), cc)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := make([]byte, 100)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestTracerNilWriteAllocs pins the claim: an established connection
// without a Tracer writes a record without allocating.
func TestTracerNilWriteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes pools drop buffers at random, so allocations are not counted under -race")
	}
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
	l, _ := echoServer(t, sc, nil)
	c, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 100)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Write allocates %.1f times per record", n)
	}
}
