package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"
)

// TestReadOpenSSLCapture reads the same tshark capture as pcapng
// (Ethernet, microseconds), as nanosecond pcap, and with a DSB injected by
// editcap, and checks that all three agree.
func TestReadOpenSSLCapture(t *testing.T) {
	ng, keyLog := readTestFile(t, "openssl-dtls12.pcapng")
	if len(ng) != 12 {
		t.Fatalf("got %d datagrams, want 12", len(ng))
	}
	if len(keyLog) != 0 {
		t.Errorf("key log %q in a file without secrets", keyLog)
	}
	client, server := ng[0].Src, ng[0].Dst
	if server != mustAddrPort("127.0.0.1:44330") || !client.Addr().IsLoopback() {
		t.Errorf("first datagram %v → %v", client, server)
	}
	if p := ng[0].Payload; len(p) < 14 || p[0] != 22 || p[13] != 1 {
		t.Errorf("first datagram is not a ClientHello record: % x", p[:min(len(p), 14)])
	}
	pcap, _ := readTestFile(t, "openssl-dtls12.pcap")
	dsb, dsbKeys := readTestFile(t, "openssl-dtls12-dsb.pcapng")
	keys, err := os.ReadFile("testdata/openssl-dtls12.keylog")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dsbKeys, keys) {
		t.Errorf("key log from editcap's DSB:\n%q\nwant\n%q", dsbKeys, keys)
	}
	for name, other := range map[string][]Datagram{"pcap": pcap, "dsb": dsb} {
		if len(other) != len(ng) {
			t.Errorf("%s: %d datagrams, want %d", name, len(other), len(ng))
			continue
		}
		for i := range ng {
			a, b := ng[i], other[i]
			// pcapng's default microseconds make both files exact.
			if !a.Time.Equal(b.Time) || a.Src != b.Src || a.Dst != b.Dst || !bytes.Equal(a.Payload, b.Payload) {
				t.Errorf("%s: datagram %d differs: %v %v→%v vs %v %v→%v", name, i, a.Time, a.Src, a.Dst, b.Time, b.Src, b.Dst)
			}
		}
	}
}

// Hand-built captures for the link types and encapsulations that the
// OpenSSL capture does not cover.

var (
	v4src = mustAddrPort("192.0.2.1:1111")
	v4dst = mustAddrPort("192.0.2.2:2222")
	v6src = mustAddrPort("[2001:db8::1]:3333")
	v6dst = mustAddrPort("[2001:db8::2]:4444")
)

