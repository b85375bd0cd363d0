package dtls

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"
)

// Config configures a DTLS client or server. A Config may be shared by many
// connections but must not be modified after it has been passed to a DTLS
// function. Fields with the same name as in crypto/tls.Config mean the same.
// A zero Config is a valid client or server configuration apart from the
// credentials it needs (a certificate or a PSK).
type Config struct {
	// Rand provides the entropy for nonces, randoms and keys. If nil,
	// crypto/rand.Reader is used.
	Rand io.Reader

	// Time returns the current time. If nil, time.Now is used.
	Time func() time.Time

	// Certificates contains one or more certificate chains to present to
	// the other side. The server picks the first one compatible with the
	// client's signature algorithms and suites.
	Certificates []tls.Certificate

	// GetCertificate returns a certificate for a ClientHello (SNI-driven
	// selection). If it returns nil, Certificates is used. When it is set
	// and the client sent a server_name, the server acknowledges the name
	// with an empty server_name extension (RFC 6066 §3), which pion/dtls
	// v3 clients fail to parse.
	GetCertificate func(*ClientHelloInfo) (*tls.Certificate, error)

	// GetClientCertificate, if not nil, is called on a client when the
	// server requests a certificate: a DTLS 1.2 CertificateRequest, a DTLS
	// 1.3 one in the handshake or after it (post-handshake
	// authentication, RFC 8446 §4.6.2, which the client then offers).
	// Certificates is then ignored, as in crypto/tls. It must return a
	// non-nil Certificate; one with no certificate chain (and, with
	// RawPublicKey, no private key) sends an empty Certificate message:
	// the client declines to authenticate. An error ends the handshake,
	// or after it the connection, with internal_error, and Handshake (or
	// Read) returns it. It may be called more than once per connection.
	GetClientCertificate func(*CertificateRequestInfo) (*tls.Certificate, error)

	// RootCAs is the set of roots a client verifies server certificates
	// against. If nil, the host's root set is used. Successful
	// verifications against a pool are cached for the certificates'
	// validity (see README): a pool may gain certificates while in use,
	// and a Config wanting different roots takes a new pool.
	RootCAs *x509.CertPool

	// ServerName is checked against the server's certificate and sent in
	// the server_name extension (unless it is an IP address). A client
	// needs it to verify a certificate; a client with a PSK,
	// InsecureSkipVerify, or RawPublicKey with PeerPublicKeys or
	// VerifyPeerCertificate does not.
	ServerName string

	// InsecureSkipVerify makes a client accept any server certificate.
	// For testing only.
	InsecureSkipVerify bool

	// VerifyPeerCertificate, if not nil, is called after normal
	// certificate verification (or instead of it with InsecureSkipVerify)
	// with the raw certificates and verified chains.
	VerifyPeerCertificate func(rawCerts [][]byte, verifiedChains [][]*x509.Certificate) error

	// VerifyConnection, if not nil, is called after the certificates are
	// checked and before the handshake finishes. Returning an error aborts
	// the handshake.
	VerifyConnection func(ConnectionState) error

	// ClientAuth is the server's policy for client certificates.
	ClientAuth tls.ClientAuthType

	// ClientCAs is the set of roots a server verifies client certificates
	// against when ClientAuth asks for verification. In DTLS 1.3 it also
	// verifies a certificate obtained after the handshake
	// (Conn.RequestClientCertificate) when ClientAuth is NoClientCert.
	// Successful verifications are cached as for RootCAs.
	ClientCAs *x509.CertPool

	// CipherSuites lists the enabled suites, by IANA id, in preference
	// order. If nil, a secure default list for the configured credentials
	// is used.
	CipherSuites []uint16

	// CurvePreferences lists the key exchange groups in preference order:
	// X25519, P-256 and P-384, and for DTLS 1.3 only also the hybrids of
	// draft-ietf-tls-ecdhe-mlkem, X25519MLKEM768 and SecP256r1MLKEM768
	// (ML-KEM-768 with X25519 or P-256). DTLS 1.2 ignores the hybrids.
	// If nil, the default is X25519MLKEM768, X25519, P-256, P-384. A DTLS
	// 1.3 client lists them all in supported_groups but sends one key
	// share, for the first classical group (X25519 by default), so that
	// its first ClientHello fits one datagram. A DTLS 1.3 server that
	// sends a HelloRetryRequest anyway (for its cookie) asks in it for its
	// most preferred group the client supports, the hybrid by default, at
	// no extra round trip, and does no ML-KEM work before the cookie
	// verifies; a server that would otherwise send none (cookie off, or a
	// 0-RTT ClientHello it admits without one) takes a share the client
	// sent for a group it accepts and lists its own preferences in
	// EncryptedExtensions (RFC 8446 §4.2.8, §4.2.7; RFC 9147 §5.1).
	CurvePreferences []tls.CurveID

	// MinVersion and MaxVersion bound the protocol versions: VersionDTLS12
	// or VersionDTLS13. Zero means VersionDTLS12 for MinVersion and
	// VersionDTLS13 (RFC 9147) for MaxVersion: 1.3 by default, 1.2 with a
	// 1.2 peer (README lists what 1.3 lacks). With MaxVersion
	// VersionDTLS13 a client offers both versions (supported_versions; a
	// PSK is offered in 1.3 as an external PSK with PSKIdentity,
	// Config.PSK called with a nil hint). A server with a certificate (a
	// key, with RawPublicKey) or a PSK answers a ClientHello offering 1.3
	// with 1.3 when they have a 1.3 suite and group in common; it answers
	// others with 1.2 and the downgrade sentinel of RFC 8446 §4.1.3 in its
	// random, which a client that offered 1.3 checks. Other servers speak
	// 1.2 alone, without it.
	MinVersion uint16
	MaxVersion uint16

	// NextProtos is the list of ALPN protocols, in preference order.
	NextProtos []string

	// KeyLogWriter receives master secrets in the NSS key log format, so
	// that Wireshark or tshark can decrypt the traffic. It weakens security:
	// for debugging only.
	KeyLogWriter io.Writer

	// PSK returns the pre-shared key for an identity. A server calls it
	// with the client's psk_identity; a client with the server's hint
	// (which may be empty). A nil PSK disables the PSK suites.
	PSK func(identityOrHint []byte) ([]byte, error)

	// PSKIdentity is the identity a client sends with PSK suites.
	PSKIdentity []byte

	// PSKIdentityHint is the hint a server sends in ServerKeyExchange under
	// PSK suites. If empty, no hint is sent with plain PSK.
	PSKIdentityHint []byte

	// InsecureUnknownPSKIdentityAlert makes a server answer a
	// psk_identity that PSK does not know (PSK returns an error or an
	// empty key) with an unknown_psk_identity alert as soon as the
	// ClientKeyExchange arrives. By default the server hides whether an
	// identity exists, as RFC 4279 §2 allows: it goes on with a random
	// key, so that the handshake fails at the client's Finished with
	// decrypt_error, as it does for a known identity with a wrong key,
	// and a client cannot enumerate identities by their alerts. The
	// server's own error still says the identity was unknown. The alert
	// is for debugging a deployment; it tells anyone which identities
	// exist.
	InsecureUnknownPSKIdentityAlert bool

	// MTU is the largest UDP payload, in bytes, the handshake sends.
	// Flights are fragmented to it. If 0, 1200 is used; values below 128
	// or above 65507 (the largest UDP payload over IPv4) are clamped.
	MTU int

	// RetransmitTimeout is the initial flight retransmission timeout (1.5
	// times a measured round-trip time raises it); it doubles on each
	// retransmission up to 60 s, and a flight is retransmitted at most 12
	// times. If 0, the timer follows RFC 9147
	// §5.8.2: 1.5 times the round-trip time when one is known (a server
	// measures it over the cookie exchange, a client takes it from a
	// cached session with the same server), else 1 s, or 400 ms if
	// SRTPProtectionProfiles is set (DTLS-SRTP). Once a flight is answered
	// without loss, the timer follows the measured round-trip time (RFC
	// 6298) but never drops below RetransmitTimeout, or 100 ms if it is 0.
	RetransmitTimeout time.Duration

	// ReplayWindow is the size of the anti-replay window in records
	// (RFC 6347 §4.1.2.6). If 0, 64 is used; at most 4096. A negative value
	// turns replay protection off.
	ReplayWindow int

	// InsecureSkipHelloVerify turns off the server's HelloVerifyRequest
	// cookie exchange. Without it a spoofed ClientHello makes the server
	// spend a handshake's state and CPU, and amplify traffic: only for
	// links where source addresses cannot be forged.
	InsecureSkipHelloVerify bool

	// InsecureAllowNoExtendedMasterSecret lets a peer that does not
	// negotiate the extended master secret (RFC 7627) connect. By default
	// such handshakes are refused, since without it a man in the middle
	// can synchronize two sessions' keys.
	InsecureAllowNoExtendedMasterSecret bool

	// Tracer, if not nil, receives every datagram, record, drop, handshake
	// message, flight, timer and epoch event of the connections made with
	// this Config, synchronously. It costs nothing when nil. It is called
	// from every connection's goroutines and from each of a Listener's
	// socket readers, so it must be safe for concurrent use.
	Tracer func(*TraceEvent)

	// HandshakeTimeout bounds a handshake that has no deadline or context
	// deadline of its own. If zero or negative, 60 s is used.
	HandshakeTimeout time.Duration

	// ConnectionIDGenerator, if not nil, turns on Connection IDs
	// (RFC 9146), which let a session survive a change of the client's
	// address (NAT rebinding). It returns the CID this side wants the
	// peer to put in the records it sends us, at most 255 bytes; an empty
	// CID (see OnlySendCIDGenerator) asks the peer to send plain records
	// while we still send the peer's CID if it wants one. A client offers
	// a CID in every ClientHello; a server answers only clients that
	// offer one. A Listener routes records by the CIDs it hands out and
	// calls the generator again for a CID already in use; CIDs of one
	// length (RandomCIDGenerator) route best. The CIDs are in
	// ConnectionState.LocalConnectionID and RemoteConnectionID. DTLS 1.3
	// negotiates them the same way (connection_id in ClientHello and
	// ServerHello, RFC 9147 §9) and carries them in the unified header
	// of every record from the handshake epoch on; after the handshake a
	// peer's RequestConnectionId is answered automatically with spare
	// CIDs from the generator (which must then keep to one length), at
	// most 8 held per connection, and a CID of ours retires once the
	// peer uses a newer one from its current address. Conn's
	// RequestConnectionIDs, SwitchConnectionID and RotateConnectionID
	// start updates (cid_dtls13.go).
	ConnectionIDGenerator func() []byte

	// ReturnRoutabilityCheck says how a connection with Connection IDs
	// follows a peer whose records arrive from a new address (RFC 9853).
	// The zero value is RRCBasic, after the RFC's SHOULDs: a side with
	// a ConnectionIDGenerator offers (client) or accepts (server) the
	// rrc extension, and when both sides did, an authenticated record
	// from a new address no longer moves the peer at once: we keep
	// sending to the old address, challenge the new one, and move when
	// the answer comes (see RRCPolicy). With a peer that did not
	// negotiate rrc, or with RRCOff, the newest authenticated record
	// moves the peer at once, as RFC 9146 §6 allows without it.
	ReturnRoutabilityCheck RRCPolicy

	// RawPublicKey turns on raw public keys (RFC 7250) with the
	// certificate suites, for devices that have keys but no PKI. A client
	// then asks for the server's key as a bare SubjectPublicKeyInfo and
	// offers its own the same way; a server uses a raw key with each
	// client that offers one, in either direction, and X.509 with the
	// others. Our raw key is the public half of Certificates[i].PrivateKey:
	// a tls.Certificate with only a PrivateKey will do (a server then
	// serves raw-key clients only). A peer's raw key is accepted only if
	// it is in PeerPublicKeys or VerifyPeerCertificate accepts it (which
	// then sees the DER SubjectPublicKeyInfo as rawCerts[0] and no
	// chains), or, without either, with InsecureSkipVerify on a client or
	// a ClientAuth below VerifyClientCertIfGiven on a server. Such a
	// client needs no ServerName: PeerPublicKeys or
	// VerifyPeerCertificate is its verification. In DTLS 1.3 the
	// certificate types are answered in EncryptedExtensions and the key
	// travels as one SPKI CertificateEntry (RFC 8446 §4.4.2); the rules
	// are the same.
	//
	// Sessions made with raw keys resume (ClientSessionCache, tickets,
	// session IDs), bound to the peer's key: ConnectionState reports it
	// on a resumed connection too, and a session resumes only where the
	// Config would accept that key again, so removing a key from
	// PeerPublicKeys revokes its sessions. VerifyPeerCertificate is not
	// called again on resumption (as in crypto/tls); VerifyConnection
	// is.
	RawPublicKey bool

	// PeerPublicKeys, if not empty, pins the raw public keys (RFC 7250) a
	// peer may authenticate with. Keys are the types crypto/x509 parses
	// (*ecdsa.PublicKey, ed25519.PublicKey, *rsa.PublicKey).
	PeerPublicKeys []crypto.PublicKey

	// SessionTicketsDisabled turns off session tickets, RFC 5077's in
	// DTLS 1.2 and NewSessionTicket in DTLS 1.3: a server neither issues
	// nor accepts them (it still resumes 1.2 sessions by ID from its
	// cache; 1.3 has no other resumption), a client neither asks for
	// nor offers them.
	SessionTicketsDisabled bool

	// SessionTicketsPerConnection is how many NewSessionTickets a DTLS
	// 1.3 server sends after each handshake (RFC 8446 §4.6.1 lets it send
	// several). Our client uses each ticket once while it holds unused
	// ones (RFC 8446 §C.4), keeping up to 8 per server in its
	// ClientSessionCache entry, so a client that opens several
	// connections to one server at once needs as many tickets to resume
	// them all without reusing one. Each ticket is its own message,
	// ACKed and retransmitted on its own (RFC 9147 §5.8.4, §7). If 0, 1,
	// as crypto/tls sends: a resumed connection gets a fresh ticket for
	// the next one, and a connection pays for one ticket only; at most 4.
	// Server and Listen refuse a negative or larger value. DTLS 1.2
	// sends one RFC 5077 ticket, whatever this says.
	SessionTicketsPerConnection int

	// SessionCacheSize bounds the sessions a server keeps for resumption
	// by session ID (RFC 5246 §7.3); the least recently used is evicted.
	// Each holds a master secret and the client's certificate chain, if
	// any: a few KB. Tickets need no server memory. If 0, 1024; at most
	// 262144. Listen refuses a negative or larger value.
	SessionCacheSize int

	// SessionLifetime bounds how long after its full handshake a session
	// may be resumed, by ID or ticket, on either side; a server sends it
	// as the ticket lifetime hint (RFC 5077 §5.6) and, less the time since
	// the full handshake, as a DTLS 1.3 ticket_lifetime (RFC 8446 §4.6.1). If 0, 24 hours, the
	// limit RFC 5246 §F.1.4 suggests; at most 7 days (RFC 8446 §4.6.1's
	// limit for tickets). Listen refuses a negative or longer value.
	SessionLifetime time.Duration

	// FleetSecret, if not nil, makes a server one of a fleet: every
	// server, and every socket of one server, given the same secret
	// verifies the HelloVerifyRequest cookies the others make and
	// resumes the session tickets they issue, with no shared store, so
	// a balancer may send any datagram of a client to any of them. The
	// cookie and ticket keys are then derived from it, with HKDF-SHA256
	// (RFC 5869), for each period of the wall clock, and change at the
	// same instant on every server: a cookie key every 5 minutes (a
	// cookie is accepted for 5 minutes after it was made, whichever key
	// made it), a ticket key every UTC day (a key opens tickets for
	// SessionLifetime after its day ends). The servers' clocks must
	// agree within a minute. It must be at least 32 random bytes,
	// generated once for the fleet and kept as secret as a ticket key:
	// it protects the master secret of every ticket. Changing it
	// invalidates every cookie and ticket made with the old one (clients
	// then make a full handshake). Keys set with SetSessionTicketKeys
	// take precedence for tickets. See "Running a fleet" in the README,
	// and ServerIDCIDGenerator for Connection IDs a balancer can route.
	FleetSecret []byte

	// ClientSessionCache, on a client, keeps sessions for resumption, one
	// entry per server, DTLS 1.2 or 1.3 (the latest handshake's; a session is
	// offered only to a handshake of its version; a DTLS 1.3 entry holds
	// up to 8 tickets of the server, each offered once while another is
	// unused, RFC 8446 §C.4), keyed by ServerName
	// or, without one, the server's address, with the
	// round-trip time measured on the connection that made them, which
	// starts the retransmission timer of the next handshake with that
	// server (see RetransmitTimeout). If nil, the client does not resume
	// sessions.
	ClientSessionCache ClientSessionCache

	// MaxEarlyData, on a DTLS 1.3 server, turns on 0-RTT (RFC 8446
	// §4.2.10): the tickets it issues allow that many bytes of early
	// data (max_early_data_size, §4.6.1; at most 65536), and a resuming
	// client may send its first datagrams with its ClientHello, in epoch
	// 1 (RFC 9147 §6.1). 0, the default, issues tickets without 0-RTT and
	// never accepts early data. Listen refuses a larger value than 65536
	// (a Server Conn uses 65536 then). Early data is accepted only for the first
	// PSK the client offers, a ticket that allowed it, with the ticket's
	// cipher suite and ALPN protocol, no HelloRetryRequest, a ticket age
	// that matches the time since the ticket was issued within 10
	// seconds (§8.3), and a ClientHello not seen before (the strike
	// register of §8.2; see EarlyDataReplayCheck for a fleet). Such a
	// ClientHello is answered without a cookie exchange (RFC 9147 §5.1
	// allows it for a PSK handshake): its binder proves the client holds
	// the ticket's key, and the server's flight is smaller than it.
	// A server reads what arrived with Conn.EarlyData once the handshake
	// completed, never through Read, so a replayed ClientHello (whose
	// sender cannot finish the handshake) never reaches the application;
	// but early data is not forward secret, and whoever recorded it can
	// have it delivered late, or at another server of a fleet instead of
	// the intended one: only idempotent requests belong in it.
	MaxEarlyData uint32

	// EarlyDataReplayCheck, if not nil, extends a 0-RTT server's
	// anti-replay from one server to a fleet: it is called for every
	// ClientHello whose early data the server would accept, with a
	// 32-byte id of that ClientHello (a hash of its PSK binder) and the
	// time after which the ClientHello cannot be accepted anyway, and
	// must report whether the id is new, recording it until expires, in
	// a store that every server of the fleet shares (an atomic
	// set-if-absent with that expiry). Without it each server keeps its
	// own record: a ClientHello accepted once per server, so up to once
	// per server of a fleet that shares FleetSecret. It runs on the
	// Listener's receive path: it must return quickly; returning false
	// only rejects the early data, the handshake goes on.
	EarlyDataReplayCheck func(id []byte, expires time.Time) bool

	// EnableEarlyData, on a DTLS 1.3 client, sends the datagrams given to
	// Conn.WriteEarlyData as 0-RTT data when the ClientSessionCache holds
	// a ticket of the server that allows as many bytes (and the
	// handshake does not need a HelloRetryRequest).
	// ConnectionState.EarlyDataAccepted says afterwards whether the
	// server took them; rejected early data is not sent again (RFC 8446
	// §4.2.10 leaves that to the application, which may need another
	// message for another ALPN protocol). Off by default: early data has
	// no forward secrecy and can be replayed.
	EnableEarlyData bool

	// SRTPProtectionProfiles lists the DTLS-SRTP protection profiles
	// (RFC 5764) in preference order: a client offers them, a server
	// picks the first of its own that the client offered. If empty,
	// use_srtp is neither offered nor accepted. In DTLS 1.3 the server
	// answers in EncryptedExtensions and the keys (Conn.SRTPKeys) come
	// from the 1.3 exporter (RFC 8446 §7.5 with the "dtls13" label
	// prefix of RFC 9147 §5.9), as pion/dtls v4 derives them.
	SRTPProtectionProfiles []uint16

	// SRTPMKI is, on a client, the SRTP Master Key Identifier it offers
	// (RFC 5764 §4.1.1, up to 255 bytes). On a server, a non-empty value
	// means it accepts MKIs: it echoes the client's MKI, which tells the
	// client that MKIs will be used; otherwise it answers with an empty
	// MKI.
	SRTPMKI []byte

	// HandshakeOutcome, if not nil, is called by a Listener when a
	// server handshake ends, completed or failed, with the peer's
	// address, the error (errors.Is-able: ErrUnknownPSKIdentity,
	// ErrBadCertificate, ErrHandshakeTimeout; AlertError for an alert
	// from the peer), the PSK identity or certificate the peer presented
	// and how long the handshake took: a cheap, typed way to log and
	// count handshakes, which a Tracer does only by seeing every packet.
	// HandshakeOutcome explains why this is a callback. It runs in the
	// handshake's goroutine, concurrently for different peers, before a
	// completed connection is queued for Accept: it should return soon.
	// It is not called for connections of Dial, Client or Server, whose
	// caller gets the error from Handshake.
	HandshakeOutcome func(HandshakeOutcome)

	// Listener limits. A Listener (Listen, NewListener) bounds what
	// peers can make it hold. The zero value of each field below means
	// the default it states; Listen and NewListener refuse a negative
	// count and a value past a stated maximum. Memory at worst: about
	// MaxHandshakes × 128 KiB for handshakes, and per connection about
	// 10 KB plus MaxQueuedBytes.
	//
	// MaxHandshakes bounds the handshakes a Listener runs at once, each
	// with a goroutine and up to 128 KiB of buffered messages. When every
	// slot is taken, a new peer's cookie-verified ClientHello takes the
	// slot of the handshake that has gone longest without a new message
	// from its peer, if that is at least 1 s; otherwise it is dropped and
	// the client retransmits. A connection whose handshake completed
	// keeps its slot while it waits for room in a full Accept backlog
	// (AcceptBacklog), and is never evicted for a new peer. A handshake
	// with no new message from its peer for a quarter of
	// HandshakeTimeout (15 s by default) ends; one that progresses may
	// take all of HandshakeTimeout.
	// If 0, 512.
	MaxHandshakes int

	// MaxHandshakesPerSource bounds the handshakes in progress from one
	// IPv4 address or one IPv6 /64, so that one host cannot take every
	// slot; it is at most MaxHandshakes. When a source has no slot left,
	// its own most stalled handshake makes room as above. If 0, 64.
	MaxHandshakesPerSource int

	// MaxConnections bounds a Listener's established connections,
	// accepted or waiting for Accept. A handshake that completes when
	// the Listener holds MaxConnections ends the connection whose peer
	// has been silent longest: its Read returns ErrEvicted and its peer
	// gets a close_notify. An idle connection costs about 10 KB. If 0,
	// 10000.
	MaxConnections int

	// IdleTimeout ends a connection whose peer sent no record that
	// authenticated for this long: its Read (and Write) then return
	// ErrIdleTimeout. For a Listener's connections, 0 means 5 minutes:
	// RFC 4787 (REQ-5) lets a NAT forget an idle UDP mapping after 5
	// minutes, and a peer without a Connection ID then comes back from
	// a new port as a new connection, so the old one would only hold
	// memory. Set it longer for devices that sleep longer and keep their
	// session with a Connection ID. For a Conn from Dial, Client or
	// Server, 0 means none, and the timeout is checked by Read. A
	// negative value means none. A Listener checks once a second, and
	// never ends a connection sooner than HandshakeTimeout after its last
	// record: the peer may still be finishing its handshake.
	IdleTimeout time.Duration

	// MaxQueuedDatagrams bounds the datagrams a Listener queues for one
	// connection whose reader has not taken them yet; more are dropped,
	// as by a full socket buffer. If 0, 64; at most 4096.
	MaxQueuedDatagrams int

	// MaxQueuedBytes bounds the memory those datagrams hold, counted in
	// the buffers that hold them (a datagram is copied into the smallest
	// of 128, 512, 2048, 9216, 20480 or 65507 bytes that fits it). One
	// datagram is always taken. If 0, 128 KiB.
	MaxQueuedBytes int

	// AcceptBacklog bounds the connections whose handshake completed and
	// that wait for Listener.Accept. A connection that finds the backlog
	// full waits up to 1 s for room, keeping its handshake slot
	// (MaxHandshakes, MaxHandshakesPerSource), so that a burst of
	// handshakes completing faster than Accept is called loses none;
	// meanwhile those slots are not given to new peers (their
	// ClientHellos are dropped and retransmitted). If the backlog is still
	// full after that, the connection is closed with a close_notify
	// (ListenerStats.BacklogFull), and the peer may try again.
	// If 0, 128; at most 65536.
	AcceptBacklog int

	// ReceiveBufferSize is the socket receive buffer, in bytes, a
	// Listener asks the kernel for, so that bursts of handshakes are not
	// dropped by the socket. The kernel may grant less
	// (net.core.rmem_max on Linux): ListenerStats.ReceiveBufferSize says
	// what it granted. If 0, 4 MiB; a negative value leaves the socket's
	// buffer as it is.
	ReceiveBufferSize int

	// ListenerSockets is the number of sockets Listen binds to its
	// address on Linux, with SO_REUSEPORT, each read by its own
	// goroutine: the kernel spreads peers over them by address, so that
	// receiving scales with cores, and all of them share one table of
	// connections, so that a peer whose address or port changes still
	// reaches its connection. If 0, GOMAXPROCS when Listen is called; at
	// most 64. Elsewhere, and with NewListener, a Listener has one
	// socket. ReceiveBufferSize applies to each socket.
	ListenerSockets int

	// resumption is a server's ticket keys and session cache, created on
	// first use and shared by Clones.
	resumption *serverResumption
}

