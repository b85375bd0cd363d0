package dtls

import (
	"errors"
	"fmt"
	"slices"
)

// Connection ID updates in DTLS 1.3 (RFC 9147 §9): NewConnectionId and
// RequestConnectionId after the handshake, once the connection_id
// extension (RFC 9146) was negotiated.
//
// What we do, automatically (there is no API call; the choice keeps the
// post-handshake messages in the Conn's reader, where the handshake
// transport lives):
//
//   - A RequestConnectionId(num_cids) from the peer is answered with a
//     NewConnectionId(cid_spare) of up to num_cids fresh CIDs of ours from
//     Config.ConnectionIDGenerator (§9: "Endpoints SHOULD respond to
//     RequestConnectionId by sending a NewConnectionId with usage
//     cid_spare containing num_cids CIDs"), as many as
//     maxIssuedCIDs13 leaves room for. A Listener routes records by
//     every CID it issued. A request when no room is left ends the
//     connection with too_many_cids_requested (§9: "Endpoints MAY handle
//     an excessive number of RequestConnectionId messages by terminating
//     the connection using a too_many_cids_requested (alert number 52)
//     alert"). A request that arrives while a post-handshake flight of
//     ours is unacknowledged is neither processed nor ACKed: the peer
//     retransmits it, and it is answered then, so that we never have two
//     NewConnectionId (or a NewConnectionId and another flight)
//     outstanding (§9: "Endpoints MUST NOT have more than one
//     NewConnectionId message outstanding").
//   - A CID of ours is retired (no longer accepted nor routed) once the
//     peer sends an authenticated record with a CID we issued after it:
//     §9 asks peers to use receiver-provided CIDs in the order given, so
//     the older ones are done with.
//   - A NewConnectionId from the peer: with cid_immediate we put its
//     first CID in every record from now on (§9: "one of the new CIDs
//     MUST be used immediately for all future records"), and keep the
//     others as spares; with cid_spare we keep them, at most
//     maxSpareCIDs13 ("Implementations which receive more spare CIDs than
//     they wish to maintain MAY simply discard any extra CIDs").
//   - §9: "Implementations which either did not negotiate the
//     connection_id extension or which have negotiated receiving an empty
//     CID MUST NOT send NewConnectionId", and "MUST NOT send
//     RequestConnectionId when sending an empty Connection ID"; a
//     violation "MUST terminate the connection with an unexpected_message
//     alert".
//
// We never send RequestConnectionId or NewConnectionId(cid_immediate) of
// our own accord yet; the spares we are given are kept but not switched
// to (RFC 9146 §6's privacy on an address change would need the client
// to know its address changed).

const (
	// maxIssuedCIDs13 bounds the CIDs of ours a DTLS 1.3 connection holds
	// at once (the handshake's and the spares we issued), each an entry
	// in the Listener's routing table: a peer that keeps asking for more
	// without using them gets too_many_cids_requested. pion/dtls v4
	// holds 32; 8 lets a peer migrate several times between requests.
	maxIssuedCIDs13 = 8
	// maxSpareCIDs13 bounds the peer's spare CIDs we keep; more are
	// discarded (§9 allows it), so a NewConnectionId flood costs no
	// memory.
	maxSpareCIDs13 = 8
)

// handleNewConnectionID13 takes the peer's new CIDs.
func (c *Conn) handleNewConnectionID13(m inMessage) error {
	if len(c.rl.writeCID) == 0 {
		return c.fail(alertUnexpectedMessage, errors.New("dtls: NewConnectionId from a peer that receives no CID"))
	}
	nci := new(newConnectionIDMsg13)
	if err := c.parseHandshakeMsg(m, typeNewConnectionID, nci.unmarshal); err != nil {
		return err
	}
	for _, cid := range nci.cids {
		if len(cid) == 0 {
			// An empty CID would turn the CID off, which the
			// connection_id negotiation decides, not an update.
			return c.fail(alertIllegalParameter, errors.New("dtls: empty CID in NewConnectionId"))
		}
	}
	cids := nci.cids
	if nci.usage == cidImmediate {
		if len(cids) == 0 {
			return c.fail(alertIllegalParameter, errors.New("dtls: NewConnectionId(cid_immediate) without a CID"))
		}
		c.out.Lock()
		c.rl.writeCID = cids[0]
		c.out.Unlock()
		cids = cids[1:]
		if c.config.Tracer != nil {
			c.trace(&TraceEvent{Kind: TraceCIDChanged, Reason: fmt.Sprintf("peer's CID now %x (cid_immediate)", c.rl.writeCID)})
		}
	}
	for _, cid := range cids {
		if len(c.cidSpares13) == maxSpareCIDs13 {
			break
		}
		if string(cid) != string(c.rl.writeCID) && !slices.ContainsFunc(c.cidSpares13, func(s []byte) bool { return string(s) == string(cid) }) {
			c.cidSpares13 = append(c.cidSpares13, cid)
		}
	}
	return nil
}

