// Package coapdemo is the CoAP application behind the example server and
// client (cmd/coap-server, cmd/coap-client): a few resources that show
// what a device and its gateway exchange, and the dtls.Config each side
// builds from its credentials (PSK, raw public keys or certificates).
//
// Resources:
//
//	/hello    GET: 2.05 "hello from dtls-go"
//	/data     GET: the stored bytes; PUT: stores the body (up to MaxData
//	          bytes: a body larger than one datagram travels block-wise,
//	          RFC 7959) and notifies the observers of /data
//	/counter  GET, observable (RFC 7641): a number that Notify raises
package coapdemo

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
)

// Hello is /hello's answer.
const Hello = "hello from dtls-go"

// MaxData bounds what a PUT to /data may store: a larger body gets 4.13
// Request Entity Too Large (RFC 7252 §5.9.2.9).
const MaxData = 64 << 10

// MaxObservers bounds the observations the server keeps, over all
// connections and resources; a registration beyond it is answered as a
// plain GET (RFC 7641 §4.1 lets a server do so).
const MaxObservers = 1024

// Server holds the resources' state. The zero value is not usable: use
// NewServer.
type Server struct {
	mu        sync.Mutex
	data      []byte
	counter   uint64
	observers map[observerKey]*observer
}

type observerKey struct {
	conn  mux.Conn
	token string
	path  string
}

type observer struct {
	seq  uint32 // the Observe option of the last notification (RFC 7641 §3.4)
	busy bool   // a notification is on its way
}

// NewServer returns a server whose /data holds nothing and /counter 0.
func NewServer() *Server {
	return &Server{observers: map[observerKey]*observer{}}
}

// Handler returns the router for go-coap's server.
func (s *Server) Handler() mux.Handler {
	r := mux.NewRouter()
	r.Handle("/hello", mux.HandlerFunc(s.hello))
	r.Handle("/data", mux.HandlerFunc(s.dataHandler))
	r.Handle("/counter", mux.HandlerFunc(s.counterHandler))
	return r
}

// Data returns a copy of what /data holds.
func (s *Server) Data() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.data)
}

// Observers reports how many observations are registered.
func (s *Server) Observers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.observers)
}

func (s *Server) hello(w mux.ResponseWriter, r *mux.Message) {
	if r.Code() != codes.GET {
		w.SetResponse(codes.MethodNotAllowed, message.TextPlain, nil)
		return
	}
	w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte(Hello)))
}

func (s *Server) dataHandler(w mux.ResponseWriter, r *mux.Message) {
	switch r.Code() {
	case codes.GET:
		s.mu.Lock()
		body := bytes.Clone(s.data)
		s.mu.Unlock()
		w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(body))
		s.observe(w, r, "/data")
	case codes.PUT:
		var body []byte
		if r.Body() != nil {
			var buf bytes.Buffer
			n, err := buf.ReadFrom(r.Body())
			if err != nil {
				w.SetResponse(codes.BadRequest, message.TextPlain, nil)
				return
			}
			if n > MaxData {
				w.SetResponse(codes.RequestEntityTooLarge, message.TextPlain, nil)
				return
			}
			body = buf.Bytes()
		}
		s.mu.Lock()
		s.data = body
		s.mu.Unlock()
		w.SetResponse(codes.Changed, message.TextPlain, nil)
		go s.notify("/data", body, message.AppOctets)
	default:
		w.SetResponse(codes.MethodNotAllowed, message.TextPlain, nil)
	}
}

func (s *Server) counterHandler(w mux.ResponseWriter, r *mux.Message) {
	if r.Code() != codes.GET {
		w.SetResponse(codes.MethodNotAllowed, message.TextPlain, nil)
		return
	}
	s.mu.Lock()
	v := s.counter
	s.mu.Unlock()
	w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader(strconv.AppendUint(nil, v, 10)))
	s.observe(w, r, "/counter")
}

// observe registers or deregisters an observation for a GET (RFC 7641
// §3.1, §3.6), after the response was set: a registration gets Observe 0
// in it.
func (s *Server) observe(w mux.ResponseWriter, r *mux.Message, path string) {
	obs, err := r.Options().Observe()
	if err != nil {
		return // a plain GET
	}
	k := observerKey{conn: w.Conn(), token: string(r.Token()), path: path}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case obs == 1:
		delete(s.observers, k)
	case obs == 0 && len(s.observers) < MaxObservers:
		if _, ok := s.observers[k]; !ok {
			s.observers[k] = &observer{}
			w.Conn().AddOnClose(func() { s.forgetConn(k.conn) })
		}
		w.Message().SetObserve(0)
	}
}

func (s *Server) forgetConn(c mux.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.observers {
		if k.conn == c {
			delete(s.observers, k)
		}
	}
}

// Notify raises /counter by one and notifies its observers.
func (s *Server) Notify() {
	s.mu.Lock()
	s.counter++
	v := s.counter
	s.mu.Unlock()
	s.notify("/counter", strconv.AppendUint(nil, v, 10), message.TextPlain)
}

// Tick calls Notify every interval until ctx ends.
func (s *Server) Tick(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Notify()
		}
	}
}

// notify sends body to every observer of path, each in its own
// goroutine: a confirmable notification waits for its ACK, and a peer that
// went away must not hold up the others. An observer whose last
// notification is still unacknowledged is skipped: only the newest state
// matters (RFC 7641 §4.5.2), and so at most one goroutine runs per
// observer. An observer whose notification fails is forgotten.
func (s *Server) notify(path string, body []byte, cf message.MediaType) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, o := range s.observers {
		if k.path != path || o.busy {
			continue
		}
		// 24 bits on the wire, compared in serial number arithmetic
		// (RFC 7641 §3.4): wrapping is fine.
		o.seq = (o.seq + 1) & 0xffffff
		o.busy = true
		go func(k observerKey, o *observer, seq uint32) {
			err := sendNotification(k, seq, body, cf)
			s.mu.Lock()
			defer s.mu.Unlock()
			o.busy = false
			if err != nil && s.observers[k] == o {
				delete(s.observers, k)
			}
		}(k, o, o.seq)
	}
}

func sendNotification(k observerKey, seq uint32, body []byte, cf message.MediaType) error {
	cc := k.conn
	m := cc.AcquireMessage(cc.Context())
	defer cc.ReleaseMessage(m)
	m.SetCode(codes.Content)
	m.SetToken([]byte(k.token))
	m.SetContentFormat(cf)
	m.SetObserve(seq)
	m.SetBody(bytes.NewReader(body))
	if err := cc.WriteMessage(m); err != nil {
		return fmt.Errorf("coapdemo: notify %s: %w", k.path, err)
	}
	return nil
}
