package dtls

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtls-go/dtls/internal/netsim"
)

// Several NewSessionTickets per connection (Config.SessionTicketsPerConnection,
// RFC 8446 §4.6.1) and the client's use of each at most once (RFC 8446
// §C.4).

// ticketPool13 returns the number of 1.3 tickets the client holds for
// key.
func ticketPool13(t *testing.T, cc *Config, key string) int {
	t.Helper()
	held, _ := ticketCounts13(cc, key)
	return held
}

// ticketCounts13 returns the 1.3 tickets the client holds for key and
// how many of them no ClientHello offered yet.
func ticketCounts13(cc *Config, key string) (held, unused int) {
	cs := cached13(cc, key)
	if cs == nil || cs.tickets13 == nil {
		return 0, 0
	}
	p := cs.tickets13
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.list {
		if !p.used[t] {
			unused++
		}
	}
	return len(p.list), unused
}

// handshakeOnly13 runs a handshake and closes the pair without reading, so
// that the client receives no ticket from it.
func handshakeOnly13(t *testing.T, cc, sc *Config) (cli, srv ConnectionState) {
	t.Helper()
	c, s := connectedPair(t, cc, sc)
	defer c.Close()
	defer s.Close()
	errc := make(chan error, 1)
	go func() { errc <- s.Handshake() }()
	if err := c.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return c.ConnectionState(), s.ConnectionState()
}

func TestTickets13Several(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs13(t, "p256")
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	sc.SessionTicketsPerConnection = 3
	var mu sync.Mutex
	seqs := map[uint16]int{}
	sc.Tracer = func(ev *TraceEvent) {
		if ev.Kind == TraceHandshakeSent && ev.HandshakeType == uint8(typeNewSessionTicket) {
			mu.Lock()
			seqs[ev.MessageSeq]++
			mu.Unlock()
		}
	}
	var received []uint16
	cc.Tracer = func(ev *TraceEvent) {
		if ev.Kind == TraceHandshakeReceived && ev.HandshakeType == uint8(typeNewSessionTicket) {
			mu.Lock()
			received = append(received, ev.MessageSeq)
			mu.Unlock()
		}
	}
	resume13Pair(t, cc, sc)
	cc.Tracer = nil
	mu.Lock()
	if len(seqs) != 3 || len(received) != 3 {
		t.Fatalf("NewSessionTickets sent with message_seq %v, received %v; want 3 distinct", seqs, received)
	}
	for _, q := range received {
		if seqs[q] == 0 {
			t.Fatalf("received message_seq %d, sent %v", q, seqs)
		}
	}
	mu.Unlock()
	if n := ticketPool13(t, cc, "dtls.test"); n != 3 {
		t.Fatalf("client holds %d tickets, want 3", n)
	}
	// Three connections at once each resume with a ticket of their own;
	// none reads, so none brings a new ticket.
	var wg sync.WaitGroup
	resumed := make(chan bool, 3)
	for range 3 {
		wg.Go(func() {
			c, s := handshakeOnly13(t, cc, sc)
			resumed <- c.DidResume && s.DidResume
		})
	}
	wg.Wait()
	close(resumed)
	for r := range resumed {
		if !r {
			t.Fatal("a parallel connection did not resume")
		}
	}
	if held, unused := ticketCounts13(cc, "dtls.test"); held != 3 || unused != 0 {
		t.Fatalf("client holds %d tickets, %d unused, after using 3 once each", held, unused)
	}
	// With none unused, the fourth connection reuses the newest rather
	// than make a full handshake (as crypto/tls would).
	if c, s := handshakeOnly13(t, cc, sc); !c.DidResume || !s.DidResume {
		t.Fatal("no resumption once every ticket was used")
	}
	// A new ticket retires the used ones.
	resume13Pair(t, cc, sc)
	if held, unused := ticketCounts13(cc, "dtls.test"); held != 3 || unused != 3 {
		t.Fatalf("after a new connection's tickets: %d held, %d unused; want 3 fresh", held, unused)
	}
}

// Tickets from several connections pile up to maxClientTickets13, the
// oldest forgotten, and the newest is used first.
func TestTickets13ClientBound(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs13(t, "p256")
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	sc.SessionTicketsPerConnection = maxSessionTicketsPerConnection
	for range 3 {
		resume13Pair(t, cc, sc)
	}
	if n := ticketPool13(t, cc, "dtls.test"); n != maxClientTickets13 {
		t.Fatalf("client holds %d tickets, want the bound %d", n, maxClientTickets13)
	}
	head := cached13(cc, "dtls.test")
	newest := head.tickets13.list[len(head.tickets13.list)-1]
	if newest != head {
		t.Fatal("the cache entry is not the newest ticket")
	}
	if c, _ := handshakeOnly13(t, cc, sc); !c.DidResume {
		t.Fatal("did not resume")
	}
	head.tickets13.mu.Lock()
	defer head.tickets13.mu.Unlock()
	if !head.tickets13.used[newest] || len(head.tickets13.used) != 1 {
		t.Fatal("the newest ticket was not the one used")
	}
}