// minServerRSAKeyBits is the smallest RSA key a server accepts in
// Config.Certificates. crypto/rsa refuses to sign with a key below 1024
// bits since Go 1.24 (https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size:
// "crypto/rsa: 512-bit keys are insecure"), so a server with one fails
// every certificate handshake; GODEBUG=rsa1024min=0 lifts that, but such a
// key can be factored by anyone with a few hours of computing, so we
// refuse it regardless. Peers want more: our own clients (like OpenSSL at
// its default security level 2) refuse server keys below minRSAKeyBits
// (2048).
const minServerRSAKeyBits = 1024

// hiddenPSKLen is the length of the random key a server uses in place of
// the PSK of an identity it does not know (see
// Config.InsecureUnknownPSKIdentityAlert): 32 bytes, as long as a strong
// real key.
const hiddenPSKLen = 32

// checkServer reports a server Config that cannot complete any handshake,
// so that Listen and NewListener fail at once instead of every handshake
// failing later: it has no credential at all (no Certificates,
// GetCertificate or PSK), or one of Certificates has a private key that
// cannot sign (not a crypto.Signer, or an RSA key below
// minServerRSAKeyBits). A Certificates entry with only a PrivateKey is a
// raw public key (RawPublicKey) and passes.
func (c *Config) checkServer() error {
	if c == nil || len(c.Certificates) == 0 && c.GetCertificate == nil && c.PSK == nil {
		return errors.New("dtls: a server Config needs a credential: Certificates, GetCertificate or PSK")
	}
	if err := c.checkVersions(); err != nil {
		return err
	}
	if n := c.SessionTicketsPerConnection; n < 0 || n > maxSessionTicketsPerConnection {
		return fmt.Errorf("dtls: Config.SessionTicketsPerConnection (%d) is not between 0 and %d", n, maxSessionTicketsPerConnection)
	}
	for i := range c.Certificates {
		cert := &c.Certificates[i]
		signer, ok := cert.PrivateKey.(crypto.Signer)
		if !ok {
			return fmt.Errorf("dtls: Config.Certificates[%d] has no private key that can sign (a crypto.Signer)", i)
		}
		if k, ok := signer.Public().(*rsa.PublicKey); ok && k.N.BitLen() < minServerRSAKeyBits {
			return fmt.Errorf("dtls: Config.Certificates[%d] has a %d-bit RSA key; at least %d bits are needed (crypto/rsa refuses to sign with less; clients, ours included, want 2048)", i, k.N.BitLen(), minServerRSAKeyBits)
		}
	}
	return nil
}

