package dtls

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"
)

// This file is a scripted DTLS 1.2 peer for the misbehaving-peer tests
// (BoringSSL runner's ProtocolBugs, but built in test files from the
// library's own internal pieces: the record layer, the message codecs, the
// PRF, the reassembling handshake transport). It plays client against our
// server or server against our client. Every flight it sends passes
// through a hook that may mutate, drop, repeat, reorder or inject
// messages, fragments and records; production code has no bug switches.

// mbItemKind says what an mbItem puts on the wire.
type mbItemKind uint8

const (
	mbMsg    mbItemKind = iota // a handshake message, fragmented as frags says
	mbCCS                      // a ChangeCipherSpec; switches our write epoch when keys are ready
	mbRecord                   // one record of rtyp carrying data, sealed in epoch
	mbRaw                      // data as it is, as its own records (unsealed, unparsed)
	mbBreak                    // end the current datagram
)

// mbItem is one element of a flight before it is serialized.
type mbItem struct {
	kind  mbItemKind
	epoch int // -1: the current write epoch at the time it is sent

	// mbMsg
	typ  handshakeType
	m    handshakeMessage       // marshalled at send time, after the hook
	body []byte                 // used instead of m when set
	lazy func(p *mbPeer) []byte // computed at send time (Finished, CertificateVerify)
	seq  int                    // message_seq; -1: the next one
	frag []mbFrag               // nil: the message whole in one record
	noTr bool                   // keep out of our transcript
	then func(p *mbPeer) error  // runs after the message is queued (key derivation)

	// mbRecord, mbRaw
	rtyp   recordType
	data   []byte
	recSeq int64 // record sequence number to use from here on; -1: continue
}

// mbFrag is one fragment of a message: bytes [off, off+n) of the body.
// length, when ≥ 0, overrides the header's message length; data, when
// non-nil, replaces the bytes; epoch ≥ 0 seals it in another epoch.
type mbFrag struct {
	off, n int
	length int
	data   []byte
	epoch  int
}

func frag(off, n int) mbFrag { return mbFrag{off: off, n: n, length: -1, epoch: -1} }

func msgItem(m handshakeMessage) mbItem {
	return mbItem{kind: mbMsg, typ: m.messageType(), m: m, seq: -1, epoch: -1, recSeq: -1}
}
func lazyItem(typ handshakeType, f func(p *mbPeer) []byte) mbItem {
	return mbItem{kind: mbMsg, typ: typ, lazy: f, seq: -1, epoch: -1, recSeq: -1}
}
func ccsItem() mbItem { return mbItem{kind: mbCCS, epoch: -1, recSeq: -1} }
func recordItem(epoch int, typ recordType, data []byte) mbItem {
	return mbItem{kind: mbRecord, epoch: epoch, rtyp: typ, data: data, recSeq: -1}
}
func rawItem(data []byte) mbItem { return mbItem{kind: mbRaw, data: data, recSeq: -1} }
func breakItem() mbItem          { return mbItem{kind: mbBreak, recSeq: -1} }

// mbHook may rewrite a flight before it is sent. Flight names: client
// "ClientHello", "ClientHelloCookie", "ClientFlight", "AppData"; server
// "HelloVerifyRequest", "ServerFlight", "ServerFinished", "AppData".
type mbHook func(p *mbPeer, flight string, items []mbItem) []mbItem

// mbPeer is the scripted peer.
type mbPeer struct {
	conn     net.Conn
	isClient bool
	hook     mbHook
	timeout  time.Duration // bound on each wait for the other side

	// What the peer is configured with.
	suite      *cipherSuite
	offered    []uint16 // client: suites offered; nil means suite only
	psk        []byte
	identity   []byte
	cert       *tls.Certificate // server: ours; client: sent when asked
	clientAuth bool             // server: send a CertificateRequest
	hvr        bool             // server: demand a cookie first

	rl         *recordLayer
	curEpoch   uint64              // epoch of what we send: 1 after our CCS
	rx         *handshakeTransport // reassembles what the other side sends
	sendSeq    uint16
	transcript []byte
	hello      *clientHelloMsg
	sh         *serverHelloMsg
	ecdhKey    *ecdh.PrivateKey
	preMaster  []byte
	master     []byte
	peerCert   *x509.Certificate
	certReq    bool

	readKeys, writeKeys *epochKeys // epoch 1, once derived
	future              [][]byte   // epoch-1 records before the peer's CCS
	ccsSeen             bool       // the other side's CCS arrived

	mu      sync.Mutex
	alerts  []alert // alerts received, in order (level is in alertLevels)
	levels  []uint8
	appData [][]byte
	events  []string // what the peer saw, for failure messages
}

