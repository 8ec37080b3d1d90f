#!/usr/bin/python3
"""POST /api/rooms/NAME/messages of `wsx serve` (a backend posts as a named bot): over raw
HTTP, the room's WebSocket members (on both loops of --threads 2) and an SSE listener get the
message once, with the same id, "bot":true, the room's next id; a later joiner sees it in the
history. Each refusal's exact status (401, 403, 404, 405, 413, 415, 400 with its code, 429),
and that no refused post reaches the room."""

import asyncio
import http.client
import json
import socket
import sys
import time

import websockets

from wsxlib import astep, check, eq, note, run
from wsxserve import SSE, Chat, Serve, http_req

TOKEN = "s3cret-token"
AUTH = ("Authorization", f"Bearer {TOKEN}")
JSON = ("Content-Type", "application/json")


def th(fn, *args):
    return asyncio.to_thread(fn, *args)


def post(port, room, obj, headers=(AUTH, JSON), path=None):
    """One POST (a new connection): (status, headers, parsed JSON body or the raw bytes)."""
    body = obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()
    st, h, data = http_req(port, "POST", path or f"/api/rooms/{room}/messages", headers, body)
    try:
        return st, h, json.loads(data)
    except ValueError:
        return st, h, data


async def members_quiet(members, label):
    for m in members:
        got = await m.quiet(0.2)
        check(got == [], f"{label}: nothing reached {m.label}", got)


async def delivery(srv):
    port = srv.port
    members = []
    for i in range(4):  # spread over the two loops
        c = await Chat.open(srv.ws_url(f"token={TOKEN}"), f"m{i}")
        await c.join("ops", f"m{i}")
        members.append(c)
    for c in members[:-1]:  # the presence of the later joiners
        await c.quiet(0.2)
    lst = await th(SSE, port, f"/sse?room=ops&token={TOKEN}")
    try:
        eq(lst.status, 200, "the SSE listener is admitted")
        st, h, body = await th(post, port, "ops", {"name": "deploy-bot", "text": "deployed v1.2 ✓"})
        eq(st, 201, "POST /api/rooms/ops/messages -> 201")
        eq(h.get("content-type"), "application/json", "the answer is JSON")
        eq(body, {"id": 1}, "the answer carries the message id")
        raws = [await m.recv_raw() for m in members]
        check(all(r == raws[0] for r in raws), "every member got the same bytes", raws)
        msg = json.loads(raws[0])
        eq({k: msg.get(k) for k in ("type", "id", "room", "name", "text", "bot")},
           {"type": "message", "id": 1, "room": "ops", "name": "deploy-bot",
            "text": "deployed v1.2 ✓", "bot": True}, "the message as members see it")
        check(isinstance(msg.get("ts"), int), "the message has a ts", msg)
        ev = await th(lst.event, 5)
        eq(ev, {"id": "1", "event": "message", "data": raws[0]},
           "the SSE listener got the same message with the same id")
        await members_quiet(members, "after one post (exactly once)")
        check(await th(lst.quiet, 0.2) == [], "the SSE listener got it once")
        # A member's message takes the next id of the same sequence, without "bot".
        await members[0].send({"type": "message", "text": "thanks"})
        m2 = [await m.recv() for m in members]
        check(all(m["id"] == 2 and "bot" not in m for m in m2), "a member's next message is id 2, no bot", m2)
        check((await th(lst.event, 5))["id"] == "2", "the listener sees id 2 next")
        # Trimmed name and text, charset parameter accepted.
        st, _, body = await th(post, port, "ops", {"name": " ci ", "text": " green \n"},
                               (AUTH, ("Content-Type", "application/json; charset=utf-8")))
        eq((st, body), (201, {"id": 3}), "Content-Type with charset -> 201 id 3")
        m3 = [await m.recv() for m in members]
        check(all((m["name"], m["text"], m["bot"]) == ("ci", "green", True) for m in m3),
              "name and text are trimmed as for members", m3)
        await th(lst.event, 5)
        # A later joiner finds the bot's messages in the history.
        late = await Chat.open(srv.ws_url(f"token={TOKEN}"), "late")
        j, _ = await late.join("ops", "late")
        hist = j.get("history") or []
        eq([(m["id"], m.get("bot", False)) for m in hist], [(1, True), (2, False), (3, True)],
           "the history holds the posts with bot:true")
        await late.close()
        for m in members:
            await m.quiet(0.2)

        # Refusals, each with its exact status; none reaches the room.
        long = "é" * 2001
        cases = [
            ("no token", "ops", {"name": "b", "text": "x"}, (JSON,), None, 401, "unauthorized"),
            ("wrong token", "ops", {"name": "b", "text": "x"},
             (("Authorization", "Bearer nope"), JSON), None, 401, "unauthorized"),
            ("bad room name", "bad%20room", {"name": "b", "text": "x"}, (AUTH, JSON), None, 404, "not_found"),
            ("33-byte room name", "r" * 33, {"name": "b", "text": "x"}, (AUTH, JSON), None, 404, "not_found"),
            ("no /messages", None, {"name": "b", "text": "x"}, (AUTH, JSON), "/api/rooms/ops", 404, "not_found"),
            ("path past /messages", None, {"name": "b", "text": "x"}, (AUTH, JSON),
             "/api/rooms/ops/messages/x", 404, "not_found"),
            ("no Content-Type", "ops", {"name": "b", "text": "x"}, (AUTH,), None, 415, "unsupported_media_type"),
            ("text/plain", "ops", {"name": "b", "text": "x"}, (AUTH, ("Content-Type", "text/plain")), None,
             415, "unsupported_media_type"),
            ("not JSON", "ops", b"hello", (AUTH, JSON), None, 400, "bad_json"),
            ("a JSON array", "ops", [1], (AUTH, JSON), None, 400, "bad_json"),
            ("no text", "ops", {"name": "b"}, (AUTH, JSON), None, 400, "bad_json"),
            ("name not a string", "ops", {"name": 5, "text": "x"}, (AUTH, JSON), None, 400, "bad_json"),
            ("empty name", "ops", {"name": "  ", "text": "x"}, (AUTH, JSON), None, 400, "bad_name"),
            ("format character in name", "ops", {"name": "b\u202eot", "text": "x"}, (AUTH, JSON), None,
             400, "bad_name"),
            ("33-character name", "ops", {"name": "n" * 33, "text": "x"}, (AUTH, JSON), None, 400, "bad_name"),
            ("blank text", "ops", {"name": "b", "text": " \n "}, (AUTH, JSON), None, 400, "bad_text"),
            ("2001-character text", "ops", {"name": "b", "text": long}, (AUTH, JSON), None, 400, "bad_text"),
        ]
        for label, room, obj, hdrs, path, want, code in cases:
            st, h, body = await th(post, port, room, obj, hdrs, path)
            eq(st, want, f"{label} -> {want}")
            check(isinstance(body, dict) and body.get("error") == code, f"{label}: error {code}", body)
            if want == 401:
                eq(h.get("www-authenticate"), 'Bearer realm="chat"', f"{label}: WWW-Authenticate")
        st, h, _ = await th(http_req, port, "GET", "/api/rooms/ops/messages", (AUTH,))
        eq(st, 405, "GET -> 405")
        eq(h.get("allow"), "POST", "405 names POST in Allow")
        # Above 8 KiB: 413 (the body is not read; the connection is closed).
        big = json.dumps({"name": "b", "text": "x" * 8200}).encode()
        st, _, _ = await th(raw_post, port, "/api/rooms/ops/messages", big)
        eq(st, 413, "a body above 8 KiB -> 413")
        await members_quiet(members, "after the refusals")
        check(await th(lst.quiet, 0.2) == [], "the listener got none of the refusals")
        # 2000 characters are fine.
        st, _, body = await th(post, port, "ops", {"name": "b", "text": "é" * 2000})
        eq((st, body), (201, {"id": 4}), "a 2000-character text -> 201 id 4")
        m4 = [await m.recv() for m in members]
        check(all(len(m["text"]) == 2000 for m in m4), "members got the 2000 characters")
    finally:
        lst.close()
        for m in members:
            await m.close()


