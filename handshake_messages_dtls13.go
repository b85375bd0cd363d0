package dtls

// DTLS 1.3 handshake messages and extensions (RFC 9147 §5, RFC 8446 §4).
//
// The 12-byte DTLS handshake header is the 1.2 one (handshakeHeader, RFC
// 9147 §5.2 keeps it), and so are the bodies whose wire form did not change:
// CertificateVerify (certificateVerifyMsg: SignatureScheme +
// signature<0..2^16-1>, RFC 8446 §4.4.3) and Finished (finishedMsg:
// verify_data of Hash.length bytes, §4.4.4). This file adds the rest:
//
//   - clientHelloMsg13: the 1.2 ClientHello (legacy fields and the
//     extensions both versions share) plus supported_versions, cookie,
//     key_share, pre_shared_key, psk_key_exchange_modes,
//     signature_algorithms_cert, early_data and post_handshake_auth;
//   - serverHelloMsg13: ServerHello and HelloRetryRequest;
//   - EncryptedExtensions, the 1.3 CertificateRequest and Certificate,
//     the 1.3 NewSessionTicket, KeyUpdate, and RFC 9147 §9's
//     RequestConnectionId and NewConnectionId.
//
// Nothing here is wired into the handshake yet. When the 1.3 handshake
// lands, clientHelloMsg13's extensions belong in clientHelloMsg itself (the
// version decision happens once, on one parsed ClientHello); until then it
// wraps the 1.2 codec without changing it.
//
// Every vector is bounded by its length prefix, and the handshake layer
// bounds whole messages by maxHandshakeMessageLen; the few lists that
// cost us work per entry have their own named bound below.

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"errors"
	"hash"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// Handshake types new in (D)TLS 1.3 (RFC 8446 §4, RFC 9147 §5.1, §14).
const (
	typeEncryptedExtensions handshakeType = 8
	typeRequestConnectionID handshakeType = 9  // RFC 9147 §9
	typeNewConnectionID     handshakeType = 10 // RFC 9147 §9
	typeKeyUpdate           handshakeType = 24
	typeMessageHash         handshakeType = 254 // synthetic, transcript only (RFC 8446 §4.4.1)
)

// Extensions new in (D)TLS 1.3 (RFC 8446 §4.2).
const (
	extensionPreSharedKey           uint16 = 41
	extensionEarlyData              uint16 = 42
	extensionSupportedVersions      uint16 = 43
	extensionCookie                 uint16 = 44
	extensionPSKModes               uint16 = 45
	extensionCertificateAuthorities uint16 = 47
	extensionPostHandshakeAuth      uint16 = 49
	extensionSignatureAlgsCert      uint16 = 50
	extensionKeyShare               uint16 = 51
	extensionStatusRequest          uint16 = 5  // in a 1.3 CertificateEntry
	extensionSCT                    uint16 = 18 // signed_certificate_timestamp, in a 1.3 CertificateEntry
)

// PskKeyExchangeMode (RFC 8446 §4.2.9).
const (
	pskModePlain uint8 = 0 // psk_ke
	pskModeDHE   uint8 = 1 // psk_dhe_ke
)

// KeyUpdateRequest (RFC 8446 §4.6.3).
const (
	keyUpdateNotRequested uint8 = 0
	keyUpdateRequested    uint8 = 1
)

// ConnectionIdUsage (RFC 9147 §9).
const (
	cidImmediate uint8 = 0
	cidSpare     uint8 = 1
)

// Bounds of the 1.3 messages that a peer could otherwise use to make us
// store or loop over many small entries.
const (
	// maxKeyShares13 bounds the KeyShareEntries we keep from a
	// ClientHello. Real clients send one or two (Chrome and Firefox: a
	// hybrid and X25519); a server looks at each, so a list of thousands of
	// 4-byte entries must not cost a scan per entry. More is a decode
	// error.
	maxKeyShares13 = 16
	// maxPSKIdentities13 bounds the offered PSKs: each costs the server a
	// lookup and, for the chosen one, a binder check; RFC 8446 sets no
	// bound. Clients offer one ticket or a few external identities.
	maxPSKIdentities13 = 16
	// maxCertificateEntries13 bounds the entries of a 1.3 Certificate (a
	// chain this long is already far past what verification accepts).
	maxCertificateEntries13 = 16
	// maxCertificateAuthorities13 bounds the DNs of a
	// certificate_authorities extension that we keep.
	maxCertificateAuthorities13 = 64
	// maxNewCIDs13 bounds the CIDs of one NewConnectionId that we send or
	// keep; the rest of a longer one is discarded (RFC 9147 §9).
	maxNewCIDs13 = 8
	// minBinderLen and maxBinderLen: PskBinderEntry<32..255> (RFC 8446
	// §4.2.11).
	minBinderLen = 32
	maxBinderLen = 255
)

// helloRetryRequestRandom is the ServerHello.random that marks a
// HelloRetryRequest: SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3).
var helloRetryRequestRandom = []byte{
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11,
	0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e,
	0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
}

// Downgrade sentinels in the last eight bytes of ServerHello.random (RFC
// 8446 §4.1.3): a 1.3-capable server negotiating 1.2 (or below) sets them,
// and a 1.3-capable client that sees them aborts with illegal_parameter.
var (
	downgradeCanaryTLS12 = []byte("DOWNGRD\x01")
	downgradeCanaryTLS11 = []byte("DOWNGRD\x00")
)

