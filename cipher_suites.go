package dtls

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"fmt"

	"github.com/dtls-go/dtls/internal/ccm"
	"golang.org/x/crypto/chacha20poly1305"
)

// Cipher suite ids (IANA "TLS Cipher Suites" registry).
const (
	TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256       uint16 = 0xc02b
	TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384       uint16 = 0xc02c
	TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 uint16 = 0xcca9
	TLS_ECDHE_ECDSA_WITH_AES_128_CCM              uint16 = 0xc0ac
	TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8            uint16 = 0xc0ae
	TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256         uint16 = 0xc02f
	TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384         uint16 = 0xc030
	TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256   uint16 = 0xcca8
	TLS_PSK_WITH_AES_128_CCM_8                    uint16 = 0xc0a8
	TLS_PSK_WITH_AES_128_CCM                      uint16 = 0xc0a4
	TLS_PSK_WITH_AES_128_GCM_SHA256               uint16 = 0x00a8
	TLS_PSK_WITH_CHACHA20_POLY1305_SHA256         uint16 = 0xccab
	TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256         uint16 = 0xd001
	TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256   uint16 = 0xccac
)

// aeadKind names the record protection of a suite.
type aeadKind uint8

const (
	aeadAES128GCM aeadKind = iota + 1
	aeadAES256GCM
	aeadChaCha20Poly1305
	aeadAES128CCM
	aeadAES256CCM
	aeadAES128CCM8
)

// aeadParams describes how an aeadKind protects records (RFC 5288, RFC 6655,
// RFC 7905): the key length, the implicit IV (salt) from the key block, the
// explicit nonce carried in each record and the tag length.
type aeadParams struct {
	keyLen      int
	fixedIVLen  int // bytes of client/server_write_IV from the key block
	explicitLen int // nonce_explicit bytes in each record (0 with ChaCha20)
	tagLen      int
}

var aeadTable = map[aeadKind]aeadParams{
	aeadAES128GCM:        {keyLen: 16, fixedIVLen: 4, explicitLen: 8, tagLen: 16},
	aeadAES256GCM:        {keyLen: 32, fixedIVLen: 4, explicitLen: 8, tagLen: 16},
	aeadChaCha20Poly1305: {keyLen: 32, fixedIVLen: 12, explicitLen: 0, tagLen: 16},
	aeadAES128CCM:        {keyLen: 16, fixedIVLen: 4, explicitLen: 8, tagLen: 16},
	aeadAES256CCM:        {keyLen: 32, fixedIVLen: 4, explicitLen: 8, tagLen: 16},
	aeadAES128CCM8:       {keyLen: 16, fixedIVLen: 4, explicitLen: 8, tagLen: 8},
}

// newAEAD returns the 12-byte-nonce AEAD for a key.
func (k aeadKind) newAEAD(key []byte) (cipher.AEAD, error) {
	switch k {
	case aeadChaCha20Poly1305:
		return chacha20poly1305.New(key)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	switch k {
	case aeadAES128GCM, aeadAES256GCM:
		return cipher.NewGCM(block)
	case aeadAES128CCM, aeadAES256CCM:
		return ccm.New(block, 16, 12)
	case aeadAES128CCM8:
		return ccm.New(block, 8, 12)
	}
	return nil, fmt.Errorf("dtls: unknown AEAD %d", k)
}

// cipherSuite is one DTLS 1.2 cipher suite: a row of the table below.
type cipherSuite struct {
	id   uint16
	name string
	kx   keyExchange
	aead aeadKind
	hash crypto.Hash // PRF and transcript hash
}

func (s *cipherSuite) params() aeadParams { return aeadTable[s.aead] }

// cipherSuites is every suite we implement, in our default preference order:
// AES-GCM first (hardware AES is common), then ChaCha20-Poly1305, then the
// CCM suites that constrained devices and CoAP (RFC 7252 §9) need.
var cipherSuites = []*cipherSuite{
	{TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", kxECDHEECDSA, aeadAES128GCM, crypto.SHA256},
	{TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", kxECDHERSA, aeadAES128GCM, crypto.SHA256},
	{TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", kxECDHEECDSA, aeadAES256GCM, crypto.SHA384},
	{TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", kxECDHERSA, aeadAES256GCM, crypto.SHA384},
	{TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", kxECDHEECDSA, aeadChaCha20Poly1305, crypto.SHA256},
	{TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", kxECDHERSA, aeadChaCha20Poly1305, crypto.SHA256},
	{TLS_ECDHE_ECDSA_WITH_AES_128_CCM, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", kxECDHEECDSA, aeadAES128CCM, crypto.SHA256},
	{TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", kxECDHEECDSA, aeadAES128CCM8, crypto.SHA256},
	{TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256, "TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256", kxECDHEPSK, aeadAES128GCM, crypto.SHA256},
	{TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256, "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256", kxECDHEPSK, aeadChaCha20Poly1305, crypto.SHA256},
	{TLS_PSK_WITH_AES_128_GCM_SHA256, "TLS_PSK_WITH_AES_128_GCM_SHA256", kxPSK, aeadAES128GCM, crypto.SHA256},
	{TLS_PSK_WITH_CHACHA20_POLY1305_SHA256, "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256", kxPSK, aeadChaCha20Poly1305, crypto.SHA256},
	{TLS_PSK_WITH_AES_128_CCM, "TLS_PSK_WITH_AES_128_CCM", kxPSK, aeadAES128CCM, crypto.SHA256},
	{TLS_PSK_WITH_AES_128_CCM_8, "TLS_PSK_WITH_AES_128_CCM_8", kxPSK, aeadAES128CCM8, crypto.SHA256},
}

// cipherSuiteByID returns the suite with the given id, or nil.
func cipherSuiteByID(id uint16) *cipherSuite {
	for _, s := range cipherSuites {
		if s.id == id {
			return s
		}
	}
	return nil
}

// CipherSuite describes a cipher suite this package implements.
type CipherSuite struct {
	ID   uint16
	Name string
}

// CipherSuites returns the cipher suites this package implements, in its
// default preference order.
func CipherSuites() []*CipherSuite {
	out := make([]*CipherSuite, len(cipherSuites))
	for i, s := range cipherSuites {
		out[i] = &CipherSuite{ID: s.id, Name: s.name}
	}
	return out
}

// CipherSuiteName returns the IANA name of a cipher suite id, or a hex
// fallback like "0x1301" for ids this package does not implement
// (crypto/tls.CipherSuiteName does the same).
func CipherSuiteName(id uint16) string {
	if s := cipherSuiteByID(id); s != nil {
		return s.name
	}
	if s := cipherSuite13ByID(id); s != nil {
		return s.name
	}
	return fmt.Sprintf("0x%04X", id)
}

// CipherSuiteByName returns the id of an implemented suite by its IANA name.
func CipherSuiteByName(name string) (uint16, bool) {
	for _, s := range cipherSuites {
		if s.name == name {
			return s.id, true
		}
	}
	for _, s := range cipherSuites13 {
		if s.name == name {
			return s.id, true
		}
	}
	return 0, false
}