// checkClient reports a client Config with no way to authenticate a
// server: a PSK; a certificate verified against ServerName; with
// RawPublicKey, PeerPublicKeys (pinning) or VerifyPeerCertificate; or
// InsecureSkipVerify. With RawPublicKey and no PSK, ServerName alone does
// not do: a raw key carries no name, and such a client accepts no X.509
// certificate.
func (c *Config) checkClient() error {
	if err := c.checkVersions(); err != nil {
		return err
	}
	switch {
	case c.PSK != nil || c.InsecureSkipVerify:
		return nil
	case c.RawPublicKey:
		if len(c.PeerPublicKeys) > 0 || c.VerifyPeerCertificate != nil {
			return nil
		}
		return errors.New("dtls: cannot verify the server's raw public key: a RawPublicKey client needs PeerPublicKeys or VerifyPeerCertificate, or InsecureSkipVerify, or a PSK")
	case c.ServerName != "":
		return nil
	}
	return errors.New("dtls: the client cannot verify the server: set ServerName (certificates), RawPublicKey with PeerPublicKeys (raw public keys), a PSK, or InsecureSkipVerify")
}

// RandomCIDGenerator returns a ConnectionIDGenerator of random CIDs of
// size bytes from crypto/rand. A size of 0 is OnlySendCIDGenerator.
func RandomCIDGenerator(size int) func() []byte {
	return func() []byte {
		cid := make([]byte, size)
		if _, err := rand.Read(cid); err != nil {
			panic("dtls: crypto/rand failed: " + err.Error())
		}
		return cid
	}
}

