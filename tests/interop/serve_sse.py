#!/usr/bin/python3
"""Server-sent events of `wsx serve` (/sse?room=NAME) fed by python websockets chat clients:
the same JSON as the WebSocket message, per room, resuming after Last-Event-ID, bad room
names, wsx_sse_listeners in /metrics; then the graceful shutdown on SIGTERM with a WebSocket
client and an SSE listener open (close 1001, the stream ends, exit status 0)."""

import asyncio
import json
import signal
import socket
import sys
import time

import websockets

from wsxlib import astep, check, eq, note, run
from wsxserve import SSE, Chat, Serve, http_raw, http_req, metrics, wait_metric



def th(fn, *args):
    """Runs a blocking call (SSE socket reads, /metrics) in a thread."""
    return asyncio.to_thread(fn, *args)


async def post(sender, receivers, text):
    """sender posts text; returns the raw JSON text every receiver got (the same for all)."""
    await sender.send({"type": "message", "text": text})
    raws = [await r.recv_raw() for r in receivers]
    if any(x != raws[0] for x in raws):
        check(False, f"the receivers of {text!r} got the same bytes", raws)
    return raws[0]


def check_event(ev, raw, label):
    """ev (an SSE block) carries the WebSocket message raw: id, event and data."""
    m = json.loads(raw)
    want = {"id": str(m["id"]), "event": "message", "data": raw}
    return check(ev == want, f"{label}: event id {m['id']} with the WebSocket message as data",
                 f"expected {want}, got {ev}")


async def streams(srv):
    port = srv.port
    a = await Chat.open(srv.url, "ann")
    b = await Chat.open(srv.url, "bob")
    await a.join("news", "ann")
    await b.join("other", "bob")

    l1 = await th(SSE, port, "/sse?room=news")
    l2 = await th(SSE, port, "/sse?room=other")
    try:
        eq(l1.status, 200, "GET /sse?room=news -> status")
        eq(l1.headers.get("content-type"), "text/event-stream", "SSE Content-Type")
        eq(l1.headers.get("cache-control"), "no-cache", "SSE Cache-Control")
        eq(l1.headers.get("x-accel-buffering"), "no", "SSE X-Accel-Buffering")
        check("content-length" not in l1.headers, "SSE has no Content-Length", l1.headers)
        eq(await th(l1.block, 5), {"retry": "2000"}, "the stream starts with retry: 2000")

        raws = [await post(a, [a], t) for t in ("first", "sécond 𝄞", '<i>"third"</i>\nline two\r\n\n: x')]
        for i, raw in enumerate(raws):
            check_event(await th(l1.event, 5), raw, f"news listener, message {i + 1}")
        eq(await th(l2.quiet, 0.4), [], "the other room's listener got none of them")

        raw = await post(b, [b], "in other")
        check_event(await th(l2.event, 5), raw, "other listener")
        eq(await th(l1.quiet, 0.4), [], "the news listener did not get the other room's message")

        # Presence, typing and errors are not sent as events: only messages are.
        c = await Chat.open(srv.url, "cat")
        await c.join("news", "cat")
        await a.send({"type": "typing", "typing": True})
        await c.send({"type": "message", "text": ""})
        await c.quiet(0.2)
        await c.close()
        eq(await th(l1.quiet, 0.4), [], "presence, typing and refused messages are not events")
        await a.quiet(0.2)  # cat's presence

        # Without room=: the lobby.
        l3 = await th(SSE, port, "/sse")
        try:
            z = await Chat.open(srv.url, "zed")
            await z.join("lobby", "zed")
            raw = await post(z, [z], "lobby talk")
            check_event(await th(l3.event, 5), raw, "/sse without room= follows the lobby")
            await z.close()
        finally:
            l3.close()

        eq(await th(wait_metric, port, "wsx_sse_listeners", 2), 2, "wsx_sse_listeners with 2 listeners (the lobby's gone)")
        l2.close()
        eq(await th(wait_metric, port, "wsx_sse_listeners", 1), 1, "wsx_sse_listeners drops after a listener leaves")
        l1.close()
        eq(await th(wait_metric, port, "wsx_sse_listeners", 0), 0, "wsx_sse_listeners back to 0")
        raw = await post(a, [a], "to nobody")  # publishing with listeners gone must not hurt
        eq(json.loads(raw)["id"], 4, "the room goes on after its listeners left: next id")
    finally:
        l1.close()
        l2.close()
    await a.close()
    await b.close()


