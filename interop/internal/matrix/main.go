// Command matrix renders the interop matrix, INTEROP.md, from the
// `go test -json` output of the interop tests (the root package's
// TestOpenSSL*, TestGnuTLS and the interop module), read from stdin. matrix.sh runs
// the tests and this. It exits 1 if any cell failed.
//
// A cell is a subtest named for its peer, our role and the feature:
//
//	TestOpenSSLServer/<feature>                   OpenSSL, our client
//	TestOpenSSLClient/<feature>                   OpenSSL, our server
//	Test<Peer>/<client|server>/<feature>          GnuTLS, mbedTLS, OpenSSL
//	Test<Group>/<Peer>/<client|server>/<feature>  pion, libcoap
//
// A skipped cell whose reason begins "not yet:" or "n.a.:" prints as that,
// and its reason goes into the notes. Lines "peer-version: PEER: VERSION"
// give the versions, and "interop-note: TEXT" lines become observations.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

type event struct {
	Action string
	Test   string
	Output string
}

// Rows and columns, in display order.
var (
	peers = []struct{ key, name string }{
		{"OpenSSL", "OpenSSL"},
		{"GnuTLS", "GnuTLS"},
		{"mbedTLS", "mbedTLS"},
		{"wolfSSL", "wolfSSL"},
		{"PionV3", "pion/dtls v3"},
		{"PionV4", "pion/dtls v4"},
		{"libcoap-OpenSSL", "libcoap (OpenSSL)"},
		{"libcoap-GnuTLS", "libcoap (GnuTLS)"},
	}
	features = []struct{ key, name string }{
		{"ECDSA-P256", "certificates (ECDSA P-256)"},
		{"RSA", "certificates (RSA 2048)"},
		{"PSK-CCM8", "PSK (AES-128-CCM_8)"},
		{"ClientAuth", "client auth"},
		{"MTU300", "MTU 300"},
		{"RPK", "raw public keys"},
		{"CID", "connection ID"},
		{"SRTP", "use_srtp"},
		{"Resumption", "resumption"},
		{"ALPN", "ALPN"},
		{"RRC", "return routability (RFC 9853, CID rebinding)"},
	}
	// conformanceFeatures are the second table's columns: cases real
	// peers found (interop/conformance_test.go).
	conformanceFeatures = []struct{ key, name string }{
		{"P384", "P-384 certificates"},
		{"Renegotiation", "renegotiation refused"},
		{"FragmentedClientHello", "fragmented ClientHello"},
		{"RPK-resumption", "raw-key resumption"},
	}
	// The DTLS 1.3 table (interop/dtls13_test.go: TestDTLS13/<peer>/<role>/<feature>).
	peers13 = []struct{ key, name string }{
		{"wolfSSL-13", "wolfSSL 5.9"},
		{"PionV4-13", "pion/dtls v4"},
	}
	features13 = []struct{ key, name string }{
		{"ECDSA-P256", "ECDSA P-256"},
		{"RSA", "RSA-PSS (RSA 2048)"},
		{"AES256-GCM", "AES-256-GCM"},
		{"ChaCha20", "ChaCha20-Poly1305"},
		{"AES128-CCM", "AES-128-CCM"},
		{"X25519MLKEM768", "X25519MLKEM768"},
		{"SecP256r1MLKEM768", "SecP256r1MLKEM768"},
		{"HRR", "HelloRetryRequest"},
		{"ClientAuth", "client auth"},
		{"ClientAuth-GetClientCertificate", "client auth (GetClientCertificate)"},
		{"PSK", "PSK (psk_dhe_ke)"},
		{"PSK-psk_ke", "PSK (psk_ke)"},
		{"MTU300", "MTU 300"},
		{"KeyUpdate", "KeyUpdate (the peer's, update_requested)"},
		{"KeyUpdate-ours", "KeyUpdate (ours, update_requested)"},
		{"PostHandshakeAuth", "post-handshake client auth"},
		{"PostHandshakeAuth-GetClientCertificate", "post-handshake client auth (GetClientCertificate)"},
		{"Resume", "resumption (ticket)"},
		{"Resume-3tickets", "3 tickets per connection, each ACKed, resumed"},
		{"CID", "connection ID"},
		{"SRTP", "DTLS-SRTP"},
		{"RPK", "raw public keys"},
		{"RRC", "return routability (RFC 9853, CID rebinding)"},
		{"CIDUpdate", "CID update (RequestConnectionId, NewConnectionId)"},
		{"EarlyData", "0-RTT early data"},
		{"EarlyData-defaults", "0-RTT early data, default groups"},
	}
	roles = []struct{ key, name string }{
		{"client", "our client"},
		{"server", "our server"},
	}
	// OpenSSL's root-package tests name features their own way.
	opensslFeatures = map[string]string{"ECDSA-P256": "ECDSA-P256", "PSK-CCM8": "PSK-CCM8", "ECDSA-P256-MTU300": "MTU300"}
)

