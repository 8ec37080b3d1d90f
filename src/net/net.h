/*
 * src/net/net.h — the transport layer's internal API for the layers above (http, ws, ...).
 *
 * This layer knows nothing of HTTP or WebSocket: it moves bytes between sockets and owners.
 *
 * General rules (they apply to every call below unless it says otherwise):
 *  - Thread: everything here runs on the loop's thread. The only cross-thread entry point is
 *    wsx_loop_post() (wsx/loop.h).
 *  - Errors: fallible calls return 0 or a negative WSX_E* code. If a call that takes a
 *    callback fails, that callback is never called.
 *  - Embedding: wsx__io, wsx__timer, wsx__deferred and wsx__stream are embedded by value in
 *    their owner's struct; the owner finds itself again with wsx__container_of(). Their
 *    fields are private to src/net/. The owner keeps the memory valid as long as the object
 *    is started/queued/open, as stated per type.
 *  - Re-entrancy: callbacks are never nested in each other. Inside any callback it is safe to
 *    stop/close any object, including the one whose callback is running; memory of a closed
 *    stream stays valid until its on_close returns, which happens at the end of the iteration.
 */
#ifndef WSX_NET_H
#define WSX_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "wsx/common.h"
#include "wsx/loop.h"

#define wsx__container_of(ptr, type, member)                                                       \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* =========================================================================================
 * Loop helpers
 * ========================================================================================= */

/* Size of the loop's shared receive buffer (wsx_loop.rbuf): streams read into it and lend it to
 * on_read; the next read overwrites it. */
#define WSX__RBUF_SIZE (256u * 1024u)

/* Counters for tests and metrics; monotonically increasing since wsx_loop_new(). */
typedef struct wsx__loop_stats {
    uint64_t iterations;   /* completed loop iterations */
    uint64_t writev_calls; /* writev() calls made by streams (corked flushes and EPOLLOUT) */
    uint64_t read_calls;   /* read() calls made by streams */
    uint64_t epoll_ctl_calls;
    uint64_t ssl_write_calls; /* SSL_write() calls made by TLS streams (one record each at most
                                 16 KiB, see the TLS section) */
    uint64_t ssl_read_calls;  /* SSL_read() calls made by TLS streams */
    uint64_t fanout_polls;    /* extra input polls before a fan-out flush (see the loop) */
} wsx__loop_stats;

const wsx__loop_stats *wsx__loop_stats_get(const wsx_loop *loop);

/* =========================================================================================
 * fd watchers (epoll, level-triggered)
 * ========================================================================================= */

/* Interest and readiness bits; they are the epoll bits. revents may also carry ERR and HUP,
 * which are always reported while the watcher is started, whatever the interest. */
#define WSX__IO_READ  EPOLLIN
#define WSX__IO_WRITE EPOLLOUT
#define WSX__IO_ERR   EPOLLERR
#define WSX__IO_HUP   EPOLLHUP

typedef struct wsx__io wsx__io;
/* Called on the loop thread during the I/O phase when io's fd is ready. */
typedef void (*wsx__io_cb)(wsx_loop *loop, wsx__io *io, uint32_t revents);

struct wsx__io {
    int fd;
    uint16_t events; /* interest currently registered with epoll */
    uint16_t flags;  /* private */
    wsx__io_cb cb;
};

/* Prepares a watcher for fd; does not touch epoll. The fd stays the caller's. */
void wsx__io_init(wsx__io *io, int fd, wsx__io_cb cb);

/*
 * Registers io with the loop for `events` (WSX__IO_READ | WSX__IO_WRITE, or 0 to receive
 * only errors and hang-ups). A started watcher keeps wsx_loop_run() alive. Starting a started
 * watcher is the same as wsx__io_modify(). The io must stay valid until wsx__io_stop().
 * Returns 0 or WSX_ESYS (epoll_ctl failed; errno set).
 */
int wsx__io_start(wsx_loop *loop, wsx__io *io, uint32_t events);

/* Changes the interest of a started watcher; calls epoll_ctl only if it changed.
 * Returns 0 or WSX_ESYS. */
int wsx__io_modify(wsx_loop *loop, wsx__io *io, uint32_t events);

/*
 * Unregisters io. Events already collected for it in the current iteration are dropped, so
 * once this returns its callback will not run again and the io may be freed at once, even
 * from inside its own callback. Does not close the fd. No-op if not started.
 */
void wsx__io_stop(wsx_loop *loop, wsx__io *io);

/* =========================================================================================
 * Timers: a hashed timing wheel, 1 ms ticks, O(1) start and stop
 * ========================================================================================= */

typedef struct wsx__timer wsx__timer;
/* Called on the loop thread in the timer phase; the timer is already stopped, so the
 * callback may restart it, stop other timers, or free the memory holding it. */
typedef void (*wsx__timer_cb)(wsx_loop *loop, wsx__timer *t);

struct wsx__timer {
    wsx__timer *next, *prev; /* private: slot links; prev == NULL when stopped */
    uint64_t when;           /* private: expiry, in loop milliseconds */
    wsx__timer_cb cb;
};

/* Prepares a stopped timer. Must be called once before the first start. */
void wsx__timer_init(wsx__timer *t, wsx__timer_cb cb);

