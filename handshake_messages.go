package dtls

import (
	"crypto/tls"
	"errors"
	"slices"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// handshakeMessage is one DTLS 1.2 handshake message body. marshal and
// unmarshal see the body only: the 12-byte DTLS handshake header (type,
// length, message_seq, fragment fields) belongs to the handshake transport
// (flight.go), which also builds the transcript bytes.
type handshakeMessage interface {
	messageType() handshakeType
	// marshal returns the message body. It errors only on a value that
	// cannot be encoded (a field longer than its length prefix allows) or
	// that unmarshal would refuse (an empty list the format requires to be
	// non-empty, a 33-byte session_id...), so its output always parses.
	marshal() ([]byte, error)
	// unmarshal parses a whole body; trailing bytes, bad lengths and
	// duplicate extensions make it return false.
	unmarshal(body []byte) bool
}

// Bounds fixed by the wire format. unmarshal enforces them, and marshal
// refuses a value outside them, so that whatever marshal produces,
// unmarshal accepts.
const (
	// maxSessionIDLen: SessionID<0..32> (RFC 5246 §7.4.1.2).
	maxSessionIDLen = 32
	// maxVerifyDataLen bounds Finished.verify_data. Every suite we
	// implement uses finishedVerifyLen (12) bytes and the handshake checks
	// that; the codec accepts 1..64 so the exact check lives in one place.
	maxVerifyDataLen = 64
	// curveTypeNamedCurve is ECCurveType named_curve, the only curve type
	// RFC 8422 §5.4 still allows in ServerECDHParams.
	curveTypeNamedCurve = 3
	// hostNameType is NameType host_name (RFC 6066 §3).
	hostNameType = 0
)

// unmarshalHandshakeMessage parses a complete message body of type typ. kx
// is the negotiated key exchange: it decides the shape of ServerKeyExchange
// and ClientKeyExchange and is ignored for every other type. It reports
// false for a malformed body and for a type it does not parse (HelloRequest
// among them: we never renegotiate); the caller decides between
// alertDecodeError and alertUnexpectedMessage.
func unmarshalHandshakeMessage(typ handshakeType, body []byte, kx keyExchange) (handshakeMessage, bool) {
	var m handshakeMessage
	switch typ {
	case typeClientHello:
		m = new(clientHelloMsg)
	case typeServerHello:
		m = new(serverHelloMsg)
	case typeHelloVerifyRequest:
		m = new(helloVerifyRequestMsg)
	case typeNewSessionTicket:
		m = new(newSessionTicketMsg)
	case typeCertificate:
		m = new(certificateMsg)
	case typeServerKeyExchange:
		m = &serverKeyExchangeMsg{kind: kx}
	case typeCertificateRequest:
		m = new(certificateRequestMsg)
	case typeServerHelloDone:
		m = new(serverHelloDoneMsg)
	case typeCertificateVerify:
		m = new(certificateVerifyMsg)
	case typeClientKeyExchange:
		m = &clientKeyExchangeMsg{kind: kx}
	case typeFinished:
		m = new(finishedMsg)
	default:
		return nil, false
	}
	if !m.unmarshal(body) {
		return nil, false
	}
	return m, true
}

// handshakeHeader is the DTLS handshake header (RFC 6347 §4.2.2).
type handshakeHeader struct {
	typ            handshakeType
	length         uint32 // 24 bits: length of the whole message body
	messageSeq     uint16
	fragmentOffset uint32 // 24 bits
	fragmentLength uint32 // 24 bits
}

// unmarshal parses the first handshakeHeaderLen bytes of b; the fragment
// that follows belongs to the caller. It rejects a fragment that runs past
// the end of its message (fragment_offset+fragment_length > length: GnuTLS
// CVE-2026-33846) and a declared length above maxHandshakeMessageLen, so
// that reassembly never reserves room for a message we would refuse anyway
// (OpenSSL CVE-2026-95690, pion CVE-2022-29189). On failure h is unchanged.
func (h *handshakeHeader) unmarshal(b []byte) bool {
	if len(b) < handshakeHeaderLen {
		return false
	}
	s := cryptobyte.String(b[:handshakeHeaderLen])
	var typ uint8
	var hh handshakeHeader
	if !s.ReadUint8(&typ) || !s.ReadUint24(&hh.length) ||
		!s.ReadUint16(&hh.messageSeq) ||
		!s.ReadUint24(&hh.fragmentOffset) || !s.ReadUint24(&hh.fragmentLength) {
		return false
	}
	hh.typ = handshakeType(typ)
	// Both fragment fields are below 2^24, so the sum cannot overflow.
	if hh.length > maxHandshakeMessageLen ||
		hh.fragmentOffset+hh.fragmentLength > hh.length {
		return false
	}
	*h = hh
	return true
}

// appendTo appends the handshakeHeaderLen-byte encoding of h to b. The
// length and fragment fields are 24 bits on the wire and higher bits are
// dropped: callers keep them below maxHandshakeMessageLen.
func (h *handshakeHeader) appendTo(b []byte) []byte {
	return append(b, byte(h.typ),
		byte(h.length>>16), byte(h.length>>8), byte(h.length),
		byte(h.messageSeq>>8), byte(h.messageSeq),
		byte(h.fragmentOffset>>16), byte(h.fragmentOffset>>8), byte(h.fragmentOffset),
		byte(h.fragmentLength>>16), byte(h.fragmentLength>>8), byte(h.fragmentLength))
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
	rrc                          bool     // rrc extension present (RFC 9853 §3), empty
	clientCertTypes              []uint8  // client_certificate_type (RFC 7250), nil when absent
	serverCertTypes              []uint8  // server_certificate_type (RFC 7250), nil when absent
	extensions                   []uint16 // extension ids in the order received (set by unmarshal; ignored by marshal)
}

// helloBuilderSize is the capacity the builders of hellos, their
// extensions and ServerKeyExchange start with: enough for the usual
// message, so that a builder does not grow step by step (it still grows
// for a larger one).
const helloBuilderSize = 256

func (*clientHelloMsg) messageType() handshakeType { return typeClientHello }

func (m *clientHelloMsg) marshal() ([]byte, error) {
	if len(m.random) != randomLen {
		return nil, errors.New("dtls: ClientHello random is not 32 bytes")
	}
	if len(m.sessionID) > maxSessionIDLen {
		return nil, errors.New("dtls: ClientHello session_id longer than 32 bytes")
	}
	if len(m.cipherSuites) == 0 || len(m.compressionMethods) == 0 {
		return nil, errors.New("dtls: ClientHello without cipher suites or compression methods")
	}
	if strings.HasSuffix(m.serverName, ".") {
		return nil, errors.New("dtls: ClientHello server_name with a trailing dot")
	}

	// The extensions and addExtension's scratch share one allocation; the
	// capacities are capped, so neither can grow into the other.
	buf := make([]byte, 2*helloBuilderSize)
	exts := cryptobyte.NewBuilder(buf[:0:helloBuilderSize])
	data := cryptobyte.NewBuilder(buf[helloBuilderSize:helloBuilderSize])
	if m.serverName != "" {
		// RFC 6066 §3
		addExtension(exts, data, extensionServerName, func(b *cryptobyte.Builder) {
			// ServerNameList with one entry: name_type, HostName<1..2^16-1>.
			// Its length is known, so no length-prefixed child builder.
			if len(m.serverName) > 0xffff-3 {
				b.SetError(errVectorTooLong)
				return
			}
			b.AddUint16(uint16(1 + 2 + len(m.serverName)))
			b.AddUint8(hostNameType)
			addBytes16(b, []byte(m.serverName))
		})
	}
	if len(m.supportedCurves) > 0 {
		// RFC 8422 §5.1.1
		addExtension(exts, data, extensionSupportedCurves, func(b *cryptobyte.Builder) {
			addUint16List(b, m.supportedCurves)
		})
	}
	if len(m.supportedPoints) > 0 {
		// RFC 8422 §5.1.2
		addExtension(exts, data, extensionSupportedPoints, func(b *cryptobyte.Builder) {
			addBytes8(b, m.supportedPoints)
		})
	}
	if len(m.supportedSignatureAlgorithms) > 0 {
		// RFC 5246 §7.4.1.4.1
		addExtension(exts, data, extensionSignatureAlgorithms, func(b *cryptobyte.Builder) {
			addUint16List(b, m.supportedSignatureAlgorithms)
		})
	}
	if len(m.srtpProtectionProfiles) > 0 {
		// RFC 5764 §4.1.1
		addExtension(exts, data, extensionUseSRTP, func(b *cryptobyte.Builder) {
			addUint16List(b, m.srtpProtectionProfiles)
			addBytes8(b, m.srtpMKI)
		})
	}
	if len(m.alpnProtocols) > 0 {
		// RFC 7301 §3.1
		addExtension(exts, data, extensionALPN, func(b *cryptobyte.Builder) {
			addALPN(b, m.alpnProtocols)
		})
	}
	if len(m.clientCertTypes) > 0 {
		// RFC 7250 §3
		addExtension(exts, data, extensionClientCertType, func(b *cryptobyte.Builder) {
			addBytes8(b, m.clientCertTypes)
		})
	}
	if len(m.serverCertTypes) > 0 {
		addExtension(exts, data, extensionServerCertType, func(b *cryptobyte.Builder) {
			addBytes8(b, m.serverCertTypes)
		})
	}
	if m.extendedMasterSecret {
		// RFC 7627 §5.1
		addExtension(exts, data, extensionExtendedMasterSecret, nil)
	}
	if m.ticketSupported {
		// RFC 5077 §3.2
		addExtension(exts, data, extensionSessionTicket, func(b *cryptobyte.Builder) {
			b.AddBytes(m.sessionTicket)
		})
	}
	if m.hasConnectionID {
		// RFC 9146 §3
		addExtension(exts, data, extensionConnectionID, func(b *cryptobyte.Builder) {
			addBytes8(b, m.connectionID)
		})
	}
	if m.rrc {
		// RFC 9853 §3: extension_data is empty.
		addExtension(exts, data, extensionRRC, nil)
	}
	if m.secureRenegotiationSupported {
		// RFC 5746 §3.2
		addExtension(exts, data, extensionRenegotiationInfo, func(b *cryptobyte.Builder) {
			addBytes8(b, m.secureRenegotiation)
		})
	}
	extBytes, err := exts.Bytes()
	if err != nil {
		return nil, err
	}

	b := cryptobyte.NewBuilder(make([]byte, 0, helloBuilderSize+len(extBytes)))
	b.AddUint16(m.vers)
	b.AddBytes(m.random)
	addBytes8(b, m.sessionID)
	addBytes8(b, m.cookie)
	addUint16List(b, m.cipherSuites)
	addBytes8(b, m.compressionMethods)
	// Without extensions the block is left out, as TLS 1.2 allows.
	if len(extBytes) > 0 {
		addBytes16(b, extBytes)
	}
	return b.Bytes()
}

// unmarshal parses a ClientHello body. Every field it sets aliases
// m.original, a private copy of body; treat them as read-only.
func (m *clientHelloMsg) unmarshal(body []byte) bool {
	*m = clientHelloMsg{original: slices.Clone(body)}
	s := cryptobyte.String(m.original)

	if !s.ReadUint16(&m.vers) || !readBytes(&s, &m.random, randomLen) ||
		!readBytes8(&s, &m.sessionID) || len(m.sessionID) > maxSessionIDLen ||
		// A cookie is opaque<0..2^8-1> (RFC 6347 §4.2.1): the one-byte
		// length prefix is itself the maxCookieLen bound, and readBytes8
		// fails if the body ends before it (mbedTLS CVE-2022-35409).
		!readBytes8(&s, &m.cookie) ||
		!readUint16List(&s, &m.cipherSuites) ||
		!readBytes8(&s, &m.compressionMethods) || len(m.compressionMethods) == 0 {
		return false
	}
	if s.Empty() {
		// No extensions block (RFC 5246 §7.4.1.2).
		return true
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}

	// Each extension takes at least 4 bytes; sizing the list once (up to
	// 16, more grow it) saves growing it append by append.
	m.extensions = make([]uint16, 0, min(len(exts)/4, 16))
	var seen extensionSet
	for !exts.Empty() {
		var id uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&id) || !exts.ReadUint16LengthPrefixed(&data) ||
			!seen.add(id) {
			return false
		}
		m.extensions = append(m.extensions, id)

		switch id {
		case extensionServerName:
			if !readServerName(&data, &m.serverName) {
				return false
			}
		case extensionSupportedCurves:
			if !readUint16List(&data, &m.supportedCurves) {
				return false
			}
		case extensionSupportedPoints:
			if !readBytes8(&data, &m.supportedPoints) || len(m.supportedPoints) == 0 {
				return false
			}
		case extensionSignatureAlgorithms:
			if !readUint16List(&data, &m.supportedSignatureAlgorithms) {
				return false
			}
		case extensionUseSRTP:
			if !readUint16List(&data, &m.srtpProtectionProfiles) ||
				!readBytes8(&data, &m.srtpMKI) {
				return false
			}
		case extensionALPN:
			if !readALPN(&data, &m.alpnProtocols) {
				return false
			}
		case extensionClientCertType:
			if !readBytes8(&data, &m.clientCertTypes) || len(m.clientCertTypes) == 0 {
				return false
			}
		case extensionServerCertType:
			if !readBytes8(&data, &m.serverCertTypes) || len(m.serverCertTypes) == 0 {
				return false
			}
		case extensionExtendedMasterSecret:
			m.extendedMasterSecret = true
		case extensionSessionTicket:
			m.ticketSupported = true
			m.sessionTicket = slices.Clip([]byte(data))
			data = nil
		case extensionConnectionID:
			m.hasConnectionID = true
			if !readBytes8(&data, &m.connectionID) {
				return false
			}
		case extensionRRC:
			m.rrc = true // empty: the check below refuses data
		case extensionRenegotiationInfo:
			m.secureRenegotiationSupported = true
			if !readBytes8(&data, &m.secureRenegotiation) {
				return false
			}
		default:
			// Unknown: recorded in m.extensions and skipped.
			continue
		}
		if !data.Empty() {
			return false
		}
	}
	return true
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
	rrc                          bool // rrc extension (RFC 9853 §3), empty
	hasClientCertType            bool
	clientCertType               uint8
	hasServerCertType            bool
	serverCertType               uint8
	extensions                   []uint16
}

