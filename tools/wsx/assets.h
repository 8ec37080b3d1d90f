/* The web page's files, embedded at build time (cmake/embed.cmake). */
#ifndef WSX_ASSETS_H
#define WSX_ASSETS_H

#include "wsx.h"

/* path ("/index.html"), data, len: the table wsx_static_new() serves. */
typedef wsx_static_file wsx_asset;

/* Ends with an entry whose path is NULL. */
extern const wsx_asset wsx_assets[];

#endif