// handleRequestConnectionID13 checks the peer's request and returns how
// many CIDs to issue.
func (c *Conn) handleRequestConnectionID13(m inMessage) (int, error) {
	if len(c.rl.readCID) == 0 {
		return 0, c.fail(alertUnexpectedMessage, errors.New("dtls: RequestConnectionId from a peer that sends no CID"))
	}
	rci := new(requestConnectionIDMsg13)
	if err := c.parseHandshakeMsg(m, typeRequestConnectionID, rci.unmarshal); err != nil {
		return 0, err
	}
	if rci.numCIDs == 0 {
		return 0, nil
	}
	room := maxIssuedCIDs13 - 1 - len(c.rl.readCIDs13)
	if room <= 0 {
		return 0, c.fail(alertTooManyCIDsRequested, fmt.Errorf("dtls: the peer asks for more CIDs while it holds %d of ours", maxIssuedCIDs13))
	}
	return min(int(rci.numCIDs), room, maxNewCIDs13), nil
}

// issueConnectionIDs13 sends a NewConnectionId of usage with up to n
// fresh CIDs of our CID's length, registered with the Listener first so
// that the peer's records with them are routed to us. We send cid_spare
// only (in answer to RequestConnectionId); tests play a peer that sends
// cid_immediate.
func (c *Conn) issueConnectionIDs13(n int, usage uint8) error {
	gen := c.config.ConnectionIDGenerator
	if gen == nil {
		return nil
	}
	cio, _ := c.io.(*listenerConnIO)
	var cids [][]byte
	for range n * maxCIDAttempts {
		if len(cids) == n {
			break
		}
		cid := slices.Clone(gen())
		if len(cid) != len(c.rl.readCID) {
			// The record header does not say how long a CID is: all of
			// ours share the negotiated one's length.
			break
		}
		if string(cid) == string(c.rl.readCID) || c.rl.issuedCID13(cid) ||
			slices.ContainsFunc(cids, func(x []byte) bool { return string(x) == string(cid) }) {
			continue
		}
		if cio != nil && !c.listener.registerCID(cid, cio) {
			continue // another connection's
		}
		cids = append(cids, cid)
	}
	if len(cids) == 0 {
		return nil
	}
	c.out.Lock()
	c.rl.readCIDs13 = append(c.rl.readCIDs13, cids...)
	c.out.Unlock()
	body, err := (&newConnectionIDMsg13{cids: cids, usage: usage}).marshal()
	if err != nil {
		return c.fail(alertInternalError, err)
	}
	c.hs.startPostHandshakeFlight()
	if c.hs.queueMessage(c.rl.writeCur, typeNewConnectionID, body) == nil {
		return c.fail(alertInternalError, errors.New("dtls: NewConnectionId not queued"))
	}
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceCIDChanged, Reason: fmt.Sprintf("issued %d CIDs (usage %d)", len(cids), usage)})
	}
	return c.sendFlight(false, "NewConnectionId")
}

// peerUsedCID13 notes the CID of an authenticated 1.3 record: when it is
// one we issued after our current one, the peer has moved on, and every
// CID of ours issued before it is retired.
func (c *Conn) peerUsedCID13(cid []byte) {
	if len(c.rl.readCIDs13) == 0 || string(cid) == string(c.rl.readCID) {
		return
	}
	i := slices.IndexFunc(c.rl.readCIDs13, func(x []byte) bool { return string(x) == string(cid) })
	if i < 0 {
		return
	}
	retired := append([][]byte{c.rl.readCID}, c.rl.readCIDs13[:i]...)
	c.out.Lock()
	c.rl.readCID = c.rl.readCIDs13[i]
	c.rl.readCIDs13 = slices.Clone(c.rl.readCIDs13[i+1:])
	c.out.Unlock()
	if cio, ok := c.io.(*listenerConnIO); ok {
		for _, old := range retired {
			c.listener.table.retireCID(old, cio)
		}
	}
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceCIDChanged, Reason: fmt.Sprintf("peer uses our CID %x; %d retired", cid, len(retired))})
	}
}
