/*
 * `wsx serve`: POST /api/rooms/NAME/messages, how a backend posts to a room as a named bot
 * over plain HTTP (docs/chat-protocol.md, "Posting from a backend"). The chat does the rest
 * (wsx_chat_post): the same ids, history, members and SSE listeners as a member's message.
 */
#include <string.h>
#include <strings.h>

#include "serve.h"

#define PREFIX "/api/rooms/"
#define SUFFIX "/messages"

/* Answers status with {"error":code,"message":msg} (or body as it is when code is NULL). */
static void respond_json(wsx_http_req *r, int status, const char *code, const char *msg,
                         const char *extra_name, const char *extra_value)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"message\":\"%s\"}\n", code, msg);
    wsx_http_header h[] = {{"Content-Type", 12, "application/json", 16},
                           {"Cache-Control", 13, "no-store", 8},
                           {extra_name, extra_name ? strlen(extra_name) : 0, extra_value,
                            extra_value ? strlen(extra_value) : 0}};
    wsx_http_respond(r, status, h, extra_name ? 3 : 2, body, (size_t)n);
}

/* The room of a path /api/rooms/NAME/messages into out; false if the path is not of that
 * form or NAME is not a room name the protocol allows (such a room cannot exist: 404). */
static bool room_of(const wsx_http_req *r, char out[WSX_CHAT_MAX_ROOM + 1])
{
    size_t pl, n;
    const char *p = wsx_http_req_path(r, &pl);
    const size_t pre = sizeof PREFIX - 1, suf = sizeof SUFFIX - 1;
    if (pl <= pre + suf || memcmp(p, PREFIX, pre) || memcmp(p + pl - suf, SUFFIX, suf))
        return false;
    n = pl - pre - suf;
    if (!wsx_chat_valid_room(p + pre, n)) return false;
    memcpy(out, p + pre, n);
    out[n] = '\0';
    return true;
}

/* application/json, with parameters or not (charset=utf-8 is what most clients add). */
static bool is_json(const wsx_http_req *r)
{
    const wsx_http_header *h = wsx_http_req_header(r, "content-type");
    if (!h) return false;
    size_t n = h->value_len;
    const char *semi = memchr(h->value, ';', n);
    if (semi) n = (size_t)(semi - h->value);
    while (n && (h->value[n - 1] == ' ' || h->value[n - 1] == '\t'))
        n--;
    return n == 16 && !strncasecmp(h->value, "application/json", 16);
}

static void on_post(wsx_http_req *r, void *user)
{
    (void)user;
    const char *peer = wsx_http_req_peer(r);
    /* Without --token anyone who reaches the port could post under any name. */
    if (!g_serve.token) {
        tool_field f[] = {TOOL_FS("peer", peer), TOOL_FN("status", 403)};
        tool_log_fields(WSX_LOG_INFO, f, 2, "%s POST refused: posting needs --token", peer);
        return respond_json(r, 403, "forbidden", "posting needs --token", NULL, NULL);
    }
    if (!serve_has_token(r, g_serve.token)) {
        tool_field f[] = {TOOL_FS("peer", peer), TOOL_FN("status", 401)};
        tool_log_fields(WSX_LOG_INFO, f, 2, "%s POST refused: missing or wrong token", peer);
        return respond_json(r, 401, "unauthorized", "missing or wrong token", "WWW-Authenticate",
                            "Bearer realm=\"chat\"");
    }
    char room[WSX_CHAT_MAX_ROOM + 1];
    if (!room_of(r, room))
        return respond_json(r, 404, "not_found",
                            "POST /api/rooms/NAME/messages, NAME: 1 to 32 of A-Z a-z 0-9 _ . -",
                            NULL, NULL);
    if (!is_json(r))
        return respond_json(r, 415, "unsupported_media_type", "the body must be application/json",
                            NULL, NULL);
    size_t bl;
    const uint8_t *body = wsx_http_req_body(r, &bl);
    json_error_t err;
    json_t *req = json_loadb((const char *)body, bl, 0, &err);
    json_t *jn = json_object_get(req, "name"), *jt = json_object_get(req, "text");
    if (!json_is_object(req) || !json_is_string(jn) || !json_is_string(jt)) {
        json_decref(req);
        return respond_json(r, 400, "bad_json",
                            "the body is a JSON object with the strings name and text", NULL, NULL);
    }
    uint64_t id = 0;
    const char *why = NULL;
    int rc = wsx_chat_post(g_serve.chat, room, json_string_value(jn), json_string_length(jn),
                           json_string_value(jt), json_string_length(jt), &id, &why);
    json_decref(req);
    if (rc == 0) {
        char out[64];
        /* id 0: numbered by Redis after this answer (--redis, docs/cluster.md). */
        int n = id ? snprintf(out, sizeof out, "{\"id\":%llu}\n", (unsigned long long)id)
                   : snprintf(out, sizeof out, "{\"id\":null}\n");
        wsx_http_header h[] = {{"Content-Type", 12, "application/json", 16},
                               {"Cache-Control", 13, "no-store", 8}};
        tool_field f[] = {TOOL_FS("peer", peer), TOOL_FS("room", room), TOOL_FN("id", id)};
        tool_log_fields(WSX_LOG_DEBUG, f, 3, "%s POST %s: message %llu", peer, room,
                        (unsigned long long)id);
        wsx_http_respond(r, 201, h, 2, out, (size_t)n);
        return;
    }
    if (!strcmp(why, "bad_name"))
        return respond_json(
            r, 400, why, "name: 1 to 32 characters, no control or format characters", NULL, NULL);
    if (!strcmp(why, "bad_text"))
        return respond_json(r, 400, why, "text: 1 to 2000 characters", NULL, NULL);
    if (!strcmp(why, "rate_limited"))
        return respond_json(r, 429, why, "too many posts: slow down", "Retry-After", "1");
    if (!strcmp(why, "too_many_rooms"))
        return respond_json(r, 503, why, "too many rooms", "Retry-After", "60");
    respond_json(r, 503, "unavailable", "out of memory", NULL, NULL);
}

bool serve_add_post_route(wsx_server *srv)
{
    wsx_route_opts ro = {.methods = "POST", .max_body = SERVE_POST_MAX_BODY, .on_request = on_post};
    return wsx_server_route(srv, PREFIX "*", &ro) == 0;
}
