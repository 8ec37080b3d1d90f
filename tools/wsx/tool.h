/* Shared pieces of the `wsx` command's subcommands. */
#ifndef WSX_TOOL_H
#define WSX_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsx.h"

int cmd_echo(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Logging for the tools: a line on stderr, plain ("2026-11-26T10:00:00.123Z info msg") or
 * JSON ({"ts":...,"level":...,"msg":...}). */
typedef struct tool_log {
    bool quiet; /* only warnings and errors */
    bool json;
} tool_log;

extern tool_log g_log;
void tool_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A wsx_log_cb that forwards to tool_logf. */
void tool_log_cb(int level, const char *msg, void *user);

/* Parses "123", "64k", "16M", "1G" (powers of 1024). Returns false on a bad value. */
bool parse_size(const char *s, size_t *out);
/* Parses a non-negative integer that fits in uint32_t. */
bool parse_u32(const char *s, uint32_t *out);

/* --tls-cert FILE / --tls-key FILE pairs, in order (several pairs: SNI). */
#define TOOL_MAX_CERTS 8
typedef struct tool_tls {
    wsx_tls_cert certs[TOOL_MAX_CERTS];
    size_t n_certs, n_keys;
    uint32_t handshake_ms; /* --tls-handshake-timeout; 0 = the library default */
} tool_tls;
/* Adds a certificate or a key; false when there are too many. */
bool tool_tls_add(tool_tls *t, bool key, const char *file);
/* Checks the pairs are complete; prints a usage error and returns 2 if not, else 0. */
int tool_tls_check(const tool_tls *t, const char *cmd);
/* --tls-handshake-timeout MS: returns false (with a usage error printed) if MS is not a
 * number above 0. */
bool tool_tls_timeout(tool_tls *t, const char *arg, const char *cmd);
/* Puts the certificates and the TLS handshake deadline into o. */
void tool_tls_apply(const tool_tls *t, wsx_server_opts *o);
/* The help lines of the options above, the same for every server command. */
#define TOOL_TLS_TIMEOUT_HELP                                                                      \
    "  --tls-handshake-timeout MS\n"                                                               \
    "                         time for a TLS client to finish its handshake (default 10000)\n"

/* The permessage-deflate settings of `wsx serve` and `wsx echo` (accepted unless !enabled). */
void tool_deflate_defaults(wsx_server_opts *o, bool enabled);

/* SIGHUP: reads the certificates of each TLS server again and logs the outcome. */
void tool_reload_tls(wsx_server *const *srvs, size_t n);

/* Prints "wsx CMD: msg" on stderr and returns 2 (the usage-error status). */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