func (*serverHelloMsg) messageType() handshakeType { return typeServerHello }

func (m *serverHelloMsg) marshal() ([]byte, error) {
	if len(m.random) != randomLen {
		return nil, errors.New("dtls: ServerHello random is not 32 bytes")
	}
	if len(m.sessionID) > maxSessionIDLen {
		return nil, errors.New("dtls: ServerHello session_id longer than 32 bytes")
	}

	// The extensions and addExtension's scratch share one allocation; the
	// capacities are capped, so neither can grow into the other.
	buf := make([]byte, 2*helloBuilderSize)
	exts := cryptobyte.NewBuilder(buf[:0:helloBuilderSize])
	data := cryptobyte.NewBuilder(buf[helloBuilderSize:helloBuilderSize])
	if m.serverNameAck {
		// RFC 6066 §3: the server's extension_data is empty.
		addExtension(exts, data, extensionServerName, nil)
	}
	if len(m.supportedPoints) > 0 {
		addExtension(exts, data, extensionSupportedPoints, func(b *cryptobyte.Builder) {
			addBytes8(b, m.supportedPoints)
		})
	}
	if m.hasSRTP {
		// RFC 5764 §4.1.1: the server selects exactly one profile.
		addExtension(exts, data, extensionUseSRTP, func(b *cryptobyte.Builder) {
			addUint16List(b, []uint16{m.srtpProtectionProfile})
			addBytes8(b, m.srtpMKI)
		})
	}
	if m.alpnProtocol != "" {
		// RFC 7301 §3.1: exactly one protocol name.
		addExtension(exts, data, extensionALPN, func(b *cryptobyte.Builder) {
			addALPN(b, []string{m.alpnProtocol})
		})
	}
	if m.hasClientCertType {
		// RFC 7250 §3: the server answers with a single type.
		addExtension(exts, data, extensionClientCertType, func(b *cryptobyte.Builder) {
			b.AddUint8(m.clientCertType)
		})
	}
	if m.hasServerCertType {
		addExtension(exts, data, extensionServerCertType, func(b *cryptobyte.Builder) {
			b.AddUint8(m.serverCertType)
		})
	}
	if m.extendedMasterSecret {
		addExtension(exts, data, extensionExtendedMasterSecret, nil)
	}
	if m.ticketSupported {
		// RFC 5077 §3.2: the server's extension is empty.
		addExtension(exts, data, extensionSessionTicket, nil)
	}
	if m.hasConnectionID {
		addExtension(exts, data, extensionConnectionID, func(b *cryptobyte.Builder) {
			addBytes8(b, m.connectionID)
		})
	}
	if m.rrc {
		addExtension(exts, data, extensionRRC, nil)
	}
	if m.secureRenegotiationSupported {
		addExtension(exts, data, extensionRenegotiationInfo, func(b *cryptobyte.Builder) {
			addBytes8(b, m.secureRenegotiation)
		})
	}
	extBytes, err := exts.Bytes()
	if err != nil {
		return nil, err
	}

	b := cryptobyte.NewBuilder(make([]byte, 0, helloBuilderSize+len(extBytes)))
	b.AddUint16(m.vers)
	b.AddBytes(m.random)
	addBytes8(b, m.sessionID)
	b.AddUint16(m.cipherSuite)
	b.AddUint8(m.compressionMethod)
	if len(extBytes) > 0 {
		addBytes16(b, extBytes)
	}
	return b.Bytes()
}

