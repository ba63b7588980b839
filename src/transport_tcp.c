/* The TCP transport: non-blocking name resolution, then a non-blocking
 * connect to each resolved address in turn.
 *
 * A numeric host is resolved at once. A name is resolved by getaddrinfo() on
 * a detached thread; the transport polls the read end of a pipe meanwhile,
 * and the thread writes one byte to it when the result is ready. The state
 * the two share (tcp_resolver) is reference-counted under its mutex, so the
 * transport may be destroyed while the thread still runs: whichever lets go
 * last frees it. */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* iovecs passed to one sendmsg() (POSIX guarantees IOV_MAX >= 16). */
#define TCP_IOV_MAX 16
#define TCP_PORT_TEXT 6

typedef enum tcp_phase {
    TCP_IDLE,       /* connect() not called yet */
    TCP_RESOLVING,  /* resolver thread running; poll `rfd` */
    TCP_CONNECTING, /* non-blocking connect() in progress on `fd` */
    TCP_CONNECTED,
    TCP_FAILED      /* `error` says why */
} tcp_phase;

/* Shared between the transport and its resolver thread. Every field below
 * `lock` is guarded by it; `host` and `port` are read-only after start. */
typedef struct tcp_resolver {
    char host[MQTTC_URI_HOST_MAX];
    char port[TCP_PORT_TEXT];
    pthread_mutex_t lock;
    int refs;  /* 2 while both hold it, 1 once either let go */
    int wfd;   /* pipe write end; the thread closes it */
    bool done; /* result and gai_err are set */
    int gai_err;
    struct addrinfo *result; /* owned here until the transport takes it */
} tcp_resolver;

typedef struct tcp_transport {
    mqttc_transport base;
    tcp_phase phase;
    int fd;                 /* the socket; -1 when none */
    int rfd;                /* pipe read end while resolving; -1 otherwise */
    tcp_resolver *resolver; /* non-NULL while resolving */
    struct addrinfo *addrs; /* resolved addresses, freed once connected */
    struct addrinfo *next;  /* next address to try */
    bool tried_connect;     /* some connect() failed: its error wins */
    int error;              /* MQTTC_ERR_* of the last failed attempt */
    char port[TCP_PORT_TEXT];
    char host[]; /* sized to the name: a connection holds no 256-byte array */
} tcp_transport;

static int tcp_errno_to_error(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return MQTTC_ERR_CONNECT_REFUSED;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EADDRNOTAVAIL:
    case EAFNOSUPPORT:
        return MQTTC_ERR_UNREACHABLE;
    case ETIMEDOUT:
        return MQTTC_ERR_CONNECT_TIMEOUT;
    case ENOMEM:
        return MQTTC_ERR_NO_MEMORY;
    default:
        return MQTTC_ERR_TRANSPORT;
    }
}

/* Errors on an established connection. */
static int tcp_io_error(int err)
{
    switch (err) {
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ETIMEDOUT:
    case ENETRESET:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case ENOTCONN:
        return MQTTC_ERR_CONNECTION_LOST;
    default:
        return MQTTC_ERR_TRANSPORT;
    }
}

static int tcp_gai_to_error(int gai_err)
{
    return gai_err == EAI_MEMORY ? MQTTC_ERR_NO_MEMORY : MQTTC_ERR_RESOLVE;
}

