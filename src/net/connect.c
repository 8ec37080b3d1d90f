/*
 * Outgoing TCP connects: literals at once, names resolved on a short-lived worker thread,
 * addresses tried in order under one deadline, the result always delivered from the loop.
 */
#define WSX__NET_INTERNAL
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------
 * Outgoing connections
 * --------------------------------------------------------------------------------------- */

struct wsx__resolve_job {
    wsx__resolve_job *next;      /* loop->jobs: every thread not yet joined */
    wsx__resolve_job *next_done; /* loop->jobs_done */
    wsx_loop *loop;
    wsx__connect_req *req; /* NULL once the request gave up; loop thread only */
    pthread_t thread;
    struct addrinfo *res;
    int gai_err;
    char port[8];
    char host[];
};

struct wsx__connect_req {
    wsx_loop *loop;
    wsx__connect_cb cb;
    void *arg;
    wsx__io io; /* the attempt in progress; fd -1 between attempts */
    wsx__timer timer;
    wsx__deferred done;
    struct addrinfo *res, *next_ai;
    wsx__resolve_job *job;
    int last_errno;
    int result_fd;
    int result_err;
};

static void connect_release(wsx__connect_req *req)
{
    wsx_loop *loop = req->loop;
    if (req->job) {
        req->job->req = NULL;
        req->job = NULL;
        loop->nrefs--;
    }
    if (req->io.fd >= 0) {
        wsx__io_stop(loop, &req->io);
        close(req->io.fd);
        req->io.fd = -1;
    }
    wsx__timer_stop(loop, &req->timer);
    wsx__loop_undefer(loop, &req->done);
    if (req->res) freeaddrinfo(req->res);
    req->res = req->next_ai = NULL;
}

static void connect_deliver(wsx_loop *loop, wsx__deferred *d)
{
    wsx__connect_req *req = wsx__container_of(d, wsx__connect_req, done);
    connect_release(req);
    req->cb(req->result_fd, req->result_err, req->arg);
    free(req);
}

/* Results always travel through the deferred queue: the callback then never runs inside
 * wsx__connect() and always after the caller has stored the request handle. */
static void connect_complete(wsx__connect_req *req, int fd, int err)
{
    wsx_loop *loop = req->loop;
    if (req->io.fd >= 0) {
        wsx__io_stop(loop, &req->io);
        close(req->io.fd);
        req->io.fd = -1;
    }
    wsx__timer_stop(loop, &req->timer);
    req->result_fd = fd;
    req->result_err = err;
    wsx__loop_defer(loop, &req->done);
}

static void connect_io_cb(wsx_loop *loop, wsx__io *io, uint32_t revents);

static void connect_next(wsx__connect_req *req)
{
    while (req->next_ai) {
        struct addrinfo *ai = req->next_ai;
        req->next_ai = ai->ai_next;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            req->last_errno = errno;
            continue;
        }
        wsx__tcp_nodelay(fd);
        int r;
        do {
            r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        } while (r < 0 && errno == EINTR);
        if (r == 0) {
            connect_complete(req, fd, 0);
            return;
        }
        if (errno == EINPROGRESS) {
            wsx__io_init(&req->io, fd, connect_io_cb);
            if (wsx__io_start(req->loop, &req->io, WSX__IO_WRITE) == 0) return;
            req->io.fd = -1;
        }
        req->last_errno = errno;
        close(fd);
    }
    connect_complete(req, -1, req->last_errno ? wsx__errno_code(req->last_errno) : WSX_ERESOLVE);
}

static void connect_io_cb(wsx_loop *loop, wsx__io *io, uint32_t revents)
{
    wsx__connect_req *req = wsx__container_of(io, wsx__connect_req, io);
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err == 0 && !(revents & WSX__IO_WRITE)) err = ECONNRESET;
    if (err == 0) {
        int fd = io->fd;
        wsx__io_stop(loop, io);
        io->fd = -1;
        connect_complete(req, fd, 0);
        return;
    }
    wsx__io_stop(loop, io);
    close(io->fd);
    io->fd = -1;
    req->last_errno = err;
    connect_next(req);
}

static void connect_timeout(wsx_loop *loop, wsx__timer *t)
{
    wsx__connect_req *req = wsx__container_of(t, wsx__connect_req, timer);
    if (req->job) {
        req->job->req = NULL;
        req->job = NULL;
        loop->nrefs--;
    }
    req->next_ai = NULL;
    connect_complete(req, -1, WSX_ETIMEDOUT);
}

