package dtls

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/dtlstest"
	"github.com/dtls-go/dtls/internal/netsim"
)

// The misbehaving-peer table. Each row names what the scripted peer
// (mbpeer_test.go) does wrong, which side of ours it talks to, and what
// must happen: the error our side returns and the fatal alert it sends,
// or, for records that are merely invalid, that they are dropped and the
// handshake and application data go on. Every row also checks that nothing
// panics and no goroutine is left behind. The comment on each row names the
// public advisory class (ADVISORIES.md) it guards against.
//
// Outcomes follow one rule: RFC 6347 §4.1.2.7 asks for invalid records to
// be dropped silently, since epoch-0 records can be forged by anyone on the
// path. A complete handshake message that is out of place, malformed or
// wrong is an error with the alert RFC 5246 §7.2 names. Where the peer
// stops short (a message never completes, a ChangeCipherSpec never comes)
// the handshake times out: nothing distinguishes that from loss.

// Ours is the side of the library under test.
const (
	oursServer   = "Server"   // Server on a netsim Conn (does its own cookie exchange)
	oursListener = "Listener" // a Listener on a netsim PacketConn
	oursClient   = "Client"   // Client on a netsim Conn
)

const (
	mbNoAlert   = -1 // our side must send no fatal alert
	mbTimeout   = "handshake timed out"
	mbSucceeds  = ""
	mbShortWait = 300 * time.Millisecond // HandshakeTimeout of rows that time out (virtual time)
)

type mbRow struct {
	name  string
	ours  string
	suite uint16
	// config adjusts our Config; peer adjusts the scripted peer (its hook
	// and options); script, if set, replaces the peer's whole script.
	config func(c *Config)
	peer   func(p *mbPeer)
	script func(p *mbPeer) error
	// wantErr is a substring of our side's error: of the handshake, or of
	// the first Read after it. "" means the handshake completes and
	// application data flows both ways.
	wantErr string
	// wantAlert is the fatal alert our side must send, or mbNoAlert.
	wantAlert int
	// wantWarning is a warning alert our side must send (0: none checked).
	wantWarning alert
	// alertUnreadable: the peer cannot decrypt the alert we send (it
	// derived other keys), so only our Tracer sees it.
	alertUnreadable bool
	// check runs extra assertions at the end.
	check func(t *testing.T, r *mbResult)
}

// mbResult is what a row observed.
type mbResult struct {
	ourErr    error
	peerErr   error
	peer      *mbPeer
	sent      []alert // alerts our side sent (from the Tracer)
	drops     map[string]uint64
	listener  *Listener
	completed bool
}

// ---- hook helpers ----

// onFlight applies f to the named flight only.
func onFlight(name string, f func(p *mbPeer, items []mbItem) []mbItem) func(p *mbPeer) {
	return func(p *mbPeer) {
		prev := p.hook
		p.hook = func(p *mbPeer, flight string, items []mbItem) []mbItem {
			if prev != nil {
				items = prev(p, flight, items)
			}
			if flight == name {
				items = f(p, items)
			}
			return items
		}
	}
}

func chain(fs ...func(p *mbPeer)) func(p *mbPeer) {
	return func(p *mbPeer) {
		for _, f := range fs {
			f(p)
		}
	}
}

func findMsg(items []mbItem, typ handshakeType) int {
	return slices.IndexFunc(items, func(it mbItem) bool { return it.kind == mbMsg && it.typ == typ })
}

func findCCS(items []mbItem) int {
	return slices.IndexFunc(items, func(it mbItem) bool { return it.kind == mbCCS })
}

func dropMsg(flight string, typ handshakeType) func(p *mbPeer) {
	return onFlight(flight, func(p *mbPeer, items []mbItem) []mbItem {
		return slices.Delete(items, findMsg(items, typ), findMsg(items, typ)+1)
	})
}

func dropCCS(flight string) func(p *mbPeer) {
	return onFlight(flight, func(p *mbPeer, items []mbItem) []mbItem {
		i := findCCS(items)
		return slices.Delete(items, i, i+1)
	})
}

// repeatMsg sends the message twice, the copy with the next message_seq.
func repeatMsg(flight string, typ handshakeType) func(p *mbPeer) {
	return onFlight(flight, func(p *mbPeer, items []mbItem) []mbItem {
		i := findMsg(items, typ)
		return slices.Insert(items, i+1, items[i])
	})
}

