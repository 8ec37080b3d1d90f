#include "test.h"
#include "wsx/common.h"

TEST(strerror_covers_table)
{
    CHECK_STR(wsx_strerror(WSX_OK), "success");
    CHECK_STR(wsx_strerror(WSX_EPROTO), "WebSocket protocol error");
    CHECK_STR(wsx_strerror(12345), "unknown error");
    CHECK_STR(wsx_err_name(WSX_ETOOBIG), "WSX_ETOOBIG");
    CHECK_STR(wsx_err_name(-999), "WSX_E?");
#define CHECK_ONE(name, val, msg) CHECK(strcmp(wsx_strerror(val), msg) == 0);
    WSX_ERRNO_MAP(CHECK_ONE)
#undef CHECK_ONE
}

TEST(close_code_mapping)
{
    CHECK_INT(wsx_err_close_code(WSX_EPROTO), 1002);
    CHECK_INT(wsx_err_close_code(WSX_EINVALDATA), 1007);
    CHECK_INT(wsx_err_close_code(WSX_ETOOBIG), 1009);
    CHECK_INT(wsx_err_close_code(WSX_ENOMEM), 1011);
}

int main(void)
{
    RUN(strerror_covers_table);
    RUN(close_code_mapping);
    return test_summary("error");
}
