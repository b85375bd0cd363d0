package main

// DTLS 1.3 (RFC 9147) in analyze. A conversation is 1.3 when its
// ServerHello or HelloRetryRequest selects 0xfefc in supported_versions
// (RFC 8446 §4.2.1, §4.1.4; RFC 9147 §5.3), learnt in the first pass so
// that the second pass treats every datagram of it as 1.3 from the start,
// or when a record with a unified header turns up in a conversation whose
// version no ServerHello settled. Its ClientHello, HelloRetryRequest and
// ServerHello are plaintext; everything after is a DTLSCiphertext whose
// content type, epoch (but its two low bits) and sequence number are
// hidden. With the conversation's traffic secrets from a key log (NSS
// labels CLIENT_HANDSHAKE_TRAFFIC_SECRET and the rest, keyed by the
// ClientHello's random), dtls.RecordDecrypter13 removes the record number
// encryption and opens the records; the handshake messages, ACKs (with
// the records they name), alerts and application data then go into the
// ladder with their full epoch and sequence number. Without secrets, the
// ladder shows what the wire shows: the hellos, and each encrypted
// record's length and epoch bits.

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/capture"
	"golang.org/x/crypto/cryptobyte"
)

// Bounds of the 1.3 analysis, beside those in analyze.go.
const (
	// maxHelloLen bounds a ClientHello or ServerHello that analyze
	// reassembles: a hybrid key share makes one about 1.3 KB, a hello
	// with three post-quantum shares about 5 KB.
	maxHelloLen = 1 << 15
	// maxKeyShares bounds the key shares of a ClientHello that analyze
	// lists.
	maxKeyShares = 8
	// maxRecordsPerDatagram bounds the records analyze reads from one
	// datagram; the rest of it is counted as unparsed.
	maxRecordsPerDatagram = 256
	// maxHandshakeRecords bounds, per side, the handshake records whose
	// content analyze remembers, to say what an ACK acknowledged: a
	// handshake takes tens, post-handshake messages a few each.
	maxHandshakeRecords = 512
	// maxACKShown bounds the records of one ACK spelt out in the report.
	maxACKShown = 16
	// maxIssuedCIDs bounds, per side, the CIDs from NewConnectionId
	// messages that analyze remembers to match a moved client by.
	maxIssuedCIDs = 64
	// maxCIDsShown bounds the CIDs of one NewConnectionId spelt out.
	maxCIDsShown = 8
)

// versionDTLS13 is DTLS 1.3 in supported_versions (RFC 9147 §5.3).
const versionDTLS13 = 0xfefc

// Handshake and content types of DTLS 1.3 that analyze names itself
// (RFC 8446 §4; RFC 9147 §7 for ACK, §9 for the CID messages).
// EndOfEarlyData is not used in DTLS 1.3 (RFC 9147 §5.6), but a peer that
// sends one should see it named.
const (
	hsEndOfEarlyData      = 5
	hsEncryptedExtensions = 8
	hsRequestConnectionID = 9
	hsNewConnectionID     = 10
	hsKeyUpdate           = 24
	ctACK                 = 26
)

// Extensions analyze reads from the hellos (RFC 8446 §4.2, RFC 9146).
const (
	extPreSharedKey      = 41
	extEarlyData         = 42
	extSupportedVersions = 43
	extCookie            = 44
	extKeyShare          = 51
	extConnectionID      = 54
)

// hrrRandom is the ServerHello.random of a HelloRetryRequest:
// SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3).
var hrrRandom = sha256.Sum256([]byte("HelloRetryRequest"))

// handshakeName names a handshake type, the 1.3 ones included; hrr marks
// a ServerHello that is a HelloRetryRequest.
func handshakeName(t uint8, hrr bool) string {
	switch t {
	case hsServerHello:
		if hrr {
			return "HelloRetryRequest"
		}
	case hsEndOfEarlyData:
		return "EndOfEarlyData"
	case hsEncryptedExtensions:
		return "EncryptedExtensions"
	case hsRequestConnectionID:
		return "RequestConnectionId"
	case hsNewConnectionID:
		return "NewConnectionId"
	case hsKeyUpdate:
		return "KeyUpdate"
	}
	if n := dtls.HandshakeTypeName(t); n != "unknown" {
		return n
	}
	return fmt.Sprintf("handshake(%d)", t)
}

// suiteName names a cipher suite of either version: package dtls names
// the 1.2 ones, crypto/tls the 1.3 ones it has, and the two CCM suites
// that crypto/tls lacks are named here (RFC 8446 §B.4).
func suiteName(id uint16) string {
	switch id {
	case 0x1304:
		return "TLS_AES_128_CCM_SHA256"
	case 0x1305:
		return "TLS_AES_128_CCM_8_SHA256"
	}
	if id>>8 == 0x13 {
		return tls.CipherSuiteName(id)
	}
	return dtls.CipherSuiteName(id)
}

// groupName names a named group by its IANA "TLS Supported Groups" name.
func groupName(g tls.CurveID) string {
	switch g {
	case 23:
		return "secp256r1"
	case 24:
		return "secp384r1"
	case 25:
		return "secp521r1"
	case 29:
		return "x25519"
	case 30:
		return "x448"
	case 256, 257, 258, 259, 260: // RFC 7919
		return fmt.Sprintf("ffdhe%d", [...]int{2048, 3072, 4096, 6144, 8192}[g-256])
	case 0x0200, 0x0201, 0x0202: // draft-ietf-tls-mlkem
		return fmt.Sprintf("MLKEM%d", [...]int{512, 768, 1024}[g-0x0200])
	case 0x11eb, 0x11ec, 0x11ed: // draft-ietf-tls-ecdhe-mlkem
		return [...]string{"SecP256r1MLKEM768", "X25519MLKEM768", "SecP384r1MLKEM1024"}[g-0x11eb]
	}
	return fmt.Sprintf("0x%04x", uint16(g))
}

