package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"time"
)

// Limits on what ReadFile accepts. Each bounds memory taken on behalf of a
// file that may be hostile.
const (
	// maxBlockLen bounds one pcapng block. Packets are bounded far below
	// by maxSnapLen; only a huge Decryption Secrets Block would approach
	// this.
	maxBlockLen = 16 << 20
	// maxSnapLen bounds one captured packet: tcpdump's own maximum
	// snapshot length (256 KiB), above any IP packet.
	maxSnapLen = 256 << 10
	// maxKeyLogLen bounds the key log gathered from all Decryption Secrets
	// Blocks: at about 180 bytes a line, room for some 90,000 sessions.
	maxKeyLogLen = 16 << 20
	// maxInterfaces bounds the interfaces described in one pcapng
	// section.
	maxInterfaces = 1 << 16
	// maxVLANTags bounds the 802.1Q/802.1ad tags skipped in one frame.
	maxVLANTags = 4
	// maxIPv6ExtHeaders bounds the IPv6 extension headers walked before
	// giving up on a packet.
	maxIPv6ExtHeaders = 8
)

// Magic numbers of the pcap file header.
const (
	pcapMagicMicro = 0xA1B2C3D4
	pcapMagicNano  = 0xA1B23C4D
	pcapHeaderLen  = 24
	pcapRecordLen  = 16
)

// Link types understood by ReadFile (https://www.tcpdump.org/linktypes.html).
const (
	linkTypeNull     = 0   // BSD loopback: 4-byte address family, host order
	linkTypeEthernet = 1   // Ethernet II, with optional VLAN tags
	linkTypeDLTRaw   = 12  // DLT_RAW as written by some systems
	linkTypeDLTRaw14 = 14  // DLT_RAW on OpenBSD
	linkTypeLoop     = 108 // OpenBSD loopback: 4-byte address family, network order
	linkTypeSLL      = 113 // Linux cooked capture v1
	linkTypeIPv4     = 228 // raw IPv4
	linkTypeIPv6     = 229 // raw IPv6
	linkTypeSLL2     = 276 // Linux cooked capture v2
)

const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86DD
	etherTypeVLAN  = 0x8100
	etherTypeQinQ  = 0x88A8
	etherTypeQinQ2 = 0x9100
	protoUDP       = 17
)

// Datagram is one UDP datagram of a capture.
type Datagram struct {
	Time     time.Time
	Src, Dst netip.AddrPort
	Payload  []byte
}

// ErrFormat is wrapped by every error that ReadFile and Scan return for a
// malformed file.
var ErrFormat = errors.New("capture: malformed capture file")

func formatError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

// ReadFile reads a pcap or pcapng file (Ethernet, Linux cooked SLL/SLL2,
// raw IP, loopback/null link types) and returns its UDP datagrams in order,
// plus any TLS key log lines found in Decryption Secrets Blocks.
//
// Packets that are not UDP over IPv4 or IPv6 are skipped, as are IPv4
// fragments other than the first and IPv6 packets whose extension headers
// cannot be walked. The payload of a first fragment or of a packet cut by
// the snapshot length is what the capture holds. Malformed framing is an
// error; the datagrams read before it are returned with it.
//
// ReadFile holds the whole capture in memory; Scan reads it one datagram
// at a time.
func ReadFile(r io.Reader) (datagrams []Datagram, keyLog []byte, err error) {
	keyLog, err = Scan(r, func(d Datagram) error {
		d.Payload = bytes.Clone(d.Payload)
		datagrams = append(datagrams, d)
		return nil
	})
	return datagrams, keyLog, err
}

