/*
 * Helpers shared by the unit tests that run an event loop (test_loop, test_tcp, test_tls).
 * Include after test.h.
 */
#ifndef WSX_NET_TEST_H
#define WSX_NET_TEST_H

#include <stdint.h>
#include <time.h>

#include "wsx/loop.h"

/* Each test is bounded: a hang ends the process with SIGALRM. */
#define RUN_T(name)                                                                                \
    do {                                                                                           \
        alarm(20);                                                                                 \
        RUN(name);                                                                                 \
        alarm(0);                                                                                  \
    } while (0)

static inline wsx_loop *new_loop(void)
{
    wsx_loop *loop = NULL;
    int rc = wsx_loop_new(&loop);
    if (rc != 0 || !loop) {
        fprintf(stderr, "wsx_loop_new: %s\n", wsx_strerror(rc));
        exit(2);
    }
    return loop;
}

static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The byte at offset i of the test streams' payloads. */
static inline uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 7u + (i >> 9));
}

#endif
