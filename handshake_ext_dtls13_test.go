package dtls

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

// unitConn13 returns a client Conn for driving handshake steps by hand,
// on a socket that nobody reads; sentAlert says what it sent.
func unitConn13(t *testing.T, cfg *Config) *Conn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	raw, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := Client(raw, with13(cfg))
	t.Cleanup(func() { c.Close() })
	return c
}

// sentAlert returns the fatal alert c sent, or -1.
func sentAlert(c *Conn) int { return int(c.alertSent.Load()) - 1 }

// Raw public keys, DTLS-SRTP and Connection IDs in the DTLS 1.3
// handshake (RFC 7250, RFC 5764, RFC 9146 with RFC 9147 §9). Every test
// sets MaxVersion VersionDTLS13 on both sides, so that it tests 1.3
// whatever the default is.

// with13 returns cfg with MaxVersion VersionDTLS13.
func with13(cfg *Config) *Config {
	cfg.MaxVersion = VersionDTLS13
	return cfg
}

func TestHandshake13RawPublicKey(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, kind := range []string{"p256", "p384", "ed25519", "rsa"} {
		for _, clientAuth := range []bool{false, true} {
			name := kind
			if clientAuth {
				name += "/client-auth"
			}
			t.Run(name, func(t *testing.T) {
				serverCert, serverPub := rpkKey(t, kind)
				clientCert, clientPub := rpkKey(t, "ed25519")
				scfg := with13(&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}})
				ccfg := with13(&Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{serverPub}})
				if clientAuth {
					scfg.ClientAuth = tls.RequireAndVerifyClientCert
					scfg.PeerPublicKeys = []crypto.PublicKey{clientPub}
					ccfg.Certificates = []tls.Certificate{clientCert}
				}
				l, states := echoServer(t, scfg, nil)
				c, err := Dial("udp", l.Addr().String(), ccfg)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				exchange(t, c, "raw keys over 1.3")
				cs := c.ConnectionState()
				if cs.Version != VersionDTLS13 {
					t.Fatalf("version %#x", cs.Version)
				}
				if !publicKeysEqual(serverPub, cs.PeerPublicKey) || len(cs.PeerCertificates) != 0 {
					t.Errorf("client sees %T and %d certificates", cs.PeerPublicKey, len(cs.PeerCertificates))
				}
				ss := <-states
				if clientAuth != (ss.PeerPublicKey != nil) || clientAuth && !publicKeysEqual(clientPub, ss.PeerPublicKey) {
					t.Errorf("server sees client key %T", ss.PeerPublicKey)
				}
			})
		}
	}
}

// TestHandshake13RawPublicKeyMixed: a 1.3 server with a chain and
// RawPublicKey serves X.509 and raw-key clients; a raw-key client may
// authenticate to it with a certificate and the other way round.
func TestHandshake13RawPublicKeyMixed(t *testing.T) {
	checkNoGoroutineLeak(t)
	tc := certs(t)["p256"]
	clientTC := certs(t)["p384"]
	scfg := with13(&Config{RawPublicKey: true, Certificates: []tls.Certificate{tc.tls},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientTC.pool,
		PeerPublicKeys: []crypto.PublicKey{clientTC.tls.Leaf.PublicKey}})
	l, states := echoServer(t, scfg, nil)

	// An X.509 client with an X.509 client certificate.
	c, err := Dial("udp", l.Addr().String(), with13(&Config{RootCAs: tc.pool, ServerName: "dtls.test",
		Certificates: []tls.Certificate{clientTC.tls}}))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c, "x509")
	if cs := c.ConnectionState(); cs.Version != VersionDTLS13 || len(cs.PeerCertificates) != 1 || cs.PeerPublicKey != nil {
		t.Errorf("X.509 client: version %#x, %d certificates, raw key %T", cs.Version, len(cs.PeerCertificates), cs.PeerPublicKey)
	}
	if ss := <-states; len(ss.PeerCertificates) != 1 || ss.PeerPublicKey != nil {
		t.Errorf("server sees %d client certificates, raw key %T", len(ss.PeerCertificates), ss.PeerPublicKey)
	}
	c.Close()

	// A raw-key client checking the server's key with
	// VerifyPeerCertificate, which sees the SPKI, and sending its own
	// certificate chain: it offers only raw keys for itself, so the
	// server, which asks with ClientAuth, gets its raw key.
	var seen []byte
	rpkClient := with13(&Config{RawPublicKey: true, Certificates: []tls.Certificate{clientTC.tls},
		VerifyPeerCertificate: func(raw [][]byte, chains [][]*x509.Certificate) error {
			if len(raw) != 1 || chains != nil {
				return errors.New("unexpected arguments")
			}
			seen = raw[0]
			return nil
		}})
	c, err = Dial("udp", l.Addr().String(), rpkClient)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c, "rpk")
	cs := c.ConnectionState()
	c.Close()
	want, _ := x509.MarshalPKIXPublicKey(tc.tls.Leaf.PublicKey)
	if cs.Version != VersionDTLS13 || !bytes.Equal(seen, want) || !publicKeysEqual(cs.PeerPublicKey, tc.tls.Leaf.PublicKey) {
		t.Errorf("version %#x; VerifyPeerCertificate saw %x, want the SPKI %x", cs.Version, seen, want)
	}
	if ss := <-states; !publicKeysEqual(ss.PeerPublicKey, clientTC.tls.Leaf.PublicKey) || len(ss.PeerCertificates) != 0 {
		t.Errorf("server sees client key %T and %d certificates", ss.PeerPublicKey, len(ss.PeerCertificates))
	}
}

