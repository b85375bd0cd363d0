package dtls

import (
	"encoding/binary"
	"errors"
)

// The ACK message of DTLS 1.3 (RFC 9147 §7), carried as its own content
// type (recordTypeACK, 26), not as a handshake message:
//
//	struct {
//	    uint64 epoch;
//	    uint64 sequence_number;
//	} RecordNumber;
//
//	struct {
//	    RecordNumber record_numbers<0..2^16-1>;
//	} ACK;
//
// An empty list is valid (RFC 9147 §7: it tells the peer that nothing new
// arrived, e.g. in answer to an early retransmission).

// recordNumber names one DTLS 1.3 record: its full 64-bit epoch and
// sequence number.
type recordNumber struct {
	epoch, seq uint64
}

const (
	// recordNumberLen is the size of one RecordNumber on the wire.
	recordNumberLen = 16
	// maxACKRecordNumbers bounds the RecordNumbers we send in one ACK and
	// keep from a received one. The wire format allows 4095; an ACK only
	// ever names handshake records of a flight (or post-handshake
	// messages) still unacknowledged, and our flights are far smaller.
	// Entries past it in a received ACK are not stored: at worst their
	// records are retransmitted once more, while a peer cannot make one
	// ACK cost us more than this many entries of memory.
	maxACKRecordNumbers = 256
	// ackStackRecordNumbers is how many RecordNumbers an ACK we send
	// holds in a buffer on the stack; a longer one (a flight of more
	// records, at a small MTU) allocates its body.
	ackStackRecordNumbers = 16
)

var errACKTooLong = errors.New("dtls: ACK with too many record numbers")

// appendACK appends the ACK body listing rns to dst. It refuses more than
// maxACKRecordNumbers entries; the caller chooses which to send (the
// newest: an ACK that cannot name everything should name what the peer
// sent last).
func appendACK(dst []byte, rns []recordNumber) ([]byte, error) {
	if len(rns) > maxACKRecordNumbers {
		return dst, errACKTooLong
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(rns)*recordNumberLen))
	for _, rn := range rns {
		dst = binary.BigEndian.AppendUint64(dst, rn.epoch)
		dst = binary.BigEndian.AppendUint64(dst, rn.seq)
	}
	return dst, nil
}

// parseACK parses an ACK body into out (reused, reset first) and returns
// it. It fails, for the caller to answer with decode_error (RFC 8446 §6:
// a message that cannot be parsed), on a truncated body, a length that is
// not a whole number of RecordNumbers, and trailing bytes. At most
// maxACKRecordNumbers entries are kept; the rest are skipped.
func parseACK(body []byte, out []recordNumber) ([]recordNumber, bool) {
	out = out[:0]
	if len(body) < 2 {
		return out, false
	}
	n := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	if n != len(body) || n%recordNumberLen != 0 {
		return out, false
	}
	for i := 0; i < n && len(out) < maxACKRecordNumbers; i += recordNumberLen {
		out = append(out, recordNumber{
			epoch: binary.BigEndian.Uint64(body[i:]),
			seq:   binary.BigEndian.Uint64(body[i+8:]),
		})
	}
	return out, true
}
