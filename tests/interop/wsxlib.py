"""Shared helpers for the Python interop tests of wsx.

Checks and reporting, a bounded runner that kills whatever it started, `wsx echo` processes,
deterministic payloads, a raw RFC 6455 client (stdlib sockets, hand-built frames) for bad
input, a raw WebSocket server that misbehaves on purpose, and `wsx bench` runs. The helpers
for `wsx serve` (HTTP requests, /metrics, server-sent events, the chat client) are in
wsxserve. Run with Debian's /usr/bin/python3 (python3-websockets 10.4 for the websockets
tests).

Environment: WSX_BIN (the wsx binary), WSX_CLIENT_TEST (the wsx_client_test binary).
"""

import asyncio
import base64
import contextlib
import hashlib
import inspect
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

WSX_BIN = os.environ.get("WSX_BIN", "")
WSX_CLIENT_TEST = os.environ.get("WSX_CLIENT_TEST", "")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SIZES = [0, 125, 126, 65535, 65536, 16 << 20]

# ---- checks -----------------------------------------------------------------------------------

_lock = threading.Lock()
_n_checks = 0
_n_failed = 0


def check(ok, name, detail=None):
    global _n_checks, _n_failed
    with _lock:
        _n_checks += 1
        if not ok:
            _n_failed += 1
    extra = f": {detail}" if (not ok and detail is not None) else ""
    out(f"{'ok' if ok else 'FAIL'} - {name}{extra}")
    return bool(ok)


def eq(actual, expected, name):
    return check(actual == expected, f"{name} ({expected!r})", f"expected {expected!r}, got {actual!r}")


def xfail(ok, name, bug, detail=None):
    """A check that fails today because of a known server bug (named in bug): a failure is
    reported as XFAIL and does not fail the test; a pass is reported as XPASS (the bug is
    fixed: make it a plain check)."""
    global _n_checks
    with _lock:
        _n_checks += 1
    if ok:
        out(f"ok - {name} (XPASS: fixed? {bug})")
    else:
        extra = f": {detail}" if detail is not None else ""
        out(f"XFAIL - {name} [known bug: {bug}]{extra}")
    return bool(ok)


def note(msg):
    out(f"# {msg}")


_out_lock = threading.Lock()


def out(line, stream=None):
    """Writes one whole line (stdout by default) so lines of several threads never mix."""
    stream = stream or sys.stdout
    with _out_lock:
        stream.write(line + "\n")
        stream.flush()


# ---- processes --------------------------------------------------------------------------------

_children = set()


def _track(pid):
    _children.add(pid)


def _untrack(pid):
    _children.discard(pid)


def _kill_all():
    for pid in list(_children):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _children.clear()


def _summary_and_exit(name):
    _kill_all()
    print(f"{name}: {_n_checks} checks, {_n_failed} failed", flush=True)
    os._exit(1 if (_n_failed or _n_checks == 0) else 0)


def run(name, fn, timeout=60, needs=("WSX_BIN",)):
    """Runs fn (a function or a coroutine function) within timeout seconds, then prints the
    summary and exits 0 only if at least one check ran and none failed."""

    def on_timeout():
        check(False, f"{name}: whole test timed out after {timeout} s")
        _summary_and_exit(name)

    watchdog = threading.Timer(timeout, on_timeout)
    watchdog.daemon = True
    watchdog.start()
    missing = [v for v in needs if not os.environ.get(v)]
    if missing:
        check(False, f"environment not set: {', '.join(missing)} (paths of the binaries under test)")
        _summary_and_exit(name)
    try:
        if inspect.iscoroutinefunction(fn):
            asyncio.run(fn())
        else:
            fn()
    except BaseException:  # noqa: BLE001 - every failure becomes a failed check
        check(False, f"{name}: exception", traceback.format_exc())
    watchdog.cancel()
    _summary_and_exit(name)


@contextlib.contextmanager
def step(name):
    """One step of a test: an exception is a failed check and the test goes on."""
    note(f"--- {name}")
    try:
        yield
    except Exception:  # noqa: BLE001
        check(False, name, traceback.format_exc().strip().splitlines()[-1])
        note(traceback.format_exc())


