#!/usr/bin/python3
"""The wsx client (wsx_client_test --expect-close) against a server that misbehaves (stdlib
sockets, hand-built frames): bad frames after the handshake must make the client fail the
connection with the exact close code — reported by on_close and sent in the client's close
frame — and a bad handshake response must fail the connection before on_open."""

import asyncio
import base64
import hashlib
import socketserver
import threading

from wsxlib import (GUID, WSX_CLIENT_TEST, Raw, astep, build_frame, check, close_payload, eq, note,
                    parse_head, run, run_program)

BIG = (16 << 20) + 1  # one byte over the client's default max_message

# path -> (frames sent after a good 101, expected close code)
FRAME_CASES = {
    "/masked": ([build_frame(0x1, b"masked by the server", mask=True)], 1002),
    "/bad-utf8": ([build_frame(0x1, b"abc\xff", mask=False)], 1007),
    "/bad-utf8-fragment": ([build_frame(0x1, b"ok\xc3\x28", fin=False, mask=False)], 1007),
    "/rsv1": ([build_frame(0x1, b"x", rsv=4, mask=False)], 1002),
    "/opcode3": ([build_frame(0x3, b"x", mask=False)], 1002),
    "/continuation": ([build_frame(0x0, b"x", mask=False)], 1002),
    "/ping126": ([build_frame(0x9, b"p" * 126, mask=False)], 1002),
    "/close-1005": ([build_frame(0x8, close_payload(1005), mask=False)], 1002),
    "/close-1-byte": ([build_frame(0x8, b"\x03", mask=False)], 1002),
    "/too-big": ([build_frame(0x2, b"\x00" * 1000, mask=False, length=BIG)], 1009),
}

# path -> (status line, extra headers, correct accept?) for handshakes the client must refuse
HANDSHAKE_CASES = {
    "/wrong-accept": ("HTTP/1.1 101 Switching Protocols", [], False),
    "/status-200": ("HTTP/1.1 200 OK", ["Content-Length: 0"], True),
    "/no-upgrade-header": ("HTTP/1.1 101 Switching Protocols", ["-Upgrade"], True),
    "/unoffered-extension": ("HTTP/1.1 101 Switching Protocols",
                             ["Sec-WebSocket-Extensions: permessage-deflate"], True),
    "/unoffered-subprotocol": ("HTTP/1.1 101 Switching Protocols", ["Sec-WebSocket-Protocol: chat"], True),
}


class BadServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.client_closes = {}  # path -> close code the client sent (None: none)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            if not d:
                return
            head += d
        end = head.index(b"\r\n\r\n")
        first = head[:end].split(b"\r\n")[0].decode("latin-1")
        path = first.split(" ")[1]
        _, hdrs, _ = parse_head(b"HTTP/1.1 000 x\r\n" + head[:end].split(b"\r\n", 1)[1])
        key = hdrs.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if path in HANDSHAKE_CASES:
            status, extra, good = HANDSHAKE_CASES[path]
            lines = [status, "Upgrade: websocket", "Connection: Upgrade",
                     f"Sec-WebSocket-Accept: {accept if good else base64.b64encode(b'x' * 20).decode()}"]
            for e in extra:
                if e.startswith("-"):
                    lines = [x for x in lines if not x.lower().startswith(e[1:].lower() + ":")]
                else:
                    lines.append(e)
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            # Hold the connection until the client gives up on it.
            with_timeout_drain(s)
            return
        frames, _ = FRAME_CASES[path]
        s.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        for f in frames:
            s.sendall(f)
        r = Raw(s, head[end + 4:])
        code = None
        try:
            while True:
                f = r.recv_frame(8)
                if f is None:
                    break
                if f.opcode == 0x8:
                    code = f.close_code
                    if not f.masked:
                        code = ("unmasked", code)
                    with_timeout_send(s, build_frame(0x8, f.payload[:2], mask=False))
                    break
        except TimeoutError:
            code = "timeout"
        self.server.client_closes[path] = code
        r.close()


def with_timeout_drain(s):
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass


def with_timeout_send(s, data):
    try:
        s.sendall(data)
    except OSError:
        pass


async def main():
    srv = BadServer()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    note(f"misbehaving server on 127.0.0.1:{port}")
    try:
        async def frames():
            for path, (_, code) in FRAME_CASES.items():
                rc, _ = await run_program(WSX_CLIENT_TEST, ["--timeout", "15", "--expect-close", str(code),
                                                            f"ws://127.0.0.1:{port}{path}"], timeout=20)
                eq(rc, 0, f"{path}: the wsx client fails the connection with {code}; exit status")
                await asyncio.sleep(0.05)
                check(srv.client_closes.get(path) == code,
                      f"{path}: the client's close frame carries {code} (masked)",
                      f"got {srv.client_closes.get(path)!r}")
        await astep("bad frames from the server", frames(), 60)

        async def handshakes():
            for path in HANDSHAKE_CASES:
                rc, out = await run_program(WSX_CLIENT_TEST, ["--timeout", "15", "--expect-close", "0",
                                                              f"ws://127.0.0.1:{port}{path}"], timeout=20)
                eq(rc, 0, f"{path}: the wsx client refuses the handshake; exit status")
        await astep("bad handshake responses", handshakes(), 40)
    finally:
        srv.shutdown()
        srv.server_close()
    note("done")


if __name__ == "__main__":
    run("python_bad_server", main, timeout=100, needs=("WSX_CLIENT_TEST",))
