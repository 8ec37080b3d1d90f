#!/usr/bin/python3
"""permessage-deflate (RFC 7692) over raw TCP against `wsx echo --max-message 1048576`: stdlib
sockets, hand-made handshakes offering the extension, compressed frames made with zlib.

- negotiation: the Sec-WebSocket-Extensions answer to hand-written offers is exactly what
  docs/deflate.md's table says (first acceptable offer, declined ones skipped, parameters in
  the fixed order), and a server window the client asked for is honoured (what the server
  compresses inflates with a decompressor of exactly that window);
- valid compressed messages are echoed (the echo inflated with zlib when it comes compressed):
  sizes, fragments, context takeover from the client, an empty compressed payload, a message
  ending in a final block;
- bad input gets the documented close code: a decompression bomb (100 MiB inflated) 1009,
  quickly and without the server's memory growing; corrupt DEFLATE data 1007; a message cut
  inside a block 1007; compressed text inflating to invalid UTF-8 1007; RSV1 on a
  continuation or control frame, RSV2/RSV3, RSV1 without the extension 1002;
- after every bad client a good client (plain and compressed) still gets its echo.
"""

import os
import time
import zlib

from wsxlib import (Raw, Server, binary_payload, build_frame, check, close_payload, eq,
                    good_echo, note, pmd_compress, pmd_inflate, proc_status_kib, run, step,
                    text_payload)

MAX_MESSAGE = 1 << 20
MiB = 1 << 20
RSV1 = 4  # build_frame's rsv is the 3-bit field: RSV1 is its top bit
ECHO_RESPONSE = "permessage-deflate; server_no_context_takeover"