// OnlySendCIDGenerator returns a ConnectionIDGenerator for a side that
// sends the peer's CID but wants none in the records it receives, as a
// client with a socket of its own may.
func OnlySendCIDGenerator() func() []byte {
	return func() []byte { return []byte{} }
}

// CertificateRequestInfo describes a server's CertificateRequest for
// GetClientCertificate, as crypto/tls's does.
type CertificateRequestInfo struct {
	// AcceptableCAs are the DER distinguished names of the CAs the server
	// accepts (certificate_authorities); empty when it names none.
	AcceptableCAs [][]byte
	// SignatureSchemes are the schemes the server accepts for the
	// CertificateVerify.
	SignatureSchemes []tls.SignatureScheme
	// Version is the negotiated DTLS version.
	Version uint16

	ctx context.Context
}

// Context returns the context of the handshake in progress, or
// context.Background() after the handshake (post-handshake
// authentication).
func (cri *CertificateRequestInfo) Context() context.Context {
	if cri.ctx == nil {
		return context.Background()
	}
	return cri.ctx
}

// SupportsCertificate returns nil if cert can sign with one of the
// schemes the server accepts, else an error saying why not. It does not
// check AcceptableCAs.
func (cri *CertificateRequestInfo) SupportsCertificate(cert *tls.Certificate) error {
	signer, err := certificateSigner(cert)
	if err != nil {
		return err
	}
	_, err = selectSignatureScheme(cri.Version, signer, cri.SignatureSchemes)
	return err
}

