#!/usr/bin/python3
"""The wsx client (wsx_client_test, public API only) against an echo server written with
Python websockets (10.4): the scripted conversation with several close codes (the server checks
the code it receives), and reconnection after the server vanishes (connections aborted, port
closed) and comes back on the same port."""

import asyncio
import sys

import websockets

from wsxlib import WSX_CLIENT_TEST, astep, check, eq, note, run, run_program


class Echo:
    """An echo server on 127.0.0.1 recording the close codes its connections receive."""

    def __init__(self):
        self.server = None
        self.port = 0
        self.closes = []
        self.connections = set()
        self.n_connections = 0

    async def handler(self, ws):
        self.connections.add(ws)
        self.n_connections += 1
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.connections.discard(ws)
            self.closes.append((ws.close_code, ws.close_reason))

    async def start(self, port=0):
        self.server = await websockets.serve(self.handler, "127.0.0.1", port, max_size=None,
                                             ping_interval=None, compression=None)
        self.port = self.server.sockets[0].getsockname()[1]
        note(f"websockets echo server on {self.url}")
        return self

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/"

    async def vanish(self):
        """Abrupt: every connection is reset and the port closed."""
        for ws in list(self.connections):
            ws.transport.abort()
        self.server.close()
        await self.server.wait_closed()


async def main():
    async def conversation():
        echo = await Echo().start()
        try:
            for code, small in ((1000, False), (3000, True), (4999, True)):
                args = ["--timeout", "40"] + (["--small"] if small else []) + [echo.url, str(code)]
                before = len(echo.closes)
                rc, _ = await run_program(WSX_CLIENT_TEST, args, timeout=45)
                eq(rc, 0, f"wsx_client_test {' '.join(args)} exit status")
                await asyncio.sleep(0.1)
                got = echo.closes[before] if len(echo.closes) > before else None
                check(got == (code, "bye from wsx_client_test"),
                      f"websockets server received close {code} and the reason", repr(got))
        finally:
            await echo.vanish()
    await astep("conversation with close codes 1000, 3000, 4999", conversation(), 60)

    async def reconnect():
        state = {"echo": await Echo().start(), "restarted": False}
        port = state["echo"].port

        async def on_line(line):
            if line.startswith("READY") and not state["restarted"]:
                state["restarted"] = True
                await state["echo"].vanish()
                note("websockets server gone; restarting in 0.4 s on the same port")
                await asyncio.sleep(0.4)
                state["echo"] = await Echo().start(port)

        try:
            rc, _ = await run_program(WSX_CLIENT_TEST, ["--timeout", "20", "--reconnect", state["echo"].url],
                                      timeout=25, on_line=on_line)
            eq(rc, 0, "wsx_client_test --reconnect exit status")
            check(state["restarted"], "the client reported READY before the restart")
            check(state["echo"].n_connections == 1, "the restarted server got the reconnection",
                  f"{state['echo'].n_connections} connections")
        finally:
            await state["echo"].vanish()
    await astep("reconnect after the server vanishes and returns on the same port", reconnect(), 30)
    note("done")


if __name__ == "__main__":
    note(f"python {sys.version.split()[0]}, websockets {websockets.__version__}")
    run("python_server", main, timeout=90, needs=("WSX_CLIENT_TEST",))