func newMBPeer(conn net.Conn, isClient bool, suite uint16) *mbPeer {
	return &mbPeer{
		conn:     conn,
		isClient: isClient,
		timeout:  2 * time.Second,
		suite:    cipherSuiteByID(suite),
		rl:       newRecordLayer(64),
		rx:       newHandshakeTransport(0, time.Hour, time.Hour),
		psk:      testPSK,
		identity: []byte("client1"),
	}
}

func (p *mbPeer) logf(format string, args ...any) {
	p.mu.Lock()
	p.events = append(p.events, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

// receivedAlerts returns the alerts received so far.
func (p *mbPeer) receivedAlerts() ([]alert, []uint8) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.alerts), slices.Clone(p.levels)
}

// ---- sending ----

// send serializes a flight after the hook had its say.
func (p *mbPeer) send(flight string, items []mbItem) error {
	if p.hook != nil {
		items = p.hook(p, flight, items)
	}
	var dgram []byte
	flush := func() error {
		if len(dgram) == 0 {
			return nil
		}
		_, err := p.conn.Write(dgram)
		dgram = nil
		return err
	}
	for _, it := range items {
		epoch := p.curEpoch
		if it.epoch >= 0 {
			epoch = uint64(it.epoch)
		}
		if it.recSeq >= 0 {
			if w := p.rl.writeState(epoch); w != nil {
				w.seq = uint64(it.recSeq)
			}
		}
		var err error
		switch it.kind {
		case mbBreak:
			err = flush()
		case mbRaw:
			dgram = append(dgram, it.data...)
		case mbRecord:
			dgram, err = p.rl.seal(dgram, epoch, it.rtyp, it.data)
		case mbCCS:
			dgram, err = p.rl.seal(dgram, epoch, recordTypeChangeCipherSpec, []byte{1})
			if err == nil && p.writeKeys != nil {
				p.curEpoch = 1
			}
		case mbMsg:
			body := it.body
			switch {
			case it.lazy != nil:
				body = it.lazy(p)
			case body == nil && it.m != nil:
				if body, err = it.m.marshal(); err != nil {
					return fmt.Errorf("peer: marshal %v: %w", it.typ, err)
				}
			}
			seq := p.sendSeq
			if it.seq >= 0 {
				seq = uint16(it.seq)
			} else {
				p.sendSeq++
			}
			h := handshakeHeader{typ: it.typ, length: uint32(len(body)), messageSeq: seq, fragmentLength: uint32(len(body))}
			if !it.noTr {
				p.transcript = h.appendTo(p.transcript)
				p.transcript = append(p.transcript, body...)
			}
			frags := it.frag
			if frags == nil {
				// Whole, or split at the record size limit.
				for off := 0; off == 0 || off < len(body); off += maxFragmentLen {
					frags = append(frags, frag(off, min(maxFragmentLen, len(body)-off)))
				}
			}
			for _, f := range frags {
				fh := h
				fh.fragmentOffset, fh.fragmentLength = uint32(f.off), uint32(f.n)
				if f.length >= 0 {
					fh.length = uint32(f.length)
				}
				data := f.data
				if data == nil {
					data = body[f.off : f.off+f.n]
				}
				rec := fh.appendTo(nil)
				rec = append(rec, data...)
				fe := epoch
				if f.epoch >= 0 {
					fe = uint64(f.epoch)
				}
				if dgram, err = p.rl.seal(dgram, fe, recordTypeHandshake, rec); err != nil {
					break
				}
			}
			if err == nil && it.then != nil {
				err = it.then(p)
			}
		}
		if err != nil {
			return fmt.Errorf("peer: sending %s: %w", flight, err)
		}
	}
	return flush()
}

// ---- receiving ----

