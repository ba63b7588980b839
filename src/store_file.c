/* The file store: one directory per client id holding `store.log`, an
 * append-only log of checksummed records, and `lock`.
 *
 * Log: a 16-byte file header (FILE_MAGIC), then records of a 12-byte header
 *   [0] 0xB5  [1] type  [2..3] packet id LE  [4..7] body length LE
 *   [8..11] CRC-32 (zlib) of header bytes 0..7 and the body
 * and the body (store_body_encode() for OUT_PUT, empty otherwise). Replaying
 * the records in order rebuilds the live set; the first record that is short
 * or fails its checks ends the log: a write cut by a crash (a torn tail) or
 * damaged bytes are cut off, never loaded. When the log holds more than twice
 * the live records it is rewritten (compacted) to a temporary file that
 * replaces it by rename(), so a crash during compaction leaves one whole log. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "mqttc/error.h"
#include "store_index.h"

#define FILE_MAGIC "mqttc-store v1\n"
#define FILE_MAGIC_LEN 16u
#define REC_HEAD 12u
#define REC_MARK 0xB5u
#define DEFAULT_COMPACT ((size_t)1 << 20)
#define MAX_BODY (4u + 65535u + 268435455u)

enum { REC_OUT_PUT = 1, REC_OUT_RELEASE, REC_OUT_REMOVE, REC_IN_PUT, REC_IN_REMOVE, REC_CLEAR };

typedef struct file_store {
    mqttc_store base;
    store_index x;
    mqttc_store_file_options opt;
    mqttc_store_file_stats stats;
    char *dir;  /* the client's directory */
    int fd;     /* the log, O_APPEND */
    int lock_fd;
    uint64_t end; /* log size */
} file_store;

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v);
    put16(p + 2, v >> 16);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t rec_crc(const uint8_t *head, const uint8_t *body, size_t len)
{
    uLong crc = crc32(0L, head, 8);
    /* zlib takes uInt lengths: feed large bodies in pieces */
    while (len > 0) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = crc32(crc, body, n);
        body += n;
        len -= n;
    }
    return (uint32_t)crc;
}

static void rec_head(uint8_t *h, int type, uint16_t id, const uint8_t *body, size_t len)
{
    h[0] = REC_MARK;
    h[1] = (uint8_t)type;
    put16(h + 2, id);
    put32(h + 4, (uint32_t)len);
    put32(h + 8, rec_crc(h, body, len));
}

/* Write all of iov to fd at its end; on failure cut the file back. */
static int write_all(int fd, uint64_t end, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int e = errno;
            if (ftruncate(fd, (off_t)end) != 0) { /* best effort: a torn tail is cut on load anyway */
            }
            errno = e;
            return MQTTC_ERR_STORE;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int append(file_store *s, int type, uint16_t id, const uint8_t *body, size_t len)
{
    uint8_t h[REC_HEAD];
    struct iovec iov[2];
    int rc;
    rec_head(h, type, id, body, len);
    iov[0].iov_base = h;
    iov[0].iov_len = REC_HEAD;
    iov[1].iov_base = (void *)(uintptr_t)body;
    iov[1].iov_len = len;
    rc = write_all(s->fd, s->end, iov, len > 0 ? 2 : 1);
    if (rc == 0 && s->opt.sync == MQTTC_STORE_SYNC_ALWAYS && fdatasync(s->fd) != 0) {
        rc = MQTTC_ERR_STORE;
    }
    if (rc == 0) {
        s->end += REC_HEAD + len;
    }
    return rc;
}

/* ---- compaction ----------------------------------------------------------- */

static char *path_of(const file_store *s, const char *name)
{
    size_t n = strlen(s->dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL) {
        snprintf(p, n, "%s/%s", s->dir, name);
    }
    return p;
}

static int read_at(int fd, uint8_t *dst, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t r = pread(fd, dst, len, (off_t)off);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return MQTTC_ERR_STORE;
        }
        dst += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0) {
        return MQTTC_ERR_STORE;
    }
    if (fsync(fd) != 0) {
        rc = MQTTC_ERR_STORE;
    }
    close(fd);
    return rc;
}

