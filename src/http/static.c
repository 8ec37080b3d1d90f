/*
 * Static files: a directory and/or an in-memory table, with validators, conditional
 * requests and single byte ranges (the decisions are src/proto/http_file.c's; this file
 * finds the file and writes the answer).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http/req_view.h"
#include "proto/http_file.h"

/* The longest cleaned path accepted (414 beyond), and its buffer. */
#define PATH_CAP 4096
#define ETAG_CAP 64

struct wsx_static {
    char *root; /* realpath() of the root, or NULL */
    size_t root_len;
    const wsx_static_file *files;
    size_t n_files;
    char (*etags)[ETAG_CAP]; /* of files, by index */
    char *index;
    char *cache_control;
};

wsx_static_opts wsx_static_defaults(void)
{
    return (wsx_static_opts){NULL, NULL, "index.html", "no-cache"};
}

int wsx_static_new(const wsx_static_opts *o, wsx_static **out)
{
    if (!o || (!o->root && !o->files)) return WSX_EINVAL;
    wsx_static *st = calloc(1, sizeof *st);
    if (!st) return WSX_ENOMEM;
    int rc = WSX_ENOMEM;
    const char *index = o->index && *o->index ? o->index : "index.html";
    const char *cc = o->cache_control ? o->cache_control : "no-cache";
    if (!(st->index = strdup(index)) || !(st->cache_control = strdup(cc))) goto fail;
    if (o->root) {
        struct stat sb;
        if (!(st->root = realpath(o->root, NULL))) {
            rc = errno == ENOMEM ? WSX_ENOMEM : WSX_ESYS;
            goto fail;
        }
        if (stat(st->root, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
            rc = WSX_EINVAL;
            goto fail;
        }
        st->root_len = strlen(st->root);
    }
    if (o->files) {
        while (o->files[st->n_files].path)
            st->n_files++;
        st->files = o->files;
        if (st->n_files && !(st->etags = calloc(st->n_files, sizeof *st->etags))) goto fail;
        for (size_t i = 0; i < st->n_files; i++) {
            /* FNV-1a: the tag only has to change when the bytes do. */
            uint32_t h = 2166136261u;
            for (size_t k = 0; k < st->files[i].len; k++)
                h = (h ^ st->files[i].data[k]) * 16777619u;
            snprintf(st->etags[i], ETAG_CAP, "\"%08x-%zx\"", h, st->files[i].len);
        }
    }
    *out = st;
    return 0;
fail:
    wsx_static_free(st);
    return rc;
}

void wsx_static_free(wsx_static *st)
{
    if (!st) return;
    free(st->root);
    free(st->etags);
    free(st->index);
    free(st->cache_control);
    free(st);
}

/* ---- answers ---- */

/* The headers of one answer: ours, then the caller's extra ones. */
typedef struct answer {
    wsx_http_header h[8 + WSX_STATIC_MAX_EXTRA];
    size_t n;
} answer;

static void add(answer *a, const char *name, const char *value)
{
    a->h[a->n++] = (wsx_http_header){name, strlen(name), value, strlen(value)};
}

static void add_extra(answer *a, const wsx_http_header *extra, size_t n_extra)
{
    if (n_extra) memcpy(a->h + a->n, extra, n_extra * sizeof *extra);
    a->n += n_extra;
}

/* A text/plain answer with body `body`. */
static int text(wsx_http_req *r, int status, const char *body, answer *a,
                const wsx_http_header *extra, size_t n_extra)
{
    add(a, "Content-Type", "text/plain; charset=utf-8");
    add_extra(a, extra, n_extra);
    int rc = wsx_http_respond(r, status, a->h, a->n, body, strlen(body));
    return rc < 0 ? rc : status;
}

static int refuse(wsx_http_req *r, int status, const wsx_http_header *extra, size_t n_extra)
{
    answer a = {.n = 0};
    switch (status) {
    case 400:
        return text(r, 400, "400 bad path\n", &a, extra, n_extra);
    case 403:
        return text(r, 403, "403 Forbidden\n", &a, extra, n_extra);
    case 404:
        return text(r, 404, "404 Not Found\n", &a, extra, n_extra);
    case 405:
        add(&a, "Allow", "GET, HEAD");
        return text(r, 405, "405 Method Not Allowed\n", &a, extra, n_extra);
    case 414:
        return text(r, 414, "414 URI Too Long\n", &a, extra, n_extra);
    case 503:
        add(&a, "Retry-After", "1");
        return text(r, 503, "503 Service Unavailable\n", &a, extra, n_extra);
    default:
        return text(r, 500, "500 cannot read the file\n", &a, extra, n_extra);
    }
}

/* What is known of the representation being answered. */
typedef struct rep {
    const char *name; /* for the content type */
    size_t name_len;
    const char *etag;
    int64_t mtime; /* -1: none */
    uint64_t size;
    int fd;              /* a directory file, or -1 */
    const uint8_t *data; /* a table file */
} rep;

/* Answers with rep p after the preconditions and Range of v. Closes p->fd in every case. */
static int answer_rep(const wsx_static *st, wsx_http_req *r, const wsx__req_view *v, rep *p,
                      const wsx_http_header *extra, size_t n_extra)
{
    char lastmod[WSX__HTTP_DATE_LEN + 1], crange[64];
    if (p->mtime >= 0) wsx__http_date_format(p->mtime, lastmod);
    wsx__http_cond_in in = {v->headers,      v->n_headers, wsx__req_is(v, "GET"), p->etag,
                            strlen(p->etag), p->mtime,     (int64_t)time(NULL),   p->size};
    wsx__http_cond_out c;
    wsx__http_cond_eval(&in, &c);
    answer a = {.n = 0};
    if (c.status == 200 || c.status == 206)
        add(&a, "Content-Type", wsx__http_content_type(p->name, p->name_len));
    if (c.status != 412 && c.status != 416) {
        /* RFC 9110 15.4.5: a 304 carries the validators and Cache-Control of the 200. */
        add(&a, "ETag", p->etag);
        if (*st->cache_control) add(&a, "Cache-Control", st->cache_control);
        if (p->mtime >= 0) add(&a, "Last-Modified", lastmod);
    }
    if (c.status != 304 && c.status != 412) add(&a, "Accept-Ranges", "bytes");
    if (c.status == 206) {
        snprintf(crange, sizeof crange, "bytes %llu-%llu/%llu", (unsigned long long)c.first,
                 (unsigned long long)(c.first + c.len - 1), (unsigned long long)p->size);
        add(&a, "Content-Range", crange);
    } else if (c.status == 416) {
        /* RFC 9110 15.5.17: an unsatisfied-range gives the current length. */
        snprintf(crange, sizeof crange, "bytes */%llu", (unsigned long long)p->size);
        add(&a, "Content-Range", crange);
    }
    if (c.status != 200 && c.status != 206) {
        if (p->fd >= 0) close(p->fd);
        if (c.status == 304) {
            add_extra(&a, extra, n_extra);
            int rc = wsx_http_respond(r, 304, a.h, a.n, NULL, 0);
            return rc < 0 ? rc : 304;
        }
        return text(r, c.status,
                    c.status == 416 ? "416 Range Not Satisfiable\n" : "412 Precondition Failed\n",
                    &a, extra, n_extra);
    }
    add_extra(&a, extra, n_extra);
    int rc;
    if (p->fd >= 0) {
        rc = wsx_http_respond_file(r, c.status, a.h, a.n, p->fd, c.first, c.len);
        /* The file shrank since fstat() (or extra is invalid, and this fails the same way):
         * the request is still open and must get an answer. */
        if (rc == WSX_EINVAL) return refuse(r, 500, extra, n_extra);
    } else
        rc = wsx_http_respond(r, c.status, a.h, a.n, p->data + c.first, (size_t)c.len);
    return rc < 0 ? rc : c.status;
}

/* ---- the directory ---- */

/* Whether an absolute real path is the root or below it. */
static bool inside(const wsx_static *st, const char *real)
{
    if (st->root_len == 1) return real[0] == '/'; /* the root is "/" */
    return !strncmp(real, st->root, st->root_len) &&
           (real[st->root_len] == '/' || real[st->root_len] == '\0');
}

/* The status for an errno of realpath() or open(). */
static int status_of(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
    case ELOOP:
        return 404;
    case EACCES:
    case EPERM:
        return 403;
    case EMFILE:
    case ENFILE:
        return 503;
    default:
        return 500;
    }
}

