package dtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Post-handshake client authentication in DTLS 1.3 (RFC 8446 §4.2.6,
// §4.6.2; RFC 9147 §5.8.4): a client that has a certificate to offer
// sends post_handshake_auth in its ClientHello; after the handshake the
// server may send CertificateRequest messages, each with a context of its
// own, and the client answers each with Certificate, CertificateVerify
// (when it has a certificate) and Finished over the handshake transcript
// through its Finished followed by that request and its answer, the
// Finished keyed by its current application traffic secret (RFC 8446
// §4.4). The answer is a flight, which acknowledges the request (RFC 9147
// §7.1); the server ACKs it.

// maxCertRequests13 bounds the CertificateRequests outstanding on one
// connection: a server's that wait for their answers, and a client's that
// wait to be answered (it answers one at a time, each a flight). A server
// that sends more is an unexpected_message; RequestClientCertificate
// refuses more.
const maxCertRequests13 = 4

// certRequestContextLen is the size of the random certificate_request_context
// we send: unique on the connection (RFC 8446 §4.3.2).
const certRequestContextLen = 8

// phaState13 is a connection's post-handshake authentication state.
type phaState13 struct {
	// offered: the client sent post_handshake_auth (both sides know).
	// transcript is the handshake transcript through the client's
	// Finished, cloned for each request. Set by the handshake.
	offered    bool
	transcript hash.Hash

	// mu guards reqs: RequestClientCertificate adds requests from any
	// goroutine; the read side (c.in) sends and completes them.
	mu   sync.Mutex
	reqs []*certRequest13 // a server's outstanding requests
	// unsent: a request in reqs waits to be sent (checked by Read).
	unsent atomic.Bool
	// current is the request whose answer is being read (c.in).
	current *certRequest13

	// queue holds a client's requests waiting for an answer (c.in).
	queue []inMessage
}

// certRequest13 is one CertificateRequest of ours.
type certRequest13 struct {
	context    []byte
	transcript hash.Hash // handshake transcript + CertificateRequest + answer so far
	sent       bool
	gotCert    bool
	cvOK       bool // its CertificateVerify checked out
	certs      []*x509.Certificate
	chains     [][]*x509.Certificate
	done       chan struct{}
	err        error
}

// cloneTranscript13 copies a transcript hash for a post-handshake
// message's own continuation.
func cloneTranscript13(h hash.Hash) (hash.Hash, error) {
	c, ok := h.(hash.Cloner)
	if !ok {
		return nil, errors.New("dtls: internal error: transcript hash cannot be cloned")
	}
	return c.Clone()
}

// keepTranscript13 stores the handshake transcript through the client's
// Finished for post-handshake authentication, when the client offered it.
func (c *Conn) keepTranscript13(offered bool, transcript hash.Hash) error {
	if !offered {
		return nil
	}
	t, err := cloneTranscript13(transcript)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	c.pha.offered, c.pha.transcript = true, t
	return nil
}

var (
	errNoPostHandshakeAuth = errors.New("dtls: the client did not offer post-handshake authentication (post_handshake_auth)")
	errNoPostHandshakeCert = errors.New("dtls: the client answered the CertificateRequest without a certificate")
)

// verifiesPostHandshakeCert reports whether a certificate a client sends
// after the handshake is verified against ClientCAs: when ClientAuth
// verifies the handshake's, and also when ClientAuth asked for none
// there but ClientCAs is set (the usual setup for post-handshake
// authentication: no certificate at first, a verified one on request).
func (c *Config) verifiesPostHandshakeCert() bool {
	return c.verifiesClientCert() || c.ClientAuth == tls.NoClientCert && c.ClientCAs != nil
}

// RequestClientCertificate asks the client for a certificate after a DTLS
// 1.3 handshake (post-handshake authentication, RFC 8446 §4.6.2) and
// waits for its answer, bounded by ctx. The certificate is verified
// against Config.ClientCAs when ClientAuth verifies certificates, or
// when it is NoClientCert and ClientCAs is set (no certificate in the
// handshake, a verified one on request), and passed to
// VerifyPeerCertificate; on success ConnectionState's PeerCertificates
// and VerifiedChains are the new ones. A client that answers without a
// certificate makes it return an error and the connection goes on (RFC
// 8446 §4.4.2.4 leaves that to the server); a certificate that fails
// verification ends the connection with bad_certificate, as in the
// handshake.
//
// The name says what the application gets, as crypto/tls's
// GetClientCertificate does for the client; crypto/tls itself has no
// post-handshake authentication. The client must have offered it, which
// ours does when it has Certificates. Up to
// maxCertRequests13 (4) requests may be outstanding at once; each has its
// own context. The answer is taken by Read, or by this call when no Read
// is in progress.
func (c *Conn) RequestClientCertificate(ctx context.Context) error {
	if !c.handshakeComplete.Load() {
		return errHandshakeNotComplete
	}
	if c.vers != VersionDTLS13 {
		return errors.New("dtls: post-handshake authentication needs DTLS 1.3")
	}
	if c.isClient {
		return errors.New("dtls: RequestClientCertificate on a client")
	}
	if err := c.fatal(); err != nil {
		return err
	}
	if !c.pha.offered {
		return errNoPostHandshakeAuth
	}
	req := &certRequest13{context: make([]byte, certRequestContextLen), done: make(chan struct{})}
	if _, err := io.ReadFull(c.config.rand(), req.context); err != nil {
		return err
	}
	c.pha.mu.Lock()
	if len(c.pha.reqs) >= maxCertRequests13 {
		c.pha.mu.Unlock()
		return fmt.Errorf("dtls: %d CertificateRequests already outstanding", maxCertRequests13)
	}
	c.pha.reqs = append(c.pha.reqs, req)
	c.pha.unsent.Store(true)
	c.pha.mu.Unlock()
	for {
		select {
		case <-req.done:
			return req.err
		default:
		}
		if err := ctx.Err(); err != nil {
			c.dropCertRequest(req)
			return err
		}
		if err := c.fatal(); err != nil {
			return err
		}
		if c.in.TryLock() {
			err := c.pumpForCertRequest(ctx)
			c.in.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		c.io.interrupt() // the Read holding c.in sends the request
		t := time.NewTimer(keyUpdateWaitPoll)
		select {
		case <-req.done:
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// dropCertRequest forgets a request whose caller gave up; an answer to it
// that still comes is then an unexpected context.
func (c *Conn) dropCertRequest(req *certRequest13) {
	c.pha.mu.Lock()
	defer c.pha.mu.Unlock()
	if i := slices.Index(c.pha.reqs, req); i >= 0 {
		c.pha.reqs = slices.Delete(c.pha.reqs, i, i+1)
	}
}

// pumpForCertRequest sends the requests that wait and reads one record,
// with c.in held (pumpRecord). The caller sees ctx's error itself.
func (c *Conn) pumpForCertRequest(ctx context.Context) error {
	err := c.pumpRecord(ctx, c.serviceCertRequests)
	if cerr := ctx.Err(); cerr != nil && err == cerr {
		return nil
	}
	return err
}

// serviceCertRequests sends our CertificateRequests that wait, as one
// flight, once no flight of ours waits for an ACK and no KeyUpdate of
// ours is out (erratum 8047: nothing after a KeyUpdate in its epoch).
// On a client it answers the next queued request. Called with c.in held.
func (c *Conn) serviceCertRequests() error {
	if c.vers != VersionDTLS13 || !c.handshakeComplete.Load() || c.fatal() != nil {
		return nil
	}
	if c.ku.pending || c.hs.postHandshakeBusy() {
		return nil
	}
	if c.isClient {
		return c.answerCertRequest()
	}
	c.pha.mu.Lock()
	var send []*certRequest13
	for _, r := range c.pha.reqs {
		if !r.sent {
			send = append(send, r)
		}
	}
	c.pha.mu.Unlock()
	c.pha.unsent.Store(false)
	if len(send) == 0 {
		return nil
	}
	c.hs.startPostHandshakeFlight()
	for _, r := range send {
		cr := &certificateRequestMsg13{context: r.context, supportedSignatureAlgorithms: supportedSignatureAlgorithms13()}
		body, err := cr.marshal()
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		tr, err := cloneTranscript13(c.pha.transcript)
		if err != nil {
			return c.fail(alertInternalError, err)
		}
		tr.Write(appendTranscriptMessage13(nil, typeCertificateRequest, body))
		if c.hs.queueMessage(c.rl.writeCur, typeCertificateRequest, body) == nil {
			return c.fail(alertInternalError, errors.New("dtls: CertificateRequest not queued"))
		}
		c.pha.mu.Lock()
		r.transcript, r.sent = tr, true
		c.pha.mu.Unlock()
	}
	return c.sendFlight(false, "CertificateRequest")
}

// handleCertRequest13 takes a server's CertificateRequest after the
// handshake (client): refused unless we offered post_handshake_auth,
// queued (at most maxCertRequests13) and answered in turn.
func (c *Conn) handleCertRequest13(m inMessage) error {
	if !c.isClient {
		return c.fail(alertUnexpectedMessage, errors.New("dtls: CertificateRequest from a client"))
	}
	if !c.pha.offered {
		return c.fail(alertUnexpectedMessage, errNoPostHandshakeAuth)
	}
	cr := new(certificateRequestMsg13)
	if err := c.parseHandshakeMsg(m, typeCertificateRequest, cr.unmarshal); err != nil {
		return err
	}
	if len(cr.context) == 0 {
		return c.fail(alertIllegalParameter, errors.New("dtls: post-handshake CertificateRequest without a context"))
	}
	if len(c.pha.queue) >= maxCertRequests13 {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: more than %d CertificateRequests outstanding", maxCertRequests13))
	}
	c.pha.queue = append(c.pha.queue, m)
	return nil
}

// answerCertRequest sends the answer to the first queued request as a
// flight: Certificate (empty when we have none that fits),
// CertificateVerify, Finished (RFC 8446 §4.4). Called with c.in held and
// no flight of ours waiting.
func (c *Conn) answerCertRequest() error {
	if len(c.pha.queue) == 0 {
		return nil
	}
	m := c.pha.queue[0]
	c.pha.queue = c.pha.queue[1:]
	cr := new(certificateRequestMsg13)
	if !cr.unmarshal(m.body) {
		return c.fail(alertInternalError, errors.New("dtls: internal error: queued CertificateRequest"))
	}
	tr, err := cloneTranscript13(c.pha.transcript)
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	tr.Write(appendTranscriptMessage13(nil, m.typ, m.body))
	c.hs.startPostHandshakeFlight()
	cert, err := c.clientCertificate(&CertificateRequestInfo{
		AcceptableCAs:    cr.certificateAuthorities,
		SignatureSchemes: cr.supportedSignatureAlgorithms,
		Version:          VersionDTLS13,
		ctx:              context.Background(),
	}, false)
	if err != nil {
		return err
	}
	if cert != nil && len(cert.Certificate) == 0 {
		cert = nil // a bare key: post-handshake authentication is X.509 only
	}
	cm := &certificateMsg13{context: cr.context}
	if cert != nil {
		for _, der := range cert.Certificate {
			cm.entries = append(cm.entries, certificateEntry13{data: der})
		}
	}
	if err := writeHandshake13(c, tr, cm); err != nil {
		return err
	}
	if cert != nil {
		if _, err := signCertificateVerify13(c, tr, cert, cr.supportedSignatureAlgorithms, false); err != nil {
			return err
		}
	}
	s := &c.state
	vd, err := finishedVerifyData13(s.suite13.hash, labelPrefixDTLS13, s.ourSecret, tr.Sum(nil))
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	if err := writeHandshake13(c, tr, &finishedMsg{verifyData: vd}); err != nil {
		return err
	}
	return c.sendFlight(false, "post-handshake authentication")
}

// handleCertAnswer13 takes one message of a client's answer to our
// CertificateRequest (server): the Certificate names the request by its
// context, CertificateVerify and Finished follow it.
func (c *Conn) handleCertAnswer13(m inMessage) error {
	if c.isClient || !c.pha.offered {
		return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: %v after the handshake", m.typ))
	}
	switch m.typ {
	case typeCertificate:
		cm := new(certificateMsg13)
		if err := c.parseHandshakeMsg(m, typeCertificate, cm.unmarshal); err != nil {
			return err
		}
		c.pha.mu.Lock()
		var req *certRequest13
		for _, r := range c.pha.reqs {
			if r.sent && !r.gotCert && string(r.context) == string(cm.context) {
				req = r
			}
		}
		c.pha.mu.Unlock()
		if req == nil || c.pha.current != nil {
			return c.fail(alertIllegalParameter, errors.New("dtls: client Certificate with a context we did not send"))
		}
		req.transcript.Write(appendTranscriptMessage13(nil, m.typ, m.body))
		req.gotCert = true
		c.pha.current = req
		if len(cm.entries) == 0 {
			return nil
		}
		raw := make([][]byte, len(cm.entries))
		for i, e := range cm.entries {
			raw[i] = e.data
		}
		h12 := handshakeState{c: c}
		certs, err := h12.parsePeerChain(raw, "client")
		if err != nil {
			return err
		}
		var chains [][]*x509.Certificate
		if c.config.verifiesPostHandshakeCert() {
			if chains, err = c.config.verifyClientChain(certs, c.config.time()); err != nil {
				return c.fail(alertBadCertificate, err)
			}
		}
		if err := h12.acceptPeerChain(raw, certs, chains); err != nil {
			return err
		}
		req.certs, req.chains = certs, chains
		return nil
	case typeCertificateVerify:
		req := c.pha.current
		if req == nil || len(req.certs) == 0 {
			return c.fail(alertUnexpectedMessage, errors.New("dtls: CertificateVerify without a client certificate"))
		}
		cv := new(certificateVerifyMsg)
		if err := c.parseHandshakeMsg(m, typeCertificateVerify, cv.unmarshal); err != nil {
			return err
		}
		if !slices.Contains(supportedSignatureAlgorithms13(), cv.signatureAlgorithm) {
			return c.fail(alertIllegalParameter, fmt.Errorf("dtls: client signed with %v, which we did not ask for", cv.signatureAlgorithm))
		}
		if err := verifyHandshakeSignature(VersionDTLS13, cv.signatureAlgorithm, req.certs[0].PublicKey, signedMessage13(false, req.transcript.Sum(nil)), cv.signature); err != nil {
			return c.fail(alertDecryptError, err)
		}
		req.transcript.Write(appendTranscriptMessage13(nil, m.typ, m.body))
		req.cvOK = true
		return nil
	case typeFinished:
		req := c.pha.current
		if req == nil || len(req.certs) > 0 && !req.cvOK {
			return c.fail(alertUnexpectedMessage, errors.New("dtls: client Finished without its Certificate (and CertificateVerify)"))
		}
		return c.finishCertAnswer(req, m)
	}
	return c.fail(alertUnexpectedMessage, fmt.Errorf("dtls: %v after the handshake", m.typ))
}

// finishCertAnswer checks the client's Finished and completes the
// request.
func (c *Conn) finishCertAnswer(req *certRequest13, m inMessage) error {
	fin := new(finishedMsg)
	if err := c.parseHandshakeMsg(m, typeFinished, fin.unmarshal); err != nil {
		return err
	}
	if m.epoch != c.rl.readCur {
		return c.fail(alertUnexpectedMessage, errors.New("dtls: client Finished in an epoch older than its keys"))
	}
	s := &c.state
	if !verifyFinished13(s.suite13.hash, labelPrefixDTLS13, s.peerSecret, req.transcript.Sum(nil), fin.verifyData) {
		return c.fail(alertDecryptError, errors.New("dtls: client's post-handshake Finished is wrong"))
	}
	c.pha.current = nil
	c.pha.mu.Lock()
	if i := slices.Index(c.pha.reqs, req); i >= 0 {
		c.pha.reqs = slices.Delete(c.pha.reqs, i, i+1)
	}
	c.pha.mu.Unlock()
	if len(req.certs) == 0 {
		req.err = errNoPostHandshakeCert
	} else {
		c.handshakeMu.Lock()
		s.peerCertificates, s.verifiedChains = req.certs, req.chains
		c.handshakeMu.Unlock()
	}
	close(req.done)
	return nil
}
