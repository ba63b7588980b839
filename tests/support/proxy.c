/* A fault-injecting MQTT-aware TCP proxy for the client tests (proxy.h). */
#define _GNU_SOURCE

#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NO_OFF UINT64_MAX
#define CHUNKS 1024            /* delayed chunks per direction */
#define IDLE_WAKE_MS 200       /* the loop wakes at least this often */
#define WAIT_SLICE_MS 10

enum { PS_TYPE = 0, PS_LEN, PS_BODY, PS_LOST };

/* One direction of one connection pair. Offsets are absolute stream
 * positions: bytes [out, in) are buffered at buf[off % PROXY_BUF_SIZE]. */
typedef struct pdir {
    uint8_t buf[PROXY_BUF_SIZE];
    uint64_t in, out;
    uint64_t ready;   /* bytes before this have waited their delay */
    uint64_t hold;    /* a matched packet starts here; wait for its length (NO_OFF: none) */
    uint64_t cut_at;  /* cut when everything before this is forwarded (NO_OFF: none) */
    proxy_how cut_how;
    struct {
        uint64_t end, release_us;
    } chunk[CHUNKS];
    size_t chead, ccount;
    uint64_t next_write_us; /* split: not before this */
    bool eof;               /* the source sent FIN */
    bool shut;              /* ... and we passed it on (shutdown(dst, SHUT_WR)) */

    /* framing */
    int ps;
    uint8_t ptype;
    uint64_t pstart;
    uint32_t rl, rl_mult;
    unsigned rl_bytes;
    uint64_t body_left;
    bool pmatch;         /* the packet being parsed matched the rule */
    proxy_when pwhen;
    uint32_t pinside;
    proxy_how phow;
} pdir;

typedef struct pair {
    bool used;
    int fd[2];   /* [0] client side, [1] broker side */
    pdir d[2];   /* [PROXY_UP] reads fd[0] writes fd[1]; [PROXY_DOWN] the other way */
} pair;

struct proxy {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    bool started, stop, cut_all;
    proxy_how cut_all_how;
    int lfd;
    int wake[2];
    uint16_t port, upstream;

    proxy_policy pol;
    bool armed;
    proxy_cut rule;
    uint64_t rule_count; /* packets of the type, or bytes, read since arming */
    proxy_cut next[PROXY_MAX_RULES]; /* armed in turn when `rule` matches */
    size_t nnext;