func TestHandshake13RawPublicKeyFailures(t *testing.T) {
	checkNoGoroutineLeak(t)
	serverCert, serverPub := rpkKey(t, "p256")
	_, otherPub := rpkKey(t, "p384")
	tc := certs(t)["p256"]
	tests := []struct {
		name    string
		client  *Config
		server  *Config
		wantErr string // in the client's error
	}{
		{"key not pinned", &Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{otherPub}},
			&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}}, "not one of PeerPublicKeys"},
		{"server without raw keys", &Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{serverPub}},
			&Config{Certificates: []tls.Certificate{tc.tls}}, "does not authenticate with a raw public key"},
		{"X.509 client, raw-key-only server", &Config{RootCAs: tc.pool, ServerName: "dtls.test"},
			&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}}, alertUnsupportedCertificate.String()},
		{"client key required, none sent", &Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{serverPub}},
			&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAnyClientCert}, alertCertificateRequired.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := echoServer(t, with13(tt.server), nil)
			c, err := Dial("udp", l.Addr().String(), with13(tt.client))
			if err == nil {
				// A client-auth failure surfaces on the first read.
				c.Write([]byte("x"))
				_, err = c.Read(make([]byte, 10))
				c.Close()
			}
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestHandshake13RawPublicKeyResumption: a 1.3 ticket made with raw keys
// resumes, reports the key, and does not resume once the key is no
// longer pinned.
func TestHandshake13RawPublicKeyResumption(t *testing.T) {
	checkNoGoroutineLeak(t)
	serverCert, serverPub := rpkKey(t, "p256")
	_, otherPub := rpkKey(t, "p384")
	scfg := with13(&Config{RawPublicKey: true, Certificates: []tls.Certificate{serverCert}})
	l, _ := echoServer(t, scfg, nil)
	cache := NewLRUClientSessionCache(4)
	ccfg := with13(&Config{RawPublicKey: true, PeerPublicKeys: []crypto.PublicKey{serverPub}, ClientSessionCache: cache})
	for i, want := range []bool{false, true} {
		c, err := Dial("udp", l.Addr().String(), ccfg)
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, c, "resume?")
		cs := c.ConnectionState()
		c.Close()
		if cs.DidResume != want || !publicKeysEqual(cs.PeerPublicKey, serverPub) {
			t.Fatalf("connection %d: resumed %v, key %T", i, cs.DidResume, cs.PeerPublicKey)
		}
	}
	// Unpinned: the cached session is not offered, the full handshake
	// fails on the key.
	unpinned := ccfg.Clone()
	unpinned.PeerPublicKeys = []crypto.PublicKey{otherPub}
	if c, err := Dial("udp", l.Addr().String(), unpinned); err == nil {
		c.Close()
		t.Fatal("a session resumed with a key that is no longer pinned")
	}
}