// keyShare13 is a KeyShareEntry: a group and its key_exchange.
type keyShare13 struct {
	group tls.CurveID
	data  []byte
}

// pskIdentity13 is a PskIdentity (RFC 8446 §4.2.11).
type pskIdentity13 struct {
	label               []byte
	obfuscatedTicketAge uint32
}

// clientHelloMsg13 is a ClientHello that may offer DTLS 1.3.
type clientHelloMsg13 struct {
	clientHelloMsg // legacy fields and the extensions shared with 1.2

	supportedVersions []uint16 // supported_versions; nil when absent
	// cookieExt is the cookie extension (RFC 8446 §4.2.2) echoed from a
	// HelloRetryRequest; the 1.2 legacy_cookie is clientHelloMsg.cookie,
	// empty in DTLS 1.3 (RFC 9147 §5.3).
	cookieExt                        []byte
	hasKeyShare                      bool // key_share present (an empty list asks for a HelloRetryRequest)
	keyShares                        []keyShare13
	pskModes                         []uint8
	pskIdentities                    []pskIdentity13
	pskBinders                       [][]byte
	supportedSignatureAlgorithmsCert []tls.SignatureScheme
	earlyData                        bool
	postHandshakeAuth                bool
	// pskNotLast is set by unmarshal when pre_shared_key is not the last
	// extension: RFC 8446 §4.2.11 wants illegal_parameter for it, not the
	// decode_error a failed parse gets.
	pskNotLast bool
}

// addExtensions13First adds the 1.3 extensions that go before the shared
// ones: supported_versions and the cookie, so that a server (wolfSSL)
// that checks only the first fragment of a fragmented second ClientHello
// finds them (DTLS13-NOTES §3, PEERS.md).
func (m *clientHelloMsg13) addExtensions13First(exts, scratch *cryptobyte.Builder) {
	if len(m.supportedVersions) > 0 {
		// supported_versions: ProtocolVersion versions<2..254> (§4.2.1).
		addExtension(exts, scratch, extensionSupportedVersions, func(b *cryptobyte.Builder) {
			if 2*len(m.supportedVersions) > 254 {
				b.SetError(errVectorTooLong)
				return
			}
			b.AddUint8(uint8(2 * len(m.supportedVersions)))
			for _, v := range m.supportedVersions {
				b.AddUint16(v)
			}
		})
	}
	if len(m.cookieExt) > 0 {
		// cookie: opaque cookie<1..2^16-1> (§4.2.2).
		addExtension(exts, scratch, extensionCookie, func(b *cryptobyte.Builder) {
			addBytes16(b, m.cookieExt)
		})
	}
}

// addExtensions13Last adds the other 1.3 extensions, pre_shared_key last
// as RFC 8446 §4.2.11 requires.
func (m *clientHelloMsg13) addExtensions13Last(exts, scratch *cryptobyte.Builder) {
	if m.hasKeyShare {
		// key_share: KeyShareEntry client_shares<0..2^16-1> (§4.2.8).
		addExtension(exts, scratch, extensionKeyShare, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				for _, ks := range m.keyShares {
					if len(ks.data) == 0 {
						b.SetError(errors.New("dtls: empty key share"))
						return
					}
					b.AddUint16(uint16(ks.group))
					addBytes16(b, ks.data)
				}
			})
		})
	}
	if len(m.pskModes) > 0 {
		// psk_key_exchange_modes: PskKeyExchangeMode ke_modes<1..255> (§4.2.9).
		addExtension(exts, scratch, extensionPSKModes, func(b *cryptobyte.Builder) {
			addBytes8(b, m.pskModes)
		})
	}
	if len(m.supportedSignatureAlgorithmsCert) > 0 {
		// signature_algorithms_cert (§4.2.3).
		addExtension(exts, scratch, extensionSignatureAlgsCert, func(b *cryptobyte.Builder) {
			addUint16List(b, m.supportedSignatureAlgorithmsCert)
		})
	}
	if m.postHandshakeAuth {
		// post_handshake_auth: empty (§4.2.6).
		addExtension(exts, scratch, extensionPostHandshakeAuth, nil)
	}
	if m.earlyData {
		// early_data: empty in a ClientHello (§4.2.10).
		addExtension(exts, scratch, extensionEarlyData, nil)
	}
	if len(m.pskIdentities) > 0 {
		// pre_shared_key: OfferedPsks (§4.2.11), last.
		addExtension(exts, scratch, extensionPreSharedKey, func(b *cryptobyte.Builder) {
			if len(m.pskIdentities) != len(m.pskBinders) {
				b.SetError(errors.New("dtls: PSK identities and binders differ in number"))
				return
			}
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				for _, id := range m.pskIdentities {
					if len(id.label) == 0 {
						b.SetError(errors.New("dtls: empty PSK identity"))
						return
					}
					addBytes16(b, id.label)
					b.AddUint32(id.obfuscatedTicketAge)
				}
			})
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				for _, binder := range m.pskBinders {
					if len(binder) < minBinderLen {
						b.SetError(errors.New("dtls: PSK binder shorter than 32 bytes"))
						return
					}
					addBytes8(b, binder)
				}
			})
		})
	}
}

