#!/usr/bin/env python3
"""`wsx cat` over real sockets: the close code it prints, its exit status, and that no input
line disappears without a word.

Against `wsx echo`: valid lines are echoed and cat exits 0; a line that is not UTF-8 is
refused with its line number, the lines around it are still sent and echoed, and cat exits
1; with --send-binary the same bytes go out as a binary message. Against raw servers: one
that closes with 1007 on the first message while cat's own close (1000) is on its way (the
close frames cross: cat must print 1007, not 1000, and exit 1); one that answers cat's close
without a code (1000 is printed, exit 0); one that closes first, before cat has read its
input (exit 1, the unsent input is named).

The flags (issue 14): host:port/path without a scheme, the 404 and "is this a ws:// server?"
hints, a subprotocol offered and not picked (an error unless --allow-no-subprotocol), -v,
a typed /close 4000 (exit 0), --stdin-message (one message, bounded by --max-message),
--hex and the deprecated --binary, --no-close, --connect-timeout; exact stderr lines.

Run: WSX_BIN=build/wsx /usr/bin/python3 tests/interop/cat_test.py
"""

import contextlib
import os
import re
import socket
import subprocess
import time

from wsxlib import (WSX_BIN, Listener, Raw, Server, build_frame, check, close_payload, eq, note,
                    read_upgrade, run, step)


