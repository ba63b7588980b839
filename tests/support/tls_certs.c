/* Throwaway certificates for the TLS tests (tls_certs.h). */
#define _GNU_SOURCE

#include "tls_certs.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_STEP_MS 10

/* Run by /bin/sh with the directory as $1; openssl's chatter goes to
 * openssl.log there. */
static const char make_script[] =
    "set -eu\n"
    "cd \"$1\"\n"
    "exec >openssl.log 2>&1\n"
    "cat >openssl.cnf <<'EOF'\n"
    "[req]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[dn]\n"
    "CN = placeholder\n"
    "[v3_ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[v3_server]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1\n"
    "[v3_wrong]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:wrong.example\n"
    "[v3_client]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = clientAuth\n"
    "[ca]\n"
    "default_ca = ca_default\n"
    "[ca_default]\n"
    "database = ./index.txt\n"
    "new_certs_dir = .\n"
    "serial = ./serial\n"
    "default_md = sha256\n"
    "policy = policy_any\n"
    "unique_subject = no\n"
    "[policy_any]\n"
    "commonName = supplied\n"
    "EOF\n"
    "ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1\"; }\n"
    "ca() { ec \"$1.key\"; openssl req -config openssl.cnf -x509 -new -key \"$1.key\" "
    "-subj \"/CN=$2\" -extensions v3_ca -days 3650 -out \"$1.pem\"; }\n"
    "sign() { openssl x509 -req -in \"$1\" -CA ca.pem -CAkey ca.key -set_serial \"$2\" "
    "-days 3650 -extfile openssl.cnf -extensions \"$3\" -out \"$4\"; }\n"
    "ca ca 'mqttc test CA'\n"
    "ca other-ca 'mqttc other CA'\n"
    "ec server.key\n"
    "openssl req -config openssl.cnf -new -key server.key -subj /CN=localhost -out server.csr\n"
    "sign server.csr 2 v3_server server.pem\n"
    "openssl req -config openssl.cnf -new -key server.key -subj /CN=wrong.example "
    "-out wrong.csr\n"
    "sign wrong.csr 3 v3_wrong wrong.pem\n"
    /* `openssl ca` can set both ends of the validity; x509 -req cannot */
    ": >index.txt\n"
    "echo 10 >serial\n"
    "openssl ca -config openssl.cnf -batch -notext -cert ca.pem -keyfile ca.key "
    "-extensions v3_server -startdate 20200101000000Z -enddate 20200201000000Z "
    "-in server.csr -out expired.pem\n"
    "openssl ca -config openssl.cnf -batch -notext -cert ca.pem -keyfile ca.key "
    "-extensions v3_server -startdate 20900101000000Z -enddate 20910101000000Z "
    "-in server.csr -out future.pem\n"
    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out client.key\n"
    "openssl req -config openssl.cnf -new -key client.key -subj '/CN=mqttc test client' "
    "-out client.csr\n"
    "sign client.csr 4 v3_client client.pem\n"
    "openssl rsa -in client.key -traditional -aes256 -passout pass:secret "
    "-out client-enc.key\n"
    "openssl pkcs8 -topk8 -in client.key -v2 des3 -passout pass:secret "
    "-out client-enc-des3.key\n"
    "openssl pkcs8 -topk8 -in client.key -v2 aes-256-cbc -passout pass:secret "
    "-out client-enc-aes8.key\n"
    "ec other.key\n"
    "printf '%s\\n' -----BEGIN' CERTIFICATE-----' bm90IGEgY2VydGlmaWNhdGU= "
    "-----END' CERTIFICATE-----' >garbage.pem\n";

static void pause_ms(unsigned ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000u;
    ts.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* sh -c SCRIPT sh DIR, at most TLS_CERTS_TIMEOUT_MS; 0 if it exits with 0. */
static int run_script(const char *dir)
{
    int status = 0, waited = 0;
    pid_t pid = fork();

    if (pid < 0) {
        fprintf(stderr, "tls_certs: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", make_script, "sh", dir, (char *)NULL);
        _exit(127);
    }
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        if (r < 0 && errno != EINTR) {
            return -1;
        }
        if (waited >= TLS_CERTS_TIMEOUT_MS) {
            fprintf(stderr, "tls_certs: openssl took more than %d ms\n", TLS_CERTS_TIMEOUT_MS);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        pause_ms(POLL_STEP_MS);
        waited += POLL_STEP_MS;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

char *tls_certs_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;

    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)size + 1);
        if (buf != NULL && fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        }
        if (buf != NULL) {
            buf[size] = '\0';
        }
    }
    fclose(f);
    return buf;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tls_certs_cleanup(tls_certs *c)
{
    if (c->dir[0] == '\0') {
        return;
    }
    if (getenv("MQTTC_TEST_KEEP_BROKER") != NULL) {
        fprintf(stderr, "tls_certs: kept %s (MQTTC_TEST_KEEP_BROKER)\n", c->dir);
    } else {
        nftw(c->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    c->dir[0] = '\0';
}

static void set_path(char *dst, const char *dir, const char *name)
{
    snprintf(dst, TLS_CERTS_PATH_MAX, "%s/%s", dir, name);
}

int tls_certs_make(tls_certs *c)
{
    char tmpl[] = "/tmp/mqttc-certs.XXXXXX";

    memset(c, 0, sizeof *c);
    if (access("/usr/bin/openssl", X_OK) != 0) {
        fprintf(stderr, "tls_certs: /usr/bin/openssl is not installed\n");
        return -1;
    }
    if (mkdtemp(tmpl) == NULL) {
        fprintf(stderr, "tls_certs: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(c->dir, sizeof c->dir, "%s", tmpl);
    if (run_script(c->dir) != 0) {
        char log[TLS_CERTS_PATH_MAX];
        char *text;
        set_path(log, c->dir, "openssl.log");
        text = tls_certs_read(log);
        fprintf(stderr, "tls_certs: making the certificates failed:\n%s\n", text ? text : "");
        free(text);
        tls_certs_cleanup(c);
        return -1;
    }
    set_path(c->ca, c->dir, "ca.pem");
    set_path(c->other_ca, c->dir, "other-ca.pem");
    set_path(c->server_cert, c->dir, "server.pem");
    set_path(c->server_key, c->dir, "server.key");
    set_path(c->wrong_cert, c->dir, "wrong.pem");
    set_path(c->expired_cert, c->dir, "expired.pem");
    set_path(c->future_cert, c->dir, "future.pem");
    set_path(c->client_cert, c->dir, "client.pem");
    set_path(c->client_key, c->dir, "client.key");
    set_path(c->client_key_enc, c->dir, "client-enc.key");
    set_path(c->client_key_enc_des3, c->dir, "client-enc-des3.key");
    set_path(c->client_key_enc_aes8, c->dir, "client-enc-aes8.key");
    set_path(c->other_key, c->dir, "other.key");
    set_path(c->garbage, c->dir, "garbage.pem");
    return 0;
}
