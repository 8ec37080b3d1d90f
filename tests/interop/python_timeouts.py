#!/usr/bin/python3
"""Deadlines of `wsx echo`: the idle timeout (close 1001), keepalive pings (answered: the
connection stays; unanswered: it is dropped), and graceful shutdown on SIGTERM with clients
open (each gets 1001, the server exits 0)."""

import asyncio
import signal
import time

import websockets

from wsxlib import Raw, Server, astep, check, eq, note, run


def connect(url):
    # ping_interval=None: the client never pings on its own, so only the server's deadlines act.
    return websockets.connect(url, ping_interval=None, close_timeout=5, compression=None)


async def idle():
    with Server(["--idle-timeout", "500"]) as srv:
        async with connect(srv.url) as ws:
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(ws.recv(), 5)
                check(False, "idle client: no message expected")
            except websockets.ConnectionClosed:
                pass
            took = time.monotonic() - t0
            eq(ws.close_code, 1001, "a silent open client gets close code")
            check(0.3 <= took <= 3, f"idle close after {took:.2f} s (timeout 500 ms)")

        r = await asyncio.to_thread(Raw.connect, srv.port)
        t0 = time.monotonic()
        f = await asyncio.to_thread(r.expect_close, 1001, "raw silent client: idle close frame 1001", 5)
        took = time.monotonic() - t0
        check(f is None or 0.3 <= took <= 3.5, f"raw idle close after {took:.2f} s")
        r.close()

        async with connect(srv.url) as ws:
            for i in range(8):
                await ws.send(f"tick {i}")
                eq(await asyncio.wait_for(ws.recv(), 2), f"tick {i}", f"active client echo {i}")
                await asyncio.sleep(0.2)
            check(ws.open, "a client sending every 200 ms is not idle after 1.6 s")


async def keepalive():
    with Server(["--ping-interval", "300", "--pong-timeout", "300"]) as srv:
        async with connect(srv.url) as ws:
            await asyncio.sleep(2)
            check(ws.open, "a client that answers pings (websockets does) is open after 2 s",
                  f"closed with {ws.close_code} {ws.close_reason!r}")
            await ws.send("after 2 s")
            eq(await asyncio.wait_for(ws.recv(), 2), "after 2 s", "echo after 2 s of keepalive")

        def raw_answering():
            r = Raw.connect(srv.port)
            pings = 0
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                try:
                    f = r.recv_frame(max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
                if f is None or f.opcode == 0x8:
                    check(False, "raw client answering pings stays open", repr(f))
                    r.close()
                    return
                if f.opcode == 0x9:
                    pings += 1
                    r.send_frame(0xA, f.payload)
            check(pings >= 3, f"raw client answering pings by hand: {pings} pings in 2 s, still open")
            r.send_frame(0x1, b"raw after pings")
            f = r.recv_message(2)
            check(f is not None and f.payload == b"raw after pings", "raw echo after 2 s of pings", repr(f))
            r.close()
        await asyncio.to_thread(raw_answering)

        def raw_silent():
            r = Raw.connect(srv.port)
            t0 = time.monotonic()
            f = r.recv_frame(3)
            t_ping = time.monotonic() - t0
            check(f is not None and f.opcode == 0x9 and not f.masked,
                  f"the server pings a quiet client (after {t_ping:.2f} s; interval 300 ms)", repr(f))
            extra = []
            t1 = time.monotonic()
            while True:
                try:
                    g = r.recv_frame(5)
                except TimeoutError:
                    g = "timeout"
                    break
                if g is None:
                    break
                extra.append(g)
            took = time.monotonic() - t1
            note(f"after the unanswered ping: {extra} then {'EOF' if g is None else g} after {took:.2f} s")
            check(g is None and took <= 3,
                  f"a client that never answers pings is dropped ({took:.2f} s after the ping; "
                  f"pong timeout 300 ms)", f"still open after {took:.2f} s")
            check(all(x.opcode in (0x9, 0x8) for x in extra), "only pings or a close before the drop",
                  repr(extra))
            r.close()
        await asyncio.to_thread(raw_silent)


async def shutdown():
    srv = Server([])
    try:
        clients = [await connect(srv.url).__aenter__() for _ in range(2)]
        for i, ws in enumerate(clients):
            await ws.send(f"client {i}")
            eq(await asyncio.wait_for(ws.recv(), 2), f"client {i}", f"client {i} open before SIGTERM")
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        for i, ws in enumerate(clients):
            try:
                await asyncio.wait_for(ws.recv(), 8)
                check(False, f"client {i}: no message expected during shutdown")
            except websockets.ConnectionClosed:
                pass
            eq(ws.close_code, 1001, f"client {i} gets close code on SIGTERM")
            eq(ws.close_reason, "server shutting down", f"client {i} close reason")
        rc = await asyncio.to_thread(srv.wait_exit, 8)
        took = time.monotonic() - t0
        eq(rc, 0, "server exit status after SIGTERM with 2 clients")
        check(took < 5, f"graceful shutdown took {took:.2f} s")
        for ws in clients:
            await ws.close()
    finally:
        srv.kill()


async def main():
    await astep("idle timeout", idle(), 25)
    await astep("keepalive pings", keepalive(), 25)
    await astep("graceful shutdown with 2 clients", shutdown(), 20)
    note("done")


if __name__ == "__main__":
    run("python_timeouts", main, timeout=90)
