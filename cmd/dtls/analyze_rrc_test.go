package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
)

// TestAnalyzeRRC captures a server's view of a client whose NAT rebinds
// mid-session under a CID: analyze follows the session to the new
// address and shows the return routability check (RFC 9853) that moved
// the server.
func TestAnalyzeRRC(t *testing.T) {
	dir := t.TempDir()
	pcap := filepath.Join(dir, "server-view.pcapng")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	capw := capture.NewWriter(f)
	cert, err := selfSignedCertificate(time.Now(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	roots := x509.NewCertPool()
	roots.AddCert(leaf)

	var moved atomic.Bool
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
		Certificates: []tls.Certificate{cert}, ConnectionIDGenerator: dtls.RandomCIDGenerator(8),
		KeyLogWriter: capw.KeyLogWriter(),
		Tracer: capw.Tracer(func(ev *dtls.TraceEvent) {
			if ev.Kind == dtls.TracePeerAddressChanged {
				moved.Store(true)
			}
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := l.Accept()
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
	}()

	// A relay whose outside port changes, as a NAT's does.
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	server := l.Addr().(*net.UDPAddr)
	var out atomic.Pointer[net.UDPConn]
	var client atomic.Pointer[net.UDPAddr]
	rebind := func() {
		o, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<16)
			for {
				n, _, err := o.ReadFromUDP(buf)
				if err != nil {
					return
				}
				front.WriteToUDP(buf[:n], client.Load())
			}
		}()
		if old := out.Swap(o); old != nil {
			old.Close()
		}
	}
	rebind()
	defer func() { out.Load().Close() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(from)
			out.Load().WriteToUDP(buf[:n], server)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := dtls.DialContext(ctx, "udp", front.LocalAddr().String(), &dtls.Config{
		RootCAs: roots, ServerName: "localhost", ConnectionIDGenerator: dtls.OnlySendCIDGenerator(),
		// tls12_cid records; TestAnalyze13CIDUpdate follows a 1.3
		// client by the CID in the unified header.
		MaxVersion: dtls.VersionDTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	c.Write([]byte("before"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	rebind()
	for i := 0; !moved.Load(); i++ {
		if i == 100 {
			t.Fatal("the server did not move")
		}
		c.Write([]byte("after"))
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		c.Read(buf)
	}
	c.Close()
	l.Close()
	front.Close()
	out.Load().Close()
	wg.Wait()
	if err := capw.Close(); err != nil {
		t.Fatal(err)
	}

	got := runAnalyzeForTest(t, pcap)
	for _, want := range []string{"path_challenge to 127.0.0.1:", "path_response", "client address changes", "client sends from"} {
		if !strings.Contains(got, want) {
			t.Errorf("analyze output lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "conversation ") != 1 {
		t.Errorf("the rebound client is not one conversation:\n%s", got)
	}
}

// TestAnalyzeMovesBounded checks that a client hopping between addresses
// more than maxListed times is listed up to the bound and the rest counted.
func TestAnalyzeMovesBounded(t *testing.T) {
	server := netip.MustParseAddrPort("127.0.0.1:4433")
	a := newAnalysis(netip.MustParseAddrPort("127.0.0.1:1000"), server)
	start := time.Unix(1, 0)
	const hops = maxListed + 10
	for i := range hops + 1 {
		src := netip.AddrPortFrom(server.Addr(), uint16(1000+i%2))
		a.datagram(capture.Datagram{Time: start.Add(time.Duration(i) * time.Millisecond), Src: src, Dst: server}, &keyLog{})
	}
	if len(a.moves) != maxListed || a.moreMoves != hops-maxListed {
		t.Fatalf("%d moves listed, %d counted; want %d and %d", len(a.moves), a.moreMoves, maxListed, hops-maxListed)
	}
	var b strings.Builder
	a.report(&b)
	if !strings.Contains(b.String(), "(10 more not listed)") {
		t.Errorf("report does not count the moves past the list:\n%s", b.String())
	}
}
