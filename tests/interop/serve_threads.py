#!/usr/bin/python3
"""`wsx serve --threads 2`: one chat across two event loops. Clients are spread over the
loops by the kernel (SO_REUSEPORT); every message must still reach every member of the room
exactly once and in order, and the SSE listener too; /metrics adds up both loops; presence
counts tabs across loops; SIGTERM closes everyone with 1001 and exits 0."""

import asyncio
import sys

from wsxlib import astep, check, eq, note, run
from wsxserve import SSE, Chat, Serve, metrics

N = 16


def th(fn, *args):
    return asyncio.to_thread(fn, *args)


async def main():
    srv = Serve(["--threads", "2", "--history", "100"])
    try:
        clients = []

        async def joined():
            for i in range(N):
                c = await Chat.open(srv.ws_url(), f"c{i}")
                j, ev = await c.join("t", f"user{i % (N // 2)}")  # two tabs per person
                check(j.get("type") == "joined", f"c{i} joined")
                clients.append(c)

        await astep("16 clients join one room over two loops", joined())
        # Let the presence/online events of the others' joins arrive, then drop them.
        await asyncio.sleep(0.5)
        for c in clients:
            await c.quiet(0.1)

        sse = await th(SSE, srv.port, "/sse?room=t")
        eq(sse.status, 200, "SSE listener -> status")

        async def chat():
            for i, c in enumerate(clients):
                await c.send({"type": "message", "text": f"hello {i}"})
            for c in clients:
                texts = []
                while len(texts) < N:
                    m = await c.recv(timeout=5)
                    if m.get("type") == "message":
                        texts.append(m["text"])
                # Each sender's message once; the order of one sender's messages is kept.
                check(sorted(texts) == sorted(f"hello {i}" for i in range(N)),
                      f"{c.label} got every message exactly once", texts)
                extra = [m for m in await c.quiet(0.2) if m.get("type") == "message"]
                check(not extra, f"{c.label} got no duplicates", extra)

        await astep("every member gets every message once, whichever loop it is on", chat())

        async def listener():
            got = []
            while len(got) < N:
                ev = await th(sse.block, 5)
                if ev is None:
                    break
                if ev.get("event") == "message":
                    got.append(ev["id"])
            eq(sorted(int(x) for x in got), list(range(1, N + 1)),
               "the SSE listener got every message id")

        await astep("the SSE listener gets them too", listener())

        async def counts():
            # The other loop's counters are at most a second old.
            for _ in range(30):
                v = (await th(metrics, srv.port)).get("wsx_connections_open")
                if v == N:
                    break
                await asyncio.sleep(0.1)
            eq(v, N, "wsx_connections_open adds up both loops")
            m = await th(metrics, srv.port)
            check(m.get("wsx_subscribers") == N, "wsx_subscribers: one membership per tab",
                  m.get("wsx_subscribers"))

        await astep("/metrics counts both loops", counts())

        async def leave():
            # user0 has tabs c0 and c8: closing c0 changes the tab count only.
            await clients[0].close()
            evs = await clients[1].quiet(0.5)
            types = [e.get("type") for e in evs]
            check("online" in types and "presence" not in types,
                  "closing one of two tabs updates the online list, no presence leave", evs)
            await clients[N // 2].close()
            evs = await clients[1].quiet(0.5)
            check(any(e.get("type") == "presence" and e.get("event") == "leave"
                      and e.get("name") == "user0" for e in evs),
                  "closing the last tab is a presence leave", evs)

        await astep("presence across loops", leave())

        async def shutdown():
            left = [c for i, c in enumerate(clients) if i not in (0, N // 2)]
            srv.proc.send_signal(2)  # SIGINT
            codes = []
            for c in left:
                try:
                    await asyncio.wait_for(c.ws.wait_closed(), 5)
                except asyncio.TimeoutError:
                    pass
                codes.append(c.ws.close_code)
            check(all(code == 1001 for code in codes), "every client got 1001", codes)
            rc = await th(srv.wait_exit, 10)
            eq(rc, 0, "exit status")

        await astep("graceful shutdown of both loops", shutdown())
        sse.sock.close()
    finally:
        srv.kill()
    note("done")


if __name__ == "__main__":
    run("serve_threads", main, timeout=60)
    sys.exit(0)