func TestTickets13ConfigBound(t *testing.T) {
	for _, n := range []int{-1, maxSessionTicketsPerConnection + 1} {
		cfg := &Config{Certificates: []tls.Certificate{certs(t)["p256"].tls}, SessionTicketsPerConnection: n}
		if err := cfg.checkServer(); err == nil {
			t.Errorf("SessionTicketsPerConnection %d accepted", n)
		}
	}
	if got := (&Config{}).sessionTicketsPerConnection(); got != 1 {
		t.Errorf("default tickets per connection %d, want 1", got)
	}
}

// TestTickets13LossOne loses the datagram of the second of three tickets
// (each in a datagram of its own at a small MTU): the client ACKs the
// other two, and when the server's timer fires it resends the lost one
// alone (RFC 9147 §7.1: a sender must not retransmit ACKed records).
func TestTickets13LossOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc, sc := kuConfigs(t, suiteTLSAES128GCMSHA256, 1)
		cc.ClientSessionCache = NewLRUClientSessionCache(4)
		sc.SessionTicketsPerConnection = 3
		sc.MTU = 300
		// The server's timer far above the client's ACK delay: the ACK
		// of tickets 1 and 3 arrives before it fires.
		sc.RetransmitTimeout = 3 * time.Second
		var mu sync.Mutex
		var sconn *dropConn
		var order []uint16
		sent := map[uint16]int{}
		sc.Tracer = func(ev *TraceEvent) {
			if ev.Kind != TraceHandshakeSent || ev.HandshakeType != uint8(typeNewSessionTicket) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if sent[ev.MessageSeq] == 0 {
				order = append(order, ev.MessageSeq)
				if len(order) == 2 {
					sconn.drop.Store(true) // this record's datagram
				}
			}
			sent[ev.MessageSeq]++
		}
		n := netsim.New(1, netsim.Link{Delay: lossDelay})
		cli, srv := kuPair(t, n, cc, sc, func(_, srv *Conn) {
			sconn = &dropConn{Conn: srv.io.(*netConnIO).conn}
			srv.io.(*netConnIO).conn = sconn
		})
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cli.Close()
		defer srv.Close()
		for _, c := range []*Conn{cli, srv} {
			wg.Go(func() {
				buf := make([]byte, 100)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
		}
		time.Sleep(5 * time.Second) // virtual: past the server's timer
		mu.Lock()
		defer mu.Unlock()
		if len(order) != 3 || sconn.dropped.Load() != 1 {
			t.Fatalf("tickets sent %v, %d datagrams dropped", order, sconn.dropped.Load())
		}
		if sent[order[0]] != 1 || sent[order[1]] != 2 || sent[order[2]] != 1 {
			t.Fatalf("transmissions per ticket %v (order %v): want only the lost one resent, once", sent, order)
		}
		if got := ticketPool13(t, cc, cli.sessionCacheKey); got != 3 {
			t.Fatalf("client holds %d tickets, want 3", got)
		}
	})
}

// TestMisbehavingTicketServer13: a server that sends NewSessionTickets
// outside the rules. The client keeps at most maxClientTickets13 of a
// flood, drops a ticket too long for a ClientHello, and ends the
// connection on a lifetime over 7 days (RFC 8446 §4.6.1: "Servers MUST NOT
// use any value greater than 604800 seconds").
func TestMisbehavingTicketServer13(t *testing.T) {
	ticket := func(lifetime uint32, n int) *newSessionTicketMsg13 {
		return &newSessionTicketMsg13{lifetime: lifetime, nonce: []byte{1}, label: bytes.Repeat([]byte{7}, n)}
	}
	rows := []struct {
		name      string
		msgs      []*newSessionTicketMsg13
		wantAlert alert // 0: the connection goes on
		wantKept  int
	}{
		{name: "flood", msgs: func() []*newSessionTicketMsg13 {
			var m []*newSessionTicketMsg13
			for range 50 {
				m = append(m, ticket(3600, 100))
			}
			return m
		}(), wantKept: maxClientTickets13},
		{name: "huge ticket", msgs: []*newSessionTicketMsg13{ticket(3600, maxClientTicketLen+1)}, wantKept: 0},
		{name: "zero lifetime", msgs: []*newSessionTicketMsg13{ticket(0, 100)}, wantKept: 0},
		{name: "lifetime over 7 days", msgs: []*newSessionTicketMsg13{{lifetime: maxTicketLifetime13 + 1, nonce: []byte{1}, label: []byte{1}}}, wantAlert: alertDecodeError},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			cc, sc := kuConfigs(t, suiteTLSAES128GCMSHA256, 1)
			cc.ClientSessionCache = NewLRUClientSessionCache(4)
			sc.SessionTicketsDisabled = true // only the rows' tickets
			phaRun(t, cc, sc, false, func(t *testing.T, cli, srv *Conn) {
				for _, m := range row.msgs {
					if m.lifetime > maxTicketLifetime13 {
						// marshal refuses it: build it by hand.
						ok := *m
						ok.lifetime = 1
						body, err := ok.marshal()
						if err != nil {
							t.Fatal(err)
						}
						body[0], body[1], body[2], body[3] = byte(m.lifetime>>24), byte(m.lifetime>>16), byte(m.lifetime>>8), byte(m.lifetime)
						testSendHandshake13(t, srv, typeNewSessionTicket, rawMsg(body))
						continue
					}
					testSendHandshake13(t, srv, typeNewSessionTicket, m)
				}
				time.Sleep(time.Second)
				err := cli.fatal()
				if row.wantAlert != 0 {
					if err == nil || cli.alertSent.Load() != uint32(row.wantAlert)+1 {
						t.Fatalf("client error %v, alert sent %d; want alert %v", err, cli.alertSent.Load(), row.wantAlert)
					}
					return
				}
				if err != nil {
					t.Fatalf("client failed: %v", err)
				}
				if got := ticketPool13(t, cc, cli.sessionCacheKey); got != row.wantKept {
					t.Fatalf("client keeps %d tickets, want %d", got, row.wantKept)
				}
			})
		})
	}
}

