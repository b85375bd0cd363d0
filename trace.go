package dtls

import (
	"net/netip"
	"strconv"
	"time"
)

// TraceKind names what a TraceEvent reports.
type TraceKind uint8

const (
	TraceDatagramSent        TraceKind = iota + 1 // a UDP datagram left (Length, Datagram)
	TraceDatagramReceived                         // a UDP datagram arrived
	TraceRecordSent                               // a record was sealed (Epoch, Seq, ContentType, Length)
	TraceRecordReceived                           // a record authenticated
	TraceRecordDropped                            // a record was discarded silently (Reason)
	TraceHandshakeSent                            // a handshake fragment was sent (HandshakeType, MessageSeq, Fragment*)
	TraceHandshakeReceived                        // a complete handshake message was taken in order
	TraceFlightSent                               // our flight went out for the first time (Flight)
	TraceFlightRetransmitted                      // our flight went out again (Flight, Reason: "timer", "peer repeated" or, DTLS 1.3, "partial ACK")
	TraceTimerArmed                               // the retransmission timer was armed (Timeout)
	TraceTimerFired                               // the retransmission timer expired
	TraceEpochChanged                             // read or write keys changed (Epoch, Reason: "read" or "write"; DTLS 1.3 "read discarded": the peer's epoch before its KeyUpdate was dropped)
	TraceAlertSent                                // we sent an alert (Alert)
	TraceAlertReceived                            // the peer sent an alert (Alert)
	TraceHandshakeDone                            // the handshake completed (Reason: the suite)
	TraceHandshakeFailed                          // the handshake failed (Reason: the error)
	TraceDatagramDropped                          // a Listener discarded a datagram before any connection took it (Reason, Length, Remote: its source)
	TraceListenerEvent                            // a Listener ended or refused something for a peer (Reason: "idle timeout", "evicted", "handshake stalled"...)
	TraceACKSent                                  // DTLS 1.3: we sent an ACK (Epoch, Length: how many record numbers, Records)
	TraceACKReceived                              // DTLS 1.3: an ACK authenticated (Epoch, Seq, Length, Records)
	TraceCIDChanged                               // DTLS 1.3: CIDs requested, issued, received, switched to or retired after the handshake (Reason)
	TraceRRCSent                                  // we sent a return_routability_check (RFC 9853; Reason: path_challenge, path_response or path_drop; Path: where to)
	TraceRRCReceived                              // a return_routability_check authenticated (Reason: its type; Path: its source)
	TracePathValidation                           // a return routability check of a new peer address started, progressed or ended (Path: the new address; Reason)
	TracePeerAddressChanged                       // we now send to the peer at a new address (Path; Reason: validated, or unvalidated without rrc)
)

var traceKindNames = map[TraceKind]string{
	TraceDatagramSent:        "datagram sent",
	TraceDatagramReceived:    "datagram received",
	TraceRecordSent:          "record sent",
	TraceRecordReceived:      "record received",
	TraceRecordDropped:       "record dropped",
	TraceHandshakeSent:       "handshake sent",
	TraceHandshakeReceived:   "handshake received",
	TraceFlightSent:          "flight sent",
	TraceFlightRetransmitted: "flight retransmitted",
	TraceTimerArmed:          "timer armed",
	TraceTimerFired:          "timer fired",
	TraceEpochChanged:        "epoch changed",
	TraceAlertSent:           "alert sent",
	TraceAlertReceived:       "alert received",
	TraceHandshakeDone:       "handshake done",
	TraceHandshakeFailed:     "handshake failed",
	TraceDatagramDropped:     "datagram dropped",
	TraceListenerEvent:       "listener event",
	TraceACKSent:             "ACK sent",
	TraceACKReceived:         "ACK received",
	TraceCIDChanged:          "CID changed",
	TraceRRCSent:             "RRC sent",
	TraceRRCReceived:         "RRC received",
	TracePathValidation:      "path validation",
	TracePeerAddressChanged:  "peer address changed",
}

func (k TraceKind) String() string {
	if s, ok := traceKindNames[k]; ok {
		return s
	}
	return "TraceKind(" + strconv.Itoa(int(k)) + ")"
}

// TraceEvent is one observation of a connection's handshake or record
// layer, delivered to Config.Tracer. Only the fields that the Kind documents
// are set. The event and its Datagram are valid only during the call.
type TraceEvent struct {
	Kind   TraceKind
	Time   time.Time
	Client bool // the event happened on the client side
	Local  netip.AddrPort
	Remote netip.AddrPort

	Epoch       uint64 // 16 bits on a DTLS 1.2 record; 64 as DTLS 1.3 counts epochs
	Seq         uint64 // record sequence number
	ContentType uint8  // record content type
	Length      int    // bytes in the datagram, record payload or message

	// HandshakeType is the message's msg_type, except that a DTLS 1.3
	// HelloRetryRequest (a ServerHello on the wire) is reported as 6,
	// the code RFC 8446 reserves for hello_retry_request, so that
	// HandshakeTypeName names it.
	HandshakeType  uint8
	MessageSeq     uint16
	FragmentOffset uint32
	FragmentLength uint32
	MessageLength  uint32

	Flight  int // our flight number, counted from 1 on each side
	Timeout time.Duration
	Alert   uint8
	Reason  string

	Datagram []byte // the datagram, for DatagramSent/DatagramReceived

	// Version is the protocol version of the record (VersionDTLS13 for a
	// unified-header record) on RecordSent and RecordReceived, and the
	// negotiated one on HandshakeDone; 0 where not known.
	Version uint16
	// Records lists the record numbers an ACK names (ACKSent, ACKReceived).
	Records []TraceRecordNumber
	// Path is the address a path event is about when it is not Remote
	// (the peer's current address): the new address under a return
	// routability check (RRCSent, RRCReceived, PathValidation,
	// PeerAddressChanged), and the source or destination of a datagram
	// that came from or went to it (DatagramReceived, DatagramSent).
	Path netip.AddrPort
}

// TraceRecordNumber names a DTLS 1.3 record: its full epoch and sequence
// number (RFC 9147 §7's RecordNumber).
type TraceRecordNumber struct {
	Epoch, Seq uint64
}

// HandshakeTypeName returns the name of a handshake message type
// ("ClientHello"...).
func HandshakeTypeName(t uint8) string { return handshakeType(t).String() }

// ContentTypeName returns the name of a record content type.
func ContentTypeName(t uint8) string { return recordType(t).String() }

// AlertName returns the description of an alert.
func AlertName(a uint8) string { return alert(a).String() }
