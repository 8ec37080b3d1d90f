#!/usr/bin/python3
"""History and server-sent events of `wsx serve` attacked over real sockets (issue 10, items 3
and 4), one scenario per run (argument: joins, sse, budget or idle):

joins   16 connections that never read each send 50 `join`s to a room whose history is full
        (100 messages of 2000 4-byte characters): server RSS growth < 200 MiB; each attacker
        gets an `error` with code `slow_down` once its queue is above the high-water mark; an
        honest client joins (and gets the whole history) and posts meanwhile.
sse     8 SSE listeners that never read while 64 MiB of messages are posted to their room:
        growth < 200 MiB; the slow listeners are ended; an honest listener gets every event.
budget  100 rooms x 100 maximal messages with --history-bytes 16M: RSS once the client is
        gone stays within the budget plus slack; the oldest rooms' history is gone, the newest
        room's is kept.
idle    --history-idle 1: the history of a room nobody is in is dropped after a second; a
        room with a member keeps its history.
threads --threads 2: joins and SSE replays on both loops always get the current history
        (each loop's shared copy is rebuilt after a change and released by its own thread).

WSX_ATTACK_BASELINE=1 runs the same attacks without the new options (for figures from a build
before the fix: its checks are expected to fail).
"""

import asyncio
import json
import os
import socket
import sys
import threading
import time

from wsxlib import Raw, build_frame, check, eq, note, proc_status_kib, run
from wsxserve import SSE, Chat, Serve, metrics

BASELINE = os.environ.get("WSX_ATTACK_BASELINE") == "1"
BIG_TEXT = "\U0001F600" * 2000  # 2000 characters of 4 bytes: the largest message allowed
MiB = 1024 * 1024
# One client posts thousands of messages and joins hundreds of rooms here: the chat's rate
# limits (tested in serve_abuse) are lifted, as an attacker with more connections would.
NO_RATE = [] if BASELINE else ["--rate", "0", "--join-rate", "0", "--rate-per-ip", "0", "--join-rate-per-ip", "0"]


def rss(srv):
    return (proc_status_kib(srv.proc.pid, "VmRSS") or 0) * 1024


class Peak:
    """Samples the server's RSS every 20 ms in a thread while the attack runs."""

    def __init__(self, srv):
        self.srv = srv
        self.peak = rss(srv)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss(self.srv))

    def stop(self):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss(self.srv))
        return self.peak