/* Read o's body into *buf (grown as needed). */
static int read_body(const file_store *s, const store_out *o, uint8_t **buf, size_t *cap)
{
    if (o->len > *cap) {
        uint8_t *b = realloc(*buf, o->len);
        if (b == NULL) {
            return MQTTC_ERR_NO_MEMORY;
        }
        *buf = b;
        *cap = o->len;
    }
    return read_at(s->fd, *buf, o->len, o->off);
}

/* Write the live records to a new log; on success it replaces the old one
 * and the index points into it. */
static int compact(file_store *s)
{
    char *tmp = path_of(s, "store.log.tmp"), *log = path_of(s, "store.log");
    uint64_t *offs = malloc((s->x.n - s->x.head + 1) * sizeof *offs);
    uint8_t *buf = NULL;
    size_t cap = 0, i;
    uint64_t end = FILE_MAGIC_LEN;
    int fd = -1, rc = MQTTC_ERR_NO_MEMORY;
    uint32_t id;

    if (tmp == NULL || log == NULL || offs == NULL) {
        goto out;
    }
    rc = MQTTC_ERR_STORE;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, FILE_MAGIC, FILE_MAGIC_LEN) != (ssize_t)FILE_MAGIC_LEN) {
        goto out;
    }
    for (i = s->x.head; i < s->x.n; i++) {
        store_out *o = &s->x.v[i];
        uint8_t h[REC_HEAD];
        struct iovec iov[2];
        if (!o->live) {
            continue;
        }
        rc = read_body(s, o, &buf, &cap); /* MQTTC_ERR_NO_MEMORY or MQTTC_ERR_STORE */
        if (rc < 0) {
            goto out;
        }
        rc = MQTTC_ERR_STORE; /* for the failures below */
        if (o->released) {
            buf[1] |= 2u; /* fold the RELEASE record into the body */
        }
        rec_head(h, REC_OUT_PUT, o->id, buf, o->len);
        iov[0].iov_base = h;
        iov[0].iov_len = REC_HEAD;
        iov[1].iov_base = buf;
        iov[1].iov_len = o->len;
        if (write_all(fd, end, iov, 2) < 0) {
            goto out;
        }
        offs[i - s->x.head] = end + REC_HEAD;
        end += REC_HEAD + o->len;
    }
    for (id = 1; id <= 65535u; id++) {
        uint8_t h[REC_HEAD];
        struct iovec iov[1];
        if (!store_index_in_test(&s->x, (uint16_t)id)) {
            continue;
        }
        rec_head(h, REC_IN_PUT, (uint16_t)id, NULL, 0);
        iov[0].iov_base = h;
        iov[0].iov_len = REC_HEAD;
        if (write_all(fd, end, iov, 1) < 0) {
            goto out;
        }
        end += REC_HEAD;
    }
    /* Always flushed: a rename over the old log must never expose a log
     * whose blocks are not on the disk yet. */
    if (fdatasync(fd) != 0 || rename(tmp, log) != 0) {
        goto out;
    }
    sync_dir(s->dir);
    close(s->fd);
    s->fd = open(log, O_RDWR | O_APPEND | O_CLOEXEC);
    if (s->fd < 0) { /* the new log is in place but unusable: report it */
        goto out;
    }
    s->end = end;
    for (i = s->x.head; i < s->x.n; i++) {
        if (s->x.v[i].live) {
            s->x.v[i].off = offs[i - s->x.head];
        }
    }
    s->stats.compactions++;
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (rc < 0 && tmp != NULL) {
        unlink(tmp);
    }
    free(buf);
    free(offs);
    free(tmp);
    free(log);
    return rc;
}