    proxy_stats st;
    pair pairs[PROXY_MAX_CONNS];
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

const char *proxy_dir_name(proxy_dir d)
{
    return d == PROXY_UP ? "client->broker" : "broker->client";
}

const char *proxy_type_name(unsigned type)
{
    static const char *const names[16] = {"bytes",    "CONNECT",     "CONNACK",  "PUBLISH",
                                          "PUBACK",   "PUBREC",      "PUBREL",   "PUBCOMP",
                                          "SUBSCRIBE", "SUBACK",     "UNSUBSCRIBE", "UNSUBACK",
                                          "PINGREQ",  "PINGRESP",    "DISCONNECT", "AUTH"};
    return type < 16 ? names[type] : "?";
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void wake(proxy *p)
{
    char c = 1;
    ssize_t n = write(p->wake[1], &c, 1); /* a full pipe already wakes the loop */
    (void)n;
}

static void changed(proxy *p)
{
    pthread_cond_broadcast(&p->cv);
}

/* ---- connection pairs ---------------------------------------------------- */

static void dir_init(pdir *d)
{
    /* the buffer is not cleared: only [out, in) is ever read */
    d->in = d->out = d->ready = 0;
    d->hold = d->cut_at = NO_OFF;
    d->cut_how = PROXY_CLOSE;
    d->chead = d->ccount = 0;
    d->next_write_us = 0;
    d->eof = d->shut = false;
    d->ps = PS_TYPE;
    d->pmatch = false;
}

static void close_fd(int fd, proxy_how how)
{
    if (fd < 0) {
        return;
    }
    if (how == PROXY_RESET) {
        struct linger l;
        l.l_onoff = 1;
        l.l_linger = 0;
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(fd);
}

static void pair_close(proxy *p, pair *pr, proxy_how how)
{
    close_fd(pr->fd[0], how);
    close_fd(pr->fd[1], how);
    pr->fd[0] = pr->fd[1] = -1;
    pr->used = false;
    p->st.open--;
    changed(p);
}

static void pair_cut(proxy *p, pair *pr, proxy_how how)
{
    p->st.cuts++;
    pair_close(p, pr, how);
}

static void pair_end(proxy *p, pair *pr)
{
    p->st.ended++;
    pair_close(p, pr, PROXY_CLOSE);
}

/* A non-blocking connection to the broker, waited for at most
 * PROXY_CONNECT_TIMEOUT_MS. */
static int connect_upstream(uint16_t port)
{
    struct sockaddr_in a;
    struct pollfd pf;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    socklen_t len = sizeof err;
    if (fd < 0) {
        return -1;
    }
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno != EINPROGRESS) {
            close(fd);
            return -1;
        }
        pf.fd = fd;
        pf.events = POLLOUT;
        pf.revents = 0;
        if (poll(&pf, 1, PROXY_CONNECT_TIMEOUT_MS) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            close(fd);
            return -1;
        }
    }
    set_nodelay(fd);
    return fd;
}

static void accept_one(proxy *p)
{
    int cfd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int ufd;
    size_t i;
    pair *pr = NULL;
    if (cfd < 0) {
        return;
    }
    p->st.accepted++;
    for (i = 0; i < PROXY_MAX_CONNS && pr == NULL; i++) {
        if (!p->pairs[i].used) {
            pr = &p->pairs[i];
        }
    }
    if (pr == NULL || p->pol.refuse) {
        p->st.refused++;
        close(cfd);
        changed(p);
        return;
    }
    ufd = connect_upstream(p->upstream);
    if (ufd < 0) {
        p->st.upstream_failed++;
        close(cfd);
        changed(p);
        return;
    }
    set_nodelay(cfd);
    pr->used = true;
    pr->fd[0] = cfd;
    pr->fd[1] = ufd;
    dir_init(&pr->d[PROXY_UP]);
    dir_init(&pr->d[PROXY_DOWN]);
    p->st.open++;
    changed(p);
}

/* ---- the rule and the framing -------------------------------------------- */

/* The rule matched at stream offset `at` of direction `dir` of `pr`. */
static void rule_consumed(proxy *p)
{
    p->st.matched++;
    p->rule_count = 0;
    if (p->nnext > 0) {
        p->rule = p->next[0];
        memmove(p->next, p->next + 1, (p->nnext - 1) * sizeof p->next[0]);
        p->nnext--;
    } else {
        p->armed = false;
    }
    changed(p);
}

/* The length of the packet being parsed is known: where the cut goes. */
static void place_packet_cut(pdir *d)
{
    uint64_t total = 1u + d->rl_bytes + d->rl;
    uint64_t at;
    switch (d->pwhen) {
    case PROXY_BEFORE:
        at = d->pstart;
        break;
    case PROXY_INSIDE: {
        uint64_t k = d->pinside;
        if (k < 1) {
            k = 1;
        }
        if (k > total - 1) {
            k = total - 1; /* total >= 2 always */
        }
        at = d->pstart + k;
        break;
    }
    default:
        at = d->pstart + total;
        break;
    }
    if (at < d->cut_at) {
        d->cut_at = at;
        d->cut_how = d->phow;
    }
    d->hold = NO_OFF;
    d->pmatch = false;
}

/* Follow the framing over new bytes [from, from+n) and apply the rule.
 * Bytes past a cut point are never forwarded: they are not looked at. */
static void parse(proxy *p, proxy_dir dir, pdir *d, uint64_t from, size_t n)
{
    size_t i = 0;
    if (d->cut_at != NO_OFF && d->cut_at - from < n) {
        n = d->cut_at > from ? (size_t)(d->cut_at - from) : 0;
    }
    /* a byte rule: how far into these bytes it reaches */
    if (p->armed && p->rule.type == 0 && p->rule.dir == dir) {
        uint64_t need = p->rule.bytes - p->rule_count;
        if (need <= n) {
            uint64_t at = from + need;
            if (at < d->cut_at) {
                d->cut_at = at;
                d->cut_how = p->rule.how;
            }
            rule_consumed(p);
        } else {
            p->rule_count += n;
        }
    }
    while (i < n && from + i < d->cut_at) {
        uint8_t b = d->buf[(from + i) % PROXY_BUF_SIZE];
        switch (d->ps) {
        case PS_TYPE:
            d->ptype = (uint8_t)(b >> 4);
            d->pstart = from + i;
            d->rl = 0;
            d->rl_mult = 1;
            d->rl_bytes = 0;
            p->st.packets[dir][d->ptype]++;
            if (p->armed && p->rule.type != 0 && p->rule.dir == dir &&
                p->rule.type == d->ptype && ++p->rule_count >= p->rule.nth) {
                d->pmatch = true;
                d->pwhen = p->rule.when;
                d->pinside = p->rule.inside;
                d->phow = p->rule.how;
                d->hold = d->pstart; /* forward none of it until its length is known */
                rule_consumed(p);
            }
            d->ps = PS_LEN;
            i++;
            break;
        case PS_LEN:
            d->rl += (uint32_t)(b & 0x7f) * d->rl_mult;
            d->rl_mult *= 128u;
            d->rl_bytes++;
            i++;
            if ((b & 0x80) == 0) {
                if (d->pmatch) {
                    place_packet_cut(d);
                }
                d->body_left = d->rl;
                d->ps = d->rl > 0 ? PS_BODY : PS_TYPE;
            } else if (d->rl_bytes == 4) {
                p->st.bad_framing[dir]++;
                d->ps = PS_LOST;
                d->hold = NO_OFF;
                d->pmatch = false;
            }
            break;
        case PS_BODY: {
            uint64_t k = n - i < d->body_left ? n - i : d->body_left;
            d->body_left -= k;
            i += (size_t)k;
            if (d->body_left == 0) {
                d->ps = PS_TYPE;
            }
            break;
        }
        default: /* lost: forward blindly */
            i = n;
            break;
        }
    }
}

/* ---- moving bytes -------------------------------------------------------- */

static bool may_read(const proxy *p, const pdir *d, proxy_dir dir)
{
    /* past a cut point nothing more is read (the rest of a packet to be cut
     * after, or inside, is read up to the point) */
    return !p->pol.stall[dir] && !d->eof && d->in - d->out < PROXY_BUF_SIZE &&
           d->ccount < CHUNKS && d->in < d->cut_at;
}

/* Bytes that may be written now (0 if none), and whether it is time. */
static uint64_t writable(const proxy *p, const pdir *d, proxy_dir dir, uint64_t now)
{
    uint64_t lim = d->ready;
    if (p->pol.stall[dir]) {
        return 0;
    }
    if (d->hold < lim) {
        lim = d->hold;
    }
    if (d->cut_at < lim) {
        lim = d->cut_at;
    }
    if (lim <= d->out) {
        return 0;
    }
    if (p->pol.split[dir]) {
        return now >= d->next_write_us ? 1 : 0;
    }
    return lim - d->out;
}

/* Move delayed chunks whose time has come into `ready`; the time of the
 * next one (or 0). */
static uint64_t release(pdir *d, uint64_t now)
{
    while (d->ccount > 0 && d->chunk[d->chead].release_us <= now) {
        d->ready = d->chunk[d->chead].end;
        d->chead = (d->chead + 1) % CHUNKS;
        d->ccount--;
    }
    return d->ccount > 0 ? d->chunk[d->chead].release_us : 0;
}

/* Read once from the source. false: the pair is gone. */
static bool do_read(proxy *p, pair *pr, proxy_dir dir, uint64_t now)
{
    pdir *d = &pr->d[dir];
    int src = pr->fd[dir == PROXY_UP ? 0 : 1];
    uint64_t start = d->in % PROXY_BUF_SIZE;
    size_t room = (size_t)(PROXY_BUF_SIZE - (d->in - d->out));
    ssize_t n;
    if (room > PROXY_BUF_SIZE - start) {
        room = (size_t)(PROXY_BUF_SIZE - start);
    }
    if (d->cut_at != NO_OFF && room > d->cut_at - d->in) {
        room = (size_t)(d->cut_at - d->in);
    }
    n = recv(src, d->buf + start, room, MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return true;
        }
        pair_end(p, pr);
        return false;
    }
    if (n == 0) {
        d->eof = true;
        return true;
    }
    parse(p, dir, d, d->in, (size_t)n);
    d->in += (uint64_t)n;
    if (p->pol.delay_ms[dir] == 0 && d->ccount == 0) {
        d->ready = d->in;
    } else {
        size_t slot = (d->chead + d->ccount) % CHUNKS;
        d->chunk[slot].end = d->in;
        d->chunk[slot].release_us = now + (uint64_t)p->pol.delay_ms[dir] * 1000u;
        d->ccount++;
    }
    return true;
}

