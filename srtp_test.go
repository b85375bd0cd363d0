package dtls

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

// srtpPair runs a handshake between configs and returns both Conns.
func srtpPair(t *testing.T, cc, sc *Config) (client, server *Conn) {
	t.Helper()
	l, err := Listen("udp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan *Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- nc.(*Conn)
	}()
	c, err := Dial("udp", l.Addr().String(), cc)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case s := <-accepted:
		if s == nil {
			t.Fatal("Accept failed")
		}
		t.Cleanup(func() { s.Close() })
		return c, s
	case <-time.After(10 * time.Second):
		t.Fatal("no server connection")
	}
	return nil, nil
}

func TestSRTP(t *testing.T) {
	checkNoGoroutineLeak(t)
	tests := []struct {
		name                   string
		client, server         []uint16
		clientMKI, serverMKI   []byte
		wantProfile            uint16
		wantMKI                []byte
		wantKeyLen, wantSaltLn int
	}{
		{"both 80", []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, nil, nil, SRTP_AES128_CM_HMAC_SHA1_80, nil, 16, 14},
		{"server preference wins", []uint16{SRTP_AES128_CM_HMAC_SHA1_32, SRTP_AEAD_AES_128_GCM}, []uint16{SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_HMAC_SHA1_32}, nil, nil, SRTP_AEAD_AES_128_GCM, nil, 16, 12},
		{"AES-256-GCM", []uint16{SRTP_AEAD_AES_256_GCM}, []uint16{SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_256_GCM}, nil, nil, SRTP_AEAD_AES_256_GCM, nil, 32, 12},
		{"no common profile", []uint16{SRTP_AES128_CM_HMAC_SHA1_32}, []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, nil, nil, 0, nil, 0, 0},
		{"server without SRTP", []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, nil, nil, nil, 0, nil, 0, 0},
		{"MKI echoed", []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, []byte{1, 2, 3}, []byte{1}, SRTP_AES128_CM_HMAC_SHA1_80, []byte{1, 2, 3}, 16, 14},
		{"MKI declined", []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, []byte{1, 2, 3}, nil, SRTP_AES128_CM_HMAC_SHA1_80, nil, 16, 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, sc := configsFor(t, suiteCase{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "p256"})
			cc.MaxVersion = VersionDTLS12 // RFC 5764 in 1.2; 1.3: TestHandshake13SRTP
			cc.SRTPProtectionProfiles, cc.SRTPMKI = tt.client, tt.clientMKI
			sc.SRTPProtectionProfiles, sc.SRTPMKI = tt.server, tt.serverMKI
			c, s := srtpPair(t, cc, sc)
			if got, sgot := c.ConnectionState().SRTPProtectionProfile, s.ConnectionState().SRTPProtectionProfile; got != tt.wantProfile || sgot != tt.wantProfile {
				t.Fatalf("profile: client %#x server %#x, want %#x", got, sgot, tt.wantProfile)
			}
			ck, cerr := c.SRTPKeys()
			sk, serr := s.SRTPKeys()
			if tt.wantProfile == 0 {
				if cerr == nil || serr == nil {
					t.Fatal("SRTPKeys without a negotiated profile succeeded")
				}
				return
			}
			if cerr != nil || serr != nil {
				t.Fatalf("SRTPKeys: %v %v", cerr, serr)
			}
			if !bytes.Equal(ck.MKI, tt.wantMKI) || !bytes.Equal(sk.MKI, tt.wantMKI) {
				t.Errorf("MKI: client %x server %x, want %x", ck.MKI, sk.MKI, tt.wantMKI)
			}
			if len(ck.ClientWriteKey) != tt.wantKeyLen || len(ck.ServerWriteKey) != tt.wantKeyLen ||
				len(ck.ClientWriteSalt) != tt.wantSaltLn || len(ck.ServerWriteSalt) != tt.wantSaltLn {
				t.Errorf("lengths: %d %d %d %d", len(ck.ClientWriteKey), len(ck.ServerWriteKey), len(ck.ClientWriteSalt), len(ck.ServerWriteSalt))
			}
			if !bytes.Equal(ck.ClientWriteKey, sk.ClientWriteKey) || !bytes.Equal(ck.ServerWriteSalt, sk.ServerWriteSalt) {
				t.Error("the two sides derived different SRTP keys")
			}
			// RFC 5764 §4.2 layout: keys first, then salts.
			km, err := c.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 2*(tt.wantKeyLen+tt.wantSaltLn))
			if err != nil {
				t.Fatal(err)
			}
			joined := bytes.Join([][]byte{ck.ClientWriteKey, ck.ServerWriteKey, ck.ClientWriteSalt, ck.ServerWriteSalt}, nil)
			if !bytes.Equal(km, joined) {
				t.Errorf("SRTPKeys split\n%x\nis not the exporter's\n%x", joined, km)
			}
		})
	}
}