// unmarshal parses a ServerHello body. Every field it sets aliases
// m.original, a private copy of body; treat them as read-only. Which
// extensions the client may accept (only those it offered) is the
// handshake's decision, made from m.extensions.
func (m *serverHelloMsg) unmarshal(body []byte) bool {
	*m = serverHelloMsg{original: slices.Clone(body)}
	s := cryptobyte.String(m.original)

	if !s.ReadUint16(&m.vers) || !readBytes(&s, &m.random, randomLen) ||
		!readBytes8(&s, &m.sessionID) || len(m.sessionID) > maxSessionIDLen ||
		!s.ReadUint16(&m.cipherSuite) || !s.ReadUint8(&m.compressionMethod) {
		return false
	}
	if s.Empty() {
		return true
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}

	// Each extension takes at least 4 bytes; sizing the list once (up to
	// 16, more grow it) saves growing it append by append.
	m.extensions = make([]uint16, 0, min(len(exts)/4, 16))
	var seen extensionSet
	for !exts.Empty() {
		var id uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&id) || !exts.ReadUint16LengthPrefixed(&data) ||
			!seen.add(id) {
			return false
		}
		m.extensions = append(m.extensions, id)

		switch id {
		case extensionServerName:
			m.serverNameAck = true
		case extensionSupportedPoints:
			if !readBytes8(&data, &m.supportedPoints) || len(m.supportedPoints) == 0 {
				return false
			}
		case extensionUseSRTP:
			var profiles []uint16
			if !readUint16List(&data, &profiles) || len(profiles) != 1 ||
				!readBytes8(&data, &m.srtpMKI) {
				return false
			}
			m.hasSRTP = true
			m.srtpProtectionProfile = profiles[0]
		case extensionALPN:
			var protos []string
			if !readALPN(&data, &protos) || len(protos) != 1 {
				return false
			}
			m.alpnProtocol = protos[0]
		case extensionClientCertType:
			m.hasClientCertType = true
			if !data.ReadUint8(&m.clientCertType) {
				return false
			}
		case extensionServerCertType:
			m.hasServerCertType = true
			if !data.ReadUint8(&m.serverCertType) {
				return false
			}
		case extensionExtendedMasterSecret:
			m.extendedMasterSecret = true
		case extensionSessionTicket:
			m.ticketSupported = true
		case extensionConnectionID:
			m.hasConnectionID = true
			if !readBytes8(&data, &m.connectionID) {
				return false
			}
		case extensionRRC:
			m.rrc = true // empty: the check below refuses data
		case extensionRenegotiationInfo:
			m.secureRenegotiationSupported = true
			if !readBytes8(&data, &m.secureRenegotiation) {
				return false
			}
		default:
			// Unknown, or one a ServerHello must not carry
			// (supported_groups, signature_algorithms): recorded and
			// skipped, for the handshake to refuse as unsolicited.
			continue
		}
		if !data.Empty() {
			return false
		}
	}
	return true
}