/* Write once to the destination, then cut or pass on EOF when due.
 * false: the pair is gone. */
static bool do_write(proxy *p, pair *pr, proxy_dir dir, uint64_t now)
{
    pdir *d = &pr->d[dir];
    int dst = pr->fd[dir == PROXY_UP ? 1 : 0];
    uint64_t n = writable(p, d, dir, now);
    if (n > 0) {
        uint64_t start = d->out % PROXY_BUF_SIZE;
        ssize_t w;
        if (n > PROXY_BUF_SIZE - start) {
            n = PROXY_BUF_SIZE - start;
        }
        w = send(dst, d->buf + start, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                return true;
            }
            pair_end(p, pr);
            return false;
        }
        d->out += (uint64_t)w;
        p->st.bytes[dir] += (uint64_t)w;
        p->st.writes[dir]++;
        if (p->pol.split[dir]) {
            d->next_write_us = now + p->pol.split_gap_us;
        }
    }
    if (d->cut_at != NO_OFF && d->out >= d->cut_at) {
        pair_cut(p, pr, d->cut_how);
        return false;
    }
    if (d->eof && !d->shut && d->out == d->in) {
        shutdown(dst, SHUT_WR);
        d->shut = true;
        if (pr->d[PROXY_UP].shut && pr->d[PROXY_DOWN].shut) {
            pair_end(p, pr);
            return false;
        }
    }
    return true;
}

