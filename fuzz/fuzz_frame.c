/*
 * Frame parser fuzzer. The first byte picks the role, the allowed RSV bits and the limits
 * (frame, message, fragments); the rest is the byte stream. The same stream is parsed whole
 * and one byte at a time, and the two must report the same messages, control frames and
 * error: any split of the input gives the same result (the parser's contract).
 */
#include <stdlib.h>
#include <string.h>

#include "wsx/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    uint64_t hash;
    uint64_t msg; /* hash of the open message; folded into hash when it completes, because
                     pieces reported before a failure legitimately depend on the split */
    size_t events;
    int err;
} outcome;

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x100000001b3ull;
}

static void parse(const wsx_parser_opts *opts, const uint8_t *in, size_t len, size_t step,
                  outcome *o)
{
    memset(o, 0, sizeof *o);
    o->hash = 0xcbf29ce484222325ull;
    wsx_parser p;
    wsx_parser_init(&p, opts);
    uint8_t *buf = malloc(len ? len : 1);
    size_t have = 0, fed = 0;
    while (fed < len) {
        size_t n = step < len - fed ? step : len - fed;
        memcpy(buf + have, in + fed, n);
        have += n;
        fed += n;
        size_t off = 0;
        for (;;) {
            wsx_event ev;
            ptrdiff_t rc = wsx_parser_feed(&p, buf + off, have - off, &ev);
            if (rc < 0) {
                o->err = (int)rc;
                o->hash = mix(o->hash, wsx_parser_close_code(&p));
                free(buf);
                return;
            }
            if (ev.type != WSX_EV_NONE) {
                o->events += ev.type != WSX_EV_DATA || ev.last;
                if (ev.type == WSX_EV_DATA) {
                    if (ev.first) o->msg = mix(0, 0x1000 + ev.opcode);
                    for (size_t i = 0; i < ev.len; i++)
                        o->msg = mix(o->msg, ev.data[i]);
                    if (ev.last) o->hash = mix(o->hash, o->msg);
                } else {
                    o->hash = mix(o->hash, (uint64_t)ev.type << 16 | ev.close_code);
                    for (size_t i = 0; i < ev.len; i++)
                        o->hash = mix(o->hash, ev.data[i]);
                }
                /* Borrowed pointers stay inside the buffer. */
                if (ev.len && (ev.data < buf || ev.data + ev.len > buf + have)) abort();
            }
            if (rc == 0) break;
            off += (size_t)rc;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t cfg = data[0];
    wsx_parser_opts o = {
        .role = cfg & 1 ? WSX_ROLE_CLIENT : WSX_ROLE_SERVER,
        .rsv_allowed = cfg & 2 ? WSX_RSV1 : 0,
        .max_frame = cfg & 4 ? 300 : 0,
        .max_message = cfg & 8 ? 1000 : 0,
        .max_fragments = cfg & 16 ? 3 : 0,
    };
    outcome whole, bytewise;
    parse(&o, data + 1, size - 1, size, &whole);
    parse(&o, data + 1, size - 1, 1, &bytewise);
    if (whole.err != bytewise.err || whole.hash != bytewise.hash || whole.events != bytewise.events)
        abort();
    return 0;
}