// helloVerifyRequestMsg carries the server's stateless cookie
// (RFC 6347 §4.2.1).
type helloVerifyRequestMsg struct {
	vers   uint16
	cookie []byte
}

func (*helloVerifyRequestMsg) messageType() handshakeType { return typeHelloVerifyRequest }

func (m *helloVerifyRequestMsg) marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint16(m.vers)
	addBytes8(b, m.cookie)
	return b.Bytes()
}

// unmarshal parses server_version + cookie<0..2^8-1>. A cookie length that
// runs past the body, or bytes after the cookie, are refused: pion
// GHSA-4xgv-j62q-h3rj and GHSA-hxp2-xqf3-v83h, the mbedTLS 2.16.6 client
// over-read and tinydtls #70 all trusted that length.
func (m *helloVerifyRequestMsg) unmarshal(body []byte) bool {
	*m = helloVerifyRequestMsg{}
	s := cryptobyte.String(slices.Clone(body))
	return s.ReadUint16(&m.vers) && readBytes8(&s, &m.cookie) && s.Empty()
}

// certificateMsg is a Certificate: a chain of DER certificates, leaf first.
// With a raw public key (RFC 7250) it holds one SubjectPublicKeyInfo and
// rawPublicKey, which must be set before unmarshal, selects RFC 7250 §3's
// shape: ASN.1_subjectPublicKeyInfo<1..2^24-1> instead of a list. Three
// zero bytes, an empty list either way, parse as no key.
type certificateMsg struct {
	rawPublicKey bool
	certificates [][]byte
}