/* ---- the loop ------------------------------------------------------------ */

/* pollfd layout: [0] wake pipe, [1] listener, then two per pair. */
#define NFDS (2 + 2 * PROXY_MAX_CONNS)

static short want_events(const proxy *p, const pair *pr, int side, uint64_t now)
{
    proxy_dir rd = side == 0 ? PROXY_UP : PROXY_DOWN; /* read from this side */
    proxy_dir wd = side == 0 ? PROXY_DOWN : PROXY_UP; /* written to this side */
    short ev = 0;
    if (may_read(p, &pr->d[rd], rd)) {
        ev |= POLLIN;
    }
    if (writable(p, &pr->d[wd], wd, now) > 0) {
        ev |= POLLOUT;
    }
    return ev;
}

/* Fill the poll set; returns the poll timeout in microseconds. */
static uint64_t prepare(proxy *p, struct pollfd *pf, uint64_t now)
{
    uint64_t next = now + (uint64_t)IDLE_WAKE_MS * 1000u;
    size_t i;
    int s;
    pf[0].fd = p->wake[0];
    pf[0].events = POLLIN;
    pf[1].fd = p->lfd;
    pf[1].events = POLLIN;
    for (i = 0; i < PROXY_MAX_CONNS; i++) {
        pair *pr = &p->pairs[i];
        for (s = 0; s < 2; s++) {
            struct pollfd *q = &pf[2 + 2 * i + (size_t)s];
            q->fd = -1;
            q->events = 0;
            q->revents = 0;
        }
        if (!pr->used) {
            continue;
        }
        for (s = 0; s < 2; s++) {
            pdir *d = &pr->d[s];
            uint64_t t = release(d, now);
            if (t != 0 && t < next) {
                next = t;
            }
            if (p->pol.split[s] && d->next_write_us > now && d->next_write_us < next &&
                d->ready > d->out) {
                next = d->next_write_us;
            }
        }
        if (p->pol.stall[PROXY_UP] && p->pol.stall[PROXY_DOWN]) {
            continue; /* a black hole: not even a close is noticed */
        }
        for (s = 0; s < 2; s++) {
            struct pollfd *q = &pf[2 + 2 * i + (size_t)s];
            q->fd = pr->fd[s];
            q->events = want_events(p, pr, s, now);
        }
    }
    return next > now ? next - now : 0;
}

