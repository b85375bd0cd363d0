package dtls

// Placeholder copies of the handshake header codec so that the transport can
// be built in parallel with the message codecs; handshake_messages.go takes
// these over when the codecs land.

func (h *handshakeHeader) unmarshal(b []byte) bool {
	if len(b) < handshakeHeaderLen {
		return false
	}
	h.typ = handshakeType(b[0])
	h.length = uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	h.messageSeq = uint16(b[4])<<8 | uint16(b[5])
	h.fragmentOffset = uint32(b[6])<<16 | uint32(b[7])<<8 | uint32(b[8])
	h.fragmentLength = uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11])
	if h.length > maxHandshakeMessageLen || h.fragmentOffset+h.fragmentLength > h.length {
		return false
	}
	return true
}

func (h *handshakeHeader) appendTo(b []byte) []byte {
	return append(b, byte(h.typ),
		byte(h.length>>16), byte(h.length>>8), byte(h.length),
		byte(h.messageSeq>>8), byte(h.messageSeq),
		byte(h.fragmentOffset>>16), byte(h.fragmentOffset>>8), byte(h.fragmentOffset),
		byte(h.fragmentLength>>16), byte(h.fragmentLength>>8), byte(h.fragmentLength))
}