/*
 * (Re)starts t to fire once, delay_ms after wsx_loop_now() (never in the current timer
 * phase, even with delay 0). Restarting a started timer moves its deadline; O(1), no
 * allocation. A started timer keeps wsx_loop_run() alive; its memory must stay valid until
 * it fires or is stopped.
 */
void wsx__timer_start(wsx_loop *loop, wsx__timer *t, uint64_t delay_ms);

/* Stops t if started; O(1). Afterwards its callback will not run and it may be freed. */
void wsx__timer_stop(wsx_loop *loop, wsx__timer *t);

static inline bool wsx__timer_active(const wsx__timer *t)
{
    return t->prev != NULL;
}

/* =========================================================================================
 * Deferred work: run once at the end of the current iteration
 * ========================================================================================= */

typedef struct wsx__deferred wsx__deferred;
typedef void (*wsx__deferred_cb)(wsx_loop *loop, wsx__deferred *d);

struct wsx__deferred {
    wsx__deferred *next, **pprev; /* private: pprev == NULL when not queued */
    wsx__deferred_cb cb;
};

/* Prepares a node. Must be called once before the first wsx__loop_defer(). */
void wsx__deferred_init(wsx__deferred *d, wsx__deferred_cb cb);

/*
 * Queues d to run in the deferred phase of this iteration (after I/O and timer callbacks,
 * before close callbacks and the flush of corked writes), in queueing order. Queueing a node
 * that is already queued does nothing. A node queued from a deferred callback runs in the
 * next iteration (the loop does not block in between). Pending nodes keep wsx_loop_run()
 * alive; the node's memory must stay valid until it has run or been cancelled. When the
 * callback runs, d is no longer queued and may be freed or queued again.
 */
void wsx__loop_defer(wsx_loop *loop, wsx__deferred *d);

/* Removes d from the queue if queued; O(1). */
void wsx__loop_undefer(wsx_loop *loop, wsx__deferred *d);

static inline bool wsx__deferred_pending(const wsx__deferred *d)
{
    return d->pprev != NULL;
}

/* =========================================================================================
 * Shared reference-counted buffers (for broadcast)
 * ========================================================================================= */

/* A byte buffer with a single-threaded reference count. The creator holds one reference;
 * the bytes may be written until the buffer is first queued, read-only afterwards. */
typedef struct wsx__ref {
    uint32_t refs;
    size_t len;
    uint8_t data[];
} wsx__ref;

/* Allocates a buffer of len bytes (uninitialised) with one reference; NULL if out of memory. */
wsx__ref *wsx__ref_new(size_t len);
/* Adds a reference; returns r. */
wsx__ref *wsx__ref_retain(wsx__ref *r);
/* Drops a reference; frees the buffer on the last one. NULL is a no-op. */
void wsx__ref_release(wsx__ref *r);

/* =========================================================================================
 * Streams: a non-blocking TCP connection, embedded by value in its owner
 * ========================================================================================= */

typedef struct wsx__stream wsx__stream;
typedef struct wsx__qnode wsx__qnode;

/*
 * The callbacks of one kind of stream (say, "ws server connection"), shared by all of them:
 * a const static struct, so a stream stores one pointer. All run on the loop thread, never
 * nested; inside any of them every stream call is allowed on any stream, including close.
 */
typedef struct wsx__stream_vt {
    /* Bytes arrived. data points into the loop's shared receive buffer and is valid only
     * until the callback returns: consume it or copy what is needed. len > 0. Not called
     * while reading is paused or after close. Required. */
    void (*on_read)(wsx__stream *s, const uint8_t *data, size_t len);
    /* The peer shut down its sending side (orderly EOF). Reading stops; writing still works;
     * the owner decides when to wsx__stream_shutdown_write()/wsx__stream_close(). If NULL,
     * EOF closes the stream at once with WSX_ECLOSED, dropping queued output. Optional. */
    void (*on_eof)(wsx__stream *s);
    /* The output queue became empty after having been blocked by a full socket buffer (it
     * is not called when corked output is flushed in one go). Writes made here are corked
     * as usual. Optional. */
    void (*on_drain)(wsx__stream *s);
    /* Called exactly once for every stream that wsx__stream_init() accepted, at the end of
     * the iteration in which the stream was closed (by the owner or by an error). err is 0
     * when the owner called wsx__stream_close(); WSX_ECLOSED on EOF without on_eof or when
     * the peer hung up; WSX_ECONNREFUSED / WSX_ETIMEDOUT / WSX_ESYS on socket errors; for
     * TLS streams also WSX_ETLS, and WSX_ETIMEDOUT for the handshake deadline (see
     * wsx__stream_init_tls()). After it returns the stream is no longer used by the loop:
     * the owner may free its memory in the callback. Required. */
    void (*on_close)(wsx__stream *s, int err);
} wsx__stream_vt;

struct wsx__stream {
    wsx__io io;
    const wsx__stream_vt *vt; /* private: for a TLS stream, a copy of the owner's callbacks
                                 inside the TLS state, which is how that state is found
                                 without a field of its own (plain streams stay 64 bytes) */
    wsx_loop *loop;
    wsx__qnode *qtail; /* private: circular output queue (tail->next is the head) */
    wsx__stream *next; /* private: link in the loop's pending list (corked or closing) */
    size_t queued;     /* private: bytes in the output queue */
    uint32_t flags;    /* private */
    int err;           /* private: close reason */
};

