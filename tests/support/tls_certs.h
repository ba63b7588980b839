/**
 * @file tls_certs.h
 * @brief Throwaway certificates for the TLS tests, made at test time with the
 *        openssl command line tool in a fresh mkdtemp() directory.
 *
 * What is made (all PEM; keys EC P-256 unless said otherwise):
 * - ca: the test CA; other_ca: a second, unrelated CA.
 * - server_cert/server_key: signed by ca, SAN DNS:localhost, IP:127.0.0.1, IP:::1.
 * - wrong_cert: signed by ca, same key, SAN DNS:wrong.example only.
 * - expired_cert: signed by ca, same key and SANs, valid only in January
 *   2020; future_cert: valid only from 2090. `openssl x509 -req` (OpenSSL
 *   3.0) cannot set a start date, so these two are signed with `openssl ca
 *   -startdate/-enddate` and a minimal CA database in the directory.
 * - client_cert/client_key: signed by ca for clientAuth, RSA 2048.
 * - client_key_enc: the same key encrypted with password "secret" in the
 *   traditional PEM format (Proc-Type: 4,ENCRYPTED, AES-256-CBC);
 *   client_key_enc_des3: as PKCS#8 with PBES2/3DES. Both load in mbedTLS 2.28.
 * - client_key_enc_aes8: as PKCS#8 with PBES2/AES-256-CBC, OpenSSL 3's
 *   default, which mbedTLS 2.28 cannot decrypt (PKCS5 feature unavailable).
 * - other_key: an unrelated EC key (does not match client_cert).
 * - garbage: a file that looks like PEM but holds no certificate.
 *
 * Plain functions, no cmocka, no global state; every wait is bounded.
 */
#ifndef MQTTC_TESTS_TLS_CERTS_H
#define MQTTC_TESTS_TLS_CERTS_H

#define TLS_CERTS_PATH_MAX 320
#define TLS_CERTS_PASSWORD "secret"
#define TLS_CERTS_TIMEOUT_MS 60000

typedef struct tls_certs {
    char dir[256]; /**< the mkdtemp directory; "" once cleaned up */
    char ca[TLS_CERTS_PATH_MAX], other_ca[TLS_CERTS_PATH_MAX];
    char server_cert[TLS_CERTS_PATH_MAX], server_key[TLS_CERTS_PATH_MAX];
    char wrong_cert[TLS_CERTS_PATH_MAX], expired_cert[TLS_CERTS_PATH_MAX];
    char future_cert[TLS_CERTS_PATH_MAX];
    char client_cert[TLS_CERTS_PATH_MAX], client_key[TLS_CERTS_PATH_MAX];
    char client_key_enc[TLS_CERTS_PATH_MAX], client_key_enc_des3[TLS_CERTS_PATH_MAX];
    char client_key_enc_aes8[TLS_CERTS_PATH_MAX];
    char other_key[TLS_CERTS_PATH_MAX];
    char garbage[TLS_CERTS_PATH_MAX];
} tls_certs;

/** Make everything above. 0, or -1 (reason and openssl's output on stderr;
 *  nothing left behind). */
int tls_certs_make(tls_certs *c);

/** Remove the directory (kept, and its path printed, when the environment has
 *  MQTTC_TEST_KEEP_BROKER). Idempotent. */
void tls_certs_cleanup(tls_certs *c);

/** A file's contents as a NUL-terminated string (malloc'd), or NULL. */
char *tls_certs_read(const char *path);

#endif /* MQTTC_TESTS_TLS_CERTS_H */
