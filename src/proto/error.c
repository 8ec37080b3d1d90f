#include "wsx/common.h"

const char *wsx_strerror(int err)
{
    switch (err) {
    case WSX_OK:
        return "success";
#define WSX__ERR_MSG(name, val, msg)                                                               \
    case WSX_##name:                                                                               \
        return msg;
        WSX_ERRNO_MAP(WSX__ERR_MSG)
#undef WSX__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *wsx_err_name(int err)
{
    switch (err) {
    case WSX_OK:
        return "WSX_OK";
#define WSX__ERR_NAME(name, val, msg)                                                              \
    case WSX_##name:                                                                               \
        return "WSX_" #name;
        WSX_ERRNO_MAP(WSX__ERR_NAME)
#undef WSX__ERR_NAME
    default:
        return "WSX_E?";
    }
}

uint16_t wsx_err_close_code(int err)
{
    switch (err) {
    case WSX_EPROTO:
        return WSX_CLOSE_PROTOCOL_ERROR;
    case WSX_EINVALDATA:
        return WSX_CLOSE_INVALID_DATA;
    case WSX_ETOOBIG:
        return WSX_CLOSE_TOO_BIG;
    default:
        return WSX_CLOSE_INTERNAL_ERROR;
    }
}