// Scan reads a capture as ReadFile does, but calls yield with each UDP
// datagram in file order instead of keeping them, so that its memory does
// not grow with the file: it holds one packet or pcapng block at a time
// (at most 16 MiB, for a block) and the key log (at most 16 MiB). The
// Payload passed to yield is valid only until yield returns; yield copies
// what it keeps. An error from yield stops Scan, which returns it.
//
// Decryption Secrets Blocks may come after the packets they decrypt (a
// capture is written as traffic happens): the key log Scan returns is
// that of the whole file, complete only once Scan has returned.
func Scan(r io.Reader, yield func(Datagram) error) (keyLog []byte, err error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	magic, err := br.Peek(4)
	if err != nil {
		return nil, formatError("file too short: %v", err)
	}
	rd := &fileReader{r: br, yield: yield}
	if binary.LittleEndian.Uint32(magic) == blockTypeSHB {
		err = rd.readPcapng()
	} else {
		err = rd.readPcap()
	}
	if err == nil {
		err = rd.yieldErr
	}
	return rd.keyLog, err
}

type fileReader struct {
	r        *bufio.Reader
	yield    func(Datagram) error
	yieldErr error // yield's error, which stops the reading
	keyLog   []byte
	block    []byte // a pcapng block, reused
}

func (rd *fileReader) full(b []byte) error {
	if _, err := io.ReadFull(rd.r, b); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return formatError("truncated file")
		}
		return err
	}
	return nil
}