async def astep(name, coro, timeout=20):
    """Async step: coro must finish within timeout seconds."""
    note(f"--- {name}")
    try:
        await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        check(False, name, f"timed out after {timeout} s")
    except Exception:  # noqa: BLE001
        check(False, name, traceback.format_exc().strip().splitlines()[-1])
        note(traceback.format_exc())


def _reader(stream, fn):
    for raw in iter(stream.readline, b""):
        fn(raw.decode("utf-8", "replace").rstrip("\n"))
    stream.close()


class Server:
    """A running `wsx echo` on 127.0.0.1; ready once it printed its listening line. url is its
    WebSocket URL."""

    command = "echo"
    ws_path = "/"

    def __init__(self, args=(), port=0, wrapper=(), ready_timeout=10, quiet=False):
        argv = [*wrapper, WSX_BIN, self.command, "--host", "127.0.0.1", "--port", str(port), *args]
        self.argv = argv
        self.stderr = []
        self.port = 0
        self.url = ""
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        _track(self.proc.pid)
        self.quiet = quiet

        def on_err(line):
            with self._cond:
                self.stderr.append(line)
                self._cond.notify_all()
            if not self.quiet:
                out(f"[wsx {self.port}] {line}", sys.stderr)

        def on_out(line):
            m = re.match(r"^listening on (?:wss?|https?)://(.+):(\d+)(?:/\S*)?\s*$", line)
            with self._cond:
                if m and not self.port:
                    self.port = int(m.group(2))
                    self.url = f"ws://127.0.0.1:{self.port}{self.ws_path}"
                    self._cond.notify_all()
                    return
            out(f"[wsx stdout] {line}", sys.stderr)

        self._threads = [threading.Thread(target=_reader, args=(self.proc.stderr, on_err), daemon=True),
                         threading.Thread(target=_reader, args=(self.proc.stdout, on_out), daemon=True)]
        for t in self._threads:
            t.start()
        with self._cond:
            ok = self._cond.wait_for(lambda: self.port or self.proc.poll() is not None, ready_timeout)
        if not self.port:
            self.kill()
            tail = " | ".join(self.stderr[-5:])
            raise RuntimeError(f"{' '.join(argv)}: no listening line (ok={bool(ok)}): {tail}")
        note(f"started: {' '.join(argv)} -> {self.url}")

    @property
    def running(self):
        return self.proc.poll() is None

    def wait_stderr(self, pattern, timeout=10):
        """The first stderr line matching pattern (a regex), waiting up to timeout s; or None."""
        rx = re.compile(pattern)
        with self._cond:
            found = []

            def hit():
                found[:] = [line for line in self.stderr if rx.search(line)][:1]
                return bool(found)

            self._cond.wait_for(hit, timeout)
            return found[0] if found else None

    def wait_exit(self, timeout):
        try:
            rc = self.proc.wait(timeout)
            _untrack(self.proc.pid)
            for t in self._threads:
                t.join(2)
            return rc
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and waits for the exit (SIGKILL after timeout s). The exit status, negative
        for a signal, or None if it had to be killed."""
        if self.running:
            with contextlib.suppress(OSError):
                self.proc.send_signal(sig)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.kill()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        self.proc.wait()
        _untrack(self.proc.pid)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_program(cmd, args, timeout=60, on_line=None, prefix="  | "):
    """Runs a program to completion (bounded), echoing its output. on_line(line) (may be a
    coroutine function) sees each stdout line. Returns (returncode or None on timeout, lines)."""
    proc = await asyncio.create_subprocess_exec(cmd, *args, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _track(proc.pid)
    lines = []

    async def pump_out():
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            out(prefix + line)
            if on_line:
                r = on_line(line)
                if inspect.isawaitable(r):
                    await r

    async def pump_err():
        async for raw in proc.stderr:
            out(prefix + raw.decode("utf-8", "replace").rstrip("\n"), sys.stderr)

    try:
        await asyncio.wait_for(asyncio.gather(pump_out(), pump_err(), proc.wait()), timeout)
        rc = proc.returncode
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        rc = None
        note(f"{cmd} timed out after {timeout} s")
    _untrack(proc.pid)
    return rc, lines


# ---- payloads ---------------------------------------------------------------------------------

_SEQS = [s.encode() for s in ("a", "é", "€", "𝄞", "Z", " ", "Ж", "日")]


def text_payload(size, seed=0):
    """Valid UTF-8 of exactly size bytes mixing 1- to 4-byte sequences (padded with ASCII)."""
    k = seed % len(_SEQS)
    unit = b"".join(_SEQS[k:] + _SEQS[:k])
    body = unit * (size // len(unit))
    return body + b"0123456789abcdefghij"[: size - len(body)]


def binary_payload(size, seed=0):
    """Deterministic pseudo-random bytes (all 256 values)."""
    return random.Random(seed).randbytes(size)


def first_difference(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


# ---- raw RFC 6455 client ----------------------------------------------------------------------


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
    """A frame; length overrides the announced payload length (to announce more than is sent)."""
    payload = bytes(payload)
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    body = bytes(c ^ key[i & 3] for i, c in enumerate(payload)) if len(payload) < 4096 else \
        _mask_fast(payload, key)
    return head + key + body


def _mask_fast(payload, key):
    n = len(payload)
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


def pmd_compress(data, wbits=15, compressor=None):
    """One permessage-deflate message (RFC 7692 7.2.1): raw DEFLATE with a sync flush, the
    trailing 00 00 ff ff removed. Pass a zlib compressobj(..., -wbits) to keep the context
    between messages (context takeover); without one each message starts afresh."""
    import zlib
    c = compressor or zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def pmd_inflate(payload, wbits=15, decompressor=None):
    """Inflates one compressed message (the tail 00 00 ff ff appended, RFC 7692 7.2.2). wbits
    is the window the peer agreed to use: a reference beyond it raises zlib.error."""
    import zlib
    d = decompressor or zlib.decompressobj(-wbits)
    return d.decompress(payload + b"\x00\x00\xff\xff")


def proc_status_kib(pid, field="VmRSS"):
    """A size field of /proc/PID/status (VmRSS, VmHWM, ...) in KiB, or None."""
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    return None


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload

    @property
    def close_code(self):
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return f"Frame(fin={self.fin}, rsv={self.rsv}, opcode={self.opcode:#x}, masked={self.masked}, payload={p!r})"


def _fill_socket(obj, deadline, what):
    """Appends what obj.sock has to obj.buf, waiting until deadline (TimeoutError(what) after
    it); returns False, with obj.eof set, when the peer closed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError(what)
    obj.sock.settimeout(remaining)
    try:
        d = obj.sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        d = b""
    except socket.timeout as e:
        raise TimeoutError(what) from e
    if not d:
        obj.eof = True
        return False
    obj.buf += d
    return True