func (*certificateMsg) messageType() handshakeType { return typeCertificate }

func (m *certificateMsg) marshal() ([]byte, error) {
	n := 3
	for _, cert := range m.certificates {
		n += 3 + len(cert)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, n))
	if m.rawPublicKey {
		if len(m.certificates) > 1 {
			return nil, errors.New("dtls: more than one raw public key in Certificate")
		}
		if len(m.certificates) == 0 {
			return []byte{0, 0, 0}, nil
		}
		addBytes24(b, m.certificates[0])
		return b.Bytes()
	}
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, cert := range m.certificates {
			if len(cert) == 0 {
				b.SetError(errors.New("dtls: empty certificate in Certificate"))
				return
			}
			addBytes24(b, cert)
		}
	})
	return b.Bytes()
}

// unmarshal parses certificate_list<0..2^24-1> of ASN.1Cert<1..2^24-1>.
func (m *certificateMsg) unmarshal(body []byte) bool {
	*m = certificateMsg{rawPublicKey: m.rawPublicKey}
	s := cryptobyte.String(slices.Clone(body))
	if m.rawPublicKey {
		var spki []byte
		if !readBytes24(&s, &spki) || !s.Empty() {
			return false
		}
		if len(spki) > 0 {
			m.certificates = [][]byte{spki}
		}
		return true
	}
	var list cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&list) || !s.Empty() {
		return false
	}
	for !list.Empty() {
		var cert []byte
		if !readBytes24(&list, &cert) || len(cert) == 0 {
			return false
		}
		m.certificates = append(m.certificates, cert)
	}
	return true
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

func (*serverKeyExchangeMsg) messageType() handshakeType { return typeServerKeyExchange }

func (m *serverKeyExchangeMsg) marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, helloBuilderSize))
	switch m.kind {
	case kxECDHEECDSA, kxECDHERSA:
		m.addECDHParams(b)
		b.AddUint16(uint16(m.signatureAlgorithm))
		addBytes16(b, m.signature)
	case kxPSK:
		addBytes16(b, m.pskIdentityHint)
	case kxECDHEPSK:
		addBytes16(b, m.pskIdentityHint)
		m.addECDHParams(b)
	default:
		return nil, errors.New("dtls: ServerKeyExchange for an unknown key exchange")
	}
	return b.Bytes()
}

// addECDHParams adds ServerECDHParams (RFC 8422 §5.4): curve_type
// named_curve, the curve, and point<1..2^8-1>.
func (m *serverKeyExchangeMsg) addECDHParams(b *cryptobyte.Builder) {
	b.AddUint8(curveTypeNamedCurve)
	b.AddUint16(uint16(m.curveID))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
		if len(m.publicKey) == 0 {
			b.SetError(errors.New("dtls: empty ECDH public key"))
			return
		}
		b.AddBytes(m.publicKey)
	})
}

