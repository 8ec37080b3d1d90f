#!/usr/bin/python3
"""Bad input to `wsx echo` over raw TCP (stdlib sockets, hand-built frames). Each case asserts
the exact outcome: the close code of the server's close frame, the HTTP status and headers, or
when the server drops the connection. After every bad client a well-behaved client on the same
server must still get its echo, and one client that stays open through all of it must too."""

import select
import socket
import struct
import time

from wsxlib import (Raw, Server, build_frame, check, close_payload, eq, good_echo,
                    handshake_request, http_request, note, recv_head, run, step)

MAX_MESSAGE = 65536

# (name, frames to send, expected close code). Frames are masked unless said otherwise.
FRAME_CASES = [
    ("unmasked client frame", [build_frame(0x1, b"hello", mask=False)], 1002),
    ("invalid UTF-8 in a text message", [build_frame(0x1, b"abc\xff")], 1007),
    ("invalid UTF-8 in the first fragment fails before the message ends",
     [build_frame(0x1, b"ok \xc3\x28", fin=False)], 1007),
    ("UTF-8 sequence truncated at the end of a text message", [build_frame(0x1, b"abc\xe2\x82")], 1007),
    ("invalid UTF-8 across a fragment boundary",
     [build_frame(0x1, b"x\xe2", fin=False), build_frame(0x0, b"\x28\xa1")], 1007),
    ("overlong UTF-8 encoding", [build_frame(0x1, b"\xc0\xaf")], 1007),
    ("UTF-16 surrogate encoded in UTF-8", [build_frame(0x1, b"\xed\xa0\x80")], 1007),
    ("invalid UTF-8 in a close reason", [build_frame(0x8, close_payload(1000, b"bad \xff\xfe"))], 1007),
    ("message over --max-message (frame announcing 65537 bytes)",
     [build_frame(0x2, b"\x00" * 1000, length=MAX_MESSAGE + 1)], 1009),
    ("fragmented message whose total passes --max-message",
     [build_frame(0x2, b"\x01" * 40000, fin=False),
      build_frame(0x0, b"\x02" * 1000, length=40000)], 1009),
    ("reserved data opcode 0x3", [build_frame(0x3, b"x")], 1002),
    ("reserved control opcode 0xB", [build_frame(0xB, b"x")], 1002),
    ("RSV1 set without an extension", [build_frame(0x1, b"hello", rsv=4)], 1002),
    ("RSV3 set", [build_frame(0x2, b"hello", rsv=1)], 1002),
    ("continuation frame without a start", [build_frame(0x0, b"orphan")], 1002),
    ("new data frame inside a fragmented message",
     [build_frame(0x1, b"first", fin=False), build_frame(0x1, b"second")], 1002),
    ("ping with a 126-byte payload", [build_frame(0x9, b"p" * 126)], 1002),
    ("fragmented ping", [build_frame(0x9, b"p", fin=False)], 1002),
    ("close frame with a 1-byte payload", [build_frame(0x8, b"\x03")], 1002),
    ("close code 1005 on the wire", [build_frame(0x8, close_payload(1005))], 1002),
    ("close code 999", [build_frame(0x8, close_payload(999))], 1002),
    ("close code 1016", [build_frame(0x8, close_payload(1016))], 1002),
    ("close code 5000", [build_frame(0x8, close_payload(5000))], 1002),
    ("64-bit payload length with the top bit set",
     [bytes([0x82, 0xFF]) + (1 << 63).to_bytes(8, "big") + b"mask"], 1002),
]


def frame_case(port, name, frames, code):
    r = Raw.connect(port)
    try:
        for f in frames:
            r.send(f)
        r.expect_close(code, f"{name} -> close {code}")
    finally:
        r.close()


