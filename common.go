package dtls

import (
	"bytes"
	"time"
)

// Protocol versions as they appear on the wire. DTLS versions count down
// (RFC 6347 §4.1): DTLS 1.0 is 0xfeff, DTLS 1.2 is 0xfefd.
const (
	VersionDTLS10 uint16 = 0xfeff
	VersionDTLS12 uint16 = 0xfefd
	VersionDTLS13 uint16 = 0xfefc
)

// recordType is the ContentType of a DTLS record (RFC 6347 §4.1, RFC 9146 §4).
type recordType uint8

const (
	recordTypeChangeCipherSpec recordType = 20
	recordTypeAlert            recordType = 21
	recordTypeHandshake        recordType = 22
	recordTypeApplicationData  recordType = 23
	recordTypeTLS12CID         recordType = 25 // RFC 9146
	recordTypeACK              recordType = 26 // RFC 9147 §7, DTLS 1.3 only
	recordTypeRRC              recordType = 27 // return_routability_check, RFC 9853 §4
)

func (t recordType) String() string {
	switch t {
	case recordTypeChangeCipherSpec:
		return "ChangeCipherSpec"
	case recordTypeAlert:
		return "Alert"
	case recordTypeHandshake:
		return "Handshake"
	case recordTypeApplicationData:
		return "ApplicationData"
	case recordTypeTLS12CID:
		return "tls12_cid"
	case recordTypeACK:
		return "ACK"
	case recordTypeRRC:
		return "return_routability_check"
	}
	return "unknown"
}

// handshakeType is the msg_type of a handshake message (RFC 5246 §7.4,
// RFC 6347 §4.3.2).
type handshakeType uint8

const (
	typeHelloRequest       handshakeType = 0
	typeClientHello        handshakeType = 1
	typeServerHello        handshakeType = 2
	typeHelloVerifyRequest handshakeType = 3
	typeNewSessionTicket   handshakeType = 4
	typeCertificate        handshakeType = 11
	typeServerKeyExchange  handshakeType = 12
	typeCertificateRequest handshakeType = 13
	typeServerHelloDone    handshakeType = 14
	typeCertificateVerify  handshakeType = 15
	typeClientKeyExchange  handshakeType = 16
	typeFinished           handshakeType = 20
)

// traceTypeHelloRetryRequest is what a Tracer sees as the HandshakeType
// of a DTLS 1.3 HelloRetryRequest, on the wire a ServerHello with a
// special random (RFC 8446 §4.1.3): RFC 8446's registry reserves 6,
// hello_retry_request, for it, and no message is sent with that type.
const traceTypeHelloRetryRequest handshakeType = 6

// traceHandshakeType is the HandshakeType a Tracer sees for a message of
// wire type t whose body (or first fragment) is body.
func traceHandshakeType(t handshakeType, body []byte) uint8 {
	if t == typeServerHello && len(body) >= 2+32 && bytes.Equal(body[2:2+32], helloRetryRequestRandom) {
		return uint8(traceTypeHelloRetryRequest)
	}
	return uint8(t)
}

func (t handshakeType) String() string {
	switch t {
	case typeHelloRequest:
		return "HelloRequest"
	case typeClientHello:
		return "ClientHello"
	case typeServerHello:
		return "ServerHello"
	case typeHelloVerifyRequest:
		return "HelloVerifyRequest"
	case traceTypeHelloRetryRequest:
		return "HelloRetryRequest"
	case typeNewSessionTicket:
		return "NewSessionTicket"
	case typeCertificate:
		return "Certificate"
	case typeServerKeyExchange:
		return "ServerKeyExchange"
	case typeCertificateRequest:
		return "CertificateRequest"
	case typeServerHelloDone:
		return "ServerHelloDone"
	case typeCertificateVerify:
		return "CertificateVerify"
	case typeClientKeyExchange:
		return "ClientKeyExchange"
	case typeFinished:
		return "Finished"
	case typeEncryptedExtensions:
		return "EncryptedExtensions"
	case typeKeyUpdate:
		return "KeyUpdate"
	case typeRequestConnectionID:
		return "RequestConnectionId"
	case typeNewConnectionID:
		return "NewConnectionId"
	case typeMessageHash:
		return "message_hash"
	}
	return "unknown"
}