// splitHello returns the part of a ClientHello body before its extensions
// block and the block's contents (without its length), or ok false.
func splitClientHello(body []byte) (fixed, exts []byte, ok bool) {
	s := cryptobyte.String(body)
	var skip cryptobyte.String
	if !s.Skip(2+randomLen) || // legacy_version, random
		!s.ReadUint8LengthPrefixed(&skip) || // legacy_session_id
		!s.ReadUint8LengthPrefixed(&skip) || // legacy_cookie
		!s.ReadUint16LengthPrefixed(&skip) || // cipher_suites
		!s.ReadUint8LengthPrefixed(&skip) { // legacy_compression_methods
		return nil, nil, false
	}
	fixed = body[:len(body)-len(s)]
	if s.Empty() {
		return fixed, nil, true
	}
	var e cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&e) || !s.Empty() {
		return nil, nil, false
	}
	return fixed, e, true
}

func (m *clientHelloMsg13) marshal() ([]byte, error) {
	body12, err := m.clientHelloMsg.marshal()
	if err != nil {
		return nil, err
	}
	fixed, shared, ok := splitClientHello(body12)
	if !ok {
		return nil, errors.New("dtls: internal error: ClientHello does not parse")
	}
	buf := make([]byte, 2*helloBuilderSize)
	exts := cryptobyte.NewBuilder(buf[:0:helloBuilderSize])
	scratch := cryptobyte.NewBuilder(buf[helloBuilderSize:helloBuilderSize])
	m.addExtensions13First(exts, scratch)
	exts.AddBytes(shared)
	m.addExtensions13Last(exts, scratch)
	extBytes, err := exts.Bytes()
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(fixed)+2+len(extBytes)))
	b.AddBytes(fixed)
	if len(extBytes) > 0 {
		addBytes16(b, extBytes)
	}
	return b.Bytes()
}

// bindersLen is the size of the binders list at the end of a marshaled
// ClientHello that offers PSKs: its 2-byte length and each
// PskBinderEntry. The PSK binder covers the ClientHello without it (RFC
// 8446 §4.2.11.2: "the transcript up to and including the
// PreSharedKeyExtension.identities field").
func (m *clientHelloMsg13) bindersLen() int {
	if len(m.pskIdentities) == 0 {
		return 0
	}
	n := 2
	for _, b := range m.pskBinders {
		n += 1 + len(b)
	}
	return n
}

// truncatedForBinders returns the prefix of the marshaled body that the
// binders cover. body must be the output of m.marshal (or m.original).
func (m *clientHelloMsg13) truncatedForBinders(body []byte) ([]byte, error) {
	n := m.bindersLen()
	if n == 0 || n > len(body) {
		return nil, errors.New("dtls: ClientHello offers no PSK binders")
	}
	return body[:len(body)-n], nil
}

// unmarshal parses a ClientHello body with its 1.2 and 1.3 extensions.
// Unknown extensions are recorded in extensions and skipped; a repeated
// one fails the parse.
func (m *clientHelloMsg13) unmarshal(body []byte) bool {
	*m = clientHelloMsg13{}
	if !m.clientHelloMsg.unmarshal(body) {
		return false
	}
	// The 1.2 parse checked the fixed part, the extension framing and
	// duplicates; walk the block again for the 1.3 extensions, on the
	// private copy it keeps (m.original), so that every field aliases it.
	_, exts, ok := splitClientHello(m.original)
	if !ok {
		return false
	}
	s := cryptobyte.String(exts)
	for !s.Empty() {
		var id uint16
		var data cryptobyte.String
		if !s.ReadUint16(&id) || !s.ReadUint16LengthPrefixed(&data) {
			return false
		}
		if m.pskIdentities != nil {
			m.pskNotLast = true
		}
		switch id {
		case extensionSupportedVersions:
			var list cryptobyte.String
			if !data.ReadUint8LengthPrefixed(&list) || len(list) < 2 || len(list)%2 != 0 {
				return false
			}
			for !list.Empty() {
				var v uint16
				list.ReadUint16(&v)
				m.supportedVersions = append(m.supportedVersions, v)
			}
		case extensionCookie:
			if !readBytes16(&data, &m.cookieExt) || len(m.cookieExt) == 0 {
				return false
			}
		case extensionKeyShare:
			m.hasKeyShare = true
			var list cryptobyte.String
			if !data.ReadUint16LengthPrefixed(&list) {
				return false
			}
			for !list.Empty() {
				var ks keyShare13
				var g uint16
				if !list.ReadUint16(&g) || !readBytes16(&list, &ks.data) || len(ks.data) == 0 ||
					len(m.keyShares) == maxKeyShares13 {
					return false
				}
				ks.group = tls.CurveID(g)
				// RFC 8446 §4.2.8: "Clients MUST NOT offer multiple
				// KeyShareEntry values for the same group."
				for _, prev := range m.keyShares {
					if prev.group == ks.group {
						return false
					}
				}
				m.keyShares = append(m.keyShares, ks)
			}
		case extensionPSKModes:
			if !readBytes8(&data, &m.pskModes) || len(m.pskModes) == 0 {
				return false
			}
		case extensionSignatureAlgsCert:
			if !readUint16List(&data, &m.supportedSignatureAlgorithmsCert) {
				return false
			}
		case extensionPostHandshakeAuth:
			m.postHandshakeAuth = true
		case extensionEarlyData:
			m.earlyData = true
		case extensionPreSharedKey:
			if !m.readOfferedPSKs(&data) {
				return false
			}
		default:
			continue // a 1.2 extension (already parsed) or an unknown one
		}
		if !data.Empty() {
			return false
		}
	}
	return true
}

