/* Run-time CPU feature detection for the protocol core's vector paths. */
#include "cpu.h"

#ifdef WSX__HAVE_AVX2_PATHS
#include <stdatomic.h>

bool wsx__cpu_avx2(void)
{
    static _Atomic int known = -1;
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") ? 1 : 0;
        atomic_store_explicit(&known, v, memory_order_relaxed);
    }
    return v;
}
#else
typedef int wsx__cpu_unused; /* ISO C forbids an empty translation unit */
#endif
