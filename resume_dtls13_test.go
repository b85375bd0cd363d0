package dtls

import (
	"crypto/tls"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// resume13Pair runs a handshake and an echo over connected sockets; the
// echo makes the client read the server's NewSessionTicket.
func resume13Pair(t *testing.T, cc, sc *Config) (cli, srv ConnectionState) {
	t.Helper()
	return run13(t, cc, sc, "ticket?", "again")
}

// cached13 returns the 1.3 session cached for the client config, or nil.
func cached13(cc *Config, key string) *ClientSessionState {
	cs, ok := cc.ClientSessionCache.Get(key)
	if !ok || cs == nil || cs.state == nil || cs.state.version != VersionDTLS13 {
		return nil
	}
	return cs
}

func TestResume13Conn(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, suite := range []uint16{suiteTLSAES128GCMSHA256, suiteTLSAES256GCMSHA384} {
		t.Run(CipherSuiteName(suite), func(t *testing.T) {
			cc, sc := configs13(t, "p256")
			sc.CipherSuites = []uint16{suite}
			cc.ClientSessionCache = NewLRUClientSessionCache(4)
			c1, s1 := resume13Pair(t, cc, sc)
			if c1.DidResume || s1.DidResume {
				t.Fatal("first handshake resumed")
			}
			if cached13(cc, "dtls.test") == nil {
				t.Fatal("no 1.3 ticket cached after the first handshake")
			}
			c2, s2 := resume13Pair(t, cc, sc)
			if !c2.DidResume || !s2.DidResume {
				t.Fatalf("second handshake did not resume: client %v server %v", c2.DidResume, s2.DidResume)
			}
			if c2.Version != VersionDTLS13 || c2.CipherSuite != suite {
				t.Fatalf("version %#x suite %s", c2.Version, CipherSuiteName(c2.CipherSuite))
			}
			if len(c2.PeerCertificates) == 0 || !c2.PeerCertificates[0].Equal(c1.PeerCertificates[0]) || len(c2.VerifiedChains) == 0 {
				t.Fatal("server certificate not restored on resumption")
			}
			// psk_dhe_ke: the resumed handshake still has a key exchange.
			if c2.CurveID == 0 || s2.CurveID == 0 {
				t.Fatal("resumption without (EC)DHE: psk_ke was used")
			}
			// The resumed connection issues a new ticket, which resumes too.
			c3, s3 := resume13Pair(t, cc, sc)
			if !c3.DidResume || !s3.DidResume {
				t.Fatal("third handshake did not resume")
			}
		})
	}
}

func TestResume13ClientAuth(t *testing.T) {
	checkNoGoroutineLeak(t)
	tc := certs(t)["p256"]
	cc, sc := configs13(t, "p256")
	sc.ClientAuth = tls.RequireAndVerifyClientCert
	sc.ClientCAs = tc.pool
	cc.Certificates = []tls.Certificate{tc.tls}
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	resume13Pair(t, cc, sc)
	c2, s2 := resume13Pair(t, cc, sc)
	if !c2.DidResume || !s2.DidResume {
		t.Fatal("did not resume")
	}
	if len(s2.PeerCertificates) == 0 || len(s2.VerifiedChains) == 0 {
		t.Fatal("client certificate not restored on the server")
	}
}

func TestResume13Listener(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, tc := range []struct {
		name           string
		client, server []tls.CurveID
	}{
		{"X25519", nil, nil},
		// The HelloRetryRequest asks for another group: the second
		// ClientHello's binder covers the new transcript.
		{"HRR for X25519MLKEM768", []tls.CurveID{tls.X25519, groupX25519MLKEM768}, []tls.CurveID{groupX25519MLKEM768, tls.X25519}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := configs13(t, "p256")
			cc.CurvePreferences, sc.CurvePreferences = tc.client, tc.server
			cc.ClientSessionCache = NewLRUClientSessionCache(4)
			l, states := echoServer(t, sc, nil)
			c1, _ := dialOnce(t, l, states, cc)
			if c1.DidResume {
				t.Fatal("first handshake resumed")
			}
			if cached13(cc, "dtls.test") == nil {
				t.Fatal("no ticket cached")
			}
			c2, s2 := dialOnce(t, l, states, cc)
			if !c2.DidResume || !s2.DidResume || c2.Version != VersionDTLS13 {
				t.Fatalf("did not resume over 1.3: %v %v %#x", c2.DidResume, s2.DidResume, c2.Version)
			}
			if len(c2.PeerCertificates) == 0 {
				t.Fatal("server certificate not restored")
			}
		})
	}
}