// TestSRTPResumption checks that a resumed session negotiates SRTP again
// and gets fresh keys from the fresh randoms.
func TestSRTPResumption(t *testing.T) {
	checkNoGoroutineLeak(t)
	cc, sc := configsFor(t, suiteCase{TLS_PSK_WITH_AES_128_CCM_8, ""})
	cc.SRTPProtectionProfiles = []uint16{SRTP_AES128_CM_HMAC_SHA1_80}
	sc.SRTPProtectionProfiles = []uint16{SRTP_AES128_CM_HMAC_SHA1_80}
	cc.ClientSessionCache = NewLRUClientSessionCache(2)
	cc.ServerName = "srtp.test" // one cache key across the listeners
	// A 1.2 PSK suite: the session is a 1.2 one (1.3 resumes through
	// tickets, TestResume13*).
	cc.MaxVersion, sc.MaxVersion = VersionDTLS12, VersionDTLS12
	c1, _ := srtpPair(t, cc, sc)
	k1, err := c1.SRTPKeys()
	if err != nil {
		t.Fatal(err)
	}
	c2, s2 := srtpPair(t, cc, sc)
	if !c2.ConnectionState().DidResume {
		t.Fatal("did not resume")
	}
	k2, err := c2.SRTPKeys()
	if err != nil {
		t.Fatal(err)
	}
	sk2, err := s2.SRTPKeys()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(k1.ClientWriteKey, k2.ClientWriteKey) || !bytes.Equal(k2.ServerWriteKey, sk2.ServerWriteKey) {
		t.Error("resumed SRTP keys are not fresh, or differ between the sides")
	}
	// A server that dropped the profile does not resume the session.
	sc2 := sc.Clone()
	sc2.SRTPProtectionProfiles = []uint16{SRTP_AEAD_AES_128_GCM}
	cc2 := cc.Clone()
	cc2.SRTPProtectionProfiles = []uint16{SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM}
	c3, _ := srtpPair(t, cc2, sc2)
	if st := c3.ConnectionState(); st.DidResume || st.SRTPProtectionProfile != SRTP_AEAD_AES_128_GCM {
		t.Errorf("session resumed across an SRTP profile change: %+v", st)
	}
}

// TestSRTPClientChecks feeds the client's check ServerHellos that break
// RFC 5764 §4.1.2.
func TestSRTPClientChecks(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, tt := range []struct {
		name    string
		profile uint16
		mki     []byte
		ok      bool
	}{
		{"offered, MKI echoed", SRTP_AES128_CM_HMAC_SHA1_80, []byte{7}, true},
		{"offered, empty MKI", SRTP_AES128_CM_HMAC_SHA1_80, nil, true},
		{"not offered", SRTP_AEAD_AES_256_GCM, nil, false},
		{"other MKI", SRTP_AES128_CM_HMAC_SHA1_80, []byte{8}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := net.Dial("udp", pc.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			c := Client(raw, &Config{InsecureSkipVerify: true})
			defer c.Close()
			hs := &clientHandshakeState{handshakeState: handshakeState{c: c, ctx: context.Background(),
				hello:       &clientHelloMsg{srtpProtectionProfiles: []uint16{SRTP_AES128_CM_HMAC_SHA1_80}, srtpMKI: []byte{7}},
				serverHello: &serverHelloMsg{hasSRTP: true, srtpProtectionProfile: tt.profile, srtpMKI: tt.mki}}}
			err = hs.processServerSRTP()
			if (err == nil) != tt.ok {
				t.Fatalf("processServerSRTP: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