func ipPacket(t testing.TB, src, dst netip.AddrPort, payload string) []byte {
	pkt, err := appendIPUDP(nil, src, dst, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

// pcapFile builds a classic pcap file.
func pcapFile(order binary.AppendByteOrder, nano bool, link uint32, ts time.Time, frames ...[]byte) []byte {
	magic := uint32(pcapMagicMicro)
	frac := uint32(ts.Nanosecond() / 1000)
	if nano {
		magic, frac = pcapMagicNano, uint32(ts.Nanosecond())
	}
	b := order.AppendUint32(nil, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = order.AppendUint64(b, 0)
	b = order.AppendUint32(b, 65535)
	b = order.AppendUint32(b, link)
	for _, f := range frames {
		b = order.AppendUint32(b, uint32(ts.Unix()))
		b = order.AppendUint32(b, frac)
		b = order.AppendUint32(b, uint32(len(f)))
		b = order.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// pcapngBlock builds one pcapng block in the given byte order.
func pcapngBlock(order binary.AppendByteOrder, typ uint32, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	b := order.AppendUint32(nil, typ)
	b = order.AppendUint32(b, n)
	b = append(b, body...)
	return order.AppendUint32(b, n)
}

func pcapngSHB(order binary.AppendByteOrder) []byte {
	body := order.AppendUint32(nil, byteOrderMagic)
	body = order.AppendUint16(body, 1)
	body = order.AppendUint16(body, 0)
	body = order.AppendUint64(body, ^uint64(0))
	return pcapngBlock(order, blockTypeSHB, body)
}

func pcapngIDB(order binary.AppendByteOrder, link uint16, tsresol byte, tsoffset int64) []byte {
	body := order.AppendUint16(nil, link)
	body = order.AppendUint16(body, 0)
	body = order.AppendUint32(body, 0)
	if tsresol != 0 {
		body = order.AppendUint16(body, optIfTsresol)
		body = order.AppendUint16(body, 1)
		body = append(body, tsresol, 0, 0, 0)
	}
	if tsoffset != 0 {
		body = order.AppendUint16(body, optIfTsoff)
		body = order.AppendUint16(body, 8)
		body = order.AppendUint64(body, uint64(tsoffset))
	}
	body = order.AppendUint32(body, 0) // opt_endofopt
	return pcapngBlock(order, blockTypeIDB, body)
}

func pcapngEPB(order binary.AppendByteOrder, iface uint32, ts uint64, frame []byte) []byte {
	body := order.AppendUint32(nil, iface)
	body = order.AppendUint32(body, uint32(ts>>32))
	body = order.AppendUint32(body, uint32(ts))
	body = order.AppendUint32(body, uint32(len(frame)))
	body = order.AppendUint32(body, uint32(len(frame)))
	body = append(body, frame...)
	return pcapngBlock(order, blockTypeEPB, body)
}

func pcapngDSB(order binary.AppendByteOrder, typ uint32, secret string) []byte {
	body := order.AppendUint32(nil, typ)
	body = order.AppendUint32(body, uint32(len(secret)))
	body = append(body, secret...)
	return pcapngBlock(order, blockTypeDSB, body)
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func ethernet(etherType uint16, vlans int, pkt []byte) []byte {
	b := make([]byte, 12, 14+4*vlans+len(pkt))
	for range vlans {
		b = binary.BigEndian.AppendUint16(b, etherTypeVLAN)
		b = binary.BigEndian.AppendUint16(b, 42) // TCI
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	b = append(b, pkt...)
	return append(b, make([]byte, 6)...) // padding or FCS after the IP packet
}

func sll(etherType uint16, pkt []byte) []byte {
	b := make([]byte, 14, 16+len(pkt))
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(b, pkt...)
}

func sll2(etherType uint16, pkt []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, etherType)
	b = append(b, make([]byte, 18)...)
	return append(b, pkt...)
}

func family(order binary.AppendByteOrder, af uint32, pkt []byte) []byte {
	return append(order.AppendUint32(nil, af), pkt...)
}

// withIPv6ExtHeaders inserts a hop-by-hop, a destination options and a
// first-fragment header before the UDP header of an IPv6 packet.
func withIPv6ExtHeaders(pkt []byte, fragOffset uint16) []byte {
	ext := []byte{
		60, 0, 1, 4, 0, 0, 0, 0, // hop-by-hop → destination options, PadN
		44, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // destination options (16 bytes) → fragment
		17, 0, byte(fragOffset >> 8), byte(fragOffset), 0, 0, 0, 1, // fragment → UDP
	}
	out := append([]byte(nil), pkt[:40]...)
	out[6] = 0 // next header: hop-by-hop
	binary.BigEndian.PutUint16(out[4:], uint16(len(pkt)-40+len(ext)))
	out = append(out, ext...)
	return append(out, pkt[40:]...)
}

type linkTypeCase struct {
	name string
	file []byte
	want []Datagram
}

// linkTypeCases builds a small file for each link type and encapsulation.
func linkTypeCases(t testing.TB) []linkTypeCase {
	le, be := binary.LittleEndian, binary.BigEndian
	p4 := ipPacket(t, v4src, v4dst, "four")
	p6 := ipPacket(t, v6src, v6dst, "six")
	ts := time.Date(2024, 1, 2, 3, 4, 5, 678901000, time.UTC)
	want := []Datagram{{ts, v4src, v4dst, []byte("four")}, {ts, v6src, v6dst, []byte("six")}}

	fragment := append([]byte(nil), p4...)
	binary.BigEndian.PutUint16(fragment[6:], 0x0010) // a later fragment: skipped
	notUDP := append([]byte(nil), p4...)
	notUDP[9] = 6 // TCP: skipped

	return []linkTypeCase{
		{"pcap-le-ethernet", pcapFile(le, false, linkTypeEthernet, ts, ethernet(etherTypeIPv4, 0, p4), ethernet(etherTypeIPv6, 0, p6)), want},
		{"pcap-be-nano-vlan", pcapFile(be, true, linkTypeEthernet, ts, ethernet(etherTypeIPv4, 2, p4), ethernet(etherTypeIPv6, 1, p6)), want},
		{"pcap-fcs-bits", pcapFile(le, false, 0x10000000|linkTypeEthernet, ts, ethernet(etherTypeIPv4, 0, p4), ethernet(etherTypeIPv6, 0, p6)), want},
		{"pcap-sll", pcapFile(le, false, linkTypeSLL, ts, sll(etherTypeIPv4, p4), sll(etherTypeIPv6, p6)), want},
		{"pcap-sll2", pcapFile(be, false, linkTypeSLL2, ts, sll2(etherTypeIPv4, p4), sll2(etherTypeIPv6, p6)), want},
		{"pcap-null-le", pcapFile(le, false, linkTypeNull, ts, family(le, 2, p4), family(le, 30, p6)), want},
		{"pcap-null-be", pcapFile(be, false, linkTypeNull, ts, family(be, 2, p4), family(be, 24, p6)), want},
		{"pcap-loop", pcapFile(le, false, linkTypeLoop, ts, family(be, 2, p4), family(be, 28, p6)), want},
		{"pcap-raw", pcapFile(le, false, linkTypeRaw, ts, p4, p6), want},
		{"pcap-dlt-raw", pcapFile(le, false, linkTypeDLTRaw, ts, p4, p6), want},
		{"pcap-ipv4-ipv6", pcapFile(le, false, linkTypeIPv4, ts, p4, notUDP, fragment), want[:1]},
		{"pcap-ipv6-ext", pcapFile(le, false, linkTypeIPv6, ts, withIPv6ExtHeaders(p6, 0), withIPv6ExtHeaders(p6, 8)), want[1:]},
		{"pcap-unknown-link", pcapFile(le, false, 147, ts, p4), nil},
		{"pcapng-le-two-interfaces", cat(
			pcapngSHB(le),
			pcapngIDB(le, linkTypeEthernet, 0, 0), // microseconds by default
			pcapngIDB(le, linkTypeRaw, 9, 0),
			pcapngEPB(le, 0, uint64(ts.UnixMicro()), ethernet(etherTypeIPv4, 0, p4)),
			pcapngDSB(le, 0x57474b4c, "WireGuard secrets are not TLS\n"),
			pcapngDSB(le, secretsTypeTLS, "CLIENT_RANDOM 01 02"),
			pcapngEPB(le, 1, uint64(ts.UnixNano()), p6),
		), want},
		{"pcapng-be-binary-tsresol-offset", cat(
			pcapngSHB(be),
			pcapngIDB(be, linkTypeSLL2, 0x80|20, 1000), // 2^-20 s, +1000 s
			pcapngEPB(be, 0, uint64(ts.Unix()-1000)<<20|uint64(ts.Nanosecond())<<20/1e9, sll2(etherTypeIPv4, p4)),
			pcapngDSB(be, secretsTypeTLS, "CLIENT_RANDOM 01 02\n"),
		), []Datagram{{ts.Truncate(time.Microsecond), v4src, v4dst, []byte("four")}}},
		{"pcapng-two-sections", cat(
			pcapngSHB(le), pcapngIDB(le, linkTypeRaw, 0, 0), pcapngEPB(le, 0, uint64(ts.UnixMicro()), p4),
			pcapngSHB(be), pcapngIDB(be, linkTypeRaw, 0, 0), pcapngEPB(be, 0, uint64(ts.UnixMicro()), p6),
		), want},
	}
}

func TestReadLinkTypes(t *testing.T) {
	for _, tc := range linkTypeCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			got, keyLog, err := ReadFile(bytes.NewReader(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d datagrams, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Time.Sub(w.Time).Abs() > time.Microsecond || g.Src != w.Src || g.Dst != w.Dst || string(g.Payload) != string(w.Payload) {
					t.Errorf("datagram %d: got %v %v→%v %q, want %v %v→%v %q", i, g.Time, g.Src, g.Dst, g.Payload, w.Time, w.Src, w.Dst, w.Payload)
				}
			}
			if len(tc.file) > 0 && tc.file[0] == 0x0A && !bytes.Contains(tc.file, []byte("CLIENT_RANDOM")) && len(keyLog) != 0 {
				t.Errorf("key log %q", keyLog)
			}
			if bytes.Contains(tc.file, []byte("CLIENT_RANDOM")) && string(keyLog) != "CLIENT_RANDOM 01 02\n" {
				t.Errorf("key log %q", keyLog)
			}
		})
	}
}

func TestReadTruncatedSnapLen(t *testing.T) {
	p := ipPacket(t, v4src, v4dst, "0123456789")
	got, _, err := ReadFile(bytes.NewReader(pcapFile(binary.LittleEndian, false, linkTypeRaw, time.Unix(0, 0), p[:len(p)-4])))
	if err != nil || len(got) != 1 || string(got[0].Payload) != "012345" {
		t.Errorf("got %v, %v; want the captured 6 bytes", got, err)
	}
}

func TestReadMalformed(t *testing.T) {
	le := binary.LittleEndian
	good := cat(pcapngSHB(le), pcapngIDB(le, linkTypeRaw, 0, 0), pcapngEPB(le, 0, 0, ipPacket(t, v4src, v4dst, "x")))
	hugeBlock := append([]byte(nil), good...)
	le.PutUint32(hugeBlock[len(pcapngSHB(le))+4:], maxBlockLen+4)
	badTrailer := append([]byte(nil), good...)
	badTrailer[len(badTrailer)-1] ^= 1
	hugePcap := pcapFile(le, false, linkTypeRaw, time.Unix(0, 0), []byte{0x45})
	le.PutUint32(hugePcap[pcapHeaderLen+8:], maxSnapLen+1)
	for name, file := range map[string][]byte{
		"empty":           {},
		"short":           {0xd4, 0xc3},
		"bad-magic":       []byte("GIF89a and then some more bytes"),
		"truncated-pcap":  pcapFile(le, false, linkTypeRaw, time.Unix(0, 0), ipPacket(t, v4src, v4dst, "x"))[:40],
		"huge-pcap":       hugePcap,
		"no-shb":          pcapngIDB(le, linkTypeRaw, 0, 0),
		"huge-block":      hugeBlock,
		"bad-trailer":     badTrailer,
		"truncated-block": good[:len(good)-3],
		"undescribed-if":  cat(pcapngSHB(le), pcapngEPB(le, 0, 0, nil)),
		"bad-tsresol":     cat(pcapngSHB(le), pcapngIDB(le, linkTypeRaw, 20, 0)),
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := ReadFile(bytes.NewReader(file))
			if !errors.Is(err, ErrFormat) {
				t.Errorf("err = %v, want ErrFormat", err)
			}
		})
	}
}

func FuzzReadFile(f *testing.F) {
	for _, name := range []string{"openssl-dtls12.pcapng", "openssl-dtls12.pcap", "openssl-dtls12-dsb.pcapng"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, tc := range linkTypeCases(f) {
		f.Add(tc.file)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dgs, keyLog, err := ReadFile(bytes.NewReader(b))
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("error %v does not wrap ErrFormat", err)
		}
		if len(keyLog) > maxKeyLogLen {
			t.Fatalf("key log of %d bytes", len(keyLog))
		}
		for _, d := range dgs {
			if len(d.Payload) > maxSnapLen {
				t.Fatalf("payload of %d bytes", len(d.Payload))
			}
		}
	})
}

// TestScan: Scan yields the datagrams ReadFile returns, one at a time and
// in order, returns the key log of the whole file (a Decryption Secrets
// Block after the packets included), and stops at yield's error.
func TestScan(t *testing.T) {
	le := binary.LittleEndian
	file := cat(pcapngSHB(le), pcapngIDB(le, linkTypeRaw, 9, 0),
		pcapngEPB(le, 0, 1, ipPacket(t, v4src, v4dst, "one")),
		pcapngEPB(le, 0, 2, ipPacket(t, v4dst, v4src, "two")),
		pcapngEPB(le, 0, 3, ipPacket(t, v4src, v4dst, "three")),
		pcapngDSB(le, secretsTypeTLS, "CLIENT_RANDOM aa bb\n"))
	want, wantKeys, err := ReadFile(bytes.NewReader(file))
	if err != nil || len(want) != 3 {
		t.Fatalf("ReadFile: %d datagrams, %v", len(want), err)
	}
	var got []string
	keys, err := Scan(bytes.NewReader(file), func(d Datagram) error {
		got = append(got, string(d.Payload)) // a copy: Payload is reused
		return nil
	})
	if err != nil || !bytes.Equal(keys, wantKeys) || string(keys) != "CLIENT_RANDOM aa bb\n" {
		t.Fatalf("Scan: key log %q, %v; want %q", keys, err, wantKeys)
	}
	for i, d := range want {
		if got[i] != string(d.Payload) {
			t.Errorf("datagram %d: Scan %q, ReadFile %q", i, got[i], d.Payload)
		}
	}
	stop := errors.New("enough")
	n := 0
	_, err = Scan(bytes.NewReader(file), func(Datagram) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Errorf("yield's error: Scan returned %v after %d datagrams; want it after 2", err, n)
	}
	// A classic pcap too.
	n = 0
	_, err = Scan(bytes.NewReader(pcapFile(le, false, linkTypeRaw, time.Unix(1, 0),
		ipPacket(t, v4src, v4dst, "a"), ipPacket(t, v4src, v4dst, "b"))), func(Datagram) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("pcap: Scan returned %v after %d datagrams; want %v after 1", err, n, stop)
	}
}