/* 301 to the directory's path with a '/' (percent-encoded: the decoded path may hold
 * spaces or bytes a Location cannot carry as they are) and the query. */
static int redirect_dir(wsx_http_req *r, const wsx__req_view *v, const char *path, size_t plen,
                        const wsx_http_header *extra, size_t n_extra)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t cap = 3 * plen + 3 + (v->query ? v->query_len : 0);
    char *loc = malloc(cap);
    if (!loc) return refuse(r, 500, extra, n_extra);
    size_t o = 0;
    for (size_t i = 0; i < plen; i++) {
        unsigned char ch = (unsigned char)path[i];
        /* RFC 3986 3.3: pchar and '/' stay; everything else is escaped. */
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("/-._~!$&'()*+,;=:@", ch)) {
            loc[o++] = (char)ch;
        } else {
            loc[o++] = '%';
            loc[o++] = hex[ch >> 4];
            loc[o++] = hex[ch & 15];
        }
    }
    loc[o++] = '/';
    if (v->query) {
        loc[o++] = '?';
        memcpy(loc + o, v->query, v->query_len);
        o += v->query_len;
    }
    answer a = {.n = 0};
    a.h[a.n++] = (wsx_http_header){"Location", 8, loc, o};
    add_extra(&a, extra, n_extra);
    int rc = wsx_http_respond(r, 301, a.h, a.n, NULL, 0);
    free(loc);
    return rc < 0 ? rc : 301;
}

/* Checks that what fd names is still inside the root: a directory on the way may have been
 * replaced by a symlink since realpath() looked. Without /proc, realpath()'s answer stands. */
