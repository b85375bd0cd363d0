/*
 * dtls_peer: a DTLS 1.2 client or server on mbedTLS 2.28 (Debian's
 * libmbedtls-dev), driven by the interop tests of github.com/dtls-go/dtls.
 * It follows mbedTLS's own programs/ssl/dtls_client.c and dtls_server.c.
 *
 *   dtls_peer server -port N [options]   bind 127.0.0.1:N, print "listening",
 *       handshake with one client (HelloVerifyRequest cookies on), echo the
 *       first datagram back, wait for close_notify, exit 0.
 *   dtls_peer version                    print the mbedTLS library version.
 *   dtls_peer client -port N [options]   handshake with 127.0.0.1:N, send
 *       "hello from mbedtls", wait for the reply, send close_notify, exit 0.
 *
 * Options:
 *   -psk HEX -identity ID    PSK credentials (both roles)
 *   -ca FILE                 verify the peer's certificate against FILE
 *                            (server: require a client certificate)
 *   -cert FILE -key FILE     our certificate chain and key
 *   -servername NAME         client: SNI and the name to verify
 *   -suite NAME              the only suite to offer/accept (IANA name with
 *                            dashes, as mbedTLS spells it)
 *   -mtu N                   mbedtls_ssl_set_mtu: fragment flights to N bytes
 *   -debug N                 mbedTLS debug level to stderr (0-4)
 *
 * Progress goes to stdout, one line each: "listening", "handshake ok",
 * "suite: NAME", "received: TEXT", "peer closed", "done". Errors go to
 * stderr with mbedTLS's error text; the exit code is 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbedtls/ctr_drbg.h"
#include "mbedtls/debug.h"
#include "mbedtls/entropy.h"
#include "mbedtls/error.h"
#include "mbedtls/net_sockets.h"
#include "mbedtls/ssl.h"
#include "mbedtls/ssl_cookie.h"
#include "mbedtls/timing.h"
#include "mbedtls/version.h"
#include "mbedtls/x509_crt.h"

#define READ_TIMEOUT_MS 10000
#define CLIENT_LINE "hello from mbedtls"

static void fail(const char *what, int ret) {
	char buf[200];
	mbedtls_strerror(ret, buf, sizeof(buf));
	fprintf(stderr, "dtls_peer: %s: -0x%04x %s\n", what, (unsigned)-ret, buf);
	exit(1);
}

static void debug_cb(void *ctx, int level, const char *file, int line, const char *str) {
	(void)level;
	fprintf((FILE *)ctx, "%s:%04d: %s", file, line, str);
	fflush((FILE *)ctx);
}

static int unhex(const char *s, unsigned char *out, size_t max) {
	size_t n = strlen(s);
	if (n % 2 != 0 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return (int)(n / 2);
}

/* handshake runs the handshake to completion or failure. It returns
 * MBEDTLS_ERR_SSL_HELLO_VERIFY_REQUIRED when a server must start over with
 * the cookie-bearing ClientHello. */
static int handshake(mbedtls_ssl_context *ssl) {
	int ret;
	do {
		ret = mbedtls_ssl_handshake(ssl);
	} while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
	return ret;
}

static void report(mbedtls_ssl_context *ssl) {
	printf("handshake ok\nsuite: %s\n", mbedtls_ssl_get_ciphersuite(ssl));
	uint32_t flags = mbedtls_ssl_get_verify_result(ssl);
	if (flags != 0 && flags != (uint32_t)-1) {
		char buf[512];
		mbedtls_x509_crt_verify_info(buf, sizeof(buf), "", flags);
		printf("verify: %s", buf);
	}
	fflush(stdout);
}

static int read_datagram(mbedtls_ssl_context *ssl, unsigned char *buf, size_t len) {
	int ret;
	do {
		ret = mbedtls_ssl_read(ssl, buf, len - 1);
	} while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
	return ret;
}

static void write_datagram(mbedtls_ssl_context *ssl, const unsigned char *buf, size_t len) {
	int ret;
	do {
		ret = mbedtls_ssl_write(ssl, buf, len);
	} while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
	if (ret < 0)
		fail("mbedtls_ssl_write", ret);
}

static void close_notify(mbedtls_ssl_context *ssl) {
	int ret;
	do {
		ret = mbedtls_ssl_close_notify(ssl);
	} while (ret == MBEDTLS_ERR_SSL_WANT_WRITE);
}

