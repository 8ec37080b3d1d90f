#!/usr/bin/python3
"""permessage-deflate (RFC 7692) with Python websockets (10.4), which offers and accepts the
extension by default:

- the websockets client (default compression, and a custom offer) against `wsx echo`: the
  answer is what docs/deflate.md says, messages up to 1 MiB (text and binary, random and
  repetitive) are echoed, and the bytes on the wire show both directions compressed;
- a websockets server with compression (its defaults: server_max_window_bits=12 and
  client_max_window_bits=12, and a custom set) against `wsx_client_test --deflate --small`: the
  server checks the offer wsx documents and that what it receives came compressed.
"""

import asyncio
import random
import sys

import websockets
from websockets.extensions.permessage_deflate import (ClientPerMessageDeflateFactory,
                                                      ServerPerMessageDeflateFactory)

from wsxlib import (WSX_CLIENT_TEST, Server, astep, binary_payload, check, eq, first_difference,
                    note, run, run_program, text_payload)

MiB = 1 << 20
WSX_OFFER = "permessage-deflate; client_max_window_bits"


def count_wire(ws):
    """Counts the bytes ws writes to and reads from its socket: {'out': n, 'in': n}."""
    n = {"out": 0, "in": 0}
    write = ws.transport.write
    received = ws.data_received

    def counted_write(data):
        n["out"] += len(data)
        return write(data)

    def counted_received(data):
        n["in"] += len(data)
        return received(data)

    ws.transport.write = counted_write
    ws.data_received = counted_received
    return n


def random_text(size, seed):
    rnd = random.Random(seed)
    chars = []
    n = 0
    while n < size:
        cp = rnd.choice((rnd.randrange(0x20, 0x7F), rnd.randrange(0xA0, 0x800), rnd.randrange(0x800, 0xD800),
                         rnd.randrange(0x10000, 0x10FFFF)))
        c = chr(cp)
        k = len(c.encode())
        if n + k > size:
            c, k = "x", 1
        chars.append(c)
        n += k
    return "".join(chars)


async def echo(ws, data, label, wire=None):
    before = dict(wire) if wire else None
    await ws.send(data)
    got = await asyncio.wait_for(ws.recv(), 30)
    same = type(got) is type(data) and got == data
    check(same, f"{label} echoed", f"got {type(got).__name__} {len(got)}, first difference at "
          f"{first_difference(got, data)}")
    if wire is not None:
        size = len(data.encode() if isinstance(data, str) else data)
        sent, recvd = wire["out"] - before["out"], wire["in"] - before["in"]
        check(sent < size / 10 and recvd < size / 10,
              f"{label}: compressed both ways ({sent} B out, {recvd} B in for {size} B)")


async def client_tests(url):
    async def default_client():
        async with websockets.connect(url, max_size=None, ping_interval=None, close_timeout=5) as ws:
            eq(ws.request_headers.get("Sec-WebSocket-Extensions"), WSX_OFFER, "websockets' default offer")
            eq(ws.response_headers.get("Sec-WebSocket-Extensions"),
               "permessage-deflate; server_no_context_takeover", "wsx echo's answer")
            eq([e.name for e in ws.extensions], ["permessage-deflate"], "websockets agreed permessage-deflate")
            eq(ws.extensions[0].remote_no_context_takeover, True, "the server's direction has no context takeover")
            wire = count_wire(ws)
            for size in (0, 1, 125, 1024, 65536, MiB):
                await echo(ws, random_text(size, size), f"random text {size} B")
                await echo(ws, binary_payload(size, size), f"random binary {size} B")
                await echo(ws, text_payload(size, size).decode(), f"repetitive text {size} B",
                           wire if size >= 65536 else None)
                await echo(ws, b"0123456789" * (size // 10), f"repetitive binary {size // 10 * 10} B",
                           wire if size >= 65536 else None)
            await ws.send(iter(["fragmenté ", "compressé ", "", "€ 𝄞" * 500]))
            got = await asyncio.wait_for(ws.recv(), 5)
            want = "fragmenté compressé " + "€ 𝄞" * 500
            check(got == want, "compressed text in 4 fragments echoed whole",
                  f"got {len(got)} characters, first difference at {first_difference(got, want)}")
    await astep("websockets client, default compression, against wsx echo", default_client(), 60)

    async def custom_client():
        ext = ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=11,
                                             client_no_context_takeover=True)
        async with websockets.connect(url, max_size=None, ping_interval=None, close_timeout=5,
                                      extensions=[ext], compression=None) as ws:
            eq(ws.request_headers.get("Sec-WebSocket-Extensions"),
               "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11",
               "custom offer")
            eq(ws.response_headers.get("Sec-WebSocket-Extensions"),
               "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
               "server_max_window_bits=10; client_max_window_bits=11", "wsx echo's answer to the custom offer")
            wire = count_wire(ws)
            for size in (0, 200, 65536, MiB):
                await echo(ws, text_payload(size, 3).decode(), f"custom: repetitive text {size} B",
                           wire if size >= 65536 else None)
                await echo(ws, binary_payload(size, 4), f"custom: random binary {size} B")
            # Repeats 3000 bytes apart: beyond the 10-bit window websockets' decompressor is
            # sized for, so wsx must not refer back to them (and cannot compress them).
            far = binary_payload(3000, 5) * 30
            await echo(ws, far, "custom: repeats 3000 B apart (server window 10)")
    await astep("websockets client, custom offer, against wsx echo", custom_client(), 60)