// isUnified reports whether a record starts with a DTLS 1.3 unified
// header (RFC 9147 §4.1: first byte 001xxxxx).
func isUnified(first byte) bool { return first&0xe0 == 0x20 }

// hello is what analyze reads from a ClientHello or ServerHello.
type hello struct {
	random    []byte
	hrr       bool
	offers13  bool   // ClientHello: supported_versions lists DTLS 1.3
	selected  uint16 // ServerHello: supported_versions' selected_version
	suite     uint16
	shares    []tls.CurveID // ClientHello: the key shares' groups
	group     tls.CurveID   // ServerHello: its share's group; HelloRetryRequest: selected_group
	hasCID    bool
	cid       []byte
	pskIDs    int // ClientHello: offered PSK identities
	pskChosen int // ServerHello: selected_identity, -1 if none
	earlyData bool
	cookie    bool
}

// parseHello reads the fields analyze reports from a whole ClientHello
// (client) or ServerHello body. It is lenient: a field it cannot read is
// left unset, and it never refuses a hello that parses far enough to
// give its random.
func parseHello(client bool, body []byte) (*hello, bool) {
	s := cryptobyte.String(body)
	h := &hello{pskChosen: -1}
	var vers uint16
	var sid cryptobyte.String
	if !s.ReadUint16(&vers) || !s.ReadBytes(&h.random, 32) || !s.ReadUint8LengthPrefixed(&sid) {
		return nil, false
	}
	h.random = slices.Clone(h.random)
	if client {
		var cookie, suites, comp cryptobyte.String
		if !s.ReadUint8LengthPrefixed(&cookie) || !s.ReadUint16LengthPrefixed(&suites) || !s.ReadUint8LengthPrefixed(&comp) {
			return h, true
		}
	} else {
		var comp uint8
		if !s.ReadUint16(&h.suite) || !s.ReadUint8(&comp) {
			return h, true
		}
		h.hrr = [32]byte(h.random) == hrrRandom
	}
	var exts cryptobyte.String
	if s.Empty() || !s.ReadUint16LengthPrefixed(&exts) {
		return h, true
	}
	for !exts.Empty() {
		var typ uint16
		var e cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&e) {
			break
		}
		switch typ {
		case extSupportedVersions:
			if client {
				var list cryptobyte.String
				if e.ReadUint8LengthPrefixed(&list) {
					for !list.Empty() {
						var v uint16
						if !list.ReadUint16(&v) {
							break
						}
						h.offers13 = h.offers13 || v == versionDTLS13
					}
				}
			} else {
				e.ReadUint16(&h.selected)
			}
		case extKeyShare:
			var g uint16
			switch {
			case client:
				var list cryptobyte.String
				if e.ReadUint16LengthPrefixed(&list) {
					for !list.Empty() && len(h.shares) < maxKeyShares {
						var ke cryptobyte.String
						if !list.ReadUint16(&g) || !list.ReadUint16LengthPrefixed(&ke) {
							break
						}
						h.shares = append(h.shares, tls.CurveID(g))
					}
				}
			default: // a ServerHello's KeyShareEntry, or a HelloRetryRequest's selected_group
				if e.ReadUint16(&g) {
					h.group = tls.CurveID(g)
				}
			}
		case extConnectionID:
			var cid cryptobyte.String
			if e.ReadUint8LengthPrefixed(&cid) {
				h.hasCID, h.cid = true, slices.Clone([]byte(cid))
			}
		case extPreSharedKey:
			if client {
				var ids cryptobyte.String
				if e.ReadUint16LengthPrefixed(&ids) {
					for !ids.Empty() {
						var id cryptobyte.String
						var age uint32
						if !ids.ReadUint16LengthPrefixed(&id) || !ids.ReadUint32(&age) {
							break
						}
						h.pskIDs++
					}
				}
			} else {
				var sel uint16
				if e.ReadUint16(&sel) {
					h.pskChosen = int(sel)
				}
			}
		case extEarlyData:
			h.earlyData = true
		case extCookie:
			h.cookie = true
		}
	}
	return h, true
}

// hasExtension reports whether an extensions block (a uint16-prefixed
// list, as EncryptedExtensions are) holds extension typ.
func hasExtension(b []byte, typ uint16) bool {
	s := cryptobyte.String(b)
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) {
		return false
	}
	for !exts.Empty() {
		var t uint16
		var e cryptobyte.String
		if !exts.ReadUint16(&t) || !exts.ReadUint16LengthPrefixed(&e) {
			return false
		}
		if t == typ {
			return true
		}
	}
	return false
}

// helloAssembler rebuilds one side's plaintext hellos from their
// fragments, one message at a time, up to maxHelloLen bytes.
type helloAssembler struct {
	busy bool
	typ  uint8
	seq  uint16
	buf  []byte
	have []uint64 // bit i: byte i of buf arrived
	n    int      // bytes arrived
}

// add takes one fragment and returns the message it completes, or nil.
func (h *helloAssembler) add(typ uint8, length uint32, seq uint16, off uint32, frag []byte) []byte {
	if length > maxHelloLen || uint64(off)+uint64(len(frag)) > uint64(length) {
		return nil
	}
	if !h.busy || h.typ != typ || h.seq != seq || len(h.buf) != int(length) {
		*h = helloAssembler{busy: true, typ: typ, seq: seq, buf: make([]byte, length), have: make([]uint64, (length+63)/64)}
	}
	copy(h.buf[off:], frag)
	for i := int(off); i < int(off)+len(frag); i++ {
		if h.have[i/64]&(1<<(i%64)) == 0 {
			h.have[i/64] |= 1 << (i % 64)
			h.n++
		}
	}
	if h.n < len(h.buf) {
		return nil
	}
	msg := h.buf
	*h = helloAssembler{}
	return msg
}

