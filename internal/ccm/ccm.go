// Package ccm implements the Counter with CBC-MAC (CCM) mode of a 128-bit
// block cipher, as specified in RFC 3610 and NIST SP 800-38C, as a
// cipher.AEAD.
//
// DTLS uses it with AES and a 12-byte nonce for AES_128_CCM, AES_256_CCM
// (16-byte tag) and AES_128_CCM_8 (8-byte tag), RFC 6655 and RFC 7251, but
// the package accepts every tag and nonce size that RFC 3610 allows.
//
// The block cipher is always the caller's cipher.Block (crypto/aes); this
// package only arranges the CBC-MAC and CTR passes around it.
package ccm

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"math"
	"sync"
)

const blockSize = 16

// Limits on the parameters, from RFC 3610 section 2 and NIST SP 800-38C
// appendix A.1.
const (
	// minNonceSize and maxNonceSize bound the nonce: the nonce and the
	// L-byte message length field together fill 15 bytes of the first
	// block, and L ranges over 2..8.
	minNonceSize = 15 - 8
	maxNonceSize = 15 - 2
)

var (
	errOpen = errors.New("ccm: message authentication failed")

	errNonceSize = errors.New("ccm: incorrect nonce length given to CCM")
)

// segmentBlocks is how many counter blocks are prepared at a time. Writing
// them in one go, ahead of their use, keeps the 16-byte loads inside
// Block.Encrypt from waiting on the 8-byte stores that wrote the counters (a
// store-forwarding stall that serialises the CTR and CBC-MAC chains, measured
// at about 25% of Seal's time when each counter was written just before use).
const segmentBlocks = 16

// scratch is the per-call working state. Its blocks are handed to
// cipher.Block.Encrypt, an interface method, so the compiler cannot prove
// they do not escape and would move stack arrays to the heap on every call.
// Taking them from a pool instead keeps Seal and Open free of allocations in
// the steady state while leaving the AEAD safe for concurrent use. The
// pool is shared by every AEAD, as nothing in a scratch depends on the key:
// a pool per AEAD cost each DTLS connection its own per-CPU pool slots and
// scratches, about 1 KB per direction.
type scratch struct {
	mac [blockSize]byte                 // CBC-MAC chaining value X_i
	s0  [blockSize]byte                 // S_0, which masks the tag
	ctr [segmentBlocks * blockSize]byte // counter blocks A_i of a segment
	ks  [segmentBlocks * blockSize]byte // key stream blocks S_i of a segment
	// base is the last 8 bytes of A_0 read as a big-endian number; the last
	// 8 bytes of A_i are base+i, since i < 2^(8L) never carries into the
	// nonce.
	base uint64
}

