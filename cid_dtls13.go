package dtls

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Connection ID updates in DTLS 1.3 (RFC 9147 §9): NewConnectionId and
// RequestConnectionId after the handshake, once the connection_id
// extension (RFC 9146) was negotiated.
//
// What we do by ourselves:
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
//     peer sends an authenticated record with a CID we issued after it,
//     from the address we send to: §9 asks peers to use receiver-provided
//     CIDs in the order given, so the older ones are done with. A record
//     from another address (a probe of a new path, a move we have not
//     followed yet) retires nothing: the peer's current path may still
//     use the older CID.
//   - A NewConnectionId from the peer: with cid_immediate we put its
//     first CID in every record from now on (§9: "one of the new CIDs
//     MUST be used immediately for all future records"), and keep the
//     others as spares; with cid_spare we keep them, at most
//     maxSpareCIDs13 ("Implementations which receive more spare CIDs than
//     they wish to maintain MAY simply discard any extra CIDs").
//   - When we follow the peer to a new address (RFC 9146 §6, RFC 9853)
//     and hold a spare CID of the peer's, we send with it from then on:
//     §9 says "Implementations SHOULD use a new CID whenever sending on
//     a new path", so that a passive observer cannot link the two paths
//     by the CID in our records.
//   - §9: "Implementations which either did not negotiate the
//     connection_id extension or which have negotiated receiving an empty
//     CID MUST NOT send NewConnectionId", and "MUST NOT send
//     RequestConnectionId when sending an empty Connection ID"; a
//     violation "MUST terminate the connection with an unexpected_message
//     alert".
//
// What the application asks for (§9 leaves when to the endpoint: "SHOULD
// request new CIDs for this purpose if path changes are anticipated";
// only the application knows that its own address is about to change):
//
//   - Conn.RequestConnectionIDs sends RequestConnectionId and waits for
//     the peer's NewConnectionId. One request at a time (§9: "Endpoints
//     MUST NOT send a RequestConnectionId message when an existing
//     request is still unfulfilled").
//   - Conn.SwitchConnectionID sends with the next spare CID of the
//     peer's, in the order given (§9: "Endpoints SHOULD use
//     receiver-provided CIDs in the order they were provided"): for a
//     client that knows it moves to a new network.
//   - Conn.RotateConnectionID sends NewConnectionId(cid_immediate) with a
//     fresh CID of ours, and waits until the peer's records carry it: to
//     stop an observer from following the connection by its CID, or to
//     leave a CID a load balancer no longer routes.
//
// The post-handshake messages are processed by Read (or by these calls
// when no Read is in progress), like every DTLS 1.3 post-handshake
// message.

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
	// maxCIDOps13 bounds the RequestConnectionIDs and RotateConnectionID
	// calls waiting at once; more fail at once.
	maxCIDOps13 = 4
)

var (
	errNoCID13         = errors.New("dtls: no connection IDs: they need DTLS 1.3 with the connection_id extension, and CIDs in the direction asked for")
	errNoSpareCID      = errors.New("dtls: no spare connection ID of the peer's: RequestConnectionIDs first")
	errTooManyCIDOps13 = fmt.Errorf("dtls: %d connection ID updates already waiting", maxCIDOps13)
	errCIDRoom13       = fmt.Errorf("dtls: the peer holds %d connection IDs of ours already", maxIssuedCIDs13)
)

// cidState13 is a connection's DTLS 1.3 CID update state.
type cidState13 struct {
	// spares are the peer's spare CIDs from its NewConnectionId, in the
	// order given, at most maxSpareCIDs13. Changed under the Conn's out
	// lock, which also guards the CID we send.
	spares [][]byte
	// requested: our RequestConnectionId is unfulfilled (the reader's).
	requested bool

	// mu guards ops: the API adds from any goroutine; the reader sends
	// and completes them.
	mu  sync.Mutex
	ops []*cidOp13
	// unsent: an op in ops waits to be sent (checked by Read).
	unsent atomic.Bool
}