// readPcap reads a classic libpcap file.
func (rd *fileReader) readPcap() error {
	var h [pcapHeaderLen]byte
	if err := rd.full(h[:]); err != nil {
		return err
	}
	var order binary.ByteOrder
	var nano bool
	switch {
	case binary.LittleEndian.Uint32(h[:]) == pcapMagicMicro:
		order = binary.LittleEndian
	case binary.BigEndian.Uint32(h[:]) == pcapMagicMicro:
		order = binary.BigEndian
	case binary.LittleEndian.Uint32(h[:]) == pcapMagicNano:
		order, nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(h[:]) == pcapMagicNano:
		order, nano = binary.BigEndian, true
	default:
		return formatError("not a pcap or pcapng file")
	}
	// The upper bits of the link type field may hold the FCS length.
	link := order.Uint32(h[20:]) & 0xFFFF
	var rec [pcapRecordLen]byte
	buf := make([]byte, 0, 2048)
	for {
		if _, err := io.ReadFull(rd.r, rec[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			if err == io.ErrUnexpectedEOF {
				return formatError("truncated packet record header")
			}
			return err
		}
		sec, frac := order.Uint32(rec[0:]), order.Uint32(rec[4:])
		caplen := order.Uint32(rec[8:])
		if caplen > maxSnapLen {
			return formatError("packet of %d bytes exceeds the limit of %d", caplen, maxSnapLen)
		}
		if nano {
			if frac >= 1e9 {
				return formatError("bad nanosecond timestamp")
			}
		} else {
			if frac >= 1e6 {
				return formatError("bad microsecond timestamp")
			}
			frac *= 1000
		}
		if uint32(cap(buf)) < caplen {
			buf = make([]byte, caplen)
		}
		buf = buf[:caplen]
		if err := rd.full(buf); err != nil {
			return err
		}
		if rd.packet(time.Unix(int64(sec), int64(frac)), link, buf) != nil {
			return nil
		}
	}
}

// pcapngInterface is what ReadFile keeps of an Interface Description Block.
type pcapngInterface struct {
	link    uint32
	snapLen uint32
	// A timestamp t means (t / unitsPerSec) seconds, when decimal is
	// true units are 10^-exp seconds, otherwise 2^-exp seconds.
	decimal bool
	exp     uint8
	offset  int64 // if_tsoffset, seconds
}

// readPcapng reads a pcapng file, section after section.
func (rd *fileReader) readPcapng() error {
	var order binary.ByteOrder = binary.LittleEndian
	var ifaces []pcapngInterface
	var hdr [8]byte
	for first := true; ; first = false {
		if _, err := io.ReadFull(rd.r, hdr[:]); err != nil {
			if err == io.EOF && !first {
				return nil
			}
			return formatError("truncated block header")
		}
		typ := binary.LittleEndian.Uint32(hdr[:]) // SHB's type is a palindrome
		if typ == blockTypeSHB {
			bom, err := rd.r.Peek(4)
			if err != nil {
				return formatError("truncated section header")
			}
			switch {
			case binary.LittleEndian.Uint32(bom) == byteOrderMagic:
				order = binary.LittleEndian
			case binary.BigEndian.Uint32(bom) == byteOrderMagic:
				order = binary.BigEndian
			default:
				return formatError("bad byte-order magic")
			}
			ifaces = ifaces[:0]
		} else {
			if first {
				return formatError("file does not begin with a section header")
			}
			typ = order.Uint32(hdr[:])
		}
		total := order.Uint32(hdr[4:])
		if total < 12 || total%4 != 0 || total > maxBlockLen {
			return formatError("bad block length %d", total)
		}
		if cap(rd.block) < int(total-8) {
			rd.block = make([]byte, total-8)
		}
		body := rd.block[:total-8]
		if err := rd.full(body); err != nil {
			return err
		}
		if order.Uint32(body[len(body)-4:]) != total {
			return formatError("block lengths disagree")
		}
		body = body[:len(body)-4]
		switch typ {
		case blockTypeSHB:
			if len(body) < 16 {
				return formatError("short section header")
			}
			if major := order.Uint16(body[4:]); major != 1 {
				return formatError("unsupported pcapng version %d", major)
			}
		case blockTypeIDB:
			if len(body) < 8 {
				return formatError("short interface description")
			}
			if len(ifaces) >= maxInterfaces {
				return formatError("too many interfaces")
			}
			ifc := pcapngInterface{
				link:    uint32(order.Uint16(body[0:])),
				snapLen: order.Uint32(body[4:]),
				decimal: true,
				exp:     6,
			}
			err := walkOptions(order, body[8:], func(code uint16, val []byte) error {
				switch code {
				case optIfTsresol:
					if len(val) != 1 {
						return formatError("bad if_tsresol")
					}
					ifc.decimal = val[0]&0x80 == 0
					ifc.exp = val[0] & 0x7F
					if ifc.decimal && ifc.exp > 19 || !ifc.decimal && ifc.exp > 63 {
						return formatError("unsupported if_tsresol %#x", val[0])
					}
				case optIfTsoff:
					if len(val) != 8 {
						return formatError("bad if_tsoffset")
					}
					ifc.offset = int64(order.Uint64(val))
				}
				return nil
			})
			if err != nil {
				return err
			}
			ifaces = append(ifaces, ifc)
		case blockTypeEPB, blockTypePB:
			if len(body) < 20 {
				return formatError("short packet block")
			}
			var id uint32
			if typ == blockTypeEPB {
				id = order.Uint32(body[0:])
			} else {
				id = uint32(order.Uint16(body[0:])) // then a 16-bit drops count
			}
			if id >= uint32(len(ifaces)) {
				return formatError("packet on undescribed interface %d", id)
			}
			ts := uint64(order.Uint32(body[4:]))<<32 | uint64(order.Uint32(body[8:]))
			caplen := order.Uint32(body[12:])
			if caplen > maxSnapLen || uint64(caplen) > uint64(len(body)-20) {
				return formatError("bad captured length %d", caplen)
			}
			ifc := &ifaces[id]
			if rd.packet(ifc.time(ts), ifc.link, body[20:20+caplen]) != nil {
				return nil
			}
		case blockTypeSPB:
			if len(body) < 4 {
				return formatError("short simple packet block")
			}
			if len(ifaces) == 0 {
				return formatError("simple packet block without an interface")
			}
			ifc := &ifaces[0]
			n := uint64(order.Uint32(body[0:]))
			if ifc.snapLen != 0 && n > uint64(ifc.snapLen) {
				n = uint64(ifc.snapLen)
			}
			if n > uint64(len(body)-4) || n > maxSnapLen {
				return formatError("bad simple packet length %d", n)
			}
			if rd.packet(time.Time{}, ifc.link, body[4:4+n]) != nil {
				return nil
			}
		case blockTypeDSB:
			if len(body) < 8 {
				return formatError("short decryption secrets block")
			}
			n := uint64(order.Uint32(body[4:]))
			if n > uint64(len(body)-8) {
				return formatError("bad secrets length %d", n)
			}
			if order.Uint32(body[0:]) != secretsTypeTLS {
				continue // other protocols' secrets (WireGuard, ZigBee...)
			}
			s := body[8 : 8+n]
			if len(rd.keyLog)+len(s)+1 > maxKeyLogLen {
				return formatError("key log exceeds %d bytes", maxKeyLogLen)
			}
			rd.keyLog = append(rd.keyLog, s...)
			if len(s) > 0 && s[len(s)-1] != '\n' {
				rd.keyLog = append(rd.keyLog, '\n')
			}
		}
	}
}

// walkOptions calls f for each option in b until opt_endofopt or the end.
func walkOptions(order binary.ByteOrder, b []byte, f func(code uint16, val []byte) error) error {
	for len(b) >= 4 {
		code, n := order.Uint16(b[0:]), int(order.Uint16(b[2:]))
		if code == optEndOfOpt {
			return nil
		}
		b = b[4:]
		if n > len(b) {
			return formatError("option overruns its block")
		}
		if err := f(code, b[:n]); err != nil {
			return err
		}
		p := (n + 3) &^ 3
		if p > len(b) {
			p = len(b)
		}
		b = b[p:]
	}
	return nil
}

// time converts a pcapng timestamp on this interface to a time.Time.
func (ifc *pcapngInterface) time(ts uint64) time.Time {
	var sec, nsec uint64
	if ifc.decimal {
		unit := uint64(1)
		for range ifc.exp {
			unit *= 10
		}
		sec = ts / unit
		rem := ts % unit
		// rem < unit <= 10^19: rem*10^9/unit fits in 128 bits.
		hi, lo := bits.Mul64(rem, 1e9)
		nsec, _ = bits.Div64(hi, lo, unit)
	} else {
		sec = ts >> ifc.exp
		rem := ts & (1<<ifc.exp - 1)
		hi, lo := bits.Mul64(rem, 1e9)
		// (hi:lo) >> exp; exp < 64 and the result is below 10^9.
		if ifc.exp == 0 {
			nsec = lo
		} else {
			nsec = lo>>ifc.exp | hi<<(64-ifc.exp)
		}
	}
	return time.Unix(int64(sec)+ifc.offset, int64(nsec))
}

// packet decodes one captured frame of the given link type and, if it is
// a UDP datagram, passes it to yield. It returns yield's error, also kept
// in rd.yieldErr.
func (rd *fileReader) packet(t time.Time, link uint32, b []byte) error {
	var ethType uint16
	switch link {
	case linkTypeEthernet:
		if len(b) < 14 {
			return nil
		}
		ethType = binary.BigEndian.Uint16(b[12:])
		b = b[14:]
		for i := 0; i < maxVLANTags && (ethType == etherTypeVLAN || ethType == etherTypeQinQ || ethType == etherTypeQinQ2); i++ {
			if len(b) < 4 {
				return nil
			}
			ethType = binary.BigEndian.Uint16(b[2:])
			b = b[4:]
		}
	case linkTypeSLL:
		if len(b) < 16 {
			return nil
		}
		ethType = binary.BigEndian.Uint16(b[14:])
		b = b[16:]
	case linkTypeSLL2:
		if len(b) < 20 {
			return nil
		}
		ethType = binary.BigEndian.Uint16(b[0:])
		b = b[20:]
	case linkTypeNull, linkTypeLoop:
		if len(b) < 4 {
			return nil
		}
		// The family is in the writer's host order for NULL, network
		// order for LOOP; accept either, as libpcap does.
		fam := binary.LittleEndian.Uint32(b)
		if fam > 0xFFFF {
			fam = binary.BigEndian.Uint32(b)
		}
		switch fam {
		case 2: // AF_INET
			ethType = etherTypeIPv4
		case 10, 24, 28, 30: // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, Darwin
			ethType = etherTypeIPv6
		default:
			return nil
		}
		b = b[4:]
	case linkTypeRaw, linkTypeDLTRaw, linkTypeDLTRaw14:
		if len(b) == 0 {
			return nil
		}
		switch b[0] >> 4 {
		case 4:
			ethType = etherTypeIPv4
		case 6:
			ethType = etherTypeIPv6
		default:
			return nil
		}
	case linkTypeIPv4:
		ethType = etherTypeIPv4
	case linkTypeIPv6:
		ethType = etherTypeIPv6
	default:
		return nil
	}
	var src, dst netip.Addr
	var udp []byte
	switch ethType {
	case etherTypeIPv4:
		src, dst, udp = ipv4UDP(b)
	case etherTypeIPv6:
		src, dst, udp = ipv6UDP(b)
	}
	if len(udp) < udpHeaderLen {
		return nil
	}
	n := int(binary.BigEndian.Uint16(udp[4:]))
	if n < udpHeaderLen {
		return nil
	}
	if n > len(udp) {
		n = len(udp) // cut by the snapshot length or a first fragment
	}
	rd.yieldErr = rd.yield(Datagram{
		Time:    t,
		Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:])),
		Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:])),
		Payload: udp[udpHeaderLen:n],
	})
	return rd.yieldErr
}