type ccm struct {
	block     cipher.Block
	tagSize   int
	nonceSize int
	// maxLen is the largest plaintext length the L-byte length field of
	// B_0 can encode: 2^(8L) - 1.
	maxLen uint64
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// New returns the CCM mode of the given 128-bit block cipher as a
// cipher.AEAD, with tagSize in {4, 6, 8, 10, 12, 14, 16} and nonceSize in
// 7..13. The size of the message length field is L = 15 - nonceSize bytes,
// so plaintexts must be shorter than 2^(8L) bytes.
//
// Seal and Open follow the cipher.AEAD contract and crypto/cipher's GCM: the
// output may alias the input exactly, Seal panics on a nonce of the wrong
// length or a too-long plaintext, and a failed Open clears the part of dst it
// wrote. Unlike GCM, Open reports a nonce of the wrong length as an error
// rather than a panic, so no input to Open can panic.
func New(block cipher.Block, tagSize, nonceSize int) (cipher.AEAD, error) {
	if block.BlockSize() != blockSize {
		return nil, errors.New("ccm: CCM requires a 128-bit block cipher")
	}
	if tagSize < 4 || tagSize > 16 || tagSize%2 != 0 {
		return nil, errors.New("ccm: invalid tag size")
	}
	if nonceSize < minNonceSize || nonceSize > maxNonceSize {
		return nil, errors.New("ccm: invalid nonce size")
	}
	c := &ccm{block: block, tagSize: tagSize, nonceSize: nonceSize}
	if L := 15 - nonceSize; L < 8 {
		c.maxLen = 1<<(8*L) - 1
	} else {
		c.maxLen = math.MaxUint64
	}
	return c, nil
}

func (c *ccm) NonceSize() int { return c.nonceSize }
func (c *ccm) Overhead() int  { return c.tagSize }

func (c *ccm) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	if len(nonce) != c.nonceSize {
		panic("ccm: incorrect nonce length given to CCM")
	}
	if uint64(len(plaintext)) > c.maxLen {
		panic("ccm: message too large for CCM")
	}

	ret, out := sliceForAppend(dst, len(plaintext)+c.tagSize)
	if inexactOverlap(out, plaintext) {
		panic("ccm: invalid buffer overlap of output and input")
	}
	if anyOverlap(out, additionalData) {
		panic("ccm: invalid buffer overlap of output and additional data")
	}

	s := scratchPool.Get().(*scratch)
	c.start(s, nonce, len(plaintext), additionalData)

	// One pass over the plaintext, a segment at a time: each block goes
	// into the CBC-MAC while its key stream block is computed, and the
	// segment's ciphertext is written only after the MAC has read it, so
	// out may be plaintext itself. The two Encrypt calls of a block are
	// independent, which lets the CPU overlap them.
	b := c.block
	n := len(plaintext)
	for i := 0; i < n; {
		seg := min(n-i, len(s.ks))
		c.counters(s, uint64(i/blockSize)+1, seg)
		p := plaintext[i : i+seg]
		for j := 0; j < seg; j += blockSize {
			b.Encrypt(s.ks[j:j+blockSize], s.ctr[j:j+blockSize])
			subtle.XORBytes(s.mac[:], s.mac[:], p[j:min(j+blockSize, seg)])
			b.Encrypt(s.mac[:], s.mac[:])
		}
		subtle.XORBytes(out[i:i+seg], p, s.ks[:seg])
		i += seg
	}

	// The tag is T xor S_0.
	subtle.XORBytes(out[n:], s.mac[:c.tagSize], s.s0[:c.tagSize])

	scratchPool.Put(s)
	return ret
}

func (c *ccm) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	if len(nonce) != c.nonceSize {
		return nil, errNonceSize
	}
	if len(ciphertext) < c.tagSize {
		return nil, errOpen
	}
	if uint64(len(ciphertext)-c.tagSize) > c.maxLen {
		return nil, errOpen
	}
	n := len(ciphertext) - c.tagSize
	tag := ciphertext[n:]
	ciphertext = ciphertext[:n]

	ret, out := sliceForAppend(dst, n)
	if inexactOverlap(out, ciphertext) {
		panic("ccm: invalid buffer overlap of output and input")
	}
	if anyOverlap(out, additionalData) {
		panic("ccm: invalid buffer overlap of output and additional data")
	}

	s := scratchPool.Get().(*scratch)
	c.start(s, nonce, n, additionalData)

	// CCM authenticates the plaintext, so it must be decrypted first; each
	// block is written to out and then fed to the CBC-MAC from there, which
	// is also right when out is ciphertext itself.
	b := c.block
	for i := 0; i < n; {
		seg := min(n-i, len(s.ks))
		c.counters(s, uint64(i/blockSize)+1, seg)
		for j := 0; j < seg; j += blockSize {
			k := min(j+blockSize, seg)
			b.Encrypt(s.ks[j:j+blockSize], s.ctr[j:j+blockSize])
			p := out[i+j : i+k]
			subtle.XORBytes(p, ciphertext[i+j:i+k], s.ks[j:k])
			subtle.XORBytes(s.mac[:], s.mac[:], p)
			b.Encrypt(s.mac[:], s.mac[:])
		}
		i += seg
	}

	subtle.XORBytes(s.mac[:c.tagSize], s.mac[:c.tagSize], s.s0[:c.tagSize])
	ok := subtle.ConstantTimeCompare(s.mac[:c.tagSize], tag) == 1
	scratchPool.Put(s)

	if !ok {
		// Like crypto/cipher, never leave unauthenticated plaintext in the
		// caller's buffer.
		clear(out)
		return nil, errOpen
	}
	return ret, nil
}

