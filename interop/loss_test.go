package interop_test

// The loss comparison: dtls-go (at its defaults, and at the old 100 ms
// timer) and pion/dtls v4 (at its defaults) handshaking over the same
// simulated lossy network, internal/netsim under testing/synctest, with
// the same seeds, so that the times are virtual and repeatable and every
// implementation meets the same loss pattern; DTLS 1.2, and DTLS 1.3 for
// dtls-go at its defaults and pion v4. Besides completion times it
// counts the datagrams each side sent until the client's handshake
// returned.
//
// The default run is small; DTLS_LOSS_COMPARE=path runs 1000 seeds a row
// and writes the table as Markdown (LOSS.md includes it):
//
//	DTLS_LOSS_COMPARE=../testdata/loss_compare.md go test -run TestLossCompare .

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/internal/dtlstest"
	"github.com/dtls-go/dtls/internal/netsim"
	pion4 "github.com/pion/dtls/v4"
	pion4suite "github.com/pion/dtls/v4/pkg/crypto/ciphersuite"
	pion4proto "github.com/pion/dtls/v4/pkg/protocol"
)

var (
	lossServer = netip.MustParseAddrPort("10.0.0.1:4433")
	lossClient = netip.MustParseAddrPort("10.0.0.2:50000")
)

// lossOneWay is the one-way delay of the path, as in the package's own
// loss table: a 20 ms round trip.
const lossOneWay = 10 * time.Millisecond

// lossDeadline is long enough that no handshake is cut short: the table
// reports how many took longer than a 60 s handshake timeout.
const lossDeadline = 30 * time.Minute

// lossImpl runs one handshake on n: a server on lossServer and a client on
// lossClient. It returns the client's error.
type lossImpl struct {
	name string
	run  func(t *testing.T, n *netsim.Network) error
}

// lossCert returns an ECDSA P-256 certificate valid at synctest's virtual time
// (2000-01-01).
var (
	lossCertOnce sync.Once
	lossCertVal  *dtlstest.Cert
)