// cidOp13 is a RequestConnectionIDs or RotateConnectionID call.
type cidOp13 struct {
	rotate bool
	n      uint8  // request: num_cids
	sent   bool   // the message is out
	cid    []byte // rotate: the CID issued
	done   chan struct{}
	err    error
}

// finish completes op with err, once. Called with cid13.mu held.
func (op *cidOp13) finish(err error) {
	select {
	case <-op.done:
	default:
		op.err = err
		close(op.done)
	}
}

// cidAvailable13 checks what RequestConnectionIDs, RotateConnectionID
// and SwitchConnectionID share: a DTLS 1.3 connection past its
// handshake, with CIDs.
func (c *Conn) cidAvailable13() error {
	if !c.handshakeComplete.Load() {
		return errHandshakeNotComplete
	}
	if c.vers != VersionDTLS13 {
		return errors.New("dtls: connection ID updates need DTLS 1.3")
	}
	if err := c.fatal(); err != nil {
		return err
	}
	if c.closed.Load() {
		return net.ErrClosed
	}
	return nil
}

// RequestConnectionIDs asks the peer for n (1 to 8) spare connection IDs
// with a RequestConnectionId (RFC 9147 §9) and waits, bounded by ctx, for
// its NewConnectionId. It returns how many spare CIDs of the peer's the
// connection holds then (the peer may send fewer than asked for, and at
// most 8 are kept). SwitchConnectionID sends with them; ours does so
// itself when it follows the peer to a new address.
//
// §9: "Implementations SHOULD use a new CID whenever sending on a new
// path, and SHOULD request new CIDs for this purpose if path changes are
// anticipated": a client that may move (a phone between networks, a
// device behind a NAT that rebinds) asks in advance. It needs a CID that
// we send (the peer's ConnectionIDGenerator gave one); one request is out
// at a time (§9), later calls wait for it. A peer may ignore a request
// (§9 lets it), and none may follow an unanswered one: a call then ends
// with ctx, and so do later ones. The answer is taken by Read,
// or by this call when no Read is in progress. The name says what it
// does, as UpdateKeys does; pion/dtls v4 asks only inside Path.Probe,
// quic-go and crypto/tls have no such message.
func (c *Conn) RequestConnectionIDs(ctx context.Context, n int) (int, error) {
	if err := c.cidAvailable13(); err != nil {
		return 0, err
	}
	if n < 1 || n > maxSpareCIDs13 {
		return 0, fmt.Errorf("dtls: RequestConnectionIDs of %d, want 1 to %d", n, maxSpareCIDs13)
	}
	c.out.Lock()
	sending := len(c.rl.writeCID) > 0
	c.out.Unlock()
	if !sending {
		// §9: "Implementations MUST NOT send RequestConnectionId when
		// sending an empty Connection ID".
		return 0, errNoCID13
	}
	if err := c.runCIDOp13(ctx, &cidOp13{n: uint8(n)}); err != nil {
		return 0, err
	}
	c.out.Lock()
	defer c.out.Unlock()
	return len(c.cid13.spares), nil
}

// RotateConnectionID sends the peer a fresh connection ID of ours from
// Config.ConnectionIDGenerator in a NewConnectionId with usage
// cid_immediate (RFC 9147 §9: "one of the new CIDs MUST be used
// immediately for all future records"), and waits, bounded by ctx, until
// an authenticated record of the peer's carries it; from then on our
// older CIDs are refused, and a Listener no longer routes them.
//
// It is for changing the CID an observer could follow the connection by,
// or for leaving a CID that a load balancer no longer routes to us. It
// needs a CID that we receive (our generator gave one), and room: the
// peer holds at most 8 CIDs of ours at once. The wait is taken by Read,
// or by this call when no Read is in progress.
func (c *Conn) RotateConnectionID(ctx context.Context) error {
	if err := c.cidAvailable13(); err != nil {
		return err
	}
	c.out.Lock()
	receiving := len(c.rl.readCID) > 0
	c.out.Unlock()
	if !receiving || c.config.ConnectionIDGenerator == nil {
		// §9: "Implementations which ... have negotiated receiving an
		// empty CID MUST NOT send NewConnectionId".
		return errNoCID13
	}
	return c.runCIDOp13(ctx, &cidOp13{rotate: true})
}

