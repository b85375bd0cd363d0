/*
 * dtls_peer: a DTLS 1.2 client or server on mbedTLS 2.28 (Debian's
 * libmbedtls-dev), driven by the interop tests of github.com/dtls-go/dtls.
 * It follows mbedTLS's own programs/ssl/dtls_client.c and dtls_server.c.
 *
 *   dtls_peer server -port N [options]   bind 127.0.0.1:N, print "listening",
 *       handshake with one client (HelloVerifyRequest cookies on), echo the
 *       first datagram back, wait for close_notify, exit 0 (with -resume,
 *       do all that for two clients in turn).
 *   dtls_peer version                    print the mbedTLS library version.
 *   dtls_peer client -port N [options]   handshake with 127.0.0.1:N, send
 *       "hello from mbedtls", wait for the reply, send close_notify, exit 0
 *       (with -resume, do it again on a new connection that resumes the
 *       first one's session).
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
 *   -alpn P1,P2,...          ALPN protocols in preference order
 *   -srtp PROFILE            offer/accept DTLS-SRTP with PROFILE (only
 *                            SRTP_AES128_CM_HMAC_SHA1_80), print the profile
 *                            and the 60 bytes of SRTP keying material
 *                            (RFC 5764 §4.2) as "srtp keys: HEX"
 *   -resume ticket|id        two connections, the second resuming the first:
 *                            by RFC 5077 ticket or by session ID (server:
 *                            session cache, plus tickets with "ticket";
 *                            client: asks for a ticket with "ticket")
 *   -debug N                 mbedTLS debug level to stderr (0-4)
 *
 * Progress goes to stdout, one line each: "listening", "handshake ok",
 * "suite: NAME", "alpn: NAME", "srtp: PROFILE", "srtp keys: HEX",
 * "resumed: yes|no" (second connection: yes if its master secret is the
 * first one's), "received: TEXT", "peer closed", "done". Errors go to
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
#include "mbedtls/ssl_cache.h"
#include "mbedtls/ssl_cookie.h"
#include "mbedtls/ssl_ticket.h"
#include "mbedtls/timing.h"
#include "mbedtls/version.h"
#include "mbedtls/x509_crt.h"

#define READ_TIMEOUT_MS 10000
#define CLIENT_LINE "hello from mbedtls"
#define MAX_ALPN 8

/* keys is what the key export callback saw of the last handshake: enough
 * to run the RFC 5705 exporter and to tell a resumed session. */
static struct {
	unsigned char master[48];
	unsigned char randoms[64]; /* client_random || server_random */
	mbedtls_tls_prf_types prf;
	int set;
} keys;

static int export_keys(void *p, const unsigned char *ms, const unsigned char *kb, size_t maclen,
                       size_t keylen, size_t ivlen, const unsigned char client_random[32],
                       const unsigned char server_random[32], mbedtls_tls_prf_types prf) {
	(void)p, (void)kb, (void)maclen, (void)keylen, (void)ivlen;
	memcpy(keys.master, ms, sizeof(keys.master));
	memcpy(keys.randoms, client_random, 32);
	memcpy(keys.randoms + 32, server_random, 32);
	keys.prf = prf;
	keys.set = 1;
	return 0;
}

