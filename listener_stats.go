package dtls

import (
	"net/netip"
	"sync/atomic"
)

// listenerDrop says why a Listener discarded a datagram before any
// connection took it. Each is counted in ListenerStats.Dropped and traced
// as a TraceDatagramDropped event.
type listenerDrop uint8

const (
	dropQueueFull       listenerDrop = iota // its connection's queue held MaxQueuedDatagrams
	dropQueueBytes                          // its connection's queue held MaxQueuedBytes
	dropConnClosed                          // its connection was closing
	dropHandshakeLimit                      // MaxHandshakes in progress, none of them stalled
	dropSourceLimit                         // MaxHandshakesPerSource in progress from its source, none stalled
	dropUnknownPeer                         // not a ClientHello, from an address without a connection
	dropBadHello                            // an epoch-0 handshake record that is no parseable ClientHello or fragment of one
	dropNoAmplification                     // a HelloVerifyRequest would have been larger than the ClientHello
	dropListenerClosed                      // the Listener was closing
	dropHelloIncomplete                     // a fragmented ClientHello given up before it was whole (pool full, or expired); once per message
	dropAddressTaken                        // a cookie-verified ClientHello whose address another socket's reader gave a connection at the same moment
	numListenerDrops
)

var listenerDropNames = [numListenerDrops]string{
	dropQueueFull:       "queue full",
	dropQueueBytes:      "queue bytes full",
	dropConnClosed:      "connection closed",
	dropHandshakeLimit:  "handshake limit",
	dropSourceLimit:     "handshake limit per source",
	dropUnknownPeer:     "unknown peer",
	dropBadHello:        "bad hello",
	dropNoAmplification: "hello too short to answer",
	dropListenerClosed:  "listener closed",
	dropHelloIncomplete: "incomplete hello",
	dropAddressTaken:    "address taken",
}

func (r listenerDrop) String() string {
	if int(r) < len(listenerDropNames) {
		return listenerDropNames[r]
	}
	return "unknown"
}

// ListenerStats is a snapshot of a Listener's counters since it started.
type ListenerStats struct {
	// Dropped counts the datagrams the Listener discarded before any
	// connection took them, by reason: "queue full", "queue bytes full",
	// "connection closed", "handshake limit", "handshake limit per
	// source", "unknown peer", "bad hello", "hello too short to
	// answer", "listener closed", "incomplete hello" (a fragmented
	// ClientHello given up before it was whole: one count per message),
	// "address taken" (a cookie-verified ClientHello whose address got a
	// connection through another of the Listener's sockets at the same
	// moment).
	// Records a connection discards are in its Conn.Stats.
	Dropped map[string]uint64

	HandshakesStarted   uint64 // cookie-verified ClientHellos that got a connection
	HandshakesCompleted uint64
	HandshakesFailed    uint64 // ended without completing, for any reason (the next two included)
	// HandshakesStalled counts handshakes ended because their peer sent
	// no new handshake message for a quarter of Config.HandshakeTimeout
	// (15 s by default).
	HandshakesStalled uint64
	// HandshakesEvicted counts stalled handshakes (no new message for at
	// least 1 s) ended to give their slot to a new peer when
	// MaxHandshakes or MaxHandshakesPerSource were reached.
	HandshakesEvicted uint64
	// Handshaking is the handshake slots taken now: handshakes in
	// progress, and completed ones waiting for room in a full Accept
	// backlog.
	Handshaking int

	Connections  int    // established connections now, accepted or waiting for Accept
	IdleTimeouts uint64 // connections ended by Config.IdleTimeout
	Evicted      uint64 // connections ended, longest-idle first, to stay within Config.MaxConnections

	// ReceiveBufferSize is the socket receive buffer the kernel granted
	// when the Listener asked for Config.ReceiveBufferSize, in the same
	// units (Linux reports twice the size, its bookkeeping included:
	// this is half that). Less than asked means the kernel capped it
	// (net.core.rmem_max on Linux). 0 if the socket does not say.
	ReceiveBufferSize int
	// ReceiveBufferCapped says the kernel granted less than asked.
	ReceiveBufferCapped bool
	// Sockets is the number of sockets the Listener reads, each with
	// its own goroutine (Config.ListenerSockets).
	Sockets int

	// BacklogFull counts connections closed, with a close_notify, after
	// their handshake because Config.AcceptBacklog connections were
	// waiting for Accept and none was taken within 1 s.
	BacklogFull uint64

	// MovesRefused counts authenticated records that would have moved a
	// peer (RFC 9146 §6) to an address another live connection holds:
	// the peer moved, the other connection kept its address.
	MovesRefused uint64
}

// listenerCounters are the atomics behind ListenerStats.
type listenerCounters struct {
	drops               [numListenerDrops]atomic.Uint64
	handshakesStarted   atomic.Uint64
	handshakesCompleted atomic.Uint64
	handshakesFailed    atomic.Uint64
	movesRefused        atomic.Uint64
	backlogFull         atomic.Uint64
	handshakesStalled   atomic.Uint64
	handshakesEvicted   atomic.Uint64
	idleTimeouts        atomic.Uint64
	evicted             atomic.Uint64
}

// Stats returns the Listener's counters.
func (l *Listener) Stats() ListenerStats {
	s := ListenerStats{
		Dropped:             make(map[string]uint64),
		HandshakesStarted:   l.stats.handshakesStarted.Load(),
		HandshakesCompleted: l.stats.handshakesCompleted.Load(),
		HandshakesFailed:    l.stats.handshakesFailed.Load(),
		MovesRefused:        l.stats.movesRefused.Load(),
		ReceiveBufferSize:   l.rcvbuf,
		ReceiveBufferCapped: l.rcvbufCapped,
		Sockets:             len(l.socks),
		BacklogFull:         l.stats.backlogFull.Load(),
		HandshakesStalled:   l.stats.handshakesStalled.Load(),
		HandshakesEvicted:   l.stats.handshakesEvicted.Load(),
		IdleTimeouts:        l.stats.idleTimeouts.Load(),
		Evicted:             l.stats.evicted.Load(),
	}
	l.mu.Lock()
	s.Handshaking = len(l.handshakes)
	s.Connections = len(l.conns)
	l.mu.Unlock()
	for i := range l.stats.drops {
		if n := l.stats.drops[i].Load(); n > 0 {
			s.Dropped[listenerDrop(i).String()] = n
		}
	}
	return s
}

// drop counts a discarded datagram of n bytes from the address from, and
// traces it. Without a Tracer it costs one atomic add.
func (l *Listener) drop(r listenerDrop, from netip.AddrPort, n int) {
	l.stats.drops[r].Add(1)
	if l.config.Tracer != nil {
		l.traceEvent(TraceDatagramDropped, from, n, r.String())
	}
}

// traceEvent reports a Listener event that no Conn sees. Callers check
// for a Tracer first, so that the event is allocated only when traced.
func (l *Listener) traceEvent(kind TraceKind, remote netip.AddrPort, n int, reason string) {
	ev := TraceEvent{Kind: kind, Time: l.config.time(), Local: addrPort(l.pc.LocalAddr()), Remote: remote, Length: n, Reason: reason}
	l.config.Tracer(&ev)
}
