package dtls

import "errors"

var errHandshakeNotComplete = errors.New("dtls: handshake not complete")
