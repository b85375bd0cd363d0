package dtls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// clientOver runs Client over a connected UDP socket to l: unlike Dial,
// it leaves ServerName as the Config has it.
func clientOver(t *testing.T, l *Listener, cfg *Config) (*Conn, error) {
	t.Helper()
	raw, err := net.Dial("udp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := Client(raw, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// TestRawPublicKeyClientWithoutServerName: pinned peer keys (or
// VerifyPeerCertificate) verify the server, so a raw-key client needs no
// ServerName.
func TestRawPublicKeyClientWithoutServerName(t *testing.T) {
	checkNoGoroutineLeak(t)
	serverCert, serverPub := rpkKey(t, "p256")
	l, _ := echoServer(t, &Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}}, nil)
	for name, cfg := range map[string]*Config{
		"pinned": {RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{serverPub}},
		"callback": {RawPublicKey: true, VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pub, err := x509.ParsePKIXPublicKey(raw[0])
			if err != nil || !publicKeysEqual(serverPub, pub) {
				return fmt.Errorf("not the server's key: %v", err)
			}
			return nil
		}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := clientOver(t, l, cfg)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer c.Close()
			exchange(t, c, "no ServerName")
			if cs := c.ConnectionState(); !publicKeysEqual(serverPub, cs.PeerPublicKey) {
				t.Errorf("PeerPublicKey %v", cs.PeerPublicKey)
			}
		})
	}
	// Without any way to verify, the error says what would do.
	_, err := clientOver(t, l, &Config{RawPublicKey: true})
	if err == nil || !strings.Contains(err.Error(), "PeerPublicKeys") {
		t.Errorf("unverifiable raw-key client: %v; want an error naming PeerPublicKeys", err)
	}
	_, err = clientOver(t, l, &Config{})
	if err == nil || !strings.Contains(err.Error(), "ServerName") || !strings.Contains(err.Error(), "PeerPublicKeys") {
		t.Errorf("client with nothing to verify with: %v; want an error naming ServerName and PeerPublicKeys", err)
	}
}

// TestRawPublicKeyResumption: sessions authenticated by raw public keys
// resume, by ticket and by session ID, with client authentication by a
// raw key too, and the resumed connection reports the peer's key on both
// sides.
func TestRawPublicKeyResumption(t *testing.T) {
	checkNoGoroutineLeak(t)
	serverCert, serverPub := rpkKey(t, "p256")
	clientCert, clientPub := rpkKey(t, "ed25519")
	for _, mode := range []string{"ticket", "id"} {
		for _, clientAuth := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/client-auth=%v", mode, clientAuth), func(t *testing.T) {
				scfg := &Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}, SessionTicketsDisabled: mode == "id"}
				if mode == "id" {
					// Session IDs resume 1.2 sessions only; 1.3's
					// raw-key resumption is TestHandshake13RawPublicKeyResumption.
					scfg.MaxVersion = VersionDTLS12
				}
				ccfg := &Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{serverPub},
					ClientSessionCache: NewLRUClientSessionCache(4)}
				if clientAuth {
					scfg.ClientAuth = tls.RequireAndVerifyClientCert
					scfg.PeerPublicKeys = []crypto.PublicKey{clientPub}
					ccfg.Certificates = []tls.Certificate{clientCert}
				}
				l, states := echoServer(t, scfg, nil)
				if c, _ := dialOnce(t, l, states, ccfg); c.DidResume {
					t.Fatal("first handshake resumed")
				}
				c, s := dialOnce(t, l, states, ccfg)
				if !c.DidResume {
					t.Fatal("the raw-key session did not resume")
				}
				if !publicKeysEqual(serverPub, c.PeerPublicKey) {
					t.Errorf("resumed client reports server key %v", c.PeerPublicKey)
				}
				if clientAuth != (s.PeerPublicKey != nil) || clientAuth && !publicKeysEqual(clientPub, s.PeerPublicKey) {
					t.Errorf("resumed server reports client key %v", s.PeerPublicKey)
				}
			})
		}
	}
}