class DeflateEcho:
    """A websockets echo server with compression, recording each connection's offer, the
    answer, and the wire bytes against the payload received."""

    def __init__(self, extensions=None):
        self.extensions = extensions
        self.conns = []

    async def handler(self, ws):
        c = {"offer": ws.request_headers.get("Sec-WebSocket-Extensions"),
             "answer": ws.response_headers.get("Sec-WebSocket-Extensions"),
             "agreed": [e.name for e in ws.extensions], "payload": 0, "close": None}
        c["wire"] = count_wire(ws)
        self.conns.append(c)
        try:
            async for msg in ws:
                c["payload"] += len(msg.encode() if isinstance(msg, str) else msg)
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        c["close"] = ws.close_code

    async def start(self):
        kw = {"compression": None, "extensions": self.extensions} if self.extensions else {}
        self.server = await websockets.serve(self.handler, "127.0.0.1", 0, max_size=None, ping_interval=None, **kw)
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"
        note(f"websockets server with compression on {self.url}")
        return self

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


async def server_tests():
    sets = [
        (None, [], WSX_OFFER, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"),
        ([ServerPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True,
                                         server_max_window_bits=9)], [],
         WSX_OFFER, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                    "server_max_window_bits=9"),
        ([ServerPerMessageDeflateFactory(client_max_window_bits=10)], ["--deflate-no-context"],
         "permessage-deflate; client_no_context_takeover; client_max_window_bits",
         "permessage-deflate; client_no_context_takeover; client_max_window_bits=10"),
    ]
    for exts, extra, offer, answer in sets:
        async def one():
            srv = await DeflateEcho(exts).start()
            try:
                args = ["--timeout", "40", "--deflate", "--small", *extra, srv.url]
                rc, _ = await run_program(WSX_CLIENT_TEST, args, timeout=45)
                label = f"wsx_client_test {' '.join(args[2:-1])} against {answer!r}"
                eq(rc, 0, f"{label}: exit status")
                for _ in range(100):
                    if srv.conns and srv.conns[0]["close"] is not None:
                        break
                    await asyncio.sleep(0.02)
                c = srv.conns[0] if srv.conns else {}
                eq(c.get("offer"), offer, f"{label}: offer")
                eq(c.get("answer"), answer, f"{label}: the server's answer")
                eq(c.get("agreed"), ["permessage-deflate"], f"{label}: websockets agreed permessage-deflate")
                eq(c.get("close"), 1000, f"{label}: closed with 1000")
                w = c.get("wire", {"in": 0, "out": 0})
                p = c.get("payload", 0)
                check(p > 0 and w["in"] < 0.75 * p, f"{label}: the wsx client's messages came compressed "
                      f"({w['in']} B on the wire for {p} B)")
                check(p > 0 and w["out"] < 0.75 * p, f"{label}: websockets sent compressed "
                      f"({w['out']} B on the wire for {p} B)")
            finally:
                await srv.stop()
        await astep(f"websockets server answering {answer!r}: wsx_client_test --deflate", one(), 50)


async def main():
    srv = Server([])
    try:
        await client_tests(srv.url)
    finally:
        srv.kill()
    await server_tests()
    note("done")


if __name__ == "__main__":
    note(f"python {sys.version.split()[0]}, websockets {websockets.__version__}")
    run("deflate_python", main, timeout=150, needs=("WSX_BIN", "WSX_CLIENT_TEST"))