// A ticket the server cannot open (tampered, or sealed by a key it no
// longer has) gets a full handshake (RFC 8446 §4.2.11: the server ignores
// a PSK it cannot use).
func TestResume13TamperedTicket(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs13(t, "p256")
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	resume13Pair(t, cc, sc)
	cs := cached13(cc, "dtls.test")
	if cs == nil {
		t.Fatal("no ticket")
	}
	bad := *cs
	bad.tickets13 = nil // this ticket alone, not the entry's pool
	bad.ticket = append([]byte(nil), cs.ticket...)
	bad.ticket[len(bad.ticket)-1] ^= 1
	cc.ClientSessionCache.Put("dtls.test", &bad)
	c2, s2 := resume13Pair(t, cc, sc)
	if c2.DidResume || s2.DidResume {
		t.Fatal("resumed with a tampered ticket")
	}
	// The full handshake brought a fresh ticket that resumes.
	c3, _ := resume13Pair(t, cc, sc)
	if !c3.DidResume {
		t.Fatal("fresh ticket did not resume")
	}
}

// A binder that does not verify ends the handshake with decrypt_error
// (RFC 8446 §4.2.11.2: the server "MUST abort").
func TestResume13BadBinder(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs13(t, "p256")
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	resume13Pair(t, cc, sc)
	cs := cached13(cc, "dtls.test")
	if cs == nil {
		t.Fatal("no ticket")
	}
	bad := *cs
	bad.tickets13 = nil // this ticket alone, not the entry's pool
	st := *cs.state
	st.masterSecret = append([]byte(nil), st.masterSecret...)
	st.masterSecret[0] ^= 1 // the client's PSK no longer matches the ticket's
	bad.state = &st
	cc.ClientSessionCache.Put("dtls.test", &bad)
	cli, srv := connectedPair(t, cc, sc)
	defer cli.Close()
	defer srv.Close()
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cerr := cli.Handshake()
	serr := <-errc
	if serr == nil || cerr == nil {
		t.Fatalf("handshake with a bad binder: client %v, server %v", cerr, serr)
	}
	var ae AlertError
	if !errors.As(cerr, &ae) || alert(ae) != alertDecryptError {
		t.Fatalf("client error %v, want a decrypt_error alert", cerr)
	}
}

// An expired ticket is not offered by the client, and refused by the
// server if it is: a full handshake either way.
func TestResume13Expired(t *testing.T) {
	checkNoGoroutineLeak(t)
	now := time.Now()
	clock := func() time.Time { return now }
	cc, sc := configs13(t, "p256")
	cc.Time, sc.Time = clock, clock
	sc.SessionLifetime = time.Hour
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	resume13Pair(t, cc, sc)
	cs := cached13(cc, "dtls.test")
	if cs == nil {
		t.Fatal("no ticket")
	}
	if cs.lifetime > time.Hour || cs.lifetime < time.Hour-time.Second {
		t.Fatalf("ticket lifetime %v, want the server's SessionLifetime", cs.lifetime)
	}
	now = now.Add(time.Hour + time.Second)
	c2, s2 := resume13Pair(t, cc, sc)
	if c2.DidResume || s2.DidResume {
		t.Fatal("resumed an expired ticket")
	}
	// The server refuses it on its own too: a client that offers a
	// ticket past its lifetime.
	cs = cached13(cc, "dtls.test")
	stale := *cs
	stale.lifetime = 365 * 24 * time.Hour
	stale.receivedAt = now
	cc.ClientSessionCache.Put("dtls.test", &stale)
	now = now.Add(2 * time.Hour)
	c3, s3 := resume13Pair(t, cc, sc)
	if c3.DidResume || s3.DidResume {
		t.Fatal("server resumed a ticket past its SessionLifetime")
	}
}