// SwitchConnectionID makes the next spare connection ID the peer gave us
// (RequestConnectionIDs) the one we send in every record from now on,
// and drops the one used so far, in the order the peer gave them (RFC
// 9147 §9: "Endpoints SHOULD use receiver-provided CIDs in the order
// they were provided"). The peer then retires its older CIDs.
//
// §9: "Implementations SHOULD use a new CID whenever sending on a new
// path". The connection does so by itself when it follows its peer to a
// new address; a client whose own address changes (a new network) calls
// this, as only the application knows. It fails when no spare is left.
func (c *Conn) SwitchConnectionID() error {
	if err := c.cidAvailable13(); err != nil {
		return err
	}
	if !c.switchCID13("SwitchConnectionID") {
		return errNoSpareCID
	}
	return nil
}

// switchCID13 sends with the next spare CID, if there is one.
func (c *Conn) switchCID13(why string) bool {
	c.out.Lock()
	if len(c.cid13.spares) == 0 {
		c.out.Unlock()
		return false
	}
	next := c.cid13.spares[0]
	c.cid13.spares = slices.Delete(c.cid13.spares, 0, 1)
	c.rl.writeCID = next
	left := len(c.cid13.spares)
	c.out.Unlock()
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceCIDChanged, Reason: fmt.Sprintf("we send CID %x (%s; %d spares left)", next, why, left)})
	}
	return true
}

// peerMoved13 is called when we follow the peer to a new address: §9's
// new CID on a new path, when we hold a spare.
func (c *Conn) peerMoved13() {
	if c.vers == VersionDTLS13 {
		c.switchCID13("new path")
	}
}

