package dtls

import (
	"errors"
	"net"
)

var errHandshakeNotComplete = errors.New("dtls: handshake not complete")

// Errors that Read and Write return once a connection was ended for one of
// these reasons rather than closed by its own side. Each also matches
// net.ErrClosed (errors.Is), so that code written for "the connection is
// gone" keeps working, while code that cares can tell them apart.
var (
	// ErrPeerRestarted: a Listener's peer started a new handshake, with a
	// valid cookie, from the address and port of this connection, which
	// ends it (RFC 6347 §4.2.8): a device rebooted, say.
	ErrPeerRestarted error = &endedError{"dtls: the peer started a new connection from the same address (RFC 6347 §4.2.8)"}

	// ErrListenerClosed: the Listener that accepted the connection was
	// closed.
	ErrListenerClosed error = &endedError{"dtls: listener closed"}

	// ErrIdleTimeout: no record from the peer authenticated for
	// Config.IdleTimeout.
	ErrIdleTimeout error = &endedError{"dtls: idle timeout: nothing from the peer for Config.IdleTimeout"}

	// ErrEvicted: the Listener reached Config.MaxConnections and ended
	// this, its longest-idle connection, to make room for a new one. The
	// peer was sent a close_notify.
	ErrEvicted error = &endedError{"dtls: connection evicted: the listener reached MaxConnections"}
)

// endedError is a reason a connection ended; it is also net.ErrClosed.
type endedError struct{ s string }

func (e *endedError) Error() string        { return e.s }
func (e *endedError) Is(target error) bool { return target == net.ErrClosed }