func lossCert(tb testing.TB) (tls.Certificate, *x509.CertPool) {
	lossCertOnce.Do(func() {
		lossCertVal = dtlstest.SelfSigned(tb, dtlstest.Spec{Serial: 3, IsCA: true,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	})
	return lossCertVal.TLS, lossCertVal.Pool
}

// oursLoss is dtls-go with a RetransmitTimeout (0: the defaults), DTLS
// 1.2 with TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256.
func oursLoss(name string, rto time.Duration) lossImpl {
	return oursLossVersion(name, rto, false)
}

// oursLoss13 is dtls-go at its defaults, the client DTLS 1.3 only, the
// Listener 1.2 and 1.3 (TLS_AES_128_GCM_SHA256, the same ECDSA
// certificate): the Listener's stateless HelloRetryRequest, then the 1.3
// handshake with ACKs.
// groups, when not nil, are both sides' CurvePreferences; at the defaults
// the HelloRetryRequest asks for X25519MLKEM768.
func oursLoss13(name string, groups []tls.CurveID) lossImpl {
	return oursLossVersion(name, 0, true, groups)
}

func oursLossVersion(name string, rto time.Duration, v13 bool, groups ...[]tls.CurveID) lossImpl {
	return lossImpl{name, func(t *testing.T, n *netsim.Network) error {
		cert, pool := lossCert(t)
		scfg := &dtls.Config{
			Certificates:      []tls.Certificate{cert},
			CipherSuites:      []uint16{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
			RetransmitTimeout: rto,
			HandshakeTimeout:  lossDeadline,
		}
		ccfg := &dtls.Config{
			RootCAs:           pool,
			ServerName:        "dtls.test",
			CipherSuites:      []uint16{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
			RetransmitTimeout: rto,
			HandshakeTimeout:  lossDeadline,
		}
		if v13 {
			scfg.CipherSuites, ccfg.CipherSuites = nil, nil
			scfg.MaxVersion = dtls.VersionDTLS13
			ccfg.MinVersion, ccfg.MaxVersion = dtls.VersionDTLS13, dtls.VersionDTLS13
			if len(groups) > 0 {
				scfg.CurvePreferences, ccfg.CurvePreferences = groups[0], groups[0]
			}
		} else {
			scfg.MaxVersion, ccfg.MaxVersion = dtls.VersionDTLS12, dtls.VersionDTLS12
		}
		spc, err := n.ListenPacket(lossServer)
		if err != nil {
			t.Fatal(err)
		}
		l, err := dtls.NewListener(spc, scfg)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { serveLoss(&wg, l) })
		cc, err := n.Dial(lossClient, lossServer)
		if err != nil {
			t.Fatal(err)
		}
		c := dtls.Client(cc, ccfg)
		err = c.HandshakeContext(context.Background())
		snapshotLoss(n)
		c.Close()
		l.Close()
		wg.Wait()
		return err
	}}
}

// pionLoss is pion/dtls v4 with its defaults (1 s flight interval,
// doubling), DTLS 1.2 and the same suite.
var pionLoss = pionLossWith("pion/dtls v4.0.1", []pion4.Option{
	pion4.WithCipherSuites(pion4suite.ID(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)),
	pion4.WithExtendedMasterSecret(pion4.RequireExtendedMasterSecret),
	pion4.WithMaxVersion(pion4proto.Version1_2),
})

// pionLoss13 is pion/dtls v4 at its defaults with DTLS 1.3 only, and
// TLS_AES_128_GCM_SHA256 with the same certificate. Its defaults offer
// X25519MLKEM768 as ours do: an X25519 share, and the server's
// HelloRetryRequest asks for the hybrid.
var pionLoss13 = pionLossWith("pion/dtls v4.0.1 DTLS 1.3 (defaults: X25519MLKEM768)", []pion4.Option{
	pion4.WithCipherSuites(pion4suite.ID(0x1301)), // TLS_AES_128_GCM_SHA256
	pion4.WithMinVersion(pion4proto.Version1_3),
	pion4.WithMaxVersion(pion4proto.Version1_3),
})

func pionLossWith(name string, common []pion4.Option) lossImpl {
	return lossImpl{name, func(t *testing.T, n *netsim.Network) error {
		return runPionLoss(t, n, common)
	}}
}

func runPionLoss(t *testing.T, n *netsim.Network, common []pion4.Option) error {
	cert, pool := lossCert(t)
	sopts := []pion4.ServerOption{pion4.WithCertificates(cert)}
	copts := []pion4.ClientOption{pion4.WithRootCAs(pool), pion4.WithServerName("dtls.test")}
	for _, o := range common {
		sopts = append(sopts, o)
		copts = append(copts, o)
	}
	spc, err := n.ListenPacket(lossServer)
	if err != nil {
		t.Fatal(err)
	}
	l, err := pion4.Listen(spc, sopts...)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted []net.Conn
	)
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, nc)
			mu.Unlock()
			wg.Go(func() {
				defer nc.Close()
				ctx, cancel := context.WithTimeout(context.Background(), lossDeadline)
				defer cancel()
				if nc.(*pion4.Conn).HandshakeContext(ctx) != nil {
					return
				}
				readUntilError(nc)
			})
		}
	})
	cpc, err := n.ListenPacket(lossClient)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pion4.Client(cpc, net.UDPAddrFromAddrPort(lossServer), copts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), lossDeadline)
	err = c.HandshakeContext(ctx)
	cancel()
	snapshotLoss(n)
	c.Close()
	l.Close()
	// pion's Listener leaves accepted connections open, and their Read
	// waits for ever if the client's close_notify was lost.
	mu.Lock()
	for _, nc := range accepted {
		nc.Close()
	}
	mu.Unlock()
	wg.Wait()
	return err
}

func serveLoss(wg *sync.WaitGroup, l net.Listener) {
	for {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer nc.Close()
			readUntilError(nc)
		})
	}
}

