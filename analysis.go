package dtls

import (
	"errors"
	"fmt"
)

// RecordDecrypter opens the protected records of a captured DTLS 1.2
// session whose master secret is known from a key log, for tools that
// analyze traffic (cmd/dtls analyze). It keeps no replay state: a capture
// may hold retransmissions and duplicates. It is not safe for concurrent
// use.
type RecordDecrypter struct {
	client, server *epochKeys
}

// NewRecordDecrypter derives the epoch-1 keys of both directions of a
// session from its cipher suite, master secret and the two hello randoms.
func NewRecordDecrypter(suite uint16, masterSecret, clientRandom, serverRandom []byte) (*RecordDecrypter, error) {
	s := cipherSuiteByID(suite)
	if s == nil {
		return nil, fmt.Errorf("dtls: cipher suite %s not supported", CipherSuiteName(suite))
	}
	if len(masterSecret) != masterSecretLen || len(clientRandom) != randomLen || len(serverRandom) != randomLen {
		return nil, errors.New("dtls: master secret or randoms of the wrong length")
	}
	p := s.params()
	ck, sk, civ, siv := keysFromMasterSecret(s.hash, masterSecret, clientRandom, serverRandom, p.keyLen, p.fixedIVLen)
	d := &RecordDecrypter{}
	var err error
	if d.client, err = newEpochKeys(s.aead, ck, civ); err != nil {
		return nil, err
	}
	if d.server, err = newEpochKeys(s.aead, sk, siv); err != nil {
		return nil, err
	}
	return d, nil
}

// Open decrypts one whole record (header included) sent by the client or
// the server, and returns its plaintext in a new slice.
func (d *RecordDecrypter) Open(fromClient bool, record []byte) ([]byte, error) {
	_, plain, err := d.OpenCID(fromClient, record, 0) // no CID: nextRecord
	return plain, err
}

// OpenCID is Open for a session with Connection IDs (RFC 9146): cidLen is
// the length of the CID that the sender's records carry (the one its peer
// asked for). A tls12_cid record is unwrapped; contentType is the type
// found inside it, or the type of a plain record.
func (d *RecordDecrypter) OpenCID(fromClient bool, record []byte, cidLen int) (contentType uint8, plaintext []byte, err error) {
	hdr, body, _, reason := nextRecordCID(record, cidLen)
	if reason != dropNone {
		return 0, nil, errors.New("dtls: not a whole record")
	}
	k := d.server
	if fromClient {
		k = d.client
	}
	plain, reason := k.open(&hdr, append([]byte(nil), body...))
	if reason != dropNone {
		return 0, nil, fmt.Errorf("dtls: record does not open: %v", reason)
	}
	return uint8(hdr.typ), plain, nil
}