// readOfferedPSKs reads OfferedPsks (RFC 8446 §4.2.11): identities<7..>
// and binders<33..>, as many binders as identities.
func (m *clientHelloMsg13) readOfferedPSKs(s *cryptobyte.String) bool {
	var ids, binders cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&ids) || ids.Empty() ||
		!s.ReadUint16LengthPrefixed(&binders) || binders.Empty() {
		return false
	}
	m.pskIdentities = []pskIdentity13{}
	for !ids.Empty() {
		var id pskIdentity13
		if !readBytes16(&ids, &id.label) || len(id.label) == 0 ||
			!ids.ReadUint32(&id.obfuscatedTicketAge) ||
			len(m.pskIdentities) == maxPSKIdentities13 {
			return false
		}
		m.pskIdentities = append(m.pskIdentities, id)
	}
	for !binders.Empty() {
		var b []byte
		if !readBytes8(&binders, &b) || len(b) < minBinderLen ||
			len(m.pskBinders) == len(m.pskIdentities) {
			return false
		}
		m.pskBinders = append(m.pskBinders, b)
	}
	return len(m.pskBinders) == len(m.pskIdentities)
}

// serverHelloMsg13 is a DTLS 1.3 ServerHello or HelloRetryRequest (RFC
// 8446 §4.1.3, §4.1.4; RFC 9147 §5.3): legacy_version 0xfefd, an empty
// legacy_session_id_echo, compression 0, and the version in
// supported_versions. A HelloRetryRequest is a ServerHello whose random
// is helloRetryRequestRandom; its key_share holds only the selected
// group.
type serverHelloMsg13 struct {
	original            []byte
	vers                uint16
	random              []byte
	sessionIDEcho       []byte
	cipherSuite         uint16
	compressionMethod   uint8
	supportedVersion    uint16 // selected_version; 0 when absent
	serverShare         keyShare13
	selectedGroup       tls.CurveID // HelloRetryRequest key_share
	cookie              []byte      // HelloRetryRequest only
	hasSelectedIdentity bool
	selectedIdentity    uint16
	hasConnectionID     bool // connection_id (RFC 9146 §3: in ServerHello for 1.3 too)
	connectionID        []byte
	rrc                 bool // rrc (RFC 9853 §3, §10.2: ClientHello and ServerHello), empty
	extensions          []uint16
}

func (*serverHelloMsg13) messageType() handshakeType { return typeServerHello }

// isHelloRetryRequest reports whether m is a HelloRetryRequest.
func (m *serverHelloMsg13) isHelloRetryRequest() bool {
	return bytes.Equal(m.random, helloRetryRequestRandom)
}

func (m *serverHelloMsg13) marshal() ([]byte, error) {
	if len(m.random) != randomLen {
		return nil, errors.New("dtls: ServerHello random is not 32 bytes")
	}
	if len(m.sessionIDEcho) > maxSessionIDLen {
		return nil, errors.New("dtls: ServerHello session_id longer than 32 bytes")
	}
	hrr := m.isHelloRetryRequest()
	buf := make([]byte, 2*helloBuilderSize)
	exts := cryptobyte.NewBuilder(buf[:0:helloBuilderSize])
	scratch := cryptobyte.NewBuilder(buf[helloBuilderSize:helloBuilderSize])
	if m.supportedVersion != 0 {
		addExtension(exts, scratch, extensionSupportedVersions, func(b *cryptobyte.Builder) {
			b.AddUint16(m.supportedVersion)
		})
	}
	if hrr {
		if m.selectedGroup != 0 {
			addExtension(exts, scratch, extensionKeyShare, func(b *cryptobyte.Builder) {
				b.AddUint16(uint16(m.selectedGroup))
			})
		}
		if len(m.cookie) > 0 {
			addExtension(exts, scratch, extensionCookie, func(b *cryptobyte.Builder) {
				addBytes16(b, m.cookie)
			})
		}
	} else {
		if m.serverShare.group != 0 {
			if len(m.serverShare.data) == 0 {
				return nil, errors.New("dtls: empty server key share")
			}
			addExtension(exts, scratch, extensionKeyShare, func(b *cryptobyte.Builder) {
				b.AddUint16(uint16(m.serverShare.group))
				addBytes16(b, m.serverShare.data)
			})
		}
		if m.hasSelectedIdentity {
			addExtension(exts, scratch, extensionPreSharedKey, func(b *cryptobyte.Builder) {
				b.AddUint16(m.selectedIdentity)
			})
		}
		if m.hasConnectionID {
			addExtension(exts, scratch, extensionConnectionID, func(b *cryptobyte.Builder) {
				addBytes8(b, m.connectionID)
			})
		}
		if m.rrc {
			addExtension(exts, scratch, extensionRRC, nil)
		}
	}
	extBytes, err := exts.Bytes()
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 2+randomLen+1+len(m.sessionIDEcho)+3+2+len(extBytes)))
	b.AddUint16(m.vers)
	b.AddBytes(m.random)
	addBytes8(b, m.sessionIDEcho)
	b.AddUint16(m.cipherSuite)
	b.AddUint8(m.compressionMethod)
	addBytes16(b, extBytes)
	return b.Bytes()
}

