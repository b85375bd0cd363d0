package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"output","Test":"TestLibCoAP/libcoap-GnuTLS","Output":"    libcoap_test.go:150: peer-version: libcoap-GnuTLS: coap-client-gnutls v4.3.1\n"}`,
		`{"Action":"pass","Test":"TestLibCoAP/libcoap-GnuTLS/server/PSK-CCM8/GET"}`,
		`{"Action":"fail","Test":"TestLibCoAP/libcoap-GnuTLS/server/PSK-CCM8/Observe"}`,
		`{"Action":"fail","Test":"TestLibCoAP/libcoap-GnuTLS/server/PSK-CCM8"}`,
		`{"Action":"output","Test":"TestLibCoAP/libcoap-OpenSSL/client/RPK","Output":"    libcoap_test.go:160: n.a.: libcoap has no raw public key support on OpenSSL\n"}`,
		`{"Action":"skip","Test":"TestLibCoAP/libcoap-OpenSSL/client/RPK"}`,
		`{"Action":"pass","Test":"TestDeviceReboot/NewPort/CID"}`,
		`not json: build noise`,
	}, "\n")
	cells, versions, err := read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if !render(&out, cells, versions) {
		t.Error("render did not report the failed cell")
	}
	s := out.String()
	for _, want := range []string{
		"| libcoap (GnuTLS) | our server | PSK (AES-128-CCM_8) | **pass** | – | **FAIL** | – |",
		"| libcoap (OpenSSL) | our client | raw public keys | *n.a.* | *n.a.* | *n.a.* | *n.a.* |",
		"| reboot, new port, CID | **pass** |",
		"libcoap-GnuTLS: coap-client-gnutls v4.3.1",
		"- libcoap (OpenSSL), our client, raw public keys (n.a.): libcoap has no raw public key support on OpenSSL",
		"- `TestLibCoAP/libcoap-GnuTLS/server/PSK-CCM8/Observe`",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "- `TestLibCoAP/libcoap-GnuTLS/server/PSK-CCM8`\n") {
		t.Error("the failure list names a parent of a failed subtest")
	}
}
