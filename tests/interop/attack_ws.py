#!/usr/bin/python3
"""Hostile WebSocket clients against `wsx echo` and `wsx serve` over raw sockets, each with the
exact outcome, the server's memory (VmHWM from /proc) and an honest client that keeps getting
its answers in the same server meanwhile (docs/limits.md, "WebSocket connections"):

  - pings flooded by clients that never read (SO_RCVBUF 4 KiB), one after another for 5 s:
    each is dropped with 1008 after 64 pings answered by the pong already queued; the server
    grows by less than 80 MiB;
  - 100 000 empty continuation frames in one message: close 1009 "message has too many
    fragments" after 16 384 frames;
  - slow readers whose queues, each far below the 64 MiB hard limit, together pass
    --max-queued-bytes 32M: the largest queue is dropped with 1008 when the budget is crossed,
    the others keep every byte; with two threads (two loops, one process total) too.
"""

import contextlib
import json
import os
import re
import socket
import threading
import time

from wsxlib import Raw, Server, build_frame, check, eq, note, proc_status_kib, run, step
from wsxserve import Serve

MIB = 1 << 20

# Under AddressSanitizer freed memory waits in a quarantine (256 MiB by default) and counts in
# VmHWM: keep it small so the memory bounds measure the server, not the sanitizer. No effect on
# other builds.
os.environ["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                    "quarantine_size_mb=4"]))


class Honest(threading.Thread):
    """A client that reads: a round trip every 50 ms until stop() (an echo, or with chat=True a
    chat message to its own room). Counts the answers, the failures and the slowest one."""

    def __init__(self, port, chat=False):
        super().__init__(daemon=True)
        self.port, self.chat = port, chat
        self.ok = 0
        self.failed = []
        self.worst = 0.0
        self._done = threading.Event()
        self.start()

    def _reply(self, r, want):
        deadline = time.monotonic() + 5
        while True:
            f = r.recv_message(max(0.001, deadline - time.monotonic()))
            if f is None:
                raise RuntimeError("connection closed")
            if not self.chat:
                return f.payload == want
            m = json.loads(f.payload)
            if m.get("type") == "message" and m.get("text") == want.decode():
                return True
            if m.get("type") == "error":
                raise RuntimeError(f"chat error {m}")

    def run(self):
        try:
            r = Raw.connect(self.port, "/ws" if self.chat else "/")
            if self.chat:
                r.recv_message(5)  # welcome
                r.send_frame(0x1, json.dumps({"type": "join", "room": "honest", "name": "h"}).encode())
                while json.loads(r.recv_message(5).payload).get("type") != "joined":
                    pass
            i = 0
            while not self._done.is_set():
                i += 1
                text = f"round trip {i}".encode()
                data = json.dumps({"type": "message", "text": text.decode()}).encode() if self.chat else text
                t0 = time.monotonic()
                r.send_frame(0x1, data)
                if self._reply(r, text):
                    self.ok += 1
                    self.worst = max(self.worst, time.monotonic() - t0)
                else:
                    self.failed.append(i)
                self._done.wait(0.05)
            r.close()
        except Exception as e:  # noqa: BLE001
            self.failed.append(repr(e))

    def stop(self, name):
        self._done.set()
        self.join(10)
        check(self.ok >= 5 and not self.failed, f"{name}: an honest client kept getting its answers",
              f"{self.ok} answers, failures {self.failed[:3]}")
        note(f"{name}: honest client: {self.ok} round trips, slowest {self.worst * 1000:.0f} ms")


def hwm_growth_mib(srv, base_kib):
    hwm = proc_status_kib(srv.proc.pid, "VmHWM")
    return (hwm - base_kib) / 1024


def ping_flood(srv, path, name):
    """Attackers one after another for 5 s: each floods 125-byte pings and never reads."""
    base = proc_status_kib(srv.proc.pid, "VmRSS")
    honest = Honest(srv.port, chat=path == "/ws")
    blob = b"".join(build_frame(0x9, b"p" * 125) for _ in range(1000))
    end = time.monotonic() + 5
    attackers = reset = 0
    sent = 0
    while time.monotonic() < end:
        r = Raw.connect(srv.port, path, rcvbuf=4096)
        r.sock.settimeout(3)
        attackers += 1
        try:
            while time.monotonic() < end:
                r.sock.sendall(blob)
                sent += len(blob)
        except (ConnectionResetError, BrokenPipeError):
            reset += 1
        except socket.timeout:
            pass
        r.close()
    honest.stop(name)
    growth = hwm_growth_mib(srv, base)
    note(f"{name}: {attackers} attackers sent {sent / MIB:.0f} MiB of pings; server grew by "
         f"{growth:.1f} MiB (VmHWM - VmRSS before)")
    check(growth < 80, f"{name}: server growth under 80 MiB", f"{growth:.1f} MiB")
    check(attackers >= 2 and reset >= attackers - 1,
          f"{name}: every attacker was dropped while it flooded", f"{reset} of {attackers}")
    line = srv.wait_stderr(r"pings while our pong is queued and the peer does not read: closing \(1008\)", 5)
    check(line is not None, f"{name}: the server says why it dropped them (1008)")


def empty_continuations(srv, path, name):
    base = proc_status_kib(srv.proc.pid, "VmRSS")
    honest = Honest(srv.port, chat=path == "/ws")
    blob = build_frame(0x1, b"a", fin=False) + build_frame(0x0, b"", fin=False) * 100000
    # Five attackers one after another, and at least a second of it, for the honest client.
    end = time.monotonic() + 1
    for i in range(5):
        r = Raw.connect(srv.port, path)
        with contextlib.suppress(OSError):
            r.sock.sendall(blob)
        f = r.expect_close(1009, f"{name}: 100 000 empty continuation frames -> close 1009 ({i + 1})")
        if f is not None:
            eq(f.payload[2:], b"message has too many fragments", f"{name}: close reason")
        r.close()
    time.sleep(max(0, end - time.monotonic()))
    honest.stop(name)
    note(f"{name}: server grew by {hwm_growth_mib(srv, base):.1f} MiB")


def send_echo_load(port, nbytes, results, key):
    """A slow reader: sends nbytes in 1 MiB binary messages and reads nothing until told."""
    r = Raw.connect(port, "/", rcvbuf=4096)
    frame = build_frame(0x2, b"\x5a" * MIB)
    sent = 0
    try:
        while sent < nbytes:
            r.sock.sendall(frame)
            sent += MIB
        results[key] = (r, "sent")
    except (ConnectionResetError, BrokenPipeError):
        results[key] = (r, "reset")


def read_back(r, want, timeout=20):
    """Reads until want bytes (the echoes with their 10-byte headers) came, EOF or reset."""
    got = len(r.buf)
    r.sock.settimeout(timeout)
    try:
        while got < want:
            d = r.sock.recv(1 << 20)
            if not d:
                break
            got += len(d)
    except (ConnectionResetError, socket.timeout):
        pass
    return got


# Three small readers (2 MiB each), then three large ones one after another. The kernel's
# socket buffers take up to ~4 MiB of each, so the small queues hold 0-1 MiB each, and A
# holds 18-22 MiB when B starts. B crosses the budget with 8-14 MiB queued: A is then the
# largest and goes. B ends with 20-24 MiB; C crosses with 6-12 MiB, so B goes; C ends with
# 22-26 MiB and the total stays under 32 MiB (with one loop; over two, which goes depends on
# how the kernel spreads the readers).
BUDGET_PLAN = [("small1", 2), ("small2", 2), ("small3", 2), ("A", 22), ("B", 24), ("C", 26)]


def budget_load(srv, name):
    """Starts the readers of BUDGET_PLAN that never read, half a second apart, with an honest
    client beside them; returns (their results by key, the server's VmHWM growth in MiB)."""
    base = proc_status_kib(srv.proc.pid, "VmRSS")
    honest = Honest(srv.port)
    results = {}
    for key, mib in BUDGET_PLAN:
        send_echo_load(srv.port, mib * MIB, results, key)
        time.sleep(0.5)
    honest.stop(name)
    return results, hwm_growth_mib(srv, base)


def budget(srv):
    name = "echo --max-queued-bytes 32M"
    results, growth = budget_load(srv, name)
    note(f"{name}: server grew by {growth:.1f} MiB (VmHWM); budget 32 MiB, "
         f"{sum(m for _, m in BUDGET_PLAN)} MiB sent by readers that did not read")
    check(growth < 64, f"{name}: server growth under 64 MiB (32 MiB budget + slack)", f"{growth:.1f} MiB")
    drops = [line for line in srv.stderr if "process send budget exceeded" in line]
    logs = [line for line in srv.stderr if "over its budget of" in line]
    for line in logs:
        note(f"server: {line}")
    eq(len(drops), 2, f"{name}: connections closed with 1008 'process send budget exceeded'")
    for key, mib in BUDGET_PLAN:
        r, how = results[key]
        want = mib * (MIB + 10)
        got = read_back(r, want)
        if key in ("A", "B"):
            check(got < want, f"{name}: {key} ({mib} MiB, the largest queue when the budget was "
                  f"crossed) was dropped", f"read {got} of {want} bytes ({how})")
        else:
            eq(got, want, f"{name}: {key} ({mib} MiB) kept every byte of its echoes")
        r.close()
    for line in drops:
        m = re.search(r"close 1008", line)
        check(m is not None, f"{name}: on_close code 1008 ({line})")


def budget_threads(srv):
    """The budget across loops: with two threads the kernel spreads the readers over both
    loops, each loop counts its own queues into the one process total, and the loop that
    crosses the budget drops its own largest queue, so which reader goes depends on the
    spread; the bound, the small readers and the honest client must not."""
    name = "echo --threads 2 --max-queued-bytes 32M"
    results, growth = budget_load(srv, name)
    note(f"{name}: server grew by {growth:.1f} MiB (VmHWM)")
    check(growth < 64, f"{name}: server growth under 64 MiB", f"{growth:.1f} MiB")
    drops = [line for line in srv.stderr if "close 1008 process send budget exceeded" in line]
    check(1 <= len(drops) <= 2, f"{name}: one or two readers dropped with 1008 'process send "
          f"budget exceeded'", f"{len(drops)}")
    kept = 0
    for key, mib in BUDGET_PLAN:
        r, _ = results[key]
        want = mib * (MIB + 10)
        got = read_back(r, want)
        if key.startswith("small"):
            eq(got, want, f"{name}: {key} ({mib} MiB) kept every byte of its echoes")
        kept += got == want
        r.close()
    eq(kept, len(BUDGET_PLAN) - len(drops), f"{name}: every reader not dropped kept every byte")


def main():
    with step("wsx echo: ping flood without reading"):
        with Server(["--quiet"], quiet=True) as srv:
            ping_flood(srv, "/", "echo")
    with step("wsx serve: ping flood without reading"):
        with Serve(["--quiet"], quiet=True) as srv:
            ping_flood(srv, "/ws", "serve")
    with step("wsx echo: empty continuation frames"):
        with Server(["--quiet"], quiet=True) as srv:
            empty_continuations(srv, "/", "echo")
    with step("wsx serve: empty continuation frames"):
        with Serve(["--quiet"], quiet=True) as srv:
            empty_continuations(srv, "/ws", "serve")
    with step("wsx echo: slow readers past --max-queued-bytes"):
        with Server(["--max-queued-bytes", "32M"], quiet=True) as srv:
            budget(srv)
    with step("wsx echo --threads 2: slow readers past --max-queued-bytes"):
        with Server(["--threads", "2", "--max-queued-bytes", "32M"], quiet=True) as srv:
            budget_threads(srv)


if __name__ == "__main__":
    run("attack_ws", main, timeout=110)