// params13 is what the hellos of a conversation settle.
type params13 struct {
	clientRandom []byte
	offered13    bool
	is13         bool // the ServerHello (or a HelloRetryRequest) selected DTLS 1.3
	suite        uint16
	group        tls.CurveID
	shares       []tls.CurveID // of the last ClientHello
	firstShares  []tls.CurveID // of the first
	hrr          bool
	hrrGroup     tls.CurveID
	hasCID       [2]bool // [0] the client sent connection_id, [1] the server
	cid          [2][]byte
	pskIDs       int
	pskChosen    int  // selected_identity, -1 for none; valid once sawSH
	sawSH        bool // a ServerHello (not a HelloRetryRequest) was applied
	earlyData    bool
	// earlyAccepted: the EncryptedExtensions carried early_data (RFC
	// 8446 §4.2.10); seenEE: they were read.
	earlyAccepted, seenEE bool
}

// apply takes in a parsed hello; it reports whether a ServerHello (not a
// HelloRetryRequest) was applied.
func (p *params13) apply(client bool, h *hello) bool {
	if client {
		if p.clientRandom != nil && string(p.clientRandom) != string(h.random) {
			// A new handshake on the same address pair.
			*p = params13{}
		}
		if p.clientRandom == nil {
			p.firstShares = h.shares
		}
		p.clientRandom, p.offered13, p.shares = h.random, h.offers13, h.shares
		p.hasCID[0], p.cid[0] = h.hasCID, h.cid
		// A ClientHello after a HelloRetryRequest carries no early_data
		// (RFC 8446 §4.2.10): the first one's offer stands.
		p.pskIDs, p.earlyData = h.pskIDs, p.earlyData || h.earlyData
		return false
	}
	if h.hrr {
		// A HelloRetryRequest exists only in (D)TLS 1.3, and names the
		// version it retries for (RFC 8446 §4.1.4).
		p.hrr, p.hrrGroup = true, h.group
		p.is13 = p.is13 || h.selected == versionDTLS13
		return false
	}
	p.is13 = h.selected == versionDTLS13
	p.suite, p.group = h.suite, h.group
	p.hasCID[1], p.cid[1] = h.hasCID, h.cid
	p.pskChosen, p.sawSH = h.pskChosen, true
	return true
}

// cidLen is the length of the CID in the records that side s sends: the
// one the receiver asked for, if both sides sent connection_id (RFC 9146
// §3, RFC 9147 §9).
func (p *params13) cidLen(s int) int {
	if !p.hasCID[0] || !p.hasCID[1] {
		return 0
	}
	return len(p.cid[1-s])
}

// helloFragments calls f with each plaintext (epoch 0) handshake
// fragment of a datagram, until a record it cannot read.
func helloFragments(b []byte, f func(typ uint8, length uint32, seq uint16, off uint32, frag []byte)) {
	for len(b) >= 13 && !isUnified(b[0]) && b[0] != ctCID12 {
		typ, epoch, l := b[0], binary.BigEndian.Uint16(b[3:5]), int(binary.BigEndian.Uint16(b[11:13]))
		if 13+l > len(b) {
			return
		}
		body := b[13 : 13+l]
		b = b[13+l:]
		if typ != ctHandshake || epoch != 0 {
			continue
		}
		for len(body) >= 12 {
			fl := uint32(body[9])<<16 | uint32(body[10])<<8 | uint32(body[11])
			if 12+int(fl) > len(body) {
				break
			}
			f(body[0], uint32(body[1])<<16|uint32(body[2])<<8|uint32(body[3]), binary.BigEndian.Uint16(body[4:6]),
				uint32(body[6])<<16|uint32(body[7])<<8|uint32(body[8]), body[12:12+fl])
			body = body[12+fl:]
		}
	}
}

// keyLog is a parsed NSS key log.
type keyLog struct {
	// master maps a client random to its DTLS 1.2 master secret
	// (CLIENT_RANDOM lines).
	master map[string][]byte
	// tls13 maps a client random to its DTLS 1.3 secrets by label
	// (CLIENT_HANDSHAKE_TRAFFIC_SECRET...).
	tls13 map[string]map[string][]byte
}

// Key log labels of (D)TLS 1.3 (the NSS key log format, as
// draft-ietf-tls-keylogfile and wolfSSL, OpenSSL and Go write them).
const (
	labelClientEarly     = "CLIENT_EARLY_TRAFFIC_SECRET"
	labelClientHandshake = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
	labelServerHandshake = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
	labelClientTraffic   = "CLIENT_TRAFFIC_SECRET_0"
	labelServerTraffic   = "SERVER_TRAFFIC_SECRET_0"
	labelExporter        = "EXPORTER_SECRET"
	labelEarlyExporter   = "EARLY_EXPORTER_SECRET"
)

var labels13 = []string{labelClientEarly, labelClientHandshake, labelServerHandshake,
	labelClientTraffic, labelServerTraffic, labelExporter, labelEarlyExporter}

// secretEpochs are the traffic secrets each side's records use, by epoch
// (RFC 9147 §6.1): [0] the client's, [1] the server's.
var secretEpochs = [2]map[uint64]string{
	{1: labelClientEarly, 2: labelClientHandshake, 3: labelClientTraffic},
	{2: labelServerHandshake, 3: labelServerTraffic},
}

// parseKeyLog reads NSS key log lines: CLIENT_RANDOM <random> <master>
// for DTLS 1.2, and the 1.3 labels <client random> <secret>.
func parseKeyLog(b []byte) *keyLog {
	k := &keyLog{master: map[string][]byte{}, tls13: map[string]map[string][]byte{}}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		cr, err1 := hex.DecodeString(f[1])
		secret, err2 := hex.DecodeString(f[2])
		if err1 != nil || err2 != nil || len(cr) != 32 {
			continue
		}
		switch {
		case f[0] == "CLIENT_RANDOM" && len(secret) == 48:
			k.master[string(cr)] = secret
		case slices.Contains(labels13, f[0]) && (len(secret) == 32 || len(secret) == 48):
			m := k.tls13[string(cr)]
			if m == nil {
				m = map[string][]byte{}
				k.tls13[string(cr)] = m
			}
			m[f[0]] = secret
		}
	}
	return k
}