static void *resolve_main(void *p)
{
    wsx__resolve_job *job = p;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV};
    job->gai_err = getaddrinfo(job->host, job->port, &hints, &job->res);
    wsx_loop *loop = job->loop;
    pthread_mutex_lock(&loop->mu);
    job->next_done = loop->jobs_done;
    loop->jobs_done = job;
    pthread_mutex_unlock(&loop->mu);
    wsx__loop_wake(loop);
    return NULL;
}

static void job_unlink_free(wsx_loop *loop, wsx__resolve_job *job)
{
    for (wsx__resolve_job **pp = &loop->jobs; *pp; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            break;
        }
    }
    if (job->res) freeaddrinfo(job->res);
    free(job);
}

void wsx__resolve_done(wsx_loop *loop, wsx__resolve_job *list)
{
    while (list) {
        wsx__resolve_job *job = list;
        list = job->next_done;
        /* The thread has published its result and only returns now: the join is brief. */
        pthread_join(job->thread, NULL);
        wsx__connect_req *req = job->req;
        if (req) {
            req->job = NULL;
            loop->nrefs--;
            if (job->gai_err != 0) {
                connect_complete(req, -1, job->gai_err == EAI_MEMORY ? WSX_ENOMEM : WSX_ERESOLVE);
            } else {
                req->res = req->next_ai = job->res;
                job->res = NULL;
                connect_next(req);
            }
        }
        job_unlink_free(loop, job);
    }
}

void wsx__resolve_free_all(wsx_loop *loop)
{
    while (loop->jobs) {
        wsx__resolve_job *job = loop->jobs;
        pthread_join(job->thread, NULL);
        if (job->req) job->req->job = NULL;
        job_unlink_free(loop, job);
    }
    loop->jobs_done = NULL;
}

static int start_resolve(wsx__connect_req *req, const char *host, const char *port)
{
    size_t hlen = strlen(host);
    wsx__resolve_job *job = calloc(1, sizeof *job + hlen + 1);
    if (!job) return WSX_ENOMEM;
    memcpy(job->host, host, hlen + 1);
    memcpy(job->port, port, sizeof job->port);
    job->loop = req->loop;
    job->req = req;
    /* The worker must never be picked to handle a process signal (SIGINT would otherwise
     * kill the process instead of reaching the loop's signalfd). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&job->thread, NULL, resolve_main, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        free(job);
        return e == EAGAIN ? WSX_ELIMIT : WSX_ESYS;
    }
    job->next = req->loop->jobs;
    req->loop->jobs = job;
    req->job = job;
    req->loop->nrefs++;
    return 0;
}

int wsx__connect(wsx_loop *loop, const char *host, uint16_t port, uint64_t timeout_ms,
                 wsx__connect_cb cb, void *arg, wsx__connect_req **out)
{
    if (!loop || !host || !host[0] || !cb) return WSX_EINVAL;
    char name[256];
    size_t hlen = strlen(host);
    /* Accept the URL form of an IPv6 literal too. */
    if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
        if (hlen - 2 >= sizeof name) return WSX_EINVAL;
        memcpy(name, host + 1, hlen - 2);
        name[hlen - 2] = 0;
    } else {
        if (hlen >= sizeof name) return WSX_EINVAL;
        memcpy(name, host, hlen + 1);
    }
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);

    wsx__connect_req *req = calloc(1, sizeof *req);
    if (!req) return WSX_ENOMEM;
    req->loop = loop;
    req->cb = cb;
    req->arg = arg;
    req->result_fd = -1;
    wsx__io_init(&req->io, -1, connect_io_cb);
    wsx__timer_init(&req->timer, connect_timeout);
    wsx__deferred_init(&req->done, connect_deliver);

    /* A literal needs no lookup: getaddrinfo with AI_NUMERICHOST never blocks. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(name, portstr, &hints, &res);
    if (g == 0) {
        req->res = req->next_ai = res;
        connect_next(req);
    } else if (g == EAI_NONAME) {
        int rc = start_resolve(req, name, portstr);
        if (rc < 0) {
            free(req);
            return rc;
        }
    } else {
        connect_complete(req, -1, g == EAI_MEMORY ? WSX_ENOMEM : WSX_ERESOLVE);
    }
    if (timeout_ms && !wsx__deferred_pending(&req->done))
        wsx__timer_start(loop, &req->timer, timeout_ms);
    if (out) *out = req;
    return 0;
}

void wsx__connect_cancel(wsx__connect_req *req)
{
    if (!req) return;
    if (req->result_fd >= 0) close(req->result_fd);
    connect_release(req);
    free(req);
}
