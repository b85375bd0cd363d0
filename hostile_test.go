package dtls

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// What unauthenticated or unexpected input may do to a connection: tests
// for the rules in handleRecord and handlePostHandshakeMessage, on an
// established pair of our own Conns over the in-memory link, where a test
// can put any datagram in front of either side as if it came from the
// network.

// pipePair is a client and a server of ours, handshaken over an in-memory
// link. clientEnd and serverEnd are their sockets: a datagram written into
// end.in is what that side reads next.
type pipePair struct {
	client, server       *Conn
	clientEnd, serverEnd *mbConn
	clientSent           atomic.Int64 // datagrams the client wrote
	serverSent           atomic.Int64

	mu     sync.Mutex
	drops  map[bool]map[string]int // TraceRecordDropped reasons, by Client
	alerts map[bool]map[alert]int  // TraceAlertSent, by Client
}

// newPipePair handshakes a client and a server with the given Configs
// (each gets a Tracer that counts drops; nil means PSK).
func newPipePair(t testing.TB, cc, sc *Config) *pipePair {
	t.Helper()
	if cc == nil || sc == nil {
		cc, sc = configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
	}
	p := &pipePair{drops: map[bool]map[string]int{true: {}, false: {}}, alerts: map[bool]map[alert]int{true: {}, false: {}}}
	tracer := func(ev *TraceEvent) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch ev.Kind {
		case TraceRecordDropped:
			p.drops[ev.Client][ev.Reason]++
		case TraceAlertSent:
			p.alerts[ev.Client][alert(ev.Alert)]++
		}
	}
	cc, sc = cc.Clone(), sc.Clone()
	cc.Tracer, sc.Tracer = tracer, tracer
	if cc.MaxVersion == 0 {
		// sealFrom writes 1.2 records: a pair gets 1.3 only when its
		// caller asks for it.
		cc.MaxVersion = VersionDTLS12
	}
	a, b := mbPipe()
	a.tap = func([]byte) { p.serverSent.Add(1) }
	b.tap = func([]byte) { p.clientSent.Add(1) }
	p.serverEnd, p.clientEnd = a, b
	p.server, p.client = Server(a, sc), Client(b, cc)
	errc := make(chan error, 1)
	go func() { errc <- p.server.Handshake() }()
	if err := p.client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	t.Cleanup(func() {
		p.client.Close()
		p.server.Close()
		a.Close()
		b.Close()
	})
	return p
}

// end returns the socket of one side.
func (p *pipePair) end(client bool) *mbConn {
	if client {
		return p.clientEnd
	}
	return p.serverEnd
}

func (p *pipePair) conn(client bool) *Conn {
	if client {
		return p.client
	}
	return p.server
}

func (p *pipePair) sent(client bool) int64 {
	if client {
		return p.clientSent.Load()
	}
	return p.serverSent.Load()
}

// inject puts d in front of one side, as if it arrived from the network.
func (p *pipePair) inject(toClient bool, d []byte) {
	p.end(toClient).in <- bytes.Clone(d)
}

// send has one side write msg and the other read it; it returns the
// reader's error. The read is bounded, so that a record the reader lost
// ends the test instead of hanging it.
func (p *pipePair) send(fromClient bool, msg string) error {
	w, r := p.conn(fromClient), p.conn(!fromClient)
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, err := r.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != msg {
		return errors.New("read " + string(buf[:n]) + ", want " + msg)
	}
	return nil
}

func (p *pipePair) traced(client bool, reason string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drops[client][reason]
}

// plainRecord is an epoch-0 record with the given sequence number.
func plainRecord(typ recordType, seq uint64, payload []byte) []byte {
	return append(appendRecordHeader(nil, typ, VersionDTLS12, 0, seq, len(payload)), payload...)
}

// plainMessage is an epoch-0 record holding one whole handshake message.
func plainMessage(typ handshakeType, msgSeq uint16, recSeq uint64, body []byte) []byte {
	h := handshakeHeader{typ: typ, length: uint32(len(body)), messageSeq: msgSeq, fragmentLength: uint32(len(body))}
	return plainRecord(recordTypeHandshake, recSeq, append(h.appendTo(nil), body...))
}

