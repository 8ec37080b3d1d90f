#!/usr/bin/python3
"""Python websockets (10.4) client against `wsx echo`: message sizes in text and binary,
fragmented messages, pings, every valid close code echoed by the server, and the server's
close 1001 on SIGTERM."""

import asyncio
import signal
import sys
import time

import websockets

from wsxlib import (SIZES, Server, astep, binary_payload, check, eq, first_difference, note, run,
                    text_payload)

CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
               3000, 3999, 4000, 4999]


def connect(url):
    return websockets.connect(url, max_size=None, ping_interval=None, close_timeout=5,
                              compression=None)


async def echo(ws, data, label):
    await ws.send(data)
    got = await asyncio.wait_for(ws.recv(), 30)
    same = type(got) is type(data) and got == data
    kind = "text" if isinstance(got, str) else "binary"
    return check(same, f"{label} echoed", f"got {kind} {len(got)}, first difference at "
                 f"{first_difference(got, data)}")


async def main():
    srv = Server([])
    try:
        async def sizes():
            async with connect(srv.url) as ws:
                for size in SIZES:
                    await echo(ws, text_payload(size, size).decode(), f"text {size} bytes")
                for size in SIZES:
                    await echo(ws, binary_payload(size, size), f"binary {size} bytes")
        await astep("text and binary messages of every size", sizes(), 60)

        async def fragments():
            async with connect(srv.url) as ws:
                parts = ["héllo ", "wörld ", "", "€ and 𝄞"]
                await ws.send(iter(parts))
                got = await asyncio.wait_for(ws.recv(), 5)
                eq(got, "".join(parts), "text sent in 4 fragments echoed whole")
                chunks = [binary_payload(1000, i) for i in range(50)]
                await ws.send(iter(chunks))
                got = await asyncio.wait_for(ws.recv(), 5)
                check(got == b"".join(chunks), "binary in 50 fragments echoed whole")
        await astep("fragmented messages", fragments())

        async def pings():
            async with connect(srv.url) as ws:
                for payload in (b"", b"python ping", binary_payload(125, 1)):
                    waiter = await ws.ping(payload)
                    await asyncio.wait_for(waiter, 5)
                    check(True, f"pong for a {len(payload)}-byte ping (websockets matches the payload)")
                await echo(ws, "after pings", "message after pings")
        await astep("ping and pong", pings())

        async def close_codes():
            for code in CLOSE_CODES:
                async with connect(srv.url) as ws:
                    t0 = time.monotonic()
                    await ws.close(code, f"reason {code}")
                    took = time.monotonic() - t0
                    check(ws.close_code == code, f"client close {code} echoed by the server",
                          f"got {ws.close_code} {ws.close_reason!r}")
                    if took > 3:
                        check(False, f"close {code} took {took:.1f} s (server did not close TCP?)")
            async with connect(srv.url) as ws:
                await ws.close(1000, "é" * 61)  # a 122-byte UTF-8 reason (limit is 123)
                eq(ws.close_code, 1000, "close with a long UTF-8 reason echoed")
        await astep("close codes echoed by the server", close_codes(), 40)

        async def shutdown():
            async with connect(srv.url) as ws:
                await echo(ws, "before SIGTERM", "message before SIGTERM")
                srv.proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(ws.recv(), 8)
                    check(False, "no message expected during shutdown")
                except websockets.ConnectionClosed:
                    pass
                eq(ws.close_code, 1001, "close code from a server shutting down")
                eq(ws.close_reason, "server shutting down", "close reason")
            rc = await asyncio.get_running_loop().run_in_executor(None, srv.wait_exit, 8)
            eq(rc, 0, "server exit status after SIGTERM")
        await astep("server closes with 1001 on SIGTERM", shutdown())
    finally:
        srv.kill()
    note("done")


if __name__ == "__main__":
    note(f"python {sys.version.split()[0]}, websockets {websockets.__version__}")
    run("python_client", main, timeout=90)