type cellKey struct{ peer, role, feature string }

type cell struct {
	status string // pass, FAIL, skip, n.a., not yet
	reason string
	test   string
}

var (
	reasonRE  = regexp.MustCompile(`^\s+\S+\.go:\d+: (not yet|n\.a\.): (.*)$`)
	skipRE    = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)
	versionRE = regexp.MustCompile(`peer-version: ([^:]+): (.*)$`)
	opensslRE = regexp.MustCompile(`using \S*openssl: (.*)$`)
	noteRE    = regexp.MustCompile(`interop-note: (.*)$`)
)

// locate maps a test name to its cell.
func locate(test string) (cellKey, bool) {
	p := strings.Split(test, "/")
	switch {
	case len(p) == 1 && strings.HasPrefix(p[0], "TestOpenSSLServer") && len(p[0]) > len("TestOpenSSLServer"):
		// TestOpenSSLServerSRTP, TestOpenSSLServerResumption: our client.
		return cellKey{"OpenSSL", "client", strings.TrimPrefix(p[0], "TestOpenSSLServer")}, true
	case len(p) == 1 && strings.HasPrefix(p[0], "TestOpenSSLClient") && len(p[0]) > len("TestOpenSSLClient"):
		return cellKey{"OpenSSL", "server", strings.TrimPrefix(p[0], "TestOpenSSLClient")}, true
	case len(p) == 2 && p[0] == "TestOpenSSLServer":
		f, ok := opensslFeatures[p[1]]
		return cellKey{"OpenSSL", "client", f}, ok
	case len(p) == 2 && p[0] == "TestOpenSSLClient":
		f, ok := opensslFeatures[p[1]]
		return cellKey{"OpenSSL", "server", f}, ok
	case len(p) == 3 && (p[1] == "client" || p[1] == "server"):
		peer := strings.TrimPrefix(p[0], "Test")
		// TestOpenSSLMore, TestMbedTLSConformance...: more cells of
		// the same peer.
		for _, suffix := range []string{"More", "Conformance"} {
			if base, ok := strings.CutSuffix(peer, suffix); ok && base != "" {
				peer = base
			}
		}
		return cellKey{canonicalPeer(peer), p[1], p[2]}, true
	case len(p) == 4 && (p[2] == "client" || p[2] == "server"):
		return cellKey{canonicalPeer(p[1]), p[2], p[3]}, true
	}
	return cellKey{}, false
}

// canonicalPeer spells a peer from a test name (TestMbedTLS) as the
// matrix does (mbedTLS).
func canonicalPeer(s string) string {
	for _, p := range peers {
		if strings.EqualFold(p.key, s) {
			return p.key
		}
	}
	return s
}