// epoch0Cases are unauthenticated records that anyone who knows the
// addresses can send an established connection, whose peer's next
// message_seq is next. Each goes to both sides (a forger need not respect
// roles).
func epoch0Cases(t testing.TB, next uint16) []struct {
	name string
	d    []byte
} {
	ch, _ := clientHelloDatagram(t, nil)
	_, chMsg, _, _ := parseInitialClientHello(ch)
	chBody, _ := chMsg.marshal()
	return []struct {
		name string
		d    []byte
	}{
		{"empty ChangeCipherSpec", plainRecord(recordTypeChangeCipherSpec, 1000, nil)},
		{"ChangeCipherSpec of two bytes", plainRecord(recordTypeChangeCipherSpec, 1001, []byte{1, 1})},
		{"ChangeCipherSpec of value 2", plainRecord(recordTypeChangeCipherSpec, 1002, []byte{2})},
		{"valid ChangeCipherSpec", plainRecord(recordTypeChangeCipherSpec, 1003, []byte{1})},
		{"ClientHello with a new message_seq", plainMessage(typeClientHello, next, 1004, chBody)},
		{"ClientHello with message_seq 0", plainMessage(typeClientHello, 0, 1005, chBody)},
		{"HelloVerifyRequest with a new message_seq", appendHelloVerifyRequest(nil, 1006, next, bytes.Repeat([]byte{7}, cookieLen))},
		{"HelloVerifyRequest with message_seq 0", appendHelloVerifyRequest(nil, 1007, 0, bytes.Repeat([]byte{7}, cookieLen))},
		{"HelloRequest", plainMessage(typeHelloRequest, next, 1008, nil)},
		{"ClientKeyExchange with an old message_seq", plainMessage(typeClientKeyExchange, 1, 1009, []byte{0, 1, 'x'})},
		{"Finished with a new message_seq", plainMessage(typeFinished, next, 1010, make([]byte, 12))},
		{"fatal alert", plainRecord(recordTypeAlert, 1011, []byte{alertLevelError, byte(alertHandshakeFailure)})},
		{"close_notify", plainRecord(recordTypeAlert, 1012, []byte{alertLevelWarning, byte(alertCloseNotify)})},
		{"malformed alert", plainRecord(recordTypeAlert, 1013, []byte{alertLevelError})},
		{"application data", plainRecord(recordTypeApplicationData, 1014, []byte("evil"))},
	}
}

// TestEpoch0AfterHandshake: once the peer's Finished proved it holds the
// epoch-1 keys, every epoch-0 record is dropped, counted and traced, and
// answered by nothing (issue 10 finding 1: a malformed ChangeCipherSpec
// drew a fatal alert, a handshake message a no_renegotiation warning the
// peer took as fatal, an old message_seq a resend of our final flight).
func TestEpoch0AfterHandshake(t *testing.T) {
	checkNoGoroutineLeak(t)
	for i := range epoch0Cases(t, 0) {
		for _, toClient := range []bool{true, false} {
			name := "to server/"
			if toClient {
				name = "to client/"
			}
			t.Run(name+epoch0Cases(t, 0)[i].name, func(t *testing.T) {
				p := newPipePair(t, nil, nil)
				if err := p.send(!toClient, "before"); err != nil {
					t.Fatal(err)
				}
				target := p.conn(toClient)
				tc := epoch0Cases(t, uint16(target.hs.recvSeq))[i]
				sentBefore := p.sent(toClient)
				p.inject(toClient, tc.d)
				if err := p.send(!toClient, "after"); err != nil {
					t.Fatalf("the connection did not survive: %v", err)
				}
				if n := p.sent(toClient) - sentBefore; n != 0 {
					t.Errorf("the target answered with %d datagrams", n)
				}
				if err := p.send(toClient, "back"); err != nil {
					t.Fatalf("the other way: %v", err)
				}
				reason := dropEpoch0AfterHandshake.String()
				if got := target.Stats().Dropped[reason]; got != 1 {
					t.Errorf("Stats: %d %q drops, want 1 (%v)", got, reason, target.Stats().Dropped)
				}
				if got := p.traced(toClient, reason); got != 1 {
					t.Errorf("Tracer: %d %q drops, want 1", got, reason)
				}
			})
		}
	}
}

// TestSpoofedClientHelloToListener is issue 10 finding 1's third case end
// to end: an off-path attacker sends the Listener a cookie-less ClientHello
// with an established client's address as its source. The Listener
// answers it statelessly with a HelloVerifyRequest to that address; the
// client must drop it, and the connection must go on both ways (the
// client used to answer no_renegotiation, which ended the server side).
// Written for a 1.2 client, run with a 1.3 client too.
func TestSpoofedClientHelloToListener(t *testing.T) {
	checkNoGoroutineLeak(t)
	inBothVersions(t, testSpoofedClientHelloToListener)
}

