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
	"fmt"
	"log"
	"os"
	"time"

	"github.com/dtls-go/dtls/examples/coapdemo"
	"github.com/dtls-go/dtls/examples/coapdtls"
	"github.com/plgd-dev/go-coap/v3/options"
)

func main() {
	var creds coapdemo.Flags
	creds.Register(flag.CommandLine)
	addr := flag.String("addr", "localhost:5684", "server's UDP address")
	method := flag.String("m", "get", "method: get or put")
	text := flag.String("e", "", "payload of a put, as text")
	file := flag.String("f", "", "file whose content a put sends")
	n := flag.Int("observe", 0, "with get: observe and print this many notifications")
	timeout := flag.Duration("timeout", 30*time.Second, "give up after this long")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: coap-client [flags] path")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	r := coapdemo.Request{Method: *method, Path: flag.Arg(0), Body: []byte(*text), Observe: *n}
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			log.Fatal(err)
		}
		r.Body = b
	}
	c, err := creds.Credentials()
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := c.ClientConfig()
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cc, err := coapdtls.Dial(ctx, *addr, cfg, options.WithErrors(func(err error) { log.Print(err) }))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	if err := coapdemo.Do(ctx, cc, r, os.Stdout); err != nil {
		log.Fatal(err)
	}
}
