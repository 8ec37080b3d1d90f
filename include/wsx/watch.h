/*
 * wsx/watch.h — watching an application's own file descriptor on a wsx loop (stdin for an
 * interactive client, a pipe, another library's socket).
 */
#ifndef WSX_WATCH_H
#define WSX_WATCH_H

#include "wsx/common.h"
#include "wsx/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wsx_watch wsx_watch;

#define WSX_READABLE 1u
#define WSX_WRITABLE 2u
#define WSX_HANGUP   4u /* error or hang-up; always reported */

/* fd is ready: `events` has the WSX_* bits that apply. */
typedef void (*wsx_watch_cb)(wsx_watch *w, int fd, unsigned events, void *arg);

/*
 * Watches fd (level-triggered) for `events` (WSX_READABLE | WSX_WRITABLE) and calls cb on the
 * loop thread while it is ready. The fd stays the caller's: it is not closed. A watcher keeps
 * wsx_loop_run() alive. Returns 0, WSX_EINVAL, WSX_ENOMEM, WSX_ESYS (epoll refused the fd,
 * e.g. a regular file); *out untouched on failure.
 */
WSX_API int wsx_watch_start(wsx_loop *loop, int fd, unsigned events, wsx_watch_cb cb, void *arg,
                            wsx_watch **out);

/* Changes the events watched. Returns 0 or WSX_ESYS. */
WSX_API int wsx_watch_modify(wsx_watch *w, unsigned events);

/* Stops watching and frees the watcher; safe inside its callback. NULL is a no-op. */
WSX_API void wsx_watch_stop(wsx_watch *w);

#ifdef __cplusplus
}
#endif
#endif
