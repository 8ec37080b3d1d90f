#!/usr/bin/python3
"""`wsx serve --redis` (issue 13, docs/cluster.md): three nodes on one redis-server started
here (a free loopback port, no persistence). A WebSocket client on node A, one on node B and
an SSE listener on node C in one room: every message reaches each of them exactly once (and
each sender's messages in the order sent), presence joins and leaves cross nodes. Redis
killed: local chat goes on, /healthz says degraded, /metrics counts what was not relayed,
nothing crashes. Redis started again on the same port: cross-node delivery resumes without
restarting a node. Redis paused (SIGSTOP): seen within the ping interval and the command
timeout, then back. Then nodes with several loops (--threads): every client on every loop gets
each message once, and a node drops the room's channel when its last loop's member leaves."""

import asyncio
import contextlib
import json
import os
import subprocess
import time

from wsxlib import _track, _untrack, astep, check, eq, free_port, note, run
from wsxserve import SSE, Chat, Serve, http_req, metrics

REDIS = "/usr/bin/redis-server"


def th(fn, *args):
    return asyncio.to_thread(fn, *args)


class Redis:
    def __init__(self, port):
        self.port = port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _track(self.proc.pid)
        import socket
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            _untrack(self.proc.pid)
            self.proc = None


def redis_cmd(port, *args):
    """One command on a new connection (RESP): the reply, bulk strings decoded."""
    import socket
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        req = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        s.sendall(req.encode())
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
            if buf[:1] == b"$":
                n = int(buf[1:buf.index(b"\r\n")])
                head = buf.index(b"\r\n") + 2
                if len(buf) >= head + n + 2:
                    return buf[head:head + n].decode()
            elif buf.endswith(b"\r\n"):
                return buf.decode().strip()
        return buf.decode()


def redis_cmd_bytes(port, *args):
    """One command with binary arguments; returns the raw reply."""
    import socket
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        s.sendall(req)
        return s.recv(4096)