// hasClientCertificate reports whether a client may have a certificate
// to present: Certificates or GetClientCertificate.
func (c *Config) hasClientCertificate() bool {
	return len(c.Certificates) > 0 || c.GetClientCertificate != nil
}

// ClientHelloInfo describes a ClientHello for GetCertificate.
type ClientHelloInfo struct {
	CipherSuites      []uint16
	ServerName        string
	SupportedCurves   []tls.CurveID
	SignatureSchemes  []tls.SignatureScheme
	SupportedProtos   []string
	SupportedVersions []uint16
}

// ConnectionState describes a DTLS connection.
type ConnectionState struct {
	Version               uint16
	HandshakeComplete     bool
	DidResume             bool
	CipherSuite           uint16
	NegotiatedProtocol    string
	ServerName            string
	PeerCertificates      []*x509.Certificate
	VerifiedChains        [][]*x509.Certificate
	ExtendedMasterSecret  bool
	SRTPProtectionProfile uint16
	LocalConnectionID     []byte // our CID, carried by the records we receive (RFC 9146); empty if none
	RemoteConnectionID    []byte // the peer's CID, carried by the records we send; empty if none
	// ReturnRoutabilityCheck: both sides sent the rrc extension (RFC 9853),
	// so a new address of the peer is validated before we send there.
	ReturnRoutabilityCheck bool
	PSKIdentity            []byte
	PSKIdentityHint        []byte
	CurveID                tls.CurveID
	SignatureScheme        tls.SignatureScheme
	PeerPublicKey          crypto.PublicKey // the peer's raw public key (RFC 7250); nil with X.509
	// EarlyDataAccepted reports whether the server accepted the
	// client's 0-RTT data (DTLS 1.3, RFC 8446 §4.2.10; see
	// Config.MaxEarlyData and Config.EnableEarlyData).
	EarlyDataAccepted bool
	// HandshakeStart is when the handshake started: on a client, when
	// Handshake (or the first Read or Write) began; on a Listener's
	// connection, when the ClientHello with a valid cookie arrived (the
	// stateless cookie exchange before it is not counted). It is read
	// from the system clock, not Config.Time.
	HandshakeStart time.Time
	// HandshakeDuration is how long the handshake took, from
	// HandshakeStart to its completion, on the monotonic clock; 0 in
	// VerifyConnection, before it completed.
	HandshakeDuration time.Duration
	ekm               func(label string, context []byte, length int) ([]byte, error)
}

