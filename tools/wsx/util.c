#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "metrics.h"
#include "tool.h"

tool_log g_log;

static const char *level_name(int level)
{
    switch (level) {
    case WSX_LOG_ERROR:
        return "error";
    case WSX_LOG_WARN:
        return "warn";
    case WSX_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

json_t *tool_json_text(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j) return j;
    /* Not UTF-8 (a message cut inside a character, or bytes from the network): each byte
     * that does not start a whole, valid character becomes U+FFFD. */
    char *t = malloc(len * 3 + 1);
    if (!t) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (i + k <= len && wsx_utf8_valid((const uint8_t *)s + i, k)) {
            memcpy(t + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(t + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(t, o);
    free(t);
    return j;
}

bool tool_json_print(FILE *f, json_t *o)
{
    /* 15 significant digits print a figure rounded to a few decimals as it is (12345.6, not
     * 12345.600000000000364). */
    const size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(15);
    char stack[2048], *p = stack;
    size_t n = o ? json_dumpb(o, stack, sizeof stack - 1, flags) : 0;
    if (n >= sizeof stack && (p = malloc(n + 1)) && json_dumpb(o, p, n, flags) != n) {
        free(p);
        p = NULL;
    }
    json_decref(o);
    if (!n || !p) return false;
    /* One write for the line, so that lines from several threads do not interleave. */
    p[n] = '\n';
    bool ok = fwrite(p, 1, n + 1, f) == n + 1;
    if (p != stack) free(p);
    return ok;
}

/* The line: the text, and in JSON the fields besides. */
static void log_line(int level, const tool_field *f, size_t nf, const char *msg)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    if (!g_log.json) {
        /* Peers choose some of the text (a close reason may hold a newline): control bytes
         * are written as \xNN, so that a peer cannot forge a line. */
        char safe[4 * 1024 + 1];
        size_t o = 0;
        for (const unsigned char *p = (const unsigned char *)msg; *p && o + 5 < sizeof safe; p++) {
            if (*p < 0x20 || *p == 0x7f)
                o += (size_t)snprintf(safe + o, sizeof safe - o, "\\x%02x", *p);
            else
                safe[o++] = (char)*p;
        }
        safe[o] = 0;
        fprintf(stderr, "%s %s %s\n", ts, level_name(level), safe);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(level_name(level)));
    json_object_set_new(o, "msg", tool_json_text(msg, strlen(msg)));
    for (size_t i = 0; i < nf; i++) {
        if (!f[i].key) continue;
        size_t len = f[i].s && f[i].len == SIZE_MAX ? strlen(f[i].s) : f[i].len;
        json_t *v = f[i].s         ? tool_json_text(f[i].s, len)
                    : f[i].is_real ? json_real(f[i].real)
                                   : json_integer(f[i].n);
        json_object_set_new(o, f[i].key, v);
    }
    tool_json_print(stderr, o);
}

void tool_logf(int level, const char *fmt, ...)
{
    if (g_log.quiet && level > WSX_LOG_WARN) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_line(level, NULL, 0, msg);
}

void tool_log_fields(int level, const tool_field *f, size_t n, const char *fmt, ...)
{
    if (g_log.quiet && level > WSX_LOG_WARN) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_line(level, f, n, msg);
}

void tool_log_cb(int level, const char *msg, void *user)
{
    (void)user;
    tool_logf(level, "%s", msg);
}

void tool_conn_id_set(tool_conn_id *ci, const wsx_conn *c, uint64_t id)
{
    if (wsx_conn_peer(c, ci->peer, sizeof ci->peer) < 0) snprintf(ci->peer, sizeof ci->peer, "-");
    ci->id = id;
    ci->tag = 'c';
}

const char *tool_conn_name(const tool_conn_id *ci, char *out, size_t cap)
{
    snprintf(out, cap, "%c%llu", ci->tag ? ci->tag : 'c', (unsigned long long)ci->id);
    return out;
}

uint64_t tool_conn_id_next(void)
{
    static uint64_t next;
    return __atomic_add_fetch(&next, 1, __ATOMIC_RELAXED);
}

void tool_log_open(const tool_conn_id *ci, const char *path, const char *what)
{
    char name[24];
    tool_field f[] = {TOOL_FS("conn", tool_conn_name(ci, name, sizeof name)),
                      TOOL_FS("peer", ci->peer), TOOL_FS("path", path ? path : "")};
    tool_log_fields(WSX_LOG_INFO, f, 3, "%s %s open %s%s%s", ci->peer, name, path ? path : "",
                    what ? " " : "", what ? what : "");
}

void tool_log_close(const tool_conn_id *ci, const char *path, int code, const char *reason,
                    size_t len, const char *room)
{
    tool_metrics_close(code);
    char name[24];
    tool_field f[] = {TOOL_FS("conn", tool_conn_name(ci, name, sizeof name)),
                      TOOL_FS("peer", ci->peer),
                      TOOL_FS("path", path ? path : ""),
                      TOOL_FN("code", code),
                      TOOL_FSN("reason", reason ? reason : "", reason ? len : 0),
                      room ? TOOL_FS("room", room) : (tool_field){0}};
    tool_log_fields(WSX_LOG_INFO, f, 6, "%s %s close %d%s%.*s%s%s", ci->peer, name, code,
                    len ? " " : "", (int)len, reason ? reason : "", room ? " room " : "",
                    room ? room : "");
}

void tool_log_conn(const tool_conn_id *ci, const char *path, const wsx_conn *c, int level,
                   const char *msg)
{
    if (!ci || !ci->id) {
        char peer[64];
        if (wsx_conn_peer(c, peer, sizeof peer) < 0) snprintf(peer, sizeof peer, "-");
        tool_field f[] = {TOOL_FS("peer", peer)};
        tool_log_fields(level, f, 1, "%s %s", peer, msg);
        return;
    }
    char name[24];
    tool_field f[] = {TOOL_FS("conn", tool_conn_name(ci, name, sizeof name)),
                      TOOL_FS("peer", ci->peer), path ? TOOL_FS("path", path) : (tool_field){0}};
    tool_log_fields(level, f, 3, "%s %s %s", ci->peer, name, msg);
}

void tool_access_cb(const wsx_http_access *a, void *user)
{
    (void)user;
    tool_field f[] = {TOOL_FS("peer", a->peer),
                      TOOL_FSN("method", a->method, a->method_len),
                      TOOL_FSN("path", a->path, a->path_len),
                      TOOL_FN("status", a->status),
                      TOOL_FN("bytes", a->bytes),
                      TOOL_FR("ms", a->ms)};
    char msg[1024];
    snprintf(msg, sizeof msg, "%s %.*s %.*s %d %llu %.3fms", a->peer,
             (int)(a->method_len ? a->method_len : 1), a->method_len ? a->method : "-",
             (int)(a->path_len ? a->path_len : 1), a->path_len ? a->path : "-", a->status,
             (unsigned long long)a->bytes, a->ms);
    log_line(WSX_LOG_INFO, f, sizeof f / sizeof f[0], msg);
}

bool parse_size(const char *s, size_t *out)
{
    if (!s || !*s) return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-') return false;
    unsigned long long mul = 1;
    if (*end) {
        switch (*end) {
        case 'k':
        case 'K':
            mul = 1ull << 10;
            break;
        case 'm':
        case 'M':
            mul = 1ull << 20;
            break;
        case 'g':
        case 'G':
            mul = 1ull << 30;
            break;
        default:
            return false;
        }
        if (end[1] && !(end[1] == 'i' && end[2] == 'B' && !end[3]) && !(end[1] == 'B' && !end[2]))
            return false;
    }
    if (v > SIZE_MAX / mul) return false;
    *out = (size_t)(v * mul);
    return true;
}

bool parse_u32(const char *s, uint32_t *out)
{
    if (!s || !*s || *s == '-') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "wsx %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'wsx %s --help'.\n", cmd);
    va_end(ap);
    return 2;
}

/* Edit distance of a and b, a swap of two neighbours ("prot" for "port") counting as one
 * edit; for "did you mean". Names longer than 40 bytes are never close. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return SIZE_MAX;
    size_t d[41][41];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

int tool_bad_option(const char *cmd, const struct option *longopts, char **argv, int ch)
{
    /* getopt_long leaves optind past the option it refused (and past its missing value). */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    if (ch == ':') {
        if (arg[0] == '-' && arg[1] == '-')
            return usage_error(cmd, "option '%s' needs a value", arg);
        return usage_error(cmd, "option '-%c' needs a value", optopt);
    }
    if (!(arg[0] == '-' && arg[1] == '-')) return usage_error(cmd, "unknown option '-%c'", optopt);
    char name[64];
    size_t n = strcspn(arg + 2, "=");
    if (n >= sizeof name) n = sizeof name - 1;
    memcpy(name, arg + 2, n);
    name[n] = '\0';
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (const struct option *o = longopts; o->name; o++) {
        size_t d = distance(name, o->name);
        if (d < best_d) {
            best_d = d;
            best = o->name;
        }
    }
    /* One or two edits is a typo; more is another option altogether. */
    if (best && best_d <= (n > 4 ? 2u : 1u))
        return usage_error(cmd, "unknown option '--%s' (did you mean --%s?)", name, best);
    return usage_error(cmd, "unknown option '--%s'", name);
}

/* What the first PEM block of path holds: 'c' a certificate, 'k' a private key, 0 neither
 * (or unreadable: loading the file says why). */
static int pem_kind(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    int kind = 0;
    for (int i = 0; i < 10000 && !kind && fgets(line, sizeof line, f); i++) {
        if (strncmp(line, "-----BEGIN ", 11)) continue;
        if (strstr(line, "PRIVATE KEY-----"))
            kind = 'k';
        else if (strstr(line, "CERTIFICATE-----"))
            kind = 'c';
    }
    fclose(f);
    return kind;
}

int tool_tls_check(const tool_tls *t, const char *cmd)
{
    if (t->n_certs > t->n_keys)
        return usage_error(cmd,
                           "--tls-cert %s has no --tls-key (give the certificate's private key)",
                           t->certs[t->n_keys].cert_file);
    if (t->n_keys > t->n_certs)
        return usage_error(cmd,
                           "--tls-key %s has no --tls-cert (give the certificate it goes with)",
                           t->certs[t->n_certs].key_file);
    for (size_t i = 0; i < t->n_certs; i++) {
        const char *c = t->certs[i].cert_file, *k = t->certs[i].key_file;
        if (pem_kind(c) == 'k' && pem_kind(k) == 'c')
            return usage_error(cmd,
                               "%s holds a private key, not a certificate, and %s a certificate: "
                               "--tls-cert and --tls-key are swapped",
                               c, k);
        if (pem_kind(c) == 'k')
            return usage_error(cmd, "--tls-cert %s holds a private key, not a certificate", c);
        if (pem_kind(k) == 'c')
            return usage_error(cmd, "--tls-key %s holds a certificate, not a private key", k);
    }
    if (t->handshake_ms && !t->n_certs)
        return usage_error(cmd, "--tls-handshake-timeout needs --tls-cert");
    return 0;
}

bool tool_tls_option(tool_tls *t, int opt, const char *arg, const char *cmd)
{
    if (opt == TOOL_O_TLS_HS) {
        uint32_t v;
        if (!parse_u32(arg, &v) || v == 0) {
            usage_error(cmd, "bad --tls-handshake-timeout '%s' (milliseconds, above 0)", arg);
            return false;
        }
        t->handshake_ms = v;
        return true;
    }
    size_t *n = opt == TOOL_O_TLS_KEY ? &t->n_keys : &t->n_certs;
    if (*n == TOOL_MAX_CERTS) {
        usage_error(cmd, "too many certificates");
        return false;
    }
    if (opt == TOOL_O_TLS_KEY)
        t->certs[(*n)++].key_file = arg;
    else
        t->certs[(*n)++].cert_file = arg;
    return true;
}

void tool_tls_apply(const tool_tls *t, wsx_server_opts *o)
{
    o->tls_certs = t->certs;
    o->n_tls_certs = t->n_certs;
    if (t->handshake_ms) o->tls_handshake_timeout_ms = t->handshake_ms;
}

void tool_deflate_defaults(wsx_server_opts *o, bool enabled)
{
    /* Compression costs the server no per-connection compressor this way, and a broadcast
     * is compressed once for every subscriber. Level 1 with a small hash table: the shared
     * compressor restarts for every message, and real-time text gains little from more
     * (30 against 35 us of server CPU per 1 KiB JSON message at level 6, memLevel 8). */
    o->deflate = wsx_pmd_defaults();
    o->deflate.enabled = enabled;
    o->deflate.server_no_context_takeover = true;
    o->deflate.level = 1;
    o->deflate.mem_level = 4;
    o->deflate_idle_trim = true;
}

void tool_reload_tls(wsx_server *const *srvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* Reloading is safe from any thread. */
        wsx_error err;
        int rc = wsx_server_reload_tls(srvs[i], &err);
        if (rc == WSX_EINVAL) continue; /* not a TLS server */
        if (rc == 0)
            tool_logf(WSX_LOG_INFO, "SIGHUP: certificates reloaded");
        else
            tool_logf(WSX_LOG_ERROR, "SIGHUP: reload failed, keeping the old certificates: %s",
                      err.detail);
    }
}

