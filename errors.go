package dtls

import (
	"context"
	"errors"
	"net"
)

var errHandshakeNotComplete = errors.New("dtls: handshake not complete")

// errPeerClosedDuringHandshake: the peer's close_notify ended a handshake.
var errPeerClosedDuringHandshake = errors.New("dtls: peer closed the connection during the handshake")

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
	// closed (Close: the peer was told nothing) or shut down (Shutdown:
	// the peer was sent a close_notify).
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

// Errors a failed handshake matches (errors.Is), whatever its message
// says, so that a server can count and log failures by cause: the error
// HandshakeContext returns, and HandshakeOutcome.Err, wrap the one that
// applies. A fatal alert from the peer is an AlertError instead
// (errors.As, or errors.Is(err, AlertError(n)) for one alert).
var (
	// ErrUnknownPSKIdentity: the client offered a PSK identity that
	// Config.PSK knows no key for. By default the server does not tell it
	// (RFC 4279 §2): the handshake goes on as with a wrong key and fails
	// when the client's Finished does not authenticate, and its error
	// matches this as well as the failure it ended with.
	ErrUnknownPSKIdentity = errors.New("dtls: unknown PSK identity")

	// ErrBadCertificate: the peer's certificate chain or raw public key
	// was refused (it did not parse or verify, was not pinned, was of an
	// unsupported type or size, or Config.VerifyPeerCertificate refused
	// it), and the peer was sent one of the certificate alerts.
	ErrBadCertificate = errors.New("dtls: peer certificate refused")

	// ErrHandshakeTimeout: the handshake did not complete in time, for any
	// of the reasons a handshake runs out of time: Config.HandshakeTimeout,
	// a context or read deadline, retransmissions given up, or, on a
	// Listener, no new message from the peer for a quarter of
	// HandshakeTimeout. A deadline's error also matches
	// os.ErrDeadlineExceeded (or context.DeadlineExceeded) as before.
	ErrHandshakeTimeout = errors.New("dtls: handshake timed out")
)

// handshakeError is a failed handshake's error with the cause it matches:
// its message is the original's.
type handshakeError struct {
	err   error
	cause error
}

func (e *handshakeError) Error() string   { return e.err.Error() }
func (e *handshakeError) Unwrap() []error { return []error{e.err, e.cause} }

// classifyHandshakeError wraps err, which ended a handshake after we sent
// the alert sent (0 with sentAny false if none), so that it matches the
// cause in the list above that applies, if one does.
func classifyHandshakeError(err error, sent alert, sentAny bool) error {
	var cause error
	switch {
	case errors.Is(err, ErrUnknownPSKIdentity):
		return err // it says so already, whatever ended the handshake after
	case sentAny && sent == alertUnknownPSKIdentity:
		cause = ErrUnknownPSKIdentity
	case sentAny && isCertificateAlert(sent):
		cause = ErrBadCertificate
	case isTimeout(err) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, errHandshakeStalled) || errors.Is(err, errHandshakeEvicted):
		cause = ErrHandshakeTimeout
	}
	if cause == nil || errors.Is(err, cause) {
		return err
	}
	return &handshakeError{err, cause}
}

// isCertificateAlert reports whether a is an alert RFC 5246 §7.2.2 gives
// for a certificate the sender refused, or RFC 8446 §6.2's
// certificate_required, with which a 1.3 server refuses a client that
// sent none (a 1.2 server sends bad_certificate then).
func isCertificateAlert(a alert) bool {
	switch a {
	case alertBadCertificate, alertUnsupportedCertificate, alertCertificateRevoked,
		alertCertificateExpired, alertCertificateUnknown, alertUnknownCA, alertCertificateRequired:
		return true
	}
	return false
}
