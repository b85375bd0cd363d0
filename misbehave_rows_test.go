package dtls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	ecdsaSuite   = TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	ecdhePSK     = TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256
	pskSuite     = TLS_PSK_WITH_AES_128_GCM_SHA256
	maxRecordSeq = 1<<48 - 1
)

func clientAuth(c *Config) {
	c.ClientAuth = tls.RequireAnyClientCert
}

// withClientCert makes the scripted client answer a CertificateRequest.
func withClientCert(name string) func(p *mbPeer) {
	return func(p *mbPeer) { p.cert = &certs(nil)[name].tls }
}

// cvBody replaces the client's CertificateVerify with one signed with
// scheme by signer over the transcript.
func cvBody(scheme tls.SignatureScheme, sign func(p *mbPeer) []byte) func(p *mbPeer) {
	return setBody("ClientFlight", typeCertificateVerify, func(p *mbPeer, _ []byte) []byte {
		b, _ := (&certificateVerifyMsg{signatureAlgorithm: scheme, signature: sign(p)}).marshal()
		return b
	})
}

// skxEdit rewrites the scripted server's ServerKeyExchange before it is
// signed and marshalled.
func skxEdit(f func(skx *serverKeyExchangeMsg)) func(p *mbPeer) {
	return onFlight("ServerFlight", func(p *mbPeer, items []mbItem) []mbItem {
		f(items[findMsg(items, typeServerKeyExchange)].m.(*serverKeyExchangeMsg))
		return items
	})
}

// shEdit rewrites the scripted server's ServerHello.
func shEdit(f func(sh *serverHelloMsg)) func(p *mbPeer) {
	return onFlight("ServerFlight", func(p *mbPeer, items []mbItem) []mbItem {
		f(items[findMsg(items, typeServerHello)].m.(*serverHelloMsg))
		return items
	})
}

// ckxPublicKey replaces the client's ECDHE public value.
func ckxPublicKey(pub []byte) func(p *mbPeer) {
	return setBody("ClientFlight", typeClientKeyExchange, func(p *mbPeer, _ []byte) []byte {
		b, _ := (&clientKeyExchangeMsg{kind: p.suite.kx, pskIdentity: p.identity, publicKey: pub}).marshal()
		return b
	})
}

// p256Point is an uncompressed P-256 point encoding of (x, y).
func p256Point(x, y byte) []byte {
	b := make([]byte, 65)
	b[0] = 4
	b[32], b[64] = x, y
	return b
}

// wrongCookieClient keeps answering HelloVerifyRequests with a cookie
// that is not the one it was given; it returns once it saw n of them.
func wrongCookieClient(cookie []byte, n int) func(p *mbPeer) error {
	return func(p *mbPeer) error {
		p.hello = p.clientHello()
		if err := p.send("ClientHello", []mbItem{msgItem(p.hello)}); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			m, err := p.readMessage()
			if err != nil {
				return err
			}
			if m.typ != typeHelloVerifyRequest {
				return errors.New("peer: got " + m.typ.String() + " for a wrong cookie")
			}
			p.hello.cookie = cookie
			if err := p.send("ClientHelloCookie", []mbItem{msgItem(p.hello)}); err != nil {
				return err
			}
		}
		return nil
	}
}

// noState checks that a Listener kept nothing for the peer.
func noState(t *testing.T, r *mbResult) {
	n := r.listener.table.len()
	if n != 0 || r.completed {
		t.Errorf("the listener holds %d connections for a peer without a cookie", n)
	}
}

