/* CPU features the protocol core dispatches on at run time (x86-64 with GCC or clang). */
#ifndef WSX_PROTO_CPU_H
#define WSX_PROTO_CPU_H

#include <stdbool.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WSX__HAVE_AVX2_PATHS 1
/* Whether this CPU runs AVX2 code: asked once, then a relaxed atomic read. */
bool wsx__cpu_avx2(void);
#endif

#endif