static int maybe_compact(file_store *s)
{
    uint64_t live = FILE_MAGIC_LEN + s->x.live_bytes +
                    (uint64_t)REC_HEAD * (s->x.live_out + s->x.live_in);
    if (s->end > s->opt.compact_bytes && s->end > 2 * live) {
        return compact(s);
    }
    return 0;
}

/* ---- operations ----------------------------------------------------------- */

static int file_put(void *ctx, const mqttc_store_record *r)
{
    file_store *s = ctx;
    store_out *o;
    uint8_t *body;
    size_t len;
    int rc;
    if (r->kind == MQTTC_STORE_INBOUND) {
        rc = append(s, REC_IN_PUT, r->packet_id, NULL, 0);
        if (rc == 0) {
            store_index_in_set(&s->x, r->packet_id, true);
        }
        return rc;
    }
    len = store_body_size(r);
    if (len > MAX_BODY || r->topic_len == 0 || r->topic_len > 65535u || r->qos < 1 || r->qos > 2) {
        return MQTTC_ERR_INVALID_ARG;
    }
    body = malloc(len);
    if (body == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    store_body_encode(body, r);
    o = store_index_add(&s->x, r->packet_id);
    if (o == NULL) {
        free(body);
        return MQTTC_ERR_NO_MEMORY;
    }
    o->off = s->end + REC_HEAD;
    o->len = (uint32_t)len;
    o->released = r->released;
    s->x.live_bytes += len;
    rc = append(s, REC_OUT_PUT, r->packet_id, body, len);
    free(body);
    if (rc < 0) {
        store_index_kill(&s->x, store_index_find(&s->x, r->packet_id));
    }
    return rc;
}

static int file_release(void *ctx, uint16_t id)
{
    file_store *s = ctx;
    store_out *o = store_index_find(&s->x, id);
    int rc;
    if (o == NULL || o->released) {
        return 0;
    }
    rc = append(s, REC_OUT_RELEASE, id, NULL, 0);
    if (rc == 0) {
        o->released = true;
    }
    return rc;
}

static int file_remove(void *ctx, mqttc_store_kind kind, uint16_t id)
{
    file_store *s = ctx;
    int rc;
    if (kind == MQTTC_STORE_INBOUND) {
        if (!store_index_in_test(&s->x, id)) {
            return 0;
        }
        rc = append(s, REC_IN_REMOVE, id, NULL, 0);
        if (rc == 0) {
            store_index_in_set(&s->x, id, false);
        }
    } else {
        store_out *o = store_index_find(&s->x, id);
        if (o == NULL) {
            return 0;
        }
        rc = append(s, REC_OUT_REMOVE, id, NULL, 0);
        if (rc == 0) {
            store_index_kill(&s->x, o);
        }
    }
    return rc == 0 ? maybe_compact(s) : rc;
}

static int file_clear(void *ctx, mqttc_store_kind kind)
{
    file_store *s = ctx;
    int rc;
    if (kind == MQTTC_STORE_INBOUND ? s->x.live_in == 0 : s->x.live_out == 0) {
        return 0;
    }
    rc = append(s, REC_CLEAR, (uint16_t)kind, NULL, 0);
    if (rc == 0) {
        store_index_clear(&s->x, kind);
        rc = maybe_compact(s);
    }
    return rc;
}

static int file_load(void *ctx, mqttc_store_each each, void *arg)
{
    file_store *s = ctx;
    uint8_t *buf = NULL;
    size_t cap = 0, i;
    int rc = 0;
    for (i = s->x.head; i < s->x.n && rc == 0; i++) {
        store_out *o = &s->x.v[i];
        mqttc_store_record r;
        if (!o->live) {
            continue;
        }
        rc = read_body(s, o, &buf, &cap);
        if (rc == 0) {
            rc = store_body_decode(buf, o->len, o->id, &r);
        }
        if (rc == 0) {
            r.released = o->released;
            rc = each(arg, &r);
        }
    }
    free(buf);
    return rc < 0 ? rc : store_index_load_inbound(&s->x, each, arg);
}

static void file_close(void *ctx)
{
    file_store *s = ctx;
    if (s->fd >= 0) {
        close(s->fd);
    }
    if (s->lock_fd >= 0) {
        close(s->lock_fd); /* releases the flock */
    }
    store_index_free(&s->x);
    free(s->dir);
    free(s);
}

static const mqttc_store_ops file_ops = {file_put,   file_release, file_remove,
                                         file_clear, file_load,    file_close};

/* ---- opening ------------------------------------------------------------- */

/* Apply one valid record to the index. */
static void replay(file_store *s, int type, uint16_t id, const uint8_t *body, uint32_t len,
                   uint64_t off)
{
    store_out *o;
    switch (type) {
    case REC_OUT_PUT:
        o = store_index_add(&s->x, id);
        if (o != NULL) {
            o->off = off;
            o->len = len;
            o->released = (body[1] & 2u) != 0;
            s->x.live_bytes += len;
        }
        break;
    case REC_OUT_RELEASE:
        if ((o = store_index_find(&s->x, id)) != NULL) {
            o->released = true;
        }
        break;
    case REC_OUT_REMOVE:
        if ((o = store_index_find(&s->x, id)) != NULL) {
            store_index_kill(&s->x, o);
        }
        break;
    case REC_IN_PUT:
    case REC_IN_REMOVE:
        store_index_in_set(&s->x, id, type == REC_IN_PUT);
        break;
    default: /* REC_CLEAR */
        store_index_clear(&s->x, (mqttc_store_kind)id);
        break;
    }
}

/* Is the record at buf (avail bytes) whole and valid? Returns its length or 0. */
static size_t check_record(const uint8_t *buf, size_t avail, uint16_t packet_id_out[1])
{
    uint32_t len;
    int type;
    mqttc_store_record r;
    if (avail < REC_HEAD || buf[0] != REC_MARK) {
        return 0;
    }
    type = buf[1];
    len = get32(buf + 4);
    if (type < REC_OUT_PUT || type > REC_CLEAR || len > avail - REC_HEAD ||
        (type != REC_OUT_PUT && len != 0) || get32(buf + 8) != rec_crc(buf, buf + REC_HEAD, len)) {
        return 0;
    }
    packet_id_out[0] = (uint16_t)(buf[2] | buf[3] << 8);
    if (type == REC_CLEAR ? packet_id_out[0] != MQTTC_STORE_OUTBOUND &&
                                packet_id_out[0] != MQTTC_STORE_INBOUND
                          : packet_id_out[0] == 0) {
        return 0;
    }
    if (type == REC_OUT_PUT && store_body_decode(buf + REC_HEAD, len, packet_id_out[0], &r) < 0) {
        return 0;
    }
    return REC_HEAD + len;
}

static int read_log(file_store *s, const char *log)
{
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *buf = NULL;
    size_t size, pos;
    int rc = MQTTC_ERR_STORE;

    if (fd < 0 || fstat(fd, &st) != 0) {
        goto out;
    }
    size = (size_t)st.st_size;
    if (size == 0) {
        rc = 0;
        s->end = 0;
        goto out;
    }
    buf = malloc(size);
    if (buf == NULL) {
        rc = MQTTC_ERR_NO_MEMORY;
        goto out;
    }
    if (read_at(fd, buf, size, 0) < 0) {
        goto out;
    }
    if (size < FILE_MAGIC_LEN || memcmp(buf, FILE_MAGIC, FILE_MAGIC_LEN) != 0) {
        errno = EINVAL; /* not a log of ours: leave it alone */
        goto out;
    }
    pos = FILE_MAGIC_LEN;
    for (;;) {
        uint16_t id;
        size_t n = check_record(buf + pos, size - pos, &id);
        if (n == 0) {
            break;
        }
        replay(s, buf[pos + 1], id, buf + pos + REC_HEAD, (uint32_t)(n - REC_HEAD),
               pos + REC_HEAD);
        s->stats.records++;
        pos += n;
    }
    s->stats.dropped_bytes = size - pos;
    s->end = pos;
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return rc;
}

/* dir/<client id with every byte outside [A-Za-z0-9_-] as %XX> */
static char *client_dir(const char *dir, const char *id)
{
    size_t n = strlen(dir), i;
    char *p = malloc(n + 2 + 3 * strlen(id));
    char *q;
    if (p == NULL) {
        return NULL;
    }
    memcpy(p, dir, n);
    q = p + n;
    *q++ = '/';
    for (i = 0; id[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)id[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '_' || ch == '-') {
            *q++ = (char)ch;
        } else {
            q += sprintf(q, "%%%02X", ch);
        }
    }
    *q = '\0';
    return p;
}

static int open_files(file_store *s)
{
    char *log = path_of(s, "store.log"), *lock = path_of(s, "lock");
    int rc = MQTTC_ERR_NO_MEMORY;
    if (log == NULL || lock == NULL) {
        goto out;
    }
    rc = MQTTC_ERR_STORE;
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        goto out;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? MQTTC_ERR_STORE_LOCKED : MQTTC_ERR_STORE;
        goto out;
    }
    s->fd = open(log, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        goto out;
    }
    rc = read_log(s, log);
    if (rc < 0) {
        goto out;
    }
    if (s->end == 0) { /* new log */
        if (write(s->fd, FILE_MAGIC, FILE_MAGIC_LEN) != (ssize_t)FILE_MAGIC_LEN) {
            rc = MQTTC_ERR_STORE;
            goto out;
        }
        s->end = FILE_MAGIC_LEN;
    } else if (s->stats.dropped_bytes > 0 && ftruncate(s->fd, (off_t)s->end) != 0) {
        rc = MQTTC_ERR_STORE; /* appending after a bad tail would hide new records */
        goto out;
    }
    s->stats.outbound = s->x.live_out;
    s->stats.inbound = s->x.live_in;
out:
    free(log);
    free(lock);
    return rc;
}

