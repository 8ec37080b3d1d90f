/* Application fd watchers: a thin public wrapper over the loop's wsx__io. */
#include <stdlib.h>

#include "net/net.h"
#include "wsx/watch.h"

struct wsx_watch {
    wsx__io io;
    wsx__deferred free_later;
    wsx_loop *loop;
    wsx_watch_cb cb;
    void *arg;
};

static uint32_t to_epoll(unsigned events)
{
    return (events & WSX_READABLE ? WSX__IO_READ : 0) | (events & WSX_WRITABLE ? WSX__IO_WRITE : 0);
}

static void on_io(wsx_loop *loop, wsx__io *io, uint32_t revents)
{
    wsx_watch *w = wsx__container_of(io, wsx_watch, io);
    (void)loop;
    unsigned ev = (revents & WSX__IO_READ ? WSX_READABLE : 0u) |
                  (revents & WSX__IO_WRITE ? WSX_WRITABLE : 0u) |
                  (revents & (WSX__IO_ERR | WSX__IO_HUP) ? WSX_HANGUP : 0u);
    w->cb(w, io->fd, ev, w->arg);
}

static void free_watch(wsx_loop *loop, wsx__deferred *d)
{
    (void)loop;
    free(wsx__container_of(d, wsx_watch, free_later));
}

int wsx_watch_start(wsx_loop *loop, int fd, unsigned events, wsx_watch_cb cb, void *arg,
                    wsx_watch **out)
{
    if (!loop || fd < 0 || !cb) return WSX_EINVAL;
    wsx_watch *w = calloc(1, sizeof *w);
    if (!w) return WSX_ENOMEM;
    w->loop = loop;
    w->cb = cb;
    w->arg = arg;
    wsx__io_init(&w->io, fd, on_io);
    wsx__deferred_init(&w->free_later, free_watch);
    int rc = wsx__io_start(loop, &w->io, to_epoll(events));
    if (rc < 0) {
        free(w);
        return rc;
    }
    if (out) *out = w;
    return 0;
}

int wsx_watch_modify(wsx_watch *w, unsigned events)
{
    return wsx__io_modify(w->loop, &w->io, to_epoll(events));
}

void wsx_watch_stop(wsx_watch *w)
{
    if (!w) return;
    wsx__io_stop(w->loop, &w->io);
    /* Freed after the iteration: the callback that called us may still be on the stack. */
    wsx__loop_defer(w->loop, &w->free_later);
}
