/*
 * Helpers shared by the permessage-deflate unit tests (test_deflate.c: compression and
 * inflation; test_deflate_negotiate.c: negotiation). Include after test.h.
 */
#ifndef WSX_DEFLATE_TEST_H
#define WSX_DEFLATE_TEST_H

#include <string.h>

#include "wsx/deflate.h"
#include "wsx/proto.h"

static inline wsx_pmd_config on(void)
{
    wsx_pmd_config c = wsx_pmd_defaults();
    c.enabled = true;
    return c;
}

static inline int accept_str(const char *v, const wsx_pmd_config *cfg, wsx_pmd_params *p,
                             const char **why)
{
    return wsx_pmd_client_accept(v, v ? strlen(v) : 0, cfg, p, why);
}

static inline wsx_pmd_params params(bool snct, bool cnct, int smwb, int cmwb)
{
    wsx_pmd_params p = {snct, cnct, (uint8_t)smwb, (uint8_t)cmwb};
    return p;
}

#endif
