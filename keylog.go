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
	return writeKeyLogLine(w, keyLogLabel, clientRandom, masterSecret)
}

// The NSS key log labels of the (D)TLS 1.3 secrets: Wireshark's and our
// analyzer's names for them.
const (
	keyLogClientHandshake = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
	keyLogServerHandshake = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
	keyLogClientTraffic   = "CLIENT_TRAFFIC_SECRET_0"
	keyLogServerTraffic   = "SERVER_TRAFFIC_SECRET_0"
	keyLogExporter        = "EXPORTER_SECRET"
)

// logSecret13 writes a DTLS 1.3 secret to Config.KeyLogWriter, if any. A
// failing writer does not fail the handshake (see logMasterSecret).
func (c *Conn) logSecret13(label string, clientRandom, secret []byte) {
	if w := c.config.KeyLogWriter; w != nil {
		_ = writeKeyLogLine(w, label, clientRandom, secret)
	}
}

// writeKeyLogLine writes "<label> <client_random hex> <secret hex>\n" in
// one Write.
func writeKeyLogLine(w io.Writer, keyLogLabel string, clientRandom, masterSecret []byte) error {
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
