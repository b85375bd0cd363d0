package coapdemo

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/dtls-go/dtls"
)

// CIDLength is the length of the connection IDs a server hands out
// (RFC 9146): 8 bytes route well and cost little per record.
const CIDLength = 8

// Credentials say how one side authenticates, and build its dtls.Config.
// Exactly one of PSK, RawPublicKey or a certificate is used, in that order.
type Credentials struct {
	// PSK is the pre-shared key: the suite is then
	// TLS_PSK_WITH_AES_128_CCM_8, CoAP's mandatory PSK suite (RFC 7252
	// §9.1.3.1). PSKIdentity is the client's identity; a server with one
	// set accepts only that identity.
	PSK         []byte
	PSKIdentity []byte

	// Certificate is ours: a certificate chain and key, or with
	// RawPublicKey only the key (RFC 7250: RFC 7252 §9.1.3.2).
	Certificate *tls.Certificate

	// RawPublicKey authenticates both sides with bare keys; PeerPublicKeys
	// are the keys accepted from the peer.
	RawPublicKey   bool
	PeerPublicKeys []crypto.PublicKey

	// CAs verifies the peer's certificate: the server's for a client, the
	// client's for a server, which then requires one (RFC 7252 §9.1.3.3).
	CAs        *x509.CertPool
	ServerName string

	// CID turns on connection IDs (RFC 9146), so that a client's session
	// survives a change of its address: a server hands out CIDLength-byte
	// CIDs, a client asks for none of its own but sends the server's.
	CID bool
}

// ServerConfig returns the dtls.Config for a server.
func (c *Credentials) ServerConfig() (*dtls.Config, error) {
	cfg := &dtls.Config{}
	switch {
	case c.PSK != nil:
		key, want := c.PSK, c.PSKIdentity
		// RFC 7252 §9.1.3.1's suite is a DTLS 1.2 one: a PSK device
		// stays on 1.2 (a 1.3 client would otherwise get
		// TLS_AES_128_GCM_SHA256).
		cfg.CipherSuites = []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8}
		cfg.MaxVersion = dtls.VersionDTLS12
		cfg.PSK = func(identity []byte) ([]byte, error) {
			if want != nil && string(identity) != string(want) {
				return nil, fmt.Errorf("coapdemo: unknown PSK identity %q", identity)
			}
			return key, nil
		}
	case c.RawPublicKey:
		if c.Certificate == nil || len(c.PeerPublicKeys) == 0 {
			return nil, errors.New("coapdemo: raw public keys need our key and the peer's")
		}
		cfg.RawPublicKey = true
		cfg.Certificates = []tls.Certificate{*c.Certificate}
		cfg.PeerPublicKeys = c.PeerPublicKeys
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case c.Certificate != nil:
		cfg.Certificates = []tls.Certificate{*c.Certificate}
		if c.CAs != nil {
			cfg.ClientCAs = c.CAs
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	default:
		return nil, errors.New("coapdemo: a server needs a PSK, a raw public key or a certificate")
	}
	if c.CID {
		cfg.ConnectionIDGenerator = dtls.RandomCIDGenerator(CIDLength)
	}
	return cfg, nil
}

// ClientConfig returns the dtls.Config for a client.
func (c *Credentials) ClientConfig() (*dtls.Config, error) {
	cfg := &dtls.Config{ServerName: c.ServerName}
	switch {
	case c.PSK != nil:
		key := c.PSK
		cfg.CipherSuites = []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8}
		cfg.MaxVersion = dtls.VersionDTLS12 // as in ServerConfig
		cfg.PSK = func([]byte) ([]byte, error) { return key, nil }
		cfg.PSKIdentity = c.PSKIdentity
		if cfg.PSKIdentity == nil {
			cfg.PSKIdentity = []byte("coapdemo")
		}
	case c.RawPublicKey:
		if c.Certificate == nil || len(c.PeerPublicKeys) == 0 {
			return nil, errors.New("coapdemo: raw public keys need our key and the peer's")
		}
		cfg.RawPublicKey = true
		cfg.Certificates = []tls.Certificate{*c.Certificate}
		cfg.PeerPublicKeys = c.PeerPublicKeys
	default:
		if c.CAs == nil {
			return nil, errors.New("coapdemo: a certificate client needs the CAs that verify the server")
		}
		cfg.RootCAs = c.CAs
		if c.Certificate != nil {
			cfg.Certificates = []tls.Certificate{*c.Certificate}
		}
	}
	if c.CID {
		cfg.ConnectionIDGenerator = dtls.OnlySendCIDGenerator()
	}
	return cfg, nil
}

// Flags are the command-line form of Credentials, for cmd/coap-server
// and cmd/coap-client.
type Flags struct {
	psk, identity             string
	cert, key, ca, serverName string
	rpk, peerRPK              string
	cid                       bool
}

// Register defines the flags on fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.psk, "psk", "", "pre-shared key, as text (TLS_PSK_WITH_AES_128_CCM_8)")
	fs.StringVar(&f.identity, "identity", "", "PSK identity: the client's to send, the one a server accepts (default: any)")
	fs.StringVar(&f.cert, "cert", "", "PEM certificate chain")
	fs.StringVar(&f.key, "key", "", "PEM private key of -cert")
	fs.StringVar(&f.ca, "ca", "", "PEM CA certificates that verify the peer (on a server: require client certificates)")
	fs.StringVar(&f.serverName, "servername", "localhost", "name the server's certificate must carry (client)")
	fs.StringVar(&f.rpk, "rpk", "", "PEM private key to authenticate with as a raw public key (RFC 7250)")
	fs.StringVar(&f.peerRPK, "peer-rpk", "", "PEM file of the peer's raw public key(s): PUBLIC KEY, or a private key whose public half is meant")
	fs.BoolVar(&f.cid, "cid", false, "use connection IDs (RFC 9146)")
}

// Credentials loads the files the flags name.
func (f *Flags) Credentials() (*Credentials, error) {
	c := &Credentials{CID: f.cid, ServerName: f.serverName}
	if f.psk != "" {
		c.PSK = []byte(f.psk)
		if f.identity != "" {
			c.PSKIdentity = []byte(f.identity)
		}
	}
	if f.cert != "" {
		crt, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, err
		}
		c.Certificate = &crt
	}
	if f.ca != "" {
		b, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, err
		}
		c.CAs = x509.NewCertPool()
		if !c.CAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("coapdemo: no certificate in %s", f.ca)
		}
	}
	if f.rpk != "" {
		keys, err := LoadKeys(f.rpk)
		if err != nil {
			return nil, err
		}
		priv, ok := keys[0].(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("coapdemo: %s holds no private key", f.rpk)
		}
		c.RawPublicKey = true
		c.Certificate = &tls.Certificate{PrivateKey: priv}
		if f.peerRPK == "" {
			return nil, errors.New("coapdemo: -rpk needs -peer-rpk")
		}
		peers, err := LoadKeys(f.peerRPK)
		if err != nil {
			return nil, err
		}
		for _, k := range peers {
			if s, ok := k.(crypto.Signer); ok {
				k = s.Public()
			}
			c.PeerPublicKeys = append(c.PeerPublicKeys, k)
		}
	}
	return c, nil
}

// LoadKeys reads the keys in a PEM file: "PUBLIC KEY" blocks give public
// keys, "EC PRIVATE KEY" and "PRIVATE KEY" blocks private keys (a
// crypto.Signer). libcoap's -M files are of the second kind.
func LoadKeys(file string) ([]any, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var keys []any
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var k any
		switch blk.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("coapdemo: %s: %w", file, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("coapdemo: no key in %s", file)
	}
	return keys, nil
}