func TestHandshake13SRTP(t *testing.T) {
	checkNoGoroutineLeak(t)
	tests := []struct {
		name                 string
		client, server       []uint16
		clientMKI, serverMKI []byte
		wantProfile          uint16
		wantMKI              []byte
	}{
		{"80", []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, nil, nil, SRTP_AES128_CM_HMAC_SHA1_80, nil},
		{"server preference", []uint16{SRTP_AES128_CM_HMAC_SHA1_32, SRTP_AEAD_AES_128_GCM}, []uint16{SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_HMAC_SHA1_32}, nil, nil, SRTP_AEAD_AES_128_GCM, nil},
		{"MKI echoed", []uint16{SRTP_AEAD_AES_256_GCM}, []uint16{SRTP_AEAD_AES_256_GCM}, []byte{7, 7}, []byte{1}, SRTP_AEAD_AES_256_GCM, []byte{7, 7}},
		{"MKI not accepted", []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, []byte{7, 7}, nil, SRTP_AES128_CM_HMAC_SHA1_80, nil},
		{"no common profile", []uint16{SRTP_AES128_CM_HMAC_SHA1_32}, []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, nil, nil, 0, nil},
		{"server without SRTP", []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, nil, nil, nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, sc := configs13(t, "p256")
			cc.SRTPProtectionProfiles, cc.SRTPMKI = tt.client, tt.clientMKI
			sc.SRTPProtectionProfiles, sc.SRTPMKI = tt.server, tt.serverMKI
			c, s := srtpPair(t, cc, sc)
			cs, ss := c.ConnectionState(), s.ConnectionState()
			if cs.Version != VersionDTLS13 || ss.Version != VersionDTLS13 {
				t.Fatalf("versions %#x %#x", cs.Version, ss.Version)
			}
			if cs.SRTPProtectionProfile != tt.wantProfile || ss.SRTPProtectionProfile != tt.wantProfile {
				t.Fatalf("profiles %#x %#x, want %#x", cs.SRTPProtectionProfile, ss.SRTPProtectionProfile, tt.wantProfile)
			}
			ck, cerr := c.SRTPKeys()
			sk, serr := s.SRTPKeys()
			if tt.wantProfile == 0 {
				if cerr == nil || serr == nil {
					t.Fatal("SRTPKeys without a profile")
				}
				return
			}
			if cerr != nil || serr != nil {
				t.Fatal(cerr, serr)
			}
			if !bytes.Equal(ck.MKI, tt.wantMKI) || !bytes.Equal(sk.MKI, tt.wantMKI) {
				t.Errorf("MKIs %x %x, want %x", ck.MKI, sk.MKI, tt.wantMKI)
			}
			if !bytes.Equal(ck.ClientWriteKey, sk.ClientWriteKey) || !bytes.Equal(ck.ServerWriteSalt, sk.ServerWriteSalt) ||
				bytes.Equal(ck.ClientWriteKey, ck.ServerWriteKey) {
				t.Error("the two sides' SRTP keys differ, or the directions share one")
			}
			// The keys are the 1.3 exporter's (RFC 8446 §7.5 with the
			// dtls13 prefix) under RFC 5764's label.
			km, err := c.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 2*(len(ck.ClientWriteKey)+len(ck.ClientWriteSalt)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(km[:len(ck.ClientWriteKey)], ck.ClientWriteKey) {
				t.Error("SRTP keys are not the exporter's")
			}
			km2, _ := s.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, len(km))
			if !bytes.Equal(km, km2) {
				t.Error("exporters differ")
			}
		})
	}
}

// TestHandshake13SRTPClientChecks: a 1.3 server that answers use_srtp
// with a profile or MKI the client did not offer, or sends it unasked,
// fails the handshake.
func TestHandshake13SRTPClientChecks(t *testing.T) {
	checkNoGoroutineLeak(t)
	tests := []struct {
		name   string
		offer  []uint16
		mki    []byte
		ee     encryptedExtensionsMsg13
		wantOK bool
	}{
		{"ok", []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, nil, encryptedExtensionsMsg13{hasSRTP: true, srtpProtectionProfile: SRTP_AES128_CM_HMAC_SHA1_80}, true},
		{"unoffered profile", []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, nil, encryptedExtensionsMsg13{hasSRTP: true, srtpProtectionProfile: SRTP_AEAD_AES_128_GCM}, false},
		{"other MKI", []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, []byte{1}, encryptedExtensionsMsg13{hasSRTP: true, srtpProtectionProfile: SRTP_AES128_CM_HMAC_SHA1_80, srtpMKI: []byte{2}}, false},
		{"unasked", nil, nil, encryptedExtensionsMsg13{hasSRTP: true, srtpProtectionProfile: SRTP_AES128_CM_HMAC_SHA1_80}, false},
		{"unasked certificate type", nil, nil, encryptedExtensionsMsg13{hasServerCertType: true, serverCertType: certificateTypeRawPublicKey}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := unitConn13(t, &Config{SRTPProtectionProfiles: tt.offer, SRTPMKI: tt.mki, InsecureSkipVerify: true})
			hello, err := c.makeClientHello()
			if err != nil {
				t.Fatal(err)
			}
			hs := &clientHandshakeState13{c: c, hello: &clientHelloMsg13{clientHelloMsg: *hello}}
			body, err := tt.ee.marshal()
			if err != nil {
				t.Fatal(err)
			}
			ee := new(encryptedExtensionsMsg13)
			if !ee.unmarshal(body) {
				t.Fatal("EncryptedExtensions does not parse")
			}
			err = hs.checkEncryptedExtensions(ee)
			if (err == nil) != tt.wantOK {
				t.Fatalf("err = %v", err)
			}
			if tt.wantOK && hs.state.srtpProfile != tt.ee.srtpProtectionProfile {
				t.Errorf("profile %#x", hs.state.srtpProfile)
			}
		})
	}
}