// A cache shared by a 1.2-only and a 1.3 client: neither offers the
// other's session, and each still resumes its own version.
func TestResume13SharedCache(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc13, sc := configs13(t, "p256")
	cache := NewLRUClientSessionCache(4)
	cc13.ClientSessionCache = cache
	cc12 := cc13.Clone()
	cc12.MaxVersion = VersionDTLS12
	resume13Pair(t, cc13, sc)
	c, _ := resume13Pair(t, cc12, sc)
	if c.DidResume || c.Version != VersionDTLS12 {
		t.Fatalf("1.2 client after a 1.3 ticket: resumed %v version %#x", c.DidResume, c.Version)
	}
	c, _ = resume13Pair(t, cc12, sc)
	if !c.DidResume || c.Version != VersionDTLS12 {
		t.Fatalf("1.2 client did not resume its 1.2 session: %v %#x", c.DidResume, c.Version)
	}
	c, _ = resume13Pair(t, cc13, sc)
	if c.DidResume || c.Version != VersionDTLS13 {
		t.Fatalf("1.3 client with a 1.2 session: resumed %v version %#x", c.DidResume, c.Version)
	}
	c, _ = resume13Pair(t, cc13, sc)
	if !c.DidResume {
		t.Fatal("1.3 client did not resume its 1.3 session")
	}
}

// TestResume13TicketRetransmitted loses the server's NewSessionTicket: the
// server resends it on its timer until the client ACKs it (RFC 9147
// §5.8.4, §7), and the ticket then resumes.
func TestResume13TicketRetransmitted(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configs13(t, "p256")
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	var sconn *dropConn
	var acks atomic.Int32
	sc.Tracer = func(ev *TraceEvent) {
		// The server's first ACK is the one of the client's Finished;
		// the datagram after it is the NewSessionTicket.
		if ev.Kind == TraceACKSent && acks.Add(1) == 1 {
			sconn.drop.Store(true)
		}
	}
	cli, srv := connectedPair(t, cc, sc)
	sconn = &dropConn{Conn: srv.io.(*netConnIO).conn}
	srv.io.(*netConnIO).conn = sconn
	defer cli.Close()
	defer srv.Close()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<14)
		for {
			if _, err := srv.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for cached13(cc, "dtls.test") == nil && time.Now().Before(deadline) {
		cli.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		var buf [64]byte
		if _, err := cli.Read(buf[:]); err != nil && !isTimeout(err) {
			t.Fatalf("client Read: %v", err)
		}
	}
	if sconn.dropped.Load() != 1 {
		t.Fatalf("%d datagrams dropped, want the one NewSessionTicket", sconn.dropped.Load())
	}
	if cached13(cc, "dtls.test") == nil {
		t.Fatal("the lost NewSessionTicket was not retransmitted")
	}
	cli.Close()
	srv.Close()
	<-done // after the close, the server's Read ends with EOF or an error
	c2, s2 := resume13Pair(t, cc, sc)
	if !c2.DidResume || !s2.DidResume {
		t.Fatal("the retransmitted ticket did not resume")
	}
}

// Servers that share ticket keys (SetSessionTicketKeys, as with
// FleetSecret) resume each other's 1.3 tickets; one with other keys makes
// a full handshake.
func TestResume13SharedTicketKeys(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sa := configs13(t, "p256")
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	sb := sa.Clone()
	sc := sa.Clone()
	key := [32]byte{1, 2, 3}
	sa.SetSessionTicketKeys([][32]byte{key})
	sb.SetSessionTicketKeys([][32]byte{key})
	sc.SetSessionTicketKeys([][32]byte{{4, 5, 6}})
	resume13Pair(t, cc, sa)
	if c, s := resume13Pair(t, cc, sb); !c.DidResume || !s.DidResume {
		t.Fatal("a server with the same ticket key did not resume")
	}
	if c, s := resume13Pair(t, cc, sc); c.DidResume || s.DidResume {
		t.Fatal("a server with another ticket key resumed")
	}
}

