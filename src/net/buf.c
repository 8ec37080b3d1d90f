/*
 * Buffers: shared reference-counted byte buffers, and the output-queue nodes of streams
 * with per-loop caches so that steady-state writes do not reach malloc.
 */
#define WSX__NET_INTERNAL
#include "net.h"

#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

wsx__ref *wsx__ref_new(size_t len)
{
    if (len > SIZE_MAX - sizeof(wsx__ref)) return NULL;
    wsx__ref *r = malloc(sizeof *r + len);
    if (!r) return NULL;
    r->refs = 1;
    r->len = len;
    return r;
}

wsx__ref *wsx__ref_retain(wsx__ref *r)
{
    r->refs++;
    return r;
}

void wsx__ref_release(wsx__ref *r)
{
    if (r && --r->refs == 0) free(r);
}

/* Chunks larger than the standard size serve one big write and are never cached; capping
 * them keeps offsets within 32 bits. */
#define CHUNK_MAX (1u << 30)

wsx__qnode *wsx__chunk_get(wsx_loop *loop, size_t min_cap)
{
    wsx__qnode *q;
    if (min_cap <= WSX__SMALL_CHUNK && loop->small_cache) {
        q = loop->small_cache;
        loop->small_cache = q->next;
        loop->nsmall_cache--;
    } else if (min_cap > WSX__SMALL_CHUNK && min_cap <= WSX__CHUNK_SIZE && loop->chunk_cache) {
        q = loop->chunk_cache;
        loop->chunk_cache = q->next;
        loop->nchunk_cache--;
    } else {
        size_t cap = min_cap <= WSX__SMALL_CHUNK ? WSX__SMALL_CHUNK
                     : min_cap < WSX__CHUNK_SIZE ? WSX__CHUNK_SIZE
                                                 : min_cap;
        if (cap > CHUNK_MAX) cap = CHUNK_MAX;
        q = malloc(sizeof *q + cap);
        if (!q) return NULL;
        q->cap = (uint32_t)cap;
        q->base = (const uint8_t *)(q + 1);
    }
    q->next = NULL;
    q->ref = NULL;
    q->off = q->len = 0;
    return q;
}

wsx__qnode *wsx__slice_get(wsx_loop *loop)
{
    wsx__qnode *q = loop->slice_cache;
    if (q) {
        loop->slice_cache = q->next;
        loop->nslice_cache--;
    } else {
        q = malloc(sizeof *q);
        if (!q) return NULL;
    }
    q->next = NULL;
    q->ref = NULL;
    q->base = NULL;
    q->off = q->len = q->cap = 0;
    return q;
}

void wsx__qnode_put(wsx_loop *loop, wsx__qnode *q)
{
    if (q->ref) {
        wsx__ref_release(q->ref);
        q->ref = NULL;
        if (loop->nslice_cache < WSX__SLICE_CACHE) {
            q->next = loop->slice_cache;
            loop->slice_cache = q;
            loop->nslice_cache++;
            return;
        }
    } else if (q->cap == WSX__SMALL_CHUNK && loop->nsmall_cache < WSX__SMALL_CACHE) {
        q->next = loop->small_cache;
        loop->small_cache = q;
        loop->nsmall_cache++;
        return;
    } else if (q->cap == WSX__CHUNK_SIZE && loop->nchunk_cache < WSX__CHUNK_CACHE) {
        q->next = loop->chunk_cache;
        loop->chunk_cache = q;
        loop->nchunk_cache++;
        return;
    }
    free(q);
}

static void trim_list(wsx__qnode **list, size_t *n, size_t keep)
{
    while (*n > keep) {
        wsx__qnode *q = *list;
        *list = q->next;
        free(q);
        (*n)--;
    }
}

bool wsx__qcache_excess(const wsx_loop *loop)
{
    return loop->nsmall_cache > WSX__CACHE_IDLE || loop->nchunk_cache > WSX__CACHE_IDLE;
}

bool wsx__qcache_trim(wsx_loop *loop)
{
    if (!wsx__qcache_excess(loop)) return false;
    trim_list(&loop->small_cache, &loop->nsmall_cache, WSX__CACHE_IDLE);
    trim_list(&loop->chunk_cache, &loop->nchunk_cache, WSX__CACHE_IDLE);
#ifdef __GLIBC__
    /* free() gives back only the top of the heap; the chunks of a busy period sit between
     * long-lived connections, so ask for whole free pages in the middle too. Once per busy
     * period, when the loop has been quiet for WSX__IDLE_TRIM_MS. */
    malloc_trim(0);
#endif
    return true;
}

static size_t decayed(size_t n)
{
    return n / 2 > WSX__CACHE_IDLE ? n / 2 : WSX__CACHE_IDLE;
}

void wsx__qcache_counts(const wsx_loop *loop, size_t *small, size_t *chunk, size_t *slice)
{
    *small = loop->nsmall_cache;
    *chunk = loop->nchunk_cache;
    *slice = loop->nslice_cache;
}

void wsx__qcache_decay(wsx_loop *loop)
{
    trim_list(&loop->small_cache, &loop->nsmall_cache, decayed(loop->nsmall_cache));
    trim_list(&loop->chunk_cache, &loop->nchunk_cache, decayed(loop->nchunk_cache));
    trim_list(&loop->slice_cache, &loop->nslice_cache, decayed(loop->nslice_cache));
}

void wsx__qcache_free(wsx_loop *loop)
{
    for (wsx__qnode *q = loop->chunk_cache, *nx; q; q = nx) {
        nx = q->next;
        free(q);
    }
    for (wsx__qnode *q = loop->slice_cache, *nx; q; q = nx) {
        nx = q->next;
        free(q);
    }
    for (wsx__qnode *q = loop->small_cache, *nx; q; q = nx) {
        nx = q->next;
        free(q);
    }
    loop->chunk_cache = loop->slice_cache = loop->small_cache = NULL;
    loop->nchunk_cache = loop->nslice_cache = loop->nsmall_cache = 0;
}
