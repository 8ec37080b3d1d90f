#!/usr/bin/python3
"""Engine.IO v4 over raw HTTP and raw WebSocket against `wsx sio`'s /engine.io/ echo (issue 12,
docs/socketio.md): every row of "HTTP errors" with its exact body, the open packet, POST and
GET, 413 above maxPayload, two concurrent GETs, a session that never pongs (closed after
pingInterval + pingTimeout), a binary POST, a parse error, the upgrade (2probe, 3probe, the
held GET released with 6, 5, the queue flushed on the WebSocket, polling refused after it, a
second WebSocket closed), the upgrade timeout, CORS, max sessions and sessions per address
(503), the bound of all queues together, and the bound of a
session's outgoing queue pushed against (a client that never GETs while the server sends:
closed at the bound, server memory bounded), and SIGTERM (held GETs answered 1)."""

import json
import re
import signal
import socket
import threading
import time

from wsxlib import Raw, Server, check, eq, http_request, note, parse_head, proc_status_kib, run, step

PATH = "/engine.io/"


class Sio(Server):
    command = "sio"
    ws_path = PATH


def req(port, method, query, body=b"", headers=(), source=None):
    """One request on its own connection (from the address source, default 127.0.0.1):
    (status, {lowercased header: value}, body)."""
    lines = [f"{method} {PATH}?{query} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    if source is None:
        status, hdrs, rbody, _ = http_request(port, data, timeout=10)
        return status, hdrs, rbody
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        head, _, rbody = buf.partition(b"\r\n\r\n")
        status, hdrs, _ = parse_head(head)
        while len(rbody) < int(hdrs.get("content-length", "0") or 0):
            d = s.recv(65536)
            if not d:
                break
            rbody += d
        return status, hdrs, rbody


class Held:
    """A request sent now and read later (a GET the server may hold)."""

    def __init__(self, port, query, headers=()):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = [f"GET {PATH}?{query} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{k}: {v}" for k, v in headers]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.t0 = time.monotonic()

    def pending(self, wait=0.15):
        """True when no answer came within wait seconds."""
        self.sock.settimeout(wait)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
            return False
        except socket.timeout:
            return True

    def result(self, timeout=10):
        """(status, headers, body, seconds since sent)."""
        self.sock.settimeout(timeout)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = self.sock.recv(65536)
            if not d:
                return None, {}, buf, time.monotonic() - self.t0
            buf += d
        head, body = buf.split(b"\r\n\r\n", 1)
        status, hdrs, _ = parse_head(head)
        want = int(hdrs.get("content-length", "0") or 0)
        while len(body) < want:
            d = self.sock.recv(65536)
            if not d:
                break
            body += d
        self.sock.close()
        return status, hdrs, body, time.monotonic() - self.t0


def error_body(code):
    msgs = {0: "Transport unknown", 1: "Session ID unknown", 2: "Bad handshake method",
            3: "Bad request", 5: "Unsupported protocol version"}
    return json.dumps({"code": code, "message": msgs[code]}, separators=(",", ":")).encode()


def handshake(port, headers=()):
    st, h, body = req(port, "GET", "EIO=4&transport=polling", headers=headers)
    if st != 200 or not body.startswith(b"0{"):
        raise RuntimeError(f"handshake: {st} {body!r}")
    return json.loads(body[1:])["sid"], h, body


def q(sid):
    return f"EIO=4&transport=polling&sid={sid}"


def expect_gone(port, sid, name):
    st, h, body = req(port, "GET", q(sid))
    eq(st, 400, f"{name}: a later GET is refused")
    eq(body, error_body(1), f"{name}: ... with Session ID unknown")


def errors(port):
    rows = [
        ("GET", "EIO=4&transport=polling&sid=nope", 1),
        ("GET", "EIO=4&transport=carrier-pigeon", 0),
        ("GET", "EIO=4", 0),
        ("GET", "transport=polling", 5),
        ("GET", "EIO=3&transport=polling", 5),
        ("POST", "EIO=4&transport=polling", 2),
        ("GET", "EIO=4&transport=websocket", 3),
    ]
    for method, query, code in rows:
        st, h, body = req(port, method, query, b"40" if method == "POST" else b"")
        eq(st, 400, f"{method} ?{query}: status")
        eq(body, error_body(code), f"{method} ?{query}: body")
        eq(h.get("content-type"), "application/json", f"{method} ?{query}: Content-Type")
    # A WebSocket upgrade with an unknown sid: refused 400 (the body is the ws layer's own).
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall((f"GET {PATH}?EIO=4&transport=websocket&sid=nope HTTP/1.1\r\nHost: x\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = s.recv(4096)
    s.close()
    eq(parse_head(head.split(b"\r\n\r\n")[0])[0], 400, "WebSocket upgrade with an unknown sid: 400")
    # Another method on a session: 500, as engine.io answers.
    sid, _, _ = handshake(port)
    st, _, _ = req(port, "PUT", q(sid))
    eq(st, 500, "PUT on a session: 500")


def basics(port):
    sid, h, body = handshake(port)
    check(re.fullmatch(rb'0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\["websocket"\],"pingInterval":25000,'
                       rb'"pingTimeout":20000,"maxPayload":100\}', body) is not None,
          "open packet: the reference's fields and order", body)
    eq(h.get("content-type"), "text/plain; charset=UTF-8", "open packet: Content-Type")
    eq(h.get("cache-control"), "no-store", "open packet: cache-control")
    check(not any(k.startswith("access-control-") for k in h), "no CORS header without --cors-origin")
    st, h, body = req(port, "POST", q(sid), b"4hello\x1e4w\xc3\xa9\x1ebAQI=",
                      (("Content-Type", "text/plain;charset=UTF-8"),))
    eq((st, body), (200, b"ok"), "POST: 200 ok")
    eq(h.get("content-type"), "text/html", "POST answer: Content-Type text/html")
    st, h, body = req(port, "GET", q(sid))
    eq(body, b"4hello\x1e4w\xc3\xa9\x1ebAQI=", "GET: the three echoes in one payload (text, UTF-8, binary as b64)")
    # A GET held until a packet comes.
    g = Held(port, q(sid))
    check(g.pending(), "GET with nothing queued is held")
    req(port, "POST", q(sid), b"4later")
    st, _, body, dt = g.result()
    eq((st, body), (200, b"4later"), "held GET answered with the echo")
    # 413 above maxPayload (100): the session is closed.
    st, h, body = req(port, "POST", q(sid), b"4" + b"x" * 100)
    eq(st, 413, "POST of 101 bytes with maxPayload 100: 413")
    eq(body, b"", "413: empty body")
    expect_gone(port, sid, "after 413")
    # Exactly maxPayload is fine.
    sid, _, _ = handshake(port)
    st, _, body = req(port, "POST", q(sid), b"4" + b"y" * 99)
    eq((st, body), (200, b"ok"), "POST of exactly maxPayload bytes: ok")
    eq(req(port, "GET", q(sid))[2], b"4" + b"y" * 99, "... and echoed")
    # A binary (octet-stream) body: refused 400, session closed.
    st, _, body = req(port, "POST", q(sid), b"4x", (("Content-Type", "application/octet-stream"),))
    eq(st, 400, "POST with Content-Type application/octet-stream: 400")
    expect_gone(port, sid, "after an octet-stream POST")
    # A parse error (unknown packet type): ok, then the session is gone.
    sid, _, _ = handshake(port)
    st, _, body = req(port, "POST", q(sid), b"9x")
    eq((st, body), (200, b"ok"), "POST of '9x': answered ok (as the reference)")
    expect_gone(port, sid, "after a parse error")
    # The client closes.
    sid, _, _ = handshake(port)
    g = Held(port, q(sid))
    check(g.pending(), "GET held before the client's close")
    eq(req(port, "POST", q(sid), b"1")[2], b"ok", "POST of '1' (close): ok")
    st, _, body, _ = g.result()
    eq((st, body), (200, b"1"), "the held GET gets 1 when the client closes")
    expect_gone(port, sid, "after the client's close")


def two_gets(port):
    sid, _, _ = handshake(port)
    g1 = Held(port, q(sid))
    check(g1.pending(), "first GET held")
    st, h, body = req(port, "GET", q(sid))
    eq(st, 400, "second concurrent GET: 400")
    eq(body, b"", "second concurrent GET: empty body")
    st, _, body, _ = g1.result()
    eq((st, body), (200, b"1"), "the held GET is answered 1 (close)")
    expect_gone(port, sid, "after two concurrent GETs")


def heartbeat(port):
    # pingInterval 300, pingTimeout 200.
    sid, _, _ = handshake(port)
    g = Held(port, q(sid))
    st, _, body, dt = g.result()
    eq((st, body), (200, b"2"), "the held GET gets a ping")
    check(0.25 <= dt <= 1.0, f"... after about pingInterval (300 ms): {dt * 1000:.0f} ms")
    # No pong: closed pingTimeout after the ping; give it the tick's slack.
    time.sleep(0.2 + 0.25)
    expect_gone(port, sid, "no pong within pingTimeout")
    # A client that pongs stays: three pings answered.
    sid, _, _ = handshake(port)
    t0 = time.monotonic()
    for i in range(3):
        st, _, body, _ = Held(port, q(sid)).result()
        eq(body, b"2", f"ping {i + 1}")
        eq(req(port, "POST", q(sid), b"3")[2], b"ok", f"pong {i + 1}")
    check(time.monotonic() - t0 > 0.8, "three intervals passed")
    eq(req(port, "POST", q(sid), b"4alive")[0], 200, "a session that pongs is still open")
    eq(Held(port, q(sid)).result()[2], b"4alive", "... and echoes")


def ws_connect(port, query):
    return Raw.connect(port, f"{PATH}?{query}")


def upgrade(port):
    sid, _, _ = handshake(port)
    g = Held(port, q(sid))
    check(g.pending(), "GET held before the upgrade")
    ws = ws_connect(port, f"EIO=4&transport=websocket&sid={sid}")
    ws.send_frame(1, b"2probe")
    f = ws.recv_frame()
    eq((f.opcode, f.payload), (1, b"3probe"), "probe answered 3probe")
    st, _, body, dt = g.result()
    eq((st, body), (200, b"6"), "held GET released with a noop (6)")
    # A packet sent while upgrading stays queued until 5, then goes on the WebSocket.
    eq(req(port, "POST", q(sid), b"4during")[2], b"ok", "POST during the upgrade")
    ws.send_frame(1, b"5")
    f = ws.recv_frame()
    eq((f.opcode, f.payload), (1, b"4during"), "after 5: the queued echo comes on the WebSocket")
    ws.send_frame(1, b"4after")
    f = ws.recv_frame()
    eq((f.opcode, f.payload), (1, b"4after"), "text echo on the WebSocket")
    ws.send_frame(2, b"\x00\x01\xff")
    f = ws.recv_frame()
    eq((f.opcode, f.payload), (2, b"\x00\x01\xff"), "binary echo on the WebSocket (a binary frame)")
    st, _, body = req(port, "GET", q(sid))
    eq((st, body), (400, error_body(3)), "polling after the upgrade: 400 Bad request")
    # A second WebSocket for the session is closed.
    ws2 = ws_connect(port, f"EIO=4&transport=websocket&sid={sid}")
    f = ws2.recv_frame()
    eq(f.opcode, 8, "a second WebSocket for the session is closed")
    ws2.close()
    ws.send_frame(1, b"4still")
    eq(ws.recv_frame().payload, b"4still", "the first WebSocket still works")
    ws.close()


def ws_only(port):
    ws = ws_connect(port, "EIO=4&transport=websocket")
    f = ws.recv_frame()
    check(f.opcode == 1 and re.fullmatch(rb'0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\[\],"pingInterval":25000,'
                                         rb'"pingTimeout":20000,"maxPayload":100\}', f.payload) is not None,
          "WebSocket handshake: the open packet as the first text frame, upgrades []", f.payload)
    ws.send_frame(1, b"4hi")
    eq(ws.recv_frame().payload, b"4hi", "WebSocket-only echo")
    ws.send_frame(1, b"4" + b"z" * 200)
    f = ws.recv_frame()
    eq((f.opcode, f.close_code if f.opcode == 8 else None), (8, 1009),
       "a WebSocket message above maxPayload: close 1009")
    ws.close()


def upgrade_timeout(port):
    # --upgrade-timeout 300
    sid, _, _ = handshake(port)
    ws = ws_connect(port, f"EIO=4&transport=websocket&sid={sid}")
    ws.send_frame(1, b"2probe")
    f = ws.recv_frame()
    eq(f.payload, b"3probe", "probe answered")
    t0 = time.monotonic()
    f = ws.recv_frame(timeout=5)
    dt = time.monotonic() - t0
    eq(f.opcode, 8, "no 5 within the upgrade timeout: the WebSocket is closed")
    check(0.2 <= dt <= 2.0, f"... after about 300 ms: {dt * 1000:.0f} ms")
    ws.close()
    eq(req(port, "POST", q(sid), b"4poll")[2], b"ok", "the session stays on polling")
    eq(req(port, "GET", q(sid))[2], b"4poll", "... and echoes there")


def cors(port):
    origin = ("Origin", "http://a.example")
    sid, h, _ = handshake(port, (origin,))
    eq(h.get("access-control-allow-origin"), "http://a.example", "CORS: allowed origin echoed")
    eq(h.get("access-control-allow-credentials"), "true", "CORS: credentials")
    check("origin" in h.get("vary", "").lower(), "CORS: Vary: Origin")
    st, h, _ = req(port, "POST", q(sid), b"4c", (origin,))
    eq(h.get("access-control-allow-origin"), "http://a.example", "CORS on the POST answer")
    _, h, _ = req(port, "GET", "EIO=4&transport=polling", headers=(("Origin", "http://evil.example"),))
    check("access-control-allow-origin" not in h, "CORS: another origin gets no Allow-Origin")
    st, h, body = req(port, "OPTIONS", "EIO=4&transport=polling",
                      headers=(origin, ("Access-Control-Request-Method", "POST"),
                               ("Access-Control-Request-Headers", "content-type")))
    eq(st, 204, "CORS preflight: 204")
    eq(h.get("access-control-allow-origin"), "http://a.example", "preflight: Allow-Origin")
    check("POST" in h.get("access-control-allow-methods", ""), "preflight: POST allowed")
    _, h, _ = req(port, "GET", q("nope"), headers=(origin,))
    eq(h.get("access-control-allow-origin"), "http://a.example", "CORS headers on a 400 too")


def max_sessions(port):
    # --max-sessions 2
    handshake(port)
    handshake(port)
    st, _, _ = req(port, "GET", "EIO=4&transport=polling")
    eq(st, 503, "a third session with --max-sessions 2: 503")


def per_ip(port):
    # --max-sessions-per-ip 3: a client that opens sessions and never uses them takes its
    # own address's share, not the server's.
    sids = [handshake(port)[0] for _ in range(3)]
    st, h, body = req(port, "GET", "EIO=4&transport=polling")
    eq((st, body), (503, b""), "a fourth session from 127.0.0.1 with --max-sessions-per-ip 3: 503")
    eq(h.get("retry-after"), "5", "503: Retry-After: 5")
    try:
        ws = ws_connect(port, "EIO=4&transport=websocket")
        check(False, "a WebSocket session from the same address is refused too", "accepted")
        ws.close()
    except RuntimeError as e:
        check("503" in str(e), "a WebSocket session from the same address: 503", str(e))
    st, _, body = req(port, "GET", "EIO=4&transport=polling", source="127.0.0.2")
    eq(st, 200, "another address (127.0.0.2) still gets a session")
    eq(req(port, "POST", q(sids[0]), b"1")[2], b"ok", "one session closes")
    time.sleep(0.05)
    eq(req(port, "GET", "EIO=4&transport=polling")[0], 200, "... and the address may open one again")


def queue_bound(srv):
    # --queue-limit 1000000 --max-payload 100000: a client POSTs and never GETs.
    port = srv.port
    rss0 = proc_status_kib(srv.proc.pid)
    body = b"4" + b"q" * 99999
    sessions = [handshake(port)[0] for _ in range(8)]
    for k, sid in enumerate(sessions):
        n = 0
        for i in range(30):
            st, _, b = req(port, "POST", q(sid), body)
            if st != 200:
                eq((st, b), (400, error_body(1)), f"session {k}: refused once closed")
                break
            n += 1
        # 100000-byte echoes: the 11th passes 1000000 and closes the session; its POST is
        # still answered ok, the 12th is refused.
        eq(n, 11, f"session {k}: closed at the queue bound (posts answered)")
    rss1 = proc_status_kib(srv.proc.pid)
    note(f"server VmRSS {rss0} KiB -> {rss1} KiB after 8 sessions pushed to a 1 MB bound")
    check(rss1 - rss0 < 40 * 1024, f"server memory bounded: grew {(rss1 - rss0) // 1024} MiB (< 40)")


def transports(port_ws, port_poll):
    # --transports websocket: no polling at all.
    st, _, body = req(port_ws, "GET", "EIO=4&transport=polling")
    eq((st, body), (400, error_body(0)), "--transports websocket: a polling handshake is Transport unknown")
    ws = ws_connect(port_ws, "EIO=4&transport=websocket")
    f = ws.recv_frame()
    check(f.payload.startswith(b'0{"sid":'), "--transports websocket: a WebSocket session opens")
    ws.close()
    # --transports polling: the open packet offers no upgrade, and none is taken.
    sid, _, body = handshake(port_poll)
    check(b'"upgrades":[]' in body, "--transports polling: the open packet offers no upgrade", body)
    try:
        ws = ws_connect(port_poll, f"EIO=4&transport=websocket&sid={sid}")
        check(False, "--transports polling: an upgrade is refused", "accepted")
        ws.close()
    except RuntimeError as e:
        check("400" in str(e), "--transports polling: an upgrade is refused with 400", str(e))


def shutdown(srv):
    port = srv.port
    sid, _, _ = handshake(port)
    g = Held(port, q(sid))
    check(g.pending(), "a GET held before SIGTERM")
    ws = ws_connect(port, "EIO=4&transport=websocket")
    ws.recv_frame()
    srv.proc.send_signal(signal.SIGTERM)
    st, _, body, _ = g.result()
    eq((st, body), (200, b"1"), "SIGTERM: the held GET is answered 1 (server shutting down)")
    f = ws.recv_frame()
    eq(f.opcode, 8, "SIGTERM: the WebSocket session is closed")
    ws.close()
    eq(srv.wait_exit(10), 0, "wsx sio exits 0")


def queue_total(port):
    # --queue-limit 1000000 --max-payload 100000 --max-queued-bytes 3000000: three sessions
    # hold 900 kB each, a fourth pushes the total past 3 MB: the largest queue goes.
    body = b"4" + b"q" * 99999
    sids = [handshake(port)[0] for _ in range(4)]
    for sid in sids[:3]:
        for _ in range(9):
            eq(req(port, "POST", q(sid), body)[0], 200, "POST (a session under its own limit)")
    for i in range(4):
        eq(req(port, "POST", q(sids[3]), body)[0], 200, f"fourth session: POST {i + 1}")
    results = [req(port, "GET", q(sid)) for sid in sids[:3]]
    gone = [r for r in results if r[0] == 400]
    kept = [r for r in results if r[0] == 200]
    eq(len(gone), 1, "past the engine's total, exactly one session (a largest queue) was closed")
    check(all(r[2] == error_body(1) for r in gone), "... and is unknown now")
    check(all(r[2] == b"\x1e".join([body] * 9) for r in kept), "the other two kept their 9 echoes")
    got = req(port, "GET", q(sids[3]))[2]
    check(got == b"\x1e".join([body] * 4), "the sender kept its 4 echoes", f"{len(got)} bytes")


def main():
    with step("errors, basics, two GETs, upgrade, WebSocket only"):
        with Sio(["--max-payload", "100", "--upgrade-timeout", "5000"]) as s:
            with step("HTTP errors"):
                errors(s.port)
            with step("basics"):
                basics(s.port)
            with step("two concurrent GETs"):
                two_gets(s.port)
            with step("upgrade"):
                upgrade(s.port)
            with step("WebSocket only"):
                ws_only(s.port)
    with step("heartbeat"):
        with Sio(["--ping-interval", "300", "--ping-timeout", "200"]) as s:
            heartbeat(s.port)
    with step("upgrade timeout"):
        with Sio(["--upgrade-timeout", "300"]) as s:
            upgrade_timeout(s.port)
    with step("CORS"):
        with Sio(["--cors-origin", "http://a.example", "--cors-credentials"]) as s:
            cors(s.port)
    with step("max sessions"):
        with Sio(["--max-sessions", "2"]) as s:
            max_sessions(s.port)
    with step("sessions per address"):
        with Sio(["--max-sessions-per-ip", "3"]) as s:
            per_ip(s.port)
    with step("transports"):
        with Sio(["--transports", "websocket"]) as a, Sio(["--transports", "polling"]) as b:
            transports(a.port, b.port)
    with step("shutdown"):
        with Sio([]) as s:
            shutdown(s)
    with step("all queues together"):
        with Sio(["--queue-limit", "1000000", "--max-payload", "100000", "--max-queued-bytes", "3000000",
                  "--quiet"]) as s:
            queue_total(s.port)
    with step("queue bound"):
        with Sio(["--queue-limit", "1000000", "--max-payload", "100000", "--quiet"]) as s:
            queue_bound(s)


if __name__ == "__main__":
    run("eio_http", main, timeout=100)
