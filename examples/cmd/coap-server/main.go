// Command coap-server is a CoAP server on dtls-go: go-coap's DTLS server
// on a dtls.Listener, serving the coapdemo resources (/hello, /data,
// /counter) over coaps:// until interrupted.
//
//	coap-server -psk secret                        # TLS_PSK_WITH_AES_128_CCM_8
//	coap-server -cert c.pem -key k.pem [-ca ca.pem]  # -ca: require client certificates
//	coap-server -rpk key.pem -peer-rpk client.pem    # raw public keys
//	coap-server ... -cid                           # connection IDs
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"

	"github.com/dtls-go/dtls/examples/coapdemo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := coapdemo.RunServer(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if err == flag.ErrHelp {
			os.Exit(2)
		}
		log.Fatal(err)
	}
}