/*
 * Takes ownership of fd (a connected, non-blocking stream socket, as wsx__listen() and
 * wsx__connect() hand out) and starts reading. From now on exactly one vt->on_close will be
 * delivered. s must stay valid until then. On failure, fd is closed, no callback fires and s needs
 * no cleanup. Returns 0 or WSX_ESYS.
 */
int wsx__stream_init(wsx_loop *loop, wsx__stream *s, int fd, const wsx__stream_vt *vt);

/*
 * Copies the bytes of iov[0..n) to the output queue (appending to the last chunk while it has
 * room; an idle stream holds no chunk). Nothing is sent now: the stream is corked until the
 * end of the iteration, when all corked streams are flushed with writev(); what the kernel
 * does not take stays queued and is sent as the socket becomes writable.
 * Returns 0, WSX_ECLOSED (closed, or write side shut down) or WSX_ENOMEM (nothing queued).
 */
int wsx__stream_write(wsx__stream *s, const struct iovec *iov, int n);

/* Same as wsx__stream_write() for one buffer. */
int wsx__stream_write1(wsx__stream *s, const void *p, size_t len);

/*
 * Queues p[0..len), a slice of ref's bytes, without copying; the queue takes its own
 * reference, released once the slice is written or the stream closes. The caller keeps
 * its reference. Corked like wsx__stream_write(). The slice queue node comes from a per-loop
 * cache, so steady-state broadcast does not allocate.
 * Returns 0, WSX_ECLOSED, WSX_EINVAL (len > UINT32_MAX) or WSX_ENOMEM.
 */
int wsx__stream_write_ref(wsx__stream *s, wsx__ref *ref, const uint8_t *p, size_t len);

/* Bytes queued and not yet accepted by the kernel (corked ones included). */
static inline size_t wsx__stream_queued(const wsx__stream *s)
{
    return s->queued;
}

/*
 * While on, on_drain also fires after every write that takes bytes from the queue (not only
 * when it empties), so an owner can wait for the queue to fall to a low-water mark of its
 * own and then switch this off. Off by default.
 */
void wsx__stream_want_drain(wsx__stream *s, bool on);

/*
 * Half-closes: once everything queued has been written, shutdown(SHUT_WR) is called, so the
 * peer reads EOF. Reading continues. Later writes fail with WSX_ECLOSED. Idempotent.
 */
void wsx__stream_shutdown_write(wsx__stream *s);

/*
 * Closes now: the fd is closed, queued output is dropped, no further on_read/on_eof/on_drain
 * fire, and on_close(s, 0) is delivered at the end of the iteration. Safe in any callback,
 * including the stream's own. Idempotent (a stream already closing keeps its first reason).
 */
void wsx__stream_close(wsx__stream *s);

/* Stops reading (backpressure); on_read will not fire until resumed. Output is unaffected.
 * Pausing stops EPOLLIN interest, so unread data stays in the kernel and TCP's window closes.
 * A peer that resets the connection is still detected. */
void wsx__stream_pause(wsx__stream *s);
/* Resumes reading after wsx__stream_pause(). No-op if not paused or after EOF. */
void wsx__stream_resume(wsx__stream *s);

static inline bool wsx__stream_is_closing(const wsx__stream *s)
{
    return (s->flags & 1u) != 0;
}

/* True while the kernel's socket buffer is full: the last write left bytes queued and the
 * stream waits to be writable. Not blocked means every byte queued before the end of the
 * previous iteration has been written. */
static inline bool wsx__stream_blocked(const wsx__stream *s)
{
    return (s->flags & 0x004u) != 0; /* WSX__S_WANTW */
}

/* The socket's fd. For socket options only: never read, write or close. After
 * wsx__stream_close() it stays open (and unused) until on_close has returned, so the peer
 * address can still be read. */
static inline int wsx__stream_fd(const wsx__stream *s)
{
    return s->io.fd;
}

/*
 * Writes the peer address as text, "127.0.0.1:5555" or "[::1]:5555", NUL-terminated, into
 * buf (64 bytes are always enough). Works until on_close has returned. Returns the length,
 * or WSX_ENOSPC / WSX_ESYS.
 */
int wsx__stream_peer(const wsx__stream *s, char *buf, size_t cap);

/* Formats a socket address as above. Returns the length, WSX_ENOSPC or WSX_EINVAL. */
int wsx__addr_format(const struct sockaddr *sa, char *buf, size_t cap);

/* =========================================================================================
 * The process-wide budget of queued output (wsx_set_max_queued_bytes() in wsx.h)
 *
 * Every byte in a stream's output queue (owned chunks and shared slices alike, counted as
 * wsx__stream_queued() counts them) is also counted in its loop, and each loop adds what
 * changed to one atomic process total: at the end of every iteration in which its count
 * changed, and at once when a write makes its count grow by a step (min(256 KiB, budget/16))
 * since its last check. A write costs an add and a compare; the atomic is touched once per
 * iteration at most, and not at all while the queues are empty at the end of the iteration
 * (the common case: corked output is written at once). When a check finds the total above the
 * budget, the loop runs its budget hooks in the deferred phase of the iteration: the owners
 * of streams (the WebSocket servers) drop their largest queues. Streams know nothing of the
 * budget otherwise.
 * ========================================================================================= */

