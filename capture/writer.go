package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/dtls-go/dtls"
)

// pcapng block types and constants (draft-ietf-opsawg-pcapng).
const (
	blockTypeSHB = 0x0A0D0D0A // Section Header Block
	blockTypeIDB = 0x00000001 // Interface Description Block
	blockTypePB  = 0x00000002 // Packet Block (obsolete, read only)
	blockTypeSPB = 0x00000003 // Simple Packet Block (read only)
	blockTypeEPB = 0x00000006 // Enhanced Packet Block
	blockTypeDSB = 0x0000000A // Decryption Secrets Block

	byteOrderMagic = 0x1A2B3C4D
	secretsTypeTLS = 0x544c534b // "TLSK": an NSS key log

	optEndOfOpt  = 0
	optUserAppl  = 4  // shb_userappl
	optIfName    = 2  // if_name
	optIfTsresol = 9  // if_tsresol
	optIfTsoff   = 14 // if_tsoffset

	linkTypeRaw = 101 // LINKTYPE_RAW: the packet begins with an IPv4 or IPv6 header
)

// Sizes of the headers that the Writer builds.
const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	udpHeaderLen  = 8

	// maxUDPPayloadIPv4 bounds the payload of one written datagram over
	// IPv4: the 16-bit total length covers the IP and UDP headers too.
	maxUDPPayloadIPv4 = 0xFFFF - ipv4HeaderLen - udpHeaderLen
	// maxUDPPayloadIPv6 bounds it over IPv6, whose 16-bit payload length
	// covers the UDP header (jumbograms are not written).
	maxUDPPayloadIPv6 = 0xFFFF - udpHeaderLen

	// writerSnapLen is the snapshot length announced in the IDB: no
	// written packet is longer.
	writerSnapLen = ipv6HeaderLen + 0xFFFF

	// writerTTL is the hop limit of written packets.
	writerTTL = 64
)

// Writer records datagrams as UDP over IPv4/IPv6 (true addresses and
// ports) into a pcapng file, with the TLS key log embedded in a Decryption
// Secrets Block, so that `tshark -r FILE` decodes and decrypts DTLS with no
// option.
//
// The Section Header and Interface Description Blocks are written first.
// Wireshark uses a Decryption Secrets Block only for packets after it in
// the file, and a server learns a session's secret only after the
// datagram that carries the client's first protected record has been
// recorded. So the Writer holds the most recent packets back (at most
// maxHeldPackets) and writes each complete key log line as a Decryption
// Secrets Block ahead of them; packets keep their capture timestamps.
//
// A Writer is safe for concurrent use: one may serve both ends of a demo or
// all the connections of a Listener. When it serves both ends of one
// connection, each datagram appears twice, as sent and as received, as two
// capture points on the path would show it.
//
// Output is buffered: call Close (or Flush) to write it out.
type Writer struct {
	mu      sync.Mutex
	bw      *bufio.Writer
	err     error  // the first write error; sticks
	skipErr error  // the first packet that the Tracer could not record
	partial []byte // key log bytes after the last newline
	closed  bool
	scratch []byte   // reused to build blocks
	held    [][]byte // Enhanced Packet Blocks not yet written, oldest first
}

// maxHeldPackets bounds the packets a Writer holds back so that a key log
// line can be written before them: a handshake's last flights are a few
// datagrams, so this many covers the time between a server receiving the
// client's key exchange and deriving the secret, even on a busy Listener.
const maxHeldPackets = 64

// NewWriter returns a Writer that writes a pcapng stream to w. The
// section and interface headers are written at once (into the buffer).
func NewWriter(w io.Writer) *Writer {
	pw := &Writer{bw: bufio.NewWriterSize(w, 64<<10)}
	pw.writeHeader()
	return pw
}

var le = binary.LittleEndian

// appendBlock appends a pcapng block of type typ whose body (without the
// type and the two lengths) is produced by body.
func appendBlock(dst []byte, typ uint32, body func([]byte) []byte) []byte {
	start := len(dst)
	dst = le.AppendUint32(dst, typ)
	dst = le.AppendUint32(dst, 0) // length, patched below
	dst = body(dst)
	for (len(dst)-start)%4 != 0 {
		dst = append(dst, 0)
	}
	n := uint32(len(dst) - start + 4)
	le.PutUint32(dst[start+4:], n)
	return le.AppendUint32(dst, n)
}

// appendOption appends a pcapng option with padding to 4 bytes.
func appendOption(dst []byte, code uint16, val []byte) []byte {
	dst = le.AppendUint16(dst, code)
	dst = le.AppendUint16(dst, uint16(len(val)))
	dst = append(dst, val...)
	for i := len(val); i%4 != 0; i++ {
		dst = append(dst, 0)
	}
	return dst
}