def cpu_s(srv):
    """CPU seconds (user + system) the server has used."""
    with open(f"/proc/{srv.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def th(fn, *args):
    return asyncio.to_thread(fn, *args)


async def join(c, room, name):
    """Joins: (joined, the history's messages). The history comes as its own `history`
    message after `joined` (or inside `joined` from servers before it)."""
    j, _ = await c.join(room, name)
    eq(j.get("type"), "joined", f"{c.label} joins {room}")
    return j, j.get("history", [])


async def fill(c, room, n, text=BIG_TEXT):
    """Posts n messages to the room c is in and reads their echoes."""
    for i in range(0, n, 50):
        k = min(50, n - i)
        for _ in range(k):
            await c.send({"type": "message", "text": text})
        for _ in range(k):
            await c.expect("message", 10)


def raw_messages(r, timeout=1.0):
    """Reads every message an attacker has been sent until it is quiet (or EOF) for timeout s:
    (decoded JSON objects, whether the server closed the connection, its close code)."""
    got, code = [], None
    while True:
        try:
            f = r.recv_frame(timeout)
        except TimeoutError:
            return got, False, None
        if f is None:
            return got, True, code
        if f.opcode == 0x8:
            return got, True, f.close_code
        if f.opcode == 0x1:
            got.append(json.loads(f.payload))


# ---- joins -------------------------------------------------------------------------------------

async def joins():
    srv = Serve(["--quiet", "--ping-interval", "0", *NO_RATE[:2]], quiet=True)  # the owner fills the room fast
    try:
        port = srv.port
        owner = await Chat.open(srv.url, "owner")
        await join(owner, "big", "owner")
        await fill(owner, "big", 100)
        _, hist = await join(owner, "big", "owner")
        eq(len(hist), 100, "the room's history is full (100 messages)")
        hist_bytes = sum(len(json.dumps(m, ensure_ascii=False).encode()) for m in hist)
        note(f"history of the room: {hist_bytes / MiB:.2f} MiB")
        base = rss(srv)
        note(f"server RSS before the attack: {base / MiB:.1f} MiB")

        attackers = []
        for i in range(16):
            r = Raw.connect(port, "/ws", rcvbuf=4096)
            attackers.append(r)
        peak = Peak(srv)
        t0 = time.monotonic()
        frames = [b"".join(build_frame(0x1, json.dumps({"type": "join", "room": "big", "name": f"a{i:02d}"})
                                       .encode()) for _ in range(50)) for i in range(16)]
        note(f"each join is {len(frames[0]) // 50} bytes on the wire")
        for r, data in zip(attackers, frames):
            r.sock.settimeout(5)
            r.send(data)

        # An honest client in the same server meanwhile: joins, gets the whole history, posts.
        honest = await Chat.open(srv.url, "honest")
        t1 = time.monotonic()
        _, h = await join(honest, "big", "honest")
        eq(len(h), 100, "the honest client gets the whole history during the attack")
        await honest.send({"type": "message", "text": "still here"})
        while True:
            m = await honest.recv(10)
            if m.get("type") == "message":
                break
        eq(m.get("text"), "still here", "the honest client's message comes back during the attack")
        note(f"honest join + post + echo: {(time.monotonic() - t1) * 1000:.0f} ms")
        await asyncio.sleep(2.0)
        grown = peak.stop() - base
        note(f"attack: 16 x 50 joins in {time.monotonic() - t0:.1f} s; peak RSS growth "
             f"{grown / MiB:.1f} MiB (RSS now {rss(srv) / MiB:.1f} MiB)")
        check(grown < 200 * MiB, "server RSS growth < 200 MiB under 16 x 50 joins",
              f"{grown / MiB:.1f} MiB")
        check(srv.running, "the server is still running")

        # Each attacker: what it was sent, read now.
        slowed, answered, closed = 0, [], 0
        results = await asyncio.gather(*(th(raw_messages, r, 1.5) for r in attackers))
        for i, (got, eof, code) in enumerate(results):
            types = [m.get("type") for m in got]
            n_slow = sum(1 for m in got if m.get("type") == "error" and m.get("code") == "slow_down")
            answered.append(types.count("joined"))
            slowed += n_slow == 1
            closed += eof
            if i == 0:
                note(f"attacker 0: {types.count('joined')} joined, {types.count('history')} history, "
                     f"{n_slow} slow_down, eof={eof} code={code}")
        note(f"joins answered per attacker: {answered}")
        eq(slowed, 16, "each attacker got exactly one slow_down error")
        check(all(1 <= a < 50 for a in answered), "each attacker's joins were answered only below high water",
              answered)
        for r in attackers:
            r.close()
        await owner.close()
        await honest.close()
    finally:
        srv.kill()


# ---- sse ---------------------------------------------------------------------------------------

def slow_sse(port, room):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /sse?room={room} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


def read_to_eof(s, timeout):
    """Reads until EOF: (bytes read, whether EOF came within timeout s)."""
    n = 0
    deadline = time.monotonic() + timeout
    s.settimeout(1)
    while time.monotonic() < deadline:
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError:
            return n, True
        if not d:
            return n, True
        n += len(d)
    return n, False


async def sse():
    srv = Serve(["--quiet", "--ping-interval", "0", *NO_RATE], quiet=True)
    try:
        port = srv.port
        poster = await Chat.open(srv.url, "poster")
        await join(poster, "feed", "poster")
        slow = [slow_sse(port, "feed") for _ in range(8)]
        good = await th(SSE, port, "/sse?room=feed")
        got_ids = []

        def listen():
            while True:
                try:
                    ev = good.event(10)
                except TimeoutError:
                    return
                if ev is None:
                    return
                got_ids.append(int(ev["id"]))
                if int(ev["id"]) >= n_posts:
                    return
        n_posts = 8000  # 8000 x ~8 KiB: 64 MiB of events, a slow listener's whole hard limit
        await asyncio.sleep(0.3)
        base = rss(srv)
        note(f"server RSS before: {base / MiB:.1f} MiB")
        lt = threading.Thread(target=listen, daemon=True)
        lt.start()
        peak = Peak(srv)
        t0 = time.monotonic()
        await fill(poster, "feed", n_posts)
        lt.join(30)
        grown = peak.stop() - base
        note(f"{n_posts} messages ({n_posts * len(BIG_TEXT.encode()) / MiB:.0f} MiB of text) in "
             f"{time.monotonic() - t0:.1f} s; peak RSS growth {grown / MiB:.1f} MiB")
        check(grown < 200 * MiB, "server RSS growth < 200 MiB with 8 slow SSE listeners",
              f"{grown / MiB:.1f} MiB")
        eq(len(got_ids), n_posts, "the honest SSE listener got every event")
        eq(got_ids == list(range(1, n_posts + 1)), True, "... in order")
        good.close()
        ends = await asyncio.gather(*(th(read_to_eof, s, 10) for s in slow))
        note(f"slow listeners: bytes each got before the end: {[n for n, _ in ends]}")
        check(all(eof for _, eof in ends), "every slow listener was ended (EOF)")
        check(all(n < n_posts * 8000 for n, _ in ends), "... before it got everything")
        for s in slow:
            s.close()
        await poster.close()
    finally:
        srv.kill()


# ---- budget ------------------------------------------------------------------------------------

def post_rooms(port, n_rooms, per_room):
    """One raw client: joins each room in turn and posts per_room maximal messages there,
    reading every echo. Returns the number of echoes."""
    r = Raw.connect(port, "/ws", timeout=20)
    msg = build_frame(0x1, json.dumps({"type": "message", "text": BIG_TEXT}, ensure_ascii=False).encode())
    buf, pos, echoes = bytearray(r.buf), 0, 0

    def frames():
        """Yields (opcode, payload start) of whole frames in buf from pos (server frames are
        unmasked); a lean parser: 10000 echoes of 8 KiB go through it."""
        nonlocal pos
        while len(buf) - pos >= 2:
            n, off = buf[pos + 1] & 0x7F, 2
            if n == 126:
                if len(buf) - pos < 4:
                    return
                n, off = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif n == 127:
                if len(buf) - pos < 10:
                    return
                n, off = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if len(buf) - pos < off + n:
                return
            yield buf[pos] & 0xF, pos + off
            pos += off + n

    r.sock.settimeout(20)
    for k in range(n_rooms):
        r.send(build_frame(0x1, json.dumps({"type": "join", "room": f"r{k}", "name": "filler"}).encode()))
        r.send(msg * per_room)
        got = 0
        while got < per_room:
            d = r.sock.recv(1 << 20)
            if not d:
                raise RuntimeError("the server closed the filler's connection")
            buf += d
            for op, start in frames():
                if op == 0x1 and buf[start:start + 17] == b'{"type":"message"':
                    got += 1
            del buf[:pos]
            pos = 0
        echoes += got
    r.close()
    return echoes


ROOMS = 100


async def budget():
    budget_mib = 16
    args = ["--quiet", "--ping-interval", "0", *NO_RATE] + ([] if BASELINE else ["--history-bytes", f"{budget_mib}M"])
    srv = Serve(args, quiet=True)
    try:
        port = srv.port
        base = rss(srv)
        t0 = time.monotonic()
        peak = Peak(srv)
        # 100 rooms (80 MiB of messages, 5 times the budget and above the bound the RSS is
        # checked against), not 300: under ASan on a loaded machine 300 took over the 90 s.
        n = await th(post_rooms, port, ROOMS, 100)
        grown_peak = peak.stop() - base
        eq(n, ROOMS * 100, f"{ROOMS} rooms x 100 maximal messages posted")
        # The client is gone; the loop gives its caches back when quiet. A loaded machine (load
        # 10-15 on 2 cores, ASan) took longer than the 1 s this waited: wait for the RSS to come
        # under the bound, 10 s at most.
        deadline = time.monotonic() + 10
        await asyncio.sleep(1.0)
        after = rss(srv)
        while after - base >= (budget_mib + 32) * MiB and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            after = rss(srv)
        note(f"{ROOMS} x 100 maximal messages in {time.monotonic() - t0:.1f} s ({cpu_s(srv):.1f} s of server CPU); RSS before {base / MiB:.1f} MiB, "
             f"peak {(base + grown_peak) / MiB:.1f} MiB, after the client left {after / MiB:.1f} MiB")
        check(after - base < (budget_mib + 32) * MiB,
              f"RSS after the client is gone < the budget ({budget_mib} MiB) + 32 MiB over the start",
              f"{(after - base) / MiB:.1f} MiB")
        if not BASELINE:
            m = await th(metrics, port)
            note(f"/metrics: wsx_history_bytes {m.get('wsx_history_bytes')}, "
                 f"wsx_history_messages {m.get('wsx_history_messages')}")
            check(0 < m.get("wsx_history_bytes", 0) <= budget_mib * MiB,
                  "wsx_history_bytes in /metrics is within --history-bytes", m.get("wsx_history_bytes"))
        c = await Chat.open(srv.url, "check")
        _, h0 = await join(c, "r0", "check")
        eq(len(h0), 0, "the oldest room's history was evicted")
        _, h299 = await join(c, f"r{ROOMS - 1}", "check")
        check(len(h299) == 100, "the newest room's history is whole", len(h299))
        kept = 0
        for k in range(ROOMS):
            _, h = await join(c, f"r{k}", "check")
            kept += len(h)
        per = len(json.dumps({"type": "message", "id": 1, "room": "r100", "name": "filler",
                              "text": BIG_TEXT, "ts": 0}, ensure_ascii=False).encode())
        note(f"messages kept over all rooms: {kept} (~{kept * per / MiB:.1f} MiB of JSON)")
        check(kept * per <= budget_mib * MiB, "the history kept fits the budget", kept)
        check(kept * per > budget_mib * MiB // 2, "... and the budget is used", kept)
        await c.close()
    finally:
        srv.kill()


# ---- idle --------------------------------------------------------------------------------------

async def idle():
    args = ["--quiet", "--ping-interval", "0"] + ([] if BASELINE else ["--history-idle", "1"])
    srv = Serve(args, quiet=True)
    try:
        a = await Chat.open(srv.url, "a")
        await join(a, "gone", "a")
        await fill(a, "gone", 5, "bye")
        b = await Chat.open(srv.url, "b")
        await join(b, "kept", "b")
        await fill(b, "kept", 3, "still here")
        await a.close()  # "gone" has nobody left; "kept" keeps b
        await asyncio.sleep(2.5)
        c = await Chat.open(srv.url, "c")
        _, h = await join(c, "gone", "c")
        eq(len(h), 0, "the history of a room idle for longer than --history-idle is dropped")
        _, h = await join(c, "kept", "c")
        eq(len(h), 3, "a room with a member keeps its history")
        await c.close()
        await b.close()
    finally:
        srv.kill()


# ---- threads -------------------------------------------------------------------------------------

async def threads():
    """The shared history with two loops: each loop keeps its own framed copy, rebuilt after
    every change; joins and SSE replays on both loops see exactly the current history."""
    srv = Serve(["--threads", "2", "--history", "5", "--ping-interval", "0"])
    try:
        port = srv.port
        clients = [await Chat.open(srv.url, f"c{i}") for i in range(8)]
        posted = []
        for rnd in range(6):
            for i, c in enumerate(clients):
                await c.send({"type": "join", "room": "shared", "name": f"c{i}"})
                while (await c.recv()).get("type") != "joined":
                    pass  # the others' presence and online events
                h = (await c.expect("history"))["messages"]
                if [m["id"] for m in h] != posted[-5:]:
                    check(False, f"round {rnd}: c{i} gets the current history", ([m["id"] for m in h], posted[-5:]))
            await clients[rnd].send({"type": "message", "text": f"round {rnd}"})
            for c in clients:
                while (await c.recv()).get("type") != "message":
                    pass
            posted.append(rnd + 1)
            for after in (0, rnd):
                lst = await th(SSE, port, "/sse?room=shared", [("Last-Event-ID", str(after))])
                got = [int(e["id"]) for e in await th(lst.quiet, 0.3)]
                lst.close()
                want = [i for i in posted[-5:] if i > after]
                if got != want:
                    check(False, f"round {rnd}: an SSE replay after {after}", (got, want))
        check(True, "joins and SSE replays over two loops saw the current history each time")
        for c in clients:
            await c.close()
        eq(srv.stop(), 0, "exit status after SIGTERM (no leak or error under sanitizers)")
    finally:
        srv.kill()


SCENARIOS = {"joins": joins, "sse": sse, "budget": budget, "idle": idle, "threads": threads}

if __name__ == "__main__":
    # Under AddressSanitizer freed memory waits in a quarantine (256 MiB by default) before it
    # is reused, which would show as growth here: a small one keeps the RSS figures about the
    # server (it changes nothing in other builds).
    os.environ["ASAN_OPTIONS"] = ":".join(x for x in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=8") if x)
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which not in SCENARIOS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(SCENARIOS)}")
    run(f"serve_history_attack {which}", SCENARIOS[which], timeout=90)
