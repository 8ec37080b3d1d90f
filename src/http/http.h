/*
 * src/http — HTTP/1.1 messages on a stream: reading one request (head and body) from the
 * bytes a stream delivers, and writing responses to a stream. server.h builds the server's
 * connections on these.
 */
#ifndef WSX_HTTP_H
#define WSX_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"
#include "wsx/proto.h"

#define WSX__HTTP_MAX_HEADERS 64

/* Bytes of a request being received; holds no memory when empty. */
typedef struct wsx__http_in {
    uint8_t *buf;
    uint32_t len, cap; /* requests are bounded far below 4 GiB */
} wsx__http_in;

/* One parsed request. Every pointer borrows from the wsx__http_in it was parsed from. */
typedef struct wsx__http_msg {
    wsx_http_request req;
    wsx_http_header headers[WSX__HTTP_MAX_HEADERS];
    size_t head_len;  /* bytes of the head */
    size_t total_len; /* head + body */
    const uint8_t *body;
    size_t body_len;
    const char *path; /* target up to '?' */
    size_t path_len;
    const char *query; /* after '?', or NULL */
    size_t query_len;
    bool keep_alive; /* HTTP/1.1 without "Connection: close", or 1.0 with keep-alive */
    bool upgrade;    /* Upgrade: websocket */
} wsx__http_msg;

/* Appends data to in. Returns 0 or WSX_ENOMEM. in grows to at most `limit` bytes; past that
 * returns WSX_ELIMIT. */
int wsx__http_in_append(wsx__http_in *in, const uint8_t *data, size_t len, size_t limit);

/* Drops the first n bytes (a served request) and frees the buffer once empty. */
void wsx__http_in_consume(wsx__http_in *in, size_t n);

void wsx__http_in_free(wsx__http_in *in);

/*
 * Tries to parse one whole request from in. Returns 1 with *m filled when a request (head,
 * and body per Content-Length) is complete; 0 when more bytes are needed; or, negated, the
 * HTTP status to refuse with: -400 malformed, -431 head too large or too many fields,
 * -413 body above max_body_of(arg, m), the limit of the request's route (called once
 * m's head, path and query included, is parsed), -501 a Transfer-Encoding (chunked bodies are not
 * accepted). *why gets a short static reason for the log when refusing.
 */
int wsx__http_parse(const wsx__http_in *in, size_t max_head,
                    size_t (*max_body_of)(void *arg, const wsx__http_msg *m), void *arg,
                    wsx__http_msg *m, const char **why);

/*
 * Queues a complete response on s: status line, Date-less fixed headers ("Content-Length",
 * "Connection: keep-alive" or "close"), the caller's headers, and the body (left out, with
 * its length kept, when head_only). Returns 0, WSX_EINVAL (CR/LF in a header), WSX_ENOMEM,
 * WSX_ECLOSED.
 */
int wsx__http_send(wsx__stream *s, int status, const wsx_http_header *headers, size_t n,
                   const void *body, size_t len, bool keep_alive, bool head_only);

/*
 * Queues a response head on s: the status line and headers (written by proto's one head
 * writer), then `tail` verbatim (the fixed fields and the blank line), then body[0..len).
 * Returns 0, WSX_EINVAL (a header name not a token, CR/LF/NUL in a value), WSX_ENOMEM,
 * WSX_ECLOSED.
 */
int wsx__http_send_head(wsx__stream *s, int status, const wsx_http_header *headers, size_t n,
                        const char *tail, const void *body, size_t len);

/* Size of the pieces a file response is read in (wsx__http_file_pump). */
#define WSX__HTTP_FILE_CHUNK (64u * 1024u)

/* The part of a file response's body still to be queued: `left` bytes from offset `off`. */
typedef struct wsx__http_file {
    int fd;
    uint64_t off, left;
} wsx__http_file;

/*
 * Queues more of f on s: reads pieces of up to WSX__HTTP_FILE_CHUNK bytes with pread() into
 * scratch (at least that large) and writes them, while s has fewer than `low` bytes queued,
 * at most max_chunks pieces per call. f->off and f->left advance with what was queued.
 * Returns 1 when the last byte is queued; 0 when the queue reached `low` (more when it
 * drains); 2 when max_chunks pieces went out and the queue is still below `low` (the kernel
 * took them: continue later, not now, so one fast reader cannot hold the loop); WSX_ESYS
 * when the file could not be read or ended before f->left bytes (errno is 0 then);
 * WSX_ECLOSED or WSX_ENOMEM from the write.
 */
int wsx__http_file_pump(wsx__stream *s, wsx__http_file *f, uint8_t *scratch, size_t low,
                        unsigned max_chunks);

/* Queues a plain-text error response ("<status> <text>\n<why>\n") with Connection: close;
 * a 426 also carries "Upgrade: websocket" and "Sec-WebSocket-Version: 13". */
int wsx__http_send_error(wsx__stream *s, int status, const char *why);

#endif