func (w *Writer) writeHeader() {
	b := appendBlock(nil, blockTypeSHB, func(b []byte) []byte {
		b = le.AppendUint32(b, byteOrderMagic)
		b = le.AppendUint16(b, 1) // major version
		b = le.AppendUint16(b, 0) // minor version
		b = le.AppendUint64(b, ^uint64(0))
		b = appendOption(b, optUserAppl, []byte("github.com/dtls-go/dtls/capture"))
		return appendOption(b, optEndOfOpt, nil)
	})
	b = appendBlock(b, blockTypeIDB, func(b []byte) []byte {
		b = le.AppendUint16(b, linkTypeRaw)
		b = le.AppendUint16(b, 0) // reserved
		b = le.AppendUint32(b, writerSnapLen)
		b = appendOption(b, optIfName, []byte("dtls"))
		b = appendOption(b, optIfTsresol, []byte{9}) // nanoseconds
		return appendOption(b, optEndOfOpt, nil)
	})
	w.write(b)
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	_, w.err = w.bw.Write(b)
}

var errClosed = errors.New("capture: Writer is closed")

// WritePacket records one UDP datagram from src to dst at time t. The
// addresses must both be IPv4 (or IPv4-mapped IPv6) or both IPv6; an
// invalid address stands for the unspecified address of the other's
// family.
func (w *Writer) WritePacket(t time.Time, src, dst netip.AddrPort, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errClosed
	}
	if w.err != nil {
		return w.err
	}
	pkt, err := appendIPUDP(w.scratch[:0], src, dst, payload)
	if err != nil {
		return err
	}
	w.scratch = pkt
	ts := uint64(0)
	if ns := t.UnixNano(); ns > 0 {
		ts = uint64(ns)
	}
	// Build the EPB after the packet in the same scratch buffer.
	blk := appendBlock(pkt[len(pkt):], blockTypeEPB, func(b []byte) []byte {
		b = le.AppendUint32(b, 0) // interface 0
		b = le.AppendUint32(b, uint32(ts>>32))
		b = le.AppendUint32(b, uint32(ts))
		b = le.AppendUint32(b, uint32(len(pkt)))
		b = le.AppendUint32(b, uint32(len(pkt)))
		return append(b, pkt...)
	})
	w.scratch = blk[:0]
	if len(w.held) == maxHeldPackets {
		w.write(w.held[0])
		w.held = append(w.held[:0], w.held[1:]...)
	}
	w.held = append(w.held, bytes.Clone(blk))
	return w.err
}

// writeHeld writes the packets held back, in the order they came.
func (w *Writer) writeHeld() {
	for _, b := range w.held {
		w.write(b)
	}
	w.held = w.held[:0]
}

// normalize returns src and dst as addresses of one family.
func normalize(src, dst netip.AddrPort) (netip.AddrPort, netip.AddrPort, error) {
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	switch {
	case !s.IsValid() && !d.IsValid():
		s, d = netip.IPv4Unspecified(), netip.IPv4Unspecified()
	case !s.IsValid():
		s = unspecifiedLike(d)
	case !d.IsValid():
		d = unspecifiedLike(s)
	}
	if s.Is4() != d.Is4() {
		// A dual-stack socket bound to [::] answers IPv4 peers.
		switch {
		case s.IsUnspecified():
			s = unspecifiedLike(d)
		case d.IsUnspecified():
			d = unspecifiedLike(s)
		default:
			return src, dst, errors.New("capture: source and destination are of different address families")
		}
	}
	return netip.AddrPortFrom(s, src.Port()), netip.AddrPortFrom(d, dst.Port()), nil
}

