/*
 * Helpers of the cluster tests (test_cluster*.c): a real redis-server on a free loopback
 * port, without persistence, killed with the test (also if the test process dies: the child
 * gets SIGKILL through PR_SET_PDEATHSIG); pumping one or more loops until a condition holds
 * or a deadline passes. Include after test.h and net_test.h.
 */
#ifndef WSX_CLUSTER_TEST_H
#define WSX_CLUSTER_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "wsx.h"
#include "wsx/cluster.h"

#define REDIS_SERVER "/usr/bin/redis-server"

typedef struct test_redis {
    pid_t pid;
    uint16_t port;
    const char *extra[4]; /* more arguments (NULL-terminated), e.g. --requirepass */
} test_redis;

/* A port the kernel had free a moment ago. */
static inline uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        perror("free_port");
        exit(2);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static inline bool port_open(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static inline bool have_redis(void)
{
    return access(REDIS_SERVER, X_OK) == 0;
}

/* Starts redis-server on r->port (a free one when 0). Returns false if it does not listen
 * within 5 s. */
static inline bool redis_start(test_redis *r)
{
    if (!r->port) r->port = free_port();
    char port[16];
    snprintf(port, sizeof port, "%u", r->port);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        const char *argv[24] = {
            REDIS_SERVER,   "--port", port,         "--bind",  "127.0.0.1",   "--save", "",
            "--appendonly", "no",     "--loglevel", "warning", "--daemonize", "no"};
        int n = 13;
        for (int i = 0; i < 4 && r->extra[i]; i++)
            argv[n++] = r->extra[i];
        argv[n] = NULL;
        execv(REDIS_SERVER, (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 500; i++) {
        if (port_open(r->port)) return true;
        usleep(10000);
    }
    return false;
}

static inline void redis_kill(test_redis *r)
{
    if (r->pid <= 0) return;
    kill(r->pid, SIGCONT);
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

/* Runs each loop for one short slice (a 1 ms timer stops it) until cond(arg) holds or ms pass.
 * Returns cond's last value. */
static inline void pump_stop(wsx_timer *t, void *arg)
{
    (void)t;
    wsx_loop_stop(arg);
}

static inline bool pump(wsx_loop **loops, int n, bool (*cond)(void *), void *arg, uint64_t ms)
{
    uint64_t end = now_ms() + ms;
    for (;;) {
        if (cond && cond(arg)) return true;
        if (now_ms() >= end) return cond ? cond(arg) : true;
        for (int i = 0; i < n; i++) {
            wsx_timer *t = NULL;
            wsx_timer_start(loops[i], 1, 0, pump_stop, loops[i], &t);
            wsx_loop_run(loops[i]);
        }
    }
}

static inline bool is_up(void *arg)
{
    wsx_cluster_stats st;
    wsx_cluster_get_stats(arg, &st);
    return st.state == WSX_CLUSTER_UP;
}

static inline bool is_down(void *arg)
{
    wsx_cluster_stats st;
    wsx_cluster_get_stats(arg, &st);
    return st.state == WSX_CLUSTER_DOWN;
}

static inline wsx_cluster *cluster_on(wsx_loop *loop, uint16_t port, wsx_cluster_opts *o)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", port);
    wsx_cluster_opts d = wsx_cluster_defaults();
    if (!o) o = &d;
    o->url = url;
    wsx_cluster *cl = NULL;
    wsx_error err;
    int rc = wsx_cluster_start(loop, o, &cl, &err);
    if (rc < 0) {
        fprintf(stderr, "wsx_cluster_start: %s %s\n", wsx_strerror(rc), err.detail);
        exit(2);
    }
    return cl;
}

#endif