def publish_calls(port):
    """How many PUBLISH commands Redis has run (INFO commandstats)."""
    for line in redis_cmd(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_publish:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def healthz(port):
    status, _, body = http_req(port, "GET", "/healthz")
    return status, body.decode()


def wait_for(fn, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


async def collect(client, n, timeout=5):
    """The next n messages of type message (others, presence/online, are skipped)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        m = await client.recv(max(0.01, deadline - time.monotonic()))
        if m.get("type") == "message":
            got.append(m)
    return got


async def expect_presence(client, event, name, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        m = await client.recv(max(0.01, deadline - time.monotonic()))
        if m.get("type") == "presence" and m.get("event") == event and m.get("name") == name:
            return m


def sse_messages(listener, n, timeout=5):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        ev = listener.event(max(0.01, deadline - time.monotonic()))
        if ev is None:
            break
        got.append(json.loads(ev["data"]))
    return got


def texts(msgs):
    return [m["text"] for m in msgs]


async def scenario():
    redis = Redis(free_port())
    redis.start()
    url = f"redis://127.0.0.1:{redis.port}"
    nodes = []
    try:
        for i in range(3):
            nodes.append(Serve(["--redis", url, "--rate", "0", "--rate-per-ip", "0"]))
        A, B, C = nodes
        for n in nodes:
            check(n.wait_stderr(r"redis: connected to redis://127\.0\.0\.1", 5) is not None,
                  f"node {n.port} says it is connected to Redis")
            eq(await th(healthz, n.port), (200, "ok\n"), f"node {n.port}: /healthz ok")

        a = await Chat.open(A.url, "ann@A")
        b = await Chat.open(B.url, "bob@B")
        sse = await th(SSE, C.port, "/sse?room=r1")

        async def joins():
            await a.join("r1", "ann")
            await b.join("r1", "bob")
            m = await expect_presence(a, "join", "bob")
            check(True, "ann on A sees bob (on B) join", m)
        await astep("joins cross nodes", joins())

        # Every node subscribed to the room's channel (C for its SSE listener).
        for n in nodes:
            # The room's, and the presence heartbeats' (every node, always).
            v = await th(wait_for, lambda n=n: metrics(n.port).get("wsx_redis_channels") == 2, 3)
            check(v, f"node {n.port}: one room channel subscribed")

        last_id = 0

        async def exactly_once():
            publishes = await th(publish_calls, redis.port)
            want = []
            for i in range(20):
                await a.send({"type": "message", "text": f"a{i}"})
                await b.send({"type": "message", "text": f"b{i}"})
                want += [f"a{i}", f"b{i}"]
            got_a = await collect(a, 40)
            got_b = await collect(b, 40)
            got_s = await th(sse_messages, sse, 40)
            for label, got in (("A", got_a), ("B", got_b), ("C (SSE)", got_s)):
                t = texts(got)
                eq(sorted(t), sorted(want), f"{label}: each of the 40 messages exactly once")
                eq([x for x in t if x[0] == "a"], [f"a{i}" for i in range(20)],
                   f"{label}: ann's messages in the order sent")
                eq([x for x in t if x[0] == "b"], [f"b{i}" for i in range(20)],
                   f"{label}: bob's messages in the order sent")
            # Numbered by Redis: one order and one id sequence on every node.
            seqs = [[(m["id"], m["text"]) for m in got] for got in (got_a, got_b, got_s)]
            eq(seqs[1], seqs[0], "B sees the messages in A's order with A's ids")
            eq(seqs[2], seqs[0], "C (SSE) sees the messages in A's order with A's ids")
            ids = [i for i, _ in seqs[0]]
            check(all(y == x + 1 for x, y in zip(ids, ids[1:])),
                  "ids strictly increasing by one across the nodes", ids)
            nonlocal last_id
            last_id = ids[-1]
            eq(texts([m for m in await a.quiet(0.5) if m.get("type") == "message"]), [],
               "A: no duplicate afterwards")
            eq(texts([m for m in await b.quiet(0.1) if m.get("type") == "message"]), [],
               "B: no duplicate afterwards")
            eq(await th(sse.quiet, 0.1), [], "C: no duplicate afterwards")
            for n in nodes[:2]:
                m = metrics(n.port)
                eq(m.get("wsx_redis_not_relayed_total"), 0, f"node {n.port}: nothing lost")
            # Three receivers on three nodes, and one PUBLISH per message: 40, and at most
            # the presence heartbeats of the 3 nodes besides (one each per 2 s); the exact
            # count is checked with `wsx echo --redis` below, which has no heartbeat.
            n_pub = await th(publish_calls, redis.port) - publishes
            check(40 <= n_pub <= 40 + 3 * 2, "Redis ran one PUBLISH per message", n_pub)
        await astep("each message exactly once on every node", exactly_once(), 30)

        async def history_anywhere():
            # Every node in the room kept the same history with the same ids: a join on B and
            # an SSE resume on C after id 35 see A's messages as A numbered them.
            d = await Chat.open(B.url, "dan@B")
            j, _ = await d.join("r1", "dan")
            hist = [(m["id"], m["text"]) for m in j["history"]]
            eq(hist[-40:][0][0], last_id - 39, "a join on B: the history holds the 40 messages")
            check(all(m[1][0] in "ab" for m in hist[-40:]), "... all of them", hist[-40:])
            await d.close()
            await a.quiet(0.3)
            await b.quiet(0.1)
            r = await th(SSE, C.port, "/sse?room=r1", [("Last-Event-ID", str(last_id - 5))])
            got = [json.loads(e["data"])["id"] for e in await th(r.quiet, 0.5)]
            eq(got, list(range(last_id - 4, last_id + 1)), "an SSE resume on C after id N-5: N-4..N")
            r.close()
        await astep("history and Last-Event-ID on any node", history_anywhere(), 20)

        async def redis_down():
            redis.kill()
            for n in nodes:
                v = await th(wait_for, lambda n=n: healthz(n.port)[1].startswith("degraded"), 5)
                check(v, f"node {n.port}: /healthz says degraded while Redis is down")
                eq(healthz(n.port)[0], 200, f"node {n.port}: /healthz is still 200")
            a2 = await Chat.open(A.url, "ann2@A")
            await a2.join("r1", "cy")
            await a.send({"type": "message", "text": "local only"})
            eq(texts(await collect(a, 1)), ["local only"], "A: local chat goes on (sender)")
            eq(texts(await collect(a2, 1)), ["local only"], "A: local chat goes on (other)")
            eq([m for m in await b.quiet(0.5) if m.get("type") == "message"], [],
               "B does not get it (not queued for later either)")
            m = metrics(A.port)
            check(m.get("wsx_redis_not_relayed_total", 0) >= 2,
                  "A counts what it could not relay", m.get("wsx_redis_not_relayed_total"))
            eq(m.get("wsx_redis_up"), 0, "A: wsx_redis_up 0")
            await a2.close()
        await astep("Redis down: local delivery goes on", redis_down(), 30)

        async def redis_back():
            redis.start()
            for n in nodes:
                v = await th(wait_for, lambda n=n: healthz(n.port) == (200, "ok\n"), 10)
                check(v, f"node {n.port}: /healthz ok again without a restart")
                m = metrics(n.port)
                eq(m.get("wsx_redis_reconnects_total"), 1, f"node {n.port}: one reconnect")
                eq(m.get("wsx_redis_up"), 1, f"node {n.port}: wsx_redis_up 1")
            await b.quiet(0.2)
            await th(sse.quiet, 0.1)
            await a.send({"type": "message", "text": "back"})
            got = await collect(b, 1)
            eq(texts(got), ["back"], "B gets A's message again")
            check(got[0]["id"] > last_id + 1,
                  "Redis restarted empty: ids resume above the last ones seen (and A's local one)",
                  (last_id, got[0]["id"]))
            eq(texts(await th(sse_messages, sse, 1)), ["back"], "C (SSE) gets it again")
            await b.send({"type": "message", "text": "back too"})
            got = texts(await collect(a, 2))
            eq(got, ["back", "back too"], "A gets its own once and B's")
            eq([m for m in await a.quiet(0.3) if m.get("type") == "message"], [], "no duplicate")
        await astep("Redis back: cross-node delivery resumes", redis_back(), 40)

        async def redis_paused():
            # A server that stops answering (SIGSTOP) is not a closed connection: the nodes
            # see it by their PING (every 1 s when idle) and the command timeout (2 s).
            import signal
            t0 = time.monotonic()
            redis.proc.send_signal(signal.SIGSTOP)
            try:
                v = await th(wait_for, lambda: healthz(A.port)[1].startswith("degraded"), 6)
                took = time.monotonic() - t0
                check(v, "A: /healthz degraded while Redis does not answer", f"{took:.1f} s")
                check(took < 4.5, "within ping interval + command timeout (3 s) and the checks",
                      f"{took:.1f} s")
                await a.send({"type": "message", "text": "paused"})
                eq(texts(await collect(a, 1)), ["paused"], "A: local chat goes on")
            finally:
                redis.proc.send_signal(signal.SIGCONT)
            for n in nodes:
                v = await th(wait_for, lambda n=n: healthz(n.port) == (200, "ok\n"), 10)
                check(v, f"node {n.port}: ok again once Redis answers")
            await b.quiet(0.3)
            await a.send({"type": "message", "text": "after pause"})
            eq(texts(await collect(b, 1)), ["after pause"], "B gets A's messages again")
            await a.quiet(0.2)
        await astep("Redis paused: seen by the ping, local chat goes on", redis_paused(), 30)

        async def hostile():
            import struct

            def env(payload, tag=0, node=42):
                return struct.pack(">BBBBQQQ", 0x57, 1, 0, 0, node, 1, tag) + payload

            forged = b'{"type":"message","id":1,"text":"x"}\n\nid: 999\nevent: message\ndata: {}'
            good = json.dumps({"type": "message", "id": 77, "room": "r1", "name": "bot",
                               "text": "injected", "ts": 1}, separators=(",", ":")).encode()
            await th(sse.quiet, 0.3)  # what the earlier steps left unread
            await a.quiet(0.1)
            await b.quiet(0.1)
            for payload, tag in ((forged, 1), (good, 77)):
                await th(redis_cmd_bytes, redis.port, b"PUBLISH", b"wsx:{room:r1}", env(payload, tag))
            eq(texts(await collect(a, 1)), ["injected"], "A: only the well-formed message")
            eq(texts(await collect(b, 1)), ["injected"], "B: only the well-formed message")
            ev = await th(sse.event, 5)
            eq(ev.get("id"), "77", "C (SSE): the well-formed one, with its id; no forged event")
            eq(await th(sse.quiet, 0.2), [], "C (SSE): nothing else")
            # The forged one passed the envelope check: serve dropped it (a line break), not
            # the cluster layer, so it is not in wsx_redis_bad_total.
            eq(metrics(A.port).get("wsx_redis_bad_total"), 0, "A: wsx_redis_bad_total 0")
            await th(redis_cmd_bytes, redis.port, b"PUBLISH", b"wsx:{room:r1}", b"junk")
            v = await th(wait_for, lambda: metrics(A.port).get("wsx_redis_bad_total") == 1, 3)
            check(v, "A: a message that is not an envelope counts in wsx_redis_bad_total")
        await astep("a hostile publisher on Redis cannot break SSE framing", hostile())

        async def leave():
            await b.send({"type": "leave"})
            await expect_presence(a, "leave", "bob")
            check(True, "ann on A sees bob (on B) leave")
        await astep("leave crosses nodes", leave())

        await a.close()
        await b.close()
        sse.close()
        for n in nodes:
            check(n.wait_stderr(r"redis: lost .*reconnecting", 1) is not None,
                  f"node {n.port} logged the loss")
            check(n.wait_stderr(r"redis: connected to .* again after", 1) is not None,
                  f"node {n.port} logged the return")
            eq(n.stop(), 0, f"node {n.port}: SIGTERM -> exit status 0")
    finally:
        for n in nodes:
            n.kill()
        if redis.proc:
            redis.proc.send_signal(__import__("signal").SIGCONT)
        redis.kill()


async def threads():
    """Nodes with several loops (--threads): the relay lives on loop 0 and the other loops
    reach it through posts. Clients spread over the loops by the kernel (SO_REUSEPORT)."""
    redis = Redis(free_port())
    redis.start()
    url = f"redis://127.0.0.1:{redis.port}"
    nodes = []
    clients = []
    try:
        nodes = [Serve(["--redis", url, "--threads", "3", "--rate", "0", "--rate-per-ip", "0"]),
                 Serve(["--redis", url, "--threads", "2", "--rate", "0", "--rate-per-ip", "0"])]
        for n in nodes:
            check(n.wait_stderr(r"redis: connected to", 5) is not None, f"node {n.port} connected")
        for i in range(8):
            c = await Chat.open(nodes[i % 2].url, f"c{i}")
            await c.join("t", f"p{i}")
            clients.append(c)
        listeners = [await th(SSE, n.port, "/sse?room=t") for n in nodes]
        for n in nodes:
            v = await th(wait_for, lambda n=n: metrics(n.port).get("wsx_redis_channels") == 2, 3)
            check(v, f"node {n.port}: the room's channel is subscribed (once for all its loops)")

        async def all_get_all():
            want = []
            for r in range(5):
                for i, c in enumerate(clients):
                    await c.send({"type": "message", "text": f"{i}:{r}"})
                    want.append(f"{i}:{r}")
            seqs = []
            for c in clients:
                msgs = await collect(c, 40, 10)
                seqs.append([(m["id"], m["text"]) for m in msgs])
                got = texts(msgs)
                eq(sorted(got), sorted(want), f"{c.label}: each of the 40 messages exactly once")
                for i in range(8):
                    eq([x for x in got if x.startswith(f"{i}:")], [f"{i}:{r}" for r in range(5)],
                       f"{c.label}: c{i}'s messages in order")
            check(all(x == seqs[0] for x in seqs), "every client: one order, the same ids")
            for k, sse in enumerate(listeners):
                got = texts(await th(sse_messages, sse, 40, 10))
                eq(sorted(got), sorted(want), f"SSE on node {k}: each message exactly once")
            for c in clients:
                eq([m for m in await c.quiet(0.1) if m.get("type") == "message"], [],
                   f"{c.label}: no duplicate")
            
        await astep("8 clients on 5 loops of 2 nodes: every message exactly once", all_get_all(), 40)

        async def unsubscribe_on_last():
            for c in clients:
                await c.close()
            for sse in listeners:
                sse.close()
            for n in nodes:
                v = await th(wait_for, lambda n=n: metrics(n.port).get("wsx_redis_channels") == 1, 5)
                check(v, f"node {n.port}: channel unsubscribed once the last loop's member left")
        await astep("the last member of every loop leaves", unsubscribe_on_last(), 20)
        for n in nodes:
            eq(n.stop(), 0, f"node {n.port} (--threads): SIGTERM -> exit status 0")
    finally:
        for n in nodes:
            n.kill()
        redis.kill()


async def echo_nodes():
    """`wsx echo --redis`: what /pub of one node gets reaches /sub of the other, once."""
    import websockets
    from wsxlib import Server
    redis = Redis(free_port())
    redis.start()
    url = f"redis://127.0.0.1:{redis.port}"
    nodes = []
    try:
        nodes = [Server(["--redis", url]), Server(["--redis", url])]
        for n in nodes:
            check(n.wait_stderr(r"redis: connected to", 5) is not None, f"echo {n.port} connected")

        async def relay():
            base = [f"ws://127.0.0.1:{n.port}" for n in nodes]
            async with websockets.connect(base[1] + "/sub") as sub_b, \
                    websockets.connect(base[0] + "/sub") as sub_a, \
                    websockets.connect(base[0] + "/pub") as pub:
                ok = await th(wait_for, lambda: numsub_bcast(redis.port) == 2, 3)
                check(ok, "both echo nodes subscribed to the broadcast topic's channel")
                publishes = await th(publish_calls, redis.port)
                for i in range(10):
                    await pub.send(f"x{i}".encode())
                await asyncio.sleep(0.5)  # relayed by then (the messages are checked below)
                eq(await th(publish_calls, redis.port) - publishes, 10,
                   "exactly one PUBLISH per message, receivers on two nodes (INFO commandstats)")
                for label, ws in (("B", sub_b), ("A", sub_a)):
                    got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(10)]
                    eq(got, [f"x{i}".encode() for i in range(10)], f"/sub on {label}: all, once, in order")
                    with contextlib.suppress(asyncio.TimeoutError):
                        extra = await asyncio.wait_for(ws.recv(), 0.3)
                        check(False, f"/sub on {label}: no duplicate", extra)
        await astep("wsx echo --redis: /pub on A reaches /sub on A and B", relay(), 20)
        p = subprocess.run([os.environ["WSX_BIN"], "echo", "--port", "0", "--redis", url,
                            "--threads", "2"], capture_output=True, timeout=10)
        eq(p.returncode, 2, "wsx echo --redis --threads 2: a usage error")
    finally:
        for n in nodes:
            n.kill()
        redis.kill()


def numsub_bcast(port):
    """Subscribers of the echo broadcast channel wsx:{bcast}, from Redis (PUBSUB NUMSUB)."""
    import socket
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(b"*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n$11\r\nwsx:{bcast}\r\n")
        buf = b""
        # *2 $11 wsx:{bcast} :N
        while buf.count(b"\r\n") < 4:
            d = s.recv(4096)
            if not d:
                break
            buf += d
    return int(buf.split(b"\r\n")[3][1:]) if buf.count(b"\r\n") >= 4 else -1


def online_of(m):
    return {p["name"]: p["tabs"] for p in m.get("online", [])}


async def until(client, pred, timeout):
    """Reads client's messages until pred(msg) holds: (that message, the ones before)."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        m = await client.recv(max(0.01, deadline - time.monotonic()))
        if pred(m):
            return m, seen
        seen.append(m)


async def presence():
    """Presence over every node (docs/cluster.md): online lists summed over the nodes, a
    person's second tab on another node is an `online` change, not a join; a node killed
    with -9 takes its people out of the others' presence within the heartbeat expiry; a node
    started later learns who is there from the heartbeats."""
    redis = Redis(free_port())
    redis.start()
    url = f"redis://127.0.0.1:{redis.port}"
    nodes = []
    try:
        A = Serve(["--redis", url])
        B = Serve(["--redis", url])
        nodes = [A, B]
        for n in nodes:
            check(n.wait_stderr(r"redis: connected to", 5) is not None, f"node {n.port} connected")
        alice1 = await Chat.open(A.url, "alice@A")
        bob = await Chat.open(B.url, "bob@B")

        async def two_nodes():
            await alice1.join("p", "alice")
            j, _ = await bob.join("p", "bob")
            m, _ = await until(alice1, lambda m: m.get("type") == "presence" and m.get("name") == "bob", 5)
            eq((m["event"], online_of(m)), ("join", {"alice": 1, "bob": 1}),
               "alice on A: bob (on B) joins; the online list has both nodes' people")
            if "alice" not in online_of(j):
                m, _ = await until(bob, lambda m: "alice" in online_of(m), 5)
                eq((m["type"], m.get("event"), m.get("name")), ("presence", "join", "alice"),
                   "bob on B learns alice (on A) from A's heartbeat, as a presence join")
            check(True, "bob on B sees alice (on A)")
        await astep("presence over two nodes", two_nodes(), 15)

        async def second_tab():
            alice2 = await Chat.open(B.url, "alice2@B")
            j, ev = await alice2.join("p", "alice")
            eq(online_of(j), {"alice": 2, "bob": 1}, "alice's second tab (on B): joined counts both tabs")
            eq((ev["type"], online_of(ev)), ("online", {"alice": 2, "bob": 1}),
               "... and its event is an online change, not a presence join")
            m, before = await until(alice1, lambda m: m.get("type") in ("online", "presence"), 5)
            eq((m["type"], online_of(m)), ("online", {"alice": 2, "bob": 1}),
               "alice's first tab (on A): an online change with 2 tabs, no presence join")
            m, _ = await until(bob, lambda m: m.get("type") in ("online", "presence"), 5)
            eq((m["type"], online_of(m)), ("online", {"alice": 2, "bob": 1}),
               "bob (on B): the same online change")
            return alice2
        alice2 = await astep_value("a person's tabs on two nodes", second_tab(), 15)

        async def kill_b():
            B.proc.kill()  # SIGKILL: no close, no leave event
            B.proc.wait()
            t0 = time.monotonic()
            m, _ = await until(alice1, lambda m: m.get("type") == "presence" and m.get("event") == "leave", 12)
            took = time.monotonic() - t0
            eq((m["name"], online_of(m)), ("bob", {"alice": 1}),
               "alice on A: bob (on the killed node) leaves; her tab there is gone too")
            check(took < 9, "within the expiry of 6 s and a heartbeat period (2 s)", f"{took:.1f} s")
            await alice1.quiet(0.3)
        await astep("kill -9 of a node: its people leave the others' presence", kill_b(), 20)

        async def late_node():
            C = Serve(["--redis", url])
            nodes.append(C)
            check(C.wait_stderr(r"redis: connected to", 5) is not None, "node C connected")
            carol = await Chat.open(C.url, "carol@C")
            j, _ = await carol.join("p", "carol")
            if "alice" not in online_of(j):
                m, _ = await until(carol, lambda m: "alice" in online_of(m), 5)
                eq((m.get("event"), online_of(m)), ("join", {"alice": 1, "carol": 1}),
                   "carol on a new node learns alice from the heartbeats")
            m, _ = await until(alice1, lambda m: m.get("name") == "carol", 5)
            eq((m["type"], m["event"], online_of(m)), ("presence", "join", {"alice": 1, "carol": 1}),
               "alice on A sees carol (on C) join")
            await carol.close()
        await astep("a node started later", late_node(), 20)
        await alice1.close()
        for n in nodes:
            if n.running:
                eq(n.stop(), 0, f"node {n.port}: SIGTERM -> exit status 0")
        del alice2
    finally:
        for n in nodes:
            n.kill()
        redis.kill()


async def astep_value(name, coro, timeout=20):
    """astep that returns what coro returned (None if it failed)."""
    box = []

    async def run_it():
        box.append(await coro)
    await astep(name, run_it(), timeout)
    return box[0] if box else None


async def posts():
    """POST /api/rooms/NAME/messages on a node with nobody in the room: numbered by Redis
    (the answer cannot say the id yet: {"id":null}), delivered on the node with members, and
    kept in the posting node's history with the same id."""
    redis = Redis(free_port())
    redis.start()
    url = f"redis://127.0.0.1:{redis.port}"
    nodes = []
    try:
        P = Serve(["--redis", url, "--token", "t"])
        Q = Serve(["--redis", url, "--token", "t"])
        nodes = [P, Q]
        for n in nodes:
            check(n.wait_stderr(r"redis: connected to", 5) is not None, f"node {n.port} connected")

        async def post():
            c = await Chat.open(Q.ws_url("token=t"), "carl@Q")
            await c.join("ops", "carl")
            await th(wait_for, lambda: metrics_t(Q.port).get("wsx_redis_channels") == 2, 3)
            body = json.dumps({"name": "deploy-bot", "text": "deployed"}).encode()
            st, _, resp = await th(http_req, P.port, "POST", "/api/rooms/ops/messages",
                                   [("Authorization", "Bearer t"),
                                    ("Content-Type", "application/json")], body)
            eq((st, resp), (201, b'{"id":null}\n'), "POST on P: 201 {\"id\":null}")
            m, _ = await until(c, lambda m: m.get("type") == "message", 5)
            eq((m["id"], m["text"], m.get("bot")), (1, "deployed", True),
               "carl on Q gets it, numbered 1 by Redis")
            d = await Chat.open(P.ws_url("token=t"), "dora@P")
            j, _ = await d.join("ops", "dora")
            eq([(x["id"], x["text"]) for x in j["history"]], [(1, "deployed")],
               "a join on P later: its history has the post, with the same id")
            await c.close()
            await d.close()
        await astep("a backend's post on a node with nobody in the room", post(), 20)
        for n in nodes:
            eq(n.stop(), 0, f"node {n.port}: SIGTERM -> exit status 0")
    finally:
        for n in nodes:
            n.kill()
        redis.kill()


def metrics_t(port):
    return metrics(port, [("Authorization", "Bearer t")])


async def main():
    await posts()
    await scenario()
    await threads()
    await echo_nodes()
    await presence()


if __name__ == "__main__":
    if not os.access(REDIS, os.X_OK):
        print(f"serve_cluster: {REDIS} not found, skipped")
        raise SystemExit(0)
    run("serve_cluster", main, timeout=110)