// moveItem moves the item at index from (after resolving) to just before
// the item at index before.
func moveItem(items []mbItem, from, before int) []mbItem {
	it := items[from]
	items = slices.Delete(items, from, from+1)
	if before > from {
		before--
	}
	return slices.Insert(items, before, it)
}

func moveMsgBefore(flight string, typ, beforeTyp handshakeType) func(p *mbPeer) {
	return onFlight(flight, func(p *mbPeer, items []mbItem) []mbItem {
		return moveItem(items, findMsg(items, typ), findMsg(items, beforeTyp))
	})
}

// setBody replaces a message's body after it is computed.
func setBody(flight string, typ handshakeType, f func(p *mbPeer, body []byte) []byte) func(p *mbPeer) {
	return onFlight(flight, func(p *mbPeer, items []mbItem) []mbItem {
		i := findMsg(items, typ)
		it := &items[i]
		orig := *it
		it.lazy = func(p *mbPeer) []byte {
			var body []byte
			switch {
			case orig.lazy != nil:
				body = orig.lazy(p)
			case orig.body != nil:
				body = orig.body
			default:
				body, _ = orig.m.marshal()
			}
			return f(p, bytes.Clone(body))
		}
		return items
	})
}

// inject adds items at the front of a flight.
func inject(flight string, extra ...mbItem) func(p *mbPeer) {
	return onFlight(flight, func(p *mbPeer, items []mbItem) []mbItem {
		return append(slices.Clone(extra), items...)
	})
}

// injectLazy adds items built at hook time at the front of a flight.
func injectLazy(flight string, f func(p *mbPeer) []mbItem) func(p *mbPeer) {
	return onFlight(flight, func(p *mbPeer, items []mbItem) []mbItem {
		return append(f(p), items...)
	})
}

// appendItems adds items at the end of a flight.
func appendItems(flight string, extra ...mbItem) func(p *mbPeer) {
	return onFlight(flight, func(p *mbPeer, items []mbItem) []mbItem {
		return append(items, extra...)
	})
}

// fragRecord is an epoch-0 handshake record, numbered in the peer's
// sequence, carrying one fragment with the given header fields whatever
// they say.
func fragRecord(typ handshakeType, length uint32, msgSeq uint16, off, fragLen uint32, data []byte) mbItem {
	h := handshakeHeader{typ: typ, length: length, messageSeq: msgSeq, fragmentOffset: off, fragmentLength: fragLen}
	return recordItem(0, recordTypeHandshake, append(h.appendTo(nil), data...))
}

// ---- certificates ----

var (
	hugeRSAOnce sync.Once
	hugeRSA     *testCert
)

// hugeRSACert is a certificate whose SubjectPublicKeyInfo holds a
// 16384-bit RSA modulus that nobody has the key for: a random odd number.
// It is signed by a P-256 key, so making it costs nothing; the peer's
// CertificateVerify or ServerKeyExchange is never checked against it.
func hugeRSACert() *testCert {
	hugeRSAOnce.Do(func() {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 16384))
		n.SetBit(n, 16383, 1)
		n.SetBit(n, 0, 1)
		// The private key is the P-256 one that signs: whoever uses it
		// signs with a key that does not match, which our side must
		// never get to.
		c := dtlstest.SelfSigned(dtlstest.NoTest(), dtlstest.Spec{Serial: 2, PublicKey: &rsa.PublicKey{N: n, E: 65537}})
		hugeRSA = &testCert{tls: tls.Certificate{Certificate: c.TLS.Certificate, PrivateKey: c.Key}}
	})
	return hugeRSA
}

// ---- the runner ----

// mbOursAddr and mbPeerAddr are our side's and the scripted peer's
// addresses on the simulated network; fixed, so cookies (which bind the
// address) are the same in every run.
var (
	mbOursAddr = netip.MustParseAddrPort("10.0.0.1:5684")
	mbPeerAddr = netip.MustParseAddrPort("10.0.0.2:40000")
)