typedef struct wsx__budget_hook wsx__budget_hook;
struct wsx__budget_hook {
    wsx__budget_hook *next; /* private */
    /* The process total is `excess` bytes above the budget: drop streams of this loop with
     * the largest queues (each close frees its queue at once) until that much is freed or
     * nothing worth dropping is left. Runs on the loop thread, in the deferred phase; the
     * hook stays registered. */
    void (*shed)(wsx__budget_hook *h, size_t excess);
};

/* Registers h on loop (hooks run in registration order, each only while the total is still
 * above the budget). h must stay valid until removed. */
void wsx__loop_add_budget_hook(wsx_loop *loop, wsx__budget_hook *h);
/* Removes h; no-op if not registered. */
void wsx__loop_remove_budget_hook(wsx_loop *loop, wsx__budget_hook *h);
/* Bytes in the output queues of loop's streams, exact. */
size_t wsx__loop_queued(const wsx_loop *loop);

/* =========================================================================================
 * Per-loop state of the layers above (pub/sub's hub): the loop keeps it, finds it by key and
 * frees it with the loop, so it lives exactly as long as the loop without the loop knowing
 * what it is.
 * ========================================================================================= */

typedef struct wsx__loop_ext wsx__loop_ext;
struct wsx__loop_ext {
    wsx__loop_ext *next; /* private */
    const void *key;     /* names the kind: the address of a static object of its layer */
    /* Called by wsx_loop_free(), after the destructors of posts that never ran. */
    void (*free_fn)(wsx__loop_ext *e);
};

/* Attaches e (embedded in its owner's struct) to loop; e must stay valid until the loop is
 * freed. At most one per key. */
void wsx__loop_ext_add(wsx_loop *loop, wsx__loop_ext *e);
/* The extension attached under key, or NULL. */
wsx__loop_ext *wsx__loop_ext_find(const wsx_loop *loop, const void *key);

/* =========================================================================================
 * Listening sockets
 * ========================================================================================= */

typedef struct wsx__listener wsx__listener;

/*
 * A new connection. fd is non-blocking, close-on-exec, TCP_NODELAY, and belongs to the
 * callee, which must close it or hand it to wsx__stream_init(). peer is borrowed for the call.
 * The listener may be closed inside the callback.
 */
typedef void (*wsx__accept_cb)(wsx__listener *l, int fd, const struct sockaddr *peer,
                               socklen_t peer_len, void *arg);

/*
 * The process ran out of descriptors while accepting: sys_err is EMFILE or ENFILE. When the
 * waiting connection could be shed (accepted on the listener's spare descriptor and closed at
 * once: the client reads EOF), peer is its address; otherwise peer is NULL and accepting
 * pauses for 100 ms. Called on the loop thread, for logging and counting; the listener may
 * be closed inside it. Called once per connection shed: rate-limit what it logs.
 */
typedef void (*wsx__overload_cb)(wsx__listener *l, int sys_err, const struct sockaddr *peer,
                                 socklen_t peer_len, void *arg);

typedef struct wsx__listen_opts {
    const char *host; /* NULL or "" = any address (IPv6 "::" dual-stack, else 0.0.0.0); an
                         IPv4/IPv6 literal or a name (resolved synchronously, first address
                         that binds wins) */
    uint16_t port;    /* 0 = ephemeral; read it back with wsx__listener_port() */
    int backlog;      /* 0 = SOMAXCONN */
    bool reuseport;   /* SO_REUSEPORT, for one listener per loop/thread on the same port */
    wsx__overload_cb on_overload; /* optional; gets the accept callback's arg */
} wsx__listen_opts;

/*
 * Binds, listens and starts accepting. SO_REUSEADDR is always set; IPV6_V6ONLY is cleared so
 * "::" accepts IPv4 too. Connections are accepted in batches (at most 64 per readiness event,
 * for fairness with other sockets). A listener holds one spare descriptor (/dev/null) in
 * reserve: when the process runs out of descriptors (EMFILE/ENFILE), it closes the spare,
 * accepts the waiting connection, closes it at once and reopens the spare, so a newcomer is
 * turned away in microseconds instead of waiting in the backlog until it times out (see
 * wsx__overload_cb). Only if the spare cannot be had, or on ENOBUFS/ENOMEM, accepting
 * pauses for 100 ms instead of spinning. A listener keeps wsx_loop_run() alive.
 * Returns 0, WSX_EINVAL, WSX_ERESOLVE (host did not resolve), WSX_EADDRINUSE, WSX_ENOMEM or
 * WSX_ESYS; *out untouched on failure.
 */
int wsx__listen(wsx_loop *loop, const wsx__listen_opts *opts, wsx__accept_cb cb, void *arg,
                wsx__listener **out);

/* The bound port (the real one when 0 was asked for). */
uint16_t wsx__listener_port(const wsx__listener *l);

/* Stops accepting, closes the socket and frees the listener; no callback fires afterwards.
 * Safe inside its own on_accept (the free then happens when the callback returns). */
void wsx__listener_close(wsx__listener *l);

/* =========================================================================================
 * Outgoing connections
 * ========================================================================================= */

typedef struct wsx__connect_req wsx__connect_req;

