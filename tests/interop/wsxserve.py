"""Helpers for the interop tests of `wsx serve`: the server process, plain HTTP requests,
/metrics, a server-sent events reader and a JSON chat client. Run with Debian's
/usr/bin/python3 (python3-websockets 10.4; this module imports websockets only when a chat
client opens). The checks, the runner and the raw RFC 6455 client are in wsxlib.
"""

import asyncio
import contextlib
import http.client
import json
import socket
import time

from wsxlib import Server, _fill_socket, parse_head


class Serve(Server):
    """A running `wsx serve` (the chat server) on 127.0.0.1. url is the WebSocket endpoint
    (ws://127.0.0.1:PORT/ws), http the page's base URL."""

    command = "serve"
    ws_path = "/ws"

    @property
    def http(self):
        return f"http://127.0.0.1:{self.port}/"

    def ws_url(self, query=""):
        return self.url + (f"?{query}" if query else "")


def http_req(port, method, path, headers=(), body=None, timeout=5):
    """One request with http.client on a new connection (the path is sent as given, unescaped):
    (status, {lowercased name: value}, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def http_raw(port, method, path, headers=(), timeout=5):
    """Sends one request with `Connection: close` over a raw socket and reads until the server
    closes: (status, {lowercased name: value}, everything after the head). For responses that
    must have no body (HEAD, 304), where http.client would not read one anyway. A stream that
    is still open after timeout s returns what came so far."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers),
             "Connection: close"]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            buf += d
    if b"\r\n\r\n" not in buf:
        return None, {}, buf
    end = buf.index(b"\r\n\r\n")
    status, hdrs, _ = parse_head(buf[:end])
    return status, hdrs, buf[end + 4:]


def metrics(port, headers=()):
    """GET /metrics (with the request headers given) parsed: {'name' or 'name{labels}': int, or
    float for the values that are not integers (process_cpu_seconds_total)}."""
    status, _, body = http_req(port, "GET", "/metrics", headers)
    if status != 200:
        raise RuntimeError(f"/metrics: HTTP {status}")
    vals = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            try:
                vals[k] = int(v)
            except ValueError:
                vals[k] = float(v)
    return vals


def wait_metric(port, name, want, timeout=3):
    """Polls /metrics until name has the value want (or, for a callable want, until want(value)
    is true); returns the last value seen (None while name is missing)."""
    deadline = time.monotonic() + timeout
    while True:
        v = metrics(port).get(name)
        if (want(v) if callable(want) else v == want) or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


class SSE:
    """A server-sent events listener over a raw socket (blocking; call it from a thread in
    asyncio code). status/headers are the response head's; events() parses what follows."""

    def __init__(self, port, path, headers=(), timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream",
                 *(f"{k}: {v}" for k, v in headers)]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.buf = b""
        self.eof = False
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise RuntimeError(f"SSE {path}: closed before a response head: {self.buf!r}")
        end = self.buf.index(b"\r\n\r\n")
        self.status, self.headers, _ = parse_head(self.buf[:end])
        self.buf = self.buf[end + 4:]

    def _fill(self, deadline):
        return _fill_socket(self, deadline, "waiting for server-sent events")

    def block(self, timeout=5):
        """The next event block as {field: value} (comment lines under ':'), or None at EOF.
        Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self.buf:
            if self.eof or not self._fill(deadline):
                return None
        raw, self.buf = self.buf.split(b"\n\n", 1)
        ev = {}
        for line in raw.decode("utf-8").split("\n"):
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            ev[k] = ev[k] + "\n" + v if k in ev and k == "data" else v
        return ev

    def event(self, timeout=5):
        """The next block with data (skipping retry: and comment blocks), or None at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.block(max(0.001, deadline - time.monotonic()))
            if ev is None or "data" in ev:
                return ev

    def quiet(self, seconds=0.3):
        """The data events that arrive within seconds (none, when all is well)."""
        got = []
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while True:
                ev = self.event(max(0.001, deadline - time.monotonic()))
                if ev is None:
                    break
                got.append(ev)
        return got

    def wait_eof(self, timeout=5):
        """Reads until EOF: the data blocks still seen, or None if still open after timeout."""
        seen = []
        try:
            while True:
                ev = self.block(timeout)
                if ev is None:
                    return seen
                seen.append(ev)
        except TimeoutError:
            return None

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


class Chat:
    """A chat client of `wsx serve` on python websockets: JSON objects in and out. open()
    connects and reads the welcome."""

    def __init__(self, ws, label):
        self.ws = ws
        self.label = label
        self.welcome = None

    @classmethod
    async def open(cls, url, label="client", source=None, **kw):
        """source: the local address to connect from (see Raw.connect)."""
        import websockets  # only the websockets tests have it
        if source:
            kw["local_addr"] = (source, 0)
        ws = await websockets.connect(url, max_size=None, ping_interval=None, close_timeout=3,
                                      compression=None, **kw)
        c = cls(ws, label)
        c.welcome = await c.recv()
        return c

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj, ensure_ascii=False))

    async def recv_raw(self, timeout=5):
        return await asyncio.wait_for(self.ws.recv(), timeout)

    async def recv(self, timeout=5):
        return json.loads(await self.recv_raw(timeout))

    async def expect(self, type_, timeout=5):
        """The next message, which must be of type type_ (AssertionError otherwise)."""
        m = await self.recv(timeout)
        if m.get("type") != type_:
            raise AssertionError(f"{self.label}: expected a {type_!r} message, got {m}")
        return m

    async def quiet(self, seconds=0.3):
        """The messages that arrive within seconds (none, when all is well)."""
        got = []
        with contextlib.suppress(asyncio.TimeoutError):
            while True:
                got.append(json.loads(await asyncio.wait_for(self.ws.recv(), seconds)))
        return got

    async def join(self, room, name, key=None):
        """Joins and reads the answer, the room's `history` message and the presence/online
        event that follow it: (joined, event), the history's messages put into joined as
        j["history"] (where servers before the `history` message had them). A refused join
        returns (error, None). The key (a person's secret, shared by their tabs) defaults to
        one derived from the name, so that joins under one name are tabs of one person, as
        with the page; pass key=False for a join without a key."""
        req = {"type": "join", "room": room, "name": name}
        if key is None:
            key = "test-key-" + name.strip()
        if key is not False:
            req["key"] = key
        await self.send(req)
        j = await self.recv()
        if j.get("type") != "joined":
            return j, None
        ev = await self.recv()
        if ev.get("type") == "history":
            if ev.get("room") != j.get("room"):
                raise AssertionError(f"{self.label}: history of {ev.get('room')!r} after joining {j.get('room')!r}")
            j["history"] = ev.get("messages")
            ev = await self.recv()
        if ev.get("type") not in ("presence", "online"):
            raise AssertionError(f"{self.label}: expected presence/online after joined, got {ev}")
        return j, ev

    async def close(self):
        await self.ws.close()