static void tcp_close(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* ---- resolver thread ------------------------------------------------------ */

static void tcp_resolver_free(tcp_resolver *r)
{
    if (r->result != NULL) {
        freeaddrinfo(r->result);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Drop one reference (called with the lock held; unlocks). */
static void tcp_resolver_unref_unlock(tcp_resolver *r)
{
    bool last = --r->refs == 0;

    pthread_mutex_unlock(&r->lock);
    if (last) {
        tcp_resolver_free(r);
    }
}

static void *tcp_resolver_main(void *arg)
{
    tcp_resolver *r = arg;
    struct addrinfo hints, *result = NULL;
    int err;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
    err = getaddrinfo(r->host, r->port, &hints, &result);

    pthread_mutex_lock(&r->lock);
    r->result = err == 0 ? result : NULL;
    r->gai_err = err;
    r->done = true;
    /* Wake the transport only while it holds the read end: writing to a
     * pipe nobody reads would raise SIGPIPE. The pipe is empty, so one byte
     * never blocks. */
    if (r->refs == 2) {
        ssize_t n;
        do {
            n = write(r->wfd, "", 1);
        } while (n < 0 && errno == EINTR);
    }
    tcp_close(&r->wfd);
    tcp_resolver_unref_unlock(r);
    return NULL;
}

static int tcp_set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        return -1;
    }
    return 0;
}

/* Start the thread with every signal blocked, so that no signal meant for
 * the application is delivered to it. */
static int tcp_resolver_spawn(tcp_resolver *r)
{
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t all, old;
    int rc;

    if (pthread_attr_init(&attr) != 0) {
        return MQTTC_ERR_THREAD;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&tid, &attr, tcp_resolver_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : MQTTC_ERR_THREAD;
}

static int tcp_resolve_start(tcp_transport *t)
{
    int p[2];
    tcp_resolver *r = calloc(1, sizeof(*r));
    int rc;

    if (r == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    memcpy(r->host, t->host, strlen(t->host) + 1); /* shorter than MQTTC_URI_HOST_MAX: checked at open */
    memcpy(r->port, t->port, sizeof(r->port));
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return MQTTC_ERR_NO_MEMORY;
    }
    if (pipe(p) < 0) {
        rc = errno == EMFILE || errno == ENFILE ? MQTTC_ERR_TRANSPORT : MQTTC_ERR_NO_MEMORY;
        tcp_resolver_free(r);
        return rc;
    }
    r->wfd = p[1];
    r->refs = 2;
    rc = tcp_set_flags(p[0]) < 0 || tcp_set_flags(p[1]) < 0 ? MQTTC_ERR_TRANSPORT : 0;
    if (rc == 0) {
        rc = tcp_resolver_spawn(r);
    }
    if (rc < 0) {
        close(p[0]);
        close(p[1]);
        tcp_resolver_free(r);
        return rc;
    }
    t->rfd = p[0];
    t->resolver = r;
    t->phase = TCP_RESOLVING;
    return 0;
}

/* Let go of the resolver; its thread may still be running. */
static void tcp_resolver_release(tcp_transport *t)
{
    if (t->resolver != NULL) {
        pthread_mutex_lock(&t->resolver->lock);
        tcp_resolver_unref_unlock(t->resolver);
        t->resolver = NULL;
    }
    tcp_close(&t->rfd);
}

/* 1 while the thread runs, 0 with t->addrs set, < 0 on failure. */
static int tcp_resolve_poll(tcp_transport *t)
{
    tcp_resolver *r = t->resolver;
    int gai_err;

    pthread_mutex_lock(&r->lock);
    if (!r->done) {
        pthread_mutex_unlock(&r->lock);
        return 1;
    }
    t->addrs = r->result;
    r->result = NULL;
    gai_err = r->gai_err;
    pthread_mutex_unlock(&r->lock);
    tcp_resolver_release(t);
    return gai_err == 0 ? 0 : tcp_gai_to_error(gai_err);
}

/* ---- connecting ----------------------------------------------------------- */

static int tcp_fail(tcp_transport *t, int error)
{
    tcp_close(&t->fd);
    if (t->addrs != NULL) {
        freeaddrinfo(t->addrs);
        t->addrs = t->next = NULL;
    }
    t->phase = TCP_FAILED;
    t->error = error;
    return error;
}

static int tcp_established(tcp_transport *t)
{
    freeaddrinfo(t->addrs);
    t->addrs = t->next = NULL;
    t->phase = TCP_CONNECTED;
    return 0;
}

/* A connect() error outranks a socket() one: "refused by ::1" says more
 * than "this host has no IPv6". */
static void tcp_note_error(tcp_transport *t, int err, bool from_connect)
{
    if (from_connect || !t->tried_connect) {
        t->error = tcp_errno_to_error(err);
        t->base.detail = err; /* the errno: EMFILE says more than "I/O error" */
    }
    t->tried_connect = t->tried_connect || from_connect;
}

/* Start a connection to the next address that does not fail at once. */
static int tcp_try_next(tcp_transport *t)
{
    static const int one = 1;

    while (t->next != NULL) {
        const struct addrinfo *ai = t->next;
        int rc;

        t->next = ai->ai_next;
        t->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       ai->ai_protocol);
        if (t->fd < 0) {
            tcp_note_error(t, errno, false);
            continue;
        }
        (void)setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        rc = connect(t->fd, ai->ai_addr, ai->ai_addrlen);
        if (rc == 0) {
            return tcp_established(t);
        }
        /* After EINTR the connection goes on in the background, as with
         * EINPROGRESS (POSIX). */
        if (errno == EINPROGRESS || errno == EINTR) {
            t->phase = TCP_CONNECTING;
            return MQTTC__AGAIN;
        }
        tcp_note_error(t, errno, true);
        tcp_close(&t->fd);
    }
    return tcp_fail(t, t->error);
}

/* The socket became writable (or not yet): did the connection succeed? */
static int tcp_connect_poll(tcp_transport *t)
{
    struct pollfd pfd = {.fd = t->fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof(err);
    int rc;

    do {
        rc = poll(&pfd, 1, 0);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        return MQTTC__AGAIN;
    }
    if (rc < 0 || getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        err = errno;
    }
    if (err == 0) {
        return tcp_established(t);
    }
    tcp_note_error(t, err, true);
    tcp_close(&t->fd);
    return tcp_try_next(t);
}

/* Numeric addresses need no thread; a name gets one. */
static int tcp_start(tcp_transport *t)
{
    struct addrinfo hints;
    int gai_err;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    gai_err = getaddrinfo(t->host, t->port, &hints, &t->addrs);
    if (gai_err == 0) {
        t->next = t->addrs;
        return tcp_try_next(t);
    }
    t->addrs = NULL;
    if (gai_err != EAI_NONAME) {
        return tcp_fail(t, tcp_gai_to_error(gai_err));
    }
    gai_err = tcp_resolve_start(t);
    return gai_err < 0 ? tcp_fail(t, gai_err) : MQTTC__AGAIN;
}

static int tcp_connect(mqttc_transport *base)
{
    tcp_transport *t = (tcp_transport *)base;
    int rc;

    switch (t->phase) {
    case TCP_IDLE:
        return tcp_start(t);
    case TCP_RESOLVING:
        rc = tcp_resolve_poll(t);
        if (rc != 0) {
            return rc > 0 ? MQTTC__AGAIN : tcp_fail(t, rc);
        }
        t->next = t->addrs;
        return tcp_try_next(t);
    case TCP_CONNECTING:
        return tcp_connect_poll(t);
    case TCP_CONNECTED:
        return 0;
    case TCP_FAILED:
        return t->error;
    }
    return MQTTC_ERR_BAD_STATE;
}

/* ---- I/O ------------------------------------------------------------------ */

static long tcp_read(mqttc_transport *base, uint8_t *buf, size_t cap)
{
    tcp_transport *t = (tcp_transport *)base;
    ssize_t n;

    if (t->phase != TCP_CONNECTED) {
        return MQTTC_ERR_BAD_STATE;
    }
    if (cap == 0) {
        return 0; /* recv() would return 0, which means end of stream */
    }
    do {
        n = recv(t->fd, buf, cap, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        return (long)n;
    }
    if (n == 0) {
        return MQTTC_ERR_CLOSED_BY_PEER;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return 0;
    }
    return tcp_io_error(errno);
}

static long tcp_writev(mqttc_transport *base, const mqttc_iov *iov, size_t n)
{
    tcp_transport *t = (tcp_transport *)base;
    struct iovec v[TCP_IOV_MAX];
    struct msghdr msg;
    size_t count = 0;
    ssize_t w;

    if (t->phase != TCP_CONNECTED) {
        return MQTTC_ERR_BAD_STATE;
    }
    for (size_t i = 0; i < n && count < TCP_IOV_MAX; i++) {
        if (iov[i].len > 0) {
            /* sendmsg() only reads the buffers; struct iovec lacks const. */
            v[count].iov_base = (void *)(uintptr_t)iov[i].base;
            v[count].iov_len = iov[i].len;
            count++;
        }
    }
    if (count == 0) {
        return 0;
    }
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = v;
    msg.msg_iovlen = count;
    do {
        w = sendmsg(t->fd, &msg, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w >= 0) {
        return (long)w;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return 0;
    }
    return tcp_io_error(errno);
}

static int tcp_fd(const mqttc_transport *base)
{
    const tcp_transport *t = (const tcp_transport *)base;

    return t->phase == TCP_RESOLVING ? t->rfd : t->fd;
}

static int tcp_want(const mqttc_transport *base)
{
    const tcp_transport *t = (const tcp_transport *)base;

    switch (t->phase) {
    case TCP_RESOLVING:
        return MQTTC_WANT_READ;
    case TCP_CONNECTING:
        return MQTTC_WANT_WRITE;
    default:
        return 0;
    }
}

static void tcp_destroy(mqttc_transport *base)
{
    tcp_transport *t = (tcp_transport *)base;

    if (t == NULL) {
        return;
    }
    tcp_resolver_release(t);
    tcp_close(&t->fd);
    if (t->addrs != NULL) {
        freeaddrinfo(t->addrs);
    }
    free(t);
}

static const mqttc_transport_vtable tcp_vtable = {
    .name = "tcp",
    .connect = tcp_connect,
    .read = tcp_read,
    .writev = tcp_writev,
    .fd = tcp_fd,
    .want = tcp_want,
    .destroy = tcp_destroy,
};

int mqttc__tcp_open(const char *host, uint16_t port, mqttc_transport **out)
{
    tcp_transport *t;
    size_t len;

    if (out == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (host == NULL || port == 0) {
        return MQTTC_ERR_INVALID_ARG;
    }
    len = strlen(host);
    if (len == 0 || len >= MQTTC_URI_HOST_MAX) {
        return MQTTC_ERR_INVALID_ARG;
    }
    t = calloc(1, sizeof(*t) + len + 1);
    if (t == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    t->base.vt = &tcp_vtable;
    t->phase = TCP_IDLE;
    t->fd = -1;
    t->rfd = -1;
    t->error = MQTTC_ERR_RESOLVE; /* stays if no address is ever tried */
    memcpy(t->host, host, len + 1);
    snprintf(t->port, sizeof(t->port), "%u", (unsigned)port);
    *out = &t->base;
    return 0;
}
