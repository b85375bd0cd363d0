// Command coap-server is a CoAP server on dtls-go: go-coap's DTLS server
// on a dtls.Listener, serving the coapdemo resources (/hello, /data,
// /counter) over coaps://.
//
//	coap-server -psk secret                      # TLS_PSK_WITH_AES_128_CCM_8
//	coap-server -cert c.pem -key k.pem [-ca ca.pem]
//	coap-server -rpk key.pem -peer-rpk client.pem  # raw public keys
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/examples/coapdemo"
	"github.com/dtls-go/dtls/examples/coapdtls"
	"github.com/plgd-dev/go-coap/v3/options"
)

func main() {
	var creds coapdemo.Flags
	creds.Register(flag.CommandLine)
	addr := flag.String("addr", ":5684", "UDP address to listen on (5684: coaps)")
	tick := flag.Duration("tick", time.Second, "how often /counter rises and notifies its observers")
	flag.Parse()

	c, err := creds.Credentials()
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := c.ServerConfig()
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	l, err := dtls.Listen("udp", *addr, cfg)
	if err != nil {
		log.Fatal(err)
	}
	app := coapdemo.NewServer()
	go app.Tick(ctx, *tick)
	srv := coapdtls.NewServer(options.WithMux(app.Handler()), options.WithErrors(func(err error) { log.Print(err) }))
	go func() { <-ctx.Done(); srv.Stop() }()
	log.Printf("serving coaps on %v", l.Addr())
	if err := srv.Serve(coapdtls.NewListener(l)); err != nil {
		log.Fatal(err)
	}
}