def hdr_req(port, drop=(), extra=(), version="13", path="/"):
    headers = [("Host", f"127.0.0.1:{port}"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", version)]
    headers = [h for h in headers if h[0] not in drop] + list(extra)
    return handshake_request(port, path, headers=headers)


def http_cases(port):
    status, hdrs, body, line = http_request(port, hdr_req(port, drop=("Sec-WebSocket-Key",)))
    eq(status, 400, "handshake without Sec-WebSocket-Key -> HTTP status")
    check(len(body.strip()) > 0, f"400 has a text reason ({body[:80]!r})")
    note(f"400: {line} {body[:100]!r}")

    status, hdrs, body, line = http_request(port, hdr_req(port, drop=("Sec-WebSocket-Key",),
                                                          extra=(("Sec-WebSocket-Key", "c2hvcnQ="),)))
    eq(status, 400, "Sec-WebSocket-Key that is not 16 bytes of base64 -> HTTP status")

    status, hdrs, body, line = http_request(port, hdr_req(port, version="8"))
    eq(status, 426, "Sec-WebSocket-Version: 8 -> HTTP status")
    eq(hdrs.get("sec-websocket-version"), "13", "426 for version 8 names the supported version")

    status, hdrs, body, line = http_request(
        port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    eq(status, 426, "plain GET on the WebSocket path -> HTTP status")
    eq(hdrs.get("sec-websocket-version"), "13", "426 for a plain GET has Sec-WebSocket-Version")

    status, hdrs, body, line = http_request(
        port, b"GET /elsewhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    eq(status, 404, "GET on another path -> HTTP status")

    status, hdrs, body, line = http_request(port, hdr_req(port, extra=(("X-Filler", "a" * 9000),)))
    eq(status, 431, "request head over 8 KiB -> HTTP status")


def edge_cases(port):
    """Unusual but valid input that must work."""
    base = [("Host", f"127.0.0.1:{port}"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]
    firefox = [(k, "keep-alive, Upgrade" if k == "Connection" else v) for k, v in base]
    eq(http_request(port, handshake_request(port, headers=firefox))[0], 101,
       "Connection: keep-alive, Upgrade (as Firefox sends it) -> status")
    lower = [(k.lower(), "WebSocket" if k == "Upgrade" else v) for k, v in base]
    eq(http_request(port, handshake_request(port, headers=lower))[0], 101,
       "lower-case header names, Upgrade: WebSocket -> status")
    eq(http_request(port, handshake_request(port, "/?token=abc", headers=base))[0], 101,
       "a query string on the WebSocket path -> status")
    status, hdrs, _, _ = http_request(port, handshake_request(port, headers=base + [
        ("Sec-WebSocket-Extensions", "x-unknown-extension; some_param=1"),
        ("Sec-WebSocket-Protocol", "chat")]))
    check(status == 101 and "sec-websocket-extensions" not in hdrs and "sec-websocket-protocol" not in hdrs,
          "an unknown extension and a subprotocol are declined (101 without either header)", f"{status} {hdrs}")
    # wsx echo accepts permessage-deflate, without server context takeover (its default).
    status, hdrs, _, _ = http_request(port, handshake_request(port, headers=base + [
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]))
    check(status == 101 and hdrs.get("sec-websocket-extensions") ==
          "permessage-deflate; server_no_context_takeover",
          "permessage-deflate is accepted without server context takeover", f"{status} {hdrs}")

    # The handshake and the first frame in one segment.
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(handshake_request(port, "/", key) + build_frame(0x1, b"pipelined"))
    r = _after_handshake(s)
    f = r.recv_message(5)
    check(f is not None and f.payload == b"pipelined", "a frame in the same segment as the handshake is echoed",
          repr(f))
    r.close()

    # Everything one byte per segment.
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for b in handshake_request(port, "/", key):
        s.send(bytes([b]))
        time.sleep(0.001)
    r = _after_handshake(s)
    text = "héllo € 𝄞".encode()
    for b in build_frame(0x1, text, fin=False) + build_frame(0x9, b"p") + build_frame(0x0, b"!"):
        s.send(bytes([b]))
        time.sleep(0.001)
    f = r.recv_message(5)
    check(f is not None and f.payload == text + b"!",
          "handshake and fragmented frames sent one byte at a time: echoed whole", repr(f))
    r.close()

    r = Raw.connect(port)
    r.send_frame(0x2, b"a" * MAX_MESSAGE)
    f = r.recv_message(5)
    check(f is not None and len(f.payload) == MAX_MESSAGE, "a message of exactly --max-message is echoed",
          repr(f))
    r.send_frame(0x1, b"b" * 30000, fin=False)
    r.send_frame(0x0, b"c" * (MAX_MESSAGE - 30000))
    f = r.recv_message(5)
    check(f is not None and f.opcode == 0x1 and len(f.payload) == MAX_MESSAGE,
          "fragments adding up to exactly --max-message are echoed", repr(f))
    r.send_frame(0x1, b"unfinished", fin=False)
    r.send_frame(0x8, close_payload(1000))
    f = r.recv_frame(5)
    check(f is not None and f.opcode == 0x8 and f.close_code == 1000,
          "a close in the middle of a fragmented message is answered with 1000", repr(f))
    r.close()

    r = Raw.connect(port)
    for i in range(500):
        r.send_frame(0x9, str(i).encode())
    n = 0
    while n < 500:
        f = r.recv_frame(5)
        if f is None or f.opcode != 0xA or f.payload != str(n).encode():
            break
        n += 1
    check(n == 500, f"500 pings in a row get 500 pongs in order ({n})")
    r.close()


def _after_handshake(s):
    head, rest = recv_head(s)
    if rest is None:
        raise RuntimeError(f"closed during the handshake: {head!r}")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake: {head!r}")
    return Raw(s, rest)


def silent_client(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    t0 = time.monotonic()
    try:
        d = s.recv(4096)
    except ConnectionResetError:
        d = b""
    except socket.timeout:
        d = None
    took = time.monotonic() - t0
    s.close()
    check(d == b"" and 0.3 <= took <= 5,
          f"silent client dropped at the handshake deadline (500 ms): after {took:.2f} s",
          f"recv returned {d!r} after {took:.2f} s")

    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    t0 = time.monotonic()
    try:
        d = b""
        while True:
            x = s.recv(4096)
            if not x:
                break
            d += x
    except ConnectionResetError:
        pass
    except socket.timeout:
        d = None
    took = time.monotonic() - t0
    s.close()
    check(d is not None and 0.3 <= took <= 5,
          f"half a handshake then silence: dropped after {took:.2f} s",
          f"got {d!r} after {took:.2f} s")


def slow_reader(srv):
    """Sends 64000-byte messages as fast as possible and never reads: the echoes pile up in the
    server's send queue until it passes --hard-limit and the server closes with 1008."""
    port = srv.port
    r = Raw.connect(port, rcvbuf=4096)
    s = r.sock
    s.setblocking(False)
    chunk = build_frame(0x2, b"\x5a" * 64000)
    sent = 0
    off = 0
    ended = None
    line = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, w, _ = select.select([], [s], [], 0.2)
        if w:
            try:
                n = s.send(chunk[off:])
                sent += n
                off = (off + n) % len(chunk)
            except (BrokenPipeError, ConnectionResetError) as e:
                ended = f"send failed: {e.__class__.__name__}"
                break
            except BlockingIOError:
                pass
        if line is None:
            line = srv.wait_stderr(r"hard limit|1008", 0)
        if line is not None and not w:
            break
    note(f"slow reader: sent {sent / 1e6:.1f} MB; server: {line!r}; {ended or 'no send error'}")
    line = line or srv.wait_stderr(r"hard limit|1008", 2)
    check(line is not None and "1008" in line,
          "a client that never reads is closed with 1008 over the hard limit (server log)",
          f"no hard-limit line in the server log after {sent / 1e6:.1f} MB sent (does the server stop "
          f"reading under backpressure instead?)")
    if ended is None:
        # Drain what was already delivered: the connection must end.
        s.setblocking(True)
        r.eof = False
        waited = r.wait_eof(10)
        check(waited is not None, "the slow reader's connection ends", "still open 10 s after")
    else:
        check(True, f"the slow reader's connection ends ({ended})")
    r.close()


def main():
    srv = Server(["--path", "/", "--max-message", str(MAX_MESSAGE), "--handshake-timeout", "500",
                  "--hard-limit", "1048576", "--high-water", "262144"])
    try:
        bystander = Raw.connect(srv.port)
        bystander.send_frame(0x1, b"bystander here")
        f = bystander.recv_message(5)
        check(f is not None and f.payload == b"bystander here", "a bystander client is open and echoing")

        for name, frames, code in FRAME_CASES:
            with step(name):
                frame_case(srv.port, name, frames, code)
                good_echo(srv.port, f"after '{name}': a well-behaved client still gets its echo")

        with step("unusual but valid input"):
            # On a server of its own with the default handshake deadline (10 s): the handshake
            # sent one byte per segment, 1 ms apart, took over the main server's 500 ms on a
            # loaded machine (load 10-15 on 2 cores), which dropped it.
            edge = Server(["--path", "/", "--max-message", str(MAX_MESSAGE), "--hard-limit",
                           "1048576", "--high-water", "262144"])
            try:
                edge_cases(edge.port)
                eq(edge.stop(), 0, "the second server's exit status after SIGTERM")
            finally:
                edge.kill()

        with step("HTTP refusals"):
            http_cases(srv.port)
            good_echo(srv.port, "after the HTTP refusals: a well-behaved client still gets its echo")

        with step("clients that never complete the handshake"):
            silent_client(srv.port)
            good_echo(srv.port, "after silent clients: a well-behaved client still gets its echo")

        with step("a client that sends a lot and never reads"):
            slow_reader(srv)
            good_echo(srv.port, "after the slow reader: a well-behaved client still gets its echo")

        with step("the bystander survived everything"):
            bystander.send_frame(0x2, b"\x00\xffstill here")
            f = bystander.recv_message(5)
            check(f is not None and f.opcode == 0x2 and f.payload == b"\x00\xffstill here",
                  "the bystander client still gets its echo after all the bad clients", repr(f))
            bystander.send_frame(0x8, struct.pack("!H", 1000))
            f = bystander.recv_frame(5)
            check(f is not None and f.close_code == 1000, "the bystander closes normally", repr(f))
            bystander.close()

        rc = srv.stop()
        eq(rc, 0, "server exit status after SIGTERM")
    finally:
        srv.kill()
    note("done")


if __name__ == "__main__":
    run("python_bad_input", main, timeout=90)