static bool fd_inside(const wsx_static *st, int fd)
{
    char link[64], real[PATH_MAX + 1];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, sizeof real - 1);
    if (n < 0) return true;
    real[n] = '\0';
    return inside(st, real);
}

/* Serves path (cleaned) from the directory. Returns the status sent or a negative error;
 * 0 when the directory has no such file and nothing was sent (the table may have it). */
static int serve_dir(const wsx_static *st, wsx_http_req *r, const wsx__req_view *v,
                     const char *path, size_t plen, const wsx_http_header *extra, size_t n_extra)
{
    bool dir_path = path[plen - 1] == '/';
    size_t il = dir_path ? strlen(st->index) : 0;
    if (st->root_len + plen + il + 1 > PATH_MAX) return 0; /* cannot exist */
    char full[PATH_MAX], real[PATH_MAX];
    memcpy(full, st->root, st->root_len);
    memcpy(full + st->root_len, path, plen);
    memcpy(full + st->root_len + plen, st->index, il);
    full[st->root_len + plen + il] = '\0';
    if (!realpath(full, real)) {
        int s = status_of(errno);
        return s == 404 ? 0 : refuse(r, s, extra, n_extra);
    }
    if (!inside(st, real)) return 0;
    struct stat sb;
    if (stat(real, &sb) < 0) {
        int s = status_of(errno);
        return s == 404 ? 0 : refuse(r, s, extra, n_extra);
    }
    if (S_ISDIR(sb.st_mode)) return dir_path ? 0 : redirect_dir(r, v, path, plen, extra, n_extra);
    if (!S_ISREG(sb.st_mode)) return 0;
    /* O_NONBLOCK: a FIFO swapped in since stat() must not block the loop in open(). */
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        int s = status_of(errno);
        return s == 404 ? 0 : refuse(r, s, extra, n_extra);
    }
    /* The validators come from the opened file, so they describe the bytes sent even if the
     * name is given to another file meanwhile. */
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || !fd_inside(st, fd)) {
        close(fd);
        return 0;
    }
    char etag[ETAG_CAP];
    uint64_t mns = (uint64_t)sb.st_mtim.tv_sec * 1000000000u + (uint64_t)sb.st_mtim.tv_nsec;
    snprintf(etag, sizeof etag, "\"%llx-%llx-%llx\"", (unsigned long long)sb.st_ino,
             (unsigned long long)sb.st_size, (unsigned long long)mns);
    rep p = {real, strlen(real), etag, (int64_t)sb.st_mtime, (uint64_t)sb.st_size, fd, NULL};
    return answer_rep(st, r, v, &p, extra, n_extra);
}

/* ---- the table ---- */

static int serve_table(const wsx_static *st, wsx_http_req *r, const wsx__req_view *v,
                       const char *path, size_t plen, const wsx_http_header *extra, size_t n_extra)
{
    bool dir_path = path[plen - 1] == '/';
    size_t il = dir_path ? strlen(st->index) : 0;
    for (size_t i = 0; i < st->n_files; i++) {
        const wsx_static_file *f = &st->files[i];
        size_t fl = strlen(f->path);
        if (fl != plen + il || memcmp(f->path, path, plen) || memcmp(f->path + plen, st->index, il))
            continue;
        rep p = {f->path, fl, st->etags[i], -1, f->len, -1, f->data};
        return answer_rep(st, r, v, &p, extra, n_extra);
    }
    /* A directory of the table ("/sio" when "/sio/index.html" is there): 301 to it with a '/',
     * as the directory does, so that the page's relative links resolve. */
    for (size_t i = 0; !dir_path && i < st->n_files; i++) {
        const char *fp = st->files[i].path;
        if (strlen(fp) > plen + 1 && !memcmp(fp, path, plen) && fp[plen] == '/')
            return redirect_dir(r, v, path, plen, extra, n_extra);
    }
    return 0;
}

int wsx_static_serve(const wsx_static *st, wsx_http_req *r, const wsx_http_header *extra,
                     size_t n_extra)
{
    if (!st || !r || n_extra > WSX_STATIC_MAX_EXTRA || (n_extra && !extra)) return WSX_EINVAL;
    wsx__req_view v;
    wsx__req_view_of(r, &v);
    if (!wsx__req_is(&v, "GET") && !wsx__req_is(&v, "HEAD")) return refuse(r, 405, extra, n_extra);
    char path[PATH_CAP];
    ptrdiff_t plen = wsx_http_path_clean(v.path, v.path_len, path, sizeof path);
    if (plen < 0) return refuse(r, plen == WSX_ENOSPC ? 414 : 400, extra, n_extra);
    int rc = 0;
    if (st->root) rc = serve_dir(st, r, &v, path, (size_t)plen, extra, n_extra);
    if (rc == 0 && st->files) rc = serve_table(st, r, &v, path, (size_t)plen, extra, n_extra);
    return rc == 0 ? refuse(r, 404, extra, n_extra) : rc;
}
