package dtls

import (
	"net"
	"testing"
	"time"
)

// Misbehaving DTLS 1.3 servers, scripted over loopback UDP: each row
// answers our client's ClientHellos with crafted hellos and wants the
// alert RFC 8446 names (sent by our client, and in its error).
func TestMisbehaving13Server(t *testing.T) {
	for _, tc := range []struct {
		name string
		// answer returns the hello (ServerHello-type body) to send for
		// the n-th ClientHello (0-based) whose body is ch, or nil to
		// stay silent.
		answer func(n int, ch *clientHelloMsg13) *serverHelloMsg13
		want   alert
	}{
		{"second HelloRetryRequest", func(n int, ch *clientHelloMsg13) *serverHelloMsg13 {
			return helloRetryRequest13(hrrParams{suite: suiteTLSAES128GCMSHA256}, []byte{byte(n + 1), 2, 3})
		}, alertUnexpectedMessage},
		{"HelloRetryRequest that changes nothing", func(n int, ch *clientHelloMsg13) *serverHelloMsg13 {
			return helloRetryRequest13(hrrParams{suite: suiteTLSAES128GCMSHA256}, nil)
		}, alertIllegalParameter},
		{"HelloRetryRequest for the group we sent", func(n int, ch *clientHelloMsg13) *serverHelloMsg13 {
			return helloRetryRequest13(hrrParams{suite: suiteTLSAES128GCMSHA256, group: ch.keyShares[0].group, askedGroup: true}, nil)
		}, alertIllegalParameter},
		{"HelloRetryRequest for a group we did not offer", func(n int, ch *clientHelloMsg13) *serverHelloMsg13 {
			return helloRetryRequest13(hrrParams{suite: suiteTLSAES128GCMSHA256, group: groupSecp384r1 + 100, askedGroup: true}, nil)
		}, alertIllegalParameter},
		{"suite changed after the HelloRetryRequest", func(n int, ch *clientHelloMsg13) *serverHelloMsg13 {
			if n == 0 {
				return helloRetryRequest13(hrrParams{suite: suiteTLSAES128GCMSHA256}, []byte{1})
			}
			return &serverHelloMsg13{vers: VersionDTLS12, random: make([]byte, randomLen), cipherSuite: suiteTLSChaCha20Poly1305SHA256,
				supportedVersion: VersionDTLS13, serverShare: ch.keyShares[0]}
		}, alertIllegalParameter},
		{"ServerHello with a suite we did not offer", func(n int, ch *clientHelloMsg13) *serverHelloMsg13 {
			return &serverHelloMsg13{vers: VersionDTLS12, random: make([]byte, randomLen), cipherSuite: 0x1306,
				supportedVersion: VersionDTLS13, serverShare: ch.keyShares[0]}
		}, alertIllegalParameter},
		{"ServerHello echoing the session id", func(n int, ch *clientHelloMsg13) *serverHelloMsg13 {
			return &serverHelloMsg13{vers: VersionDTLS12, random: make([]byte, randomLen), sessionIDEcho: []byte{1}, cipherSuite: suiteTLSAES128GCMSHA256,
				supportedVersion: VersionDTLS13, serverShare: ch.keyShares[0]}
		}, alertIllegalParameter},
		{"ServerHello share for another group", func(n int, ch *clientHelloMsg13) *serverHelloMsg13 {
			return &serverHelloMsg13{vers: VersionDTLS12, random: make([]byte, randomLen), cipherSuite: suiteTLSAES128GCMSHA256,
				supportedVersion: VersionDTLS13, serverShare: keyShare13{group: groupSecp256r1, data: make([]byte, 65)}}
		}, alertIllegalParameter},
		{"ServerHello selecting a PSK we did not offer", func(n int, ch *clientHelloMsg13) *serverHelloMsg13 {
			return &serverHelloMsg13{vers: VersionDTLS12, random: make([]byte, randomLen), cipherSuite: suiteTLSAES128GCMSHA256,
				supportedVersion: VersionDTLS13, serverShare: ch.keyShares[0], hasSelectedIdentity: true}
		}, alertUnsupportedExtension},
		{"ServerHello with a connection_id we did not offer", func(n int, ch *clientHelloMsg13) *serverHelloMsg13 {
			return &serverHelloMsg13{vers: VersionDTLS12, random: make([]byte, randomLen), cipherSuite: suiteTLSAES128GCMSHA256,
				supportedVersion: VersionDTLS13, serverShare: ch.keyShares[0], hasConnectionID: true, connectionID: []byte{1, 2, 3, 4}}
		}, alertUnsupportedExtension},
		{"invalid X25519 share", func(n int, ch *clientHelloMsg13) *serverHelloMsg13 {
			return &serverHelloMsg13{vers: VersionDTLS12, random: make([]byte, randomLen), cipherSuite: suiteTLSAES128GCMSHA256,
				supportedVersion: VersionDTLS13, serverShare: keyShare13{group: ch.keyShares[0].group, data: make([]byte, 32)}}
		}, alertIllegalParameter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			alerts := make(chan alert, 4)
			go func() {
				buf := make([]byte, 65536)
				seq := uint64(0)
				for n := 0; n < 4; n++ {
					pc.SetReadDeadline(time.Now().Add(5 * time.Second))
					m, from, err := pc.ReadFromUDP(buf)
					if err != nil {
						return
					}
					hdr, body, _, reason := nextRecord(buf[:m])
					if reason != dropNone {
						continue
					}
					if hdr.typ == recordTypeAlert && len(body) == 2 {
						alerts <- alert(body[1])
						return
					}
					var h handshakeHeader
					ch := new(clientHelloMsg13)
					if hdr.typ != recordTypeHandshake || !h.unmarshal(body) || h.typ != typeClientHello || !ch.unmarshal(body[handshakeHeaderLen:]) {
						continue
					}
					sh := tc.answer(int(h.messageSeq), ch)
					shBody, err := sh.marshal()
					if err != nil {
						t.Error(err)
						return
					}
					hh := handshakeHeader{typ: typeServerHello, length: uint32(len(shBody)), messageSeq: h.messageSeq, fragmentLength: uint32(len(shBody))}
					d := appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 0, seq, handshakeHeaderLen+len(shBody))
					seq++
					d = append(hh.appendTo(d), shBody...)
					pc.WriteToUDP(d, from)
				}
			}()
			cc, _ := configs13(t, "p256")
			cc.MinVersion = VersionDTLS13
			cc.HandshakeTimeout = 5 * time.Second
			_, err = Dial("udp", pc.LocalAddr().String(), cc)
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			select {
			case got := <-alerts:
				if got != tc.want {
					t.Errorf("client sent %v, want %v (%v)", got, tc.want, err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("client sent no alert (%v)", err)
			}
		})
	}
}