// ExportKeyingMaterial returns length bytes of keying material derived
// from the master secret per RFC 5705.
func (cs *ConnectionState) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if cs.ekm == nil {
		return nil, errHandshakeNotComplete
	}
	return cs.ekm(label, context, length)
}

func (c *Config) rand() io.Reader {
	if c == nil || c.Rand == nil {
		return rand.Reader
	}
	return c.Rand
}

func (c *Config) time() time.Time {
	if c == nil || c.Time == nil {
		return time.Now()
	}
	return c.Time()
}

func (c *Config) mtu() int {
	if c == nil {
		return defaultMTU
	}
	return clampMTU(c.MTU)
}

// clampMTU is the one place an MTU is bounded: 0 means defaultMTU, and
// other values are clamped to [minMTU, maxMTU].
func clampMTU(mtu int) int {
	switch {
	case mtu == 0:
		return defaultMTU
	case mtu < minMTU:
		return minMTU
	case mtu > maxMTU:
		return maxMTU
	}
	return mtu
}

// retransmitTimeouts returns the initial retransmission timeout, when no
// round-trip time is known, and the floor of one derived from a measured
// RTT: RetransmitTimeout for both if set, else RFC 9147 §5.8.2's 1 s (400
// ms for DTLS-SRTP) and minRetransmitTimeout.
func (c *Config) retransmitTimeouts() (initial, floor time.Duration) {
	switch {
	case c == nil:
		return defaultRetransmitTimeout, minRetransmitTimeout
	case c.RetransmitTimeout > 0:
		d := min(c.RetransmitTimeout, maxRetransmitTimeout)
		return d, d
	case len(c.SRTPProtectionProfiles) > 0:
		return srtpRetransmitTimeout, minRetransmitTimeout
	}
	return defaultRetransmitTimeout, minRetransmitTimeout
}

