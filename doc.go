// Package dtls implements DTLS 1.3 (RFC 9147) and DTLS 1.2 (RFC 6347),
// TLS for datagram transports, in pure Go on the standard library's
// cryptography. Both sides speak 1.3 by default and fall back to 1.2 with
// a 1.2 peer (Config.MaxVersion VersionDTLS12 keeps a side on 1.2).
// DTLS 1.3 resumes sessions with tickets (RFC 8446 §4.6.1; a server may
// send several per connection, Config.SessionTicketsPerConnection, and a
// client uses each once while it has unused ones), with 0-RTT
// early data when both sides turn it on (Config.MaxEarlyData,
// Config.EnableEarlyData, Conn.WriteEarlyData, Conn.EarlyData), updates
// its keys before the AEAD limits of RFC 9147 §4.5.3 by itself or when
// asked (Conn.UpdateKeys), authenticates clients after the handshake
// (Conn.RequestClientCertificate), and carries raw public keys, DTLS-SRTP
// and Connection IDs, with return routability checks (RFC 9853), as 1.2
// does, and CID updates (RFC 9147 §9: Conn.RequestConnectionIDs,
// Conn.SwitchConnectionID, Conn.RotateConnectionID; see README for what
// it still lacks). Its key exchange is
// post-quantum by default: X25519MLKEM768 (the hybrid of X25519 and
// ML-KEM-768 on crypto/mlkem) comes first in the default
// Config.CurvePreferences. The client's first ClientHello carries an X25519
// share only, so it fits one datagram, and the HelloRetryRequest that the
// server's cookie costs anyway asks for the hybrid: no extra round trip,
// and no ML-KEM work before the cookie verifies. SecP256r1MLKEM768 is there
// when named. DTLS 1.2 ignores both.
//
// The API follows crypto/tls. A client dials:
//
//	conn, err := dtls.Dial("udp", "coap.example:5684", &dtls.Config{ServerName: "coap.example"})
//	...
//	conn.Write([]byte("one datagram"))   // one Write is one record
//	n, err := conn.Read(buf)             // one Read is one record
//
// A server listens on one UDP socket for many peers:
//
//	l, err := dtls.Listen("udp", ":5684", &dtls.Config{Certificates: certs})
//	for {
//		conn, err := l.Accept() // handshake already complete
//		...
//	}
//
// The listener answers every ClientHello without a valid cookie with a
// stateless HelloVerifyRequest (a HelloRetryRequest with a cookie for one
// that gets DTLS 1.3) and keeps no state for that peer, so spoofed floods
// cost it one HMAC each (and a hash of a 1.3 ClientHello into its
// cookie). What peers can make it hold is bounded by
// the Config fields under "Listener limits" (handshakes in progress, in
// all and per source; queued datagrams and bytes per connection; the
// Accept backlog; established connections; an idle timeout, 5 minutes by
// default), and Listener.Stats counts what it dropped and why. A peer with
// a Connection ID whose records arrive from a new address is followed
// there only after a return routability check (RFC 9853), when both sides
// negotiated it (Config.ReturnRoutabilityCheck).
// On Linux, Listen reads its address through several sockets
// (Config.ListenerSockets, GOMAXPROCS by default) bound with SO_REUSEPORT,
// which share one table of connections. Listener.Shutdown stops it
// gracefully, telling every peer with a close_notify;
// Config.HandshakeOutcome reports each server handshake, completed or
// failed, with a cause that errors.Is can match (ErrUnknownPSKIdentity,
// ErrBadCertificate, ErrHandshakeTimeout).
//
// Handshakes are retransmitted with exponential backoff (RFC 6347
// §4.2.4.1, RFC 9147 §5.8.2): the timer starts at 1 s, or 400 ms for
// DTLS-SRTP, or 1.5 times the round-trip time when one is known (a server
// measures it over the cookie exchange, a client keeps it in its session
// cache), follows the measured round trip once a flight is answered
// without loss, and doubles up to 60 s; a flight is retransmitted at most
// 12 times. Flights are fragmented to Config.MTU
// (1200 bytes by default) and reassembled within named limits.
//
// Listen, NewListener and Server refuse a Config with which no handshake
// can succeed: no Certificates, GetCertificate or PSK, or a certificate
// key that cannot sign (an RSA key below 1024 bits). A PSK server does not
// tell a client whether an identity exists (RFC 4279 §2): an unknown one
// fails like a wrong key, unless Config.InsecureUnknownPSKIdentityAlert.
// With raw public keys (Config.RawPublicKey, RFC 7250) a client verifies
// the server by its pinned key (Config.PeerPublicKeys) and needs no
// ServerName, and sessions resume bound to the peer's key.
//
// Implemented: ECDHE_ECDSA, ECDHE_RSA, PSK and ECDHE_PSK key exchanges with
// AES-GCM, ChaCha20-Poly1305, AES-CCM and AES-CCM_8 (see CipherSuites);
// X25519, P-256 and P-384 (and in 1.3 X25519MLKEM768, the default's first,
// and SecP256r1MLKEM768); the extended master secret (required by
// default); client certificates (Config.Certificates or
// Config.GetClientCertificate); ALPN; the RFC 5705 exporter; NSS key logs.
package dtls