// TLS extension numbers (IANA "TLS ExtensionType Values").
const (
	extensionServerName           uint16 = 0
	extensionSupportedCurves      uint16 = 10 // supported_groups
	extensionSupportedPoints      uint16 = 11 // ec_point_formats
	extensionSignatureAlgorithms  uint16 = 13
	extensionUseSRTP              uint16 = 14 // RFC 5764
	extensionALPN                 uint16 = 16
	extensionClientCertType       uint16 = 19 // RFC 7250
	extensionServerCertType       uint16 = 20 // RFC 7250
	extensionExtendedMasterSecret uint16 = 23 // RFC 7627
	extensionSessionTicket        uint16 = 35 // RFC 5077
	extensionConnectionID         uint16 = 54 // RFC 9146
	extensionRRC                  uint16 = 61 // rrc, RFC 9853 §3
	extensionRenegotiationInfo    uint16 = 0xff01
)

// TLS_EMPTY_RENEGOTIATION_INFO_SCSV (RFC 5746 §3.3).
const scsvRenegotiation uint16 = 0x00ff

const pointFormatUncompressed uint8 = 0

const compressionNone uint8 = 0

// Sizes fixed by the protocol.
const (
	recordHeaderLen    = 13 // type(1) version(2) epoch(2) sequence_number(6) length(2)
	handshakeHeaderLen = 12 // msg_type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3)
	randomLen          = 32
	finishedVerifyLen  = 12 // verify_data length of every TLS 1.2 suite we implement
	masterSecretLen    = 48
	maxSequenceNumber  = 1<<48 - 1 // sequence numbers are 48 bits and must not wrap (RFC 6347 §4.1)
)

// Limits. Each bounds memory or CPU that a peer, or a spoofed source, can
// make us spend.
const (
	// maxPlaintext is the largest record payload we accept or send
	// (RFC 6347 §4.1 / RFC 5246 §6.2.1: 2^14).
	maxPlaintext = 1 << 14
	// maxCiphertextExpansion bounds the AEAD overhead a record may add
	// (RFC 5246 §6.2.3: 2^14+2048 is the largest TLSCiphertext).
	maxCiphertextExpansion = 2048
	// maxHandshakeMessageLen bounds a single reassembled handshake message.
	// The largest legitimate message is a Certificate chain; 64 KiB is ample
	// for chains of a few certificates, and refusing a larger declared
	// length up front stops a peer from making us reserve 16 MiB
	// (OpenSSL CVE-2026-95690, pion CVE-2022-29189).
	maxHandshakeMessageLen = 64 << 10
	// maxHandshakeBuffered bounds the bytes held for handshake messages that
	// are not yet complete or not yet due (future message_seq), per peer.
	maxHandshakeBuffered = 128 << 10
	// maxReorderMessages bounds how far ahead of the next expected
	// message_seq we buffer messages (tinydtls #273: unbounded reorder queue).
	maxReorderMessages = 16
	// maxCookieLen is the largest cookie RFC 6347 allows (opaque<0..2^8-1>),
	// and the cookie we generate is 32 bytes.
	maxCookieLen = 255
	// maxReplayWindow is the largest anti-replay window Config.ReplayWindow
	// accepts; the window costs one bit per sequence number.
	maxReplayWindow = 4096
	// defaultReplayWindow is RFC 6347 §4.1.2.6's suggested minimum.
	defaultReplayWindow = 64
	// maxCIDLen is the longest Connection ID (RFC 9146 §3: cid<0..2^8-1>).
	// We size the CID of a received record from our own negotiated
	// length only, never from the peer's bytes (mbedTLS CVE-2022-46393).
	maxCIDLen = 255
	// maxCIDPadding bounds the zero padding a peer may put after the
	// content type in a DTLSInnerPlaintext (RFC 9146 §4), so that padding
	// cannot stretch a record past RFC 8446 §5.2's 2^14+256 bytes.
	maxCIDPadding = 256
	// maxCIDAttempts bounds how often a Listener asks
	// Config.ConnectionIDGenerator for a CID not already in use.
	maxCIDAttempts = 8
)

