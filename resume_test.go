package dtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// dialOnce runs one handshake and echo against l and returns both sides'
// ConnectionState.
func dialOnce(t *testing.T, l *Listener, states chan ConnectionState, cfg *Config) (client, server ConnectionState) {
	t.Helper()
	c, err := Dial("udp", l.Addr().String(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	exchange(t, c, "resume?")
	client = c.ConnectionState()
	select {
	case server = <-states:
	case <-time.After(10 * time.Second):
		t.Fatal("no server state")
	}
	ck, err := c.ExportKeyingMaterial("EXPERIMENTAL resume", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := server.ExportKeyingMaterial("EXPERIMENTAL resume", nil, 32)
	if err != nil || !bytes.Equal(ck, sk) {
		t.Fatalf("exporters differ: %x %x %v", ck, sk, err)
	}
	if client.DidResume != server.DidResume {
		t.Fatalf("client DidResume %v, server %v", client.DidResume, server.DidResume)
	}
	return client, server
}

func TestResumption(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, sc := range []suiteCase{{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"}, {TLS_PSK_WITH_AES_128_CCM_8, ""}, {ecdhePSKSuite(), ""}} {
		if sc.suite == 0 {
			continue
		}
		for _, mode := range []string{"ticket", "id"} {
			t.Run(fmt.Sprintf("%s/%s", CipherSuiteName(sc.suite), mode), func(t *testing.T) {
				cc, scfg := configsFor(t, sc)
				// 1.2 session IDs and RFC 5077 tickets; 1.3's
				// tickets are resume_dtls13_test.go's.
				cc.MaxVersion = VersionDTLS12
				if mode == "id" {
					scfg.SessionTicketsDisabled = true
				}
				cc.ClientSessionCache = NewLRUClientSessionCache(4)
				l, states := echoServer(t, scfg, nil)
				c1, _ := dialOnce(t, l, states, cc)
				if c1.DidResume {
					t.Fatal("first handshake resumed")
				}
				for i := 0; i < 2; i++ {
					c2, s2 := dialOnce(t, l, states, cc)
					if !c2.DidResume {
						t.Fatalf("handshake %d did not resume", i+2)
					}
					if c2.CipherSuite != sc.suite || !c2.ExtendedMasterSecret || !s2.ExtendedMasterSecret {
						t.Errorf("resumed state: %+v", c2)
					}
					if sc.cert != "" && (len(c2.PeerCertificates) != 1 || len(c2.VerifiedChains) != 1) {
						t.Errorf("resumed client lost the server's certificate: %+v", c2)
					}
					if sc.cert == "" && (string(c2.PSKIdentity) != "client1" || string(s2.PSKIdentity) != "client1") {
						t.Errorf("resumed PSK identity: client %q server %q", c2.PSKIdentity, s2.PSKIdentity)
					}
				}
			})
		}
	}
}

// ecdhePSKSuite picks an ECDHE_PSK
// suite if the library has one, so that PSK resumption is covered with
// and without ECDHE.
func ecdhePSKSuite() uint16 {
	for _, s := range cipherSuites {
		if s.kx == kxECDHEPSK {
			return s.id
		}
	}
	return 0
}

// cachedClientSession returns the session cached under key.
func cachedClientSession(t *testing.T, cache ClientSessionCache, key string) *ClientSessionState {
	t.Helper()
	cs, ok := cache.Get(key)
	if !ok || cs == nil {
		t.Fatalf("no session cached under %q", key)
	}
	return cs
}

// TestResumptionTicketKeyRotation: written for 1.2 (RFC 5077 §3.3: a
// ticket under an old key is renewed), run in both versions, since 1.3's
// tickets are sealed under the same keys.
func TestResumptionTicketKeyRotation(t *testing.T) {
	checkNoGoroutineLeak(t)
	inBothVersions(t, testResumptionTicketKeyRotation)
}

func testResumptionTicketKeyRotation(t *testing.T, vers uint16) {
	cc, scfg := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	cc.MaxVersion = vers
	k1, k2, k3 := [32]byte{1}, [32]byte{2}, [32]byte{3}
	scfg.SetSessionTicketKeys([][32]byte{k1})
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	l, states := echoServer(t, scfg, nil)
	if c, _ := dialOnce(t, l, states, cc); c.DidResume {
		t.Fatal("first handshake resumed")
	}
	t1 := cachedClientSession(t, cc.ClientSessionCache, "dtls.test").ticket

	// A new key in front: the old ticket still opens, and is renewed
	// under the new key.
	scfg.SetSessionTicketKeys([][32]byte{k2, k1})
	if c, _ := dialOnce(t, l, states, cc); !c.DidResume {
		t.Fatal("ticket under the second key did not resume")
	}
	cs := cachedClientSession(t, cc.ClientSessionCache, "dtls.test")
	k2name := newTicketKey(k2, time.Time{}).name
	if bytes.Equal(cs.ticket, t1) || !bytes.Equal(cs.ticket[:ticketKeyNameLen], k2name[:]) {
		t.Fatal("ticket sealed with an old key was not renewed under the new key")
	}
	if c, _ := dialOnce(t, l, states, cc); !c.DidResume {
		t.Fatal("renewed ticket did not resume")
	}

	// The old ticket under a removed key: full handshake.
	scfg.SetSessionTicketKeys([][32]byte{k3, k2})
	cc.ClientSessionCache.Put("dtls.test", &ClientSessionState{ticket: t1, state: cs.state, receivedAt: cs.receivedAt})
	if c, _ := dialOnce(t, l, states, cc); c.DidResume {
		t.Fatal("ticket under a removed key resumed")
	}
	if c, _ := dialOnce(t, l, states, cc); !c.DidResume {
		t.Fatal("the ticket of the fallback handshake did not resume")
	}
}

func TestResumptionAutomaticTicketKeys(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cfg := &Config{Time: clock}
	k0, _ := cfg.ticketKeys(clock())
	ticket, err := cfg.sealTicket([]byte("state"))
	if err != nil {
		t.Fatal(err)
	}
	advance(ticketKeyRotation + time.Minute)
	k1, _ := cfg.ticketKeys(clock())
	if k1[0].name == k0[0].name || len(k1) != 2 {
		t.Fatalf("automatic key did not rotate: %d keys", len(k1))
	}
	if plain, newest := cfg.openTicket(ticket); string(plain) != "state" || newest {
		t.Fatalf("ticket under the previous automatic key: %q newest=%v", plain, newest)
	}
	advance(ticketKeyRotation + defaultSessionLifetime)
	if plain, _ := cfg.openTicket(ticket); plain != nil {
		t.Fatal("ticket opened after its key's lifetime")
	}
}

func TestResumptionTamperedTicket(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, scfg := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	cc.MaxVersion = VersionDTLS12 // an RFC 5077 ticket; 1.3: TestResume13TamperedTicket
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	l, states := echoServer(t, scfg, nil)
	dialOnce(t, l, states, cc)
	key := l.Addr().String()
	cs := cachedClientSession(t, cc.ClientSessionCache, key)
	for _, i := range []int{0, ticketKeyNameLen + 1, len(cs.ticket) - 1} {
		bad := bytes.Clone(cs.ticket)
		bad[i] ^= 0x40
		cc.ClientSessionCache.Put(key, &ClientSessionState{ticket: bad, state: cs.state, receivedAt: cs.receivedAt})
		if c, _ := dialOnce(t, l, states, cc); c.DidResume {
			t.Fatalf("ticket tampered at byte %d resumed", i)
		}
	}
	// A truncated ticket too.
	cc.ClientSessionCache.Put(key, &ClientSessionState{ticket: cs.ticket[:20], state: cs.state, receivedAt: cs.receivedAt})
	if c, _ := dialOnce(t, l, states, cc); c.DidResume {
		t.Fatal("truncated ticket resumed")
	}
}

// TestResumptionClientAuth checks that resumption never skips client
// authentication (pion CVE-2026-135389/135390).
func TestResumptionClientAuth(t *testing.T) {
	checkNoGoroutineLeak(t)
	p256, rsaCert := certs(t)["p256"], certs(t)["rsa"]
	keys := [][32]byte{{9}}
	open := &Config{Certificates: []tls.Certificate{p256.tls}}
	open.SetSessionTicketKeys(keys)
	strict := &Config{Certificates: []tls.Certificate{p256.tls}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: rsaCert.pool}
	strict.SetSessionTicketKeys(keys)
	lOpen, sOpen := echoServer(t, open, nil)
	lStrict, sStrict := echoServer(t, strict, nil)

	// Session IDs are DTLS 1.2's; tickets are tried in both versions.
	for _, m := range []struct {
		mode string
		vers uint16
	}{{"ticket", VersionDTLS12}, {"ticket", VersionDTLS13}, {"id", VersionDTLS12}} {
		mode := m.mode
		t.Run(mode+"/"+versionName(m.vers), func(t *testing.T) {
			cache := NewLRUClientSessionCache(4)
			noCert := &Config{RootCAs: p256.pool, ServerName: "dtls.test", ClientSessionCache: cache, HandshakeTimeout: 3 * time.Second, MaxVersion: m.vers}
			dialOnce(t, lOpen, sOpen, noCert)
			if mode == "id" {
				// Both servers share one session cache, as clones of
				// a Config do: the strictest sharing possible.
				strict2 := strict.Clone()
				strict2.resumption = open.resumptionState()
				strict2.SessionTicketsDisabled = true
				open2 := open.Clone()
				open2.SessionTicketsDisabled = true
				lo, so := echoServer(t, open2, nil)
				ls, _ := echoServer(t, strict2, nil)
				cache2 := NewLRUClientSessionCache(4)
				cfg := noCert.Clone()
				cfg.ClientSessionCache = cache2
				dialOnce(t, lo, so, cfg)
				if cs, _ := cache2.Get("dtls.test"); cs == nil || cs.sessionID == nil {
					t.Fatal("no session ID cached")
				}
				c, err := Dial("udp", ls.Addr().String(), cfg)
				if err == nil {
					c.Close()
					t.Fatal("session without a client certificate resumed on a server that requires one")
				}
				return
			}
			// The ticket of a connection without a client certificate
			// does not open the door of the strict server: the full
			// handshake it falls back to fails for want of a
			// certificate.
			c, err := Dial("udp", lStrict.Addr().String(), noCert)
			if err == nil && m.vers == VersionDTLS13 {
				// A 1.3 client's handshake ends with its own
				// Finished: it must not have resumed, and the
				// server's certificate_required alert ends it.
				if c.ConnectionState().DidResume {
					c.Close()
					t.Fatal("session without a client certificate resumed on a server that requires one")
				}
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				_, err = c.Read(make([]byte, 10))
				if !errors.Is(err, AlertError(alertCertificateRequired)) {
					t.Errorf("1.3 full handshake without a certificate: %v, want certificate_required", err)
				}
			}
			if err == nil {
				c.Close()
				t.Fatal("session without a client certificate resumed on a server that requires one")
			}
			// With a certificate: a full handshake, then resumption
			// that keeps the client's certificate, in the subtest's
			// version (this half used to run 1.3 in both).
			cache2 := NewLRUClientSessionCache(4)
			withCert := &Config{RootCAs: p256.pool, ServerName: "dtls.test", Certificates: []tls.Certificate{rsaCert.tls}, ClientSessionCache: cache2, MaxVersion: m.vers}
			dialOnce(t, lStrict, sStrict, withCert)
			cs, ss := dialOnce(t, lStrict, sStrict, withCert)
			if !cs.DidResume {
				t.Fatal("session with a client certificate did not resume")
			}
			if len(ss.PeerCertificates) != 1 || len(ss.VerifiedChains) != 1 {
				t.Errorf("resumed server lost the client certificate: %+v", ss)
			}
		})
	}
}

// TestResumptionRefused covers sessions a server must not resume: another
// server name, a suite it no longer enables. Each falls back to a full
// handshake.
func TestResumptionRefused(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, scfg := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	cc.CipherSuites = []uint16{TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_GCM_SHA256}
	scfg.CipherSuites = []uint16{TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_GCM_SHA256}
	cc.MaxVersion = VersionDTLS12 // 1.2 suites; 1.3: TestResume13* (resume_dtls13_test.go)
	scfg.SetSessionTicketKeys([][32]byte{{7}})
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	cc.ServerName = "a.test"
	l, states := echoServer(t, scfg, nil)
	dialOnce(t, l, states, cc)
	if c, _ := dialOnce(t, l, states, cc); !c.DidResume {
		t.Fatal("did not resume")
	}

	// The ticket of a.test presented for b.test.
	cs := cachedClientSession(t, cc.ClientSessionCache, "a.test")
	st := *cs.state
	st.serverName = "b.test"
	cc.ClientSessionCache.Put("b.test", &ClientSessionState{ticket: cs.ticket, state: &st, receivedAt: cs.receivedAt})
	cb := cc.Clone()
	cb.ServerName = "b.test"
	if c, _ := dialOnce(t, l, states, cb); c.DidResume {
		t.Fatal("ticket for a.test resumed for b.test")
	}

	// A server sharing the keys that no longer enables the suite.
	s2 := scfg.Clone()
	s2.resumption = nil
	s2.SetSessionTicketKeys([][32]byte{{7}})
	s2.CipherSuites = []uint16{TLS_PSK_WITH_AES_128_GCM_SHA256}
	l2, states2 := echoServer(t, s2, nil)
	c, _ := dialOnce(t, l2, states2, cc)
	if c.DidResume || c.CipherSuite != TLS_PSK_WITH_AES_128_GCM_SHA256 {
		t.Fatalf("resumed a session whose suite the server disabled: %+v", c)
	}

	// An expired session is not offered, and not accepted.
	cs = cachedClientSession(t, cc.ClientSessionCache, "a.test")
	old := *cs.state
	old.createdAt -= uint64(defaultSessionLifetime / time.Second)
	cc.ClientSessionCache.Put("a.test", &ClientSessionState{ticket: cs.ticket, state: &old, receivedAt: cs.receivedAt})
	if c, _ := dialOnce(t, l, states, cc); c.DidResume {
		t.Fatal("expired session resumed")
	}
}

func TestResumptionSessionState(t *testing.T) {
	p256 := certs(t)["p256"]
	s := &sessionState{
		version: VersionDTLS12, cipherSuite: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, createdAt: 12345,
		masterSecret: bytes.Repeat([]byte{7}, masterSecretLen), ems: true, serverName: "dtls.test",
		peerCertificates: []*x509.Certificate{p256.tls.Leaf}, verifiedChains: [][]*x509.Certificate{{p256.tls.Leaf}},
		pskIdentity: []byte("id"), alpn: "h2", srtpProfile: SRTP_AEAD_AES_128_GCM, clientAuth: tls.RequireAndVerifyClientCert,
	}
	b, err := s.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got := parseSessionState(b)
	if got == nil {
		t.Fatal("parse failed")
	}
	b2, _ := got.marshal()
	if !bytes.Equal(b, b2) || got.serverName != s.serverName || got.alpn != "h2" || !got.ems || got.clientAuth != s.clientAuth {
		t.Fatalf("round trip differs: %+v", got)
	}
	for i := range b {
		if parseSessionState(b[:i]) != nil {
			t.Fatalf("truncated state (%d bytes) parsed", i)
		}
	}
	if parseSessionState(append(bytes.Clone(b), 0)) != nil {
		t.Fatal("state with trailing bytes parsed")
	}
}

func TestServerSessionCacheBounded(t *testing.T) {
	cfg := &Config{}
	now := time.Now()
	s := &sessionState{version: VersionDTLS12, ems: true, createdAt: uint64(now.Unix())}
	for i := 0; i < defaultServerSessions+10; i++ {
		cfg.cacheSession([]byte(fmt.Sprint(i)), s)
	}
	r := cfg.resumptionState()
	if r.lru.Len() != defaultServerSessions || len(r.sessions) != defaultServerSessions {
		t.Fatalf("cache holds %d/%d sessions, bound %d", r.lru.Len(), len(r.sessions), defaultServerSessions)
	}
	if cfg.cachedSessionFor([]byte("0"), now) != nil {
		t.Fatal("least recently used session not evicted")
	}
	if cfg.cachedSessionFor([]byte(fmt.Sprint(defaultServerSessions+9)), now) == nil {
		t.Fatal("newest session missing")
	}
	if cfg.cachedSessionFor([]byte(fmt.Sprint(defaultServerSessions+9)), now.Add(defaultSessionLifetime)) != nil {
		t.Fatal("expired session returned")
	}
}

// TestServerSessionCacheConfigured: Config.SessionCacheSize and
// SessionLifetime replace the defaults of the session ID cache, the
// expiry of sessions and the ticket lifetime hint, and the automatic
// ticket keys last as long as the sessions they seal.
func TestServerSessionCacheConfigured(t *testing.T) {
	now := time.Now()
	cfg := &Config{SessionCacheSize: 10, SessionLifetime: time.Hour, Time: func() time.Time { return now }}
	s := &sessionState{version: VersionDTLS12, ems: true, createdAt: uint64(now.Unix())}
	for i := range 15 {
		cfg.cacheSession([]byte(fmt.Sprint(i)), s)
	}
	if r := cfg.resumptionState(); r.lru.Len() != 10 {
		t.Fatalf("cache holds %d sessions, want SessionCacheSize 10", r.lru.Len())
	}
	if cfg.cachedSessionFor([]byte("14"), now.Add(59*time.Minute)) == nil {
		t.Fatal("a session within SessionLifetime was not found")
	}
	if cfg.cachedSessionFor([]byte("14"), now.Add(time.Hour)) != nil {
		t.Fatal("a session past SessionLifetime was returned")
	}
	if got := (&Config{SessionLifetime: 30 * 24 * time.Hour}).sessionLifetime(); got != maxSessionLifetime {
		t.Errorf("SessionLifetime of 30 days gives %v, want the %v bound", got, maxSessionLifetime)
	}

	ticket, err := cfg.sealTicket([]byte("state"))
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(ticketKeyRotation + 59*time.Minute)
	if plain, newest := cfg.openTicket(ticket); string(plain) != "state" || newest {
		t.Fatalf("a ticket within the previous key's lifetime: %q, newest %v", plain, newest)
	}
	// Keys are pruned when the next one is made; by then the first is
	// past its rotation plus SessionLifetime. (A session in a ticket
	// expires by its own creation time in any case.)
	now = now.Add(ticketKeyRotation)
	if plain, _ := cfg.openTicket(ticket); plain != nil {
		t.Fatal("a ticket opened after its key's rotation plus SessionLifetime")
	}

	// The hint a server sends: the 1.2 NewSessionTicket's
	// ticket_lifetime_hint (RFC 5077 §3.3) and the 1.3 NewSessionTicket's
	// ticket_lifetime (RFC 8446 §4.6.1).
	inBothVersions(t, testSessionLifetimeHint)
}

func testSessionLifetimeHint(t *testing.T, vers uint16) {
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	cc.MaxVersion = vers
	sc.SessionLifetime = 2 * time.Hour
	var hint uint32
	l, _ := echoServer(t, sc, nil)
	cache := &hintCache{ClientSessionCache: NewLRUClientSessionCache(1)}
	cc.ClientSessionCache = cache
	c, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c, "hello")
	c.Close()
	if cs := cache.last; cs == nil {
		t.Fatal("no session cached")
	} else {
		hint = uint32(cs.lifetime / time.Second)
	}
	if hint == 0 || hint > 2*3600 || hint < 2*3600-60 {
		t.Errorf("ticket lifetime hint %d s, want about SessionLifetime (7200 s)", hint)
	}
}

// hintCache remembers the last session put in it.
type hintCache struct {
	ClientSessionCache
	last *ClientSessionState
}

func (h *hintCache) Put(key string, cs *ClientSessionState) {
	h.last = cs
	h.ClientSessionCache.Put(key, cs)
}

func TestResumptionLossy(t *testing.T) {
	checkNoGoroutineLeak(t)
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			cc, scfg := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
			// The 1.2 abbreviated handshake, where the server's flight
			// carries its Finished first. 1.3 resumption over a lossy
			// link has no test of its own yet.
			cc.MaxVersion = VersionDTLS12
			cc.ClientSessionCache = NewLRUClientSessionCache(4)
			cc.RetransmitTimeout, scfg.RetransmitTimeout = 20*time.Millisecond, 20*time.Millisecond
			cc.HandshakeTimeout, scfg.HandshakeTimeout = 20*time.Second, 20*time.Second
			raw, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			spc := &lossyPacketConn{PacketConn: raw, rng: mrand.New(mrand.NewPCG(seed, 1)), loss: 0.3, dup: 0.1, reorder: 0.1}
			l, states := echoServer(t, scfg, spc)
			// A clean full handshake first, then lossy resumptions.
			spc.mu.Lock()
			spc.loss, spc.reorder, spc.dup = 0, 0, 0
			spc.mu.Unlock()
			dialOnce(t, l, states, cc)
			spc.mu.Lock()
			spc.loss, spc.reorder, spc.dup = 0.3, 0.1, 0.1
			spc.mu.Unlock()
			for i := 0; i < 3; i++ {
				uc, err := net.Dial("udp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				cpc := &lossyPacketConn{rng: mrand.New(mrand.NewPCG(seed, uint64(10+i))), loss: 0.3, dup: 0.1, reorder: 0.1}
				cpc.PacketConn = packetConnOf{uc}
				c := Client(&lossyConn{Conn: uc, pc: cpc}, cc)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err = c.HandshakeContext(ctx)
				cancel()
				if err != nil {
					c.Close()
					t.Fatalf("resumption over a lossy link: %v", err)
				}
				if !c.ConnectionState().DidResume {
					t.Errorf("handshake %d over the lossy link did not resume", i)
				}
				// The server finishes once our final flight gets
				// through; reading answers its retransmissions.
				for {
					c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
					c.Write([]byte("x"))
					var buf [16]byte
					if _, err := c.Read(buf[:]); err == nil {
						break
					}
				}
				c.Close()
				<-states
			}
		})
	}
}

func BenchmarkHandshakeResumed(b *testing.B) {
	tc := certs(b)["p256"]
	l, err := Listen("udp", "127.0.0.1:0", &Config{Certificates: []tls.Certificate{tc.tls}, CipherSuites: []uint16{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// DTLS 1.2 (the server's suite), an RFC 5077 ticket; 1.3 resumption has
	// no benchmark of its own.
	cfg := &Config{RootCAs: tc.pool, ServerName: "dtls.test", ClientSessionCache: NewLRUClientSessionCache(1), MaxVersion: VersionDTLS12}
	c, err := Dial("udp", l.Addr().String(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	c.Close()
	b.ReportAllocs()
	for b.Loop() {
		c, err := Dial("udp", l.Addr().String(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if !c.ConnectionState().DidResume {
			b.Fatal("did not resume")
		}
		c.Close()
	}
}

// FuzzParseSessionState: whatever a ticket decrypts to, parsing neither
// panics nor accepts what marshal would not reproduce.
func FuzzParseSessionState(f *testing.F) {
	s := &sessionState{version: VersionDTLS12, cipherSuite: TLS_PSK_WITH_AES_128_CCM_8, createdAt: 1,
		masterSecret: bytes.Repeat([]byte{1}, masterSecretLen), ems: true, serverName: "x", pskIdentity: []byte("id")}
	b, _ := s.marshal()
	f.Add(b)
	_, pub := rpkKey(f, "p256")
	s.peerPublicKey, s.keyVerified = pub, true
	b, _ = s.marshal()
	f.Add(b)
	// A DTLS 1.3 state (format 3: resumption PSK, age_add).
	s13 := &sessionState{version: VersionDTLS13, cipherSuite: suiteTLSAES256GCMSHA384, createdAt: 1,
		masterSecret: bytes.Repeat([]byte{2}, 48), serverName: "x", alpn: "coap", ageAdd: 0xdeadbeef}
	b, _ = s13.marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := parseSessionState(data)
		if s == nil {
			return
		}
		b, err := s.marshal()
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("parsed state does not marshal back: %v", err)
		}
	})
}

// TestResumptionTicketLargerThanMTU: a ticket is offered even when it
// makes the ClientHello span datagrams (it is then fragmented); the
// client notes that, to fall back if the server does not answer.
func TestResumptionTicketLargerThanMTU(t *testing.T) {
	cc, _ := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	cc.MTU = 400
	cc.ServerName = "big.test"
	cc.ClientSessionCache = NewLRUClientSessionCache(1)
	st := &sessionState{isClient: true, version: VersionDTLS12, cipherSuite: TLS_PSK_WITH_AES_128_CCM_8, createdAt: uint64(time.Now().Unix()),
		masterSecret: make([]byte, masterSecretLen), ems: true, serverName: "big.test", pskIdentity: []byte("client1")}
	for _, n := range []int{100, 350} {
		cc.ClientSessionCache.Put("big.test", &ClientSessionState{ticket: make([]byte, n), state: st, receivedAt: time.Now()})
		raw, err := net.Dial("udp", "127.0.0.1:9")
		if err != nil {
			t.Fatal(err)
		}
		c := Client(raw, cc)
		hello, err := c.makeClientHello()
		if err != nil {
			t.Fatal(err)
		}
		hs := &clientHandshakeState{handshakeState: handshakeState{c: c, hello: hello}}
		if err := hs.loadSession(); err != nil {
			t.Fatal(err)
		}
		if hs.session == nil || len(hello.sessionTicket) != n {
			t.Errorf("%d-byte ticket at MTU 400: not offered", n)
		}
		if spans := hs.ticketSpansDatagrams(); spans != (n == 350) {
			t.Errorf("%d-byte ticket at MTU 400: spans datagrams %v", n, spans)
		}
		c.Close()
	}
}

// TestResumptionWithConnectionID checks that the abbreviated handshake
// negotiates Connection IDs like the full one: the CID is per connection,
// not part of the session. Written for 1.2 (RFC 9146), run in both.
func TestResumptionWithConnectionID(t *testing.T) {
	checkNoGoroutineLeak(t)
	inBothVersions(t, testResumptionWithConnectionID)
}

func testResumptionWithConnectionID(t *testing.T, vers uint16) {
	cc, scfg := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
	cc.MaxVersion = vers
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	cc.ConnectionIDGenerator = RandomCIDGenerator(6)
	scfg.ConnectionIDGenerator = RandomCIDGenerator(8)
	l, states := echoServer(t, scfg, nil)
	c1, _ := dialOnce(t, l, states, cc)
	c2, s2 := dialOnce(t, l, states, cc)
	if c1.DidResume || !c2.DidResume {
		t.Fatalf("DidResume: first %v, second %v", c1.DidResume, c2.DidResume)
	}
	for _, st := range []ConnectionState{c1, c2} {
		if len(st.LocalConnectionID) != 6 || len(st.RemoteConnectionID) != 8 {
			t.Errorf("client CIDs: local %x remote %x", st.LocalConnectionID, st.RemoteConnectionID)
		}
	}
	if len(s2.LocalConnectionID) != 8 || len(s2.RemoteConnectionID) != 6 {
		t.Errorf("resumed server CIDs: local %x remote %x", s2.LocalConnectionID, s2.RemoteConnectionID)
	}
	if bytes.Equal(c1.RemoteConnectionID, c2.RemoteConnectionID) {
		t.Error("the server handed out the same CID twice")
	}
}
