package dtls

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// This file holds the steps both sides of a DTLS 1.2 handshake share.
// Each side has its own state, as in crypto/tls: clientHandshakeState
// (handshake_client.go) and serverHandshakeState (handshake_server.go),
// both built on handshakeState, with the resumption steps of each in
// handshake_resume.go.
//
// Where DTLS 1.3 (RFC 9147) plugs in, additively:
//
//   - The version is decided once, in the ClientHello (server) or the
//     ServerHello (client), and stored in Conn.vers; clientHandshake and
//     serverHandshake branch there to clientHandshakeStateTLS13 and
//     serverHandshakeStateTLS13 in handshake_client_tls13.go and
//     handshake_server_tls13.go, on a key_schedule.go. Messages and
//     extensions they share with 1.2 stay in handshake_messages.go;
//     Conn.readHandshakeMsg and parseHandshakeMsg serve both.
//   - The record layer (record.go) keeps a table of 64-bit epochs
//     (maxEpochs), which 1.3 fills with epochs 0, 2, 3 and N through
//     installReadEpoch/installWriteEpoch; the unified header is parsed
//     beside the 1.2 header, told apart by its first byte.
//   - The handshake transport's reassembly (reassembly.go) and RTT
//     estimator (rtt.go) are shared; 1.2's whole-flight retransmission is
//     flight.go, and 1.3's ACK-driven one goes in ack.go. The transcript
//     is not shared: 1.2 hashes the 12-byte DTLS header
//     (inMessage.appendTranscript), 1.3 the 4-byte TLS one (RFC 9147
//     §5.2; bc-java #1468 got this wrong).
//   - The stateless hello gate (hello_gate.go) makes and checks the
//     cookie; a 1.3 HelloRetryRequest carries the same cookie.
//   - handlePostHandshakeMessage (conn.go) gets the 1.3 branch for
//     KeyUpdate, NewSessionTicket and the CID messages.
//   - finish is the only writer of Conn.state, and connState.connectionState
//     the only place a ConnectionState is built.

// handshakeState is one DTLS 1.2 handshake's data that both sides use.
type handshakeState struct {
	c            *Conn
	ctx          context.Context
	suite        *cipherSuite
	transcript   []byte // DTLS 1.2 transcript: 12-byte headers + bodies; starts with initialTranscriptCap
	hello        *clientHelloMsg
	serverHello  *serverHelloMsg
	ecdhKey      *ecdh.PrivateKey
	curveID      tls.CurveID
	cert         *tls.Certificate // ours
	preMaster    []byte
	masterSecret []byte
	psk          []byte
	pskIdentity  []byte
	pskHint      []byte
	ems          bool
	certRequest  *certificateRequestMsg
	peerKey      crypto.PublicKey // from the peer's certificate or raw public key
	serverRPK    bool             // the server authenticates with a raw public key (RFC 7250)
	clientRPK    bool             // the client does

	// state is what the handshake negotiated so far beyond the fields
	// above (the peer's certificates and chains, the signature scheme,
	// SRTP, a raw public key, resumption). finish completes it and makes
	// it the Conn's; VerifyConnection sees it before that.
	state connState

	// clientKeys and serverKeys are the epoch-1 keys, derived once.
	clientKeys, serverKeys *epochKeys
	// peerKeysInstalled: the read side has the peer's epoch-1 keys.
	peerKeysInstalled bool
}

// initialTranscriptCap is the capacity the transcript starts with: a full
// handshake with a P-256 certificate takes about 900 bytes, so that it is
// one allocation instead of growing append by append. A longer
// certificate chain still grows it.
const initialTranscriptCap = 1024

func newHandshakeState(c *Conn, ctx context.Context) handshakeState {
	return handshakeState{c: c, ctx: ctx, transcript: make([]byte, 0, initialTranscriptCap)}
}

// transcriptHash appends the hash of the transcript so far, with the
// suite's PRF hash, to dst: the session hash of RFC 7627 or the hash a
// Finished covers. Callers pass a stack buffer of sha512.Size384 bytes.
func (hs *handshakeState) transcriptHash(dst []byte) []byte {
	return hashSum(hs.suite.hash, dst, hs.transcript)
}

func (hs *handshakeState) addTranscript(m inMessage) {
	hs.transcript = m.appendTranscript(hs.transcript)
}

// writeHandshake queues a message into the flight being built and adds it
// to the transcript.
func (hs *handshakeState) writeHandshake(msg handshakeMessage) error {
	c := hs.c
	body, err := msg.marshal()
	if err != nil {
		return c.sendAlert(alertInternalError)
	}
	t := c.hs.queueMessage(c.rl.writeCur, msg.messageType(), body)
	hs.transcript = append(hs.transcript, t...)
	return nil
}