class Raw:
    """A TCP client speaking RFC 6455 by hand."""

    def __init__(self, sock, buf=b""):
        self.sock = sock
        self.buf = bytearray(buf)
        self.eof = False
        self.headers = {}

    @classmethod
    def connect(cls, port, path="/", headers=None, rcvbuf=None, key=None, timeout=5, extensions=None,
                source=None):
        """Connects and completes the opening handshake (checks 101 and Sec-WebSocket-Accept).
        headers replaces the defaults entirely when given (see handshake_request); extensions,
        when given, is sent as Sec-WebSocket-Extensions. The response's headers are kept in
        .headers ({lowercased name: value}). source: the local address to connect from (another
        127.x.y.z address looks like another client to the server's per-address limits)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source:
            sock.bind((source, 0))
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        key = key or base64.b64encode(os.urandom(16)).decode()
        if extensions is not None and headers is None:
            headers = [*default_headers(port, key), ("Sec-WebSocket-Extensions", extensions)]
        sock.sendall(handshake_request(port, path, key, headers))
        head, rest = recv_head(sock)
        if rest is None:
            raise RuntimeError(f"handshake: connection closed after {head!r}")
        status, hdrs, _ = parse_head(head)
        if status != 101:
            raise RuntimeError(f"handshake: status {status}")
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if hdrs.get("sec-websocket-accept") != accept:
            raise RuntimeError(f"handshake: Sec-WebSocket-Accept {hdrs.get('sec-websocket-accept')!r}")
        r = cls(sock, rest)
        r.headers = hdrs
        return r

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(build_frame(opcode, payload, **kw))

    def _fill(self, deadline):
        return _fill_socket(self, deadline, "waiting for data from the server")

    def _need(self, n, deadline):
        while len(self.buf) < n:
            if self.eof or not self._fill(deadline):
                return False
        return True

    def recv_frame(self, timeout=5):
        """The next frame from the server, or None at EOF (or reset). Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        if not self._need(2, deadline):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            if not self._need(4, deadline):
                return None
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            if not self._need(10, deadline):
                return None
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        masked = bool(b1 & 0x80)
        if masked:
            off += 4
        if not self._need(off + n, deadline):
            return None
        payload = bytes(self.buf[off:off + n])
        if masked:
            payload = _mask_fast(payload, bytes(self.buf[off - 4:off]))
        del self.buf[:off + n]
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload)

    def recv_message(self, timeout=10):
        """The next data frame (server messages come in one frame), skipping pings/pongs."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f is None or f.opcode not in (0x9, 0xA):
                return f

    def wait_eof(self, timeout=5):
        """Reads (and drops) until EOF. Seconds waited, or None if still open after timeout."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            while self._fill(deadline):
                self.buf.clear()
        except TimeoutError:
            return None
        return time.monotonic() - t0

    def expect_close(self, code, name, timeout=5):
        """Expects a close frame with code (skipping other frames), answers it, and expects the
        server to close TCP within 3 s. Returns the close frame or None."""
        deadline = time.monotonic() + timeout
        skipped = []
        f = None
        try:
            while True:
                f = self.recv_frame(max(0.001, deadline - time.monotonic()))
                if f is None or f.opcode == 0x8:
                    break
                skipped.append(f)
        except TimeoutError:
            check(False, name, f"no close frame within {timeout} s (other frames: {skipped[:3]})")
            return None
        if f is None:
            check(False, name, f"TCP closed without a close frame (expected {code}; other frames: {skipped[:3]})")
            return None
        reason = f.payload[2:].decode("utf-8", "replace")
        check(f.close_code == code and not f.masked, name,
              f"expected close {code}, got {f.close_code} {reason!r} (masked={f.masked})")
        note(f"close frame: {f.close_code} {reason!r}")
        with contextlib.suppress(OSError):
            self.send_frame(0x8, f.payload[:2])
        waited = self.wait_eof(3)
        check(waited is not None, f"{name}: server closes TCP after the close handshake")
        return f

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


