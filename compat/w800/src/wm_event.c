/* The W800 event bus (wm_event.h): a bounded queue served by one thread.
 *
 * The SDK's event API takes no handle, so its state is process-global by
 * nature. That global state lives here, in the compat layer only (the native
 * library has none), in `g_bus`, and every field of it is guarded by
 * g_bus.mu. Callbacks are called without the lock held, from a snapshot of
 * the matching registrations, so a callback may add, remove, send or even
 * deinit. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wm_event.h"
#include "wm_event_priv.h"

typedef struct ev_reg {
    wm_event_group_t group;
    int event;
    wm_event_callback cb;
    void *priv;
    struct ev_reg *next;
} ev_reg;

typedef struct ev_entry {
    wm_event_group_t group;
    int event;
    void *data; /* heap copy of `size` bytes, NULL when size is 0 */
    size_t size;
    wm_event__dispose dispose;
} ev_entry;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t nonempty, nonfull;
    ev_reg *regs;
    ev_entry q[WM_EVENT_QUEUE_LEN];
    size_t head, count;
    bool running;  /* the current event task exists */
    unsigned gen;  /* bumped by deinit: a task of an older generation exits */
    pthread_t task;
} g_bus = {.mu = PTHREAD_MUTEX_INITIALIZER,
           .nonempty = PTHREAD_COND_INITIALIZER,
           .nonfull = PTHREAD_COND_INITIALIZER};

static bool reg_matches(const ev_reg *r, wm_event_group_t group, int event)
{
    return (r->group == WM_EVENT_ANY_GROUP || r->group == group) &&
           (r->event == WM_EVENT_ANY_TYPE || r->event == event);
}

static void entry_drop(ev_entry *e)
{
    if (e->dispose != NULL && e->data != NULL) {
        e->dispose(e->data);
    }
    free(e->data);
    e->data = NULL;
}

/* Call every matching callback; returns how many ran. Lock not held. */
static size_t dispatch(ev_entry *e)
{
    pthread_mutex_lock(&g_bus.mu);
    size_t n = 0;
    for (ev_reg *r = g_bus.regs; r != NULL; r = r->next) {
        n += reg_matches(r, e->group, e->event);
    }
    ev_reg *snap = n > 0 ? malloc(n * sizeof *snap) : NULL;
    size_t i = 0;
    for (ev_reg *r = g_bus.regs; snap != NULL && r != NULL; r = r->next) {
        if (reg_matches(r, e->group, e->event)) {
            snap[i++] = *r;
        }
    }
    pthread_mutex_unlock(&g_bus.mu);
    for (size_t k = 0; k < i; k++) {
        snap[k].cb(e->group, e->event, e->data, snap[k].priv);
    }
    free(snap);
    return i;
}

static void *event_task(void *arg)
{
    unsigned gen = (unsigned)(uintptr_t)arg;
    pthread_mutex_lock(&g_bus.mu);
    for (;;) {
        while (g_bus.count == 0 && g_bus.gen == gen) {
            pthread_cond_wait(&g_bus.nonempty, &g_bus.mu);
        }
        if (g_bus.gen != gen) {
            break;
        }
        ev_entry e = g_bus.q[g_bus.head];
        g_bus.head = (g_bus.head + 1) % WM_EVENT_QUEUE_LEN;
        g_bus.count--;
        pthread_cond_broadcast(&g_bus.nonfull);
        pthread_mutex_unlock(&g_bus.mu);
        if (dispatch(&e) == 0) {
            entry_drop(&e);
        } else {
            free(e.data); /* what the data points to now belongs to the callbacks */
        }
        pthread_mutex_lock(&g_bus.mu);
    }
    pthread_mutex_unlock(&g_bus.mu);
    return NULL;
}

/* Start the task if needed. Lock held. */
static int start_locked(void)
{
    if (g_bus.running) {
        return WM_ERR_SUCCESS;
    }
    if (pthread_create(&g_bus.task, NULL, event_task, (void *)(uintptr_t)g_bus.gen) != 0) {
        return WM_ERR_FAILED;
    }
    g_bus.running = true;
    return WM_ERR_SUCCESS;
}

static bool on_event_task_locked(void)
{
    return g_bus.running && pthread_equal(g_bus.task, pthread_self());
}

int wm_event_init(void)
{
    pthread_mutex_lock(&g_bus.mu);
    int rc = start_locked();
    pthread_mutex_unlock(&g_bus.mu);
    return rc;
}

