package dtls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// SRTP protection profiles for Config.SRTPProtectionProfiles (RFC 5764
// §4.1.2, RFC 7714 §14.2; IANA "DTLS-SRTP Protection Profiles").
const (
	SRTP_AES128_CM_HMAC_SHA1_80 uint16 = 0x0001
	SRTP_AES128_CM_HMAC_SHA1_32 uint16 = 0x0002
	SRTP_AEAD_AES_128_GCM       uint16 = 0x0007
	SRTP_AEAD_AES_256_GCM       uint16 = 0x0008
)

// srtpExporterLabel is the RFC 5705 label of the SRTP keying material
// (RFC 5764 §4.2).
const srtpExporterLabel = "EXTRACTOR-dtls_srtp"

// srtpKeyLengths returns the master key and master salt lengths of a
// profile: 128-bit keys and 112-bit salts for AES-CM (RFC 3711 §8.2), 96-bit
// salts for AEAD (RFC 7714 §12).
func srtpKeyLengths(profile uint16) (keyLen, saltLen int, ok bool) {
	switch profile {
	case SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AES128_CM_HMAC_SHA1_32:
		return 16, 14, true
	case SRTP_AEAD_AES_128_GCM:
		return 16, 12, true
	case SRTP_AEAD_AES_256_GCM:
		return 32, 12, true
	}
	return 0, 0, false
}

// SRTPKeys is the SRTP keying material of a DTLS-SRTP connection: the
// master key and salt each side protects its SRTP and SRTCP packets with
// (RFC 5764 §4.2). The client sends with the client keys and receives with
// the server keys; the server the other way round.
type SRTPKeys struct {
	Profile         uint16 // the negotiated protection profile
	MKI             []byte // the negotiated MKI; empty when MKIs are not used
	ClientWriteKey  []byte
	ClientWriteSalt []byte
	ServerWriteKey  []byte
	ServerWriteSalt []byte
}

// SRTPKeys returns the SRTP master keys and salts negotiated with
// use_srtp. It fails before the handshake completes, when no profile was
// negotiated, and for a profile whose key lengths it does not know.
func (c *Conn) SRTPKeys() (*SRTPKeys, error) {
	if !c.handshakeComplete.Load() {
		return nil, errHandshakeNotComplete
	}
	profile := c.state.srtpProfile
	if profile == 0 {
		return nil, errors.New("dtls: no SRTP protection profile was negotiated")
	}
	keyLen, saltLen, ok := srtpKeyLengths(profile)
	if !ok {
		return nil, fmt.Errorf("dtls: unknown SRTP protection profile %#04x", profile)
	}
	// client_write_SRTP_master_key ‖ server_write_SRTP_master_key ‖
	// client_write_SRTP_master_salt ‖ server_write_SRTP_master_salt
	km, err := c.ekm(srtpExporterLabel, nil, 2*(keyLen+saltLen))
	if err != nil {
		return nil, err
	}
	return &SRTPKeys{
		Profile:         profile,
		MKI:             slices.Clone(c.state.srtpMKI),
		ClientWriteKey:  km[:keyLen:keyLen],
		ServerWriteKey:  km[keyLen : 2*keyLen : 2*keyLen],
		ClientWriteSalt: km[2*keyLen : 2*keyLen+saltLen : 2*keyLen+saltLen],
		ServerWriteSalt: km[2*keyLen+saltLen:],
	}, nil
}

// negotiateSRTP picks the server's first profile that the client offered
// (RFC 5764 §4.1.1). Without a common profile the server leaves use_srtp
// out of its ServerHello and the handshake goes on without SRTP. The
// client's MKI is echoed only by a server that accepts MKIs (a non-empty
// Config.SRTPMKI); an empty one tells the client not to use them.
func (hs *serverHandshakeState) negotiateSRTP() error {
	p, mki, ok := hs.c.config.selectSRTP(hs.hello)
	if !ok {
		return nil
	}
	sh := hs.serverHello
	sh.hasSRTP = true
	sh.srtpProtectionProfile = p
	sh.srtpMKI = mki
	hs.state.srtpProfile = p
	hs.state.srtpMKI = mki
	return nil
}

// selectSRTP is the server's use_srtp choice for a ClientHello, the same
// in 1.2 and 1.3 (which answers in EncryptedExtensions): the profile and
// the MKI to echo, or ok false without a common profile.
func (cfg *Config) selectSRTP(ch *clientHelloMsg) (profile uint16, mki []byte, ok bool) {
	if len(ch.srtpProtectionProfiles) == 0 || len(cfg.SRTPProtectionProfiles) == 0 {
		return 0, nil, false
	}
	for _, p := range cfg.SRTPProtectionProfiles {
		if !slices.Contains(ch.srtpProtectionProfiles, p) {
			continue
		}
		if len(cfg.SRTPMKI) > 0 {
			mki = slices.Clone(ch.srtpMKI)
		}
		return p, mki, true
	}
	return 0, nil, false
}

// processServerSRTP checks the server's use_srtp answer in its 1.2
// ServerHello.
func (hs *clientHandshakeState) processServerSRTP() error {
	sh := hs.serverHello
	if !sh.hasSRTP {
		return nil
	}
	return hs.c.acceptServerSRTP(hs.hello, &hs.state, sh.srtpProtectionProfile, sh.srtpMKI)
}

// acceptServerSRTP checks a server's use_srtp answer (in a 1.2
// ServerHello or 1.3 EncryptedExtensions): one profile that we offered,
// and an MKI that is empty or ours (RFC 5764 §4.1.2); and notes it in st.
func (c *Conn) acceptServerSRTP(hello *clientHelloMsg, st *connState, profile uint16, mki []byte) error {
	if !slices.Contains(hello.srtpProtectionProfiles, profile) {
		return c.fail(alertIllegalParameter, fmt.Errorf("dtls: server chose SRTP profile %#04x, which we did not offer", profile))
	}
	if len(mki) > 0 && !bytes.Equal(mki, hello.srtpMKI) {
		return c.fail(alertIllegalParameter, errors.New("dtls: server's SRTP MKI differs from ours"))
	}
	st.srtpProfile = profile
	st.srtpMKI = slices.Clone(mki)
	return nil
}