// unifiedCIDs returns the CIDs of the DTLS 1.3 ciphertext records that
// start the datagrams (cidLen bytes after a first byte with the C bit),
// and how many datagrams start with a ciphertext record without one.
func unifiedCIDs(dgrams [][]byte, cidLen int) (cids [][]byte, without int) {
	for _, d := range dgrams {
		if len(d) == 0 || d[0]&uhFixedMask != uhFixedBits {
			continue
		}
		if d[0]&uhCIDBit == 0 || len(d) < 1+cidLen {
			without++
			continue
		}
		cids = append(cids, d[1:1+cidLen])
	}
	return cids, without
}

func TestHandshake13CID(t *testing.T) {
	checkNoGoroutineLeak(t)
	fixed := func(b ...byte) func() []byte { return func() []byte { return b } }
	tests := []struct {
		name                 string
		client, server       func() []byte
		wantClient, wantServ []byte // CIDs each side receives; nil: none negotiated
	}{
		{"both", fixed(1, 2, 3, 4, 5, 6), fixed(9, 8, 7, 6, 5, 4, 3, 2), []byte{1, 2, 3, 4, 5, 6}, []byte{9, 8, 7, 6, 5, 4, 3, 2}},
		{"client receives none", OnlySendCIDGenerator(), fixed(7, 7, 7, 7), []byte{}, []byte{7, 7, 7, 7}},
		{"server receives none", fixed(3, 3, 3), OnlySendCIDGenerator(), []byte{3, 3, 3}, []byte{}},
		{"server without CIDs", fixed(1, 1), nil, nil, nil},
		{"client without CIDs", nil, RandomCIDGenerator(8), nil, nil},
	}
	for _, tt := range tests {
		for _, cert := range []string{"p256", ""} {
			name := tt.name + "/cert"
			if cert == "" {
				name = tt.name + "/psk"
			}
			t.Run(name, func(t *testing.T) {
				var cc, scfg *Config
				if cert == "" {
					cc, scfg = psk13Configs()
				} else {
					cc, scfg = configs13(t, cert)
				}
				cc.ConnectionIDGenerator = tt.client
				scfg.ConnectionIDGenerator = tt.server
				l, conns := acceptOne(t, scfg)
				raw, err := net.Dial("udp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				wire := &wireConn{Conn: raw}
				c := Client(wire, cc)
				defer c.Close()
				exchange(t, c, "hello", string(bytes.Repeat([]byte("x"), 1200)), "")
				cs := c.ConnectionState()
				ss := (<-conns).ConnectionState()
				if cs.Version != VersionDTLS13 {
					t.Fatalf("version %#x", cs.Version)
				}
				if !bytes.Equal(cs.LocalConnectionID, tt.wantClient) || (cs.LocalConnectionID == nil) != (tt.wantClient == nil) ||
					!bytes.Equal(cs.RemoteConnectionID, tt.wantServ) || (cs.RemoteConnectionID == nil) != (tt.wantServ == nil) {
					t.Errorf("client CIDs: local %x remote %x", cs.LocalConnectionID, cs.RemoteConnectionID)
				}
				if !bytes.Equal(ss.LocalConnectionID, cs.RemoteConnectionID) || !bytes.Equal(ss.RemoteConnectionID, cs.LocalConnectionID) {
					t.Errorf("server CIDs: local %x remote %x", ss.LocalConnectionID, ss.RemoteConnectionID)
				}
				// On the wire: every ciphertext record carries the
				// receiver's CID exactly when it asked for a
				// non-empty one.
				wire.mu.Lock()
				defer wire.mu.Unlock()
				for dir, d := range map[string]struct {
					dgrams [][]byte
					want   []byte
				}{"sent": {wire.sent, tt.wantServ}, "received": {wire.recv, tt.wantClient}} {
					cids, without := unifiedCIDs(d.dgrams, len(d.want))
					if len(d.want) == 0 {
						if len(cids) != 0 {
							t.Errorf("%s: %d records with a CID, none negotiated", dir, len(cids))
						}
						continue
					}
					if without != 0 || len(cids) == 0 {
						t.Errorf("%s: %d records with a CID, %d without", dir, len(cids), without)
					}
					for _, cid := range cids {
						if !bytes.Equal(cid, d.want) {
							t.Errorf("%s: CID %x, want %x", dir, cid, d.want)
						}
					}
				}
			})
		}
	}
}

// TestHandshake13CIDRebinding: a 1.3 client whose outside port changes
// keeps its connection through the Listener, which routes its records
// by the CID in the unified header and follows it to the new address
// (RFC 9146 §6); a forged record with the CID moves nothing.
func TestHandshake13CIDRebinding(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, withRRC := range []bool{false, true} {
		t.Run(fmt.Sprintf("rrc=%v", withRRC), func(t *testing.T) {
			cc, scfg := configs13(t, "p256")
			scfg.ConnectionIDGenerator = RandomCIDGenerator(8)
			cc.ConnectionIDGenerator = OnlySendCIDGenerator()
			if !withRRC {
				cc.ReturnRoutabilityCheck = RRCOff
			}
			l, conns := acceptOne(t, scfg)
			nat := newNATProxy(t, l.Addr())
			c, err := Dial("udp", nat.front.LocalAddr().String(), cc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			exchange(t, c, "before")
			srv := <-conns
			if v := c.ConnectionState().Version; v != VersionDTLS13 {
				t.Fatalf("version %#x", v)
			}
			first := nat.out.Load().LocalAddr().(*net.UDPAddr)
			if !sameAddr(srv.RemoteAddr(), first) {
				t.Fatalf("server sees %v, want %v", srv.RemoteAddr(), first)
			}
			if got := srv.ConnectionState().ReturnRoutabilityCheck; got != withRRC {
				t.Fatalf("rrc negotiated: %v, want %v", got, withRRC)
			}
			second := nat.rebind()
			if withRRC {
				// RFC 9853: the echo goes to the old address until the
				// server's path_challenge to the new one is answered.
				if _, err := c.Write([]byte("after rebinding")); err != nil {
					t.Fatal(err)
				}
				readUntil(t, c, "the server to follow", func() bool { return sameAddr(srv.RemoteAddr(), second) })
			}
			exchange(t, c, "after rebinding", "and again")
			if !sameAddr(srv.RemoteAddr(), second) {
				t.Fatalf("server did not follow the client: %v, want %v", srv.RemoteAddr(), second)
			}

			// A forger on a third address knows the CID but not the keys.
			forger, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer forger.Close()
			cid := srv.ConnectionState().LocalConnectionID
			forged := append([]byte{uhFixedBits | uhCIDBit | uhSeq16Bit | uhLengthBit | 3}, cid...)
			forged = append(forged, 0, 9, 0, 40)
			forged = append(forged, make([]byte, 40)...)
			before := srv.Stats().Dropped["bad MAC"]
			forger.WriteTo(forged, l.Addr())
			waitFor(t, "the forged record's drop", func() bool { return srv.Stats().Dropped["bad MAC"] > before })
			if !sameAddr(srv.RemoteAddr(), second) {
				t.Fatalf("a forged record moved the peer to %v", srv.RemoteAddr())
			}
			// The forger replays the client's last genuine record.
			nat.mu.Lock()
			replayed := nat.lastSent
			nat.mu.Unlock()
			before = srv.Stats().Dropped["replayed"]
			forger.WriteTo(replayed, l.Addr())
			waitFor(t, "the replay's drop", func() bool { return srv.Stats().Dropped["replayed"] > before })
			if !sameAddr(srv.RemoteAddr(), second) {
				t.Fatalf("a replayed record moved the peer to %v", srv.RemoteAddr())
			}
			exchange(t, c, "still here")
		})
	}
}

// TestHandshake13CIDMisbehaving: bad connection_id extensions and CIDs
// from a peer end the handshake with the RFC's alert or are dropped.
func TestHandshake13CIDMisbehaving(t *testing.T) {
	t.Run("ServerHello CID not offered", func(t *testing.T) {
		c := unitConn13(t, &Config{InsecureSkipVerify: true})
		hs := &clientHandshakeState13{c: c, hello: &clientHelloMsg13{clientHelloMsg: clientHelloMsg{cipherSuites: []uint16{suiteTLSAES128GCMSHA256}}}}
		sh := &serverHelloMsg13{vers: VersionDTLS12, random: make([]byte, 32), cipherSuite: suiteTLSAES128GCMSHA256,
			supportedVersion: VersionDTLS13, hasConnectionID: true, connectionID: []byte{1}}
		body, _ := sh.marshal()
		sh2 := new(serverHelloMsg13)
		if !sh2.unmarshal(body) {
			t.Fatal("does not parse")
		}
		if err := hs.checkServerHelloFields(sh2); err == nil || sentAlert(c) != int(alertUnsupportedExtension) {
			t.Fatalf("err = %v, alert %d, want unsupported_extension", err, sentAlert(c))
		}
	})
	t.Run("CID in a HelloRetryRequest", func(t *testing.T) {
		c := unitConn13(t, &Config{InsecureSkipVerify: true})
		hs := &clientHandshakeState13{c: c, hello: &clientHelloMsg13{clientHelloMsg: clientHelloMsg{cipherSuites: []uint16{suiteTLSAES128GCMSHA256},
			hasConnectionID: true, connectionID: []byte{}}}}
		// A HelloRetryRequest's extensions, written by hand: the
		// marshaler does not put connection_id in one.
		body := []byte{0xfe, 0xfd}
		body = append(body, helloRetryRequestRandom...)
		body = append(body, 0, 0x13, 0x01, 0, 0, 13, 0, 43, 0, 2, 0xfe, 0xfc, 0, 54, 0, 3, 2, 1, 2)
		hrr := new(serverHelloMsg13)
		if !hrr.unmarshal(body) || !hrr.isHelloRetryRequest() || !hrr.hasConnectionID {
			t.Fatal("hand-made HelloRetryRequest does not parse")
		}
		if err := hs.checkServerHelloFields(hrr); err == nil || sentAlert(c) != int(alertUnsupportedExtension) {
			t.Fatalf("err = %v, alert %d, want unsupported_extension", err, sentAlert(c))
		}
	})
	t.Run("connection_id longer than its extension", func(t *testing.T) {
		// extension_data 0x03 0x01 0x02: a CID of three bytes with
		// two present.
		body := []byte{0xfe, 0xfd}
		body = append(body, make([]byte, 32)...)
		body = append(body, 0, 0x13, 0x01, 0, 0, 13, 0, 43, 0, 2, 0xfe, 0xfc, 0, 54, 0, 3, 3, 1, 2)
		if new(serverHelloMsg13).unmarshal(body) {
			t.Fatal("a truncated connection_id parsed")
		}
		ch := &clientHelloMsg13{clientHelloMsg: clientHelloMsg{vers: VersionDTLS12, random: make([]byte, 32),
			cipherSuites: []uint16{suiteTLSAES128GCMSHA256}, compressionMethods: []uint8{0}, hasConnectionID: true, connectionID: []byte{1, 2, 3}}}
		b, err := ch.marshal()
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, []byte{0, 54, 0, 4, 3, 1, 2, 3})
		if i < 0 {
			t.Fatal("connection_id not found")
		}
		b[i+4] = 200 // longer than the extension
		if new(clientHelloMsg13).unmarshal(b) {
			t.Fatal("a ClientHello with an overlong connection_id parsed")
		}
	})
	t.Run("record with another CID", func(t *testing.T) {
		rl := newRecordLayer(64)
		rl.setConnectionIDs([]byte{1, 2, 3, 4}, nil)
		d := []byte{uhFixedBits | uhCIDBit | uhSeq16Bit | uhLengthBit | 2, 9, 9, 9, 9, 0, 1, 0, 20}
		d = append(d, make([]byte, 20)...)
		if _, _, _, _, reason := rl.open13(d); reason != dropBadCID {
			t.Fatalf("reason %v, want bad CID", reason)
		}
	})
}