// runMBRow runs one row; call it inside a synctest bubble.
func runMBRow(t *testing.T, row mbRow) *mbResult {
	t.Helper()
	res := &mbResult{}
	var mu sync.Mutex
	suite := row.suite
	if suite == 0 {
		suite = TLS_PSK_WITH_AES_128_GCM_SHA256
	}
	cs := cipherSuiteByID(suite)

	// Our side's Config.
	p256 := certs(t)["p256"]
	var cfg *Config
	if cs.kx.isPSK() {
		cfg = pskConfig()
	} else {
		cfg = &Config{}
		if row.ours == oursClient {
			cfg.RootCAs, cfg.ServerName = p256.pool, "dtls.test"
			if cs.kx == kxECDHERSA {
				cfg.RootCAs = certs(t)["rsa"].pool
			}
		} else {
			cfg.Certificates = []tls.Certificate{p256.tls}
			if cs.kx == kxECDHERSA {
				cfg.Certificates = []tls.Certificate{certs(t)["rsa"].tls}
			}
		}
	}
	cfg.CipherSuites = []uint16{suite}
	cfg.HandshakeTimeout = mbShortWait
	cfg.RetransmitTimeout = 100 * time.Millisecond
	cfg.Tracer = func(ev *TraceEvent) {
		if ev.Kind == TraceAlertSent {
			mu.Lock()
			res.sent = append(res.sent, alert(ev.Alert))
			mu.Unlock()
		}
	}
	if row.config != nil {
		row.config(cfg)
	}

	// The link: a perfect one on the simulated network. Every row runs
	// in a synctest bubble (TestMisbehavingPeer), so the waits below and
	// our side's timers cost no real time.
	simnet := netsim.New(1, netsim.Link{})
	var ourConn, peerConn net.Conn
	var l *Listener
	switch row.ours {
	case oursListener:
		pc, err := simnet.ListenPacket(mbOursAddr)
		if err != nil {
			t.Fatal(err)
		}
		var failed []string
		tr := cfg.Tracer
		cfg.Tracer = func(ev *TraceEvent) {
			tr(ev)
			if ev.Kind == TraceHandshakeFailed {
				mu.Lock()
				failed = append(failed, ev.Reason)
				mu.Unlock()
			}
		}
		if l, err = NewListener(pc, cfg); err != nil {
			t.Fatal(err)
		}
		res.listener = l
		pconn, err := simnet.Dial(mbPeerAddr, mbOursAddr)
		if err != nil {
			t.Fatal(err)
		}
		peerConn = pconn
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			if res.ourErr == nil && !res.completed {
				if len(failed) > 0 {
					res.ourErr = errors.New(failed[0])
				} else {
					res.ourErr = errors.New("no handshake")
				}
			}
		}()
	default:
		a, err := simnet.Dial(mbOursAddr, mbPeerAddr)
		if err != nil {
			t.Fatal(err)
		}
		b, err := simnet.Dial(mbPeerAddr, mbOursAddr)
		if err != nil {
			t.Fatal(err)
		}
		ourConn, peerConn = a, b
	}

	peer := newMBPeer(peerConn, row.ours != oursClient, suite)
	peer.timeout = time.Second
	res.peer = peer
	if !cs.kx.isPSK() && row.ours == oursClient {
		peer.cert = &p256.tls
		if cs.kx == kxECDHERSA {
			peer.cert = &certs(t)["rsa"].tls
		}
	}
	if row.peer != nil {
		row.peer(peer)
	}
	script := row.script
	if script == nil {
		script = (*mbPeer).runServer
		if peer.isClient {
			script = (*mbPeer).runClient
		}
	}
	peerDone := make(chan error, 1)
	go func() { peerDone <- script(peer) }()

	// Our side.
	ourDone := make(chan struct{})
	var ours *Conn
	go func() {
		defer close(ourDone)
		var err error
		switch row.ours {
		case oursListener:
			nc, aerr := acceptWithin(l, 2*time.Second)
			if aerr != nil {
				return
			}
			ours = nc.(*Conn)
			mu.Lock()
			res.completed = true
			mu.Unlock()
			err = echoOnce(ours)
		case oursServer:
			ours = Server(ourConn, cfg)
			if err = ours.Handshake(); err == nil {
				res.completed = true
				err = echoOnce(ours)
			}
		case oursClient:
			ours = Client(ourConn, cfg)
			if err = ours.Handshake(); err == nil {
				res.completed = true
				err = pingOnce(ours)
			}
		}
		mu.Lock()
		res.ourErr = err
		mu.Unlock()
	}()

	if l != nil {
		// A Listener reports nothing for a peer that never completes:
		// once the peer's script is over, stop listening.
		select {
		case res.peerErr = <-peerDone:
			peerDone <- res.peerErr
		case <-time.After(5 * time.Second):
		}
		time.Sleep(50 * time.Millisecond)
		l.Close()
	}
	select {
	case <-ourDone:
	case <-time.After(10 * time.Second):
		t.Fatal("our side hangs")
	}
	if ours != nil {
		res.drops = ours.Stats().Dropped
		ours.Close()
	}
	if ourConn != nil {
		ourConn.Close()
	}
	select {
	case res.peerErr = <-peerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("peer script hangs")
	}
	peer.drain(50 * time.Millisecond)
	peerConn.Close()
	return res
}

