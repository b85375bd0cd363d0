#!/bin/sh
# Records a DTLS 1.2 PSK handshake between OpenSSL's s_server and s_client,
# the source of the values in TestOpenSSLHandshake (prf_test.go).
#
# It prints: the NSS key log (client_random, master secret), both sides' -msg
# dumps (every handshake message in plaintext, including both Finished
# messages, so the DTLS transcript can be rebuilt), the exporter output
# ("Keying material"), and every datagram as it crossed a small UDP relay
# (so encrypted records can be decrypted with the derived keys).
#
# It records three handshakes: "ems" (PSK-AES128-GCM-SHA256 with the
# extended master secret of RFC 7627, OpenSSL's default), "noems" (the same
# with EMS switched off through an OpenSSL config file, which exercises the
# RFC 5246 master secret) and "sha384" (PSK-AES256-GCM-SHA384 with EMS).
#
# Usage: sh testdata/record_openssl_handshake.sh [outdir]
# Recorded with OpenSSL 3.0.19; any OpenSSL 3 should do. Each run makes new
# handshakes with fresh randoms, so the test pins one recording.
set -eu

top=${1:-$(mktemp -d)}
mkdir -p "$top"
cat >"$top/noems.cnf" <<'CNF'
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Options = -ExtendedMasterSecret
CNF

record() {
out=$top/$1
suite=$2
mkdir -p "$out"
psk=0102030405060708090a0b0c0d0e0f10
label="EXPERIMENTAL dtls-go"
port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
relay=$((port + 1))

# s_server exits when its stdin closes, so hold it open for a while.
(sleep 6 | openssl s_server -dtls1_2 -psk $psk -nocert -cipher $suite \
	-keylogfile "$out/keylog.txt" -keymatexport "$label" -keymatexportlen 32 \
	-accept 127.0.0.1:$port -naccept 1 -msg >"$out/server.txt" 2>&1) &
server=$!

# A UDP relay that logs every datagram in hex, with its direction.
python3 - "$relay" "$port" >"$out/datagrams.txt" <<'PY' &
import select, socket, sys, time
relay, port = int(sys.argv[1]), int(sys.argv[2])
front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind(("127.0.0.1", relay))
back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
back.connect(("127.0.0.1", port))
client = None
deadline = time.time() + 5
while time.time() < deadline:
    r, _, _ = select.select([front, back], [], [], 0.1)
    for s in r:
        if s is front:
            d, client = front.recvfrom(65535)
            print("client->server", d.hex(), flush=True)
            back.send(d)
        else:
            d = back.recv(65535)
            print("server->client", d.hex(), flush=True)
            front.sendto(d, client)
PY
proxy=$!

sleep 1
sleep 2 | openssl s_client -dtls1_2 -psk $psk -cipher $suite -msg \
	-keymatexport "$label" -keymatexportlen 32 \
	-connect 127.0.0.1:$relay >"$out/client.txt" 2>&1 || true
wait $server || true
wait $proxy || true

echo "== $out"
cat "$out/keylog.txt"
grep -A1 "Keying material exporter" -A3 "$out/client.txt" "$out/server.txt"
grep -i "extended master secret" "$out/client.txt"
cat "$out/datagrams.txt"
}

record ems PSK-AES128-GCM-SHA256
OPENSSL_CONF=$top/noems.cnf record noems PSK-AES128-GCM-SHA256
record sha384 PSK-AES256-GCM-SHA384
