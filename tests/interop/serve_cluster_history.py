#!/usr/bin/python3
"""`wsx serve --redis`: the history of a room on any node (docs/cluster.md, "History in
Redis"). Three nodes on one redis-server started here; messages posted on A while B and C
have nobody in the room: a join on B gets the whole history with A's ids, an SSE stream on C
resumes after Last-Event-ID, a node started later gets the history from Redis. A join flood
on a node makes one Redis read. Redis paused: a join is answered from the node's own history
within the read timeout (1 s). Redis restarted empty: ids resume above the last ones seen,
presence comes back through the heartbeats, nothing crashes."""

import asyncio
import contextlib
import json
import os
import signal
import time

from serve_cluster import REDIS, Redis, collect, redis_cmd, wait_for
from wsxlib import astep, check, eq, free_port, run
from wsxserve import SSE, Chat, Serve, metrics


def th(fn, *args):
    return asyncio.to_thread(fn, *args)


def eval_calls(port):
    for line in redis_cmd(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_eval:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def node(url):
    return Serve(["--redis", url, "--rate", "0", "--rate-per-ip", "0", "--join-rate", "0",
                  "--join-rate-per-ip", "0"])


async def main():
    redis = Redis(free_port())
    redis.start()
    url = f"redis://127.0.0.1:{redis.port}"
    nodes = []
    try:
        A, B, C = node(url), node(url), node(url)
        nodes += [A, B, C]
        for n in nodes:
            check(n.wait_stderr(r"redis: connected to", 5) is not None, f"node {n.port} connected")
        a = await Chat.open(A.url, "ann@A")
        await a.join("h", "ann")
        sent = []

        async def post_on_a():
            for i in range(12):
                await a.send({"type": "message", "text": f"m{i}"})
            got = await collect(a, 12)
            sent.extend((m["id"], m["text"]) for m in got)
            eq([t for _, t in sent], [f"m{i}" for i in range(12)], "A: its 12 messages")
            eq(int(redis_cmd(redis.port, "LLEN", "wsx:{room:h}:history").lstrip(":")), 12,
               "Redis keeps the room's history (one list entry per message)")
        await astep("12 messages on A, nobody in the room on B and C", post_on_a())

        async def join_on_b():
            b = await Chat.open(B.url, "bob@B")
            j, _ = await b.join("h", "bob")
            eq([(m["id"], m["text"]) for m in j["history"]], sent,
               "a join on B: the whole history, with A's ids")
            m = metrics(B.port)
            eq(m.get("wsx_history_reads_total"), 1, "B read the room's history from Redis once")
            b2 = await Chat.open(B.url, "bea@B")
            j, _ = await b2.join("h", "bea")
            eq(len(j["history"]), 12, "a second join on B: the same history")
            eq(metrics(B.port).get("wsx_history_reads_total"), 1,
               "... from B's own (complete) history: no second read")
            await a.send({"type": "message", "text": "live"})
            got = await collect(b, 1)
            eq(got[0]["text"], "live", "B gets the next message live")
            sent.append((got[0]["id"], "live"))
            eq([m for m in await b.quiet(0.3) if m.get("type") == "message"], [],
               "... once (the read and the channel do not give it twice)")
            await b.close()
            await b2.close()
        await astep("history on a join on another node", join_on_b(), 20)

        async def sse_on_c():
            after = sent[4][0]
            r = await th(SSE, C.port, "/sse?room=h", [("Last-Event-ID", str(after))])
            got = [json.loads(e["data"])["id"] for e in await th(r.quiet, 0.8)]
            eq(got, [i for i, _ in sent[5:]], "SSE on C (nobody in the room there) resumes after N")
            r.close()
        await astep("Last-Event-ID on a third node", sse_on_c(), 20)

        async def restarted():
            eq(B.stop(), 0, "node B stopped")
            B2 = node(url)
            nodes.append(B2)
            check(B2.wait_stderr(r"redis: connected to", 5) is not None, "B started again")
            c = await Chat.open(B2.url, "cy@B2")
            j, _ = await c.join("h", "cy")
            eq([(m["id"], m["text"]) for m in j["history"]], sent,
               "a node started again: the history from Redis")
            await c.close()
        await astep("a restarted node", restarted(), 20)

        async def flood():
            for i in range(5):
                await a.send({"type": "message", "text": f"f{i}"})
            await collect(a, 5)
            D = node(url)
            nodes.append(D)
            check(D.wait_stderr(r"redis: connected to", 5) is not None, "node D connected")
            evals = await th(eval_calls, redis.port)
            clients = [await Chat.open(D.url, f"x{i}") for i in range(30)]
            await asyncio.gather(*(c.send({"type": "join", "room": "h", "name": f"x{i}"})
                                   for i, c in enumerate(clients)))
            for c in clients:
                j = await c.expect("joined")
                h = await c.expect("history")
                eq(len(h["messages"]), 18, f"{c.label}: the whole history")
            m = metrics(D.port)
            eq(m.get("wsx_history_reads_total"), 1, "30 joins at once on D: one Redis read")
            # The others waited for that read (wsx_history_reads_shared_total) or came after
            # it, when D's history of the room was complete: either way no read of their own.
            eq(await th(eval_calls, redis.port) - evals, 1, "Redis ran one script for them")
            # Their presence events are read (a client that does not read cannot take its
            # close frame either), then they leave together; so does ann on A.
            await asyncio.gather(*(c.quiet(0.3) for c in clients), a.quiet(0.3))
            await asyncio.gather(*(c.close() for c in clients))
            await a.quiet(0.5)
        await astep("a join flood is one Redis read", flood(), 30)

        async def paused():
            await a.quiet(0.1)
            E = node(url)
            nodes.append(E)
            check(E.wait_stderr(r"redis: connected to", 5) is not None, "node E connected")
            redis.proc.send_signal(signal.SIGSTOP)
            try:
                e = await Chat.open(E.url, "eve@E")
                t0 = time.monotonic()
                j, _ = await e.join("h", "eve")
                took = time.monotonic() - t0
                eq(j.get("history"), [], "Redis paused: the join gets E's own (empty) history")
                check(0.9 < took < 3.0, "after the read timeout (1 s)", f"{took:.2f} s")
                eq(metrics(E.port).get("wsx_history_local_total"), 1, "counted")
                check(E.wait_stderr(r"room h: history from this node only", 1) is not None,
                      "and said in the log")
                await e.close()
            finally:
                redis.proc.send_signal(signal.SIGCONT)
            # Each part below within one pause, shorter than the PING + command timeout (3 s)
            # after which the node would see Redis down (and not read at all).
            v = await th(wait_for, lambda: metrics(E.port).get("wsx_redis_up") == 1, 10)
            check(v, "E: Redis up again")
            redis.proc.send_signal(signal.SIGSTOP)
            try:
                # A connection whose join waits may send 15 more messages; the 16th closes it.
                f = await Chat.open(E.url, "fay@E")
                await f.send({"type": "join", "room": "held", "name": "fay"})
                for i in range(16):
                    await f.send({"type": "typing", "typing": True})
                with contextlib.suppress(Exception):
                    while True:
                        await f.recv(3)
                eq((f.ws.close_code, f.ws.close_reason), (1008, "too many messages while joining"),
                   "more than 16 messages while its join waits: 1008")

            finally:
                redis.proc.send_signal(signal.SIGCONT)
            await asyncio.sleep(1.2)  # fay's read is over (answered, or its 1 s timeout)
            redis.proc.send_signal(signal.SIGSTOP)
            try:
                # Joins of 70 rooms at once: 64 reads at most wait, the others are answered
                # at once from E's history.
                before = metrics(E.port)
                many = [await Chat.open(E.url, f"r{i}") for i in range(70)]
                t0 = time.monotonic()
                for i, c in enumerate(many):
                    await c.send({"type": "join", "room": f"room{i}", "name": "x"})
                async def answered(c):
                    await c.expect("joined", 4)
                    return time.monotonic() - t0
                times = await asyncio.gather(*(answered(c) for c in many))
                # A waiting join is answered at the read timeout (1 s after it was sent).
                fast = sorted(round(t, 2) for t in times)
                check(sum(t < 0.9 for t in times) == 6,
                      "the 6 joins past 64 reads are answered before the read timeout", fast)
                m = metrics(E.port)
                eq(m["wsx_history_reads_total"] - before["wsx_history_reads_total"], 64,
                   "64 reads, the cap")
                check(m["wsx_history_local_total"] - before["wsx_history_local_total"] >= 70,
                      "each join got the local history (6 at once, 64 after the timeout)")
                await asyncio.gather(*(c.close() for c in many))
            finally:
                redis.proc.send_signal(signal.SIGCONT)
        await astep("Redis not answering: the local history after the timeout; the bounds",
                    paused(), 30)

        async def emptied():
            bo = await Chat.open(C.url, "bo@C")
            await bo.join("h", "bo")
            await a.quiet(0.3)
            last = sent[-1][0] + 5
            redis.kill()
            redis.start()
            for n in (A, C):
                v = await th(wait_for, lambda n=n: metrics(n.port).get("wsx_redis_up") == 1, 10)
                check(v, f"node {n.port}: back on the emptied Redis")
            await a.send({"type": "message", "text": "after"})
            got = await collect(a, 1)
            check(got[0]["id"] > last, "ids resume above the last ones seen", (last, got[0]["id"]))
            eq((await collect(bo, 1))[0]["id"], got[0]["id"], "C gets it with that id")
            # Presence: each node's heartbeat (every 2 s) tells the others its people again.
            a2 = await Chat.open(A.url, "ann2@A")
            j, _ = await a2.join("h", "ann2")
            names = {p["name"] for p in j["online"]}
            if "bo" not in names:
                deadline = time.monotonic() + 8
                while "bo" not in names and time.monotonic() < deadline:
                    m = await a2.recv(max(0.01, deadline - time.monotonic()))
                    names = {p["name"] for p in m.get("online", [])} or names
            check("bo" in names, "A sees bo (on C) again: presence registered again")
            await a2.close()
            await bo.close()
        await astep("Redis restarted empty", emptied(), 40)

        async def down():
            redis.kill()
            v = await th(wait_for, lambda: metrics(C.port).get("wsx_redis_up") == 0, 5)
            check(v, "C sees Redis down")
            c = await Chat.open(C.url, "dee@C")
            t0 = time.monotonic()
            j, _ = await c.join("h2", "dee")
            check(time.monotonic() - t0 < 0.9, "Redis down: the join is answered at once")
            eq(j.get("history"), [], "... with C's own history")
            await c.close()
        await astep("Redis down", down(), 20)
        await a.close()
        for n in nodes:
            if n.running:
                eq(n.stop(), 0, f"node {n.port}: SIGTERM -> exit status 0")
    finally:
        for n in nodes:
            n.kill()
        if redis.proc:
            redis.proc.send_signal(signal.SIGCONT)
        redis.kill()


if __name__ == "__main__":
    if not os.access(REDIS, os.X_OK):
        print(f"serve_cluster_history: {REDIS} not found, skipped")
        raise SystemExit(0)
    run("serve_cluster_history", main, timeout=110)