/*
 * The result of wsx__connect(), called once on the loop thread, never from inside
 * wsx__connect() itself. On success fd >= 0 (non-blocking, close-on-exec, TCP_NODELAY,
 * connected; owned by the callee) and err == 0. On failure fd == -1 and err is
 * WSX_ERESOLVE, WSX_ECONNREFUSED, WSX_ETIMEDOUT, WSX_ENOMEM or WSX_ESYS. The request is freed
 * when the callback returns.
 */
typedef void (*wsx__connect_cb)(int fd, int err, void *arg);

/*
 * Connects to host:port without blocking the loop. A numeric host (IPv4 or IPv6 literal, no
 * brackets) is used directly; a name is resolved by getaddrinfo() on a short-lived worker
 * thread whose result is handed back to the loop. Each address is then tried in order.
 * timeout_ms bounds the whole operation (resolution included); 0 means no timeout.
 * The request keeps wsx_loop_run() alive. *out (may be NULL) receives a handle valid until
 * the callback runs, for wsx__connect_cancel().
 * Returns 0, WSX_EINVAL or WSX_ENOMEM (then the callback never runs).
 */
int wsx__connect(wsx_loop *loop, const char *host, uint16_t port, uint64_t timeout_ms,
                 wsx__connect_cb cb, void *arg, wsx__connect_req **out);

/*
 * Gives up on a pending connect: the callback will not run, any socket is closed and the
 * request is freed (a resolution still running on its thread finishes in the background and
 * its result is discarded). Must not be called after the callback has run.
 */
void wsx__connect_cancel(wsx__connect_req *req);

/* =========================================================================================
 * TLS (OpenSSL 3): contexts and TLS streams. Implemented in src/net/tls.c.
 *
 * A TLS stream is a wsx__stream: the same vtable (on_read gets plaintext), the same write,
 * write_ref, corking, pause/resume, shutdown_write and close calls. Differences are listed
 * at wsx__stream_init_tls(). Plain streams do not pay for TLS: no field is added to them.
 * ========================================================================================= */

typedef struct wsx__tls_ctx wsx__tls_ctx;

/* Default deadline for a TLS handshake, from wsx__stream_init_tls() to its completion. */
#define WSX__TLS_HANDSHAKE_MS 10000u

/* A certificate chain (PEM: leaf first, then intermediates) and its private key (PEM). */
typedef struct wsx__tls_cert {
    const char *cert_file;
    const char *key_file;
} wsx__tls_cert;

typedef struct wsx__tls_server_opts {
    /* One or more certificates, at least one. certs[0] is the default; when a client sends
     * SNI, the first certificate whose names (subjectAltName, else CN; wildcards allowed)
     * match the requested name is used instead. The paths are copied (for reload). */
    const wsx__tls_cert *certs;
    size_t ncerts;
    /* TLS 1.2 cipher list (OpenSSL syntax); NULL = ECDHE with AES-GCM or ChaCha20-Poly1305
     * only (forward secrecy, AEAD). */
    const char *ciphers;
    /* TLS 1.3 suites; NULL = TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:
     * TLS_CHACHA20_POLY1305_SHA256. */
    const char *ciphersuites;
    /* Handshake deadline in ms; 0 = WSX__TLS_HANDSHAKE_MS. */
    uint32_t handshake_timeout_ms;
} wsx__tls_server_opts;

typedef struct wsx__tls_client_opts {
    /* PEM file of trusted CAs used instead of the system store; NULL = the system store
     * (OpenSSL's default paths). */
    const char *cafile;
    /* Skip all verification of the server (chain and name). For tests and debugging only:
     * it makes the connection open to interception. */
    bool insecure;
    const char *ciphers;           /* as in wsx__tls_server_opts */
    const char *ciphersuites;      /* as in wsx__tls_server_opts */
    uint32_t handshake_timeout_ms; /* 0 = WSX__TLS_HANDSHAKE_MS */
} wsx__tls_client_opts;

/*
 * Creates a server context: TLS 1.2 minimum, renegotiation refused, ALPN "http/1.1" selected
 * when the client offers it, SNI over o->certs. Every file is read now. On failure *out is
 * untouched and, if errcap > 0, err receives a NUL-terminated reason such as
 * "cannot load certificate chain from /x/cert.pem: No such file or directory" (errcap 256
 * is always enough for the fixed part; paths are truncated to fit).
 * Returns 0, WSX_EINVAL (no certificate, a NULL path), WSX_ETLS (a file could not be loaded,
 * the key does not match, a cipher string was rejected) or WSX_ENOMEM.
 */
int wsx__tls_server_new(const wsx__tls_server_opts *o, wsx__tls_ctx **out, char *err,
                        size_t errcap);

/*
 * Creates a client context: TLS 1.2 minimum, ALPN "http/1.1" offered, the server's chain
 * verified against the system store or o->cafile, and its name verified against the
 * server_name given to each stream (unless o->insecure). Errors as wsx__tls_server_new().
 * Clients with the same settings share one context (creating one costs more than a
 * handshake): *out may be a context another client holds, and each caller frees its own
 * reference with wsx__tls_ctx_free(). Thread-safe.
 */
int wsx__tls_client_new(const wsx__tls_client_opts *o, wsx__tls_ctx **out, char *err,
                        size_t errcap);