// ecdhParams returns the encoded ServerECDHParams, the bytes signed
// together with client_random and server_random (RFC 8422 §5.4). The
// encoding is canonical, so for a received message it equals the bytes on
// the wire. It returns nil if publicKey is empty or longer than 255 bytes.
func (m *serverKeyExchangeMsg) ecdhParams() []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, 4+len(m.publicKey)))
	m.addECDHParams(b)
	params, err := b.Bytes()
	if err != nil {
		return nil
	}
	return params
}

func (m *serverKeyExchangeMsg) readECDHParams(s *cryptobyte.String) bool {
	var curveType uint8
	var curve uint16
	if !s.ReadUint8(&curveType) || curveType != curveTypeNamedCurve ||
		!s.ReadUint16(&curve) ||
		!readBytes8(s, &m.publicKey) || len(m.publicKey) == 0 {
		return false
	}
	m.curveID = tls.CurveID(curve)
	return true
}

// unmarshal parses the body in the shape m.kind selects; m.kind must be set
// first and is kept. An unknown kind is refused.
func (m *serverKeyExchangeMsg) unmarshal(body []byte) bool {
	*m = serverKeyExchangeMsg{kind: m.kind}
	s := cryptobyte.String(slices.Clone(body))
	switch m.kind {
	case kxECDHEECDSA, kxECDHERSA:
		var sigAlg uint16
		if !m.readECDHParams(&s) || !s.ReadUint16(&sigAlg) ||
			!readBytes16(&s, &m.signature) {
			return false
		}
		m.signatureAlgorithm = tls.SignatureScheme(sigAlg)
	case kxPSK:
		if !readBytes16(&s, &m.pskIdentityHint) {
			return false
		}
	case kxECDHEPSK:
		// RFC 5489 §2: the hint comes first, and there is no signature.
		if !readBytes16(&s, &m.pskIdentityHint) || !m.readECDHParams(&s) {
			return false
		}
	default:
		return false
	}
	return s.Empty()
}

// certificateRequestMsg is a TLS 1.2 CertificateRequest (RFC 5246 §7.4.4).
type certificateRequestMsg struct {
	certificateTypes             []uint8
	supportedSignatureAlgorithms []tls.SignatureScheme
	certificateAuthorities       [][]byte // DER distinguished names
}

func (*certificateRequestMsg) messageType() handshakeType { return typeCertificateRequest }

func (m *certificateRequestMsg) marshal() ([]byte, error) {
	if len(m.certificateTypes) == 0 || len(m.supportedSignatureAlgorithms) == 0 {
		return nil, errors.New("dtls: CertificateRequest without certificate types or signature algorithms")
	}
	b := cryptobyte.NewBuilder(nil)
	addBytes8(b, m.certificateTypes)
	addUint16List(b, m.supportedSignatureAlgorithms)
	addNonEmptyBytes16List(b, m.certificateAuthorities, "dtls: empty distinguished name in CertificateRequest")
	return b.Bytes()
}

// unmarshal parses certificate_types<1..2^8-1>,
// supported_signature_algorithms<2..2^16-2> and
// certificate_authorities<0..2^16-1> of DistinguishedName<1..2^16-1>
// (tinydtls CVE-2021-42145 asserted on a malformed one).
func (m *certificateRequestMsg) unmarshal(body []byte) bool {
	*m = certificateRequestMsg{}
	s := cryptobyte.String(slices.Clone(body))
	var cas cryptobyte.String
	if !readBytes8(&s, &m.certificateTypes) || len(m.certificateTypes) == 0 ||
		!readUint16List(&s, &m.supportedSignatureAlgorithms) ||
		!s.ReadUint16LengthPrefixed(&cas) || !s.Empty() {
		return false
	}
	for !cas.Empty() {
		var ca []byte
		if !readBytes16(&cas, &ca) || len(ca) == 0 {
			return false
		}
		m.certificateAuthorities = append(m.certificateAuthorities, ca)
	}
	return true
}

type serverHelloDoneMsg struct{}

func (*serverHelloDoneMsg) messageType() handshakeType { return typeServerHelloDone }

func (*serverHelloDoneMsg) marshal() ([]byte, error) { return []byte{}, nil }

// unmarshal accepts only the empty body.
func (*serverHelloDoneMsg) unmarshal(body []byte) bool { return len(body) == 0 }

// certificateVerifyMsg is a TLS 1.2 CertificateVerify (RFC 5246 §7.4.8).
type certificateVerifyMsg struct {
	signatureAlgorithm tls.SignatureScheme
	signature          []byte
}

func (*certificateVerifyMsg) messageType() handshakeType { return typeCertificateVerify }

func (m *certificateVerifyMsg) marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint16(uint16(m.signatureAlgorithm))
	addBytes16(b, m.signature)
	return b.Bytes()
}