func acceptWithin(l *Listener, d time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-time.After(d):
		l.Close()
		r := <-ch
		if r.c != nil {
			r.c.Close()
		}
		return nil, errors.New("no connection accepted")
	}
}

// echoOnce reads one application record and writes it back.
func echoOnce(c *Conn) error {
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1<<14)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	_, err = c.Write(buf[:n])
	return err
}

// pingOnce writes "ping" and expects it back.
func pingOnce(c *Conn) error {
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "ping" {
		return fmt.Errorf("echo %q", buf[:n])
	}
	return nil
}

func checkMBRow(t *testing.T, row mbRow, res *mbResult) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("peer events: %s", strings.Join(res.peer.events, "; "))
			t.Logf("our drops: %v", res.drops)
		}
	}()
	fatalSent := []alert{}
	for _, a := range res.sent {
		if a != alertCloseNotify && a != alertNoRenegotiation {
			fatalSent = append(fatalSent, a)
		}
	}
	if row.wantErr == mbSucceeds {
		if res.ourErr != nil {
			t.Errorf("our side failed: %v", res.ourErr)
		}
		if res.peerErr != nil {
			t.Errorf("peer failed: %v", res.peerErr)
		}
	} else {
		if res.ourErr == nil {
			t.Errorf("our side succeeded, want error %q", row.wantErr)
		} else if !strings.Contains(res.ourErr.Error(), row.wantErr) {
			t.Errorf("our error %q, want it to mention %q", res.ourErr, row.wantErr)
		} else if !strings.HasPrefix(res.ourErr.Error(), "dtls: ") && res.ourErr != io.EOF && row.ours != oursListener {
			t.Errorf("our error %q does not start with \"dtls: \"", res.ourErr)
		}
	}
	if row.wantAlert == mbNoAlert || row.wantErr == mbSucceeds {
		if len(fatalSent) > 0 {
			t.Errorf("we sent alerts %v, want none", fatalSent)
		}
	} else {
		want := alert(row.wantAlert)
		if !slices.Equal(fatalSent, []alert{want}) {
			t.Errorf("we sent alerts %v, want exactly %v", fatalSent, want)
		}
		got, _ := res.peer.receivedAlerts()
		if !row.alertUnreadable && !slices.Contains(got, want) {
			t.Errorf("the peer received alerts %v, not %v", got, want)
		}
	}
	if row.wantWarning != 0 {
		got, levels := res.peer.receivedAlerts()
		i := slices.Index(got, row.wantWarning)
		if i < 0 || levels[i] != alertLevelWarning {
			t.Errorf("the peer received alerts %v (levels %v), want a warning %v", got, levels, row.wantWarning)
		}
	}
	if row.check != nil {
		row.check(t, res)
	}
}

// testMBRow runs a row and checks its outcome in a synctest bubble, so
// that waits for timeouts cost no real time and every run is the same.
// Besides synctest's own check that nothing in the bubble is left
// blocked, no goroutine may be left behind.
func testMBRow(t *testing.T, row mbRow) {
	t.Helper()
	checkNoGoroutineLeak(t)
	synctest.Test(t, func(t *testing.T) {
		checkMBRow(t, row, runMBRow(t, row))
	})
}

func TestMisbehavingPeer(t *testing.T) {
	for _, row := range mbRows() {
		t.Run(row.ours+"/"+row.name, func(t *testing.T) { testMBRow(t, row) })
	}
}

// wantDrop checks that our side counted a drop of the given reason.
func wantDrop(reason dropReason) func(t *testing.T, r *mbResult) {
	return func(t *testing.T, r *mbResult) {
		if r.drops[reason.String()] == 0 {
			t.Errorf("no %q drop counted: %v", reason, r.drops)
		}
	}
}