func unspecifiedLike(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// appendIPUDP appends an IPv4 or IPv6 packet carrying payload in a UDP
// datagram from src to dst, with every checksum computed.
func appendIPUDP(b []byte, src, dst netip.AddrPort, payload []byte) ([]byte, error) {
	src, dst, err := normalize(src, dst)
	if err != nil {
		return nil, err
	}
	udpLen := udpHeaderLen + len(payload)
	sa, da := src.Addr(), dst.Addr()
	var pseudo uint32 // the pseudo-header's sum
	start := len(b)
	if sa.Is4() {
		if len(payload) > maxUDPPayloadIPv4 {
			return nil, errors.New("capture: datagram too long for IPv4")
		}
		s4, d4 := sa.As4(), da.As4()
		b = append(b, 0x45, 0) // version 4, IHL 5; DSCP 0
		b = binary.BigEndian.AppendUint16(b, uint16(ipv4HeaderLen+udpLen))
		b = append(b, 0, 0, 0x40, 0) // ID 0, don't fragment
		b = append(b, writerTTL, 17, 0, 0)
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
		binary.BigEndian.PutUint16(b[start+10:], ^fold(sum(0, b[start:start+ipv4HeaderLen])))
		pseudo = sum(sum(0, s4[:]), d4[:]) + 17 + uint32(udpLen)
	} else {
		if len(payload) > maxUDPPayloadIPv6 {
			return nil, errors.New("capture: datagram too long for IPv6")
		}
		s16, d16 := sa.As16(), da.As16()
		b = append(b, 0x60, 0, 0, 0) // version 6, traffic class 0, flow label 0
		b = binary.BigEndian.AppendUint16(b, uint16(udpLen))
		b = append(b, 17, writerTTL)
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
		pseudo = sum(sum(0, s16[:]), d16[:]) + 17 + uint32(udpLen)
	}
	u := len(b)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(udpLen))
	b = append(b, 0, 0)
	b = append(b, payload...)
	c := ^fold(sum(pseudo, b[u:]))
	if c == 0 {
		c = 0xFFFF // zero means "no checksum" (and is forbidden over IPv6)
	}
	binary.BigEndian.PutUint16(b[u+6:], c)
	return b, nil
}

// sum adds b as big-endian 16-bit words to s (RFC 1071). Callers feed it
// at most a few times 64 KiB, far from overflowing 32 bits.
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xFFFF {
		s = s>>16 + s&0xFFFF
	}
	return uint16(s)
}

// KeyLogWriter returns an io.Writer to set as Config.KeyLogWriter (alone or
// in an io.MultiWriter). Each complete line is written at once as a
// Decryption Secrets Block, before any packet recorded after it; an
// unterminated last line is written at Close.
func (w *Writer) KeyLogWriter() io.Writer { return keyLogWriter{w} }

type keyLogWriter struct{ w *Writer }

func (k keyLogWriter) Write(p []byte) (int, error) {
	w := k.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, errClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	w.partial = append(w.partial, p...)
	i := bytes.LastIndexByte(w.partial, '\n')
	if i < 0 {
		return len(p), nil
	}
	w.writeSecrets(w.partial[:i+1])
	w.partial = append(w.partial[:0], w.partial[i+1:]...)
	return len(p), w.err
}

// writeSecrets writes a Decryption Secrets Block, then the packets held
// back, which it may be needed to decrypt.
func (w *Writer) writeSecrets(s []byte) {
	w.write(appendBlock(nil, blockTypeDSB, func(b []byte) []byte {
		b = le.AppendUint32(b, secretsTypeTLS)
		b = le.AppendUint32(b, uint32(len(s)))
		return append(b, s...)
	}))
	w.writeHeld()
}

// Tracer returns a Config.Tracer that records every TraceDatagramSent
// (from Local to Remote, or to Path when set) and TraceDatagramReceived
// (from Remote or Path to Local) event, then calls next if it is not nil. Write errors are kept and
// returned by Close.
func (w *Writer) Tracer(next func(*dtls.TraceEvent)) func(*dtls.TraceEvent) {
	return func(ev *dtls.TraceEvent) {
		// A datagram to or from a new address of the peer, under a
		// return routability check, names it in Path.
		peer := ev.Remote
		if ev.Path.IsValid() {
			peer = ev.Path
		}
		switch ev.Kind {
		case dtls.TraceDatagramSent:
			w.record(ev, ev.Local, peer)
		case dtls.TraceDatagramReceived:
			w.record(ev, peer, ev.Local)
		}
		if next != nil {
			next(ev)
		}
	}
}

func (w *Writer) record(ev *dtls.TraceEvent, src, dst netip.AddrPort) {
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	if err := w.WritePacket(t, src, dst, ev.Datagram); err != nil {
		w.mu.Lock()
		if w.skipErr == nil {
			w.skipErr = err
		}
		w.mu.Unlock()
	}
}

// Flush writes buffered blocks to the underlying writer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil && !w.closed {
		w.writeHeld()
		w.err = w.bw.Flush()
	}
	return w.err
}

// Close writes any unterminated key log line, flushes, and returns the
// first error met by the Writer (including those of its Tracer). It does
// not close the underlying writer.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		if len(w.partial) > 0 {
			w.writeSecrets(append(w.partial, '\n'))
			w.partial = nil
		}
		w.writeHeld()
		if w.err == nil {
			w.err = w.bw.Flush()
		}
	}
	if w.err != nil {
		return w.err
	}
	return w.skipErr
}