def wsx_cat(url, stdin, args=(), timeout=10, keep_open=False):
    """Runs wsx cat with stdin bytes. keep_open: the pipe stays open after the bytes (the
    input has not ended). Returns (exit status or None on timeout, stdout lines, stderr lines)."""
    p = subprocess.Popen([WSX_BIN, "cat", *args, url], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rc = None
    try:
        if keep_open:
            p.stdin.write(stdin)
            p.stdin.flush()
            rc = p.wait(timeout)
            out, err = p.stdout.read(), p.stderr.read()
        else:
            out, err = p.communicate(stdin, timeout=timeout)
            rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.stdout.read(), p.stderr.read()
        p.wait()
    finally:
        with contextlib.suppress(OSError, ValueError):
            p.stdin.close()
    outl = out.decode("utf-8", "replace").splitlines()
    errl = err.decode("utf-8", "replace").splitlines()
    for line in errl:
        note(f"cat stderr: {line}")
    return rc, outl, errl


class ClosingServer(Listener):
    """A raw WebSocket server for one connection at a time. mode:
    'close1007'     on the first data frame: close 1007 "bad text", then wait for the
                    client's close and end TCP;
    'answer_empty'  echoes data, answers a close with an empty close frame (no code);
    'close_first'   sends close 1000 right behind the 101, before reading anything;
    'pick_sp'       picks the subprotocol "bar" in its 101 and echoes;
    'late'          echoes data; 0.5 s after the first message sends "late" and closes 1000;
    'silent'        accepts TCP and never answers the handshake."""

    def __init__(self, mode):
        self.mode = mode
        self.received = []
        super().__init__(8)

    def _serve(self, s):
        try:
            s.settimeout(10)
            if self.mode == "silent":
                time.sleep(3)
                return
            up = read_upgrade(s)
            if up is None:
                return
            resp, rest = up
            if self.mode == "close_first":
                resp += build_frame(0x8, close_payload(1000, b"bye"), mask=False)
            if self.mode == "pick_sp":
                resp = resp[:-2] + b"Sec-WebSocket-Protocol: bar\r\n\r\n"
            s.sendall(resp)
            r = Raw(s, rest)
            sent_close = self.mode == "close_first"
            while True:
                f = r.recv_frame(10)
                if f is None:
                    return
                if f.opcode == 0x8:
                    if not sent_close:
                        reply = b"" if self.mode == "answer_empty" else f.payload[:2]
                        s.sendall(build_frame(0x8, reply, mask=False))
                    s.shutdown(socket.SHUT_WR)
                    time.sleep(0.2)
                    return
                if f.opcode in (0x1, 0x2):
                    self.received.append(f.payload)
                    if self.mode == "close1007" and not sent_close:
                        s.sendall(build_frame(0x8, close_payload(1007, b"bad text"), mask=False))
                        sent_close = True
                    elif not sent_close:
                        s.sendall(build_frame(f.opcode, f.payload, mask=False))
                    if self.mode == "late" and not sent_close:
                        time.sleep(0.5)
                        s.sendall(build_frame(0x1, b"late", mask=False) +
                                  build_frame(0x8, close_payload(1000), mask=False))
                        sent_close = True
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                s.close()


def closed_line(errl):
    for line in errl:
        m = re.match(r"^closed: (\d+)", line)
        if m:
            return int(m.group(1))
    return None


def main():
    with Server(["--quiet"], quiet=True) as srv:
        with step("valid lines are echoed; exit 0"):
            rc, outl, errl = wsx_cat(srv.url, b"one\ntwo\nthree\n")
            eq(rc, 0, "exit status")
            eq(outl, ["one", "two", "three"], "echoed lines")
            eq(closed_line(errl), 1000, "closed: 1000")

        with step("a line that is not UTF-8 is refused by number; the others are delivered"):
            rc, outl, errl = wsx_cat(srv.url, b"ok1\n\xff\xfe\nok2\n")
            eq(rc, 1, "exit status")
            eq(outl, ["ok1", "ok2"], "ok1 and ok2 are both echoed (nothing silently dropped)")
            check(any(re.search(r"line 2 is not valid UTF-8", x) for x in errl),
                  "stderr names line 2 as not UTF-8", errl)
            check(any(re.search(r"1 input line\(s\) not sent", x) for x in errl),
                  "stderr sums up the lines not sent", errl)
            eq(closed_line(errl), 1000, "the server (echo) closed normally: closed: 1000")

        with step("--send-binary sends the same bytes as binary messages"):
            rc, outl, errl = wsx_cat(srv.url, b"ok1\n\xff\xfe\nok2\n", ["--send-binary", "-b"])
            eq(rc, 0, "exit status")
            eq(outl, [b"ok1".hex(), "fffe", b"ok2".hex()], "three binary echoes (hex)")

    srv = ClosingServer("close1007")
    try:
        with step("the server closes with 1007 while cat's close crosses it: 1007 is reported"):
            rc, outl, errl = wsx_cat(srv.url, b"a\nb\nc\n")
            eq(rc, 1, "exit status")
            eq(closed_line(errl), 1007, "closed: 1007 (the server's code, not cat's 1000)")
            check(any("closed the connection with 1007: bad text" in x for x in errl),
                  "stderr names the server's code and reason", errl)
            note(f"the server received {srv.received}")
    finally:
        srv.close()

    srv = ClosingServer("answer_empty")
    try:
        with step("a server that answers cat's close without a code: 1000, exit 0"):
            rc, outl, errl = wsx_cat(srv.url, b"x\ny\n")
            eq(rc, 0, "exit status")
            eq(outl, ["x", "y"], "echoes")
            eq(closed_line(errl), 1000, "closed: 1000 (cat's code; the answer carried none)")
    finally:
        srv.close()

    srv = ClosingServer("close_first")
    try:
        with step("the server closes first while input waits unread: exit 1, said on stderr"):
            rc, outl, errl = wsx_cat(srv.url, b"never\nsent\n", keep_open=True)
            eq(rc, 1, "exit status")
            eq(closed_line(errl), 1000, "closed: 1000")
            check(any(re.search(r"not sent", x) for x in errl), "stderr says input was not sent",
                  errl)
            eq(srv.received, [], "the server received no line")
    finally:
        srv.close()


def refused():
    with step("nothing listens: exit 1, the reason, and no word of a server closing"):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        rc, _, errl = wsx_cat(f"ws://127.0.0.1:{port}/", b"x\n")
        eq(rc, 1, "exit status")
        check(any("connection refused" in x for x in errl), "stderr: connection refused", errl)
        check(not any("server closed" in x for x in errl), "no 'server closed' line", errl)


def flags():
    with Server(["--quiet", "--path", "/echo"], quiet=True) as srv:
        base = f"127.0.0.1:{srv.port}"
        with step("host:port/path without a scheme: ws:// assumed"):
            rc, outl, _ = wsx_cat(f"{base}/echo", b"hi\n")
            eq(rc, 0, "exit status")
            eq(outl, ["hi"], "echo")
        with step("404: the hint names the path"):
            rc, _, errl = wsx_cat(f"{base}/nope", b"hi\n")
            eq(rc, 1, "exit status")
            eq(errl, ["wsx cat: handshake failed: server answered 404 Not Found (no WebSocket at "
                      "this path: is the path right? `wsx serve` is at /ws)"], "stderr")
        with step("wss:// against a plain server: is this a ws:// server?"):
            rc, _, errl = wsx_cat(f"wss://{base}/echo", b"hi\n")
            eq(rc, 1, "exit status")
            eq(errl, ["wsx cat: TLS handshake failed: wrong version number (is this a ws:// "
                      "server?)"], "stderr")
        with step("a subprotocol offered and none picked: an error, nothing sent"):
            rc, outl, errl = wsx_cat(f"{base}/echo", b"hi\n", ["-s", "foo"])
            eq(rc, 1, "exit status")
            eq(outl, [], "nothing echoed")
            eq(errl, ["connected",
                      "wsx cat: the server picked none of the subprotocols offered "
                      "(--allow-no-subprotocol accepts that)", "closed: 1002 no subprotocol"],
               "stderr")
        with step("--allow-no-subprotocol; -v prints the subprotocol and the extensions"):
            rc, outl, errl = wsx_cat(f"{base}/echo", b"hi\n",
                                     ["-s", "foo", "--allow-no-subprotocol", "-v", "-z"])
            eq(rc, 0, "exit status")
            eq(outl, ["hi"], "echo")
            eq(errl, ["connected, permessage-deflate", "subprotocol: (none)",
                      "extensions: permessage-deflate", "closed: 1000"], "stderr")
        with step("/close 4000 bye typed: the server echoes 4000, exit 0"):
            rc, _, errl = wsx_cat(f"{base}/echo", b"/close 4000 bye\n")
            eq(rc, 0, "exit status")
            eq(errl, ["connected", "closed: 4000 bye"], "stderr")
        with step("--stdin-message: all of stdin as one text message, newlines kept"):
            rc, outl, _ = wsx_cat(f"{base}/echo", b"a\nb\n\n/close 4000\nc", ["--stdin-message"])
            eq(rc, 0, "exit status")
            eq(outl, ["a", "b", "", "/close 4000", "c"], "one echo holding every line")
        with step("--stdin-message --send-binary --hex: one binary message"):
            data = bytes(range(256)) + b"\n\n"
            rc, outl, _ = wsx_cat(f"{base}/echo", data, ["-m", "--send-binary", "--hex"])
            eq(rc, 0, "exit status")
            eq(outl, [data.hex()], "one binary echo, every byte kept")
        with step("--stdin-message larger than --max-message: refused, not cut"):
            rc, outl, errl = wsx_cat(f"{base}/echo", b"x" * 2000, ["-m", "--max-message", "1k"])
            eq(rc, 1, "exit status")
            eq(outl, [], "nothing sent")
            check("wsx cat: stdin holds more than 1024 bytes (--max-message): not sent" in errl,
                  "stderr says why", errl)
        with step("--binary: still prints hex, with a deprecation note"):
            rc, outl, errl = wsx_cat(f"{base}/echo", b"ab\n", ["--binary", "-B"])
            eq(rc, 0, "exit status")
            eq(outl, ["6162"], "hex")
            eq(errl[0], "wsx cat: note: --binary is deprecated (it prints received binary "
                        "messages as hex): use --hex; to send binary, --send-binary", "note")
        with step("--help names --hex, --send-binary, --stdin-message, --no-close"):
            r = subprocess.run([WSX_BIN, "cat", "--help"], capture_output=True, text=True)
            for f in ("--hex", "--send-binary", "--stdin-message", "--no-close",
                      "--connect-timeout", "--allow-no-subprotocol", "--verbose"):
                check(f in r.stdout, f"--help lists {f}")
        with step("--sned-binary: did you mean"):
            rc, _, errl = wsx_cat(f"{base}/echo", b"", ["--sned-binary"])
            eq(rc, 2, "exit status")
            eq(errl[0], "wsx cat: unknown option '--sned-binary' (did you mean --send-binary?)",
               "stderr")

    srv = ClosingServer("pick_sp")
    try:
        with step("-v: the subprotocol the server picked"):
            rc, outl, errl = wsx_cat(srv.url, b"x\n", ["-v", "-s", "foo", "-s", "bar"])
            eq(rc, 0, "exit status")
            eq(errl[:3], ["connected, subprotocol bar", "subprotocol: bar", "extensions: (none)"],
               "stderr")
    finally:
        srv.close()

    srv = ClosingServer("late")
    try:
        with step("--no-close: the end of stdin keeps the connection; a later message arrives"):
            rc, outl, errl = wsx_cat(srv.url, b"x\n", ["--no-close"])
            eq(rc, 0, "exit status")
            eq(outl, ["x", "late"], "the echo and the late message")
            eq(closed_line(errl), 1000, "the server's close")
    finally:
        srv.close()

    srv = ClosingServer("silent")
    try:
        with step("--connect-timeout 300 against a server that never answers"):
            t0 = time.monotonic()
            rc, _, errl = wsx_cat(srv.url, b"x\n", ["--connect-timeout", "300"])
            took = time.monotonic() - t0
            eq(rc, 1, "exit status")
            eq(errl, ["wsx cat: handshake failed: no response within 300 ms"], "stderr")
            check(took < 2.5, f"gave up in {took:.2f} s (under 2.5 s)")
    finally:
        srv.close()


def all_tests():
    main()
    refused()
    flags()


if __name__ == "__main__":
    run("cat_test", all_tests, timeout=60)