// rawMsg is a handshake body sent as is.
type rawMsg []byte

func (m rawMsg) marshal() ([]byte, error) { return m, nil }

// A ticket offered before is offered again only without 0-RTT data: a
// server that makes tickets single-use for anti-replay would refuse it.
func TestTickets13ReusedWithoutEarlyData(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs0RTT(t, 1000)
	run0RTT(t, cc, sc, nil, "ticket?") // one ticket
	// Its 0-RTT use; no message is read, so no new ticket arrives.
	r := run0RTT(t, cc, sc, []string{"first"})
	if !r.cli.EarlyDataAccepted || !r.srv.DidResume {
		t.Fatalf("first use: early data accepted %v, resumed %v (%v, %v)", r.cli.EarlyDataAccepted, r.srv.DidResume, r.cliErr, r.srvErr)
	}
	if held, unused := ticketCounts13(cc, "dtls.test"); held != 1 || unused != 0 {
		t.Fatalf("%d tickets held, %d unused; want the one, used", held, unused)
	}
	r = run0RTT(t, cc, sc, []string{"second"}, "again")
	if r.cliErr != nil || r.srvErr != nil || !r.srv.DidResume {
		t.Fatalf("reuse: resumed %v (%v, %v)", r.srv.DidResume, r.cliErr, r.srvErr)
	}
	if r.cli.EarlyDataAccepted || earlyLine(r.keylogCli) != "" {
		t.Fatal("0-RTT data sent with a reused ticket")
	}
}

// TestTickets13Lossy: four tickets over a link that drops 30% of the
// datagrams each way, duplicates and reorders some, small MTU so that
// each ticket has datagrams of its own: for every seed all four reach the
// client's cache (each ACKed and resent on its own until it is).
func TestTickets13Lossy(t *testing.T) {
	lost := 0
	defer func() {
		if !t.Failed() && lost == 0 {
			t.Error("no datagram lost after the handshake: the test tests nothing")
		}
		t.Logf("%d datagrams lost after the handshakes", lost)
	}()
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cc, sc := kuConfigs(t, suiteTLSAES128GCMSHA256, seed)
				cc.ClientSessionCache = NewLRUClientSessionCache(4)
				sc.SessionTicketsPerConnection = maxSessionTicketsPerConnection
				sc.MTU = 300
				n := netsim.New(seed, netsim.Link{Delay: lossDelay})
				cli, srv := kuPair(t, n, cc, sc, nil)
				// The handshake ran clean; the tickets go over the lossy link.
				lossy := netsim.Link{Delay: lossDelay, Loss: 0.3, Dup: 0.1, Reorder: 0.1}
				before := n.Stats().Lost
				defer func() { lost += n.Stats().Lost - before }()
				n.SetLink(lossClientAddr, lossServerAddr, lossy)
				n.SetLink(lossServerAddr, lossClientAddr, lossy)
				var wg sync.WaitGroup
				defer wg.Wait()
				defer cli.Close()
				defer srv.Close()
				for _, c := range []*Conn{cli, srv} {
					wg.Go(func() {
						buf := make([]byte, 100)
						for {
							if _, err := c.Read(buf); err != nil {
								return
							}
						}
					})
				}
				deadline := time.Now().Add(2 * time.Minute) // virtual
				for ticketPool13(t, cc, cli.sessionCacheKey) < maxSessionTicketsPerConnection && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
				}
				if got := ticketPool13(t, cc, cli.sessionCacheKey); got != maxSessionTicketsPerConnection {
					t.Fatalf("client holds %d tickets, want %d", got, maxSessionTicketsPerConnection)
				}
			})
		})
	}
}