func main() {
	cells := map[cellKey]*cell{}
	output := map[string][]string{}
	versions := map[string]string{}
	var notes []string
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue // go build noise between streams
		}
		switch ev.Action {
		case "output":
			line := strings.TrimRight(ev.Output, "\n")
			output[ev.Test] = append(output[ev.Test], line)
			if m := versionRE.FindStringSubmatch(line); m != nil {
				versions[m[1]] = m[2]
			}
			if m := opensslRE.FindStringSubmatch(line); m != nil {
				versions["OpenSSL"] = m[1]
			}
			if m := noteRE.FindStringSubmatch(line); m != nil {
				n := fmt.Sprintf("%s (`%s`)", m[1], ev.Test)
				if !slices.Contains(notes, n) {
					notes = append(notes, n)
				}
			}
		case "pass", "fail", "skip":
			k, ok := locate(ev.Test)
			if !ok {
				continue
			}
			c := &cell{status: ev.Action, test: ev.Test}
			if ev.Action == "fail" {
				c.status = "FAIL"
			}
			if ev.Action == "skip" {
				for _, l := range output[ev.Test] {
					if m := reasonRE.FindStringSubmatch(l); m != nil {
						c.status, c.reason = m[1], m[2]
						break
					}
					if m := skipRE.FindStringSubmatch(l); m != nil && c.reason == "" {
						c.reason = m[1]
					}
				}
			}
			cells[k] = c
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "matrix:", err)
		os.Exit(2)
	}
	failed := render(os.Stdout, cells, versions, notes)
	if failed {
		os.Exit(1)
	}
}

// renderTable prints one table of cells, counting them in counts; with
// onlyRun it leaves out peers that have no cell in it.
func renderTable(w io.Writer, cells map[cellKey]*cell, cols []struct{ key, name string }, counts map[string]int, onlyRun bool) (failed bool) {
	return renderPeerTable(w, cells, peers, cols, counts, onlyRun)
}

// renderPeerTable is renderTable for the rows of peerList.
func renderPeerTable(w io.Writer, cells map[cellKey]*cell, peerList, cols []struct{ key, name string }, counts map[string]int, onlyRun bool) (failed bool) {
	fmt.Fprintf(w, "| peer | role |")
	for _, f := range cols {
		fmt.Fprintf(w, " %s |", f.name)
	}
	fmt.Fprintf(w, "\n| --- | --- |%s\n", strings.Repeat(" --- |", len(cols)))
	for _, p := range peerList {
		if onlyRun && !slices.ContainsFunc(cols, func(f struct{ key, name string }) bool {
			return cells[cellKey{p.key, "client", f.key}] != nil || cells[cellKey{p.key, "server", f.key}] != nil
		}) {
			continue
		}
		for _, r := range roles {
			fmt.Fprintf(w, "| %s | %s |", p.name, r.name)
			for _, f := range cols {
				c := cells[cellKey{p.key, r.key, f.key}]
				s := "–"
				if c != nil {
					counts[c.status]++
					switch c.status {
					case "pass":
						s = "**pass**"
					case "FAIL":
						s = "**FAIL**"
						failed = true
					default:
						s = "*" + c.status + "*"
					}
				}
				fmt.Fprintf(w, " %s |", s)
			}
			fmt.Fprintln(w)
		}
	}
	return failed
}