/*
 * Re-reads every file the context was made from (certificates and keys; the CA file of a
 * client context) into a fresh OpenSSL context and swaps it in: streams started afterwards
 * use the new files, streams already started keep the configuration they began with until
 * they close. On failure nothing changes, the old configuration stays in use, and err gets
 * the reason. Thread-safe: may be called from any thread, also while streams on other loops
 * are being started with ctx (e.g. from a SIGHUP handler's loop).
 * Returns 0, WSX_ETLS or WSX_ENOMEM.
 */
int wsx__tls_ctx_reload(wsx__tls_ctx *ctx, char *err, size_t errcap);

/* Drops the creator's reference. Streams started with ctx keep what they need, so ctx may
 * be freed while they are open. NULL is a no-op. */
void wsx__tls_ctx_free(wsx__tls_ctx *ctx);

/* True for a context made by wsx__tls_server_new(). */
bool wsx__tls_ctx_is_server(const wsx__tls_ctx *ctx);

/*
 * As wsx__stream_init(), for a TLS connection over fd: the server or client side according
 * to ctx. server_name: for a client context, the host name or IP literal (IPv6 with or
 * without brackets) the server must prove it is, also sent as SNI (not for IP literals); it
 * is required unless the context is insecure (then it is only sent as SNI and may be NULL);
 * for a server context it must be NULL. The string is copied.
 *
 * The handshake runs on the loop without blocking, bounded by the context's deadline.
 * Meanwhile writes are queued as usual and leave after the handshake; on_read only ever sees
 * application data. A failed handshake closes the stream: on_close(s, WSX_ETLS), or
 * WSX_ETIMEDOUT when the deadline passed, with the reason in wsx__stream_tls_error().
 *
 * Writes: the corked queue is flushed in TLS records of up to 16 KiB: queued pieces smaller
 * than that are gathered into one record (1000 small writes of one iteration become one or
 * two SSL_write calls), larger ones are encrypted in place. wsx__stream_queued() counts
 * plaintext bytes not yet taken by SSL_write.
 * shutdown_write sends close_notify once the queue is empty (then shuts down the socket's
 * write side); close sends close_notify best-effort when the handshake has completed.
 * EOF: a close_notify from the peer and a TCP EOF without one (common in browsers; WebSocket
 * has its own close frame) are both an orderly EOF (on_eof, or close with WSX_ECLOSED).
 * Other TLS errors after the handshake close with WSX_ETLS and a reason.
 *
 * On failure fd is closed, no callback fires and s needs no cleanup. Returns 0, WSX_EINVAL
 * (server_name missing or present against the rules above), WSX_ENOMEM, WSX_ETLS (OpenSSL
 * could not create the connection) or WSX_ESYS.
 */
int wsx__stream_init_tls(wsx_loop *loop, wsx__stream *s, int fd, const wsx__stream_vt *vt,
                         wsx__tls_ctx *ctx, const char *server_name);

/* True if s was started with wsx__stream_init_tls(). */
static inline bool wsx__stream_is_tls(const wsx__stream *s)
{
    return (s->flags & 0x100u) != 0;
}

/* True once the TLS handshake of s has completed (false for plain streams). */
bool wsx__stream_tls_ready(const wsx__stream *s);

/*
 * Why the TLS side of s failed, as a NUL-terminated sentence ("certificate verify failed:
 * hostname mismatch (expected 'foo', certificate is for 'localhost, 127.0.0.1')", "TLS
 * handshake failed: http request", "TLS handshake timed out after 10000 ms"), or NULL when
 * it did not fail or s is plain. Valid until on_close returns.
 */
const char *wsx__stream_tls_error(const wsx__stream *s);

/*
 * Why s was closed with an error, as a NUL-terminated sentence for the owner's on_close:
 * the TLS failure (wsx__stream_tls_error()), else the failed system call's errno
 * ("connection reset by peer", "broken pipe: the peer closed the connection"), else NULL
 * (closed by its owner, an orderly EOF, or an error that has no more to say than its code).
 * Valid until on_close returns; a static string or one held by s.
 */
const char *wsx__stream_error(const wsx__stream *s);

/* The WSX_E* code for a system call's errno, as streams report it: WSX_ECLOSED for a reset or
 * a broken pipe, WSX_ECONNREFUSED, WSX_ETIMEDOUT, WSX_ENOMEM, else WSX_ESYS. */
int wsx__errno_code(int sys_errno);

/* A static sentence for a system call's errno, lower case ("connection reset by peer"). */
const char *wsx__errno_text(int sys_errno);

/*
 * Writes the negotiated ALPN protocol ("http/1.1"), NUL-terminated, into buf. Returns its
 * length, 0 if none was negotiated (or s is plain or not yet ready), or WSX_ENOSPC.
 */
int wsx__stream_tls_alpn(const wsx__stream *s, char *buf, size_t cap);

/* The OpenSSL connection of s (an SSL *), for inspection (peer certificate, version,
 * cipher); NULL for plain streams and once s is closing. Never read, write or free it. */
struct ssl_st *wsx__stream_tls_ssl(const wsx__stream *s);

/* =========================================================================================
 * Loop internals: for the .c files of src/net only.
 * ========================================================================================= */
#ifdef WSX__NET_INTERNAL
#include <pthread.h>
#include <signal.h>

