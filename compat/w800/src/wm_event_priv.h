/* Internal to the W800 face: an event whose data owns heap memory. */
#ifndef WM_EVENT_PRIV_H
#define WM_EVENT_PRIV_H

#include "wm_event.h"

/** Called with the queued copy of the data when no callback received it
 *  (none matched, the send failed, or the queue was dropped by deinit). */
typedef void (*wm_event__dispose)(void *data);

/** wm_event_send() plus `dispose`: whatever the result, what the data points to
 *  belongs to the bus from now on (disposed of on failure). */
int wm_event__send_owned(wm_event_group_t group, int event, void *data, size_t size,
                         wm_event__dispose dispose);

#endif /* WM_EVENT_PRIV_H */
