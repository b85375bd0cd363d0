package coapdemo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/examples/coapdtls"
	"github.com/plgd-dev/go-coap/v3/options"
)

// RunServer is cmd/coap-server: it parses args (without the program
// name), serves the resources on a dtls.Listener until ctx ends, and
// logs to stderr. ready, if not nil, gets the address once it listens.
func RunServer(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr)) error {
	fs := flag.NewFlagSet("coap-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var creds Flags
	creds.Register(fs)
	addr := fs.String("addr", ":5684", "UDP address to listen on (5684: coaps)")
	tick := fs.Duration("tick", time.Second, "how often /counter rises and notifies its observers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("coap-server: unexpected arguments %q", fs.Args())
	}
	c, err := creds.Credentials()
	if err != nil {
		return err
	}
	cfg, err := c.ServerConfig()
	if err != nil {
		return err
	}
	logger := log.New(stderr, "coap-server: ", log.LstdFlags)
	l, err := dtls.Listen("udp", *addr, cfg)
	if err != nil {
		return err
	}
	app := NewServer()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go app.Tick(ctx, *tick)
	srv := coapdtls.NewServer(options.WithMux(app.Handler()), options.WithErrors(func(err error) { logger.Print(err) }))
	stop := context.AfterFunc(ctx, srv.Stop)
	defer stop()
	logger.Printf("serving coaps on %v", l.Addr())
	if ready != nil {
		ready(l.Addr())
	}
	return srv.Serve(coapdtls.NewListener(l))
}

// RunClient is cmd/coap-client: it parses args (without the program
// name), sends one request and writes each payload it gets to stdout.
func RunClient(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("coap-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var creds Flags
	creds.Register(fs)
	addr := fs.String("addr", "localhost:5684", "server's UDP address")
	method := fs.String("m", "get", "method: get or put")
	text := fs.String("e", "", "payload of a put, as text")
	file := fs.String("f", "", "file whose content a put sends")
	n := fs.Int("observe", 0, "with get: observe and print this many notifications")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: coap-client [flags] path")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("coap-client: want one path")
	}
	if *method != "get" && *method != "put" {
		return fmt.Errorf("coap-client: unknown method %q", *method)
	}
	r := Request{Method: *method, Path: fs.Arg(0), Body: []byte(*text), Observe: *n}
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		r.Body = b
	}
	c, err := creds.Credentials()
	if err != nil {
		return err
	}
	cfg, err := c.ClientConfig()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	logger := log.New(stderr, "coap-client: ", log.LstdFlags)
	cc, err := coapdtls.Dial(ctx, *addr, cfg, options.WithErrors(func(err error) { logger.Print(err) }))
	if err != nil {
		return err
	}
	defer cc.Close()
	return Do(ctx, cc, r, stdout)
}
