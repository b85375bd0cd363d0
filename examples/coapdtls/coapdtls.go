// Package coapdtls runs go-coap (github.com/plgd-dev/go-coap/v3) over
// dtls-go: CoAP over DTLS (coaps://, RFC 7252 §9) with the server and
// client of go-coap and the handshake, record layer and Listener of
// dtls-go.
//
// The server side needs only an adapter: go-coap's DTLS server
// (github.com/plgd-dev/go-coap/v3/dtls/server) serves any listener with
// AcceptWithContext(ctx) (net.Conn, error) and Close() error, and
// NewListener gives a *dtls.Listener that method, a thin layer over
// dtls.Listener.AcceptContext.
//
//	l, _ := dtls.Listen("udp", ":5684", cfg)
//	srv := coapdtls.NewServer(options.WithMux(router))
//	srv.Serve(coapdtls.NewListener(l))
//
// The client side: go-coap's dtls.Client and dtls.Dial take a pion
// *dtls.Conn (or pion options) and nothing else, so they cannot run over
// any other DTLS implementation. Everything they assemble is public,
// though (server.NewSession, net.NewConn, client.NewConnWithOpts), and
// Client here assembles the same CoAP connection over any net.Conn that
// carries one CoAP message per Read and Write: a *dtls.Conn.
package coapdtls

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/dtls-go/dtls"
	"github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/monitor/inactivity"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// NewServer returns go-coap's DTLS server (the server does not depend on
// pion: only go-coap's own listener and client do).
func NewServer(opts ...server.Option) *server.Server {
	return server.New(opts...)
}

// Listener adapts a *dtls.Listener to go-coap's server.Listener.
type Listener struct {
	l *dtls.Listener
}

var _ server.Listener = (*Listener)(nil)

// NewListener wraps l. The Listener owns l from then on: Close closes it.
func NewListener(l *dtls.Listener) *Listener {
	return &Listener{l: l}
}

// AcceptWithContext returns the next connection whose handshake completed,
// or an error when ctx ends or the listener is closed. A closed (or shut
// down) listener gives an error that matches io.EOF (go-coap's
// net.ErrListenerIsClosed, which ends Serve) and net.ErrClosed.
func (a *Listener) AcceptWithContext(ctx context.Context) (net.Conn, error) {
	c, err := a.l.AcceptContext(ctx)
	if err != nil && errors.Is(err, net.ErrClosed) {
		err = fmt.Errorf("coapdtls: %w (%w)", coapnet.ErrListenerIsClosed, err)
	}
	return c, err
}

// Close closes the dtls.Listener, which ends its connections without a
// close_notify; call the dtls.Listener's Shutdown first for a graceful
// stop.
func (a *Listener) Close() error {
	return a.l.Close()
}

// Addr is the address the dtls.Listener serves.
func (a *Listener) Addr() net.Addr { return a.l.Addr() }

// Client runs a go-coap client connection over conn, a *dtls.Conn (whose
// handshake may be done or not: the first Read or Write runs it) or any
// net.Conn that carries one datagram per Read and Write. It is go-coap's
// dtls.Client with the pion type taken out. opts are go-coap's UDP client
// options (options.WithMux, options.WithBlockwise, options.WithCloseSocket...).
func Client(conn net.Conn, opts ...udp.Option) *udpclient.Conn {
	cfg := udpclient.DefaultConfig // answers requests from the server with 4.04, as go-coap's DTLS client does
	for _, o := range opts {
		o.UDPClientApply(&cfg)
	}
	// Q-Block (RFC 9177) over DTLS is marked secure as go-coap's own DTLS
	// client does.
	cfg.QBlockwiseSecure = true
	if cfg.Errors == nil {
		cfg.Errors = func(error) {}
	}
	if _, err := cfg.QBlockwiseConfig.Resolve(); err != nil {
		cfg.Errors(err)
	}
	if err := blockwise.ValidateQBlockwiseConfig(cfg.QBlockwiseMode, cfg.BlockwiseEnable); err != nil {
		cfg.Errors(err)
	}
	if cfg.CreateInactivityMonitor == nil {
		cfg.CreateInactivityMonitor = func() udpclient.InactivityMonitor {
			return inactivity.NewNilMonitor[*udpclient.Conn]()
		}
	}
	if cfg.MessagePool == nil {
		cfg.MessagePool = pool.New(0, 0)
	}
	errorsFunc := cfg.Errors
	cfg.Errors = func(err error) {
		if coapnet.IsCancelOrCloseError(err) {
			return // the connection was closed or its context ended
		}
		errorsFunc(fmt.Errorf("coapdtls: %v: %w", conn.RemoteAddr(), err))
	}

	createBlockWise := func(*udpclient.Conn) *blockwise.BlockWise[*udpclient.Conn] { return nil }
	if cfg.BlockwiseEnable {
		createBlockWise = func(cc *udpclient.Conn) *blockwise.BlockWise[*udpclient.Conn] {
			bw := blockwise.New(cc, cfg.BlockwiseTransferTimeout, cfg.Errors,
				func(token message.Token) (*pool.Message, bool) {
					return cc.GetObservationRequest(token)
				})
			bw.SetReceivingMessagesCacheMaxEntries(cfg.BlockwiseReceivingMessagesCacheMaxEntries)
			return bw
		}
	}
	session := server.NewSession(cfg.Ctx, coapnet.NewConn(conn), cfg.MaxMessageSize, cfg.MTU, cfg.CloseSocket)
	cc := udpclient.NewConnWithOpts(session, &cfg,
		udpclient.WithBlockWise(createBlockWise),
		udpclient.WithInactivityMonitor(cfg.CreateInactivityMonitor()),
		udpclient.WithRequestMonitor(cfg.RequestMonitor),
	)
	cfg.PeriodicRunner(func(now time.Time) bool {
		cc.CheckExpirations(now)
		return cc.Context().Err() == nil
	})
	go func() {
		if err := cc.Run(); err != nil {
			cfg.Errors(err)
		}
	}()
	return cc
}

// Dial runs the DTLS handshake with addr (a "host:port" UDP address) and
// returns a go-coap client connection over it. Closing the CoAP connection
// closes the DTLS connection.
func Dial(ctx context.Context, addr string, config *dtls.Config, opts ...udp.Option) (*udpclient.Conn, error) {
	conn, err := dtls.DialContext(ctx, "udp", addr, config)
	if err != nil {
		return nil, err
	}
	return Client(conn, append(opts, options.WithCloseSocket())...), nil
}