/* tcp.c, for listen.c and connect.c: TCP_NODELAY on a new connection (corking already
 * batches small writes per iteration; Nagle would only add latency). */
void wsx__tcp_nodelay(int fd);

#define WSX__WHEEL_SLOTS 512u
#define WSX__WHEEL_MASK  (WSX__WHEEL_SLOTS - 1u)
#define WSX__MAX_EVENTS  1024
#define WSX__CHUNK_SIZE  (16u * 1024u)
/* A first, small chunk for a stream with little to send (handshake answers, small frames):
 * most queues never need more, and idle servers keep less memory cached. */
#define WSX__SMALL_CHUNK 2048u
/* The caches hold up to a busy iteration's worth of chunks (one per stream written to: a
 * thousand echoing connections, or a thousand receiving 4 KiB each), so that a busy loop
 * does not return memory to malloc after every flush and take it back (with page faults)
 * in the next iteration; measured in docs/performance.md. They shrink by half every second
 * (wsx__qcache_decay) and to WSX__CACHE_IDLE when the loop is idle. At most 8 MiB of small
 * chunks and 4 MiB of standard ones. */
#define WSX__SMALL_CACHE  4096u
#define WSX__CHUNK_CACHE  256u
#define WSX__CACHE_IDLE   8u  /* chunks of each size kept while idle */
#define WSX__IDLE_TRIM_MS 100 /* quiet time after which the caches are trimmed */
/* Queued pieces up to GATHER_MAX bytes are joined into one writev segment, GATHER_BUF at most. */
#define WSX__GATHER_MAX 512u
#define WSX__GATHER_BUF (64u * 1024u)
/* Writes this large skip the copy into the queue when nothing is queued. */
#define WSX__DIRECT_WRITE (16u * 1024u)
#define WSX__SLICE_CACHE  4096u

/* One entry of a stream's output queue: an owned chunk (ref == NULL, bytes inline after the
 * header) or a slice of a shared buffer. Bytes [off, len) of base are still to be written. */
struct wsx__qnode {
    wsx__qnode *next;
    wsx__ref *ref;
    const uint8_t *base;
    uint32_t off, len, cap;
};

typedef struct wsx__post wsx__post;
typedef struct wsx__resolve_job wsx__resolve_job;

struct wsx_loop {
    int epfd;
    bool stop;
    bool running; /* inside wsx_loop_run() */
    bool dispatching;
    uint64_t now;
    size_t nactive; /* started io watchers that keep the loop alive */
    size_t nrefs;   /* other things that keep it alive (connects being resolved) */

    struct epoll_event *events;
    int ev_count; /* events collected by the current epoll_wait */
    int ev_index; /* the one being dispatched */

    /* Timer wheel: one circular list per slot, with a sentinel. */
    uint64_t wheel_tick; /* last millisecond processed */
    uint64_t timer_next; /* lower bound of the earliest deadline; UINT64_MAX when none */
    size_t ntimers;
    wsx__timer slots[WSX__WHEEL_SLOTS];

    wsx__deferred *defer_head, **defer_tail;

    /* Streams with corked output or awaiting their close callback. */
    wsx__stream *pend_head, *pend_tail;
    size_t npend; /* streams on that list */

    /* Free lists, so steady-state writes do not allocate. */
    uint64_t cache_decay_at; /* loop->now of the last wsx__qcache_decay() */
    wsx__qnode *chunk_cache, *slice_cache;
    size_t nchunk_cache, nslice_cache;
    wsx__qnode *small_cache;
    size_t nsmall_cache;
    struct iovec *iov; /* IOV_MAX entries for writev */
    int iov_max;

    uint8_t *rbuf;
    uint8_t *gather; /* WSX__GATHER_BUF bytes: small queued pieces are copied together here */

    /* Cross-thread: posted callbacks and finished resolutions, guarded by mu. */
    pthread_mutex_t mu;
    wsx__post *post_head, *post_tail;
    wsx__resolve_job *jobs_done;
    wsx__resolve_job *jobs; /* all unjoined resolver threads (loop thread only) */
    int wakefd;
    wsx__io wake_io;

    int sigfd;
    wsx__io sig_io;
    wsx_signal_cb sig_cb;
    void *sig_arg;
    sigset_t sig_old;

    wsx__loop_stats stats;

    /* Output accounting (budget.c): bytes in this loop's stream queues, the part of it last
     * added to the process total, and the count at which a write next checks the budget. */
    size_t queued, published, check_at;
    wsx__deferred shed; /* runs the budget hooks */
    wsx__budget_hook *budget_hooks;
    wsx__loop_ext *exts; /* wsx__loop_ext_add */
};

/* wsx__stream.flags, shared by tcp.c and tls.c. Bit 0 is read by wsx__stream_is_closing(),
 * WSX__S_TLS by wsx__stream_is_tls(). */
#define WSX__S_CLOSING   0x001u
#define WSX__S_PENDING   0x002u /* on the loop's pending list */
#define WSX__S_WANTW     0x004u /* kernel buffer was full: EPOLLOUT requested */
#define WSX__S_PAUSED    0x008u
#define WSX__S_EOF       0x010u
#define WSX__S_SHUT      0x020u /* write-side shutdown requested */
#define WSX__S_SHUTDONE  0x040u
#define WSX__S_WANTDRAIN 0x080u /* on_drain after every write that progresses */
#define WSX__S_TLS       0x100u /* started by wsx__stream_init_tls() */
/* The errno of the system call whose failure closed the stream (0: none), for
 * wsx__stream_error(). */
