/*
 * A minimal test harness for wsx's unit tests. Each test file defines test functions with
 * TEST(name), runs them from main() with RUN(name) and ends with `return test_summary("x")`.
 * Every failed check prints file:line and the values; the exit status is non-zero when any
 * check failed.
 */
#ifndef WSX_TEST_H
#define WSX_TEST_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int test_checks_;
static int test_failed_;
static int test_tests_;
static int test_tests_failed_;
static const char *test_current_;

#define TEST(name) static void name(void)

static inline double test_now_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs one test; a test that takes over a second says so, to keep the suite fast. */
#define RUN(name)                                                                                  \
    do {                                                                                           \
        int before_ = test_failed_;                                                                \
        double t0_ = test_now_();                                                                  \
        test_current_ = #name;                                                                     \
        test_tests_++;                                                                             \
        name();                                                                                    \
        if (test_failed_ != before_) test_tests_failed_++;                                         \
        double dt_ = test_now_() - t0_;                                                            \
        if (dt_ > 1.0) fprintf(stderr, "note: %s took %.1f s\n", #name, dt_);                      \
    } while (0)

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        test_failed_++;                                                                            \
        fprintf(stderr, "%s:%d: [%s] ", __FILE__, __LINE__, test_current_);                        \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        test_checks_++;                                                                            \
        if (!(cond)) TEST_FAIL_("CHECK(%s) failed", #cond);                                        \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        test_checks_++;                                                                            \
        if (a_ != b_) TEST_FAIL_("%s == %lld, expected %s == %lld", #a, a_, #b, b_);               \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        test_checks_++;                                                                            \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            TEST_FAIL_("%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)",                    \
                       b_ ? b_ : "(null)");                                                        \
    } while (0)

/* Compares a (pointer, length) pair with a NUL-terminated string. */
#define CHECK_STRN(p, n, s)                                                                        \
    do {                                                                                           \
        const char *p_ = (const char *)(p), *s_ = (s);                                             \
        size_t n_ = (size_t)(n);                                                                   \
        test_checks_++;                                                                            \
        if (!p_ || n_ != strlen(s_) || memcmp(p_, s_, n_) != 0)                                    \
            TEST_FAIL_("%s == \"%.*s\", expected \"%s\"", #p, p_ ? (int)n_ : 6,                    \
                       p_ ? p_ : "(null)", s_);                                                    \
    } while (0)

#define CHECK_MEM(p, n, q, m)                                                                      \
    do {                                                                                           \
        size_t n_ = (size_t)(n), m_ = (size_t)(m);                                                 \
        test_checks_++;                                                                            \
        if (n_ != m_ || (n_ && memcmp((p), (q), n_) != 0))                                         \
            TEST_FAIL_("%s (%zu bytes) differs from %s (%zu bytes)", #p, n_, #q, m_);              \
    } while (0)

static inline int test_summary(const char *suite)
{
    printf("%s: %d tests, %d checks: %d passed, %d failed\n", suite, test_tests_, test_checks_,
           test_tests_ - test_tests_failed_, test_tests_failed_);
    return test_failed_ ? 1 : 0;
}

/*
 * Guard-page buffers (as picohttpparser's tests do): the returned copy of src ends exactly
 * at a PROT_NONE page, so reading one byte past the end faults under any build.
 */
typedef struct {
    uint8_t *base;
    size_t map_len;
    uint8_t *data;
} test_guard;

static inline uint8_t *test_guard_copy(test_guard *g, const void *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + page - 1) / page;
    if (data_pages == 0) data_pages = 1;
    g->map_len = (data_pages + 1) * page;
    g->base = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->base == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    mprotect(g->base + data_pages * page, page, PROT_NONE);
    g->data = g->base + data_pages * page - len;
    if (len) memcpy(g->data, src, len);
    return g->data;
}

static inline void test_guard_free(test_guard *g)
{
    munmap(g->base, g->map_len);
}

#endif
