/*
 * wolfssl_peer: a DTLS 1.2 client or server on wolfSSL (Debian's
 * libwolfssl-dev 5.5.4), driven by the interop tests of
 * github.com/dtls-go/dtls. It follows wolfSSL's examples/server and
 * examples/client, cut down to what the tests need.
 *
 *   wolfssl_peer server -port N [options]   bind 127.0.0.1:N, print
 *       "listening", handshake with one client (wolfSSL's HelloVerifyRequest
 *       cookie on), echo the first datagram back, wait for close_notify,
 *       exit 0.
 *   wolfssl_peer client -port N [options]   handshake with 127.0.0.1:N,
 *       send "hello from wolfssl", wait for the reply, send close_notify,
 *       exit 0.
 *   wolfssl_peer version                    print wolfSSL's version.
 *
 * Options:
 *   -ca FILE               verify the peer's certificate against FILE
 *                          (server: require a client certificate)
 *   -cert FILE -key FILE   our certificate and key
 *   -servername NAME       client: SNI and the name to verify
 *   -suite NAME            the only suite (OpenSSL's name for it)
 *
 * Progress goes to stdout, one line each: "listening", "handshake ok",
 * "suite: NAME", "received: TEXT", "peer closed", "done". Errors go to
 * stderr; the exit code is 1 on any failure. Every run ends within
 * RUN_LIMIT_S seconds (alarm).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#define CLIENT_LINE "hello from wolfssl"
#define RUN_LIMIT_S 30

static const char *opt_ca, *opt_cert, *opt_key, *opt_servername, *opt_suite;
static int opt_port;

static void die(const char *what, WOLFSSL *ssl, int ret) {
	char buf[WOLFSSL_MAX_ERROR_SZ] = "";
	if (ssl != NULL) {
		wolfSSL_ERR_error_string(wolfSSL_get_error(ssl, ret), buf);
	}
	fprintf(stderr, "%s failed (%d): %s\n", what, ret, buf);
	exit(1);
}

static WOLFSSL_CTX *new_ctx(int server) {
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(server ? wolfDTLSv1_2_server_method() : wolfDTLSv1_2_client_method());
	if (ctx == NULL) {
		die("wolfSSL_CTX_new", NULL, 0);
	}
	if (opt_suite != NULL && wolfSSL_CTX_set_cipher_list(ctx, opt_suite) != WOLFSSL_SUCCESS) {
		die("wolfSSL_CTX_set_cipher_list", NULL, 0);
	}
	if (opt_cert != NULL) {
		if (wolfSSL_CTX_use_certificate_chain_file(ctx, opt_cert) != WOLFSSL_SUCCESS) {
			die("wolfSSL_CTX_use_certificate_chain_file", NULL, 0);
		}
		if (wolfSSL_CTX_use_PrivateKey_file(ctx, opt_key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
			die("wolfSSL_CTX_use_PrivateKey_file", NULL, 0);
		}
	}
	if (opt_ca != NULL) {
		if (wolfSSL_CTX_load_verify_locations(ctx, opt_ca, NULL) != WOLFSSL_SUCCESS) {
			die("wolfSSL_CTX_load_verify_locations", NULL, 0);
		}
		wolfSSL_CTX_set_verify(ctx, server ? WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT : WOLFSSL_VERIFY_PEER, NULL);
	} else {
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

static void report_handshake(WOLFSSL *ssl) {
	printf("handshake ok\nsuite: %s\n", wolfSSL_get_cipher_name(ssl));
	fflush(stdout);
}

static int run_server(void) {
	WOLFSSL_CTX *ctx = new_ctx(1);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(opt_port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		perror("bind");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);

	/* The first datagram names the client: answer only it, as wolfSSL's
	 * example server does. */
	char peek[1];
	struct sockaddr_in from;
	socklen_t fromlen = sizeof(from);
	if (recvfrom(fd, peek, sizeof(peek), MSG_PEEK, (struct sockaddr *)&from, &fromlen) < 0 ||
	    connect(fd, (struct sockaddr *)&from, fromlen) != 0) {
		perror("recvfrom/connect");
		return 1;
	}
	WOLFSSL *ssl = wolfSSL_new(ctx);
	if (ssl == NULL || wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS ||
	    wolfSSL_dtls_set_peer(ssl, &from, fromlen) != WOLFSSL_SUCCESS) {
		die("wolfSSL_new", NULL, 0);
	}
	int ret = wolfSSL_accept(ssl);
	if (ret != WOLFSSL_SUCCESS) {
		die("wolfSSL_accept", ssl, ret);
	}
	report_handshake(ssl);

	char buf[2048];
	int n = wolfSSL_read(ssl, buf, sizeof(buf) - 1);
	if (n <= 0) {
		die("wolfSSL_read", ssl, n);
	}
	buf[n] = 0;
	printf("received: %s\n", buf);
	fflush(stdout);
	if ((ret = wolfSSL_write(ssl, buf, n)) != n) {
		die("wolfSSL_write", ssl, ret);
	}
	/* Wait for the client's close_notify. */
	n = wolfSSL_read(ssl, buf, sizeof(buf));
	if (n > 0 || wolfSSL_get_error(ssl, n) != WOLFSSL_ERROR_ZERO_RETURN) {
		die("waiting for close_notify", ssl, n);
	}
	printf("peer closed\n");
	wolfSSL_shutdown(ssl);
	wolfSSL_free(ssl);
	wolfSSL_CTX_free(ctx);
	close(fd);
	printf("done\n");
	return 0;
}

