package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
)

// rebindCapture is, for the analyze tests of a client that moves, an
// echoing Listener with a CID whose view is captured (a pcapng with the
// key log in it), behind a relay whose outside port changes on rebind, as
// a NAT's does. The client dials front.
type rebindCapture struct {
	t      *testing.T
	pcap   string         // the capture, complete after finish
	roots  *x509.CertPool // trusts the Listener's certificate, for "localhost"
	server *net.UDPAddr   // the Listener's address
	front  *net.UDPConn   // the relay's inside: the client's peer
	moved  atomic.Bool    // the server followed the client (TracePeerAddressChanged)

	capw   *capture.Writer
	l      *dtls.Listener
	out    atomic.Pointer[net.UDPConn] // the relay's outside, replaced on rebind
	client atomic.Pointer[net.UDPAddr]
	wg     sync.WaitGroup
}

// newRebindCapture starts the Listener (MinVersion minVersion, 0 for the
// default) and the relay in dir.
func newRebindCapture(t *testing.T, dir string, minVersion uint16) *rebindCapture {
	t.Helper()
	r := &rebindCapture{t: t, pcap: filepath.Join(dir, "server-view.pcapng")}
	f, err := os.Create(r.pcap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r.capw = capture.NewWriter(f)
	cert, err := selfSignedCertificate(time.Now(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	r.roots = x509.NewCertPool()
	r.roots.AddCert(leaf)
	r.l, err = dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
		Certificates: []tls.Certificate{cert}, ConnectionIDGenerator: dtls.RandomCIDGenerator(8),
		MinVersion: minVersion, KeyLogWriter: r.capw.KeyLogWriter(),
		Tracer: r.capw.Tracer(func(ev *dtls.TraceEvent) {
			if ev.Kind == dtls.TracePeerAddressChanged {
				r.moved.Store(true)
			}
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.server = r.l.Addr().(*net.UDPAddr)
	r.wg.Go(func() {
		c, err := r.l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1500)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
		}
	})
	if r.front, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		r.l.Close()
		t.Fatal(err)
	}
	r.rebind()
	r.wg.Go(func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := r.front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.client.Store(from)
			r.out.Load().WriteToUDP(buf[:n], r.server)
		}
	})
	t.Cleanup(r.close)
	return r
}

// rebind gives the relay a new outside port.
func (r *rebindCapture) rebind() {
	o, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		r.t.Fatal(err)
	}
	r.wg.Go(func() {
		buf := make([]byte, 1<<16)
		for {
			n, _, err := o.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.front.WriteToUDP(buf[:n], r.client.Load())
		}
	})
	if old := r.out.Swap(o); old != nil {
		old.Close()
	}
}

// waitMoved writes from c until the server follows it (at most 100
// tries, 50 ms each).
func (r *rebindCapture) waitMoved(c *dtls.Conn) {
	r.t.Helper()
	buf := make([]byte, 1500)
	for i := 0; !r.moved.Load(); i++ {
		if i == 100 {
			r.t.Fatal("the server did not move")
		}
		c.Write([]byte("after"))
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		c.Read(buf)
	}
}

// close stops the Listener and the relay and waits for their goroutines.
func (r *rebindCapture) close() {
	r.l.Close()
	r.front.Close()
	r.out.Load().Close()
	r.wg.Wait()
}

// finish closes everything (the client must be closed already) and
// completes the capture.
func (r *rebindCapture) finish() {
	r.t.Helper()
	r.close()
	if err := r.capw.Close(); err != nil {
		r.t.Fatal(err)
	}
}