var errPeerTimeout = errors.New("peer: timed out waiting for the other side")

// readDatagram reads one datagram and processes its records.
func (p *mbPeer) readDatagram() error {
	p.conn.SetReadDeadline(time.Now().Add(p.timeout))
	buf := make([]byte, maxDatagramSize)
	n, err := p.conn.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return errPeerTimeout
		}
		return err
	}
	return p.processDatagram(buf[:n])
}

func (p *mbPeer) processDatagram(d []byte) error {
	for len(d) > 0 {
		hdr, body, rest, reason := nextRecord(d)
		if reason != dropNone {
			return nil
		}
		d = rest
		if err := p.processRecord(hdr, body); err != nil {
			return err
		}
	}
	return nil
}

func (p *mbPeer) processRecord(hdr recordHeader, body []byte) error {
	data, reason := p.rl.open(&hdr, body)
	if reason == dropFutureEpoch {
		rec := appendRecordHeader(nil, hdr.typ, hdr.version, hdr.epoch, hdr.seq, len(body))
		p.future = append(p.future, append(rec, body...))
		return nil
	}
	if reason != dropNone {
		p.logf("dropped %v epoch %d: %v", hdr.typ, hdr.epoch, reason)
		return nil
	}
	switch hdr.typ {
	case recordTypeAlert:
		if len(data) != 2 {
			return errors.New("peer: malformed alert")
		}
		p.mu.Lock()
		p.alerts = append(p.alerts, alert(data[1]))
		p.levels = append(p.levels, data[0])
		p.mu.Unlock()
		p.logf("alert %d/%v epoch %d", data[0], alert(data[1]), hdr.epoch)
		if data[0] == alertLevelError || alert(data[1]) == alertCloseNotify {
			return AlertError(data[1])
		}
	case recordTypeChangeCipherSpec:
		p.logf("CCS epoch %d", hdr.epoch)
		p.ccsSeen = true
		return p.keysReady()
	case recordTypeHandshake:
		p.rx.handleRecord(hdr.epoch, data, time.Now())
	case recordTypeApplicationData:
		p.mu.Lock()
		p.appData = append(p.appData, append([]byte(nil), data...))
		p.mu.Unlock()
	}
	return nil
}

// readMessage returns the next handshake message of the other side.
func (p *mbPeer) readMessage() (*inMessage, error) {
	for {
		if m, ok := p.rx.nextMessage(); ok {
			p.logf("got %v seq %d epoch %d", m.typ, m.seq, m.epoch)
			return &m, nil
		}
		if err := p.readDatagram(); err != nil {
			return nil, err
		}
	}
}

// expect reads the next message and checks its type; it is added to the
// transcript.
func (p *mbPeer) expect(typ handshakeType) (*inMessage, error) {
	m, err := p.readMessage()
	if err != nil {
		return nil, fmt.Errorf("peer: waiting for %v: %w", typ, err)
	}
	if m.typ != typ {
		return nil, fmt.Errorf("peer: got %v, want %v", m.typ, typ)
	}
	p.transcript = append(p.transcript, m.transcript()...)
	return m, nil
}

// readAppData waits for one application record.
func (p *mbPeer) readAppData() ([]byte, error) {
	for {
		p.mu.Lock()
		if len(p.appData) > 0 {
			d := p.appData[0]
			p.appData = p.appData[1:]
			p.mu.Unlock()
			return d, nil
		}
		p.mu.Unlock()
		if err := p.readDatagram(); err != nil {
			return nil, err
		}
	}
}

// drain reads until the other side goes quiet or hangs up, collecting
// alerts.
func (p *mbPeer) drain(d time.Duration) {
	p.timeout = d
	for p.readDatagram() == nil {
	}
}

// ---- keys ----

