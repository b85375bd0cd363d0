package dtls

import "errors"

var (
	errHandshakeNotComplete = errors.New("dtls: handshake not complete")
	errClosed               = errors.New("dtls: use of closed connection")
)
