//go:build ignore

// record_openssl_clienthello records the ClientHello that
// `openssl s_client -dtls1_2` sends, for TestOpenSSLClientHello.
//
//	go run testdata/record_openssl_clienthello.go > testdata/openssl_clienthello.bin
//
// It listens on a loopback UDP port, starts s_client against it, takes the
// first datagram, checks that it is one record holding one unfragmented
// ClientHello, and writes the body after the 12-byte handshake header.
package main

import (
	"encoding/binary"
	"log"
	"net"
	"os"
	"os/exec"
	"time"
)

func main() {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()

	cmd := exec.Command("openssl", "s_client", "-dtls1_2",
		"-connect", pc.LocalAddr().String(), "-servername", "example.com",
		"-alpn", "h2,http/1.1", "-use_srtp", "SRTP_AES128_CM_SHA1_80")
	cmd.Stdin, _ = os.Open(os.DevNull)
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer cmd.Process.Kill()

	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<16)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		log.Fatal(err)
	}
	d := buf[:n]
	log.Printf("openssl version: %s", must(exec.Command("openssl", "version").Output()))
	// Record header: type(1) version(2) epoch(2) seq(6) length(2).
	if len(d) < 13+12 || d[0] != 22 {
		log.Fatalf("not a handshake record: % x", d)
	}
	recLen := int(binary.BigEndian.Uint16(d[11:13]))
	if 13+recLen != len(d) {
		log.Fatalf("datagram holds more than one record")
	}
	hs := d[13:]
	u24 := func(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }
	length, fragOff, fragLen := u24(hs[1:4]), u24(hs[6:9]), u24(hs[9:12])
	if hs[0] != 1 || fragOff != 0 || fragLen != length || 12+length != len(hs) {
		log.Fatalf("not one unfragmented ClientHello: % x", hs[:12])
	}
	os.Stdout.Write(hs[12:])
}

func must(b []byte, err error) []byte {
	if err != nil {
		log.Fatal(err)
	}
	return b
}