int main(int argc, char **argv) {
	const char *role = NULL, *port = NULL, *psk_hex = NULL, *identity = NULL;
	const char *ca_file = NULL, *cert_file = NULL, *key_file = NULL;
	const char *servername = NULL, *suite = NULL;
	int mtu = 0, debug = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: dtls_peer server|client -port N [options]\n");
		return 2;
	}
	role = argv[1];
	if (!strcmp(role, "version")) {
		char v[32];
		mbedtls_version_get_string_full(v);
		printf("%s\n", v);
		return 0;
	}
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc) {
			fprintf(stderr, "dtls_peer: %s needs a value\n", a);
			return 2;
		}
		const char *v = argv[++i];
		if (!strcmp(a, "-port")) port = v;
		else if (!strcmp(a, "-psk")) psk_hex = v;
		else if (!strcmp(a, "-identity")) identity = v;
		else if (!strcmp(a, "-ca")) ca_file = v;
		else if (!strcmp(a, "-cert")) cert_file = v;
		else if (!strcmp(a, "-key")) key_file = v;
		else if (!strcmp(a, "-servername")) servername = v;
		else if (!strcmp(a, "-suite")) suite = v;
		else if (!strcmp(a, "-mtu")) mtu = atoi(v);
		else if (!strcmp(a, "-debug")) debug = atoi(v);
		else {
			fprintf(stderr, "dtls_peer: unknown option %s\n", a);
			return 2;
		}
	}
	int is_server = !strcmp(role, "server");
	if ((!is_server && strcmp(role, "client")) || port == NULL) {
		fprintf(stderr, "usage: dtls_peer server|client -port N [options]\n");
		return 2;
	}

	int ret;
	mbedtls_net_context listen_fd, fd;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_context ssl;
	mbedtls_ssl_config conf;
	mbedtls_ssl_cookie_ctx cookies;
	mbedtls_x509_crt ca, cert;
	mbedtls_pk_context key;
	mbedtls_timing_delay_context timer;
	int suites[2] = {0, 0};
	unsigned char psk[64];
	unsigned char buf[2048];

	mbedtls_net_init(&listen_fd);
	mbedtls_net_init(&fd);
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_ssl_init(&ssl);
	mbedtls_ssl_config_init(&conf);
	mbedtls_ssl_cookie_init(&cookies);
	mbedtls_x509_crt_init(&ca);
	mbedtls_x509_crt_init(&cert);
	mbedtls_pk_init(&key);
	mbedtls_debug_set_threshold(debug);

	if ((ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
	                                 (const unsigned char *)"dtls_peer", 9)) != 0)
		fail("mbedtls_ctr_drbg_seed", ret);
	if ((ret = mbedtls_ssl_config_defaults(&conf,
	                                       is_server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
	                                       MBEDTLS_SSL_TRANSPORT_DATAGRAM,
	                                       MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
		fail("mbedtls_ssl_config_defaults", ret);
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
	mbedtls_ssl_conf_dbg(&conf, debug_cb, stderr);
	mbedtls_ssl_conf_read_timeout(&conf, READ_TIMEOUT_MS);
	/* DTLS 1.2 only (mbedTLS also speaks DTLS 1.0). */
	mbedtls_ssl_conf_min_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);

	if (suite != NULL) {
		suites[0] = mbedtls_ssl_get_ciphersuite_id(suite);
		if (suites[0] == 0) {
			fprintf(stderr, "dtls_peer: unknown suite %s\n", suite);
			return 2;
		}
		mbedtls_ssl_conf_ciphersuites(&conf, suites);
	}
	if (psk_hex != NULL) {
		int n = unhex(psk_hex, psk, sizeof(psk));
		if (n <= 0 || identity == NULL) {
			fprintf(stderr, "dtls_peer: -psk needs hex and -identity\n");
			return 2;
		}
		if ((ret = mbedtls_ssl_conf_psk(&conf, psk, (size_t)n, (const unsigned char *)identity,
		                                strlen(identity))) != 0)
			fail("mbedtls_ssl_conf_psk", ret);
	}
	if (ca_file != NULL) {
		if ((ret = mbedtls_x509_crt_parse_file(&ca, ca_file)) != 0)
			fail("parsing -ca", ret);
		mbedtls_ssl_conf_ca_chain(&conf, &ca, NULL);
		mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	} else {
		mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
	}
	if (cert_file != NULL) {
		if ((ret = mbedtls_x509_crt_parse_file(&cert, cert_file)) != 0)
			fail("parsing -cert", ret);
		if ((ret = mbedtls_pk_parse_keyfile(&key, key_file, NULL)) != 0)
			fail("parsing -key", ret);
		if ((ret = mbedtls_ssl_conf_own_cert(&conf, &cert, &key)) != 0)
			fail("mbedtls_ssl_conf_own_cert", ret);
	}
	if (is_server) {
		if ((ret = mbedtls_ssl_cookie_setup(&cookies, mbedtls_ctr_drbg_random, &drbg)) != 0)
			fail("mbedtls_ssl_cookie_setup", ret);
		mbedtls_ssl_conf_dtls_cookies(&conf, mbedtls_ssl_cookie_write, mbedtls_ssl_cookie_check,
		                              &cookies);
	}
	if ((ret = mbedtls_ssl_setup(&ssl, &conf)) != 0)
		fail("mbedtls_ssl_setup", ret);
	mbedtls_ssl_set_timer_cb(&ssl, &timer, mbedtls_timing_set_delay, mbedtls_timing_get_delay);
	if (mtu > 0)
		mbedtls_ssl_set_mtu(&ssl, (uint16_t)mtu);

	if (is_server) {
		if ((ret = mbedtls_net_bind(&listen_fd, "127.0.0.1", port, MBEDTLS_NET_PROTO_UDP)) != 0)
			fail("mbedtls_net_bind", ret);
		printf("listening\n");
		fflush(stdout);
		for (;;) {
			unsigned char client_ip[16];
			size_t ip_len;
			mbedtls_net_free(&fd);
			mbedtls_ssl_session_reset(&ssl);
			if ((ret = mbedtls_net_accept(&listen_fd, &fd, client_ip, sizeof(client_ip), &ip_len)) != 0)
				fail("mbedtls_net_accept", ret);
			if ((ret = mbedtls_ssl_set_client_transport_id(&ssl, client_ip, ip_len)) != 0)
				fail("mbedtls_ssl_set_client_transport_id", ret);
			mbedtls_ssl_set_bio(&ssl, &fd, mbedtls_net_send, mbedtls_net_recv, mbedtls_net_recv_timeout);
			ret = handshake(&ssl);
			if (ret == MBEDTLS_ERR_SSL_HELLO_VERIFY_REQUIRED) {
				printf("hello verify requested\n");
				fflush(stdout);
				continue;
			}
			if (ret != 0)
				fail("mbedtls_ssl_handshake", ret);
			break;
		}
		report(&ssl);
		ret = read_datagram(&ssl, buf, sizeof(buf));
		if (ret <= 0)
			fail("mbedtls_ssl_read", ret);
		buf[ret] = 0;
		printf("received: %s\n", (char *)buf);
		fflush(stdout);
		write_datagram(&ssl, buf, (size_t)ret); /* the echo */
		ret = read_datagram(&ssl, buf, sizeof(buf));
		if (ret != MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
			fail("waiting for close_notify", ret < 0 ? ret : -1);
		printf("peer closed\n");
		close_notify(&ssl);
	} else {
		if ((ret = mbedtls_net_connect(&fd, "127.0.0.1", port, MBEDTLS_NET_PROTO_UDP)) != 0)
			fail("mbedtls_net_connect", ret);
		if (servername != NULL && (ret = mbedtls_ssl_set_hostname(&ssl, servername)) != 0)
			fail("mbedtls_ssl_set_hostname", ret);
		mbedtls_ssl_set_bio(&ssl, &fd, mbedtls_net_send, mbedtls_net_recv, mbedtls_net_recv_timeout);
		if ((ret = handshake(&ssl)) != 0)
			fail("mbedtls_ssl_handshake", ret);
		report(&ssl);
		write_datagram(&ssl, (const unsigned char *)CLIENT_LINE, strlen(CLIENT_LINE));
		ret = read_datagram(&ssl, buf, sizeof(buf));
		if (ret <= 0)
			fail("mbedtls_ssl_read", ret);
		buf[ret] = 0;
		printf("received: %s\n", (char *)buf);
		close_notify(&ssl);
	}
	printf("done\n");
	fflush(stdout);

	mbedtls_net_free(&fd);
	mbedtls_net_free(&listen_fd);
	mbedtls_x509_crt_free(&ca);
	mbedtls_x509_crt_free(&cert);
	mbedtls_pk_free(&key);
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_ssl_cookie_free(&cookies);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	return 0;
}