func render(w io.Writer, cells map[cellKey]*cell, versions map[string]string, notes []string) (failed bool) {
	fmt.Fprintf(w, "# Interoperability matrix\n\n")
	fmt.Fprintf(w, "DTLS 1.2, and DTLS 1.3 in a table of its own, between dtls-go and other implementations, %s. Generated by\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(w, "`interop/matrix.sh` from `go test -json` of the root package's\n")
	fmt.Fprintf(w, "`TestOpenSSL*` and `TestGnuTLS` (raw public keys) and of the `interop` module: do not edit by hand.\n\n")
	fmt.Fprintf(w, "In the first table every cell ran DTLS 1.2: our side keeps its default\n")
	fmt.Fprintf(w, "(DTLS 1.3 enabled, so our client offers both versions and falls back, after\n")
	fmt.Fprintf(w, "the peer's HelloVerifyRequest where it sends one, and our server answers\n")
	fmt.Fprintf(w, "a 1.2 ClientHello with 1.2), the peer is 1.2-only or pinned to 1.2 (pion/dtls\n")
	fmt.Fprintf(w, "v4), and each cell checks that our side negotiated DTLS 1.2, except libcoap's\n")
	fmt.Fprintf(w, "(below), whose peers speak only 1.2. The DTLS 1.3 table has the cells that ran 1.3.\n\n")
	fmt.Fprintf(w, "Every cell that runs is a real handshake over loopback UDP followed by\n")
	fmt.Fprintf(w, "application data both ways (an echo, or a CoAP GET and its answer). Both\n")
	fmt.Fprintf(w, "sides are pinned to the feature's suite (ECDHE-ECDSA AES-128-GCM, ECDHE-RSA\n")
	fmt.Fprintf(w, "AES-128-GCM with an RSA-2048 server certificate, or PSK AES-128-CCM_8),\n")
	fmt.Fprintf(w, "except libcoap's certificate and raw public key cells, which take the\n")
	fmt.Fprintf(w, "suite the two defaults agree on. A resumption cell is two connections,\n")
	fmt.Fprintf(w, "the second an abbreviated handshake that both sides report as resumed\n")
	fmt.Fprintf(w, "where the peer can tell; an ALPN cell offers two protocols and checks\n")
	fmt.Fprintf(w, "the one both sides say they agreed on. *our client* means the\n")
	fmt.Fprintf(w, "peer is the server. Cells: **pass**; **FAIL**; *not yet* (dtls-go lacks\n")
	fmt.Fprintf(w, "the feature); *n.a.* (the peer lacks it); *skip* (the peer is not\n")
	fmt.Fprintf(w, "installed, or the cell waits for work not yet merged: the reason is\n")
	fmt.Fprintf(w, "below); – (no test, or the peer's whole suite was skipped).\n\n")

	counts := map[string]int{}
	failed = renderTable(w, cells, features, counts, false)
	fmt.Fprintf(w, "\n### Conformance cases\n\n")
	fmt.Fprintf(w, "Cases other implementations' tools found (interop/conformance_test.go),\n")
	fmt.Fprintf(w, "run with OpenSSL's s_client/s_server, gnutls-cli/gnutls-serv, mbedTLS's own\n")
	fmt.Fprintf(w, "sample programs ssl_client2/ssl_server2 and a small wolfSSL peer.\n")
	fmt.Fprintf(w, "*P-384 certificates*: both sides\n")
	fmt.Fprintf(w, "authenticate with P-384 keys (server certificate and client certificate);\n")
	fmt.Fprintf(w, "DTLS 1.2 lets each sign with any ECDSA hash, and the observations say which\n")
	fmt.Fprintf(w, "it chose. *renegotiation refused*: after the handshake the peer asks to\n")
	fmt.Fprintf(w, "renegotiate (as client a new ClientHello, as server a HelloRequest); we\n")
	fmt.Fprintf(w, "must answer at once with a no_renegotiation warning and retransmit\n")
	fmt.Fprintf(w, "nothing, and the peer must report our refusal. What it does then is its\n")
	fmt.Fprintf(w, "own choice (the observations say): go on, end the connection, or retry.\n")
	fmt.Fprintf(w, "*fragmented ClientHello*: our server gets the peer's ClientHello split over\n")
	fmt.Fprintf(w, "datagrams at a small MTU; our client sends its own split at MTU 128. A relay\n")
	fmt.Fprintf(w, "between the two sides checks that the ClientHello really was fragmented.\n")
	fmt.Fprintf(w, "*raw-key resumption*: a session authenticated by raw public keys (RFC 7250),\n")
	fmt.Fprintf(w, "client key included, resumes by ticket and by session ID, and the resumed\n")
	fmt.Fprintf(w, "connection still reports the peer's key; our client pins the server's key\n")
	fmt.Fprintf(w, "and sets no ServerName.\n\n")
	if renderTable(w, cells, conformanceFeatures, counts, true) {
		failed = true
	}
	fmt.Fprintf(w, "\n### DTLS 1.3\n\n")
	fmt.Fprintf(w, "Our client and our Listener with MaxVersion VersionDTLS13, the default (interop/dtls13_test.go);\n")
	fmt.Fprintf(w, "wolfSSL's example programs (built by .ci/wolfssl) and pion/dtls v4 pinned to DTLS 1.3.\n")
	fmt.Fprintf(w, "A cell passes when both sides report DTLS 1.3 and the expected key exchange group, and data\n")
	fmt.Fprintf(w, "went both ways. Our default groups put X25519MLKEM768 first: most cells end in it, through the\n")
	fmt.Fprintf(w, "HelloRetryRequest that the cookie costs (wolfSSL's server, which sends none unless told to,\n")
	fmt.Fprintf(w, "takes our X25519 share). The suite\n")
	fmt.Fprintf(w, "columns pin both sides to it; *HelloRetryRequest*: our server prefers P-384, which\n")
	fmt.Fprintf(w, "the peer's first ClientHello has no share for (wolfSSL's client sends none);\n")
	fmt.Fprintf(w, "*X25519MLKEM768*: the hybrid group, asked for by our server's HelloRetryRequest and\n")
	fmt.Fprintf(w, "answered by our client after one (its first key share is classical); *PSK*: an\n")
	fmt.Fprintf(w, "external PSK, no certificates, with (EC)DHE or (psk_ke: the peer allows only that) without;\n")
	fmt.Fprintf(w, "*0-RTT early data*: a second connection resumes with early data, which the server\n")
	fmt.Fprintf(w, "accepts and gives its application as early (wolfSSL -r -0, its server with -J n; pion's\n")
	fmt.Fprintf(w, "DetachedConn API, its server with WithInsecureSkipVerifyHello), our side with X25519, P-256\n")
	fmt.Fprintf(w, "and P-384: wolfSSL's client resumes a hybrid session with an empty key_share and pion's server\n")
	fmt.Fprintf(w, "asks for the hybrid, either of which forces a HelloRetryRequest; *default groups*: the same\n")
	fmt.Fprintf(w, "where the peer allows it;\n")
	fmt.Fprintf(w, "*CID update*: the client asks for spare CIDs, moves to a new port with one, and a\n")
	fmt.Fprintf(w, "cid_immediate CID follows (interop/cid13_test.go; pion asks through Path.Probe);\n")
	fmt.Fprintf(w, "*GetClientCertificate*: our client answers the request through Config.GetClientCertificate\n")
	fmt.Fprintf(w, "(a client's callback: n.a. for our server); *3 tickets*: our server sends three\n")
	fmt.Fprintf(w, "NewSessionTickets per connection, each ACKed by the peer's client, which then resumes\n")
	fmt.Fprintf(w, "(a peer's server sends one, so our client's side is not shown).\n\n")
	if renderPeerTable(w, cells, peers13, features13, counts, false) {
		failed = true
	}
	fmt.Fprintf(w, "\n%d pass, %d fail, %d not yet, %d n.a., %d skipped.\n",
		counts["pass"], counts["FAIL"], counts["not yet"], counts["n.a."], counts["skip"])

	fmt.Fprintf(w, "\n## Peer versions\n\n")
	for _, p := range slices.Concat(peers, peers13) {
		v := versions[p.key]
		if v == "" {
			v = "not run"
		}
		fmt.Fprintf(w, "- %s: %s\n", p.name, v)
	}

	allFeatures := slices.Concat(features, conformanceFeatures, features13)
	fmt.Fprintf(w, "\n## Why a cell does not run\n\n")
	for _, p := range slices.Concat(peers, peers13) {
		for _, f := range allFeatures {
			var why, status string
			var rs []string
			for _, r := range roles {
				c := cells[cellKey{p.key, r.key, f.key}]
				if c == nil || c.status == "pass" || c.status == "FAIL" {
					continue
				}
				if why != "" && why != c.reason {
					fmt.Fprintf(w, "- %s, %s, %s (%s): %s\n", p.name, f.name, strings.Join(rs, " and "), status, why)
					rs = nil
				}
				why, status = c.reason, c.status
				rs = append(rs, r.name)
			}
			if why != "" {
				fmt.Fprintf(w, "- %s, %s, %s (%s): %s\n", p.name, f.name, strings.Join(rs, " and "), status, why)
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\n## Observations\n\n")
		for _, n := range notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
	if failed {
		fmt.Fprintf(w, "\n## Failures\n\n")
		for _, p := range slices.Concat(peers, peers13) {
			for _, r := range roles {
				for _, f := range allFeatures {
					if c := cells[cellKey{p.key, r.key, f.key}]; c != nil && c.status == "FAIL" {
						fmt.Fprintf(w, "- `%s`\n", c.test)
					}
				}
			}
		}
	}
	return failed
}
