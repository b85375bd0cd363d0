package coapdtls_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/dtls-go/dtls/examples/coapdtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
)

// A CoAP server (go-coap's, on a dtls.Listener) that greets each device by
// its PSK identity, and a client that asks it. The server part is the
// README's "Using dtls-go with CoAP"; TestREADME keeps the two the same.
func ExampleNewListener() {
	// README begin
	psk := func(identity []byte) ([]byte, error) { return []byte("sixteen byte key"), nil }
	l, err := dtls.Listen("udp", "127.0.0.1:0", &dtls.Config{
		PSK:          psk,
		CipherSuites: []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8}, // CoAP's PSK suite (RFC 7252 §9.1.3.1)
	})
	if err != nil {
		log.Fatal(err)
	}
	r := mux.NewRouter()
	r.Handle("/hello", mux.HandlerFunc(func(w mux.ResponseWriter, req *mux.Message) {
		device := w.Conn().NetConn().(*dtls.Conn).ConnectionState().PSKIdentity
		w.SetResponse(codes.Content, message.TextPlain, strings.NewReader("hello, "+string(device)))
	}))
	srv := coapdtls.NewServer(options.WithMux(r))
	go srv.Serve(coapdtls.NewListener(l))
	defer srv.Stop()
	// README end

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := coapdtls.Dial(ctx, l.Addr().String(), &dtls.Config{
		PSK:          psk,
		PSKIdentity:  []byte("device-42"),
		CipherSuites: []uint16{dtls.TLS_PSK_WITH_AES_128_CCM_8},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	resp, err := cc.Get(ctx, "/hello")
	if err != nil {
		log.Fatal(err)
	}
	body, err := resp.ReadBody()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Code(), string(body))
	// Output: Content hello, device-42
}