func testSpoofedClientHelloToListener(t *testing.T, vers uint16) {
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(1, netsim.Link{})
		spc, err := n.ListenPacket(lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
		cc.MaxVersion = vers
		l, err := NewListener(spc, sc)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		serverErr := make(chan error, 1)
		go func() {
			nc, err := l.Accept()
			if err != nil {
				serverErr <- err
				return
			}
			defer nc.Close()
			buf := make([]byte, 100)
			for i := 0; i < 2; i++ { // echo twice, then report
				k, err := nc.Read(buf)
				if err == nil {
					_, err = nc.Write(buf[:k])
				}
				if err != nil {
					serverErr <- err
					return
				}
			}
			serverErr <- nil
		}()
		raw, err := n.Dial(lossClientAddr, lossServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		c := Client(raw, cc)
		defer c.Close()
		echo := func(msg string) {
			t.Helper()
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatalf("write: %v", err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 100)
			k, err := c.Read(buf)
			if err != nil || string(buf[:k]) != msg {
				t.Fatalf("echo of %q: %q, %v", msg, buf[:k], err)
			}
		}
		echo("before")

		// The forgery: a ClientHello without a cookie, "from" the client,
		// with a message_seq and record number the client has not seen.
		_, ch, _, _ := parseInitialClientHello(mustClientHello(t))
		body, _ := ch.marshal()
		n.Inject(lossClientAddr, lossServerAddr, plainMessage(typeClientHello, 5, 77, body))
		synctest.Wait()
		if got := n.StatsTo(lossClientAddr).Delivered; got == 0 {
			t.Fatal("no datagram reached the client")
		}

		echo("after")
		if got := c.Stats().Dropped[dropEpoch0AfterHandshake.String()]; got != 1 {
			t.Errorf("the client dropped %d epoch-0 records, want the HelloVerifyRequest (%v)", got, c.Stats().Dropped)
		}
		if err := <-serverErr; err != nil {
			t.Errorf("server side: %v", err)
		}
	})
}

func mustClientHello(t testing.TB) []byte {
	d, _ := clientHelloDatagram(t, nil)
	return d
}

// sealFrom has one side send an authenticated record of its current epoch
// carrying payload, as a misbehaving peer holding the keys would.
func (p *pipePair) sealFrom(fromClient bool, typ recordType, payload []byte) {
	c := p.conn(fromClient)
	c.out.Lock()
	defer c.out.Unlock()
	rec, err := c.rl.seal(nil, c.rl.writeCur, typ, payload)
	if err != nil {
		panic(err)
	}
	c.io.writeDatagram(rec)
}

// TestFatalErrorsStick: after a fatal alert we sent, the next Read and
// Write return that error (RFC 5246 §7.2.2; issue 11 item 3), and so
// after one we received; the connection does not go on.
func TestFatalErrorsStick(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, tc := range []struct {
		name    string
		typ     recordType
		payload []byte
		want    string // in the receiver's error
		sent    bool   // the receiver sent a fatal alert
	}{
		{"malformed alert", recordTypeAlert, []byte{alertLevelError, 1, 2}, "malformed alert", true},
		{"alert of an unknown level", recordTypeAlert, []byte{7, byte(alertCloseNotify)}, "malformed alert", true},
		{"malformed ChangeCipherSpec", recordTypeChangeCipherSpec, []byte{1, 1}, "malformed ChangeCipherSpec", true},
		{"unexpected handshake message", recordTypeHandshake, nil, "unexpected ServerHelloDone", true},
		{"fatal alert received", recordTypeAlert, []byte{alertLevelError, byte(alertInternalError)}, "peer sent alert: internal error", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipePair(t, nil, nil)
			payload := tc.payload
			if payload == nil { // the next message the server expects
				payload = (&handshakeHeader{typ: typeServerHelloDone, messageSeq: uint16(p.server.hs.recvSeq)}).appendTo(nil)
			}
			p.sealFrom(true, tc.typ, payload)
			s := p.server
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 100)
			_, err := s.Read(buf)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("first Read: %v, want an error mentioning %q", err, tc.want)
			}
			s.SetReadDeadline(time.Now().Add(time.Second))
			if _, err2 := s.Read(buf); err2 != err {
				t.Errorf("second Read: %v, want %v", err2, err)
			}
			sentBefore := p.serverSent.Load()
			if _, err2 := s.Write([]byte("x")); err2 != err {
				t.Errorf("Write: %v, want %v", err2, err)
			}
			if p.serverSent.Load() != sentBefore {
				t.Error("Write after a fatal error sent a datagram")
			}
			if tc.sent {
				// The client received our fatal alert, and its own
				// Read says so.
				p.client.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, cerr := p.client.Read(buf)
				var ae AlertError
				if !errors.As(cerr, &ae) {
					t.Errorf("the client's Read: %v, want our fatal alert", cerr)
				}
			}
		})
	}
}