// replayWindow returns the anti-replay window size, 0 meaning off.
func (c *Config) replayWindow() int {
	switch {
	case c == nil || c.ReplayWindow == 0:
		return defaultReplayWindow
	case c.ReplayWindow < 0:
		return 0
	case c.ReplayWindow > maxReplayWindow:
		return maxReplayWindow
	}
	return c.ReplayWindow
}

func (c *Config) handshakeTimeout() time.Duration {
	if c == nil || c.HandshakeTimeout <= 0 {
		return defaultHandshakeTimeout
	}
	return c.HandshakeTimeout
}

// defaultCurvePreferences is CurvePreferences' default. The hybrid comes
// first: DTLS 1.3 clients send it only when a HelloRetryRequest asks, and
// DTLS 1.2 skips it (implementedCurves, selectCurve).
var defaultCurvePreferences = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384}

// minVersion and maxVersion are MinVersion and MaxVersion with their
// defaults; checkVersions reports values that are not DTLS versions we
// speak.
func (c *Config) minVersion() uint16 {
	if c == nil || c.MinVersion == 0 {
		return VersionDTLS12
	}
	return c.MinVersion
}

func (c *Config) maxVersion() uint16 {
	if c == nil || c.MaxVersion == 0 {
		return defaultMaxVersion
	}
	return c.MaxVersion
}