int wm_event_deinit(void)
{
    pthread_mutex_lock(&g_bus.mu);
    while (g_bus.regs != NULL) {
        ev_reg *r = g_bus.regs;
        g_bus.regs = r->next;
        free(r);
    }
    ev_entry dropped[WM_EVENT_QUEUE_LEN];
    size_t ndropped = 0;
    while (g_bus.count > 0) {
        dropped[ndropped++] = g_bus.q[g_bus.head];
        g_bus.head = (g_bus.head + 1) % WM_EVENT_QUEUE_LEN;
        g_bus.count--;
    }
    g_bus.head = 0;
    bool had_task = g_bus.running;
    bool self = on_event_task_locked();
    pthread_t task = g_bus.task;
    if (had_task) {
        g_bus.gen++;
        g_bus.running = false;
        pthread_cond_broadcast(&g_bus.nonempty);
        pthread_cond_broadcast(&g_bus.nonfull);
    }
    pthread_mutex_unlock(&g_bus.mu);
    for (size_t i = 0; i < ndropped; i++) {
        entry_drop(&dropped[i]);
    }
    if (had_task && self) {
        pthread_detach(task); /* called from a callback: the task exits when it returns */
    } else if (had_task) {
        pthread_join(task, NULL);
    }
    return WM_ERR_SUCCESS;
}

int wm_event_add_callback(wm_event_group_t group, int event, wm_event_callback cb, void *priv)
{
    if (cb == NULL) {
        return WM_ERR_INVALID_PARAM;
    }
    ev_reg *r = malloc(sizeof *r);
    if (r == NULL) {
        return WM_ERR_NO_MEM;
    }
    *r = (ev_reg){.group = group, .event = event, .cb = cb, .priv = priv, .next = NULL};
    pthread_mutex_lock(&g_bus.mu);
    ev_reg **tail = &g_bus.regs; /* appended: callbacks run in registration order */
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    *tail = r;
    int rc = start_locked();
    pthread_mutex_unlock(&g_bus.mu);
    return rc;
}

int wm_event_remove_callback(wm_event_group_t group, int event, wm_event_callback cb,
                             void *priv)
{
    int rc = WM_ERR_NOT_FOUND;
    pthread_mutex_lock(&g_bus.mu);
    for (ev_reg **p = &g_bus.regs; *p != NULL; p = &(*p)->next) {
        ev_reg *r = *p;
        if (r->group == group && r->event == event && r->cb == cb && r->priv == priv) {
            *p = r->next;
            free(r);
            rc = WM_ERR_SUCCESS;
            break;
        }
    }
    pthread_mutex_unlock(&g_bus.mu);
    return rc;
}

static void deadline_in(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int wm_event__send_owned(wm_event_group_t group, int event, void *data, size_t size,
                         wm_event__dispose dispose)
{
    if (data == NULL && size > 0) {
        return WM_ERR_INVALID_PARAM;
    }
    ev_entry e = {.group = group, .event = event, .data = NULL, .size = size, .dispose = dispose};
    if (size > 0) {
        e.data = malloc(size);
        if (e.data == NULL) {
            return WM_ERR_NO_MEM;
        }
        memcpy(e.data, data, size);
    }
    pthread_mutex_lock(&g_bus.mu);
    int rc = start_locked();
    struct timespec dl;
    deadline_in(&dl, WM_EVENT_SEND_TIMEOUT_MS);
    while (rc == WM_ERR_SUCCESS && g_bus.count == WM_EVENT_QUEUE_LEN) {
        if (on_event_task_locked()) {
            rc = WM_ERR_BUSY;
        } else if (pthread_cond_timedwait(&g_bus.nonfull, &g_bus.mu, &dl) == ETIMEDOUT) {
            rc = WM_ERR_TIMEOUT;
        } else if (!g_bus.running) {
            rc = start_locked(); /* deinit ran while we waited */
        }
    }
    if (rc == WM_ERR_SUCCESS) {
        g_bus.q[(g_bus.head + g_bus.count) % WM_EVENT_QUEUE_LEN] = e;
        g_bus.count++;
        pthread_cond_signal(&g_bus.nonempty);
    }
    pthread_mutex_unlock(&g_bus.mu);
    if (rc != WM_ERR_SUCCESS) {
        entry_drop(&e);
    }
    return rc;
}

int wm_event_send(wm_event_group_t group, int event, void *data, size_t size)
{
    return wm_event__send_owned(group, event, data, size, NULL);
}