static int run_client(void) {
	WOLFSSL_CTX *ctx = new_ctx(0);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(opt_port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		perror("connect");
		return 1;
	}
	WOLFSSL *ssl = wolfSSL_new(ctx);
	if (ssl == NULL || wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS ||
	    wolfSSL_dtls_set_peer(ssl, &addr, sizeof(addr)) != WOLFSSL_SUCCESS) {
		die("wolfSSL_new", NULL, 0);
	}
	if (opt_servername != NULL) {
		if (wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, opt_servername, (unsigned short)strlen(opt_servername)) != WOLFSSL_SUCCESS ||
		    wolfSSL_check_domain_name(ssl, opt_servername) != WOLFSSL_SUCCESS) {
			die("wolfSSL_UseSNI", NULL, 0);
		}
	}
	int ret = wolfSSL_connect(ssl);
	if (ret != WOLFSSL_SUCCESS) {
		die("wolfSSL_connect", ssl, ret);
	}
	report_handshake(ssl);
	if ((ret = wolfSSL_write(ssl, CLIENT_LINE, (int)strlen(CLIENT_LINE))) != (int)strlen(CLIENT_LINE)) {
		die("wolfSSL_write", ssl, ret);
	}
	char buf[2048];
	int n = wolfSSL_read(ssl, buf, sizeof(buf) - 1);
	if (n <= 0) {
		die("wolfSSL_read", ssl, n);
	}
	buf[n] = 0;
	printf("received: %s\n", buf);
	wolfSSL_shutdown(ssl);
	wolfSSL_free(ssl);
	wolfSSL_CTX_free(ctx);
	close(fd);
	printf("done\n");
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: wolfssl_peer server|client|version [options]\n");
		return 2;
	}
	if (strcmp(argv[1], "version") == 0) {
		printf("wolfSSL %s\n", wolfSSL_lib_version());
		return 0;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (strcmp(k, "-port") == 0) {
			opt_port = atoi(v);
		} else if (strcmp(k, "-ca") == 0) {
			opt_ca = v;
		} else if (strcmp(k, "-cert") == 0) {
			opt_cert = v;
		} else if (strcmp(k, "-key") == 0) {
			opt_key = v;
		} else if (strcmp(k, "-servername") == 0) {
			opt_servername = v;
		} else if (strcmp(k, "-suite") == 0) {
			opt_suite = v;
		} else {
			fprintf(stderr, "unknown option %s\n", k);
			return 2;
		}
	}
	alarm(RUN_LIMIT_S);
	setvbuf(stdout, NULL, _IOLBF, 0);
	wolfSSL_Init();
	int ret = strcmp(argv[1], "server") == 0 ? run_server() : run_client();
	wolfSSL_Cleanup();
	return ret;
}
