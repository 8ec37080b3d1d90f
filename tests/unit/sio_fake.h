/*
 * Scripted Engine.IO sessions for the Socket.IO core (src/sio/sio_priv.h, wsx__sio_ops):
 * every message the server sends is logged as a string ("T<text>" for a text packet without
 * the Engine.IO "4", "B<hex>" for a binary one), wsx_eio_close is recorded and its end
 * delivered when the test says, and writability is set by the test. Shared by test_sio and
 * test_sio_model.
 */
#ifndef WSX_SIO_FAKE_H
#define WSX_SIO_FAKE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sio/sio_priv.h"

#define FAKE_LOG 8192

typedef struct fake_sess {
    sio_client *c;
    char *log[FAKE_LOG]; /* oldest first */
    int n_log;
    int dropped;       /* messages past FAKE_LOG */
    int close_asked;   /* ops->close calls */
    bool not_writable; /* what wsx_eio_writable answers */
    int send_rc;       /* returned by sends instead of 0 (WSX_EBACKPRESSURE, say) */
    bool ended;
} fake_sess;

static void fake_log(fake_sess *f, char kind, const void *data, size_t len, bool hex)
{
    if (f->n_log == FAKE_LOG) {
        f->dropped++;
        return;
    }
    char *s = malloc(hex ? 2 * len + 2 : len + 2);
    if (!s) abort();
    s[0] = kind;
    if (hex) {
        for (size_t i = 0; i < len; i++)
            snprintf(s + 1 + 2 * i, 3, "%02x", ((const uint8_t *)data)[i]);
        s[1 + 2 * len] = 0;
    } else {
        memcpy(s + 1, data, len);
        s[1 + len] = 0;
    }
    f->log[f->n_log++] = s;
}

static int fake_send(void *sess, const void *data, size_t len, bool binary)
{
    fake_sess *f = sess;
    if (f->close_asked) return WSX_ECLOSED;
    fake_log(f, binary ? 'B' : 'T', data, len, binary);
    return f->send_rc;
}

static int fake_send_msg(void *sess, wsx_hub_msg *m)
{
    fake_sess *f = sess;
    if (f->close_asked) return WSX_ECLOSED;
    if (m->type == WSX_BINARY) {
        fake_log(f, 'B', m->data, m->len, true);
        return f->send_rc;
    }
    if (m->type != WSX_TEXT || m->len < 1 || m->data[0] != '4') abort();
    fake_log(f, 'T', m->data + 1, m->len - 1, false);
    return f->send_rc;
}

static bool fake_writable(const void *sess)
{
    return !((const fake_sess *)sess)->not_writable;
}

static void fake_close(void *sess)
{
    ((fake_sess *)sess)->close_asked++;
}

static const wsx__sio_ops fake_ops = {fake_send, fake_send_msg, fake_writable, fake_close};

static void fake_clear(fake_sess *f)
{
    for (int i = 0; i < f->n_log; i++)
        free(f->log[i]);
    f->n_log = 0;
    f->dropped = 0;
}

/* Removes and returns the oldest logged message (the caller frees it), or NULL. */
static inline char *fake_pop(fake_sess *f)
{
    if (!f->n_log) return NULL;
    char *s = f->log[0];
    memmove(f->log, f->log + 1, (size_t)(f->n_log - 1) * sizeof f->log[0]);
    f->n_log--;
    return s;
}

static void fake_open(wsx_sio *io, fake_sess *f)
{
    memset(f, 0, sizeof *f);
    f->c = wsx__sio_session_open(io, f);
    if (!f->c) abort();
}

static void fake_feed(fake_sess *f, const char *text)
{
    if (!f->ended) wsx__sio_session_message(f->c, (const uint8_t *)text, strlen(text), false);
}

static void fake_feed_bin(fake_sess *f, const void *data, size_t len)
{
    if (!f->ended) wsx__sio_session_message(f->c, data, len, true);
}

/* The session's end, as the engine reports it. */
static void fake_end(fake_sess *f, const char *reason)
{
    if (f->ended) return;
    f->ended = true;
    wsx__sio_session_close(f->c, reason);
}

#endif