// readUntilError reads a server connection until it ends, so that it
// answers the client's retransmissions of its last flight.
func readUntilError(c net.Conn) {
	buf := make([]byte, 100)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// lossSnap holds the datagram counts at the moment the client's handshake
// returned: what the handshake cost, without the close that follows.
var lossSnap struct {
	sync.Mutex
	toServer, toClient int
}

func snapshotLoss(n *netsim.Network) {
	lossSnap.Lock()
	lossSnap.toServer, lossSnap.toClient = n.StatsTo(lossServer).Sent, n.StatsTo(lossClient).Sent
	lossSnap.Unlock()
}

type lossOutcome struct {
	took               time.Duration
	err                error
	toServer, toClient int
}

func runLoss(t *testing.T, im lossImpl, link netsim.Link, seed uint64) lossOutcome {
	var o lossOutcome
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(seed, link)
		start := time.Now()
		o.err = im.run(t, n)
		o.took = time.Since(start)
	})
	lossSnap.Lock()
	o.toServer, o.toClient = lossSnap.toServer, lossSnap.toClient
	lossSnap.Unlock()
	return o
}

type lossCompareRow struct {
	impl                string
	loss                float64
	seeds, failed, slow int
	median, p90, max    time.Duration
	toServer, toClient  float64 // mean datagrams per handshake
}

func summarizeLoss(impl string, loss float64, outs []lossOutcome) lossCompareRow {
	r := lossCompareRow{impl: impl, loss: loss, seeds: len(outs)}
	var times []time.Duration
	for _, o := range outs {
		r.toServer += float64(o.toServer) / float64(len(outs))
		r.toClient += float64(o.toClient) / float64(len(outs))
		if o.err != nil {
			r.failed++
			continue
		}
		if o.took > 60*time.Second {
			r.slow++
		}
		times = append(times, o.took)
	}
	if len(times) > 0 {
		slices.Sort(times)
		r.median, r.p90, r.max = times[len(times)/2], times[len(times)*9/10], times[len(times)-1]
	}
	return r
}

func TestLossCompare(t *testing.T) {
	out := os.Getenv("DTLS_LOSS_COMPARE")
	seeds := 10
	if out != "" {
		seeds = 1000
	}
	impls := []lossImpl{oursLoss("dtls-go (defaults)", 0), oursLoss("dtls-go (old 100 ms timer)", 100*time.Millisecond), pionLoss,
		oursLoss13("dtls-go DTLS 1.3 (X25519)", []tls.CurveID{tls.X25519}),
		oursLoss13("dtls-go DTLS 1.3 (defaults: X25519MLKEM768)", nil), pionLoss13}
	var rows []lossCompareRow
	for _, loss := range []float64{0, 0.1, 0.3, 0.5} {
		for _, im := range impls {
			t.Run(fmt.Sprintf("%s/loss %.0f%%", im.name, loss*100), func(t *testing.T) {
				link := netsim.Link{Loss: loss, Delay: lossOneWay}
				outs := make([]lossOutcome, seeds)
				for i := range outs {
					outs[i] = runLoss(t, im, link, uint64(i)+1)
					// At 0% loss every implementation must finish; with
					// loss, an implementation may give up (ours after 12
					// retransmissions of a flight): the table counts it.
					if loss == 0 && outs[i].err != nil {
						t.Errorf("seed %d: %v", i+1, outs[i].err)
					}
				}
				r := summarizeLoss(im.name, loss, outs)
				t.Logf("%+v", r)
				rows = append(rows, r)
			})
		}
	}
	if out == "" {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "DTLS 1.2 rows: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256. DTLS 1.3 rows: TLS_AES_128_GCM_SHA256 with the same ECDSA certificate (dtls-go: a 1.3-only client, a Listener that offers 1.2 and 1.3; pion: 1.3 only on both sides; both at their defaults negotiate X25519MLKEM768 through the cookie's HelloRetryRequest, and the dtls-go X25519 row pins X25519 on both sides). MTU 1200, %v one-way delay, loss in both directions, %d seeds per row, the same seeds for every implementation. Datagrams: mean per handshake, sent by each side until the client's handshake returned.\n\n", lossOneWay, seeds)
	b.WriteString("| implementation | loss | failed | >60 s | median | p90 | max | datagrams client→server | datagrams server→client |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.0f%% | %d | %d | %v | %v | %v | %.1f | %.1f |\n",
			r.impl, r.loss*100, r.failed, r.slow, r.median.Round(time.Millisecond), r.p90.Round(time.Millisecond), r.max.Round(time.Millisecond), r.toServer, r.toClient)
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
