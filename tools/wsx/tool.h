/* Shared pieces of the `wsx` command's subcommands. */
#ifndef WSX_TOOL_H
#define WSX_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "wsx.h"

int cmd_echo(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_sio(int argc, char **argv);

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
/* A JSON string of s: the text as it is when it is UTF-8, else with U+FFFD for each byte
 * that does not start a valid character. NULL when out of memory. */
json_t *tool_json_text(const char *s, size_t len);
/* Writes o as one compact line (with its newline) in one write, and drops o. false when o is
 * NULL (a failed build), memory ran out or the write failed. */
bool tool_json_print(FILE *f, json_t *o);

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
/* The TLS options of the server commands, the same in each: getopt_long values (above any
 * command's own) and the entries of their long-option tables. */
enum { TOOL_O_TLS_CERT = 0x1000, TOOL_O_TLS_KEY, TOOL_O_TLS_HS };
/* clang-format off */
#define TOOL_TLS_LONGOPTS                                                \
    {"tls-cert", required_argument, 0, TOOL_O_TLS_CERT},                 \
    {"tls-key", required_argument, 0, TOOL_O_TLS_KEY},                   \
    {"tls-handshake-timeout", required_argument, 0, TOOL_O_TLS_HS}
/* clang-format on */
/* Takes one of those options (--tls-cert FILE, --tls-key FILE, --tls-handshake-timeout MS
 * above 0); false after printing a usage error (too many certificates, a bad MS). */
bool tool_tls_option(tool_tls *t, int opt, const char *arg, const char *cmd);
/* Checks the pairs are complete; prints a usage error and returns 2 if not, else 0. */
int tool_tls_check(const tool_tls *t, const char *cmd);
/* Puts the certificates and the TLS handshake deadline into o. */
void tool_tls_apply(const tool_tls *t, wsx_server_opts *o);
/* The help lines of the options above, the same for every server command. */
#define TOOL_TLS_TIMEOUT_HELP                                                                      \
    "  --tls-handshake-timeout MS\n"                                                               \
    "                         time for a TLS client to finish its handshake (default 10000)\n"

/* Admission limits of the server commands (--max-per-ip, --max-handshakes-per-ip,
 * --max-handshakes), the same in each: getopt_long values and long-option entries. */
enum { TOOL_O_MAX_PER_IP = 0x1100, TOOL_O_MAX_HS_PER_IP, TOOL_O_MAX_HS };
/* clang-format off */
#define TOOL_ADMIT_LONGOPTS                                              \
    {"max-per-ip", required_argument, 0, TOOL_O_MAX_PER_IP},             \
    {"max-handshakes-per-ip", required_argument, 0, TOOL_O_MAX_HS_PER_IP}, \
    {"max-handshakes", required_argument, 0, TOOL_O_MAX_HS}
/* clang-format on */
/* Takes one of those options (a count; 0 = no limit) into o; false after printing a usage
 * error. */
bool tool_admit_option(wsx_server_opts *o, int opt, const char *arg, const char *cmd);
#define TOOL_ADMIT_HELP                                                                            \
    "  --max-per-ip N         connections from one address (IPv6: one /64) at most; more\n"        \
    "                         are answered 503 and closed (default 256; 0 = no limit)\n"           \
    "  --max-handshakes-per-ip N\n"                                                                \
    "                         connections from one address that have not completed their\n"        \
    "                         first request yet (default 32; 0 = no limit)\n"                      \
    "  --max-handshakes N     such connections from all addresses together (default 1024)\n"

/* At start: raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit, as Node
 * does, and logs the cap in one INFO line. */
void tool_raise_nofile(void);

/* The permessage-deflate settings of `wsx serve` and `wsx echo` (accepted unless !enabled). */
void tool_deflate_defaults(wsx_server_opts *o, bool enabled);

/* SIGHUP: reads the certificates of each TLS server again and logs the outcome. */
void tool_reload_tls(wsx_server *const *srvs, size_t n);

/* getopt_long returned '?' or ':' (the option string starts with ':'): prints one usage
 * error naming the option ("unknown option '--prot' (did you mean --port?)", "option '--port'
 * needs a value") and returns 2. Call it right after getopt_long, with its argv. */
struct option;
int tool_bad_option(const char *cmd, const struct option *longopts, char **argv, int ch);

/* Prints on stdout "listening on SCHEME://ADDR:PORT/PATH" (path NULL: "/"), flushed by the
 * caller: for host NULL or "" (all interfaces) one line per address of this machine's
 * interfaces (loopback first; IPv6 link-local left out) and an INFO log line saying the
 * server is reachable from the network; else one line with host. */
void tool_print_listening(const char *scheme, const char *host, unsigned port, const char *path);

/* Prints "wsx CMD: msg" on stderr and returns 2 (the usage-error status). */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