def default_headers(port, key):
    """The headers of a plain upgrade request (what handshake_request sends by default)."""
    return [("Host", f"127.0.0.1:{port}"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]


def handshake_request(port, path="/", key=None, headers=None):
    if headers is None:
        headers = default_headers(port, key)
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def recv_head(sock):
    """Reads sock up to the blank line that ends an HTTP head: (the head without the blank
    line, the bytes read past it), or (everything read, None) if the peer closed first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(4096)
        if not d:
            return buf, None
        buf += d
    end = buf.index(b"\r\n\r\n")
    return buf[:end], buf[end + 4:]


def parse_head(head):
    """(status, {lowercased name: value}, status line) of a response head (bytes)."""
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    m = re.match(r"^HTTP/1\.[01] (\d{3})", lines[0])
    status = int(m.group(1)) if m else None
    hdrs = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, lines[0]


def http_request(port, data, timeout=5):
    """Sends raw bytes, reads one response. (status, headers, body, status line); status None
    if the connection closed without a response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with contextlib.suppress(OSError):
            s.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            buf += d
        if b"\r\n\r\n" not in buf:
            return None, {}, buf, ""
        end = buf.index(b"\r\n\r\n")
        status, hdrs, line = parse_head(buf[:end])
        body = buf[end + 4:]
        want = int(hdrs.get("content-length", "0") or 0)
        while len(body) < want and time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                break
            body += d
        return status, hdrs, body, line


def good_echo(port, name="a well-behaved client still gets its echo"):
    """A raw client that handshakes, gets one echo, and closes with 1000."""
    try:
        r = Raw.connect(port)
        msg = text_payload(300, 7)
        r.send_frame(0x1, msg)
        f = r.recv_message(5)
        ok = f is not None and f.opcode == 0x1 and f.payload == msg and not f.masked
        check(ok, name, repr(f))
        r.send_frame(0x8, close_payload(1000))
        f = r.recv_frame(5)
        check(f is not None and f.opcode == 0x8 and f.close_code == 1000,
              f"{name}: close 1000 echoed", repr(f))
        r.close()
        return ok
    except Exception as e:  # noqa: BLE001
        return check(False, name, repr(e))


# ---- a raw WebSocket server, and `wsx bench` ---------------------------------------------------


def read_upgrade(s):
    """Server side of an opening handshake on socket s: reads the client's request head and
    returns (the 101 response to send, the bytes read past the head), or None if the client
    went away first. The request is not checked: servers built on it misbehave on purpose."""
    head, rest = recv_head(s)
    if rest is None:
        return None
    _, hdrs, _ = parse_head(b"HTTP/1.1 000 x\r\n" + head.split(b"\r\n", 1)[1])
    key = hdrs.get("sec-websocket-key", "")
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    resp = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode()
    return resp, rest


class Listener:
    """A TCP server on stdlib sockets (127.0.0.1, an ephemeral port) that runs self._serve(s)
    on a thread of its own for each accepted socket s; url is its ws:// URL. close() stops
    accepting; the sockets accepted so far are in _conns."""

    def __init__(self, backlog=128):
        self._lock = threading.Lock()
        self._conns = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        raise NotImplementedError

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RawServer(Listener):
    """A WebSocket server on stdlib sockets (127.0.0.1, an ephemeral port, a thread per
    connection) for tests that need a server to misbehave on purpose. It completes the
    handshake, answers pings and the close handshake, and hands each data frame to
    on_message(n, opcode, payload), n counting data frames over all connections from 1; what
    that returns (bytes, or None for nothing) is sent back unmasked with the same opcode."""

    def __init__(self, on_message):
        self.on_message = on_message
        self.count = 0
        super().__init__(128)
        note(f"raw WebSocket server on 127.0.0.1:{self.port}")

    def _serve(self, s):
        try:
            s.settimeout(30)
            up = read_upgrade(s)
            if up is None:
                return
            resp, rest = up
            s.sendall(resp)
            r = Raw(s, rest)
            while True:
                f = r.recv_frame(30)
                if f is None:
                    return
                if f.opcode == 0x8:
                    s.sendall(build_frame(0x8, f.payload[:2], mask=False))
                    return
                if f.opcode == 0x9:
                    s.sendall(build_frame(0xA, f.payload, mask=False))
                    continue
                if f.opcode not in (0x1, 0x2):
                    continue
                with self._lock:
                    self.count += 1
                    n = self.count
                reply = self.on_message(n, f.opcode, f.payload)
                if reply is not None:
                    s.sendall(build_frame(f.opcode, reply, mask=False))
        except (OSError, TimeoutError):
            pass
        finally:
            with contextlib.suppress(OSError):
                s.close()

    def close(self):
        super().close()
        with self._lock:
            for s in self._conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def run_bench(args, timeout=60):
    """Runs `wsx bench ARGS --json`, bounded by timeout seconds. Returns (exit status, or None
    if it had to be killed; the JSON result, or None; its stderr lines; seconds taken)."""
    argv = [WSX_BIN, "bench", *args, "--json"]
    note(f"run: {' '.join(argv)}")
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    _track(proc.pid)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        rc = None
        note(f"wsx bench killed after {timeout} s")
    _untrack(proc.pid)
    secs = time.monotonic() - t0
    err = stderr.decode("utf-8", "replace").splitlines()
    for line in err:
        out(f"  | {line}", sys.stderr)
    text = stdout.decode("utf-8", "replace").strip()
    result = None
    if text:
        out(f"  | {text}")
        with contextlib.suppress(ValueError):
            result = json.loads(text)
    return rc, result, err, secs