bool tool_admit_option(wsx_server_opts *o, int opt, const char *arg, const char *cmd)
{
    size_t n;
    if (!parse_size(arg, &n)) {
        usage_error(cmd, "bad count '%s' (0 = no limit)", arg);
        return false;
    }
    /* In the options 0 means the default; on the command line it means no limit. */
    if (n == 0) n = SIZE_MAX;
    if (opt == TOOL_O_MAX_PER_IP) o->max_per_ip = n;
    if (opt == TOOL_O_MAX_HS_PER_IP) o->max_handshakes_per_ip = n;
    if (opt == TOOL_O_MAX_HS) o->max_handshakes = n;
    return true;
}

void tool_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
    rlim_t was = rl.rlim_cur;
    /* Every connection is a descriptor: a soft limit of 1024 (a common default) caps a
     * server far below what it can hold, while the hard limit is what the administrator
     * allows. */
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) rl.rlim_cur = was;
    }
    if (rl.rlim_cur == RLIM_INFINITY)
        tool_logf(WSX_LOG_INFO, "file descriptors: no limit (RLIMIT_NOFILE)");
    else if (rl.rlim_cur != was)
        tool_logf(WSX_LOG_INFO, "file descriptors: up to %llu (RLIMIT_NOFILE, raised from %llu)",
                  (unsigned long long)rl.rlim_cur, (unsigned long long)was);
    else
        tool_logf(WSX_LOG_INFO, "file descriptors: up to %llu (RLIMIT_NOFILE%s)",
                  (unsigned long long)rl.rlim_cur,
                  rl.rlim_cur == rl.rlim_max ? "" : "; could not raise it");
}

