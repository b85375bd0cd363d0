package coapdemo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
)

// MaxNotifications bounds Request.Observe.
const MaxNotifications = 1000

// Request is what cmd/coap-client asks a server.
type Request struct {
	Method  string // "get" or "put"
	Path    string
	Body    []byte // for put
	Observe int    // with get: also wait for this many notifications (RFC 7641)
}

// Do sends r on cc and writes each payload it gets back (the response,
// then the notifications) to out, one per line. It returns an error for a
// response other than 2.xx. A block-wise body (RFC 7959) arrives whole:
// go-coap reassembles it.
func Do(ctx context.Context, cc mux.Conn, r Request, out io.Writer) error {
	switch r.Method {
	case "get":
		if r.Observe > 0 {
			return observe(ctx, cc, r, out)
		}
		resp, err := cc.Get(ctx, r.Path)
		if err != nil {
			return err
		}
		return printResponse(resp, out)
	case "put":
		resp, err := cc.Put(ctx, r.Path, message.AppOctets, bytes.NewReader(r.Body))
		if err != nil {
			return err
		}
		return printResponse(resp, out)
	}
	return fmt.Errorf("coapdemo: unknown method %q", r.Method)
}

func printResponse(resp *pool.Message, out io.Writer) error {
	body, err := readBody(resp)
	if err != nil {
		return err
	}
	if resp.Code() < codes.Created || resp.Code() > codes.Continue {
		return fmt.Errorf("coapdemo: %v: %q", resp.Code(), body)
	}
	_, err = fmt.Fprintf(out, "%s\n", body)
	return err
}

func readBody(m *pool.Message) ([]byte, error) {
	if m.Body() == nil {
		return nil, nil
	}
	return m.ReadBody()
}

// observe registers, prints the first answer and r.Observe notifications,
// then deregisters.
func observe(ctx context.Context, cc mux.Conn, r Request, out io.Writer) error {
	if r.Observe > MaxNotifications {
		return fmt.Errorf("coapdemo: at most %d notifications", MaxNotifications)
	}
	got := make(chan []byte, r.Observe+1)
	fail := make(chan error, 1)
	obs, err := cc.Observe(ctx, r.Path, func(n *pool.Message) {
		body, err := readBody(n)
		if err == nil && (n.Code() < codes.Created || n.Code() > codes.Continue) {
			err = fmt.Errorf("coapdemo: %v: %q", n.Code(), body)
		}
		if err != nil {
			select {
			case fail <- err:
			default:
			}
			return
		}
		select {
		case got <- body:
		default: // more than asked for: the count is reached anyway
		}
	})
	if err != nil {
		return err
	}
	defer obs.Cancel(context.WithoutCancel(ctx))
	for i := 0; i <= r.Observe; i++ {
		select {
		case b := <-got:
			if _, err := fmt.Fprintf(out, "%s\n", b); err != nil {
				return err
			}
		case err := <-fail:
			return err
		case <-ctx.Done():
			return fmt.Errorf("coapdemo: %d of %d notifications: %w", max(i-1, 0), r.Observe, ctx.Err())
		case <-cc.Done():
			return errors.New("coapdemo: the connection ended while observing")
		}
	}
	return nil
}