// learnHellos follows a conversation's hellos in the first pass, until a
// ServerHello settles its version, so that the second pass knows a 1.3
// conversation (suite, CIDs) from its first datagram on.
func (c *conversation) learnHellos(d *capture.Datagram) {
	if c.settled {
		return
	}
	s := 1
	if d.Src == c.client {
		s = 0
	}
	helloFragments(d.Payload, func(typ uint8, length uint32, seq uint16, off uint32, frag []byte) {
		if c.settled || s == 0 && typ != hsClientHello || s == 1 && typ != hsServerHello {
			return
		}
		msg := c.hellos[s].add(typ, length, seq, off, frag)
		if msg == nil {
			return
		}
		if h, ok := parseHello(s == 0, msg); ok && c.p13.apply(s == 0, h) {
			c.settled = true
			c.hellos = [2]helloAssembler{}
		}
	})
}

// analysis13 is the DTLS 1.3 state of an analysis.
type analysis13 struct {
	on     bool // the conversation is DTLS 1.3
	p      params13
	hellos [2]helloAssembler
	hrrSeq int // message_seq of the HelloRetryRequest, -1 if none
	// dec opens each side's records; made once the ServerHello is
	// known, headers only without one.
	dec      [2]*dtls.RecordDecrypter13
	decFor   []byte // the client random dec was made for
	decSuite uint16
	secrets  []string // the key log labels found for the connection

	// carried remembers what each side's handshake records carried, by
	// record number, up to maxHandshakeRecords per side.
	carried [2]map[[2]uint64]string
	// firstRecord is the record that first carried each handshake
	// fragment a side sent (up to maxFragmentsTracked), and ackedBy the
	// ACK that named each of a side's records (up to
	// maxHandshakeRecords): with them a resent fragment is traced to
	// its first record and to whether an ACK had already covered it.
	firstRecord [2]map[[3]uint32][2]uint64
	ackedBy     [2]map[[2]uint64]string
	acks        []string
	moreACK     int
	resent      []string
	moreResent  int
	// noKeys counts records with no secret for their epoch; failed,
	// records that did not open with the secret they had; unparsed,
	// datagrams whose records could not all be parsed.
	noKeys, failed, unparsed int
	ciphertexts              int // records with a unified header
	keyUpdates               [2]int
	epochs                   [2][]uint64 // epochs each side used, in order, up to maxEpochsTracked
	hiddenEpochs             [2][]uint8  // the low bits of epochs not decrypted

	// dst is the destination of the datagram being read.
	dst netip.AddrPort
	// issued are the CIDs each side handed out in NewConnectionId (RFC
	// 9147 §9), which the other side's records may carry, up to
	// maxIssuedCIDs; sendCID the CID each side's records carried last.
	issued  [2][][]byte
	sendCID [2][]byte
	// cidLog lists the CID updates: the messages, and each change of
	// the CID a side's records carry.
	cidLog     []string
	moreCIDLog int
}

// rec13 is one record of a 1.3 conversation's datagram.
type rec13 struct {
	typ        uint8 // content type, 0 if still encrypted
	epoch, seq uint64
	known      bool // epoch and seq known: plaintext, or decrypted
	body       []byte
	length     int // payload bytes as traced: the record's fragment or encrypted_record
	unified    *dtls.Record13
	openErr    error
}

// start13 switches the analysis to DTLS 1.3 with the parameters the
// first pass learnt.
func (a *analysis) start13(p *params13) {
	a.v13.on = true
	a.v13.hrrSeq = -1
	if p != nil {
		a.v13.p = *p
		a.v13.p.clientRandom = slices.Clone(p.clientRandom)
	}
	for i := range 2 {
		a.v13.carried[i] = map[[2]uint64]string{}
		a.v13.firstRecord[i] = map[[3]uint32][2]uint64{}
		a.v13.ackedBy[i] = map[[2]uint64]string{}
	}
}

// decrypters (re)makes the two decrypters when the hellos changed.
func (a *analysis) decrypters(keys *keyLog) {
	v := &a.v13
	if v.dec[0] != nil && string(v.decFor) == string(v.p.clientRandom) && v.decSuite == v.p.suite {
		return
	}
	suite := v.p.suite
	if suite>>8 != 0x13 || !v.p.is13 {
		suite = 0
	}
	v.decFor, v.decSuite, v.secrets = v.p.clientRandom, v.p.suite, nil
	secrets := keys.tls13[string(v.p.clientRandom)]
	for s := range 2 {
		d, err := dtls.NewRecordDecrypter13(suite, v.p.cidLen(s))
		if err != nil {
			d, _ = dtls.NewRecordDecrypter13(0, v.p.cidLen(s))
		}
		if suite != 0 {
			for epoch, label := range secretEpochs[s] {
				if secret := secrets[label]; secret != nil && d.SetTrafficSecret(epoch, secret) == nil {
					v.secrets = append(v.secrets, label)
				}
			}
		}
		v.dec[s] = d
	}
	for _, l := range []string{labelExporter, labelEarlyExporter} {
		if secrets[l] != nil {
			v.secrets = append(v.secrets, l)
		}
	}
	slices.SortFunc(v.secrets, func(x, y string) int {
		return slices.Index(labels13, x) - slices.Index(labels13, y)
	})
}