/* One "listening on" line for an address. */
static void listening_line(const char *scheme, const char *addr, unsigned port, const char *path)
{
    bool v6 = strchr(addr, ':') != NULL;
    printf("listening on %s://%s%s%s:%u%s\n", scheme, v6 ? "[" : "", addr, v6 ? "]" : "", port,
           path);
}

void tool_print_listening(const char *scheme, const char *host, unsigned port, const char *path)
{
    if (!path) path = "/";
    if (host && *host) {
        listening_line(scheme, host, port, path);
        return;
    }
    /* All interfaces: the addresses this machine has now, each a URL that works, the
     * loopback ones first (getifaddrs lists lo first on Linux). */
    struct ifaddrs *ifs = NULL;
    size_t n = 0;
    if (getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i && n < 32; i = i->ifa_next) {
            if (!i->ifa_addr) continue;
            char a[INET6_ADDRSTRLEN];
            if (i->ifa_addr->sa_family == AF_INET) {
                inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, a,
                          sizeof a);
            } else if (i->ifa_addr->sa_family == AF_INET6) {
                const struct in6_addr *x = &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr;
                /* A link-local address needs a zone (%eth0) that browsers do not take. */
                if (IN6_IS_ADDR_LINKLOCAL(x)) continue;
                inet_ntop(AF_INET6, x, a, sizeof a);
            } else {
                continue;
            }
            listening_line(scheme, a, port, path);
            n++;
        }
        freeifaddrs(ifs);
    }
    if (!n) listening_line(scheme, "::", port, path);
    tool_logf(WSX_LOG_INFO,
              "listening on all interfaces: reachable from the network (--host 127.0.0.1 for "
              "this machine only)");
}