// readHandshakeMsg reads the peer's next handshake message, which must be
// of type want, and parses it with unmarshal, the method value of the
// message to fill (parseHandshakeMsg). It does not add the message to
// the transcript: CertificateVerify and Finished are checked against the
// transcript before them.
func (c *Conn) readHandshakeMsg(ctx context.Context, want handshakeType, unmarshal func([]byte) bool) (inMessage, error) {
	msg, err := c.readHandshake(ctx)
	if err != nil {
		return msg, err
	}
	return msg, c.parseHandshakeMsg(msg, want, unmarshal)
}

// parseHandshakeMsg is the one place where a message of the wrong type
// becomes a fatal unexpected_message and one that does not parse a fatal
// decode_error (RFC 5246 §7.2.2): a complete handshake message can only
// be the peer's, since the transport keeps the first copy of every byte.
//
// It takes the message's unmarshal method value rather than the message
// as an interface: the message is often on the caller's stack, and an
// interface call would move it to the heap, an allocation per message.
func (c *Conn) parseHandshakeMsg(msg inMessage, want handshakeType, unmarshal func([]byte) bool) error {
	if msg.typ != want {
		return c.unexpectedMessage(want, msg.typ)
	}
	if !unmarshal(msg.body) {
		return c.fail(alertDecodeError, fmt.Errorf("dtls: malformed %v", msg.typ))
	}
	return nil
}

// unexpectedMessage fails the handshake on a message of type got where
// one of type want belongs. A server names the Certificate it waits for
// the client's, as the one it sent is the same type.
func (c *Conn) unexpectedMessage(want, got handshakeType) error {
	if want == typeCertificate && !c.isClient {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: expected client Certificate, got %v", got))
	}
	return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: expected %v, got %v", want, got))
}

// enabledSuites is the client's offer, or the server's preference, when
// Config.CipherSuites is nil: the PSK suites with a PSK, the certificate
// suites otherwise.
func (c *Conn) enabledSuites() []*cipherSuite {
	if ids := c.config.CipherSuites; len(ids) > 0 {
		out := make([]*cipherSuite, 0, len(ids))
		for _, id := range ids {
			if s := cipherSuiteByID(id); s != nil {
				out = append(out, s)
			}
		}
		return out
	}
	// Sized for every suite we implement, so that it does not grow append
	// by append.
	out := make([]*cipherSuite, 0, len(cipherSuites))
	for _, s := range cipherSuites {
		if s.kx.isPSK() == (c.config.PSK != nil) {
			out = append(out, s)
		}
	}
	if c.config.PSK != nil && !c.isClient && (len(c.config.Certificates) > 0 || c.config.GetCertificate != nil) {
		for _, s := range cipherSuites {
			if !s.kx.isPSK() {
				out = append(out, s)
			}
		}
	}
	return out
}

// parsePeerChain parses the peer's certificate chain (who is "server" or
// "client", for the error) and refuses a leaf RSA key of a size we do not
// verify with (pion CVE-2026-135391), sending bad_certificate.
func (hs *handshakeState) parsePeerChain(raw [][]byte, who string) ([]*x509.Certificate, error) {
	c := hs.c
	certs := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		cert, err := parsePeerCertificate(der)
		if err != nil {
			return nil, c.fail(alertBadCertificate, fmt.Errorf("dtls: failed to parse %s certificate: %w", who, err))
		}
		certs[i] = cert
	}
	if err := checkPeerKeySize(certs[0].PublicKey); err != nil {
		return nil, c.fail(alertBadCertificate, err)
	}
	return certs, nil
}

// acceptPeerChain runs Config.VerifyPeerCertificate on a chain that passed
// our checks and records it as the peer's.
func (hs *handshakeState) acceptPeerChain(raw [][]byte, certs []*x509.Certificate, chains [][]*x509.Certificate) error {
	c := hs.c
	if f := c.config.VerifyPeerCertificate; f != nil {
		if err := f(raw, chains); err != nil {
			return c.fail(alertBadCertificate, err)
		}
	}
	hs.peerKey = certs[0].PublicKey
	hs.state.peerCertificates = certs
	hs.state.verifiedChains = chains
	return nil
}

// deriveMasterSecret turns the premaster secret into the master secret,
// with the extended master secret's session hash when negotiated.
func (hs *handshakeState) deriveMasterSecret() {
	if hs.ems {
		var th [sha512.Size384]byte
		hs.masterSecret = extMasterFromPreMasterSecret(hs.suite.hash, hs.preMaster, hs.transcriptHash(th[:0]))
	} else {
		hs.masterSecret = masterFromPreMasterSecret(hs.suite.hash, hs.preMaster, hs.hello.random, hs.serverHello.random)
	}
	hs.logMasterSecret()
}

// logMasterSecret writes the master secret to Config.KeyLogWriter, if
// any: after a full handshake derived it, or when a resumed one takes it
// from its session. A failing writer does not fail the handshake: the key
// log is a debugging aid outside the protocol, and the writer's owner
// sees its own error.
func (hs *handshakeState) logMasterSecret() {
	if w := hs.c.config.KeyLogWriter; w != nil {
		_ = writeKeyLog(w, hs.hello.random, hs.masterSecret)
	}
}