// unmarshal parses a ServerHello or HelloRetryRequest body; which one is
// decided by the random, before the extensions are read, since key_share
// has a different shape in each.
func (m *serverHelloMsg13) unmarshal(body []byte) bool {
	*m = serverHelloMsg13{original: slices.Clone(body)}
	s := cryptobyte.String(m.original)
	if !s.ReadUint16(&m.vers) || !readBytes(&s, &m.random, randomLen) ||
		!readBytes8(&s, &m.sessionIDEcho) || len(m.sessionIDEcho) > maxSessionIDLen ||
		!s.ReadUint16(&m.cipherSuite) || !s.ReadUint8(&m.compressionMethod) {
		return false
	}
	if s.Empty() {
		return true // a 1.2 ServerHello without extensions
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	hrr := m.isHelloRetryRequest()
	var seen extensionSet
	for !exts.Empty() {
		var id uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&id) || !exts.ReadUint16LengthPrefixed(&data) || !seen.add(id) {
			return false
		}
		m.extensions = append(m.extensions, id)
		switch {
		case id == extensionSupportedVersions:
			if !data.ReadUint16(&m.supportedVersion) {
				return false
			}
		case id == extensionKeyShare && hrr:
			var g uint16
			if !data.ReadUint16(&g) {
				return false
			}
			m.selectedGroup = tls.CurveID(g)
		case id == extensionKeyShare:
			var g uint16
			if !data.ReadUint16(&g) || !readBytes16(&data, &m.serverShare.data) ||
				len(m.serverShare.data) == 0 {
				return false
			}
			m.serverShare.group = tls.CurveID(g)
		case id == extensionCookie:
			if !readBytes16(&data, &m.cookie) || len(m.cookie) == 0 {
				return false
			}
		case id == extensionPreSharedKey:
			m.hasSelectedIdentity = true
			if !data.ReadUint16(&m.selectedIdentity) {
				return false
			}
		case id == extensionConnectionID:
			m.hasConnectionID = true
			if !readBytes8(&data, &m.connectionID) {
				return false
			}
		case id == extensionRRC:
			m.rrc = true // empty: the check below refuses data
		default:
			continue
		}
		if !data.Empty() {
			return false
		}
	}
	return true
}

// encryptedExtensionsMsg13 is EncryptedExtensions (RFC 8446 §4.3.1): the
// server's answers that need no key exchange context.
type encryptedExtensionsMsg13 struct {
	serverNameAck         bool // empty server_name (RFC 6066 §3)
	supportedGroups       []tls.CurveID
	alpnProtocol          string
	hasSRTP               bool
	srtpProtectionProfile uint16
	srtpMKI               []byte
	earlyData             bool
	hasClientCertType     bool
	clientCertType        uint8
	hasServerCertType     bool
	serverCertType        uint8
	extensions            []uint16
}

func (*encryptedExtensionsMsg13) messageType() handshakeType { return typeEncryptedExtensions }

func (m *encryptedExtensionsMsg13) marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, helloBuilderSize))
	scratch := cryptobyte.NewBuilder(make([]byte, 0, helloBuilderSize))
	b.AddUint16LengthPrefixed(func(exts *cryptobyte.Builder) {
		if m.serverNameAck {
			addExtension(exts, scratch, extensionServerName, nil)
		}
		if len(m.supportedGroups) > 0 {
			addExtension(exts, scratch, extensionSupportedCurves, func(b *cryptobyte.Builder) {
				addUint16List(b, m.supportedGroups)
			})
		}
		if m.alpnProtocol != "" {
			addExtension(exts, scratch, extensionALPN, func(b *cryptobyte.Builder) {
				addALPN(b, []string{m.alpnProtocol})
			})
		}
		if m.hasSRTP {
			addExtension(exts, scratch, extensionUseSRTP, func(b *cryptobyte.Builder) {
				addUint16List(b, []uint16{m.srtpProtectionProfile})
				addBytes8(b, m.srtpMKI)
			})
		}
		if m.earlyData {
			addExtension(exts, scratch, extensionEarlyData, nil)
		}
		if m.hasClientCertType {
			addExtension(exts, scratch, extensionClientCertType, func(b *cryptobyte.Builder) {
				b.AddUint8(m.clientCertType)
			})
		}
		if m.hasServerCertType {
			addExtension(exts, scratch, extensionServerCertType, func(b *cryptobyte.Builder) {
				b.AddUint8(m.serverCertType)
			})
		}
	})
	return b.Bytes()
}

func (m *encryptedExtensionsMsg13) unmarshal(body []byte) bool {
	*m = encryptedExtensionsMsg13{}
	s := cryptobyte.String(slices.Clone(body))
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	var seen extensionSet
	for !exts.Empty() {
		var id uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&id) || !exts.ReadUint16LengthPrefixed(&data) || !seen.add(id) {
			return false
		}
		m.extensions = append(m.extensions, id)
		switch id {
		case extensionServerName:
			m.serverNameAck = true
		case extensionSupportedCurves:
			if !readUint16List(&data, &m.supportedGroups) {
				return false
			}
		case extensionALPN:
			var protos []string
			if !readALPN(&data, &protos) || len(protos) != 1 {
				return false
			}
			m.alpnProtocol = protos[0]
		case extensionUseSRTP:
			var profiles []uint16
			if !readUint16List(&data, &profiles) || len(profiles) != 1 ||
				!readBytes8(&data, &m.srtpMKI) {
				return false
			}
			m.hasSRTP, m.srtpProtectionProfile = true, profiles[0]
		case extensionEarlyData:
			m.earlyData = true
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
		default:
			continue
		}
		if !data.Empty() {
			return false
		}
	}
	return true
}

