#!/bin/sh
# mkcapture.sh regenerates the OpenSSL DTLS 1.2 capture used by the capture
# package's tests: a real handshake (cookie exchange, a Certificate
# fragmented by a small MTU, application data both ways, close_notify) on
# loopback, captured by tshark, with OpenSSL's key log.
#
# Needs root (to capture on lo), openssl, tshark and editcap. Run it from
# anywhere; it writes next to itself:
#   openssl-dtls12.pcapng      the capture as tshark wrote it (Ethernet link type)
#   openssl-dtls12.keylog      the NSS key log from s_client
#   openssl-dtls12-dsb.pcapng  the capture with the key log injected by editcap
#                              (a Decryption Secrets Block written by Wireshark's code)
#   openssl-dtls12.pcap        the capture as classic pcap, nanosecond timestamps
set -eu
out=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'kill $srv $cap 2>/dev/null || true; rm -rf "$tmp"' EXIT
port=${PORT:-44330}
cd "$tmp"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout key.pem -out cert.pem -subj /CN=localhost -days 36500 2>/dev/null

tshark -q -i lo -f "udp port $port" -w "$tmp/raw.pcapng" 2>cap.err &
cap=$!
until grep -q Capturing cap.err; do sleep 0.1; done
sleep 0.5

(sleep 2; echo "hello from s_server"; sleep 3) | openssl s_server -dtls1_2 -accept 127.0.0.1:$port \
	-cert cert.pem -key key.pem -cipher ECDHE-ECDSA-AES128-GCM-SHA256 \
	-mtu 300 -keylogfile server.keylog >server.out 2>&1 &
srv=$!
sleep 0.5
(sleep 1; echo "hello from s_client"; sleep 2) | openssl s_client -dtls1_2 -connect 127.0.0.1:$port \
	-cipher ECDHE-ECDSA-AES128-GCM-SHA256 -keylogfile client.keylog >client.out 2>&1
sleep 0.5
kill $srv 2>/dev/null || true
sleep 0.5
kill -INT $cap
wait $cap || true

grep -q "hello from s_server" client.out
cp raw.pcapng "$out/openssl-dtls12.pcapng"
grep CLIENT_RANDOM client.keylog >"$out/openssl-dtls12.keylog"
editcap --inject-secrets "tls,$out/openssl-dtls12.keylog" raw.pcapng "$out/openssl-dtls12-dsb.pcapng"
editcap -F nsecpcap raw.pcapng "$out/openssl-dtls12.pcap"
ls -l "$out"/openssl-dtls12*