// unmarshal parses SignatureAndHashAlgorithm + signature<0..2^16-1>.
func (m *certificateVerifyMsg) unmarshal(body []byte) bool {
	*m = certificateVerifyMsg{}
	s := cryptobyte.String(slices.Clone(body))
	var sigAlg uint16
	if !s.ReadUint16(&sigAlg) || !readBytes16(&s, &m.signature) || !s.Empty() {
		return false
	}
	m.signatureAlgorithm = tls.SignatureScheme(sigAlg)
	return true
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

func (*clientKeyExchangeMsg) messageType() handshakeType { return typeClientKeyExchange }

func (m *clientKeyExchangeMsg) marshal() ([]byte, error) {
	if m.kind.isECDHE() && len(m.publicKey) == 0 {
		return nil, errors.New("dtls: empty ECDH public key")
	}
	b := cryptobyte.NewBuilder(nil)
	switch m.kind {
	case kxECDHEECDSA, kxECDHERSA:
		addBytes8(b, m.publicKey)
	case kxPSK:
		addBytes16(b, m.pskIdentity)
	case kxECDHEPSK:
		addBytes16(b, m.pskIdentity)
		addBytes8(b, m.publicKey)
	default:
		return nil, errors.New("dtls: ClientKeyExchange for an unknown key exchange")
	}
	return b.Bytes()
}

// unmarshal parses the body in the shape m.kind selects; m.kind must be set
// first and is kept. An unknown kind is refused.
func (m *clientKeyExchangeMsg) unmarshal(body []byte) bool {
	*m = clientKeyExchangeMsg{kind: m.kind}
	s := cryptobyte.String(slices.Clone(body))
	switch m.kind {
	case kxECDHEECDSA, kxECDHERSA:
		if !readBytes8(&s, &m.publicKey) || len(m.publicKey) == 0 {
			return false
		}
	case kxPSK:
		if !readBytes16(&s, &m.pskIdentity) {
			return false
		}
	case kxECDHEPSK:
		if !readBytes16(&s, &m.pskIdentity) ||
			!readBytes8(&s, &m.publicKey) || len(m.publicKey) == 0 {
			return false
		}
	default:
		return false
	}
	return s.Empty()
}

type finishedMsg struct {
	verifyData []byte
}

func (*finishedMsg) messageType() handshakeType { return typeFinished }

func (m *finishedMsg) marshal() ([]byte, error) {
	if len(m.verifyData) == 0 || len(m.verifyData) > maxVerifyDataLen {
		return nil, errors.New("dtls: Finished verify_data length out of range")
	}
	return slices.Clone(m.verifyData), nil
}

// unmarshal takes the whole body as verify_data, 1 to maxVerifyDataLen
// bytes; the handshake checks the suite's exact length.
func (m *finishedMsg) unmarshal(body []byte) bool {
	if len(body) == 0 || len(body) > maxVerifyDataLen {
		*m = finishedMsg{}
		return false
	}
	*m = finishedMsg{verifyData: slices.Clone(body)}
	return true
}

// newSessionTicketMsg is RFC 5077 §3.3's NewSessionTicket.
type newSessionTicketMsg struct {
	lifetimeHint uint32
	ticket       []byte
}

func (*newSessionTicketMsg) messageType() handshakeType { return typeNewSessionTicket }

func (m *newSessionTicketMsg) marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint32(m.lifetimeHint)
	addBytes16(b, m.ticket)
	return b.Bytes()
}

// unmarshal parses ticket_lifetime_hint + ticket<0..2^16-1>.
func (m *newSessionTicketMsg) unmarshal(body []byte) bool {
	*m = newSessionTicketMsg{}
	s := cryptobyte.String(slices.Clone(body))
	return s.ReadUint32(&m.lifetimeHint) && readBytes16(&s, &m.ticket) && s.Empty()
}

// extensionSet records the extension ids seen in one hello, to refuse a
// repeated one (RFC 5246 §7.4.1.4: "There MUST NOT be more than one
// extension of the same type"). A bitmap keeps the check constant-time per
// extension however many a peer packs in.
type extensionSet [1 << 16 / 64]uint64

// add records id and reports whether it was new.
func (s *extensionSet) add(id uint16) bool {
	word, bit := id/64, uint64(1)<<(id%64)
	if s[word]&bit != 0 {
		return false
	}
	s[word] |= bit
	return true
}

// addExtension adds one extension to b: its id and the data f writes, with
// a uint16 length. A nil f adds an empty extension. f writes into scratch,
// a builder the caller keeps for all the extensions of a message, and the
// data is then copied to b with its length: a length-prefixed child
// builder would cost an allocation per extension. scratch is left empty.
func addExtension(b, scratch *cryptobyte.Builder, id uint16, f cryptobyte.BuilderContinuation) {
	b.AddUint16(id)
	if f == nil {
		b.AddUint16(0)
		return
	}
	f(scratch)
	v, err := scratch.Bytes()
	if err != nil {
		b.SetError(err)
		return
	}
	addBytes16(b, v)
	scratch.Unwrite(len(v))
}