// certificateRequestMsg13 is the 1.3 CertificateRequest (RFC 8446
// §4.3.2): a context (empty in the handshake, unique per request after
// it, §4.6.2) and extensions, of which signature_algorithms is required.
type certificateRequestMsg13 struct {
	context                          []byte
	supportedSignatureAlgorithms     []tls.SignatureScheme
	supportedSignatureAlgorithmsCert []tls.SignatureScheme
	certificateAuthorities           [][]byte
	extensions                       []uint16
}

func (*certificateRequestMsg13) messageType() handshakeType { return typeCertificateRequest }

func (m *certificateRequestMsg13) marshal() ([]byte, error) {
	if len(m.supportedSignatureAlgorithms) == 0 {
		return nil, errors.New("dtls: CertificateRequest without signature_algorithms")
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, helloBuilderSize))
	scratch := cryptobyte.NewBuilder(make([]byte, 0, helloBuilderSize))
	addBytes8(b, m.context)
	b.AddUint16LengthPrefixed(func(exts *cryptobyte.Builder) {
		addExtension(exts, scratch, extensionSignatureAlgorithms, func(b *cryptobyte.Builder) {
			addUint16List(b, m.supportedSignatureAlgorithms)
		})
		if len(m.supportedSignatureAlgorithmsCert) > 0 {
			addExtension(exts, scratch, extensionSignatureAlgsCert, func(b *cryptobyte.Builder) {
				addUint16List(b, m.supportedSignatureAlgorithmsCert)
			})
		}
		if len(m.certificateAuthorities) > 0 {
			// certificate_authorities: DistinguishedName
			// authorities<3..2^16-1>, each opaque<1..2^16-1> (§4.2.4).
			addExtension(exts, scratch, extensionCertificateAuthorities, func(b *cryptobyte.Builder) {
				addNonEmptyBytes16List(b, m.certificateAuthorities, "dtls: empty distinguished name")
			})
		}
	})
	return b.Bytes()
}

// unmarshal parses a 1.3 CertificateRequest. A missing
// signature_algorithms fails the parse (RFC 8446 §4.3.2 "MUST be
// specified").
func (m *certificateRequestMsg13) unmarshal(body []byte) bool {
	*m = certificateRequestMsg13{}
	s := cryptobyte.String(slices.Clone(body))
	var exts cryptobyte.String
	if !readBytes8(&s, &m.context) || !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	var seen extensionSet
	for !exts.Empty() {
		var id uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&id) || !exts.ReadUint16LengthPrefixed(&data) || !seen.add(id) {
			return false
		}
		m.extensions = append(m.extensions, id)
		switch id {
		case extensionSignatureAlgorithms:
			if !readUint16List(&data, &m.supportedSignatureAlgorithms) {
				return false
			}
		case extensionSignatureAlgsCert:
			if !readUint16List(&data, &m.supportedSignatureAlgorithmsCert) {
				return false
			}
		case extensionCertificateAuthorities:
			var list cryptobyte.String
			if !data.ReadUint16LengthPrefixed(&list) || list.Empty() {
				return false
			}
			for !list.Empty() {
				var dn []byte
				if !readBytes16(&list, &dn) || len(dn) == 0 ||
					len(m.certificateAuthorities) == maxCertificateAuthorities13 {
					return false
				}
				m.certificateAuthorities = append(m.certificateAuthorities, dn)
			}
		default:
			continue
		}
		if !data.Empty() {
			return false
		}
	}
	return len(m.supportedSignatureAlgorithms) > 0
}

// certificateEntry13 is a CertificateEntry (RFC 8446 §4.4.2): a DER
// certificate (or, with RFC 7250 raw public keys, a
// SubjectPublicKeyInfo) and its extensions, of which we read the OCSP
// staple (status_request) and the SCT list.
type certificateEntry13 struct {
	data       []byte
	ocspStaple []byte   // status_request: CertificateStatus with status_type ocsp(1)
	scts       [][]byte // signed_certificate_timestamp: SerializedSCT list
}

// certificateMsg13 is the 1.3 Certificate (RFC 8446 §4.4.2).
type certificateMsg13 struct {
	context []byte
	entries []certificateEntry13
}

func (*certificateMsg13) messageType() handshakeType { return typeCertificate }

// statusTypeOCSP is CertificateStatusType ocsp (RFC 6066 §8).
const statusTypeOCSP = 1

func (m *certificateMsg13) marshal() ([]byte, error) {
	if len(m.entries) > maxCertificateEntries13 {
		return nil, errors.New("dtls: too many certificate entries")
	}
	n := 1 + len(m.context) + 3
	for _, e := range m.entries {
		n += 3 + len(e.data) + 2 + 4 + len(e.ocspStaple)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, n))
	scratch := cryptobyte.NewBuilder(nil)
	addBytes8(b, m.context)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, e := range m.entries {
			if len(e.data) == 0 {
				b.SetError(errors.New("dtls: empty certificate entry"))
				return
			}
			addBytes24(b, e.data)
			b.AddUint16LengthPrefixed(func(exts *cryptobyte.Builder) {
				if len(e.ocspStaple) > 0 {
					addExtension(exts, scratch, extensionStatusRequest, func(b *cryptobyte.Builder) {
						b.AddUint8(statusTypeOCSP)
						addBytes24(b, e.ocspStaple)
					})
				}
				if len(e.scts) > 0 {
					addExtension(exts, scratch, extensionSCT, func(b *cryptobyte.Builder) {
						addNonEmptyBytes16List(b, e.scts, "dtls: empty SCT")
					})
				}
			})
		}
	})
	return b.Bytes()
}

