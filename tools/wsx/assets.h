/* The web page's files, embedded at build time (cmake/embed.cmake). */
#ifndef WSX_ASSETS_H
#define WSX_ASSETS_H

#include <stddef.h>

typedef struct wsx_asset {
    const char *path; /* "/index.html" */
    const unsigned char *data;
    size_t len;
} wsx_asset;

/* Ends with an entry whose path is NULL. */
extern const wsx_asset wsx_assets[];

#endif
