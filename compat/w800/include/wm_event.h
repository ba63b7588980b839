/**
 * @file wm_event.h
 * @brief The W800 SDK event bus: modules post (group, event, data) and the
 *        application's callbacks run on the event task.
 *
 * Groups are compared by address, never by string: declare a group with
 * WM_EVENT_DECLARE_GROUP(g) in a header and define it once with
 * WM_EVENT_DEFINE_GROUP(g) in a C file.
 *
 * Threads: the event task is a thread started by wm_event_init() (or, lazily,
 * by the first wm_event_add_callback() or wm_event_send()). Callbacks run on
 * it, one at a time in posting order, never on the caller's thread. Every
 * function may be called from any thread, including from a callback. The bus
 * is process-global, as in the SDK (docs/W800.md).
 *
 * Example:
 * @code
 *   WM_EVENT_DEFINE_GROUP(MY_GROUP);
 *   static void on_ev(wm_event_group_t g, int ev, void *data, void *priv) { ... }
 *   wm_event_add_callback(MY_GROUP, WM_EVENT_ANY_TYPE, on_ev, NULL);
 *   int value = 42;
 *   wm_event_send(MY_GROUP, 1, &value, sizeof value); // on_ev gets a copy
 * @endcode
 */
#ifndef WM_EVENT_H
#define WM_EVENT_H

#include "wm_types.h"
#include "wm_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An event group: the address of a constant string. */
typedef const char *wm_event_group_t;

/** Declare a group (in a header). */
#define WM_EVENT_DECLARE_GROUP(g) extern wm_event_group_t const g
/** Define a group (once, in a C file). */
#define WM_EVENT_DEFINE_GROUP(g) wm_event_group_t const g = #g

/** Filter matching every group. */
#define WM_EVENT_ANY_GROUP NULL
/** Filter matching every event of a group. */
#define WM_EVENT_ANY_TYPE -1

/**
 * @brief An event callback. `data` points to the event task's copy of what
 *        was sent (NULL when the size was 0), valid only during the call.
 */
typedef void (*wm_event_callback)(wm_event_group_t group, int event, void *data, void *priv);

/** Start the event task. Idempotent: WM_ERR_SUCCESS when it already runs;
 *  WM_ERR_NO_MEM or WM_ERR_FAILED when it cannot start. */
int wm_event_init(void);

/** Remove every callback, drop the events still queued and stop the event
 *  task (waiting for a running callback to return, unless called from one).
 *  WM_ERR_SUCCESS. */
int wm_event_deinit(void);

/**
 * @brief Call `cb(group, event, data, priv)` for events matching `group`
 *        (or any group, WM_EVENT_ANY_GROUP) and `event` (or WM_EVENT_ANY_TYPE).
 * @return WM_ERR_SUCCESS, WM_ERR_INVALID_PARAM (cb NULL), WM_ERR_NO_MEM.
 */
int wm_event_add_callback(wm_event_group_t group, int event, wm_event_callback cb, void *priv);

/** Remove the callback registered with exactly these four values.
 *  WM_ERR_SUCCESS, or WM_ERR_NOT_FOUND. */
int wm_event_remove_callback(wm_event_group_t group, int event, wm_event_callback cb,
                             void *priv);

/**
 * @brief Post an event. `size` bytes of `data` are copied into the queue; the
 *        callbacks receive that copy on the event task.
 * @return WM_ERR_SUCCESS; WM_ERR_INVALID_PARAM (data NULL with size > 0);
 *         WM_ERR_NO_MEM; WM_ERR_TIMEOUT when the bounded queue stayed full for
 *         WM_EVENT_SEND_TIMEOUT_MS; WM_ERR_BUSY when it is full and the caller is
 *         the event task itself (waiting would deadlock).
 */
int wm_event_send(wm_event_group_t group, int event, void *data, size_t size);

/** Entries of the event queue. */
#ifndef WM_EVENT_QUEUE_LEN
#define WM_EVENT_QUEUE_LEN 64
#endif
/** How long wm_event_send() waits for room in a full queue. */
#ifndef WM_EVENT_SEND_TIMEOUT_MS
#define WM_EVENT_SEND_TIMEOUT_MS 5000
#endif

#ifdef __cplusplus
}
#endif
#endif /* WM_EVENT_H */