// Defaults for the DTLS-specific Config knobs.
const (
	// defaultMTU is the UDP payload size we fragment flights to. 1200 bytes
	// fits every IPv6 path (1280 minimum MTU less headers) and most tunnels.
	defaultMTU = 1200
	// minMTU is the smallest MTU Config.MTU accepts: a handshake header plus
	// a record header plus AEAD overhead must leave room for some payload.
	minMTU = 128
	// defaultRetransmitTimeout is the initial retransmission timer when
	// nothing is known of the round-trip time. RFC 6347 §4.2.4.1:
	// "Implementations SHOULD use an initial timer value of 1 second (the
	// minimum defined in RFC 6298) and double the value at each
	// retransmission, up to no less than the RFC 6298 maximum of 60
	// seconds." RFC 9147 §5.8.2 keeps the 1000 ms.
	defaultRetransmitTimeout = time.Second
	// srtpRetransmitTimeout is the initial timer of a Config that offers
	// DTLS-SRTP (Config.SRTPProtectionProfiles): RFC 9147 §5.8.2 "It is
	// RECOMMENDED that for DTLS-SRTP [RFC5764], a default timeout of 400
	// ms be used".
	srtpRetransmitTimeout = 400 * time.Millisecond
	// rttTimerFactor is RFC 9147 §5.8.2's rule for a known round-trip
	// time: "In settings where there is external information (for
	// instance, from an ICE [RFC8445] handshake, or from previous
	// connections to the same server) about the RTT, implementations
	// SHOULD use 1.5 times that RTT estimate as the retransmit timer." We
	// have such information from the cookie round trip (server) and from
	// a cached session (client). As a fraction: ×3/2.
	rttTimerFactorNum, rttTimerFactorDen = 3, 2
	// minRetransmitTimeout is the lowest a measured round-trip time takes
	// the timer when Config.RetransmitTimeout is not set. RFC 9147 gives
	// no floor, but it counts on ACKs sent on receipt; a DTLS 1.2 flight
	// is acknowledged only by the peer's next flight, so the time to an
	// answer includes the peer's key exchange and signing (milliseconds,
	// more under load), which a cookie round trip does not. libwebrtc
	// clamps its ICE-derived DTLS timer to 50 ms..3 s; 100 ms leaves room
	// for a peer's computation on a fast path, and keeps minResendInterval
	// (half of it) at the 50 ms it has always been.
	minRetransmitTimeout = 100 * time.Millisecond
	// maxRetransmitTimeout caps the exponential backoff: RFC 6347
	// §4.2.4.1 and RFC 9147 §5.8.2 double "up to no less than" RFC 6298's
	// maximum of 60 seconds.
	maxRetransmitTimeout = 60 * time.Second
	// maxRetransmissions bounds how often one flight is retransmitted on
	// a timer before the handshake gives up, whatever its deadline. It is
	// OpenSSL's DTLS1_TMO_ALERT_COUNT (12, per flight); mbedTLS and
	// wolfSSL stop once the doubled timer passes their 60 s maximum (6
	// retransmissions from 1 s), GnuTLS after a 60 s total. From the
	// default 1 s, 5 retransmissions fit in the default 60 s
	// HandshakeTimeout (at 1, 3, 7, 15 and 31 s); even from the 100 ms
	// floor the 10th comes after 60 s (at 102 s), so at the defaults the deadline
	// always ends a handshake first. The bound ends a handshake whose
	// deadline is longer (a context, a larger HandshakeTimeout) after
	// about 8 minutes at the 1 s start, instead of one flight a minute
	// for as long as the deadline allows.
	maxRetransmissions = 12
)

// keyExchange names how a cipher suite agrees on the premaster secret and
// authenticates the server. It decides the shape of ServerKeyExchange and
// ClientKeyExchange.
type keyExchange uint8

const (
	kxECDHEECDSA keyExchange = iota + 1 // ECDHE, server signs with ECDSA or Ed25519
	kxECDHERSA                          // ECDHE, server signs with RSA
	kxPSK                               // RFC 4279 plain PSK, no ServerKeyExchange unless a hint is sent
	kxECDHEPSK                          // RFC 5489 ECDHE_PSK, unsigned ECDHE parameters plus an identity
)

func (k keyExchange) isECDHE() bool { return k != kxPSK }
func (k keyExchange) isPSK() bool   { return k == kxPSK || k == kxECDHEPSK }
func (k keyExchange) usesCertificates() bool {
	return k == kxECDHEECDSA || k == kxECDHERSA
}

// defaultHandshakeTimeout bounds a handshake without a deadline of its own,
// so that a Dial to a dead peer returns instead of backing off forever.
const defaultHandshakeTimeout = 60 * time.Second