func (p *mbPeer) deriveKeys() error {
	s := p.suite
	if p.sh != nil {
		if cs := cipherSuiteByID(p.sh.cipherSuite); cs != nil {
			s = cs
		}
	}
	p.suite = s
	h := s.hash.New()
	h.Write(p.transcript)
	p.master = extMasterFromPreMasterSecret(s.hash, p.preMaster, h.Sum(nil))
	prm := s.params()
	ck, sk, civ, siv := keysFromMasterSecret(s.hash, p.master, p.hello.random, p.sh.random, prm.keyLen, prm.fixedIVLen)
	c, err := newEpochKeys(s.aead, ck, civ)
	if err != nil {
		return err
	}
	sv, err := newEpochKeys(s.aead, sk, siv)
	if err != nil {
		return err
	}
	if p.isClient {
		p.writeKeys, p.readKeys = c, sv
	} else {
		p.writeKeys, p.readKeys = sv, c
	}
	// Epoch 1 can be sealed from now on (a hook may send records in it
	// early); curEpoch moves at our CCS.
	if p.rl.writeCur == 0 {
		p.rl.installWriteKeys(p.writeKeys)
	}
	return nil
}

// keysReady moves the read side to epoch 1 once both the keys and the
// other side's CCS are there, and replays the records that waited.
func (p *mbPeer) keysReady() error {
	if p.readKeys == nil || !p.ccsSeen || p.rl.readCur != 0 {
		return nil
	}
	p.rl.installReadKeys(p.readKeys)
	future := p.future
	p.future = nil
	for _, rec := range future {
		h, b, _, r := nextRecord(rec)
		if r == dropNone {
			if err := p.processRecord(h, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// finished computes our Finished over the transcript so far.
func (p *mbPeer) finished(fromClient bool) []byte {
	h := p.suite.hash.New()
	h.Write(p.transcript)
	return finishedVerifyData(p.suite.hash, p.master, fromClient, h.Sum(nil))
}

func finishedItem(fromClient bool) mbItem {
	return lazyItem(typeFinished, func(p *mbPeer) []byte { return p.finished(fromClient) })
}

// checkFinished reads the other side's Finished and verifies it.
func (p *mbPeer) checkFinished(fromClient bool) error {
	want := p.finished(fromClient)
	m, err := p.expect(typeFinished)
	if err != nil {
		return err
	}
	if string(m.body) != string(want) || m.epoch != 1 {
		return fmt.Errorf("peer: wrong Finished from the other side (epoch %d)", m.epoch)
	}
	return nil
}

// ---- the client script ----

func (p *mbPeer) clientHello() *clientHelloMsg {
	offered := p.offered
	if offered == nil {
		offered = []uint16{p.suite.id}
	}
	ch := &clientHelloMsg{
		vers:                         VersionDTLS12,
		random:                       make([]byte, randomLen),
		cipherSuites:                 offered,
		compressionMethods:           []uint8{compressionNone},
		supportedCurves:              []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384},
		supportedPoints:              []uint8{pointFormatUncompressed},
		supportedSignatureAlgorithms: supportedSignatureAlgorithms,
		extendedMasterSecret:         true,
		secureRenegotiationSupported: true,
	}
	rand.Read(ch.random)
	return ch
}

// runClient plays a whole client handshake, then sends "ping" and expects
// it echoed.
func (p *mbPeer) runClient() error {
	if p.hello == nil {
		p.hello = p.clientHello()
	}
	if err := p.send("ClientHello", []mbItem{msgItem(p.hello)}); err != nil {
		return err
	}
	m, err := p.readMessage()
	if err != nil {
		return fmt.Errorf("peer: waiting for the server's first message: %w", err)
	}
	if m.typ == typeHelloVerifyRequest {
		hvr := new(helloVerifyRequestMsg)
		if !hvr.unmarshal(m.body) {
			return errors.New("peer: malformed HelloVerifyRequest")
		}
		p.hello.cookie = hvr.cookie
		p.transcript = nil
		if err := p.send("ClientHelloCookie", []mbItem{msgItem(p.hello)}); err != nil {
			return err
		}
		if m, err = p.readMessage(); err != nil {
			return fmt.Errorf("peer: waiting for ServerHello: %w", err)
		}
	}
	if m.typ != typeServerHello {
		return fmt.Errorf("peer: got %v, want ServerHello", m.typ)
	}
	p.transcript = append(p.transcript, m.transcript()...)
	p.sh = new(serverHelloMsg)
	if !p.sh.unmarshal(m.body) {
		return errors.New("peer: malformed ServerHello")
	}
	if s := cipherSuiteByID(p.sh.cipherSuite); s != nil {
		p.suite = s
	}
	kx := p.suite.kx
	var skx *serverKeyExchangeMsg
	for {
		m, err := p.readMessage()
		if err != nil {
			return fmt.Errorf("peer: reading the server flight: %w", err)
		}
		p.transcript = append(p.transcript, m.transcript()...)
		switch m.typ {
		case typeCertificate:
			cm := new(certificateMsg)
			if !cm.unmarshal(m.body) || len(cm.certificates) == 0 {
				return errors.New("peer: bad Certificate")
			}
			if p.peerCert, err = x509.ParseCertificate(cm.certificates[0]); err != nil {
				return err
			}
		case typeServerKeyExchange:
			skx = &serverKeyExchangeMsg{kind: kx}
			if !skx.unmarshal(m.body) {
				return errors.New("peer: bad ServerKeyExchange")
			}
		case typeCertificateRequest:
			p.certReq = true
		case typeServerHelloDone:
			return p.clientFlight(skx)
		default:
			return fmt.Errorf("peer: unexpected %v in the server flight", m.typ)
		}
	}
}

func (p *mbPeer) clientFlight(skx *serverKeyExchangeMsg) error {
	kx := p.suite.kx
	ckx := &clientKeyExchangeMsg{kind: kx}
	if kx.isECDHE() {
		if skx == nil {
			return errors.New("peer: no ServerKeyExchange")
		}
		curve, ok := curveForID(skx.curveID)
		if !ok {
			return errors.New("peer: unknown curve")
		}
		key, err := curve.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		p.ecdhKey = key
		ckx.publicKey = key.PublicKey().Bytes()
		if p.preMaster, err = ecdheSharedSecret(key, skx.publicKey); err != nil {
			return err
		}
	}
	if kx.isPSK() {
		ckx.pskIdentity = p.identity
		if kx == kxECDHEPSK {
			p.preMaster = ecdhePSKPreMasterSecret(p.preMaster, p.psk)
		} else {
			p.preMaster = pskPreMasterSecret(p.psk)
		}
	}
	var items []mbItem
	if p.certReq {
		cm := &certificateMsg{}
		if p.cert != nil {
			cm.certificates = p.cert.Certificate
		}
		items = append(items, msgItem(cm))
	}
	ck := msgItem(ckx)
	ck.then = (*mbPeer).deriveKeys
	items = append(items, ck)
	if p.certReq && p.cert != nil {
		items = append(items, lazyItem(typeCertificateVerify, func(p *mbPeer) []byte {
			signer, _ := certificateSigner(p.cert)
			scheme, _ := selectSignatureScheme(VersionDTLS12, signer, supportedSignatureAlgorithms)
			sig, err := signHandshake(rand.Reader, signer, scheme, p.transcript)
			if err != nil {
				panic(err)
			}
			b, _ := (&certificateVerifyMsg{signatureAlgorithm: scheme, signature: sig}).marshal()
			return b
		}))
	}
	items = append(items, ccsItem(), finishedItem(true))
	if err := p.send("ClientFlight", items); err != nil {
		return err
	}
	if err := p.checkFinished(false); err != nil {
		return err
	}
	return p.pingPong()
}

// pingPong sends "ping" and expects the other side to echo it.
func (p *mbPeer) pingPong() error {
	if err := p.send("AppData", []mbItem{recordItem(-1, recordTypeApplicationData, []byte("ping"))}); err != nil {
		return err
	}
	d, err := p.readAppData()
	if err != nil {
		return fmt.Errorf("peer: waiting for the echo: %w", err)
	}
	if string(d) != "ping" {
		return fmt.Errorf("peer: echo %q, want %q", d, "ping")
	}
	return nil
}

// ---- the server script ----

// runServer plays a whole server handshake, then echoes one application
// record.
func (p *mbPeer) runServer() error {
	m, err := p.expect(typeClientHello)
	if err != nil {
		return err
	}
	p.hello = new(clientHelloMsg)
	if !p.hello.unmarshal(m.body) {
		return errors.New("peer: malformed ClientHello")
	}
	if p.hvr {
		p.transcript = nil
		hvr := &helloVerifyRequestMsg{vers: VersionDTLS12, cookie: []byte("cookie-cookie-cookie")}
		it := msgItem(hvr)
		it.noTr = true
		if err := p.send("HelloVerifyRequest", []mbItem{it}); err != nil {
			return err
		}
		if m, err = p.expect(typeClientHello); err != nil {
			return err
		}
		if !p.hello.unmarshal(m.body) {
			return errors.New("peer: malformed second ClientHello")
		}
	}
	kx := p.suite.kx
	p.sh = &serverHelloMsg{
		vers:                         VersionDTLS12,
		random:                       make([]byte, randomLen),
		cipherSuite:                  p.suite.id,
		extendedMasterSecret:         true,
		secureRenegotiationSupported: true,
	}
	rand.Read(p.sh.random)
	items := []mbItem{msgItem(p.sh)}
	if kx.usesCertificates() {
		items = append(items, msgItem(&certificateMsg{certificates: p.cert.Certificate}))
	}
	if kx.isECDHE() || len(p.identity) > 0 && kx == kxPSK {
		skx := &serverKeyExchangeMsg{kind: kx, curveID: tls.X25519, pskIdentityHint: []byte("hint")}
		key, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		p.ecdhKey = key
		skx.publicKey = key.PublicKey().Bytes()
		// Signed at send time, so that a hook's changes to the
		// parameters are signed too (or not, by changing the body).
		items = append(items, lazyItem(typeServerKeyExchange, func(p *mbPeer) []byte {
			if kx.usesCertificates() {
				signer, _ := certificateSigner(p.cert)
				if skx.signatureAlgorithm == 0 {
					skx.signatureAlgorithm, _ = selectSignatureScheme(VersionDTLS12, signer, p.hello.supportedSignatureAlgorithms)
				}
				msg := slices.Concat(p.hello.random, p.sh.random, skx.ecdhParams())
				sig, err := signHandshake(rand.Reader, signer, skx.signatureAlgorithm, msg)
				if err == nil && skx.signature == nil {
					skx.signature = sig
				}
			}
			b, err := skx.marshal()
			if err != nil {
				panic(err)
			}
			return b
		}))
		items[len(items)-1].m = skx // for hooks that want to look
	}
	if p.clientAuth {
		items = append(items, msgItem(&certificateRequestMsg{
			certificateTypes:             []uint8{certTypeECDSASign, certTypeRSASign},
			supportedSignatureAlgorithms: supportedSignatureAlgorithms,
		}))
	}
	items = append(items, msgItem(&serverHelloDoneMsg{}))
	if err := p.send("ServerFlight", items); err != nil {
		return err
	}

	// The client flight.
	for {
		m, err := p.readMessage()
		if err != nil {
			return fmt.Errorf("peer: reading the client flight: %w", err)
		}
		if m.typ == typeFinished {
			want := p.finished(true)
			if string(m.body) != string(want) || m.epoch != 1 {
				return errors.New("peer: wrong client Finished")
			}
			p.transcript = append(p.transcript, m.transcript()...)
			break
		}
		p.transcript = append(p.transcript, m.transcript()...)
		if m.typ != typeClientKeyExchange {
			continue
		}
		ckx := &clientKeyExchangeMsg{kind: kx}
		if !ckx.unmarshal(m.body) {
			return errors.New("peer: malformed ClientKeyExchange")
		}
		if kx.isECDHE() {
			if p.preMaster, err = ecdheSharedSecret(p.ecdhKey, ckx.publicKey); err != nil {
				return err
			}
		}
		if kx == kxECDHEPSK {
			p.preMaster = ecdhePSKPreMasterSecret(p.preMaster, p.psk)
		} else if kx == kxPSK {
			p.preMaster = pskPreMasterSecret(p.psk)
		}
		if err := p.deriveKeys(); err != nil {
			return err
		}
		if err := p.keysReady(); err != nil {
			return err
		}
	}
	if err := p.send("ServerFinished", []mbItem{ccsItem(), finishedItem(false)}); err != nil {
		return err
	}
	d, err := p.readAppData()
	if err != nil {
		return fmt.Errorf("peer: waiting for application data: %w", err)
	}
	return p.send("AppData", []mbItem{recordItem(-1, recordTypeApplicationData, d)})
}