// datagram13 is datagram for a DTLS 1.3 conversation.
func (a *analysis) datagram13(d capture.Datagram, keys *keyLog, from int) {
	v := &a.v13
	v.dst = d.Dst
	// The records: plaintext ones (hellos, and alerts or ACKs in epoch
	// 0) by their 13-byte header, the rest through the decrypter.
	var recs []rec13
	rest := d.Payload
	for len(rest) > 0 {
		if len(recs) == maxRecordsPerDatagram {
			v.unparsed++
			break
		}
		if isUnified(rest[0]) {
			a.decrypters(keys)
			r, next, err := v.dec[from].Open(rest)
			if next == nil {
				v.unparsed++
				break
			}
			v.ciphertexts++
			rec := rec13{unified: &r, openErr: err, length: r.CiphertextLen}
			if r.Decrypted {
				rec.typ, rec.epoch, rec.seq, rec.known, rec.body = r.ContentType, r.Epoch, r.Seq, true, r.Content
			} else if errors.Is(err, dtls.ErrNoTrafficSecret) {
				v.noKeys++
			} else {
				v.failed++
			}
			recs = append(recs, rec)
			rest = next
			continue
		}
		if len(rest) < 13 || rest[0] < ctCCS || rest[0] > ctACK || rest[0] == ctCID12 {
			v.unparsed++
			break
		}
		n := int(binary.BigEndian.Uint16(rest[11:13]))
		if 13+n > len(rest) {
			v.unparsed++
			break
		}
		epoch := uint64(binary.BigEndian.Uint16(rest[3:5]))
		seq := uint64(binary.BigEndian.Uint16(rest[5:7]))<<32 | uint64(binary.BigEndian.Uint32(rest[7:11]))
		recs = append(recs, rec13{typ: rest[0], epoch: epoch, seq: seq, known: true, body: rest[13 : 13+n], length: n})
		rest = rest[13+n:]
	}

	// Flights, as for 1.2: by the handshake fragments the datagram
	// carries, now that the encrypted ones are open.
	frags, allRepeated := 0, true
	for _, r := range recs {
		if r.typ != ctHandshake {
			continue
		}
		eachFragment(r.body, func(seq uint16, off, fl uint32) {
			frags++
			if !a.sentFrags[from][[3]uint32{uint32(seq), off, fl}] {
				allRepeated = false
			}
		})
	}
	a.flightStep(d.Time, from, frags, allRepeated && frags > 0)
	for i := range recs {
		a.record13(d.Time, from, &recs[i], keys)
	}
}

// eachFragment calls f with the header fields of each handshake fragment
// in a record's content.
func eachFragment(b []byte, f func(seq uint16, off, fl uint32)) {
	for len(b) >= 12 {
		fl := uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11])
		if 12+int(fl) > len(b) {
			return
		}
		f(binary.BigEndian.Uint16(b[4:6]), uint32(b[6])<<16|uint32(b[7])<<8|uint32(b[8]), fl)
		b = b[12+fl:]
	}
}

func recordNumber(epoch, seq uint64) string { return fmt.Sprintf("e%d s%d", epoch, seq) }

// record13 analyses one record of a 1.3 conversation and traces it.
func (a *analysis) record13(t time.Time, from int, r *rec13, keys *keyLog) {
	v := &a.v13
	to := 1 - from
	ev := dtls.TraceEvent{Kind: dtls.TraceRecordSent, Time: t, Epoch: r.epoch, Seq: r.seq, ContentType: r.typ, Length: r.length}
	if !r.known {
		// What the wire shows: length and epoch bits. The event's epoch
		// is the two bits, its sequence number unknown (0).
		u := r.unified
		ev.Epoch, ev.ContentType = uint64(u.EpochBits), ctAppData
		if !slices.Contains(v.hiddenEpochs[from], u.EpochBits) {
			v.hiddenEpochs[from] = append(v.hiddenEpochs[from], u.EpochBits)
		}
		what := "encrypted"
		if !errors.Is(r.openErr, dtls.ErrNoTrafficSecret) {
			what = "does not open:"
		}
		label := fmt.Sprintf("%s %dB, epoch bits %d", what, u.CiphertextLen, u.EpochBits)
		if len(u.CID) > 0 {
			label += " cid " + hex.EncodeToString(u.CID)
		}
		a.emitLabeled(from, ev, label)
		ev.Kind = dtls.TraceRecordReceived
		a.emit(to, ev)
		return
	}
	if u := r.unified; u != nil && len(u.CID) > 0 && string(u.CID) != string(v.sendCID[from]) {
		if v.sendCID[from] != nil {
			line := fmt.Sprintf("%s's records carry CID %x (was %x)", sideName(from), u.CID, v.sendCID[from])
			a.logCID(t, from, line)
			a.emit(from, dtls.TraceEvent{Kind: dtls.TraceCIDChanged, Time: t, Reason: line})
		}
		v.sendCID[from] = slices.Clone(u.CID)
	}
	a.trackRecord(from, r.epoch, r.seq)
	if r.epoch > 0 && !slices.Contains(v.epochs[from], r.epoch) && len(v.epochs[from]) < maxEpochsTracked {
		v.epochs[from] = append(v.epochs[from], r.epoch)
	}
	rn := recordNumber(r.epoch, r.seq)
	if r.unified != nil && r.unified.Padding > 0 {
		// Zeros after the content type (RFC 8446 §5.4), such as a
		// CCM_8 sender adds to reach the 16-byte sample of record number
		// encryption (RFC 9147 §4.2.3).
		rn += fmt.Sprintf(" +%dB padding", r.unified.Padding)
	}
	switch r.typ {
	case ctHandshake:
		var names []string
		var events []dtls.TraceEvent
		a.handshake13(t, from, [2]uint64{r.epoch, r.seq}, r.body, &names, &events, keys)
		label := strings.Join(names, ", ")
		if len(v.carried[from]) < maxHandshakeRecords {
			v.carried[from][[2]uint64{r.epoch, r.seq}] = label
		}
		a.emitLabeled(from, ev, label+" "+rn)
		for _, e := range events {
			a.emit(from, e)
		}
	case ctACK:
		a.emitLabeled(from, ev, a.ack(t, from, r)+" "+rn)
	case ctAlert:
		label := "Alert"
		if len(r.body) == 2 {
			label += " " + dtls.AlertName(r.body[1])
		}
		a.emitLabeled(from, ev, label+" "+rn)
		if len(r.body) == 2 {
			a.emit(from, dtls.TraceEvent{Kind: dtls.TraceAlertSent, Time: t, Epoch: r.epoch, Alert: r.body[1]})
		}
	case ctAppData:
		a.emitLabeled(from, ev, fmt.Sprintf("ApplicationData %dB %s", len(r.body), rn))
	case ctRRC:
		// RFC 9853 §4: msg_type and an 8-byte cookie; a message to an
		// address other than the client's first names it.
		label := fmt.Sprintf("RRC (malformed, %dB)", len(r.body))
		var rrc *dtls.TraceEvent
		if len(r.body) == 9 {
			label = fmt.Sprintf("%s %x", rrcName(r.body[0]), r.body[1:])
			rrc = &dtls.TraceEvent{Kind: dtls.TraceRRCSent, Time: t, Epoch: r.epoch, Seq: r.seq, Reason: rrcName(r.body[0])}
			if from == 1 && v.dst != a.client {
				label += " to " + v.dst.String()
				rrc.Path = v.dst
			}
		}
		a.emitLabeled(from, ev, label+" "+rn)
		if rrc != nil {
			a.emit(from, *rrc)
		}
	default:
		a.emitLabeled(from, ev, fmt.Sprintf("%s %dB %s", dtls.ContentTypeName(r.typ), len(r.body), rn))
	}
	ev.Kind = dtls.TraceRecordReceived
	a.emit(to, ev)
}

