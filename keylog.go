package dtls

import (
	"encoding/hex"
	"io"
	"sync"
)

// keyLogLabel is the NSS key log label of a TLS 1.2 (and so DTLS 1.2)
// master secret. Wireshark decrypts DTLS 1.2 with CLIENT_RANDOM lines
// exactly as it does TLS 1.2.
const keyLogLabel = "CLIENT_RANDOM"

// keyLogMutex serializes writes to every Config.KeyLogWriter, so that lines
// from concurrent handshakes sharing one file do not interleave. Key logging
// is a debugging aid, so one global mutex is enough (as in crypto/tls).
var keyLogMutex sync.Mutex

// writeKeyLog writes one line in the NSS key log format,
//
//	CLIENT_RANDOM <client_random hex> <master_secret hex>\n
//
// with a single Write call, so that a writer shared with other programs or
// connections sees whole lines.
func writeKeyLog(w io.Writer, clientRandom, masterSecret []byte) error {
	line := make([]byte, 0, len(keyLogLabel)+1+2*len(clientRandom)+1+2*len(masterSecret)+1)
	line = append(line, keyLogLabel...)
	line = append(line, ' ')
	line = hex.AppendEncode(line, clientRandom)
	line = append(line, ' ')
	line = hex.AppendEncode(line, masterSecret)
	line = append(line, '\n')

	keyLogMutex.Lock()
	defer keyLogMutex.Unlock()
	_, err := w.Write(line)
	return err
}