static void print_hex(const char *label, const unsigned char *b, size_t n) {
	printf("%s: ", label);
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

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

static void report(mbedtls_ssl_context *ssl, int srtp) {
	printf("handshake ok\nsuite: %s\n", mbedtls_ssl_get_ciphersuite(ssl));
	const char *alpn = mbedtls_ssl_get_alpn_protocol(ssl);
	if (alpn != NULL)
		printf("alpn: %s\n", alpn);
	if (srtp) {
		mbedtls_dtls_srtp_info info;
		mbedtls_ssl_get_dtls_srtp_negotiation_result(ssl, &info);
		printf("srtp: %s\n", mbedtls_ssl_get_srtp_profile_as_string(info.chosen_dtls_srtp_profile));
		if (info.chosen_dtls_srtp_profile != MBEDTLS_TLS_SRTP_UNSET) {
			/* RFC 5764 §4.2: 2 x (16-byte key + 14-byte salt). */
			unsigned char km[60];
			int ret = mbedtls_ssl_tls_prf(keys.prf, keys.master, sizeof(keys.master),
			                              "EXTRACTOR-dtls_srtp", keys.randoms, sizeof(keys.randoms),
			                              km, sizeof(km));
			if (!keys.set || ret != 0)
				fail("exporting SRTP keys", ret);
			print_hex("srtp keys", km, sizeof(km));
		}
	}
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
	const char *servername = NULL, *suite = NULL, *alpn_list = NULL, *srtp = NULL;
	const char *resume = NULL;
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
		else if (!strcmp(a, "-alpn")) alpn_list = v;
		else if (!strcmp(a, "-srtp")) srtp = v;
		else if (!strcmp(a, "-resume")) resume = v;
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
	if (srtp != NULL && strcmp(srtp, "SRTP_AES128_CM_HMAC_SHA1_80")) {
		fprintf(stderr, "dtls_peer: unsupported -srtp %s\n", srtp);
		return 2;
	}
	if (resume != NULL && strcmp(resume, "ticket") && strcmp(resume, "id")) {
		fprintf(stderr, "dtls_peer: -resume takes ticket or id\n");
		return 2;
	}
	int connections = resume != NULL ? 2 : 1;

	int ret;
	mbedtls_net_context listen_fd, fd;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_context ssl;
	mbedtls_ssl_config conf;
	mbedtls_ssl_cookie_ctx cookies;
	mbedtls_ssl_cache_context cache;
	mbedtls_ssl_ticket_context tickets;
	mbedtls_ssl_session saved;
	unsigned char first_master[48];
	const char *alpn[MAX_ALPN + 1] = {NULL};
	char alpn_buf[256];
	static const mbedtls_ssl_srtp_profile srtp_profiles[] = {
		MBEDTLS_TLS_SRTP_AES128_CM_HMAC_SHA1_80, MBEDTLS_TLS_SRTP_UNSET};
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
	mbedtls_ssl_cache_init(&cache);
	mbedtls_ssl_ticket_init(&tickets);
	mbedtls_ssl_session_init(&saved);
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
	mbedtls_ssl_conf_export_keys_ext_cb(&conf, export_keys, NULL);
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
	if (alpn_list != NULL) {
		/* Split "a,b" in place into the NULL-terminated list mbedTLS wants. */
		snprintf(alpn_buf, sizeof(alpn_buf), "%s", alpn_list);
		int n = 0;
		for (char *tok = strtok(alpn_buf, ","); tok != NULL && n < MAX_ALPN; tok = strtok(NULL, ","))
			alpn[n++] = tok;
		if ((ret = mbedtls_ssl_conf_alpn_protocols(&conf, alpn)) != 0)
			fail("mbedtls_ssl_conf_alpn_protocols", ret);
	}
	if (srtp != NULL) {
		if ((ret = mbedtls_ssl_conf_dtls_srtp_protection_profiles(&conf, srtp_profiles)) != 0)
			fail("mbedtls_ssl_conf_dtls_srtp_protection_profiles", ret);
	}
	if (resume != NULL && is_server) {
		mbedtls_ssl_conf_session_cache(&conf, &cache, mbedtls_ssl_cache_get, mbedtls_ssl_cache_set);
		if (!strcmp(resume, "ticket")) {
			if ((ret = mbedtls_ssl_ticket_setup(&tickets, mbedtls_ctr_drbg_random, &drbg,
			                                    MBEDTLS_CIPHER_AES_256_GCM, 3600)) != 0)
				fail("mbedtls_ssl_ticket_setup", ret);
			mbedtls_ssl_conf_session_tickets_cb(&conf, mbedtls_ssl_ticket_write,
			                                    mbedtls_ssl_ticket_parse, &tickets);
		}
	}
	if (!is_server) {
		mbedtls_ssl_conf_session_tickets(&conf, resume != NULL && !strcmp(resume, "ticket")
		                                            ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED
		                                            : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
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
	}
	for (int conn = 0; conn < connections; conn++) {
		keys.set = 0;
		if (is_server) {
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
		} else {
			if (conn > 0) {
				mbedtls_net_free(&fd);
				if ((ret = mbedtls_ssl_session_reset(&ssl)) != 0)
					fail("mbedtls_ssl_session_reset", ret);
				if ((ret = mbedtls_ssl_set_session(&ssl, &saved)) != 0)
					fail("mbedtls_ssl_set_session", ret);
			}
			if ((ret = mbedtls_net_connect(&fd, "127.0.0.1", port, MBEDTLS_NET_PROTO_UDP)) != 0)
				fail("mbedtls_net_connect", ret);
			if (servername != NULL && (ret = mbedtls_ssl_set_hostname(&ssl, servername)) != 0)
				fail("mbedtls_ssl_set_hostname", ret);
			mbedtls_ssl_set_bio(&ssl, &fd, mbedtls_net_send, mbedtls_net_recv, mbedtls_net_recv_timeout);
			if ((ret = handshake(&ssl)) != 0)
				fail("mbedtls_ssl_handshake", ret);
			if (conn == 0 && resume != NULL && (ret = mbedtls_ssl_get_session(&ssl, &saved)) != 0)
				fail("mbedtls_ssl_get_session", ret);
		}
		report(&ssl, srtp != NULL);
		if (resume != NULL) {
			/* mbedTLS 2.28 has no "did resume" query; a resumed session
			 * keeps the master secret of the one it resumes. */
			if (!keys.set)
				fail("no keys exported", -1);
			if (conn == 0)
				memcpy(first_master, keys.master, sizeof(first_master));
			else
				printf("resumed: %s\n", memcmp(first_master, keys.master, sizeof(first_master)) ? "no" : "yes");
			fflush(stdout);
		}
		if (is_server) {
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
			fflush(stdout);
			close_notify(&ssl);
		} else {
			write_datagram(&ssl, (const unsigned char *)CLIENT_LINE, strlen(CLIENT_LINE));
			ret = read_datagram(&ssl, buf, sizeof(buf));
			if (ret <= 0)
				fail("mbedtls_ssl_read", ret);
			buf[ret] = 0;
			printf("received: %s\n", (char *)buf);
			fflush(stdout);
			close_notify(&ssl);
		}
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
	mbedtls_ssl_cache_free(&cache);
	mbedtls_ssl_ticket_free(&tickets);
	mbedtls_ssl_session_free(&saved);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	return 0;
}