// TestWrongPSKDiagnosis: a peer whose protected records fail
// authentication (a wrong PSK) no longer ends the handshake at once, since
// a forger can send such a record too; the handshake times out, or gives
// up retransmitting, and the error says why. The side that gives up tells
// the peer with a fatal bad_record_mac (RFC 6347 §4.1.2.7), so both sides
// learn the cause.
func TestWrongPSKDiagnosis(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, tc := range []struct {
		name                       string
		serverTimeout, serverTimer time.Duration
		clientTimeout, clientTimer time.Duration
		clientSeesAlert            bool // the client still waits when the server gives up
	}{
		{"timeout", 2 * time.Second, 0, 4 * time.Second, 0, true},
		// The server's fast timer makes the client resend too, and
		// either may give up first.
		{"gave up retransmitting", time.Hour, 10 * time.Millisecond, 2 * time.Hour, time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := netsim.New(1, netsim.Link{Delay: 10 * time.Millisecond})
				sraw, _ := n.Dial(lossServerAddr, lossClientAddr)
				craw, _ := n.Dial(lossClientAddr, lossServerAddr)
				cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
				cc.MaxVersion = VersionDTLS12 // 1.3 knows at once: below
				cc.PSK = func([]byte) ([]byte, error) { return []byte("wrong key!"), nil }
				sc.HandshakeTimeout, cc.HandshakeTimeout = tc.serverTimeout, tc.clientTimeout
				sc.RetransmitTimeout, cc.RetransmitTimeout = tc.serverTimer, tc.clientTimer
				s, c := Server(sraw, sc), Client(craw, cc)
				serr := make(chan error, 1)
				go func() { serr <- s.Handshake() }()
				cerr := c.Handshake()
				err := <-serr
				s.Close()
				c.Close()
				if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "failed authentication (wrong PSK?)") {
					t.Errorf("server: %v, want a timeout that names the authentication failures", err)
				}
				var ae AlertError
				if tc.clientSeesAlert && (!errors.As(cerr, &ae) || alert(ae) != alertBadRecordMAC) {
					t.Errorf("client: %v, want the server's bad_record_mac", cerr)
				}
			})
		})
	}
	// In 1.3 the PSK binder (RFC 8446 §4.2.11.2) tells a wrong key in the
	// ClientHello, which only the key's holder can make: the server ends
	// the handshake at once with decrypt_error, and says why.
	t.Run("1.3 binder", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := netsim.New(1, netsim.Link{Delay: 10 * time.Millisecond})
			sraw, _ := n.Dial(lossServerAddr, lossClientAddr)
			craw, _ := n.Dial(lossClientAddr, lossServerAddr)
			cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
			cc.PSK = func([]byte) ([]byte, error) { return []byte("wrong key!"), nil }
			s, c := Server(sraw, sc), Client(craw, cc)
			serr := make(chan error, 1)
			go func() { serr <- s.Handshake() }()
			cerr := c.Handshake()
			err := <-serr
			s.Close()
			c.Close()
			if err == nil || errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "wrong PSK?") {
				t.Errorf("server: %v, want the binder failure at once", err)
			}
			var ae AlertError
			if !errors.As(cerr, &ae) || alert(ae) != alertDecryptError {
				t.Errorf("client: %v, want the server's decrypt_error", cerr)
			}
		})
	})
}