// emitLabeled is emit for a record with the ladder label analyze made.
func (a *analysis) emitLabeled(s int, ev dtls.TraceEvent, label string) {
	ev.Client = s == 0
	if s == 0 {
		ev.Local, ev.Remote = a.client, a.server
	} else {
		ev.Local, ev.Remote = a.server, a.client
	}
	a.ladder.AddLabeled(&ev, label)
}

// handshake13 reads the fragments of one plaintext or decrypted 1.3
// handshake record: the names for its label, the trace events, the
// message list, and the hellos' parameters.
func (a *analysis) handshake13(t time.Time, from int, rn [2]uint64, b []byte, names *[]string, events *[]dtls.TraceEvent, keys *keyLog) {
	v := &a.v13
	epoch := rn[0]
	for len(b) >= 12 {
		ht := b[0]
		length := uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		seq := binary.BigEndian.Uint16(b[4:6])
		off := uint32(b[6])<<16 | uint32(b[7])<<8 | uint32(b[8])
		fl := uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11])
		if 12+int(fl) > len(b) {
			*names = append(*names, "truncated fragment")
			return
		}
		frag := b[12 : 12+fl]
		b = b[12+fl:]
		k := [3]uint32{uint32(seq), off, fl}
		first := !a.sentFrags[from][k]
		a.markSent(from, k)
		hrr := false
		if ht == hsServerHello && from == 1 && epoch == 0 {
			if off == 0 && len(frag) >= 34 && [32]byte(frag[2:34]) == hrrRandom {
				v.hrrSeq = int(seq)
			}
			hrr = v.hrrSeq == int(seq)
		}
		name := fmt.Sprintf("%s seq=%d", handshakeName(ht, hrr), seq)
		if ht == hsKeyUpdate && off == 0 && len(frag) >= 1 {
			name = fmt.Sprintf("KeyUpdate(%s) seq=%d", map[bool]string{true: "update_requested", false: "update_not_requested"}[frag[0] == 1], seq)
			if first {
				v.keyUpdates[from]++
			}
		}
		if off == 0 && fl == length && first {
			switch ht {
			case hsNewConnectionID:
				name = a.newConnectionID(t, from, frag, seq)
			case hsRequestConnectionID:
				if len(frag) == 1 {
					name = fmt.Sprintf("RequestConnectionId(num_cids %d) seq=%d", frag[0], seq)
					a.logCID(t, from, fmt.Sprintf("%s asks for %d CIDs (RequestConnectionId)", sideName(from), frag[0]))
				}
			}
		}
		if off != 0 || fl != length {
			name += fmt.Sprintf(" [%d+%d/%d]", off, fl, length)
		}
		*names = append(*names, name)
		if orig, ok := v.firstRecord[from][k]; !first && ok && orig != rn {
			a.noteResent(from, rn, orig, name)
		} else if first && len(v.firstRecord[from]) < maxFragmentsTracked {
			v.firstRecord[from][k] = rn
		}
		*events = append(*events, dtls.TraceEvent{Kind: dtls.TraceHandshakeSent, Time: t, Epoch: epoch, HandshakeType: ht, MessageSeq: seq,
			FragmentOffset: off, FragmentLength: fl, MessageLength: length, Flight: a.flight[from]})
		if first && off == 0 && len(a.messages) >= maxListed {
			a.moreMessages++
		} else if first && off == 0 {
			a.messages = append(a.messages, fmt.Sprintf("%-6s %-19s seq=%d len=%d epoch=%d", sideName(from), handshakeName(ht, hrr), seq, length, epoch))
		}
		switch {
		case epoch == 0 && (ht == hsClientHello && from == 0 || ht == hsServerHello && from == 1):
			if msg := v.hellos[from].add(ht, length, seq, off, frag); msg != nil {
				if h, ok := parseHello(from == 0, msg); ok {
					v.p.apply(from == 0, h)
					if from == 0 {
						a.random[0] = h.random
					} else if !h.hrr {
						a.random[1], a.suite = h.random, h.suite
						a.decrypters(keys)
					}
				}
			}
		case ht == hsEncryptedExtensions && from == 1 && off == 0 && fl == length:
			v.p.seenEE = true
			v.p.earlyAccepted = hasExtension(frag, extEarlyData)
		case ht == hsFinished:
			a.finished[from] = true
		}
	}
}