static void service(proxy *p, pair *pr, const struct pollfd *q, uint64_t now)
{
    int s;
    /* reads first, so that a cut point found in them applies to the writes */
    for (s = 0; s < 2; s++) {
        proxy_dir rd = s == 0 ? PROXY_UP : PROXY_DOWN;
        if (q[s].fd < 0) {
            continue;
        }
        if ((q[s].revents & (POLLIN | POLLHUP | POLLERR)) != 0 && may_read(p, &pr->d[rd], rd)) {
            if (!do_read(p, pr, rd, now)) {
                return;
            }
        } else if ((q[s].revents & POLLERR) != 0) {
            pair_end(p, pr);
            return;
        }
    }
    for (s = 0; s < 2; s++) {
        if (!pr->used) {
            return;
        }
        release(&pr->d[s], now);
        if (!do_write(p, pr, (proxy_dir)s, now)) {
            return;
        }
    }
}

static void *loop(void *arg)
{
    proxy *p = arg;
    struct pollfd pf[NFDS];
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        uint64_t now = now_us(), wait_us;
        struct timespec ts;
        size_t i;
        wait_us = prepare(p, pf, now);
        pthread_mutex_unlock(&p->mu);
        ts.tv_sec = (time_t)(wait_us / 1000000u);
        ts.tv_nsec = (long)(wait_us % 1000000u) * 1000L;
        if (ppoll(pf, NFDS, &ts, NULL) < 0 && errno != EINTR) {
            pthread_mutex_lock(&p->mu);
            fprintf(stderr, "proxy: poll: %s\n", strerror(errno));
            break;
        }
        pthread_mutex_lock(&p->mu);
        now = now_us();
        if (pf[0].revents & POLLIN) {
            char junk[64];
            while (read(p->wake[0], junk, sizeof junk) == (ssize_t)sizeof junk) {
            }
        }
        if (p->cut_all) {
            p->cut_all = false;
            for (i = 0; i < PROXY_MAX_CONNS; i++) {
                if (p->pairs[i].used) {
                    pair_cut(p, &p->pairs[i], p->cut_all_how);
                }
            }
            changed(p);
            continue;
        }
        for (i = 0; i < PROXY_MAX_CONNS; i++) {
            /* a pair is serviced only if it was polled as it is now (a slot
             * freed and refilled in this round has fd -1 in pf) */
            if (p->pairs[i].used && pf[2 + 2 * i].fd == p->pairs[i].fd[0]) {
                service(p, &p->pairs[i], &pf[2 + 2 * i], now);
            } else if (p->pairs[i].used && pf[2 + 2 * i].fd < 0) {
                /* stalled both ways, or nothing polled: timers may still be due */
                struct pollfd none[2];
                memset(none, 0, sizeof none);
                none[0].fd = none[1].fd = -1;
                service(p, &p->pairs[i], none, now);
            }
        }
        if (pf[1].revents & POLLIN) {
            accept_one(p);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- the API ------------------------------------------------------------- */

int proxy_start(proxy **out, uint16_t upstream_port)
{
    proxy *p = calloc(1, sizeof *p);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    pthread_condattr_t ca;
    size_t i;
    *out = NULL;
    if (p == NULL) {
        fprintf(stderr, "proxy: out of memory\n");
        return -1;
    }
    p->lfd = -1;
    p->wake[0] = p->wake[1] = -1;
    p->upstream = upstream_port;
    for (i = 0; i < PROXY_MAX_CONNS; i++) {
        p->pairs[i].fd[0] = p->pairs[i].fd[1] = -1;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(p->lfd, 16) != 0 || getsockname(p->lfd, (struct sockaddr *)&a, &len) != 0 ||
        pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        fprintf(stderr, "proxy: cannot listen on 127.0.0.1: %s\n", strerror(errno));
        proxy_stop(p);
        return -1;
    }
    p->port = ntohs(a.sin_port);
    if (pthread_create(&p->th, NULL, loop, p) != 0) {
        fprintf(stderr, "proxy: cannot start its thread\n");
        proxy_stop(p);
        return -1;
    }
    p->started = true;
    *out = p;
    return 0;
}

uint16_t proxy_port(const proxy *p)
{
    return p->port;
}

void proxy_stop(proxy *p)
{
    size_t i;
    if (p == NULL) {
        return;
    }
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_mutex_unlock(&p->mu);
        wake(p);
        /* bounded: the loop checks `stop` after every poll, which waits at
         * most IDLE_WAKE_MS, and blocks nowhere else longer than
         * PROXY_CONNECT_TIMEOUT_MS (connecting upstream) */
        pthread_join(p->th, NULL);
    }
    for (i = 0; i < PROXY_MAX_CONNS; i++) {
        close_fd(p->pairs[i].fd[0], PROXY_CLOSE);
        close_fd(p->pairs[i].fd[1], PROXY_CLOSE);
    }
    if (p->lfd >= 0) {
        close(p->lfd);
    }
    if (p->wake[0] >= 0) {
        close(p->wake[0]);
        close(p->wake[1]);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void proxy_set_policy(proxy *p, const proxy_policy *pol)
{
    pthread_mutex_lock(&p->mu);
    p->pol = *pol;
    pthread_mutex_unlock(&p->mu);
    wake(p);
}

static bool rule_valid(const proxy_cut *cut)
{
    return (cut->dir == PROXY_UP || cut->dir == PROXY_DOWN) && cut->type <= 15 &&
           (cut->type == 0 || cut->nth > 0) && (cut->type != 0 || cut->bytes > 0) &&
           (cut->how == PROXY_CLOSE || cut->how == PROXY_RESET) &&
           (cut->when == PROXY_BEFORE || cut->when == PROXY_INSIDE || cut->when == PROXY_AFTER);
}

int proxy_arm(proxy *p, const proxy_cut *cut)
{
    if (!rule_valid(cut)) {
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    p->rule = *cut;
    p->rule_count = 0;
    p->nnext = 0;
    p->armed = true;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    return 0;
}

int proxy_arm_then(proxy *p, const proxy_cut *cut)
{
    int rc = 0;
    if (!rule_valid(cut)) {
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    if (!p->armed) {
        p->rule = *cut;
        p->rule_count = 0;
        p->armed = true;
    } else if (p->nnext < PROXY_MAX_RULES) {
        p->next[p->nnext++] = *cut;
    } else {
        rc = -1;
    }
    pthread_mutex_unlock(&p->mu);
    wake(p);
    return rc;
}

void proxy_disarm(proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->armed = false;
    p->nnext = 0;
    pthread_mutex_unlock(&p->mu);
}

bool proxy_armed(proxy *p)
{
    bool a;
    pthread_mutex_lock(&p->mu);
    a = p->armed;
    pthread_mutex_unlock(&p->mu);
    return a;
}

void proxy_cut_now(proxy *p, proxy_how how)
{
    pthread_mutex_lock(&p->mu);
    p->cut_all = true;
    p->cut_all_how = how;
    pthread_mutex_unlock(&p->mu);
    wake(p);
}

void proxy_get_stats(proxy *p, proxy_stats *st)
{
    pthread_mutex_lock(&p->mu);
    *st = p->st;
    pthread_mutex_unlock(&p->mu);
}

bool proxy_wait(proxy *p, proxy_pred pred, void *arg, int timeout_ms)
{
    uint64_t deadline = now_us() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000u;
    bool ok;
    pthread_mutex_lock(&p->mu);
    while (!(ok = pred(&p->st, arg))) {
        uint64_t now = now_us(), w;
        struct timespec ts;
        if (now >= deadline) {
            break;
        }
        w = deadline - now < WAIT_SLICE_MS * 1000u ? deadline : now + WAIT_SLICE_MS * 1000u;
        ts.tv_sec = (time_t)(w / 1000000u);
        ts.tv_nsec = (long)(w % 1000000u) * 1000L;
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}