# (offer, expected Sec-WebSocket-Extensions of the answer, or None for no extension).
NEGOTIATION = [
    ("permessage-deflate", ECHO_RESPONSE),
    ("permessage-deflate; client_max_window_bits", ECHO_RESPONSE),
    ("permessage-deflate; client_max_window_bits=15", ECHO_RESPONSE),
    ("permessage-deflate; client_max_window_bits=9",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"),
    ("permessage-deflate; server_max_window_bits=15",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=15"),
    ("permessage-deflate; client_max_window_bits=10; server_max_window_bits=9; "
     "client_no_context_takeover; server_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
     "server_max_window_bits=9; client_max_window_bits=10"),
    ('permessage-deflate; server_max_window_bits="12"',
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=12"),
    ("PerMessage-Deflate; Server_Max_Window_Bits=11",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=11"),
    # Declined offers, alone and followed by an acceptable one.
    ("permessage-deflate; server_max_window_bits=8", None),
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits",
     ECHO_RESPONSE),
    ("permessage-deflate; server_max_window_bits=08", None),
    ("permessage-deflate; server_max_window_bits=16", None),
    ("permessage-deflate; client_max_window_bits=7", None),
    ("permessage-deflate; server_no_context_takeover=1", None),
    ("permessage-deflate; unknown_param", None),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ("permessage-deflate; x=1, permessage-deflate; client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=10",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
    ("x-webkit-deflate-frame", None),
]


def connect(port, offer="permessage-deflate; client_max_window_bits"):
    return Raw.connect(port, extensions=offer)


def recv_echo(r, wbits=15, timeout=10):
    """The next data message (one frame from wsx), inflated when RSV1 is set:
    (opcode, payload, compressed) or None."""
    f = r.recv_message(timeout)
    if f is None or f.opcode == 0x8:
        note(f"instead of an echo: {f!r}")
        return None
    if f.rsv & RSV1:
        return f.opcode, pmd_inflate(f.payload, wbits), True
    return f.opcode, f.payload, False


def echo_check(r, opcode, data, label, wbits=15, payload=None, rsv=RSV1):
    """Sends data compressed (or payload as given) with RSV1 and checks the echo."""
    r.send_frame(opcode, pmd_compress(data) if payload is None else payload, rsv=rsv)
    got = recv_echo(r, wbits)
    ok = got is not None and got[0] == opcode and got[1] == data
    check(ok, f"{label}: echoed", repr(got and (got[0], len(got[1]), got[2])))
    return got


def deflate_echo(port, name="a compressing client still gets its echo"):
    """A good client with permessage-deflate: one compressed message echoed, close 1000."""
    try:
        r = connect(port)
        msg = text_payload(3000, 5)
        echo_check(r, 0x1, msg, name)
        r.send_frame(0x8, close_payload(1000))
        f = r.recv_frame(5)
        check(f is not None and f.opcode == 0x8 and f.close_code == 1000, f"{name}: close 1000 echoed", repr(f))
        r.close()
    except Exception as e:  # noqa: BLE001
        check(False, name, repr(e))


def after_bad(port):
    good_echo(port)
    deflate_echo(port)


def bad_case(port, name, frames, code, offer="permessage-deflate; client_max_window_bits"):
    r = connect(port, offer) if offer else Raw.connect(port)
    try:
        if offer:
            eq(r.headers.get("sec-websocket-extensions"), ECHO_RESPONSE, f"{name}: extension agreed")
        for f in frames:
            r.send(f)
        r.expect_close(code, f"{name} -> close {code}")
    finally:
        r.close()
    after_bad(port)


def main():
    srv = Server(["--max-message", str(MAX_MESSAGE)])
    port = srv.port
    try:
        with step("negotiation answers (docs/deflate.md)"):
            for offer, want in NEGOTIATION:
                r = connect(port, offer)
                eq(r.headers.get("sec-websocket-extensions"), want, f"offer {offer!r}: answer")
                # The connection works either way (compressed when agreed).
                data = text_payload(2000, 1)
                if want:
                    echo_check(r, 0x1, data, f"offer {offer!r}: compressed message")
                else:
                    r.send_frame(0x1, data)
                    f = r.recv_message(5)
                    check(f is not None and f.payload == data and f.rsv == 0,
                          f"offer {offer!r}: uncompressed echo without RSV1", repr(f))
                r.close()

        with step("the server compresses within the window it agreed to"):
            # Repeats 3000 bytes apart: a larger window would refer back to them, and a
            # decompressor of exactly the agreed window would then fail.
            data = binary_payload(3000, 3) * 30
            for bits in (9, 10, 11, 12, 15):
                r = connect(port, f"permessage-deflate; server_max_window_bits={bits}")
                try:
                    r.send_frame(0x2, pmd_compress(data), rsv=RSV1)
                    f = r.recv_message(5)
                    ok = f is not None and f.opcode == 0x2
                    if ok and f.rsv & RSV1:
                        try:
                            ok = pmd_inflate(f.payload, bits) == data
                        except zlib.error as e:
                            ok = False
                            note(f"window {bits}: {e}")
                    else:
                        ok = ok and f.payload == data
                    check(ok, f"server_max_window_bits={bits}: the echo inflates with a {bits}-bit window",
                          repr(f))
                    if bits >= 12:
                        check(f is not None and f.rsv & RSV1 and len(f.payload) < len(data) // 10,
                              f"server_max_window_bits={bits}: the echo came compressed",
                              f and f"{len(f.payload)} bytes, rsv {f.rsv}")
                finally:
                    r.close()

        with step("valid compressed messages are echoed"):
            r = connect(port)
            eq(r.headers.get("sec-websocket-extensions"), ECHO_RESPONSE, "default offer: answer")
            for size in (0, 1, 125, 1000, 65536, MAX_MESSAGE):
                echo_check(r, 0x1, text_payload(size, size), f"compressed text {size} B")
                echo_check(r, 0x2, binary_payload(size, size), f"compressed binary {size} B")
            big = b"z" * (5 * MiB)
            check(len(pmd_compress(big)) < 10000, "(5 MiB of 'z' compresses to a few KB)")
            # The empty message as 7.2.3.6 makes it (a single 00 byte) and as an empty payload.
            echo_check(r, 0x1, b"", "empty message as the byte 00", payload=b"\x00")
            echo_check(r, 0x2, b"", "empty message as an empty compressed payload", payload=b"")
            # An uncompressed message on the same connection.
            r.send_frame(0x1, b"plain text")
            f = r.recv_message(5)
            check(f is not None and f.payload == b"plain text" and f.rsv == 0,
                  "an uncompressed message on a compressing connection: echoed as is", repr(f))
            # A message ending with a final block (BFINAL, Z_FINISH), then a normal one.
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            fin = c.compress(b"final block " * 50) + c.flush(zlib.Z_FINISH)
            echo_check(r, 0x1, b"final block " * 50, "a message ending in a final block (BFINAL)", payload=fin)
            echo_check(r, 0x1, b"after the final block", "the next message after a final block")
            # Context takeover from the client: the second message refers to the first.
            comp = zlib.compressobj(6, zlib.DEFLATED, -15)
            first = binary_payload(5000, 11)
            echo_check(r, 0x2, first, "context takeover: first message",
                       payload=pmd_compress(first, compressor=comp))
            second = pmd_compress(first, compressor=comp)
            check(len(second) < 100, f"(the same message again compresses to {len(second)} bytes)")
            echo_check(r, 0x2, first, "context takeover: second message refers to the first", payload=second)
            # A compressed fragmented message: RSV1 on the first frame only; the compressed
            # stream is cut at arbitrary points, inside a UTF-8 character's bytes too.
            text = ("fragmenté €uro " * 400).encode()
            z = pmd_compress(text)
            cuts = [0, 1, len(z) // 3, len(z) // 2, len(z)]
            for i in range(4):
                r.send_frame(0x1 if i == 0 else 0x0, z[cuts[i]:cuts[i + 1]], fin=i == 3, rsv=RSV1 if i == 0 else 0)
                if i == 1:
                    r.send_frame(0x9, b"ping between")
            got = recv_echo(r)
            check(got is not None and got[1] == text and got[0] == 0x1,
                  "compressed text in 4 fragments, a ping between: echoed whole",
                  repr(got and (got[0], len(got[1]))))
            # Ending with an empty fragment.
            r.send_frame(0x2, pmd_compress(b"q" * 4000), fin=False, rsv=RSV1)
            r.send_frame(0x0, b"", fin=True)
            got = recv_echo(r)
            check(got is not None and got[1] == b"q" * 4000, "compressed message ending with an empty fragment",
                  repr(got and len(got[1])))
            # The echo of a repetitive message comes compressed.
            r.send_frame(0x1, pmd_compress(b"abc" * 100000), rsv=RSV1)
            f = r.recv_message(5)
            check(f is not None and f.rsv & RSV1 and len(f.payload) < 3000 and
                  pmd_inflate(f.payload) == b"abc" * 100000, "a repetitive echo comes back compressed",
                  repr(f))
            r.send_frame(0x8, close_payload(1000))
            f = r.recv_frame(5)
            check(f is not None and f.opcode == 0x8 and f.close_code == 1000, "close 1000 echoed", repr(f))
            r.close()

        with step("a decompression bomb: 100 MiB inflated from ~100 KB -> 1009, quickly, small RSS"):
            bomb = pmd_compress(b"\x00" * (100 * MiB))
            note(f"bomb: {len(bomb)} bytes of DEFLATE inflating to 100 MiB")
            for opcode, kind in ((0x2, "binary"), (0x1, "text")):
                rss0 = proc_status_kib(srv.proc.pid, "VmRSS")
                hwm0 = proc_status_kib(srv.proc.pid, "VmHWM")
                r = connect(port)
                t0 = time.monotonic()
                r.send_frame(opcode, bomb, rsv=RSV1)
                f = r.expect_close(1009, f"{kind} bomb -> close 1009")
                took = time.monotonic() - t0
                r.close()
                check(f is not None and took < 2, f"{kind} bomb: closed within 2 s ({took:.2f} s)")
                rss1 = proc_status_kib(srv.proc.pid, "VmRSS")
                hwm1 = proc_status_kib(srv.proc.pid, "VmHWM")
                note(f"{kind} bomb: VmRSS {rss0} -> {rss1} KiB, VmHWM {hwm0} -> {hwm1} KiB")
                check(rss1 - rss0 < 20 * 1024, f"{kind} bomb: RSS grew by {rss1 - rss0} KiB (< 20 MiB)")
                check(hwm1 - hwm0 < 20 * 1024, f"{kind} bomb: peak RSS grew by {hwm1 - hwm0} KiB (< 20 MiB)")
            # The same bomb cut into fragments (RSV1 on the first only).
            r = connect(port)
            step_n = len(bomb) // 4 + 1
            for i in range(4):
                part = bomb[i * step_n:(i + 1) * step_n]
                try:
                    r.send_frame(0x2 if i == 0 else 0x0, part, fin=i == 3, rsv=RSV1 if i == 0 else 0)
                except OSError:
                    break  # the server may close before all fragments are written
            r.expect_close(1009, "fragmented bomb -> close 1009")
            r.close()
            after_bad(port)

        # "x" and the first byte of a 3-byte sequence, then a byte that cannot continue it, each
        # fragment flushed from one compressor.
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        split_utf8 = (c.compress(b"x\xe2") + c.flush(zlib.Z_SYNC_FLUSH),
                      pmd_compress(b"\x28\xa1", compressor=c))
        cases = [
            ("corrupt DEFLATE data (ff ff ff ff)", [build_frame(0x2, b"\xff\xff\xff\xff", rsv=RSV1)], 1007),
            ("corrupt DEFLATE data in a text message", [build_frame(0x1, b"\xff" * 64, rsv=RSV1)], 1007),
            ("a message cut inside a stored block",
             [build_frame(0x2, pmd_compress(os.urandom(1000))[:500], rsv=RSV1)], 1007),
            ("compressed text inflating to invalid UTF-8 (ff)",
             [build_frame(0x1, pmd_compress(b"valid, then \xff"), rsv=RSV1)], 1007),
            ("compressed text inflating to a truncated UTF-8 sequence",
             [build_frame(0x1, pmd_compress(b"abc\xe2\x82"), rsv=RSV1)], 1007),
            ("compressed text, invalid UTF-8 across two fragments",
             [build_frame(0x1, split_utf8[0], fin=False, rsv=RSV1), build_frame(0x0, split_utf8[1])], 1007),
            ("RSV1 on a continuation frame",
             [build_frame(0x1, pmd_compress(b"first part"), fin=False, rsv=RSV1),
              build_frame(0x0, pmd_compress(b"second"), rsv=RSV1)], 1002),
            ("RSV1 on a continuation of an uncompressed message",
             [build_frame(0x2, b"plain", fin=False), build_frame(0x0, pmd_compress(b"x"), rsv=RSV1)], 1002),
            ("RSV1 on a ping", [build_frame(0x9, pmd_compress(b"ping"), rsv=RSV1)], 1002),
            ("RSV1 on a close frame", [build_frame(0x8, close_payload(1000), rsv=RSV1)], 1002),
            ("RSV2 with deflate agreed", [build_frame(0x2, b"hello", rsv=2)], 1002),
            ("RSV3 with deflate agreed", [build_frame(0x2, b"hello", rsv=1)], 1002),
            ("compressed message over --max-message (1 MiB + 1 inflated)",
             [build_frame(0x2, pmd_compress(b"\x00" * (MAX_MESSAGE + 1)), rsv=RSV1)], 1009),
        ]
        for name, frames, code in cases:
            with step(name):
                bad_case(port, name, frames, code)

        with step("RSV1 without having negotiated deflate -> 1002"):
            bad_case(port, "RSV1 without an offer", [build_frame(0x1, pmd_compress(b"hello"), rsv=RSV1)],
                     1002, offer=None)
            r = connect(port, "permessage-deflate; server_max_window_bits=8")
            eq(r.headers.get("sec-websocket-extensions"), None, "server_max_window_bits=8: declined")
            r.send_frame(0x1, pmd_compress(b"hello"), rsv=RSV1)
            r.expect_close(1002, "RSV1 after a declined offer -> close 1002")
            r.close()
            after_bad(port)
        check(srv.running, "wsx echo is still running")
    finally:
        srv.kill()

    with step("wsx echo --no-deflate: no extension, RSV1 -> 1002"):
        with Server(["--no-deflate"]) as s2:
            r = connect(s2.port)
            eq(r.headers.get("sec-websocket-extensions"), None, "--no-deflate: no Sec-WebSocket-Extensions")
            r.send_frame(0x1, pmd_compress(b"hello"), rsv=RSV1)
            r.expect_close(1002, "--no-deflate: RSV1 -> close 1002")
            r.close()
            good_echo(s2.port)
    note("done")


if __name__ == "__main__":
    run("deflate_bad", main, timeout=150)