// newConnectionID reads a NewConnectionId (RFC 9147 §9) that side from
// sent: its CIDs join those a moved peer is matched by, and the update
// is listed. It returns the message's name for the ladder.
func (a *analysis) newConnectionID(t time.Time, from int, body []byte, seq uint16) string {
	v := &a.v13
	s := cryptobyte.String(body)
	var list cryptobyte.String
	var usage uint8
	if !s.ReadUint16LengthPrefixed(&list) || !s.ReadUint8(&usage) || !s.Empty() {
		return fmt.Sprintf("NewConnectionId (malformed) seq=%d", seq)
	}
	var cids []string
	n := 0
	for !list.Empty() {
		var cid cryptobyte.String
		if !list.ReadUint8LengthPrefixed(&cid) {
			return fmt.Sprintf("NewConnectionId (malformed) seq=%d", seq)
		}
		n++
		if len(cids) < maxCIDsShown {
			cids = append(cids, hex.EncodeToString(cid))
		}
		if len(cid) > 0 && len(v.issued[from]) < maxIssuedCIDs {
			v.issued[from] = append(v.issued[from], slices.Clone([]byte(cid)))
		}
	}
	if n > len(cids) {
		cids = append(cids, fmt.Sprintf("%d more", n-len(cids)))
	}
	var use string
	switch usage {
	case 0:
		use = "cid_immediate"
	case 1:
		use = "cid_spare"
	default:
		use = fmt.Sprintf("usage %d", usage)
	}
	plural := "s"
	if n == 1 {
		plural = ""
	}
	a.logCID(t, from, fmt.Sprintf("%s hands out %d CID%s, %s: %s (NewConnectionId)", sideName(from), n, plural, use, orNone(cids)))
	return fmt.Sprintf("NewConnectionId(%s: %s) seq=%d", use, orNone(cids), seq)
}

// logCID adds a line to the CID updates the report lists.
func (a *analysis) logCID(t time.Time, from int, line string) {
	v := &a.v13
	if len(v.cidLog) >= maxListed {
		v.moreCIDLog++
		return
	}
	v.cidLog = append(v.cidLog, fmt.Sprintf("+%v %s", t.Sub(a.start).Round(time.Microsecond), line))
}

// knownCID13 reports whether the first record of b, which side from
// sent, carries a CID its receiver handed out: in its hello, or in a
// NewConnectionId read so far.
func (a *analysis) knownCID13(from int, b []byte) bool {
	v := &a.v13
	n := v.p.cidLen(from)
	if n == 0 || len(b) < 1+n || b[0]&0x10 == 0 {
		return false
	}
	cid := b[1 : 1+n]
	if string(cid) == string(v.p.cid[1-from]) {
		return true
	}
	return slices.ContainsFunc(v.issued[1-from], func(x []byte) bool { return string(x) == string(cid) })
}

// opens13 reports whether the first record of b opens with side from's
// secrets. A record that does not open leaves the decrypter as it was,
// but for keys it derived by KeyUpdate steps, which are the
// conversation's own.
func (a *analysis) opens13(from int, b []byte, keys *keyLog) bool {
	if a.v13.p.clientRandom == nil {
		return false
	}
	a.decrypters(keys)
	r, _, err := a.v13.dec[from].Open(b)
	return err == nil && r.Decrypted
}

// ack reads an ACK record (RFC 9147 §7), lists in the report what the
// records it names carried, and returns its ladder label.
func (a *analysis) ack(t time.Time, from int, r *rec13) string {
	v := &a.v13
	b := r.body
	if len(b) < 2 || int(binary.BigEndian.Uint16(b)) != len(b)-2 || (len(b)-2)%16 != 0 {
		return fmt.Sprintf("ACK (malformed, %dB)", len(b))
	}
	var rns [][2]uint64
	for i := 2; i+16 <= len(b); i += 16 {
		rns = append(rns, [2]uint64{binary.BigEndian.Uint64(b[i:]), binary.BigEndian.Uint64(b[i+8:])})
	}
	if len(v.acks) >= maxListed {
		v.moreACK++
	} else {
		var parts []string
		for i, rn := range rns {
			if i == maxACKShown {
				parts = append(parts, fmt.Sprintf("%d more", len(rns)-i))
				break
			}
			what, ok := v.carried[1-from][rn]
			if !ok {
				what = "not seen in the capture"
			}
			if _, seen := v.ackedBy[1-from][rn]; !seen && len(v.ackedBy[1-from]) < maxHandshakeRecords {
				v.ackedBy[1-from][rn] = sideName(from) + " " + recordNumber(r.epoch, r.seq)
			}
			parts = append(parts, recordNumber(rn[0], rn[1])+" ("+what+")")
		}
		list := "nothing (empty ACK)"
		if len(parts) > 0 {
			list = sideName(1-from) + " " + strings.Join(parts, ", ")
		}
		v.acks = append(v.acks, fmt.Sprintf("%s %s at +%v acks %s", sideName(from), recordNumber(r.epoch, r.seq),
			t.Sub(a.start).Round(time.Microsecond), list))
	}
	return "ACK(" + compactRecordNumbers(rns) + ")"
}

// noteResent lists a handshake fragment that side from sent again in
// record rn, first sent in record orig.
func (a *analysis) noteResent(from int, rn, orig [2]uint64, name string) {
	v := &a.v13
	if len(v.resent) >= maxListed {
		v.moreResent++
		return
	}
	line := fmt.Sprintf("%s %s resends %s, first sent in %s", sideName(from), recordNumber(rn[0], rn[1]), name, recordNumber(orig[0], orig[1]))
	if by, ok := v.ackedBy[from][orig]; ok {
		line += ", which " + by + " had acknowledged"
	} else {
		line += ", not acknowledged"
	}
	v.resent = append(v.resent, line)
}