async def resume(srv):
    port = srv.port
    a = await Chat.open(srv.url, "ann")
    await a.join("resume", "ann")
    raws = [await post(a, [a], f"m{i}") for i in range(1, 5)]  # ids 1..4, all held (--history 4)

    async def replay(path, headers, want_ids, label):
        lst = await th(SSE, port, path, headers)
        try:
            eq(lst.status, 200, f"{label} -> status")
            got = await th(lst.quiet, 0.5)
            eq([e.get("id") for e in got], [str(i) for i in want_ids], f"{label} -> replayed ids")
            for ev, i in zip(got, want_ids):
                if ev.get("data") != raws[i - 1] or ev.get("event") != "message":
                    check(False, f"{label}: event {i} is the stored message", ev)
            return lst
        except BaseException:
            lst.close()
            raise

    lst = await replay("/sse?room=resume", [("Last-Event-ID", "2")], [3, 4], "Last-Event-ID: 2")
    raw5 = await post(a, [a], "m5")
    check_event(await th(lst.event, 5), raw5, "after the replay, live messages follow")
    lst.close()
    raws.append(raw5)
    # The server now holds ids 2..5 (--history 4): id 1 is gone.
    for lei, want in (("3", [4, 5]), ("1", [2, 3, 4, 5]), ("0", [2, 3, 4, 5]), ("5", []), ("99", [])):
        (await replay("/sse?room=resume", [("Last-Event-ID", lei)], want, f"Last-Event-ID: {lei}")).close()
    (await replay("/sse?room=resume&lastEventId=3", [], [4, 5], "?lastEventId=3")).close()
    (await replay("/sse?room=resume", [], [], "no Last-Event-ID: live only")).close()
    await a.close()


async def bad(srv):
    port = srv.port
    for q, label in (("room=bad%20name", "room=bad name"), ("room=bad+name", "room=bad+name"),
                     ("room=", "an empty room"), ("room=" + "x" * 33, "a 33-character room"),
                     ("room=" + "x" * 200, "a 200-character room"), ("room=%2e%2e%2fx", "room=../x"),
                     ("room=%C3%A9", "room=é")):
        st, h, body = await th(http_req, port, "GET", f"/sse?{q}")
        check(st == 400 and body == b"400 bad room name\n", f"/sse?{label} -> 400 bad room name", f"{st} {body!r}")
    eq((await th(metrics, port))["wsx_sse_listeners"], 0, "refused streams are not listeners")
    st, h, rest = await th(http_raw, port, "HEAD", "/sse?room=head", (), 1)
    eq(st, 200, "HEAD /sse -> status")
    eq(h.get("content-type"), "text/event-stream", "HEAD /sse -> Content-Type")
    check(rest == b"", "HEAD /sse has no body", f"body {rest[:40]!r}")
    eq(await th(wait_metric, port, "wsx_sse_listeners", 0), 0, "no listener left after HEAD /sse")


async def rooms_reclaimed(srv):
    """10000 listeners on distinct rooms, one after the other; then a new room."""
    port = srv.port

    def churn():
        for i in range(10000):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(f"GET /sse?room=churn{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                s.recv(64)
    t0 = time.monotonic()
    await th(churn)
    note(f"10000 short-lived SSE rooms in {time.monotonic() - t0:.1f} s")
    eq(await th(wait_metric, port, "wsx_sse_listeners", 0), 0, "all the churn listeners are gone")
    c = await Chat.open(srv.url, "late")
    await c.send({"type": "join", "room": "fresh-after-churn", "name": "late"})
    m = await c.recv()
    check(m.get("type") == "joined", "a new room can be joined after 10000 empty rooms came and went", m)
    await c.close()


async def shutdown():
    srv = Serve(["--shutdown-timeout", "8000"])
    try:
        ws = await Chat.open(srv.url, "stay")
        await ws.join("bye", "stay")
        lst = await th(SSE, srv.port, "/sse?room=bye")
        idle = await Chat.open(srv.url, "idle")  # never joined
        eq(await th(lst.block, 5), {"retry": "2000"}, "the listener is streaming")
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            got = await ws.recv(5)
            check(False, "no message expected during the shutdown", got)
        except websockets.ConnectionClosed:
            pass
        eq((ws.ws.close_code, ws.ws.close_reason), (1001, "server shutting down"), "a joined client's close")
        try:
            await idle.recv(5)
        except websockets.ConnectionClosed:
            pass
        eq(idle.ws.close_code, 1001, "an idle client's close code")
        seen = await th(lst.wait_eof, 5)
        check(seen == [], "the SSE stream ends (EOF) with no more events", seen)
        rc = await th(srv.wait_exit, 12)
        took = time.monotonic() - t0
        eq(rc, 0, "exit status after SIGTERM")
        check(took < 4, f"the server exits once its clients are gone, not after --shutdown-timeout ({took:.2f} s)")
        check(srv.wait_stderr(r"SIGTERM: shutting down", 1), "the log says SIGTERM: shutting down")
        check(srv.wait_stderr(r"\bstopped$", 1), "the log ends with 'stopped'")
        lst.close()
    finally:
        srv.kill()


async def main():
    srv = Serve(["--history", "4", "--ping-interval", "0"])
    try:
        await astep("SSE streams per room", streams(srv), 40)
        await astep("SSE resumes after Last-Event-ID", resume(srv), 30)
        await astep("SSE refusals and HEAD", bad(srv))
        await astep("empty rooms are reclaimed", rooms_reclaimed(srv), 40)
    finally:
        srv.kill()
    await astep("graceful shutdown on SIGTERM", shutdown(), 30)
    note("done")


if __name__ == "__main__":
    note(f"python {sys.version.split()[0]}, websockets {websockets.__version__}")
    run("serve_sse", main, timeout=120)