// epochKeysFor derives the epoch-1 keys of both directions, on the first
// call: writeFinished and readFinished both need them.
func (hs *handshakeState) epochKeysFor() (client, server *epochKeys, err error) {
	if hs.clientKeys != nil {
		return hs.clientKeys, hs.serverKeys, nil
	}
	p := hs.suite.params()
	ck, sk, civ, siv := keysFromMasterSecret(hs.suite.hash, hs.masterSecret, hs.hello.random, hs.serverHello.random, p.keyLen, p.fixedIVLen)
	if client, err = newEpochKeys(hs.suite.aead, ck, civ); err != nil {
		return nil, nil, err
	}
	if server, err = newEpochKeys(hs.suite.aead, sk, siv); err != nil {
		return nil, nil, err
	}
	hs.clientKeys, hs.serverKeys = client, server
	return client, server, nil
}

// writeFinished queues ChangeCipherSpec and our Finished.
func (hs *handshakeState) writeFinished(fromClient bool) error {
	c := hs.c
	ck, sk, err := hs.epochKeysFor()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	write := sk
	if fromClient {
		write = ck
	}
	c.writeChangeCipherSpec(write)
	var th [sha512.Size384]byte
	fin := &finishedMsg{verifyData: finishedVerifyData(hs.suite.hash, hs.masterSecret, fromClient, hs.transcriptHash(th[:0]))}
	return hs.writeHandshake(fin)
}

// installPeerKeys derives the peer's epoch-1 keys and starts reading with
// them (once per handshake).
func (hs *handshakeState) installPeerKeys(fromClient bool) error {
	c := hs.c
	if hs.peerKeysInstalled {
		return nil
	}
	ck, sk, err := hs.epochKeysFor()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	read := ck
	if !fromClient {
		read = sk
	}
	hs.peerKeysInstalled = true
	return c.installPeerKeys(read)
}

// readFinished waits for the peer's ChangeCipherSpec and Finished and
// checks verify_data in constant time.
func (hs *handshakeState) readFinished(fromClient bool) error {
	c := hs.c
	if err := hs.installPeerKeys(fromClient); err != nil {
		return err
	}
	if err := c.readChangeCipherSpec(hs.ctx); err != nil {
		return err
	}
	var th [sha512.Size384]byte
	var want [finishedVerifyLen]byte
	fillFinishedVerifyData(hs.suite.hash, want[:], hs.masterSecret, fromClient, hs.transcriptHash(th[:0]))
	fin := new(finishedMsg)
	msg, err := c.readHandshakeMsg(hs.ctx, typeFinished, fin.unmarshal)
	if err != nil {
		return err
	}
	if msg.epoch != c.rl.readCur {
		// A Finished must be protected by the new keys (wolfSSL
		// CVE-2023-6937: messages spanning a key change).
		return c.fail(alertUnexpectedMessage, errors.New("dtls: Finished not protected by the negotiated keys"))
	}
	if subtle.ConstantTimeCompare(fin.verifyData, want[:]) != 1 {
		return c.fail(alertDecryptError, errors.New("dtls: peer's Finished is wrong"))
	}
	hs.addTranscript(msg)
	// The Finished ends the peer's part of the handshake: no message
	// follows it in 1.2. One that arrived with it, authenticated, is the
	// peer's error (RFC 5246 §7.2.2: unexpected_message). One in the same
	// datagram behind it is not read yet: handlePostHandshakeMessage
	// refuses it.
	if typ, _, ok := c.hs.peekMessage(); ok {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: %v after the peer's Finished", typ))
	}
	c.peerFinished = true
	return nil
}

// negotiated returns what the handshake negotiated, as the Conn will keep
// it.
func (hs *handshakeState) negotiated() connState {
	s := hs.state
	s.suite = hs.suite
	s.masterSecret = hs.masterSecret
	s.clientRandom = hs.hello.random
	s.serverRandom = hs.serverHello.random
	s.ems = hs.ems
	s.alpn = hs.serverHello.alpnProtocol
	s.serverName = hs.hello.serverName
	s.curveID = hs.curveID
	if hs.suite.kx.isPSK() {
		s.pskIdentity = hs.pskIdentity
		s.pskIdentityHint = hs.pskHint
	}
	return s
}

// verifyConnection runs Config.VerifyConnection before we send Finished.
func (hs *handshakeState) verifyConnection() error {
	if hs.c.config.VerifyConnection == nil {
		return nil
	}
	s := hs.negotiated()
	return hs.c.verifyConnection(&s)
}

// finish records what was negotiated on the Conn: the only writer of
// c.state.
func (hs *handshakeState) finish() {
	hs.c.state = hs.negotiated()
	// Records of epoch 0 are of no use once the peer's Finished arrived in
	// epoch 1, except retransmissions that the transport answers.
	hs.c.expectCCS = false
}