// defaultMaxVersion is MaxVersion's default: DTLS 1.3, on both sides
// (issue 12).
const defaultMaxVersion = VersionDTLS13

// supports reports whether the Config enables protocol version vers.
// DTLS versions count down (1.2 is 0xfefd, 1.3 0xfefc), so the range
// test is reversed.
func (c *Config) supports(vers uint16) bool {
	return vers <= c.minVersion() && vers >= c.maxVersion()
}

// serves13 reports whether a server with this Config answers a
// ClientHello offering DTLS 1.3 with 1.3: enabled by MaxVersion, and with
// credentials the 1.3 handshake implements (a certificate or, with
// RawPublicKey, a key; or an external PSK). select13 and helloGate.check13
// both decide through it. A server that does not is a 1.2 server and puts
// no downgrade sentinel in its random.
func (c *Config) serves13() bool {
	return c.supports(VersionDTLS13) &&
		(len(c.Certificates) > 0 || c.GetCertificate != nil || c.PSK != nil)
}

func (c *Config) checkVersions() error {
	for _, v := range []uint16{c.MinVersion, c.MaxVersion} {
		if v != 0 && v != VersionDTLS12 && v != VersionDTLS13 {
			return fmt.Errorf("dtls: Config version %#04x is not VersionDTLS12 or VersionDTLS13", v)
		}
	}
	if c.minVersion() < c.maxVersion() {
		return errors.New("dtls: Config.MinVersion is newer than MaxVersion")
	}
	return nil
}

func (c *Config) curvePreferences() []tls.CurveID {
	if c == nil || len(c.CurvePreferences) == 0 {
		return defaultCurvePreferences
	}
	return c.CurvePreferences
}

// Clone returns a shallow copy of c.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	configMu.Lock() // resumption may be being set
	n := *c
	configMu.Unlock()
	return &n
}