// TestRawPublicKeyResumptionRechecksPins: a raw-key session resumes only
// where the peer's key is still pinned, on either side.
func TestRawPublicKeyResumptionRechecksPins(t *testing.T) {
	checkNoGoroutineLeak(t)
	serverCert, serverPub := rpkKey(t, "p256")
	clientCert, clientPub := rpkKey(t, "ed25519")
	_, otherPub := rpkKey(t, "p384")
	keys := [][32]byte{{7}}
	server := func(pins ...crypto.PublicKey) *Config {
		c := &Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert},
			ClientAuth: tls.RequireAndVerifyClientCert, PeerPublicKeys: pins, HandshakeTimeout: 3 * time.Second}
		c.SetSessionTicketKeys(keys)
		return c
	}
	cache := NewLRUClientSessionCache(4)
	client := func(pins ...crypto.PublicKey) *Config {
		return &Config{RawPublicKey: true, PeerPublicKeys: pins, Certificates: []tls.Certificate{clientCert},
			ClientSessionCache: cache, HandshakeTimeout: 3 * time.Second}
	}

	l1, states1 := echoServer(t, server(clientPub), nil)
	dialOnce(t, l1, states1, client(serverPub))
	// Dial sets ServerName to the host, the cache key: one for every
	// Listener here, each of which opens the others' tickets.
	const key = "127.0.0.1"
	cs := cachedClientSession(t, cache, key)

	// Both sides still pin each other's key, among others: resumed.
	l2, states2 := echoServer(t, server(otherPub, clientPub), nil)
	cache.Put(key, cs)
	if c, _ := dialOnce(t, l2, states2, client(otherPub, serverPub)); !c.DidResume {
		t.Fatal("session with keys still pinned did not resume")
	}

	// The client no longer pins the server's key: it must not offer the
	// session, and the full handshake then fails on the pin.
	cache.Put(key, cs)
	if _, err := Dial("udp", l2.Addr().String(), client(otherPub)); err == nil || !strings.Contains(err.Error(), "not one of PeerPublicKeys") {
		t.Errorf("client with the server's key unpinned: %v; want the full handshake to refuse the key", err)
	}

	// The server no longer pins the client's key: the ticket is not
	// taken, and the full handshake fails on the server's pin.
	l3, _ := echoServer(t, server(otherPub), nil)
	cache.Put(key, cs)
	c, err := Dial("udp", l3.Addr().String(), client(serverPub))
	if err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("x"))
		_, err = c.Read(make([]byte, 10))
		didResume := c.ConnectionState().DidResume
		c.Close()
		if didResume {
			t.Fatal("server resumed a session whose client key it no longer pins")
		}
	}
	if err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("server with the client's key unpinned: %v; want bad_certificate from the full handshake", err)
	}
}

// TestSessionStateFormat: the session state carries the peer's raw public
// key; a state in the previous format (1, without it) does not parse, so
// an old ticket gets a full handshake, not an error.
func TestSessionStateFormat(t *testing.T) {
	_, pub := rpkKey(t, "p256")
	s := &sessionState{version: VersionDTLS12, cipherSuite: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, createdAt: 1,
		masterSecret: bytes.Repeat([]byte{1}, masterSecretLen), ems: true, peerPublicKey: pub, keyVerified: true}
	b, err := s.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got := parseSessionState(b)
	if got == nil || !publicKeysEqual(pub, got.peerPublicKey) || !got.keyVerified || got.chainsVerified {
		t.Fatalf("round trip: %+v", got)
	}
	// Format 1 was format 2 without the trailing key.
	plain := &sessionState{version: VersionDTLS12, cipherSuite: TLS_PSK_WITH_AES_128_CCM_8, createdAt: uint64(time.Now().Unix()),
		masterSecret: bytes.Repeat([]byte{1}, masterSecretLen), ems: true, pskIdentity: []byte("client1")}
	b, _ = plain.marshal()
	old := bytes.Clone(b[:len(b)-2])
	old[1] = 1
	if parseSessionState(old) != nil {
		t.Fatal("a format-1 state parsed")
	}

	cc, scfg := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	cc.MaxVersion = VersionDTLS12 // the old state is a 1.2 session, offered in a 1.2 ticket
	cc.ClientSessionCache = NewLRUClientSessionCache(4)
	l, states := echoServer(t, scfg, nil)
	dialOnce(t, l, states, cc)
	key := l.Addr().String()
	cs := cachedClientSession(t, cc.ClientSessionCache, key)
	ticket, err := scfg.sealTicket(old)
	if err != nil {
		t.Fatal(err)
	}
	cc.ClientSessionCache.Put(key, &ClientSessionState{ticket: ticket, state: cs.state, receivedAt: cs.receivedAt})
	if c, _ := dialOnce(t, l, states, cc); c.DidResume {
		t.Fatal("a format-1 ticket resumed")
	}
	if c, _ := dialOnce(t, l, states, cc); !c.DidResume {
		t.Fatal("the full handshake after the old ticket left no resumable session")
	}
}
