/* UTF-8 validator fuzzer: whole-buffer (vector path from 64 bytes) and byte-at-a-time
 * (scalar) feeding must end in the same state, and a REJECT must never turn back. */
#include <stdlib.h>

#include "wsx/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t whole = wsx_utf8_feed(WSX_UTF8_ACCEPT, data, size);
    uint32_t st = WSX_UTF8_ACCEPT;
    for (size_t i = 0; i < size; i++) {
        uint32_t next = wsx_utf8_feed(st, data + i, 1);
        if (st == WSX_UTF8_REJECT && next != WSX_UTF8_REJECT) abort();
        st = next;
    }
    /* The same state exactly: inputs of 64 bytes and more take the vector path whole. */
    if (st != whole) abort();
    return 0;
}
