/* `wsx bench`: the latency histogram, log-linear buckets (HDR style), 64 per power of two. */
#include "bench.h"

/* Values below 128 get a bucket each; above, a bucket spans 1/64 of its power of two, so a
 * reported percentile is within 1.6% of the true one. */
static size_t hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB) return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HIST_SUB_BITS;
    return 2 * HIST_SUB + (size_t)(shift - 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
}

/* The middle of bucket i. */
static uint64_t hist_value(size_t i)
{
    if (i < 2 * HIST_SUB) return i;
    size_t j = i - 2 * HIST_SUB;
    unsigned shift = (unsigned)(j / HIST_SUB) + 1;
    uint64_t top = j % HIST_SUB + HIST_SUB;
    return (top << shift) + ((1ull << shift) >> 1);
}

void bench_hist_add(hist *h, uint64_t v)
{
    if (!h->n || v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    h->n++;
    h->sum += v;
    h->b[hist_index(v)]++;
}

void bench_hist_merge(hist *into, const hist *h)
{
    if (!h->n) return;
    if (!into->n || h->min < into->min) into->min = h->min;
    if (h->max > into->max) into->max = h->max;
    into->n += h->n;
    into->sum += h->sum;
    for (size_t i = 0; i < HIST_N; i++)
        into->b[i] += h->b[i];
}

/* The value at quantile q (0..1]: the smallest bucket holding the ceil(q * n)-th value. */
uint64_t bench_hist_pct(const hist *h, double q)
{
    if (!h->n) return 0;
    double want = q * (double)h->n;
    uint64_t target = (uint64_t)want;
    if ((double)target < want) target++;
    if (target < 1) target = 1;
    uint64_t acc = 0;
    for (size_t i = 0; i < HIST_N; i++) {
        acc += h->b[i];
        if (acc >= target) {
            uint64_t v = hist_value(i);
            if (v < h->min) v = h->min;
            if (v > h->max) v = h->max;
            return v;
        }
    }
    return h->max;
}