def raw_post(port, path, body):
    """A POST over a raw socket, the whole body sent at once; the status of the answer."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(head + body)
        except OSError:
            pass
        buf = b""
        deadline = time.monotonic() + 5
        while b"\r\n" not in buf and time.monotonic() < deadline:
            try:
                d = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            buf += d
    line = buf.split(b"\r\n", 1)[0].split()
    return (int(line[1]) if len(line) > 1 else None), {}, buf


def flood(port, n):
    """n posts on one keep-alive connection: (statuses, seconds taken, a 429's Retry-After)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    statuses, retry = [], None
    body = json.dumps({"name": "flood-bot", "text": "x"}).encode()
    t0 = time.monotonic()
    try:
        for _ in range(n):
            conn.request("POST", "/api/rooms/flood/messages", body, {"Authorization": f"Bearer {TOKEN}",
                                                                    "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            statuses.append(r.status)
            if r.status == 429:
                retry = r.getheader("Retry-After")
    finally:
        conn.close()
    return statuses, time.monotonic() - t0, retry


async def rate(srv):
    statuses, took, retry = await th(flood, srv.port, 400)
    ok, limited = statuses.count(201), statuses.count(429)
    note(f"400 posts in {took:.2f} s: {ok} accepted, {limited} refused with 429")
    eq(ok + limited, 400, "every post is 201 or 429")
    check(limited > 0, "posts past the bucket get 429")
    check(200 <= ok <= 200 + 100 * took + 1, f"at most the burst (200) plus 100/s are accepted ({ok})")
    eq(retry, "1", "a 429 carries Retry-After: 1")


async def no_token():
    srv = Serve(["--ping-interval", "0"])
    try:
        st, h, body = await th(post, srv.port, "ops", {"name": "b", "text": "x"}, (JSON,))
        eq(st, 403, "without --token: 403")
        eq(body, {"error": "forbidden", "message": "posting needs --token"}, "403 says why")
        st, _, _ = await th(post, srv.port, "ops", {"name": "b", "text": "x"}, (AUTH, JSON))
        eq(st, 403, "without --token, even with a bearer token: 403")
    finally:
        srv.kill()


async def main():
    srv = Serve(["--token", TOKEN, "--threads", "2", "--history", "10", "--ping-interval", "0"])
    try:
        await astep("a post reaches members and listeners once", delivery(srv), 60)
        await astep("posts share one rate bucket", rate(srv), 30)
    finally:
        srv.kill()
    await astep("posting needs --token", no_token(), 20)
    note("done")


if __name__ == "__main__":
    note(f"python {sys.version.split()[0]}, websockets {websockets.__version__}")
    run("serve_post", main, timeout=120)
