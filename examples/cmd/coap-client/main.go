// Command coap-client is a CoAP client on dtls-go: go-coap's client over
// a dtls.Conn. It prints each payload it receives on a line.
//
//	coap-client -psk secret -identity dev1 -addr host:5684 /hello
//	coap-client ... -m put -f firmware.bin /data   # block-wise beyond one datagram
//	coap-client ... -observe 5 /counter            # the answer and 5 notifications
package main

import (
	"context"
	"flag"
	"log"
	"os"

	"github.com/dtls-go/dtls/examples/coapdemo"
)

func main() {
	if err := coapdemo.RunClient(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if err == flag.ErrHelp {
			os.Exit(2)
		}
		log.Fatal(err)
	}
}