func (m *certificateMsg13) unmarshal(body []byte) bool {
	*m = certificateMsg13{}
	s := cryptobyte.String(slices.Clone(body))
	var list cryptobyte.String
	if !readBytes8(&s, &m.context) || !s.ReadUint24LengthPrefixed(&list) || !s.Empty() {
		return false
	}
	for !list.Empty() {
		if len(m.entries) == maxCertificateEntries13 {
			return false
		}
		var e certificateEntry13
		var exts cryptobyte.String
		if !readBytes24(&list, &e.data) || len(e.data) == 0 ||
			!list.ReadUint16LengthPrefixed(&exts) {
			return false
		}
		var seen extensionSet
		for !exts.Empty() {
			var id uint16
			var data cryptobyte.String
			if !exts.ReadUint16(&id) || !exts.ReadUint16LengthPrefixed(&data) || !seen.add(id) {
				return false
			}
			switch id {
			case extensionStatusRequest:
				var typ uint8
				if !data.ReadUint8(&typ) || typ != statusTypeOCSP ||
					!readBytes24(&data, &e.ocspStaple) || len(e.ocspStaple) == 0 {
					return false
				}
			case extensionSCT:
				var scts cryptobyte.String
				if !data.ReadUint16LengthPrefixed(&scts) || scts.Empty() {
					return false
				}
				for !scts.Empty() {
					var sct []byte
					if !readBytes16(&scts, &sct) || len(sct) == 0 {
						return false
					}
					e.scts = append(e.scts, sct)
				}
			default:
				continue
			}
			if !data.Empty() {
				return false
			}
		}
		m.entries = append(m.entries, e)
	}
	return true
}

// newSessionTicketMsg13 is the 1.3 NewSessionTicket (RFC 8446 §4.6.1),
// sent in epoch 3 or later (RFC 9147 §5.6: never with 0-RTT keys).
type newSessionTicketMsg13 struct {
	lifetime        uint32
	ageAdd          uint32
	nonce           []byte
	label           []byte // the ticket
	maxEarlyData    uint32 // early_data extension; 0 when absent
	hasMaxEarlyData bool
}

func (*newSessionTicketMsg13) messageType() handshakeType { return typeNewSessionTicket }

// maxTicketLifetime13 is RFC 8446 §4.6.1's bound on ticket_lifetime:
// "Servers MUST NOT use any value greater than 604800 seconds (7 days)."
const maxTicketLifetime13 = 7 * 24 * 60 * 60

func (m *newSessionTicketMsg13) marshal() ([]byte, error) {
	if len(m.label) == 0 {
		return nil, errors.New("dtls: empty session ticket")
	}
	if m.lifetime > maxTicketLifetime13 {
		return nil, errors.New("dtls: ticket lifetime over seven days")
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 4+4+1+len(m.nonce)+2+len(m.label)+2+8))
	b.AddUint32(m.lifetime)
	b.AddUint32(m.ageAdd)
	addBytes8(b, m.nonce)
	addBytes16(b, m.label)
	b.AddUint16LengthPrefixed(func(exts *cryptobyte.Builder) {
		if m.hasMaxEarlyData {
			exts.AddUint16(extensionEarlyData)
			exts.AddUint16(4)
			exts.AddUint32(m.maxEarlyData)
		}
	})
	return b.Bytes()
}

// unmarshal parses a 1.3 NewSessionTicket. A lifetime over seven days
// fails it (RFC 8446 §4.6.1 lets the client treat such a ticket as
// invalid; we refuse the message).
func (m *newSessionTicketMsg13) unmarshal(body []byte) bool {
	*m = newSessionTicketMsg13{}
	s := cryptobyte.String(slices.Clone(body))
	var exts cryptobyte.String
	if !s.ReadUint32(&m.lifetime) || m.lifetime > maxTicketLifetime13 ||
		!s.ReadUint32(&m.ageAdd) || !readBytes8(&s, &m.nonce) ||
		!readBytes16(&s, &m.label) || len(m.label) == 0 ||
		!s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	var seen extensionSet
	for !exts.Empty() {
		var id uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&id) || !exts.ReadUint16LengthPrefixed(&data) || !seen.add(id) {
			return false
		}
		if id != extensionEarlyData {
			continue
		}
		m.hasMaxEarlyData = true
		if !data.ReadUint32(&m.maxEarlyData) || !data.Empty() {
			return false
		}
	}
	return true
}

// keyUpdateMsg13 is KeyUpdate (RFC 8446 §4.6.3, RFC 9147 §8). unmarshal
// takes any one byte; the handshake answers a value other than 0 or 1
// with illegal_parameter, as RFC 8446 §4.6.3 requires (a parse failure
// would be a decode_error).
type keyUpdateMsg13 struct {
	requestUpdate uint8
}