// runCIDOp13 queues op and waits for it, reading when no Read is in
// progress (as RequestClientCertificate does).
func (c *Conn) runCIDOp13(ctx context.Context, op *cidOp13) error {
	op.done = make(chan struct{})
	c.cid13.mu.Lock()
	if len(c.cid13.ops) >= maxCIDOps13 {
		c.cid13.mu.Unlock()
		return errTooManyCIDOps13
	}
	c.cid13.ops = append(c.cid13.ops, op)
	c.cid13.unsent.Store(true)
	c.cid13.mu.Unlock()
	defer c.dropCIDOp13(op)
	for {
		select {
		case <-op.done:
			return op.err
		default:
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.fatal(); err != nil {
			return err
		}
		if c.closed.Load() {
			return net.ErrClosed
		}
		if c.in.TryLock() {
			err := c.pumpRecord(ctx, c.serviceCIDUpdates13)
			c.in.Unlock()
			if cerr := ctx.Err(); cerr != nil && err == cerr {
				err = nil
			}
			if err != nil {
				return err
			}
			continue
		}
		c.io.interrupt() // the Read holding c.in sends it
		t := time.NewTimer(keyUpdateWaitPoll)
		select {
		case <-op.done:
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// dropCIDOp13 forgets op once its caller returns. A request already sent
// stays unfulfilled (cid13.requested) until the peer answers.
func (c *Conn) dropCIDOp13(op *cidOp13) {
	c.cid13.mu.Lock()
	defer c.cid13.mu.Unlock()
	if i := slices.Index(c.cid13.ops, op); i >= 0 {
		c.cid13.ops = slices.Delete(c.cid13.ops, i, i+1)
	}
}

// serviceCIDUpdates13 sends the first CID update that waits, once no
// flight or KeyUpdate of ours waits for an ACK (§9: one NewConnectionId
// outstanding; erratum 8047: nothing after a KeyUpdate in its epoch),
// and, for a request, no earlier one is unfulfilled. Called with c.in
// held.
func (c *Conn) serviceCIDUpdates13() error {
	if !c.cid13.unsent.Load() || c.vers != VersionDTLS13 || !c.handshakeComplete.Load() || c.fatal() != nil {
		return nil
	}
	if c.ku.pending || c.hs.postHandshakeBusy() {
		return nil // sent when that flight is ACKed (handleACK)
	}
	c.cid13.mu.Lock()
	var op *cidOp13
	unsent := 0
	for _, o := range c.cid13.ops {
		if o.sent {
			continue
		}
		unsent++
		if op == nil && (o.rotate || !c.cid13.requested) {
			op = o
		}
	}
	if op != nil {
		op.sent = true
		unsent--
	}
	c.cid13.unsent.Store(unsent > 0)
	c.cid13.mu.Unlock()
	if op == nil {
		return nil
	}
	if op.rotate {
		if c.cidRoom13() <= 0 {
			c.finishCIDOp13(op, errCIDRoom13)
			return nil
		}
		cids, err := c.issueConnectionIDs13(1, cidImmediate)
		if err != nil {
			return err
		}
		if len(cids) == 0 {
			c.finishCIDOp13(op, errors.New("dtls: ConnectionIDGenerator gave no new CID of the negotiated length"))
			return nil
		}
		c.cid13.mu.Lock()
		op.cid = cids[0]
		c.cid13.mu.Unlock()
		return nil
	}
	body, _ := (&requestConnectionIDMsg13{numCIDs: op.n}).marshal()
	c.hs.startPostHandshakeFlight()
	if c.hs.queueMessage(c.rl.writeCur, typeRequestConnectionID, body) == nil {
		return c.fail(alertInternalError, errors.New("dtls: RequestConnectionId not queued"))
	}
	c.cid13.requested = true
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceCIDChanged, Reason: fmt.Sprintf("RequestConnectionId(num_cids %d) sent", op.n)})
	}
	return c.sendFlight(false, "RequestConnectionId")
}

// finishCIDOp13 completes op with err.
func (c *Conn) finishCIDOp13(op *cidOp13, err error) {
	c.cid13.mu.Lock()
	op.finish(err)
	c.cid13.mu.Unlock()
}

// cidRequestFulfilled13 completes our request on the peer's
// NewConnectionId, and lets the next one go.
func (c *Conn) cidRequestFulfilled13() {
	c.cid13.requested = false
	c.cid13.mu.Lock()
	defer c.cid13.mu.Unlock()
	for _, o := range c.cid13.ops {
		if !o.rotate && o.sent {
			o.finish(nil)
		}
		if !o.sent {
			c.cid13.unsent.Store(true)
		}
	}
}

// cidRotated13 completes the RotateConnectionID calls whose CID the peer
// now uses (or one issued after it).
func (c *Conn) cidRotated13() {
	c.cid13.mu.Lock()
	defer c.cid13.mu.Unlock()
	for _, o := range c.cid13.ops {
		if o.rotate && o.cid != nil && !c.rl.issuedCID13(o.cid) {
			o.finish(nil)
		}
	}
}

// handleNewConnectionID13 takes the peer's new CIDs.
func (c *Conn) handleNewConnectionID13(m inMessage) error {
	if len(c.rl.writeCID) == 0 {
		return c.fail(alertUnexpectedMessage, errors.New("dtls: NewConnectionId from a peer that receives no CID"))
	}
	nci := new(newConnectionIDMsg13)
	if err := c.parseHandshakeMsg(m, typeNewConnectionID, nci.unmarshal); err != nil {
		return err
	}
	if nci.empty {
		// An empty CID would turn the CID off, which the connection_id
		// negotiation decides, not an update.
		return c.fail(alertIllegalParameter, errors.New("dtls: empty CID in NewConnectionId"))
	}
	cids := nci.cids
	c.out.Lock()
	if nci.usage == cidImmediate {
		if len(cids) == 0 {
			c.out.Unlock()
			return c.fail(alertIllegalParameter, errors.New("dtls: NewConnectionId(cid_immediate) without a CID"))
		}
		c.rl.writeCID = cids[0]
		cids = cids[1:]
		c.cid13.spares = slices.DeleteFunc(c.cid13.spares, func(s []byte) bool { return string(s) == string(c.rl.writeCID) })
	}
	kept := 0
	for _, cid := range cids {
		if len(c.cid13.spares) == maxSpareCIDs13 {
			break
		}
		if string(cid) != string(c.rl.writeCID) && !slices.ContainsFunc(c.cid13.spares, func(s []byte) bool { return string(s) == string(cid) }) {
			c.cid13.spares = append(c.cid13.spares, cid)
			kept++
		}
	}
	writeCID, spares := c.rl.writeCID, len(c.cid13.spares)
	c.out.Unlock()
	if c.config.Tracer != nil {
		reason := fmt.Sprintf("NewConnectionId(%s, %d CIDs): %d spares kept, %d held", cidUsageName(nci.usage), len(nci.cids), kept, spares)
		if nci.usage == cidImmediate {
			reason += fmt.Sprintf("; we send CID %x", writeCID)
		}
		c.trace(&TraceEvent{Kind: TraceCIDChanged, Reason: reason})
	}
	if c.cid13.requested {
		// An answer to our RequestConnectionId (a peer that sends
		// cid_immediate instead of §9's cid_spare answers it too).
		c.cidRequestFulfilled13()
	}
	return nil
}

// cidUsageName names a ConnectionIdUsage.
func cidUsageName(u uint8) string {
	switch u {
	case cidImmediate:
		return "cid_immediate"
	case cidSpare:
		return "cid_spare"
	}
	return fmt.Sprintf("usage %d", u)
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
	room := c.cidRoom13()
	if room <= 0 {
		return 0, c.fail(alertTooManyCIDsRequested, fmt.Errorf("dtls: the peer asks for more CIDs while it holds %d of ours", maxIssuedCIDs13))
	}
	return min(int(rci.numCIDs), room, maxNewCIDs13), nil
}

// cidRoom13 returns how many more CIDs of ours the peer may hold:
// maxIssuedCIDs13 less the one in use and the spares issued. Called by
// the reader, which alone changes them.
func (c *Conn) cidRoom13() int {
	return maxIssuedCIDs13 - 1 - len(c.rl.readCIDs13)
}

// issueConnectionIDs13 sends a NewConnectionId of usage with up to n
// fresh CIDs of our CID's length, registered with the Listener first so
// that the peer's records with them are routed to us, and returns them:
// cid_spare in answer to RequestConnectionId, cid_immediate for
// RotateConnectionID.
func (c *Conn) issueConnectionIDs13(n int, usage uint8) ([][]byte, error) {
	gen := c.config.ConnectionIDGenerator
	if gen == nil {
		return nil, nil
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
		return nil, nil
	}
	c.out.Lock()
	c.rl.readCIDs13 = append(c.rl.readCIDs13, cids...)
	c.out.Unlock()
	body, err := (&newConnectionIDMsg13{cids: cids, usage: usage}).marshal()
	if err != nil {
		return nil, c.fail(alertInternalError, err)
	}
	c.hs.startPostHandshakeFlight()
	if c.hs.queueMessage(c.rl.writeCur, typeNewConnectionID, body) == nil {
		return nil, c.fail(alertInternalError, errors.New("dtls: NewConnectionId not queued"))
	}
	if c.config.Tracer != nil {
		c.trace(&TraceEvent{Kind: TraceCIDChanged, Reason: fmt.Sprintf("NewConnectionId(%s) sent: %x", cidUsageName(usage), cids)})
	}
	return cids, c.sendFlight(false, "NewConnectionId")
}

// peerUsedCID13 notes the CID of an authenticated 1.3 record: when it is
// one we issued after our current one and comes from the peer's current
// address, the peer has moved on, and every CID of ours issued before it
// is retired.
func (c *Conn) peerUsedCID13(cid []byte) {
	if len(c.rl.readCIDs13) == 0 || string(cid) == string(c.rl.readCID) {
		return
	}
	if p, ok := c.io.(pathIO); ok {
		if _, moved := p.source(); moved {
			// From another address: a probe of a new path (pion's
			// Path.Probe sends RequestConnectionId, then path_challenge
			// with the new CID) while the peer's current path still
			// uses the old CID, or a move not yet followed. The old
			// CIDs retire once the peer's records carry the new one
			// from where we send to.
			return
		}
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
	c.cidRotated13()
}
