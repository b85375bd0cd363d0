package dtls

import "crypto/tls"

// handshakeMessage is one DTLS 1.2 handshake message body. marshal and
// unmarshal see the body only: the 12-byte DTLS handshake header (type,
// length, message_seq, fragment fields) belongs to the handshake transport
// (flight.go), which also builds the transcript bytes.
type handshakeMessage interface {
	messageType() handshakeType
	// marshal returns the message body. It errors only on a value that
	// cannot be encoded (a field longer than its length prefix allows).
	marshal() ([]byte, error)
	// unmarshal parses a whole body; trailing bytes, bad lengths and
	// duplicate extensions make it return false.
	unmarshal(body []byte) bool
}

// handshakeHeader is the DTLS handshake header (RFC 6347 §4.2.2).
type handshakeHeader struct {
	typ            handshakeType
	length         uint32 // 24 bits: length of the whole message body
	messageSeq     uint16
	fragmentOffset uint32 // 24 bits
	fragmentLength uint32 // 24 bits
}

// clientHelloMsg is a ClientHello (RFC 6347 §4.2.1, RFC 5246 §7.4.1.2) and
// the extensions we understand.
type clientHelloMsg struct {
	original                     []byte // the body as received, set by unmarshal
	vers                         uint16
	random                       []byte
	sessionID                    []byte
	cookie                       []byte
	cipherSuites                 []uint16
	compressionMethods           []uint8
	serverName                   string
	supportedCurves              []tls.CurveID
	supportedPoints              []uint8
	supportedSignatureAlgorithms []tls.SignatureScheme
	extendedMasterSecret         bool
	secureRenegotiationSupported bool   // renegotiation_info extension present
	secureRenegotiation          []byte // its renegotiated_connection field
	alpnProtocols                []string
	ticketSupported              bool // session_ticket extension present
	sessionTicket                []byte
	srtpProtectionProfiles       []uint16 // use_srtp, RFC 5764
	srtpMKI                      []byte
	hasConnectionID              bool     // connection_id extension present (RFC 9146)
	connectionID                 []byte   // the CID the client wants to receive; may be empty
	clientCertTypes              []uint8  // client_certificate_type (RFC 7250), nil when absent
	serverCertTypes              []uint8  // server_certificate_type (RFC 7250), nil when absent
	extensions                   []uint16 // extension ids in the order received (set by unmarshal; ignored by marshal)
}

// serverHelloMsg is a ServerHello (RFC 5246 §7.4.1.3) and its extensions.
type serverHelloMsg struct {
	original                     []byte
	vers                         uint16
	random                       []byte
	sessionID                    []byte
	cipherSuite                  uint16
	compressionMethod            uint8
	serverNameAck                bool // empty server_name extension
	supportedPoints              []uint8
	extendedMasterSecret         bool
	secureRenegotiationSupported bool
	secureRenegotiation          []byte
	alpnProtocol                 string
	ticketSupported              bool
	hasSRTP                      bool
	srtpProtectionProfile        uint16
	srtpMKI                      []byte
	hasConnectionID              bool
	connectionID                 []byte
	hasClientCertType            bool
	clientCertType               uint8
	hasServerCertType            bool
	serverCertType               uint8
	extensions                   []uint16
}

// helloVerifyRequestMsg carries the server's stateless cookie
// (RFC 6347 §4.2.1).
type helloVerifyRequestMsg struct {
	vers   uint16
	cookie []byte
}

// certificateMsg is a Certificate: a chain of DER certificates, leaf first.
// With a raw public key (RFC 7250) it holds one SubjectPublicKeyInfo.
type certificateMsg struct {
	certificates [][]byte
}

// serverKeyExchangeMsg is a ServerKeyExchange. Its shape depends on the key
// exchange, which must be set in kind before unmarshal:
//
//	kxECDHEECDSA, kxECDHERSA: ServerECDHParams + signature (RFC 8422 §5.4)
//	kxPSK:                    psk_identity_hint (RFC 4279 §2)
//	kxECDHEPSK:               psk_identity_hint + ServerECDHParams, unsigned (RFC 5489 §2)
type serverKeyExchangeMsg struct {
	kind               keyExchange
	pskIdentityHint    []byte
	curveID            tls.CurveID
	publicKey          []byte
	signatureAlgorithm tls.SignatureScheme
	signature          []byte
}

// certificateRequestMsg is a TLS 1.2 CertificateRequest (RFC 5246 §7.4.4).
type certificateRequestMsg struct {
	certificateTypes             []uint8
	supportedSignatureAlgorithms []tls.SignatureScheme
	certificateAuthorities       [][]byte // DER distinguished names
}

type serverHelloDoneMsg struct{}

// certificateVerifyMsg is a TLS 1.2 CertificateVerify (RFC 5246 §7.4.8).
type certificateVerifyMsg struct {
	signatureAlgorithm tls.SignatureScheme
	signature          []byte
}

// clientKeyExchangeMsg is a ClientKeyExchange; set kind before unmarshal:
//
//	kxECDHEECDSA, kxECDHERSA: ECPoint (opaque<1..2^8-1>)
//	kxPSK:                    psk_identity (opaque<0..2^16-1>)
//	kxECDHEPSK:               psk_identity + ECPoint
type clientKeyExchangeMsg struct {
	kind        keyExchange
	pskIdentity []byte
	publicKey   []byte
}

type finishedMsg struct {
	verifyData []byte
}

// newSessionTicketMsg is RFC 5077 §3.3's NewSessionTicket.
type newSessionTicketMsg struct {
	lifetimeHint uint32
	ticket       []byte
}