// TestFinalFlightResent: the last flight of a handshake is lost once; the
// peer repeats its own last flight (epoch-0 records, now dropped, and its
// epoch-1 Finished), and the side that completed answers from Read. Full
// handshake (the server's final flight) and resumption (the client's).
func TestFinalFlightResent(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, resume := range []bool{false, true} {
		name := "full"
		if resume {
			name = "resumed"
		}
		t.Run(name, func(t *testing.T) {
			cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
			// 1.2's flights (dropFinishedConn reads 1.2 records); 1.3's
			// lost final flight is TestHandshake13ReACK.
			cc.MaxVersion = VersionDTLS12
			cc.ClientSessionCache = NewLRUClientSessionCache(4)
			cc.RetransmitTimeout, sc.RetransmitTimeout = 50*time.Millisecond, 50*time.Millisecond
			if resume {
				// A first handshake fills the client's cache.
				a, b := mbPipe()
				s, c := Server(a, sc), Client(b, cc)
				go s.Handshake()
				if err := c.Handshake(); err != nil {
					t.Fatal(err)
				}
				c.Close()
				s.Close()
			}
			a, b := mbPipe()
			defer a.Close()
			defer b.Close()
			// Lose the first datagram holding the last flight's Finished:
			// the server's (full) or the client's (resumed).
			var lost atomic.Bool
			var s, c *Conn
			if resume {
				s, c = Server(a, sc), Client(&dropFinishedConn{mbConn: b, lost: &lost}, cc)
			} else {
				s, c = Server(&dropFinishedConn{mbConn: a, lost: &lost}, sc), Client(b, cc)
			}
			defer s.Close()
			defer c.Close()
			// Each side handshakes, then reads: the side that completes
			// first answers the other's retransmission from Read.
			serve := func(conn *Conn, done chan<- string) {
				if err := conn.Handshake(); err != nil {
					done <- err.Error()
					return
				}
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 10)
				n, err := conn.Read(buf)
				if err != nil {
					done <- err.Error()
					return
				}
				done <- string(buf[:n])
			}
			sdone, cdone := make(chan string, 1), make(chan string, 1)
			go serve(s, sdone)
			go serve(c, cdone)
			// Write waits for its side's handshake.
			if _, err := s.Write([]byte("to client")); err != nil {
				t.Fatalf("server: %v", err)
			}
			if _, err := c.Write([]byte("to server")); err != nil {
				t.Fatalf("client: %v", err)
			}
			if got := <-sdone; got != "to server" {
				t.Errorf("server: %s", got)
			}
			if got := <-cdone; got != "to client" {
				t.Errorf("client: %s", got)
			}
			if !lost.Load() {
				t.Fatal("no Finished was lost")
			}
			if resume && !c.ConnectionState().DidResume {
				t.Error("not resumed")
			}
		})
	}
}

// dropFinishedConn loses the first datagram it writes that carries an
// epoch-1 record (a Finished, in a handshake).
type dropFinishedConn struct {
	*mbConn
	lost *atomic.Bool
}

func (d *dropFinishedConn) Write(b []byte) (int, error) {
	for rest := b; len(rest) > 0; {
		hdr, _, r, reason := nextRecord(rest)
		if reason != dropNone {
			break
		}
		if hdr.epoch == 1 && hdr.typ == recordTypeHandshake && d.lost.CompareAndSwap(false, true) {
			return len(b), nil
		}
		rest = r
	}
	return d.mbConn.Write(b)
}

var _ net.Conn = (*dropFinishedConn)(nil)

// TestNoRenegotiationRateLimit: renegotiation requests are answered at
// once, but at most once per noRenegotiationInterval, so that a burst of a
// peer's retransmissions (gnutls-cli answers each warning with another
// attempt) draws one warning, not one each.
func TestNoRenegotiationRateLimit(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_GCM_SHA256, ""})
	var mu sync.Mutex
	now := time.Now()
	sc.Time = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := newPipePair(t, cc, sc)
	warnings := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.alerts[false][alertNoRenegotiation]
	}
	_, ch, _, _ := parseInitialClientHello(mustClientHello(t))
	body, _ := ch.marshal()
	hello := (&handshakeHeader{typ: typeClientHello, length: uint32(len(body)), fragmentLength: uint32(len(body))}).appendTo(nil)
	hello = append(hello, body...)
	burst := func(n int) {
		t.Helper()
		for range n {
			p.sealFrom(true, recordTypeHandshake, hello)
		}
		if err := p.send(true, "data"); err != nil {
			t.Fatal(err)
		}
	}
	burst(3)
	if got := warnings(); got != 1 {
		t.Errorf("%d warnings for a burst of three, want 1", got)
	}
	mu.Lock()
	now = now.Add(noRenegotiationInterval)
	mu.Unlock()
	burst(2)
	if got := warnings(); got != 2 {
		t.Errorf("%d warnings after a second burst an interval later, want 2", got)
	}
}