func mbRows() []mbRow {
	zero32 := make([]byte, 32)
	return []mbRow{
		// ---- Skipped messages ----

		// pion CVE-2022-29222: a client Certificate must come with a
		// CertificateVerify proving the key.
		{name: "client Certificate without CertificateVerify", ours: oursServer, suite: ecdsaSuite, config: clientAuth,
			peer:    chain(withClientCert("p256"), dropMsg("ClientFlight", typeCertificateVerify)),
			wantErr: "expected CertificateVerify, got Finished", wantAlert: int(alertUnexpectedMessage)},
		// The key exchange is skipped (the peer, without keys, sends its
		// Finished in the clear). tinydtls CVE-2021-42141 (a handshake
		// completing with mismatched epochs).
		{name: "client skips ClientKeyExchange", ours: oursServer,
			peer: dropMsg("ClientFlight", typeClientKeyExchange), wantErr: "expected ClientKeyExchange, got Finished", wantAlert: int(alertUnexpectedMessage)},
		// An epoch-1 Finished without a CCS waits for it (it may be
		// reordering), so the handshake times out.
		{name: "client skips ChangeCipherSpec", ours: oursServer,
			peer: chain(dropCCS("ClientFlight"), onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				items[findMsg(items, typeFinished)].epoch = 1
				return items
			})),
			wantErr: mbTimeout, wantAlert: mbNoAlert},
		{name: "client skips Finished", ours: oursServer,
			peer: dropMsg("ClientFlight", typeFinished), wantErr: mbTimeout, wantAlert: mbNoAlert},
		// tinydtls #134-like confusion: a handshake that does not start with
		// a ClientHello.
		{name: "client starts with ClientKeyExchange", ours: oursServer,
			script: func(p *mbPeer) error {
				it := mbItem{kind: mbMsg, typ: typeClientKeyExchange, body: []byte{0, 1, 'x'}, seq: -1, epoch: -1, recSeq: -1}
				return p.send("ClientFlight", []mbItem{it})
			},
			wantErr: "expected ClientHello, got ClientKeyExchange", wantAlert: int(alertUnexpectedMessage)},
		{name: "server skips ServerKeyExchange", ours: oursClient, suite: ecdsaSuite,
			peer: dropMsg("ServerFlight", typeServerKeyExchange), wantErr: "expected ServerKeyExchange, got ServerHelloDone", wantAlert: int(alertUnexpectedMessage)},
		{name: "server skips Certificate", ours: oursClient, suite: ecdsaSuite,
			peer: dropMsg("ServerFlight", typeCertificate), wantErr: "expected Certificate, got ServerKeyExchange", wantAlert: int(alertUnexpectedMessage)},
		{name: "server skips ServerHelloDone", ours: oursClient, suite: ecdsaSuite,
			peer: dropMsg("ServerFlight", typeServerHelloDone), wantErr: mbTimeout, wantAlert: mbNoAlert},
		{name: "server skips Finished", ours: oursClient,
			peer: dropMsg("ServerFinished", typeFinished), wantErr: mbTimeout, wantAlert: mbNoAlert},

		// ---- Repeated messages (a new message_seq: not a retransmission) ----

		{name: "ClientKeyExchange twice", ours: oursServer,
			peer: repeatMsg("ClientFlight", typeClientKeyExchange), wantErr: "expected ChangeCipherSpec, got ClientKeyExchange", wantAlert: int(alertUnexpectedMessage)},
		// mbedTLS 2.16.6 (a second ClientHello corrupting server state).
		{name: "second ClientHello mid-handshake", ours: oursServer,
			peer:    injectLazy("ClientFlight", func(p *mbPeer) []mbItem { return []mbItem{msgItem(p.hello)} }),
			wantErr: "expected ClientKeyExchange, got ClientHello", wantAlert: int(alertUnexpectedMessage)},
		{name: "ServerHelloDone twice", ours: oursClient, suite: ecdsaSuite,
			peer: repeatMsg("ServerFlight", typeServerHelloDone), wantErr: "expected ChangeCipherSpec, got ServerHelloDone", wantAlert: int(alertUnexpectedMessage),
			alertUnreadable: true}, // sent under keys the peer's doubled transcript cannot derive
		{name: "ServerHello twice", ours: oursClient,
			peer: repeatMsg("ServerFlight", typeServerHello), wantErr: "expected ServerHelloDone, got ServerHello", wantAlert: int(alertUnexpectedMessage)},
		// tinydtls CVE-2021-42145-like: a CertificateRequest where none
		// belongs.
		{name: "CertificateRequest under a PSK suite", ours: oursClient,
			peer:    func(p *mbPeer) { p.clientAuth = true },
			wantErr: "CertificateRequest under a PSK suite", wantAlert: int(alertUnexpectedMessage)},
		{name: "Certificate under a PSK suite", ours: oursClient,
			peer: onFlight("ServerFlight", func(p *mbPeer, items []mbItem) []mbItem {
				return append(items[:1], append([]mbItem{msgItem(&certificateMsg{certificates: certs(nil)["p256"].tls.Certificate})}, items[1:]...)...)
			}),
			wantErr: "expected ServerHelloDone, got Certificate", wantAlert: int(alertUnexpectedMessage)},
		{name: "client Certificate under a PSK suite", ours: oursServer,
			peer: injectLazy("ClientFlight", func(p *mbPeer) []mbItem {
				return []mbItem{msgItem(&certificateMsg{certificates: certs(nil)["p256"].tls.Certificate})}
			}),
			wantErr: "expected ClientKeyExchange, got Certificate", wantAlert: int(alertUnexpectedMessage)},
		{name: "client Certificate not requested", ours: oursServer, suite: ecdsaSuite,
			peer: injectLazy("ClientFlight", func(p *mbPeer) []mbItem {
				return []mbItem{msgItem(&certificateMsg{certificates: certs(nil)["p256"].tls.Certificate})}
			}),
			wantErr: "expected ClientKeyExchange, got Certificate", wantAlert: int(alertUnexpectedMessage)},

		// ---- Out of order ----

		// DTLS may reorder: an epoch-1 Finished ahead of the CCS waits for
		// it. wolfSSL CVE-2023-6937 / tinydtls CVE-2021-42141 are about
		// accepting the wrong epoch, which the next rows rule out.
		{name: "Finished before ChangeCipherSpec", ours: oursServer,
			peer: onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				items[findMsg(items, typeFinished)].epoch = 1
				return moveItem(items, findMsg(items, typeFinished), findCCS(items))
			}),
			wantErr: mbSucceeds},
		// An early CCS is dropped; the one in place is taken.
		{name: "ChangeCipherSpec before the key exchange, then in place", ours: oursServer,
			peer:    inject("ClientFlight", ccsItem()),
			wantErr: mbSucceeds, check: wantDrop(dropBadContentType)},
		// Only the early CCS: it is dropped, and the Finished behind it
		// (in the clear, as the peer had no keys yet) is refused.
		{name: "ChangeCipherSpec before the key exchange only", ours: oursServer,
			peer:    onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem { return moveItem(items, findCCS(items), 0) }),
			wantErr: "expected ChangeCipherSpec, got Finished", wantAlert: int(alertUnexpectedMessage), check: wantDrop(dropBadContentType)},
		// wolfSSL CVE-2023-6937: the Finished must be under the new keys.
		{name: "Finished in epoch 0 after ChangeCipherSpec", ours: oursServer,
			peer: onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				items[findMsg(items, typeFinished)].epoch = 0
				return items
			}),
			wantErr: "Finished not protected by the negotiated keys", wantAlert: int(alertUnexpectedMessage)},
		{name: "Finished in epoch 0 without ChangeCipherSpec", ours: oursServer,
			peer: chain(dropCCS("ClientFlight"), onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				items[findMsg(items, typeFinished)].epoch = 0
				return items
			})),
			wantErr: "expected ChangeCipherSpec, got Finished", wantAlert: int(alertUnexpectedMessage)},
		{name: "CertificateVerify before Certificate", ours: oursServer, suite: ecdsaSuite, config: clientAuth,
			peer:    chain(withClientCert("p256"), moveMsgBefore("ClientFlight", typeCertificateVerify, typeCertificate)),
			wantErr: "expected client Certificate, got CertificateVerify", wantAlert: int(alertUnexpectedMessage)},
		{name: "CertificateVerify under the new keys", ours: oursServer, suite: ecdsaSuite, config: clientAuth,
			peer: chain(withClientCert("p256"), onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				return moveItem(items, findCCS(items), findMsg(items, typeCertificateVerify))
			})),
			wantErr: "CertificateVerify", wantAlert: int(alertUnexpectedMessage)},
		{name: "ServerKeyExchange before Certificate", ours: oursClient, suite: ecdsaSuite,
			peer:    moveMsgBefore("ServerFlight", typeServerKeyExchange, typeCertificate),
			wantErr: "expected Certificate, got ServerKeyExchange", wantAlert: int(alertUnexpectedMessage)},
		{name: "ServerHelloDone before ServerKeyExchange", ours: oursClient, suite: ecdsaSuite,
			peer:    moveMsgBefore("ServerFlight", typeServerHelloDone, typeServerKeyExchange),
			wantErr: "expected ServerKeyExchange, got ServerHelloDone", wantAlert: int(alertUnexpectedMessage)},
		{name: "server Finished before ChangeCipherSpec", ours: oursClient,
			peer: onFlight("ServerFinished", func(p *mbPeer, items []mbItem) []mbItem {
				items[findMsg(items, typeFinished)].epoch = 1
				return moveItem(items, findMsg(items, typeFinished), findCCS(items))
			}),
			wantErr: mbSucceeds},

		// ---- Wrong Finished ----

		{name: "wrong client Finished", ours: oursServer,
			peer:    setBody("ClientFlight", typeFinished, func(p *mbPeer, b []byte) []byte { b[0] ^= 1; return b }),
			wantErr: "peer's Finished is wrong", wantAlert: int(alertDecryptError)},
		{name: "wrong server Finished", ours: oursClient,
			peer:    setBody("ServerFinished", typeFinished, func(p *mbPeer, b []byte) []byte { b[11] ^= 0x80; return b }),
			wantErr: "peer's Finished is wrong", wantAlert: int(alertDecryptError)},
		{name: "client Finished of the wrong length", ours: oursServer,
			peer:    setBody("ClientFlight", typeFinished, func(p *mbPeer, b []byte) []byte { return b[:11] }),
			wantErr: "peer's Finished is wrong", wantAlert: int(alertDecryptError)},

		// ---- Cookies ----

		// wolfSSL #10608, mbedTLS CVE-2022-35409: a wrong cookie gets a
		// new HelloVerifyRequest and no state; Server gives up after
		// maxHelloVerifyRequests round trips.
		{name: "wrong cookie", ours: oursListener, script: wrongCookieClient(bytes.Repeat([]byte{7}, cookieLen), 3),
			wantErr: "no handshake", wantAlert: mbNoAlert, check: noState},
		{name: "wrong cookie forever", ours: oursServer, script: wrongCookieClient(bytes.Repeat([]byte{7}, cookieLen), maxHelloVerifyRequests+1),
			wantErr: "client does not return our cookie", wantAlert: int(alertHandshakeFailure)},
		{name: "missing cookie", ours: oursListener, script: wrongCookieClient(nil, 3),
			wantErr: "no handshake", wantAlert: mbNoAlert, check: noState},
		{name: "oversized cookie", ours: oursListener, script: wrongCookieClient(bytes.Repeat([]byte{7}, 255), 3),
			wantErr: "no handshake", wantAlert: mbNoAlert, check: noState},
		// mbedTLS CVE-2022-35409, tinydtls #59/#272: the cookie length
		// runs past the end of the ClientHello: dropped without an
		// answer.
		{name: "cookie length past the ClientHello", ours: oursListener,
			script: func(p *mbPeer) error {
				p.timeout = 200 * time.Millisecond
				p.hello = p.clientHello()
				body, _ := p.hello.marshal()
				body[2+32+1] = 200 // the cookie length, after an empty session_id
				if err := p.send("ClientHello", []mbItem{{kind: mbMsg, typ: typeClientHello, body: body, seq: -1, epoch: -1, recSeq: -1}}); err != nil {
					return err
				}
				if _, err := p.readMessage(); !errors.Is(err, errPeerTimeout) {
					return errors.New("peer: the listener answered a malformed ClientHello")
				}
				return nil
			},
			wantErr: "no handshake", wantAlert: mbNoAlert, check: noState},
		{name: "cookie length past the ClientHello", ours: oursServer,
			script: func(p *mbPeer) error {
				p.hello = p.clientHello()
				body, _ := p.hello.marshal()
				body[2+32+1] = 200
				return p.send("ClientHello", []mbItem{{kind: mbMsg, typ: typeClientHello, body: body, seq: -1, epoch: -1, recSeq: -1}})
			},
			wantErr: "malformed ClientHello", wantAlert: int(alertDecodeError)},
		// tinydtls #74: an invalid version must not bypass the cookie.
		{name: "ClientHello version 1.3 with a wrong cookie", ours: oursListener,
			peer:    func(p *mbPeer) { p.hello = p.clientHello(); p.hello.vers = VersionDTLS13 },
			script:  wrongCookieClient(bytes.Repeat([]byte{1}, cookieLen), 2),
			wantErr: "no handshake", wantAlert: mbNoAlert, check: noState},

		// ---- HelloVerifyRequest with lengths that lie ----

		// pion GHSA-4xgv-j62q-h3rj / GHSA-hxp2-xqf3-v83h, mbedTLS 2.16.6
		// client over-read, tinydtls #70.
		{name: "HelloVerifyRequest cookie length past its end", ours: oursClient,
			peer: chain(func(p *mbPeer) { p.hvr = true }, setBody("HelloVerifyRequest", typeHelloVerifyRequest, func(p *mbPeer, b []byte) []byte {
				b[2] = 255
				return b
			})),
			wantErr: "malformed HelloVerifyRequest", wantAlert: int(alertDecodeError)},
		{name: "HelloVerifyRequest with bytes after the cookie", ours: oursClient,
			peer: chain(func(p *mbPeer) { p.hvr = true }, setBody("HelloVerifyRequest", typeHelloVerifyRequest, func(p *mbPeer, b []byte) []byte {
				return append(b, 0, 0)
			})),
			wantErr: "malformed HelloVerifyRequest", wantAlert: int(alertDecodeError)},
		{name: "HelloVerifyRequest of two bytes", ours: oursClient,
			peer: chain(func(p *mbPeer) { p.hvr = true }, setBody("HelloVerifyRequest", typeHelloVerifyRequest, func(p *mbPeer, b []byte) []byte {
				return b[:2]
			})),
			wantErr: "malformed HelloVerifyRequest", wantAlert: int(alertDecodeError)},
		// The handshake header claims more than the record holds: the
		// fragment is dropped (record boundaries are the truth), and the
		// real HelloVerifyRequest that follows is taken.
		{name: "HelloVerifyRequest header length past the record", ours: oursClient,
			peer: chain(func(p *mbPeer) { p.hvr = true }, inject("HelloVerifyRequest",
				// fragment_length 23 with only 3 bytes in the record.
				fragRecord(typeHelloVerifyRequest, 23, 0, 0, 23, []byte{0xfe, 0xfd, 20}), breakItem())),
			wantErr: mbSucceeds},
		{name: "HelloVerifyRequest with a bad version", ours: oursClient,
			peer: chain(func(p *mbPeer) { p.hvr = true }, setBody("HelloVerifyRequest", typeHelloVerifyRequest, func(p *mbPeer, b []byte) []byte {
				b[0], b[1] = 3, 3
				return b
			})),
			wantErr: "HelloVerifyRequest version", wantAlert: int(alertProtocolVersion)},
		{name: "HelloVerifyRequest forever", ours: oursClient,
			script: func(p *mbPeer) error {
				for i := 0; i <= maxHelloVerifyRequests+1; i++ {
					if _, err := p.expect(typeClientHello); err != nil {
						return err
					}
					it := msgItem(&helloVerifyRequestMsg{vers: VersionDTLS12, cookie: []byte{byte(i)}})
					if err := p.send("HelloVerifyRequest", []mbItem{it}); err != nil {
						return err
					}
				}
				return nil
			},
			wantErr: "too many HelloVerifyRequests", wantAlert: int(alertUnexpectedMessage)},

		// ---- Fragments (each injected ahead of the real flight: dropped,
		// the handshake completes) ----

		// GnuTLS CVE-2026-33845, OpenSSL CVE-2014-3507.
		{name: "zero-length fragment with a nonzero offset", ours: oursServer,
			peer: injectLazy("ClientFlight", func(p *mbPeer) []mbItem {
				return []mbItem{fragRecord(typeClientKeyExchange, 9, p.sendSeq, 5, 0, nil)}
			}),
			wantErr: mbSucceeds, check: wantDrop(dropBadHandshake)},
		// GnuTLS CVE-2026-33846: fragments disagreeing on message_length.
		{name: "fragments whose message_length disagree", ours: oursServer,
			peer: onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				i := findMsg(items, typeClientKeyExchange)
				// 2-byte length + "client1": 9 bytes.
				items[i].frag = []mbFrag{frag(0, 4), {off: 4, n: 5, length: 40, epoch: -1}, frag(4, 5)}
				return items
			}),
			wantErr: mbSucceeds, check: wantDrop(dropBadHandshake)},
		{name: "overlapping fragments with different bytes", ours: oursServer,
			peer: onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				i := findMsg(items, typeClientKeyExchange)
				items[i].frag = []mbFrag{frag(0, 5), {off: 3, n: 4, length: -1, epoch: -1, data: []byte("EVIL")}, frag(3, 6)}
				return items
			}),
			wantErr: mbSucceeds, check: wantDrop(dropBadHandshake)},
		{name: "fragment past its message's end", ours: oursServer,
			peer: injectLazy("ClientFlight", func(p *mbPeer) []mbItem {
				return []mbItem{fragRecord(typeClientKeyExchange, 9, p.sendSeq, 5, 10, make([]byte, 10))}
			}),
			wantErr: mbSucceeds, check: wantDrop(dropBadHandshake)},
		// OpenSSL CVE-2026-95690, pion CVE-2022-29189.
		{name: "huge declared message_length", ours: oursServer,
			peer: injectLazy("ClientFlight", func(p *mbPeer) []mbItem {
				return []mbItem{fragRecord(typeClientKeyExchange, 1<<24-1, p.sendSeq, 0, 4, []byte{1, 2, 3, 4})}
			}),
			wantErr: mbSucceeds, check: wantDrop(dropBadHandshake)},
		{name: "maximal message_length ahead of the window", ours: oursServer,
			peer: injectLazy("ClientFlight", func(p *mbPeer) []mbItem {
				var items []mbItem
				for s := uint16(3); s < 20; s++ {
					items = append(items, fragRecord(typeCertificate, maxHandshakeMessageLen, p.sendSeq+s, 0, 4, []byte{1, 2, 3, 4}))
				}
				return items
			}),
			wantErr: mbSucceeds},
		// pion CVE-2022-29190: header reconstruction must not loop.
		{name: "handshake record of 11 bytes", ours: oursServer,
			peer:    inject("ClientFlight", recordItem(0, recordTypeHandshake, make([]byte, 11))),
			wantErr: mbSucceeds, check: wantDrop(dropBadHandshake)},
		// wolfSSL CVE-2023-6937: a message spanning a key change is never
		// put together; the handshake cannot complete.
		{name: "Finished spanning the key change", ours: oursServer,
			peer: onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				i := findMsg(items, typeFinished)
				items[i].frag = []mbFrag{{off: 0, n: 6, length: -1, epoch: 0}, frag(6, 6)}
				return items
			}),
			wantErr: mbTimeout, wantAlert: mbNoAlert},

		// ---- Records ----

		// tinydtls CVE-2017-7243: a CCS before any handshake.
		{name: "ChangeCipherSpec before any handshake", ours: oursServer,
			peer: inject("ClientHello", recordItem(0, recordTypeChangeCipherSpec, []byte{1}), breakItem()), wantErr: mbSucceeds},
		{name: "ChangeCipherSpec before any handshake", ours: oursListener,
			peer: inject("ClientHello", recordItem(0, recordTypeChangeCipherSpec, []byte{1}), breakItem()), wantErr: mbSucceeds},
		// tinydtls CVE-2021-42142: an early large epoch; OpenSSL
		// CVE-2009-1377: buffered future-epoch records.
		{name: "early large epoch", ours: oursServer,
			peer: inject("ClientHello",
				rawItem(appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 0xffff, 0, 0)),
				rawItem(append(appendRecordHeader(nil, recordTypeApplicationData, VersionDTLS12, 0xfffe, maxRecordSeq, 40), make([]byte, 40)...)),
				breakItem()),
			wantErr: mbSucceeds, check: wantDrop(dropUnknownEpoch)},
		{name: "far-future epoch mid-handshake", ours: oursServer,
			peer: inject("ClientFlight",
				rawItem(append(appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 7, 3, 40), make([]byte, 40)...))),
			wantErr: mbSucceeds, check: wantDrop(dropUnknownEpoch)},
		// OpenSSL CVE-2026-75806, mbedTLS CVE-2023-43615: a record shorter
		// than the AEAD overhead in the new epoch is dropped.
		{name: "short epoch-1 record mid-handshake", ours: oursServer,
			peer:    inject("ClientFlight", rawItem(append(appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 1, 9, 5), 1, 2, 3, 4, 5))),
			wantErr: mbSucceeds, check: wantDrop(dropBadLength)},
		// OpenSSL CVE-2026-75806 during the handshake: a full-size
		// epoch-1 record that fails authentication is dropped, not a
		// fatal bad_record_mac (a wrong PSK looks like this, but so does
		// a forgery, and RFC 6347 §4.1.2.1 lets us go on); the real
		// Finished behind it completes the handshake.
		{name: "forged epoch-1 record mid-handshake", ours: oursServer,
			peer: onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				forged := rawItem(append(appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 1, 9, 64), make([]byte, 64)...))
				return slices.Insert(items, findMsg(items, typeFinished), forged)
			}),
			wantErr: mbSucceeds, check: wantDrop(dropBadMAC)},
		{name: "forged epoch-1 record mid-handshake", ours: oursClient,
			peer: onFlight("ServerFinished", func(p *mbPeer, items []mbItem) []mbItem {
				forged := rawItem(append(appendRecordHeader(nil, recordTypeHandshake, VersionDTLS12, 1, 9, 64), make([]byte, 64)...))
				return slices.Insert(items, findMsg(items, typeFinished), forged)
			}),
			wantErr: mbSucceeds, check: wantDrop(dropBadMAC)},
		// After the handshake the same record is dropped (OpenSSL
		// CVE-2026-75806: one datagram must not kill the association).
		{name: "forged epoch-1 record with a far-future sequence number after the handshake", ours: oursServer,
			peer: inject("AppData",
				rawItem(append(appendRecordHeader(nil, recordTypeApplicationData, VersionDTLS12, 1, maxRecordSeq, 64), make([]byte, 64)...)),
				rawItem(append(appendRecordHeader(nil, recordTypeAlert, VersionDTLS12, 1, maxRecordSeq-1, 30), make([]byte, 30)...))),
			wantErr: mbSucceeds, check: wantDrop(dropBadMAC)},
		// pion CVE-2019-20786, wolfSSL CVE-2020-24585: plaintext
		// application data is never delivered.
		// After the handshake every epoch-0 record is dropped as such.
		{name: "plaintext application data after the handshake", ours: oursServer,
			peer:    inject("AppData", recordItem(0, recordTypeApplicationData, []byte("evil"))),
			wantErr: mbSucceeds, check: wantDrop(dropEpoch0AfterHandshake)},
		{name: "plaintext application data during the handshake", ours: oursServer,
			peer:    inject("ClientFlight", recordItem(0, recordTypeApplicationData, []byte("evil"))),
			wantErr: mbSucceeds, check: wantDrop(dropBadContentType)},
		{name: "plaintext application data after the handshake", ours: oursClient,
			peer:    inject("AppData", recordItem(0, recordTypeApplicationData, []byte("evil"))),
			wantErr: mbSucceeds, check: wantDrop(dropEpoch0AfterHandshake)},
		// During the handshake too, plaintext application data is dropped,
		// not a fatal unexpected_message: anyone could send it.
		{name: "plaintext application data during the handshake", ours: oursClient,
			peer:    inject("ServerFinished", recordItem(0, recordTypeApplicationData, []byte("evil"))),
			wantErr: mbSucceeds, check: wantDrop(dropBadContentType)},

		// ---- Unauthenticated alerts and ChangeCipherSpecs (issue 10
		// finding 1, "documented exposure b"; tinydtls CVE-2017-7243's
		// class: a ChangeCipherSpec where none belongs) ----

		// A plaintext alert after the handshake could be forged by anyone.
		{name: "plaintext fatal alert after the handshake", ours: oursServer,
			peer:    inject("AppData", recordItem(0, recordTypeAlert, []byte{alertLevelError, byte(alertHandshakeFailure)})),
			wantErr: mbSucceeds, check: wantDrop(dropEpoch0AfterHandshake)},
		{name: "plaintext fatal alert after the handshake", ours: oursClient,
			peer:    inject("AppData", recordItem(0, recordTypeAlert, []byte{alertLevelError, byte(alertHandshakeFailure)})),
			wantErr: mbSucceeds, check: wantDrop(dropEpoch0AfterHandshake)},
		// Once the peer's ChangeCipherSpec arrived, its alerts are
		// protected: a plaintext one is not the peer's.
		{name: "plaintext fatal alert after the peer's ChangeCipherSpec", ours: oursServer,
			peer: onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				return slices.Insert(items, findMsg(items, typeFinished), recordItem(0, recordTypeAlert, []byte{alertLevelError, byte(alertHandshakeFailure)}))
			}),
			wantErr: mbSucceeds, check: wantDrop(dropPlaintextAlert)},
		{name: "plaintext fatal alert after the peer's ChangeCipherSpec", ours: oursClient,
			peer: onFlight("ServerFinished", func(p *mbPeer, items []mbItem) []mbItem {
				return slices.Insert(items, findMsg(items, typeFinished), recordItem(0, recordTypeAlert, []byte{alertLevelError, byte(alertHandshakeFailure)}))
			}),
			wantErr: mbSucceeds, check: wantDrop(dropPlaintextAlert)},
		// Before it, a plaintext fatal alert ends the handshake: RFC 6347
		// §4.1 makes us accept epoch 0 until the handshake completes and
		// RFC 5246 §7.2.2 ends the connection on a fatal alert. This is
		// the exposure the README documents.
		{name: "plaintext fatal alert before the peer's ChangeCipherSpec", ours: oursServer,
			peer:    inject("ClientFlight", recordItem(0, recordTypeAlert, []byte{alertLevelError, byte(alertHandshakeFailure)})),
			wantErr: "peer sent alert: handshake failure", wantAlert: mbNoAlert},
		// Warnings change nothing, in either epoch; no_renegotiation was
		// once taken for fatal.
		{name: "plaintext no_renegotiation warning mid-handshake", ours: oursServer,
			peer:    inject("ClientFlight", recordItem(0, recordTypeAlert, []byte{alertLevelWarning, byte(alertNoRenegotiation)})),
			wantErr: mbSucceeds},
		{name: "no_renegotiation warning after the handshake", ours: oursServer,
			peer:    inject("AppData", recordItem(-1, recordTypeAlert, []byte{alertLevelWarning, byte(alertNoRenegotiation)})),
			wantErr: mbSucceeds},
		{name: "no_renegotiation warning after the handshake", ours: oursClient,
			peer:    inject("AppData", recordItem(-1, recordTypeAlert, []byte{alertLevelWarning, byte(alertNoRenegotiation)})),
			wantErr: mbSucceeds},
		// Malformed and unauthenticated: invalid records, dropped
		// (RFC 6347 §4.1.2.7). They used to draw a fatal alert.
		{name: "malformed plaintext alert mid-handshake", ours: oursServer,
			peer:    inject("ClientFlight", recordItem(0, recordTypeAlert, []byte{alertLevelError, byte(alertHandshakeFailure), 0})),
			wantErr: mbSucceeds, check: wantDrop(dropMalformed)},
		{name: "plaintext alert of an unknown level mid-handshake", ours: oursClient,
			peer:    inject("ServerFlight", recordItem(0, recordTypeAlert, []byte{9, byte(alertHandshakeFailure)})),
			wantErr: mbSucceeds, check: wantDrop(dropMalformed)},
		{name: "malformed plaintext ChangeCipherSpec mid-handshake", ours: oursServer,
			peer:    inject("ClientFlight", recordItem(0, recordTypeChangeCipherSpec, []byte{1, 1})),
			wantErr: mbSucceeds, check: wantDrop(dropMalformed)},
		{name: "empty plaintext ChangeCipherSpec mid-handshake", ours: oursClient,
			peer:    inject("ServerFinished", recordItem(0, recordTypeChangeCipherSpec, []byte{})),
			wantErr: mbSucceeds, check: wantDrop(dropMalformed)},
		// Malformed and authenticated: only the peer can have sent it.
		{name: "malformed protected ChangeCipherSpec after the handshake", ours: oursServer,
			peer:    inject("AppData", recordItem(-1, recordTypeChangeCipherSpec, []byte{1, 1})),
			wantErr: "malformed ChangeCipherSpec", wantAlert: int(alertUnexpectedMessage)},
		{name: "malformed protected alert after the handshake", ours: oursClient,
			peer:    inject("AppData", recordItem(-1, recordTypeAlert, []byte{alertLevelWarning})),
			wantErr: "malformed alert", wantAlert: int(alertDecodeError)},

		// ---- Handshake messages after the peer's Finished ----

		// wolfSSL CVE-2023-6937's neighbour: a message after the Finished
		// of the same flight, authenticated, is the peer's error: fatal
		// unexpected_message (RFC 5246 §7.2.2). Behind the Finished in its
		// datagram, it is refused after the handshake; ahead of it with a
		// later message_seq, when the Finished is read.
		{name: "handshake message behind the client Finished", ours: oursServer,
			peer:    appendItems("ClientFlight", mbItem{kind: mbMsg, typ: typeClientKeyExchange, body: []byte{0, 1, 'x'}, seq: -1, epoch: -1, recSeq: -1, noTr: true}),
			wantErr: "ClientKeyExchange after the", wantAlert: int(alertUnexpectedMessage)},
		{name: "handshake message ahead of the client Finished", ours: oursServer,
			peer: onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				extra := mbItem{kind: mbMsg, typ: typeClientKeyExchange, body: []byte{0, 1, 'x'}, seq: int(p.sendSeq) + 2, epoch: 1, recSeq: -1, noTr: true}
				return slices.Insert(items, findMsg(items, typeFinished), extra)
			}),
			wantErr: "ClientKeyExchange after the peer's Finished", wantAlert: int(alertUnexpectedMessage)},
		{name: "handshake message behind the server Finished", ours: oursClient,
			peer:    appendItems("ServerFinished", mbItem{kind: mbMsg, typ: typeServerHelloDone, body: []byte{}, seq: -1, epoch: -1, recSeq: -1, noTr: true}),
			wantErr: "ServerHelloDone after the", wantAlert: int(alertUnexpectedMessage)},
		// mbedTLS CVE-2018-0488 / tinydtls CVE-2021-42144: a record whose
		// length runs past the datagram is dropped with the rest of it,
		// and the retransmitted datagram completes the handshake.
		{name: "truncated record, then the datagram whole", ours: oursServer,
			script: func(p *mbPeer) error {
				conn := p.conn
				first := true
				p.conn = &truncatingConn{Conn: conn, cut: func(b []byte) []byte {
					if first && len(b) > 100 {
						first = false
						return b[:len(b)-7]
					}
					return nil
				}}
				return p.runClient()
			},
			wantErr: mbSucceeds, check: wantDrop(dropBadHeader)},
		// GnuTLS CVE-2026-42009: duplicate sequence numbers.
		{name: "every datagram twice", ours: oursServer,
			script: func(p *mbPeer) error {
				p.conn = &truncatingConn{Conn: p.conn, dup: true}
				return p.runClient()
			},
			wantErr: mbSucceeds, check: wantDrop(dropReplayed)},
		{name: "every datagram twice", ours: oursClient,
			script: func(p *mbPeer) error {
				p.conn = &truncatingConn{Conn: p.conn, dup: true}
				return p.runServer()
			},
			wantErr: mbSucceeds, check: wantDrop(dropReplayed)},
		// A Listener numbers its records on from the cookie ClientHello's
		// (RFC 6347 §4.2.1, so that clients which keep their epoch-0
		// window take them): a client that uses the last sequence
		// number leaves the server none, and the handshake fails cleanly
		// (no alert can be sealed).
		{name: "ClientHello record sequence number at the limit", ours: oursListener,
			peer:    onFlight("ClientHelloCookie", func(p *mbPeer, items []mbItem) []mbItem { items[0].recSeq = maxRecordSeq; return items }),
			script:  func(p *mbPeer) error { p.timeout = 500 * time.Millisecond; p.runClient(); return nil },
			wantErr: "record sequence numbers exhausted", wantAlert: mbNoAlert},

		// ---- ServerHello choices we did not offer ----

		{name: "ServerHello with a suite we did not offer", ours: oursClient,
			peer:    shEdit(func(sh *serverHelloMsg) { sh.cipherSuite = TLS_PSK_WITH_AES_128_CCM_8 }),
			wantErr: "which we did not offer", wantAlert: int(alertIllegalParameter)},
		{name: "ServerHello with an unknown suite", ours: oursClient,
			peer:    shEdit(func(sh *serverHelloMsg) { sh.cipherSuite = 0x1301 }),
			wantErr: "which we did not offer", wantAlert: int(alertIllegalParameter)},
		{name: "ServerHello with ALPN we did not offer", ours: oursClient,
			peer:    shEdit(func(sh *serverHelloMsg) { sh.alpnProtocol = "h2" }),
			wantErr: "extension 16, which we did not offer", wantAlert: int(alertUnsupportedExtension)},
		{name: "ServerHello with a connection ID we did not offer", ours: oursClient,
			peer:    shEdit(func(sh *serverHelloMsg) { sh.hasConnectionID, sh.connectionID = true, []byte{1, 2} }),
			wantErr: "which we did not offer", wantAlert: int(alertUnsupportedExtension)},
		{name: "ServerHello with compression", ours: oursClient,
			peer:    shEdit(func(sh *serverHelloMsg) { sh.compressionMethod = 1 }),
			wantErr: "server chose compression", wantAlert: int(alertIllegalParameter)},
		{name: "ServerHello with DTLS 1.0", ours: oursClient,
			peer:    shEdit(func(sh *serverHelloMsg) { sh.vers = VersionDTLS10 }),
			wantErr: "only DTLS 1.2", wantAlert: int(alertProtocolVersion)},
		{name: "ServerHello without extended master secret", ours: oursClient,
			peer:    shEdit(func(sh *serverHelloMsg) { sh.extendedMasterSecret = false }),
			wantErr: "extended master secret", wantAlert: int(alertHandshakeFailure)},
		{name: "ServerKeyExchange with a group we did not offer", ours: oursClient, suite: ecdsaSuite,
			config:  func(c *Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP256} },
			wantErr: "which we did not offer", wantAlert: int(alertIllegalParameter)},
		// A group the user configured but the library does not implement
		// must not be offered, nor accepted.
		{name: "ServerKeyExchange with a configured group we do not implement", ours: oursClient, suite: ecdsaSuite,
			config: func(c *Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP521, tls.X25519} },
			peer: skxEdit(func(skx *serverKeyExchangeMsg) {
				skx.curveID = tls.CurveP521
				skx.publicKey = append([]byte{4}, make([]byte, 132)...)
			}),
			wantErr: "which we did not offer", wantAlert: int(alertIllegalParameter)},
		{name: "ServerKeyExchange with an unknown signature scheme", ours: oursClient, suite: ecdsaSuite,
			peer:    skxEdit(func(skx *serverKeyExchangeMsg) { skx.signatureAlgorithm = 0xfefe; skx.signature = []byte{1} }),
			wantErr: "which we did not offer", wantAlert: int(alertIllegalParameter)},
		// pion CVE-2026-135388: the scheme must match the key.
		{name: "ServerKeyExchange signed with a scheme not matching the key", ours: oursClient, suite: ecdsaSuite,
			peer: skxEdit(func(skx *serverKeyExchangeMsg) {
				skx.signatureAlgorithm = tls.Ed25519
				_, k, _ := ed25519.GenerateKey(rand.Reader)
				skx.signature = ed25519.Sign(k, []byte("x"))
			}),
			wantErr: "does not match the peer's key", wantAlert: int(alertDecryptError)},
		{name: "ServerKeyExchange with a bad signature", ours: oursClient, suite: ecdsaSuite,
			peer: skxEdit(func(skx *serverKeyExchangeMsg) {
				skx.signatureAlgorithm = tls.ECDSAWithP256AndSHA256
				skx.signature = []byte{0x30, 0}
			}),
			wantErr: "invalid ECDSA signature", wantAlert: int(alertDecryptError)},
		// pion CVE-2026-135391: an oversized RSA key is refused before any
		// work is done with it.
		{name: "server certificate with a 16384-bit RSA key", ours: oursClient, suite: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			peer:    func(p *mbPeer) { p.cert = &hugeRSACert().tls },
			wantErr: "RSA key of 16384 bits refused", wantAlert: int(alertBadCertificate)},
		{name: "client certificate with a 16384-bit RSA key", ours: oursServer, suite: ecdsaSuite, config: clientAuth,
			peer:    func(p *mbPeer) { p.cert = &hugeRSACert().tls },
			wantErr: "RSA key of 16384 bits refused", wantAlert: int(alertBadCertificate)},

		// ---- CertificateVerify ----

		{name: "CertificateVerify with an unknown signature scheme", ours: oursServer, suite: ecdsaSuite, config: clientAuth,
			peer:    chain(withClientCert("p256"), cvBody(0xfefe, func(*mbPeer) []byte { return []byte{1} })),
			wantErr: "unrequested scheme", wantAlert: int(alertIllegalParameter)},
		// pion CVE-2026-135388: Ed25519 claimed for a P-256 certificate.
		{name: "CertificateVerify with a scheme not matching the key", ours: oursServer, suite: ecdsaSuite, config: clientAuth,
			peer: chain(withClientCert("p256"), cvBody(tls.Ed25519, func(p *mbPeer) []byte {
				return ed25519.Sign(certs(nil)["ed25519"].tls.PrivateKey.(ed25519.PrivateKey), p.transcript)
			})),
			wantErr: "does not match the peer's key", wantAlert: int(alertDecryptError)},
		{name: "CertificateVerify with RSA-PSS for an ECDSA key", ours: oursServer, suite: ecdsaSuite, config: clientAuth,
			peer: chain(withClientCert("p256"), cvBody(tls.PSSWithSHA256, func(p *mbPeer) []byte {
				sig, _ := signHandshake(rand.Reader, certs(nil)["rsa"].tls.PrivateKey.(crypto.Signer), tls.PSSWithSHA256, p.transcript)
				return sig
			})),
			wantErr: "does not match the peer's key", wantAlert: int(alertDecryptError)},
		{name: "CertificateVerify by another key", ours: oursServer, suite: ecdsaSuite, config: clientAuth,
			peer: chain(withClientCert("p256"), cvBody(tls.ECDSAWithP256AndSHA256, func(p *mbPeer) []byte {
				other := makeTestCert(nil, mustP256())
				s, _ := certificateSigner(&other.tls)
				sig, _ := signHandshake(rand.Reader, s, tls.ECDSAWithP256AndSHA256, p.transcript)
				return sig
			})),
			wantErr: "invalid ECDSA signature", wantAlert: int(alertDecryptError)},

		// ---- Renegotiation ----

		// RFC 5246 §7.4.1.1, §7.2.2; mbedTLS CVE-2026-50713
		// (renegotiation messages buffered). Refused at once with an
		// authenticated warning; the connection goes on.
		{name: "ClientHello after the handshake", ours: oursServer,
			peer:    injectLazy("AppData", func(p *mbPeer) []mbItem { return []mbItem{msgItem(p.clientHello())} }),
			wantErr: mbSucceeds, wantWarning: alertNoRenegotiation},
		{name: "HelloRequest after the handshake", ours: oursClient,
			peer: injectLazy("AppData", func(p *mbPeer) []mbItem {
				return []mbItem{{kind: mbMsg, typ: typeHelloRequest, body: []byte{}, seq: -1, epoch: -1, recSeq: -1}}
			}),
			wantErr: mbSucceeds, wantWarning: alertNoRenegotiation},
		// A renegotiation starts again at message_seq 0 (RFC 6347
		// §4.2.2): not a retransmission to answer with our last flight,
		// which left OpenSSL's, mbedTLS's and GnuTLS's clients waiting.
		{name: "renegotiating ClientHello with message_seq 0", ours: oursServer,
			peer: injectLazy("AppData", func(p *mbPeer) []mbItem {
				it := msgItem(p.clientHello())
				it.seq, it.noTr = 0, true
				return []mbItem{it}
			}),
			wantErr: mbSucceeds, wantWarning: alertNoRenegotiation},
		{name: "renegotiating ClientHello in fragments", ours: oursServer,
			peer: injectLazy("AppData", func(p *mbPeer) []mbItem {
				it := msgItem(p.clientHello())
				it.seq, it.noTr = 0, true
				it.frag = []mbFrag{frag(0, 20), frag(20, 30)} // the rest never comes
				return []mbItem{it}
			}),
			wantErr: mbSucceeds, wantWarning: alertNoRenegotiation,
			check: func(t *testing.T, r *mbResult) {
				if got, _ := r.peer.receivedAlerts(); len(got) > 2 { // one warning, then close_notify
					t.Errorf("alerts %v: want one no_renegotiation for the message, not one per fragment", got)
				}
			}},
		{name: "HelloRequest with message_seq 0", ours: oursClient,
			peer: injectLazy("AppData", func(p *mbPeer) []mbItem {
				return []mbItem{{kind: mbMsg, typ: typeHelloRequest, body: []byte{}, seq: 0, epoch: -1, recSeq: -1, noTr: true}}
			}),
			wantErr: mbSucceeds, wantWarning: alertNoRenegotiation},
		{name: "HelloRequest ahead of the next message_seq", ours: oursClient,
			peer: injectLazy("AppData", func(p *mbPeer) []mbItem {
				return []mbItem{{kind: mbMsg, typ: typeHelloRequest, body: []byte{}, seq: int(p.sendSeq) + 3, epoch: -1, recSeq: -1, noTr: true}}
			}),
			wantErr: mbSucceeds, wantWarning: alertNoRenegotiation},

		// ---- close_notify racing the last flight ----

		{name: "close_notify right behind the client Finished", ours: oursServer,
			peer:    appendItems("ClientFlight", recordItem(-1, recordTypeAlert, []byte{alertLevelWarning, byte(alertCloseNotify)})),
			script:  func(p *mbPeer) error { err := p.runClient(); p.logf("script: %v", err); return nil },
			wantErr: io.EOF.Error(), wantAlert: mbNoAlert},
		{name: "close_notify right behind the server Finished", ours: oursClient,
			peer: appendItems("ServerFinished", recordItem(-1, recordTypeAlert, []byte{alertLevelWarning, byte(alertCloseNotify)})),
			script: func(p *mbPeer) error {
				err := p.runServer()
				if err != nil && !strings.Contains(err.Error(), "close notify") {
					return err
				}
				return nil
			},
			wantErr: io.EOF.Error(), wantAlert: mbNoAlert},
		{name: "close_notify in place of the client Finished", ours: oursServer,
			peer: onFlight("ClientFlight", func(p *mbPeer, items []mbItem) []mbItem {
				items[findMsg(items, typeFinished)] = recordItem(-1, recordTypeAlert, []byte{alertLevelWarning, byte(alertCloseNotify)})
				return items
			}),
			wantErr: "peer closed the connection during the handshake", wantAlert: mbNoAlert},

		// ---- Key exchange values ----

		// pion (2026-06): a malformed ECDHE_PSK ServerKeyExchange.
		{name: "ECDHE_PSK ServerKeyExchange truncated", ours: oursClient, suite: ecdhePSK,
			peer:    setBody("ServerFlight", typeServerKeyExchange, func(p *mbPeer, b []byte) []byte { return b[:len(b)-5] }),
			wantErr: "malformed ServerKeyExchange", wantAlert: int(alertDecodeError)},
		{name: "ECDHE_PSK ServerKeyExchange hint length past its end", ours: oursClient, suite: ecdhePSK,
			peer:    setBody("ServerFlight", typeServerKeyExchange, func(p *mbPeer, b []byte) []byte { b[0] = 0xff; return b }),
			wantErr: "malformed ServerKeyExchange", wantAlert: int(alertDecodeError)},
		{name: "ECDHE_PSK ServerKeyExchange without the point", ours: oursClient, suite: ecdhePSK,
			peer:    setBody("ServerFlight", typeServerKeyExchange, func(p *mbPeer, b []byte) []byte { return b[:2+4+3] }),
			wantErr: "malformed ServerKeyExchange", wantAlert: int(alertDecodeError)},
		{name: "ECDHE_PSK ServerKeyExchange with explicit curve parameters", ours: oursClient, suite: ecdhePSK,
			peer:    setBody("ServerFlight", typeServerKeyExchange, func(p *mbPeer, b []byte) []byte { b[2+4] = 1; return b }),
			wantErr: "malformed ServerKeyExchange", wantAlert: int(alertDecodeError)},
		{name: "ECDHE_PSK ServerKeyExchange with an all-zero X25519 key", ours: oursClient, suite: ecdhePSK,
			peer:    skxEdit(func(skx *serverKeyExchangeMsg) { skx.publicKey = zero32 }),
			wantErr: "invalid ECDHE public key", wantAlert: int(alertIllegalParameter)},
		// mbedTLS CVE-2026-50580: a long identity in an ECDHE-PSK
		// ClientKeyExchange.
		// By default an unknown identity is not told from a wrong key
		// (RFC 4279 §2): the handshake goes on with a random key, the
		// peer's Finished fails authentication, and the handshake ends
		// as with a wrong key. Our error still names the identity.
		{name: "ECDHE_PSK ClientKeyExchange with a 60000-byte identity", ours: oursServer, suite: ecdhePSK,
			peer:    func(p *mbPeer) { p.identity = bytes.Repeat([]byte{'i'}, 60000) },
			wantErr: "unknown PSK identity", wantAlert: int(alertBadRecordMAC)},
		{name: "ECDHE_PSK ClientKeyExchange with a 60000-byte identity, InsecureUnknownPSKIdentityAlert", ours: oursServer, suite: ecdhePSK,
			config:  func(c *Config) { c.InsecureUnknownPSKIdentityAlert = true },
			peer:    func(p *mbPeer) { p.identity = bytes.Repeat([]byte{'i'}, 60000) },
			wantErr: "unknown PSK identity", wantAlert: int(alertUnknownPSKIdentity)},
		{name: "ECDHE_PSK ClientKeyExchange identity length past its end", ours: oursServer, suite: ecdhePSK,
			peer:    setBody("ClientFlight", typeClientKeyExchange, func(p *mbPeer, b []byte) []byte { b[0] = 0xff; return b }),
			wantErr: "malformed ClientKeyExchange", wantAlert: int(alertDecodeError)},
		// GnuTLS CVE-2020-11501-like zero values; invalid points.
		{name: "ClientKeyExchange with an all-zero X25519 key", ours: oursServer, suite: ecdsaSuite,
			peer: ckxPublicKey(zero32), wantErr: "invalid ECDHE public key", wantAlert: int(alertIllegalParameter)},
		{name: "ECDHE_PSK ClientKeyExchange with an all-zero X25519 key", ours: oursServer, suite: ecdhePSK,
			peer: ckxPublicKey(zero32), wantErr: "invalid ECDHE public key", wantAlert: int(alertIllegalParameter)},
		{name: "ClientKeyExchange with the P-256 point at zero", ours: oursServer, suite: ecdsaSuite,
			config: func(c *Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP256} },
			peer:   ckxPublicKey(p256Point(0, 0)), wantErr: "invalid ECDHE public key", wantAlert: int(alertIllegalParameter)},
		{name: "ClientKeyExchange with a P-256 point off the curve", ours: oursServer, suite: ecdsaSuite,
			config: func(c *Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP256} },
			peer:   ckxPublicKey(p256Point(1, 1)), wantErr: "invalid ECDHE public key", wantAlert: int(alertIllegalParameter)},
		{name: "ClientKeyExchange with a compressed P-256 point", ours: oursServer, suite: ecdsaSuite,
			config: func(c *Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP256} },
			peer:   ckxPublicKey(append([]byte{2}, make([]byte, 32)...)), wantErr: "invalid ECDHE public key", wantAlert: int(alertIllegalParameter)},
		{name: "ServerKeyExchange with an all-zero X25519 key", ours: oursClient, suite: ecdsaSuite,
			peer:    skxEdit(func(skx *serverKeyExchangeMsg) { skx.publicKey = zero32 }),
			wantErr: "invalid ECDHE public key", wantAlert: int(alertIllegalParameter)},
	}
}

func mustP256() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// truncatingConn rewrites what the scripted peer writes: dup sends every
// datagram twice; cut, when it returns non-nil, sends that (a damaged
// copy) before the datagram itself.
type truncatingConn struct {
	net.Conn
	dup bool
	cut func([]byte) []byte
}

func (c *truncatingConn) Write(b []byte) (int, error) {
	if c.cut != nil {
		if d := c.cut(b); d != nil {
			c.Conn.Write(d)
		}
	}
	if c.dup {
		c.Conn.Write(b)
	}
	return c.Conn.Write(b)
}