// ipv4UDP returns the addresses and the UDP segment of an IPv4 packet, or a
// nil segment when it carries no UDP header.
func ipv4UDP(b []byte) (src, dst netip.Addr, udp []byte) {
	if len(b) < ipv4HeaderLen || b[0]>>4 != 4 {
		return
	}
	ihl := int(b[0]&0x0F) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < ipv4HeaderLen || total < ihl || len(b) < ihl {
		return
	}
	if binary.BigEndian.Uint16(b[6:])&0x1FFF != 0 || b[9] != protoUDP {
		return // a later fragment, or not UDP
	}
	if total < len(b) {
		b = b[:total] // Ethernet padding
	}
	return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), b[ihl:]
}

// ipv6UDP returns the addresses and the UDP segment of an IPv6 packet,
// walking the extension headers that it can.
func ipv6UDP(b []byte) (src, dst netip.Addr, udp []byte) {
	if len(b) < ipv6HeaderLen || b[0]>>4 != 6 {
		return
	}
	if plen := int(binary.BigEndian.Uint16(b[4:])); plen != 0 && ipv6HeaderLen+plen < len(b) {
		b = b[:ipv6HeaderLen+plen] // a payload length of 0 is a jumbogram
	}
	next := b[6]
	src, dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
	p := b[ipv6HeaderLen:]
	for range maxIPv6ExtHeaders {
		switch next {
		case protoUDP:
			return src, dst, p
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(p) < 8 {
				return
			}
			n := (int(p[1]) + 1) * 8
			if n > len(p) {
				return
			}
			next, p = p[0], p[n:]
		case 44: // fragment
			if len(p) < 8 {
				return
			}
			if binary.BigEndian.Uint16(p[2:])&0xFFF8 != 0 {
				return // not the first fragment
			}
			next, p = p[0], p[8:]
		case 51: // authentication header
			if len(p) < 8 {
				return
			}
			n := (int(p[1]) + 2) * 4
			if n > len(p) {
				return
			}
			next, p = p[0], p[n:]
		default: // ESP, no next header, or another protocol
			return
		}
	}
	return
}