int mqttc_store_file_open(const char *dir, const char *client_id,
                          const mqttc_store_file_options *opts, mqttc_store **out)
{
    file_store *s;
    int rc;
    if (dir == NULL || client_id == NULL || out == NULL || dir[0] == '\0' ||
        client_id[0] == '\0' || (opts != NULL && opts->sync > MQTTC_STORE_SYNC_ALWAYS)) {
        return MQTTC_ERR_INVALID_ARG;
    }
    *out = NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    s->fd = s->lock_fd = -1;
    if (opts != NULL) {
        s->opt = *opts;
    }
    if (s->opt.compact_bytes == 0) {
        s->opt.compact_bytes = DEFAULT_COMPACT;
    }
    s->base.ops = &file_ops;
    s->base.ctx = s;
    s->dir = client_dir(dir, client_id);
    if (s->dir == NULL) {
        rc = MQTTC_ERR_NO_MEMORY;
    } else if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
               (mkdir(s->dir, 0700) != 0 && errno != EEXIST)) {
        rc = MQTTC_ERR_STORE;
    } else {
        rc = open_files(s);
    }
    if (rc < 0) {
        int e = errno;
        file_close(s);
        errno = e;
        return rc;
    }
    *out = &s->base;
    return 0;
}

void mqttc_store_file_stats_get(const mqttc_store *s, mqttc_store_file_stats *st)
{
    if (st == NULL) {
        return;
    }
    memset(st, 0, sizeof *st);
    if (s != NULL && s->ops == &file_ops) {
        *st = ((const file_store *)s->ctx)->stats;
    }
}