#define WSX__S_ERRNO_SHIFT 24
#define WSX__S_ERRNO_MASK  0xff000000u

/* tcp.c, for tls.c: closes now with err (on_close follows), joins the pending list (corked
 * flush or close delivery at the end of the iteration), re-registers epoll interest, and
 * drops the head of the output queue. */
void wsx__stream_fail(wsx__stream *s, int err);
/* wsx__stream_fail() for a failed system call: the code follows from sys_errno (WSX_ECLOSED
 * for a reset or a broken pipe, WSX_ETIMEDOUT, WSX_ENOMEM, else WSX_ESYS), and sys_errno is
 * kept for wsx__stream_error(). */
void wsx__stream_fail_errno(wsx__stream *s, int sys_errno);
/* Records sys_errno (a socket error taken with SO_ERROR) for wsx__stream_error() before the
 * data that came ahead of it is read: an EOF read after it closes the stream instead of
 * reaching on_eof. 0 clears it. */
void wsx__stream_set_errno(wsx__stream *s, int sys_errno);
void wsx__stream_pend(wsx__stream *s);
void wsx__stream_update_interest(wsx__stream *s);
void wsx__stream_qpop(wsx__stream *s);

/* tls.c, for tcp.c: called only for streams with WSX__S_TLS, so the plain path pays one
 * predictable flag test. Interest for epoll; the end-of-iteration flush; cleanup inside
 * close (before the fd is closed); on_close delivery, after which the TLS state is freed;
 * resume (data may be waiting inside OpenSSL, where epoll cannot see it). */
uint32_t wsx__tls_interest(const wsx__stream *s);
void wsx__tls_flush(wsx__stream *s);
void wsx__tls_closing(wsx__stream *s);
void wsx__tls_deliver_close(wsx__stream *s);
void wsx__tls_resumed(wsx__stream *s);

/* Output accounting: every change of a stream's queued count goes through these, so the
 * loop's count stays exact. Adding is the hot path: an add and a compare. */
void wsx__budget_check(wsx_loop *loop);
static inline void wsx__queued_add(wsx__stream *s, size_t n)
{
    wsx_loop *loop = s->loop;
    s->queued += n;
    loop->queued += n;
    if (loop->queued > loop->check_at) wsx__budget_check(loop);
}
static inline void wsx__queued_sub(wsx__stream *s, size_t n)
{
    s->queued -= n;
    s->loop->queued -= n;
}
/* End of the stream pass: publishes this iteration's change to the process total. */
void wsx__budget_settle(wsx_loop *loop);
static inline void wsx__budget_iteration(wsx_loop *loop)
{
    if (loop->queued != loop->published) wsx__budget_settle(loop);
}
/* At loop creation and free. */
void wsx__budget_init(wsx_loop *loop);
void wsx__budget_fini(wsx_loop *loop);

/* The loop's clock, read fresh. */
uint64_t wsx__clock_ms(void);
/* Timer phase: fire everything due at loop->now. */
void wsx__timers_run(wsx_loop *loop);
/* Milliseconds until the next timer (-1 when none), for epoll_wait. */
int wsx__timers_timeout(wsx_loop *loop);
/* Frees application timers left in the wheel (at loop free). */
void wsx__timers_free_all(wsx_loop *loop);
/* Pending-stream phase: close callbacks and corked flushes. */
void wsx__streams_run(wsx_loop *loop);
/* Resolver results handed back by worker threads: a list taken from loop->jobs_done, handled
 * on the loop thread without the lock. */
void wsx__resolve_done(wsx_loop *loop, wsx__resolve_job *list);
/* Wakes the loop from another thread (eventfd write). */
void wsx__loop_wake(wsx_loop *loop);
/* Joins and frees every resolver thread (at loop free). */
void wsx__resolve_free_all(wsx_loop *loop);
/* Output-queue chunks, from the loop's cache. */
wsx__qnode *wsx__chunk_get(wsx_loop *loop, size_t min_cap);
wsx__qnode *wsx__slice_get(wsx_loop *loop);
void wsx__qnode_put(wsx_loop *loop, wsx__qnode *q);
void wsx__qcache_free(wsx_loop *loop);
/* Whether the chunk caches hold more than WSX__CACHE_IDLE each (a busy period's worth). */
bool wsx__qcache_excess(const wsx_loop *loop);
/* Frees cached chunks beyond a few and returns free heap pages to the system (called when
 * the loop has been idle WSX__IDLE_TRIM_MS). Returns whether there was anything to free. */
bool wsx__qcache_trim(wsx_loop *loop);
/* Once a second: gives back half of what each cache holds beyond WSX__CACHE_IDLE, so the
 * caches follow the load down when it falls without the loop ever being idle. */
void wsx__qcache_decay(wsx_loop *loop);
/* How many small chunks, standard chunks and slice nodes the caches hold (tests). */
void wsx__qcache_counts(const wsx_loop *loop, size_t *small, size_t *chunk, size_t *slice);
#endif

#endif
