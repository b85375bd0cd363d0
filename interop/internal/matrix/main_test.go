package main

import "testing"

func TestLocate(t *testing.T) {
	for name, want := range map[string]cellKey{
		"TestOpenSSLServer/ECDSA-P256-MTU300":                {"OpenSSL", "client", "MTU300"},
		"TestOpenSSLClient/PSK-CCM8":                         {"OpenSSL", "server", "PSK-CCM8"},
		"TestOpenSSLMore/server/ClientAuth":                  {"OpenSSL", "server", "ClientAuth"},
		"TestMbedTLS/client/MTU300":                          {"mbedTLS", "client", "MTU300"},
		"TestOpenSSLMore/client/RSA":                         {"OpenSSL", "client", "RSA"},
		"TestOpenSSLServerResumption":                        {"OpenSSL", "client", "Resumption"},
		"TestOpenSSLClientSRTP":                              {"OpenSSL", "server", "SRTP"},
		"TestGnuTLS/server/ALPN":                             {"GnuTLS", "server", "ALPN"},
		"TestGnuTLS/server/RPK":                              {"GnuTLS", "server", "RPK"},
		"TestPion/PionV4/client/CID":                         {"PionV4", "client", "CID"},
		"TestLibCoAP/libcoap-GnuTLS/server/PSK-CCM8":         {"libcoap-GnuTLS", "server", "PSK-CCM8"},
		"TestMbedTLSConformance/server/P384":                 {"mbedTLS", "server", "P384"},
		"TestOpenSSLConformance/client/Renegotiation":        {"OpenSSL", "client", "Renegotiation"},
		"TestGnuTLSConformance/server/FragmentedClientHello": {"GnuTLS", "server", "FragmentedClientHello"},
	} {
		if got, ok := locate(name); !ok || got != want {
			t.Errorf("locate(%q) = %v, %v; want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"TestGnuTLS", "TestPion/PionV3", "TestCoAPCodec", "TestOpenSSLServer/Unknown"} {
		if k, ok := locate(name); ok {
			t.Errorf("locate(%q) = %v, want no cell", name, k)
		}
	}
}
