package dtls

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
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
	// selection). If it returns nil, Certificates is used.
	GetCertificate func(*ClientHelloInfo) (*tls.Certificate, error)

	// RootCAs is the set of roots a client verifies server certificates
	// against. If nil, the host's root set is used.
	RootCAs *x509.CertPool

	// ServerName is checked against the server's certificate and sent in
	// the server_name extension (unless it is an IP address).
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
	// against when ClientAuth asks for verification.
	ClientCAs *x509.CertPool

	// CipherSuites lists the enabled suites, by IANA id, in preference
	// order. If nil, a secure default list for the configured credentials
	// is used.
	CipherSuites []uint16

	// CurvePreferences lists the ECDHE groups in preference order
	// (X25519, P-256, P-384). If nil, the default is X25519, P-256, P-384.
	CurvePreferences []tls.CurveID

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

	// MTU is the largest UDP payload, in bytes, the handshake sends.
	// Flights are fragmented to it. If 0, 1200 is used.
	MTU int

	// RetransmitTimeout is the initial flight retransmission timeout; it
	// doubles on each retransmission up to 60 s. Once a flight is answered
	// without loss, the timer follows the measured round-trip time
	// (RFC 6298) but never drops below this value. If 0, 100 ms is used
	// (RFC 9147 §5.8.2).
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
	// this Config, synchronously. It costs nothing when nil.
	Tracer func(*TraceEvent)

	// HandshakeTimeout bounds a handshake that has no deadline or context
	// deadline of its own. If 0, 60 s is used.
	HandshakeTimeout time.Duration
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
	LocalConnectionID     []byte
	RemoteConnectionID    []byte
	PSKIdentity           []byte
	PSKIdentityHint       []byte
	CurveID               tls.CurveID
	SignatureScheme       tls.SignatureScheme
	ekm                   func(label string, context []byte, length int) ([]byte, error)
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
	if c == nil || c.MTU == 0 {
		return defaultMTU
	}
	if c.MTU < minMTU {
		return minMTU
	}
	return c.MTU
}

func (c *Config) retransmitTimeout() time.Duration {
	if c == nil || c.RetransmitTimeout <= 0 {
		return defaultRetransmitTimeout
	}
	if c.RetransmitTimeout > maxRetransmitTimeout {
		return maxRetransmitTimeout
	}
	return c.RetransmitTimeout
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

var defaultCurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}

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
	n := *c
	return &n
}