// compactRecordNumbers writes record numbers as epochs with runs of
// sequence numbers: "e2 s0-3,5; e3 s0".
func compactRecordNumbers(rns [][2]uint64) string {
	var b strings.Builder
	for i := 0; i < len(rns); {
		if i > 0 {
			b.WriteString("; ")
		}
		epoch := rns[i][0]
		fmt.Fprintf(&b, "e%d s", epoch)
		for first := true; i < len(rns) && rns[i][0] == epoch; first = false {
			j := i
			for j+1 < len(rns) && rns[j+1][0] == epoch && rns[j+1][1] == rns[j][1]+1 {
				j++
			}
			if !first {
				b.WriteByte(',')
			}
			if j > i {
				fmt.Fprintf(&b, "%d-%d", rns[i][1], rns[j][1])
			} else {
				fmt.Fprintf(&b, "%d", rns[i][1])
			}
			i = j + 1
		}
	}
	return b.String()
}

// report13 writes what the report says of a 1.3 conversation beyond the
// 1.2 parts: version, suite, group, PSK, CIDs, key log, epochs, ACKs.
func (a *analysis) report13(out io.Writer) {
	v := &a.v13
	p := &v.p
	fmt.Fprintln(out, "version: DTLS 1.3")
	if p.suite != 0 {
		fmt.Fprintf(out, "cipher suite: %s\n", suiteName(p.suite))
	}
	kx := "not seen (no ServerHello)"
	switch {
	case !p.sawSH:
	case p.group != 0 && p.pskChosen >= 0:
		kx = groupName(p.group) + " with a PSK (psk_dhe_ke)"
	case p.group != 0:
		kx = groupName(p.group)
	case p.pskChosen >= 0:
		kx = "PSK only (psk_ke)"
	}
	fmt.Fprintf(out, "key exchange: %s\n", kx)
	names := func(gs []tls.CurveID) string {
		var l []string
		for _, g := range gs {
			l = append(l, groupName(g))
		}
		return orNone(l)
	}
	if p.hrr {
		why := "a cookie"
		if p.hrrGroup != 0 {
			why = "a key share for " + groupName(p.hrrGroup)
		}
		fmt.Fprintf(out, "HelloRetryRequest: asked for %s (first ClientHello's key shares: %s; second's: %s)\n", why, names(p.firstShares), names(p.shares))
	} else {
		fmt.Fprintf(out, "client's key shares: %s\n", names(p.shares))
	}
	if p.pskIDs > 0 {
		chosen := "none selected"
		if !p.sawSH {
			chosen = "no ServerHello"
		} else if p.pskChosen >= 0 {
			chosen = fmt.Sprintf("identity %d selected", p.pskChosen)
		}
		fmt.Fprintf(out, "PSK: identities offered %d, %s\n", p.pskIDs, chosen)
	}
	if p.earlyData {
		answer := "EncryptedExtensions not read"
		switch {
		case p.seenEE && p.earlyAccepted:
			answer = "accepted"
		case p.seenEE:
			answer = "rejected"
		}
		fmt.Fprintf(out, "early data: offered, %s\n", answer)
	}
	if p.hasCID[0] && p.hasCID[1] {
		fmt.Fprintf(out, "connection IDs: client's records carry %q, server's %q\n", hex.EncodeToString(p.cid[1]), hex.EncodeToString(p.cid[0]))
	}
	switch {
	case v.ciphertexts == 0 && len(v.secrets) == 0:
		// Nothing encrypted: no secrets needed.
	case p.clientRandom == nil:
		fmt.Fprintln(out, "key log: no ClientHello seen, so no secrets looked up")
	case len(v.secrets) == 0:
		fmt.Fprintf(out, "key log: no DTLS 1.3 secrets for client random %x: keys missing, give -keylog\n", p.clientRandom)
	default:
		fmt.Fprintf(out, "key log: %s\n", strings.Join(v.secrets, ", "))
	}
	for s := range 2 {
		if v.ciphertexts == 0 {
			break
		}
		var es []string
		for _, e := range v.epochs[s] {
			es = append(es, fmt.Sprint(e))
		}
		if len(v.hiddenEpochs[s]) > 0 {
			var bits []string
			for _, b := range v.hiddenEpochs[s] {
				bits = append(bits, fmt.Sprint(b))
			}
			es = append(es, "not decrypted with low bits "+strings.Join(bits, ", "))
		}
		ku := ""
		if v.keyUpdates[s] > 0 {
			ku = fmt.Sprintf(" (%d KeyUpdate)", v.keyUpdates[s])
		}
		fmt.Fprintf(out, "%s encrypted epochs: %s%s\n", sideName(s), orNone(es), ku)
	}
	if len(v.cidLog) > 0 {
		fmt.Fprintln(out, "connection ID updates (RFC 9147 §9):")
		for _, l := range v.cidLog {
			fmt.Fprintf(out, "  %s\n", l)
		}
		if v.moreCIDLog > 0 {
			fmt.Fprintf(out, "  (%d more not listed)\n", v.moreCIDLog)
		}
	}
	if len(v.acks) > 0 {
		fmt.Fprintf(out, "ACKs: %d\n", len(v.acks)+v.moreACK)
		for _, l := range v.acks {
			fmt.Fprintf(out, "  %s\n", l)
		}
		if v.moreACK > 0 {
			fmt.Fprintf(out, "  (%d more not listed)\n", v.moreACK)
		}
	}
	if len(v.resent) > 0 {
		fmt.Fprintf(out, "resent handshake fragments: %d\n", len(v.resent)+v.moreResent)
		for _, l := range v.resent {
			fmt.Fprintf(out, "  %s\n", l)
		}
		if v.moreResent > 0 {
			fmt.Fprintf(out, "  (%d more not listed)\n", v.moreResent)
		}
	}
	if v.noKeys > 0 {
		fmt.Fprintf(out, "encrypted records without keys: %d (content types, epochs and sequence numbers hidden; give -keylog)\n", v.noKeys)
	}
	if v.failed > 0 {
		fmt.Fprintf(out, "encrypted records that did not open with the key log's secrets: %d\n", v.failed)
	}
	if v.unparsed > 0 {
		fmt.Fprintf(out, "datagrams with bytes that are no DTLS record: %d\n", v.unparsed)
	}
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}