func TestSessionState13RoundTrip(t *testing.T) {
	s := &sessionState{version: VersionDTLS13, cipherSuite: suiteTLSAES128GCMSHA256, createdAt: 7,
		masterSecret: make([]byte, 32), serverName: "dtls.test", alpn: "coap", ageAdd: 12345}
	b, err := s.marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := parseSessionState(b)
	if p == nil || p.version != VersionDTLS13 || p.ageAdd != 12345 || p.alpn != "coap" || len(p.masterSecret) != 32 {
		t.Fatalf("parsed %+v", p)
	}
	// A PSK whose length is not the suite's hash size does not parse.
	s.cipherSuite = suiteTLSAES256GCMSHA384
	if b, _ = s.marshal(); parseSessionState(b) != nil {
		t.Fatal("a 32-byte PSK parsed for a SHA-384 suite")
	}
	// A 1.2 state keeps format 2: it has no age_add.
	s12 := &sessionState{version: VersionDTLS12, cipherSuite: TLS_PSK_WITH_AES_128_CCM_8, masterSecret: make([]byte, masterSecretLen), ems: true}
	if b, _ = s12.marshal(); b[0] != 0 || b[1] != sessionStateFormat || parseSessionState(b) == nil {
		t.Fatalf("1.2 state format %x", b[:2])
	}
}

// A session made with an external PSK resumes with its ticket and keeps
// reporting the PSK identity; a server that no longer knows the identity
// makes a full handshake instead.
func TestResume13ExternalPSK(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := psk13Configs()
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	cc.ServerName = "psk.test"
	c1, _ := resume13Pair(t, cc, sc)
	if c1.DidResume {
		t.Fatal("first handshake resumed")
	}
	c2, s2 := resume13Pair(t, cc, sc)
	if !c2.DidResume || !s2.DidResume {
		t.Fatal("did not resume")
	}
	if string(s2.PSKIdentity) != string(cc.PSKIdentity) || string(c2.PSKIdentity) != string(cc.PSKIdentity) {
		t.Fatalf("PSK identity %q / %q after resumption", c2.PSKIdentity, s2.PSKIdentity)
	}
	known := sc.PSK
	sc.PSK = func(id []byte) ([]byte, error) {
		if string(id) == string(cc.PSKIdentity) {
			return nil, errors.New("revoked")
		}
		return known(id)
	}
	cc.PSK = func([]byte) ([]byte, error) { return []byte("unused: the handshake fails"), nil }
	cc.HandshakeTimeout, sc.HandshakeTimeout = 2*time.Second, 2*time.Second
	cli, srv := connectedPair(t, cc, sc)
	defer cli.Close()
	defer srv.Close()
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cli.Handshake()
	if err := <-errc; err == nil || srv.ConnectionState().DidResume {
		t.Fatalf("a revoked PSK identity resumed (server error %v)", err)
	}
}

// RFC 8446 §4.2.9: a pre_shared_key without psk_key_exchange_modes ends
// the handshake with missing_extension.
func TestPSKWithoutModes13(t *testing.T) {
	cc, sc := configs13(t, "p256")
	cli, srv := connectedPair(t, cc, sc)
	defer cli.Close()
	defer srv.Close()
	hs := &serverHandshakeState13{c: srv, suite: cipherSuite13ByID(suiteTLSAES128GCMSHA256), hello: &clientHelloMsg13{
		pskIdentities: []pskIdentity13{{label: []byte("ticket")}},
		pskBinders:    [][]byte{make([]byte, 32)},
	}}
	if err := hs.acceptPSK(); err == nil || srv.alertSent.Load() != uint32(alertMissingExtension)+1 {
		t.Fatalf("error %v, alert sent %d", err, srv.alertSent.Load())
	}
}