// addBytes8, addBytes16 and addBytes24 add an opaque vector with a 1-, 2- or
// 3-byte length. A vector too long for its prefix makes Builder.Bytes fail.
// The length is known up front, so they write it directly instead of
// through a length-prefixed child builder, which costs an allocation.
func addBytes8(b *cryptobyte.Builder, v []byte) {
	if len(v) > 0xff {
		b.SetError(errVectorTooLong)
		return
	}
	b.AddUint8(uint8(len(v)))
	b.AddBytes(v)
}

// addNonEmptyBytes16List writes a uint16-length-prefixed list of
// opaque<1..2^16-1> items (DistinguishedName, SerializedSCT); an empty
// item fails the builder with the error text emptyErr.
func addNonEmptyBytes16List(b *cryptobyte.Builder, list [][]byte, emptyErr string) {
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, v := range list {
			if len(v) == 0 {
				b.SetError(errors.New(emptyErr))
				return
			}
			addBytes16(b, v)
		}
	})
}

func addBytes16(b *cryptobyte.Builder, v []byte) {
	if len(v) > 0xffff {
		b.SetError(errVectorTooLong)
		return
	}
	b.AddUint16(uint16(len(v)))
	b.AddBytes(v)
}

func addBytes24(b *cryptobyte.Builder, v []byte) {
	if len(v) > 0xffffff {
		b.SetError(errVectorTooLong)
		return
	}
	b.AddUint24(uint32(len(v)))
	b.AddBytes(v)
}

var errVectorTooLong = errors.New("dtls: vector too long for its length prefix")

// addUint16List adds a vector of uint16 values with a uint16 length.
func addUint16List[T ~uint16](b *cryptobyte.Builder, list []T) {
	if 2*len(list) > 0xffff {
		b.SetError(errVectorTooLong)
		return
	}
	b.AddUint16(uint16(2 * len(list)))
	for _, v := range list {
		b.AddUint16(uint16(v))
	}
}

// addALPN adds ProtocolNameList (RFC 7301 §3.1): ProtocolName<1..2^8-1>.
func addALPN(b *cryptobyte.Builder, protos []string) {
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, p := range protos {
			if p == "" {
				b.SetError(errors.New("dtls: empty ALPN protocol name"))
				return
			}
			addBytes8(b, []byte(p))
		}
	})
}

// readBytes reads exactly n bytes into out.
func readBytes(s *cryptobyte.String, out *[]byte, n int) bool {
	if !s.ReadBytes(out, n) {
		return false
	}
	*out = slices.Clip(*out)
	return true
}

// readBytes8, readBytes16 and readBytes24 read an opaque vector with a 1-,
// 2- or 3-byte length, failing if it runs past the end of s. out aliases s,
// clipped so that appending to it cannot overwrite the bytes that follow.
func readBytes8(s *cryptobyte.String, out *[]byte) bool {
	var v cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&v) {
		return false
	}
	*out = slices.Clip([]byte(v))
	return true
}

func readBytes16(s *cryptobyte.String, out *[]byte) bool {
	var v cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&v) {
		return false
	}
	*out = slices.Clip([]byte(v))
	return true
}

func readBytes24(s *cryptobyte.String, out *[]byte) bool {
	var v cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&v) {
		return false
	}
	*out = slices.Clip([]byte(v))
	return true
}

// readUint16List reads a non-empty vector of uint16 values with a uint16
// length, such as cipher_suites<2..2^16-2>. An odd byte length is refused
// outright rather than read as a truncated last element (tinydtls
// CVE-2021-42143 looped forever and over-read on one).
func readUint16List[T ~uint16](s *cryptobyte.String, out *[]T) bool {
	var v cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&v) || len(v) == 0 || len(v)%2 != 0 {
		return false
	}
	list := make([]T, 0, len(v)/2)
	for !v.Empty() {
		var x uint16
		v.ReadUint16(&x)
		list = append(list, T(x))
	}
	*out = list
	return true
}

// readALPN reads a non-empty ProtocolNameList of non-empty names
// (RFC 7301 §3.1).
func readALPN(s *cryptobyte.String, out *[]string) bool {
	var list cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&list) || list.Empty() {
		return false
	}
	var protos []string
	for !list.Empty() {
		var name cryptobyte.String
		if !list.ReadUint8LengthPrefixed(&name) || name.Empty() {
			return false
		}
		protos = append(protos, string(name))
	}
	*out = protos
	return true
}

// readServerName reads a server_name extension (RFC 6066 §3): a non-empty
// ServerNameList holding at most one host_name, which must not be empty or
// end in a dot. Entries of other name types are skipped; RFC 6066 gives
// them the same uint16-length shape.
func readServerName(s *cryptobyte.String, out *string) bool {
	var list cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&list) || list.Empty() {
		return false
	}
	for !list.Empty() {
		var nameType uint8
		var name cryptobyte.String
		if !list.ReadUint8(&nameType) || !list.ReadUint16LengthPrefixed(&name) ||
			name.Empty() {
			return false
		}
		if nameType != hostNameType {
			continue
		}
		if *out != "" {
			return false // two host names
		}
		*out = string(name)
		if strings.HasSuffix(*out, ".") {
			return false
		}
	}
	return true
}
