// Package capture records what a DTLS Conn or Listener really sends and
// receives as a pcapng file that Wireshark and tshark decode and decrypt
// with no option, and reads pcap and pcapng files back for analysis.
//
// A Writer turns each datagram into a raw IPv4 or IPv6 packet carrying a
// UDP header, with the true addresses and ports and correct checksums, and
// embeds the NSS key log in Decryption Secrets Blocks:
//
//	w := capture.NewWriter(f)
//	defer w.Close()
//	config.KeyLogWriter = w.KeyLogWriter()
//	config.Tracer = w.Tracer(nil)
//
// ReadFile goes the other way: it returns the UDP datagrams of a capture
// and the key log lines found in its Decryption Secrets Blocks. Scan does
// the same one datagram at a time, in memory that does not grow with the
// file.
//
// The package imports only the standard library and package dtls.
package capture