// start sets the nonce into every counter block of s.ctr, s.s0 to the key
// stream block of counter 0, and s.mac to the CBC-MAC of B_0 and the encoded
// additional data, ready to absorb the plaintext from a block boundary
// (RFC 3610 section 2.2).
func (c *ccm) start(s *scratch, nonce []byte, msgLen int, ad []byte) {
	L := 15 - c.nonceSize

	// A_i: Flags = L-1, then the nonce, then i in L bytes. Only the last 8
	// bytes change from block to block (L <= 8), so counters rewrites
	// just those; their nonce bytes are kept here.
	clear(s.ctr[:blockSize])
	s.ctr[0] = byte(L - 1)
	copy(s.ctr[1:], nonce)
	for j := blockSize; j < len(s.ctr); j += blockSize {
		copy(s.ctr[j:j+blockSize], s.ctr[:blockSize])
	}
	s.base = binary.BigEndian.Uint64(s.ctr[8:blockSize])
	b := c.block
	b.Encrypt(s.s0[:], s.ctr[:blockSize])

	// B_0: Flags = 64*Adata + 8*M' + L', then the nonce, then l(m) in L
	// bytes, which holds it since l(m) <= maxLen. It differs from A_0 only
	// in the flags and the length field, where A_0 has counter 0.
	copy(s.mac[:], s.ctr[:blockSize])
	s.mac[0] = byte(8*((c.tagSize-2)/2) + L - 1)
	if len(ad) > 0 {
		s.mac[0] |= 64
	}
	var lenField [8]byte
	binary.BigEndian.PutUint64(lenField[:], uint64(msgLen))
	copy(s.mac[1+c.nonceSize:], lenField[8-L:])
	b.Encrypt(s.mac[:], s.mac[:])

	if len(ad) == 0 {
		return
	}

	// The additional data is prefixed with its length: 2 bytes below
	// 2^16-2^8, else 0xff 0xfe and 4 bytes below 2^32, else 0xff 0xff and 8
	// bytes. The whole is zero-padded to a block boundary.
	var hdr [10]byte
	var h []byte
	switch a := uint64(len(ad)); {
	case a < 1<<16-1<<8:
		binary.BigEndian.PutUint16(hdr[:], uint16(a))
		h = hdr[:2]
	case a <= math.MaxUint32:
		hdr[0], hdr[1] = 0xff, 0xfe
		binary.BigEndian.PutUint32(hdr[2:], uint32(a))
		h = hdr[:6]
	default:
		hdr[0], hdr[1] = 0xff, 0xff
		binary.BigEndian.PutUint64(hdr[2:], a)
		h = hdr[:10]
	}
	subtle.XORBytes(s.mac[:], s.mac[:len(h)], h)
	pos := len(h)

	// Fill the first block.
	k := subtle.XORBytes(s.mac[pos:], s.mac[pos:], ad)
	ad = ad[k:]
	b.Encrypt(s.mac[:], s.mac[:])
	for len(ad) >= blockSize {
		subtle.XORBytes(s.mac[:], s.mac[:], ad[:blockSize])
		b.Encrypt(s.mac[:], s.mac[:])
		ad = ad[blockSize:]
	}
	if len(ad) > 0 {
		subtle.XORBytes(s.mac[:], s.mac[:len(ad)], ad)
		b.Encrypt(s.mac[:], s.mac[:])
	}
}

// counters writes the counter blocks A_first... covering the next n bytes of
// key stream into s.ctr.
func (c *ccm) counters(s *scratch, first uint64, n int) {
	for j := 0; j < n; j += blockSize {
		binary.BigEndian.PutUint64(s.ctr[j+8:j+blockSize], s.base+first)
		first++
	}
}

// sliceForAppend takes a slice and a requested number of bytes. It returns a
// slice with the contents of the given slice followed by that many bytes and a
// second slice that aliases into it and contains only the extra bytes. If the
// original slice has sufficient capacity then no allocation is performed.
// (From crypto/cipher.)
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return
}