func (*keyUpdateMsg13) messageType() handshakeType { return typeKeyUpdate }

func (m *keyUpdateMsg13) marshal() ([]byte, error) {
	if m.requestUpdate > keyUpdateRequested {
		return nil, errors.New("dtls: invalid KeyUpdate request")
	}
	return []byte{m.requestUpdate}, nil
}

func (m *keyUpdateMsg13) unmarshal(body []byte) bool {
	if len(body) != 1 {
		*m = keyUpdateMsg13{}
		return false
	}
	m.requestUpdate = body[0]
	return true
}

// valid reports whether the request is update_not_requested or
// update_requested.
func (m *keyUpdateMsg13) valid() bool { return m.requestUpdate <= keyUpdateRequested }

// requestConnectionIDMsg13 is RequestConnectionId (RFC 9147 §9): how many
// CIDs the sender would like.
type requestConnectionIDMsg13 struct {
	numCIDs uint8
}

func (*requestConnectionIDMsg13) messageType() handshakeType { return typeRequestConnectionID }

func (m *requestConnectionIDMsg13) marshal() ([]byte, error) { return []byte{m.numCIDs}, nil }

func (m *requestConnectionIDMsg13) unmarshal(body []byte) bool {
	if len(body) != 1 {
		*m = requestConnectionIDMsg13{}
		return false
	}
	m.numCIDs = body[0]
	return true
}

// newConnectionIDMsg13 is NewConnectionId (RFC 9147 §9):
//
//	opaque ConnectionId<0..2^8-1>;
//	struct {
//	    ConnectionId cids<0..2^16-1>;
//	    ConnectionIdUsage usage;
//	} NewConnectionId;
//
// We keep the first maxNewCIDs13 of them and check the rest only for
// their encoding (§9: "Implementations which receive more spare CIDs
// than they wish to maintain MAY simply discard any extra CIDs"); empty
// says one of them, kept or not, is empty.
type newConnectionIDMsg13 struct {
	cids  [][]byte
	usage uint8
	empty bool
}

func (*newConnectionIDMsg13) messageType() handshakeType { return typeNewConnectionID }

func (m *newConnectionIDMsg13) marshal() ([]byte, error) {
	if len(m.cids) > maxNewCIDs13 {
		return nil, errors.New("dtls: too many CIDs in NewConnectionId")
	}
	if m.usage > cidSpare {
		return nil, errors.New("dtls: invalid ConnectionIdUsage")
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, cid := range m.cids {
			addBytes8(b, cid)
		}
	})
	b.AddUint8(m.usage)
	return b.Bytes()
}

func (m *newConnectionIDMsg13) unmarshal(body []byte) bool {
	*m = newConnectionIDMsg13{}
	s := cryptobyte.String(slices.Clone(body))
	var list cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&list) || !s.ReadUint8(&m.usage) || !s.Empty() ||
		m.usage > cidSpare {
		return false
	}
	for !list.Empty() {
		var cid []byte
		if !readBytes8(&list, &cid) {
			*m = newConnectionIDMsg13{}
			return false
		}
		if len(cid) == 0 {
			m.empty = true
		}
		if len(m.cids) < maxNewCIDs13 {
			m.cids = append(m.cids, cid)
		}
	}
	return true
}

// appendTranscriptMessage13 appends a handshake message to a DTLS 1.3
// transcript the way RFC 9147 §5.2 has it: with the TLS-style four-byte
// header (msg_type, 24-bit length), without message_seq and the fragment
// fields (bc-java #1468 hashed the 12-byte header and failed only against
// a foreign peer).
func appendTranscriptMessage13(dst []byte, typ handshakeType, body []byte) []byte {
	dst = append(dst, byte(typ), byte(len(body)>>16), byte(len(body)>>8), byte(len(body)))
	return append(dst, body...)
}

// writeTranscriptMessage13 adds a message to a 1.3 transcript hash as
// appendTranscriptMessage13 lays it out, without copying the body.
func writeTranscriptMessage13(h hash.Hash, typ handshakeType, body []byte) {
	hdr := [4]byte{byte(typ), byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	h.Write(hdr[:])
	h.Write(body)
}

// messageHash13 is the synthetic message that replaces ClientHello1 in
// the transcript after a HelloRetryRequest (RFC 8446 §4.4.1):
// message_hash(254) ‖ 00 00 ‖ Hash.length ‖ Hash(ClientHello1), where
// ClientHello1 is hashed with its TLS-style header (as in the transcript).
func messageHash13(h crypto.Hash, ch1 []byte) []byte {
	hh := h.New()
	writeTranscriptMessage13(hh, typeClientHello, ch1)
	return appendTranscriptMessage13(nil, typeMessageHash, hh.Sum(nil))
}

// signedMessage13 is the content a 1.3 CertificateVerify signs (RFC 8446
// §4.4.3): 64 spaces, the context string, a zero byte, and the transcript
// hash. DTLS 1.3 keeps TLS 1.3's context strings.
func signedMessage13(server bool, transcriptHash []byte) []byte {
	context := "TLS 1.3, client CertificateVerify"
	if server {
		context = "TLS 1.3, server CertificateVerify"
	}
	out := make([]byte, 0, 64+len(context)+1+len(transcriptHash))
	out = append(out, bytes.Repeat([]byte{0x20}, 64)...)
	out = append(out, context...)
	out = append(out, 0)
	return append(out, transcriptHash...)
}
