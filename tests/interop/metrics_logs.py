#!/usr/bin/python3
"""Logs and /metrics of `wsx echo` and `wsx serve` (issue 14).

/metrics of both is parsed whole with Debian's python3-prometheus-client (every sample in a
family with HELP and TYPE), and each counter added for issue 14 moves when its event is
provoked: a close with 4000 (wsx_closes_total{code="4000"}), a slow consumer dropped at
--hard-limit 64k (wsx_slow_consumer_drops_total{reason="hard_limit"}, and a 1008 close), a
silent client dropped by the keepalive (wsx_ping_timeouts_total; the library's lines about
both name the connection as the open and close lines do), chat messages over --rate
(wsx_chat_rate_limited_total), a connection over --max-per-ip (wsx_admission_refused_total),
posts over --post-rate (429), rooms and members after joins (wsx_chat_rooms,
wsx_chat_members). With --json-logs every stderr line is one JSON object; the open and close
lines carry conn, peer, path, code, reason, room (the close line the same conn and peer as
the open line); --access-log writes one line per answered request (peer, method, path,
status, bytes, ms), in JSON and in plain text."""

import asyncio
import json
import os
import re
import socket
import subprocess
import time

from prometheus_client.parser import text_string_to_metric_families

from wsxlib import Raw, Server, astep, check, eq, note, run
from wsxserve import SSE, Chat, Serve, http_req

COMMON = {
    "wsx_connections_open": "gauge", "wsx_http_connections_open": "gauge",
    "wsx_connections_accepted": "counter", "wsx_upgrades": "counter",
    "wsx_messages_received": "counter", "wsx_messages_sent": "counter",
    "wsx_bytes_received": "counter", "wsx_bytes_sent": "counter",
    "wsx_handshake_failures": "counter", "wsx_admission_refused": "counter",
    "wsx_slow_consumer_drops": "counter", "wsx_ping_timeouts": "counter",
    "wsx_closes": "counter", "wsx_topics": "gauge", "wsx_queued_bytes": "gauge",
    "wsx_max_queued_bytes": "gauge", "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge", "process_virtual_memory_bytes": "gauge",
    "process_open_fds": "gauge", "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge", "wsx_build_info": "gauge",
}
SERVE = {
    "wsx_subscribers": "gauge", "wsx_chat_rooms": "gauge", "wsx_chat_members": "gauge",
    "wsx_chat_connections": "gauge", "wsx_sse_listeners": "gauge",
    "wsx_history_bytes": "gauge", "wsx_history_messages": "gauge",
    "wsx_chat_rate_limited": "counter", "wsx_chat_rate_limit_closes": "counter",
    "wsx_chat_rate_addresses": "gauge",
}


def th(fn, *args, **kw):
    return asyncio.to_thread(fn, *args, **kw)


def scrape(port, want, label, headers=()):
    """GET /metrics parsed by prometheus_client: {(sample name, sorted labels): value}. Checks
    the content type, that every family of want is there with its type and help, and (the
    parser is lenient) that each family's samples come with one HELP and one TYPE line."""
    st, h, body = http_req(port, "GET", "/metrics", headers)
    eq(st, 200, f"{label}: /metrics -> 200")
    eq(h.get("content-type"), "text/plain; version=0.0.4", f"{label}: the text format 0.0.4")
    text = body.decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name, typ in want.items():
        f = fams.get(name)
        if not f:
            check(False, f"{label}: family {name} present", sorted(fams))
            continue
        if f.type != typ or not f.documentation:
            check(False, f"{label}: {name} is a {typ} with a help text", (f.type, f.documentation))
    helps = re.findall(r"^# HELP (\S+) ", text, re.M)
    types = re.findall(r"^# TYPE (\S+) ", text, re.M)
    check(len(helps) == len(set(helps)) and helps == types,
          f"{label}: one HELP and one TYPE per family, in the same order", (helps, types))
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            if name not in helps:
                check(False, f"{label}: sample {name} belongs to a family with HELP/TYPE", line)
    vals = {}
    for f in fams.values():
        for s in f.samples:
            vals[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return vals


def val(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0)


def wait_val(port, want_fams, name, pred, timeout=5, **labels):
    """Scrapes until pred(value of name{labels}) holds; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = val(scrape(port, want_fams, "poll"), name, **labels)
        if pred(v) or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def status_from(port, source):
    """GET /healthz from the local address source: the status of the answer (0: none)."""
    with socket.create_connection(("127.0.0.1", port), 5, (source, 0)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            d = s.recv(4096)
            if not d:
                break
            data += d
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    return int(m.group(1)) if m else 0


def json_lines(srv, label):
    """Every stderr line so far parsed as JSON (each must be an object with ts, level, msg)."""
    objs = []
    for line in list(srv.stderr):
        try:
            o = json.loads(line)
        except ValueError:
            check(False, f"{label}: stderr line is JSON", line)
            continue
        if not (isinstance(o, dict) and {"ts", "level", "msg"} <= o.keys()):
            check(False, f"{label}: a JSON line has ts, level, msg", o)
        objs.append(o)
    return objs


def wait_json(srv, pred, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        for line in list(srv.stderr):
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if pred(o):
                return o
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def build_info(m, label):
    infos = [k for k in m if k[0] == "wsx_build_info"]
    eq(len(infos), 1, f"{label}: one wsx_build_info sample")
    if infos:
        labels = dict(infos[0][1])
        eq(m[infos[0]], 1.0, f"{label}: wsx_build_info is 1")
        check(re.fullmatch(r"\d+\.\d+\.\d+", labels.get("version", "")), f"{label}: version label", labels)
        check(labels.get("openssl", "").startswith("OpenSSL"), f"{label}: openssl label", labels)
    check(val(m, "process_resident_memory_bytes") > 1 << 20, f"{label}: RSS above 1 MiB", val(m, "process_resident_memory_bytes"))
    check(val(m, "process_open_fds") >= 3, f"{label}: open fds counted", val(m, "process_open_fds"))
    start = val(m, "process_start_time_seconds")
    check(time.time() - 120 < start <= time.time() + 1, f"{label}: start time is now-ish", start)
    check(val(m, "process_cpu_seconds_total") >= 0, f"{label}: cpu seconds")


def close_pair(srv, conn_pred, code, reason):
    """The open and close lines (JSON) of one connection: close has code and reason."""
    close = wait_json(srv, lambda o: o.get("code") == code and o.get("reason") == reason and conn_pred(o))
    if not close:
        check(False, f"a close line with code {code} reason {reason!r}")
        return None, None
    opn = wait_json(srv, lambda o: o.get("conn") == close["conn"] and " open " in o["msg"])
    return opn, close


# ---- wsx echo ----


def echo_checks():
    args = ["--json-logs", "--access-log", "--hard-limit", "64k", "--ping-interval", "300",
            "--pong-timeout", "300"]
    with Server(args, quiet=True) as srv:
        port = srv.port
        m0 = scrape(port, COMMON, "echo")
        build_info(m0, "echo")
        eq(http_req(port, "GET", "/healthz")[0:3:2], (200, b"ok\n"), "echo: /healthz -> 200 ok")

        # A close with 4000 and its log lines.
        r = Raw.connect(port, "/room/x")
        local = "%s:%d" % r.sock.getsockname()
        r.send_frame(0x8, (4000).to_bytes(2, "big") + b"custom")
        r.expect_close(4000, "echo: close 4000 echoed")
        r.close()
        eq(wait_val(port, COMMON, "wsx_closes_total", lambda v: v >= 1, code="4000"), 1,
           "echo: wsx_closes_total{code=\"4000\"} counts the close")
        opn, close = close_pair(srv, lambda o: o.get("peer") == local, 4000, "custom")
        if close:
            eq((close["peer"], close["path"], close["level"]), (local, "/room/x", "info"),
               "echo: the close line has the peer, the path")
            check(re.fullmatch(r"c\d+", close["conn"]), "echo: conn is c<N>", close["conn"])
            eq(close["msg"], f"{local} {close['conn']} close 4000 custom", "echo: the close text")
            check(opn and opn["peer"] == local and opn["path"] == "/room/x",
                  "echo: the open line has the same conn and peer", opn)

        # A slow consumer: sends, never reads; the echoes pass --hard-limit 64k.
        before = scrape(port, COMMON, "echo")
        slow = Raw.connect(port, "/slow", rcvbuf=4096)
        payload = b"x" * 60000
        sent = 0
        try:
            for _ in range(200):
                slow.send_frame(0x2, payload)
                sent += 1
        except OSError:
            pass
        note(f"slow consumer: {sent} messages of 60000 bytes sent before the drop")
        drops = wait_val(port, COMMON, "wsx_slow_consumer_drops_total", lambda v: v >= 1,
                         reason="hard_limit")
        eq(drops, 1, "echo: wsx_slow_consumer_drops_total{reason=\"hard_limit\"} is 1")
        m = scrape(port, COMMON, "echo")
        eq(val(m, "wsx_closes_total", code="1008") - val(before, "wsx_closes_total", code="1008"), 1,
           "echo: the drop counts as a 1008 close")
        eq(val(m, "wsx_slow_consumer_drops_total", reason="queued_bytes"), 0,
           "echo: no drop for the process budget")
        slow.close()

        # A silent client: pinged after 300 ms, dropped 300 ms later.
        pings = val(m, "wsx_ping_timeouts_total")
        silent = Raw.connect(port, "/silent")
        got = wait_val(port, COMMON, "wsx_ping_timeouts_total", lambda v: v >= pings + 1, timeout=5)
        eq(got - pings, 1, "echo: wsx_ping_timeouts_total counts the silent client")
        line = wait_json(srv, lambda o: o.get("path") == "/silent" and o.get("code") == 1006)
        check(line and line.get("reason") == "ping timeout", "echo: its close line: 1006 ping timeout", line)
        # The library's own line about it names the connection the same way (on_conn_log).
        lib = wait_json(srv, lambda o: "no answer to a ping" in o["msg"])
        check(lib and line and lib.get("conn") == line.get("conn") and lib.get("peer") == line.get("peer")
              and lib["msg"].startswith(f"{line['peer']} {line['conn']} no answer to a ping"),
              "echo: the library's ping-timeout line has the conn and peer of the close line", lib)
        hard = wait_json(srv, lambda o: "over the hard limit" in o["msg"])
        check(hard and hard.get("path") == "/slow" and re.fullmatch(r"c\d+", hard.get("conn", "")),
              "echo: the library's hard-limit line has conn, peer, path", hard)
        silent.close()

        # The access log: each answered request, the upgrades (101) too.
        a = wait_json(srv, lambda o: o.get("path") == "/healthz" and "status" in o)
        check(a is not None, "echo: an access line for /healthz")
        if a:
            eq((a["method"], a["status"], a["bytes"]), ("GET", 200, 3), "echo: its method, status, bytes")
            check(isinstance(a["ms"], (int, float)) and 0 <= a["ms"] < 5000, "echo: its ms", a["ms"])
            check(re.fullmatch(r"127\.0\.0\.1:\d+", a["peer"]), "echo: its peer", a["peer"])
        u = wait_json(srv, lambda o: o.get("path") == "/room/x" and o.get("status") == 101)
        check(u is not None, "echo: an access line for the upgrade (101)")
        st = http_req(port, "GET", "/nothing-here", (("Upgrade", "h2c"),))[0]
        n = wait_json(srv, lambda o: o.get("path") == "/nothing-here" and "status" in o)
        check(n is not None and n["status"] == st, "echo: an access line for a refused request", (st, n))
        json_lines(srv, "echo")
        eq(srv.stop(), 0, "echo: exits 0")

    # Plain text lines.
    with Server(["--access-log"], quiet=True) as srv:
        http_req(srv.port, "HEAD", "/healthz")
        line = srv.wait_stderr(r" HEAD /healthz ", 5)
        check(line and re.search(r" info 127\.0\.0\.1:\d+ HEAD /healthz 200 0 \d+\.\d{3}ms$", line),
              "echo: a plain access line (peer method path status bytes ms)", line)
        r = Raw.connect(srv.port, "/p")
        r.send_frame(0x8, (4001).to_bytes(2, "big") + b"bye\n2026-01-01T00:00:00.000Z warn forged")
        r.expect_close(4001, "echo: close 4001 echoed")
        r.close()
        line = srv.wait_stderr(r" close 4001", 5)
        check(line and re.search(r" info 127\.0\.0\.1:\d+ c\d+ close 4001 bye\\x0a2026-01-01T00:00:00\.000Z warn forged$", line),
              "echo: a plain close line has peer and conn id; the reason's newline is \\x0a", line)
        check(not any(ln.startswith("2026-01-01") for ln in srv.stderr), "echo: no forged line")
    with Server(["--quiet", "--access-log"], quiet=True) as srv:
        http_req(srv.port, "GET", "/healthz")
        check(srv.wait_stderr(r" GET /healthz 200 3 ", 5), "echo: --access-log writes also with --quiet")


# ---- wsx serve ----


async def serve_checks():
    want = {**COMMON, **SERVE}
    args = ["--json-logs", "--access-log", "--rate", "1", "--burst", "1", "--max-per-ip", "3"]
    with Serve(args, quiet=True) as srv:
        port = srv.port
        m = await th(scrape, port, want, "serve")
        build_info(m, "serve")
        eq((val(m, "wsx_chat_rooms"), val(m, "wsx_chat_members")), (0, 0), "serve: no rooms, no members")

        a = await Chat.open(srv.ws_url(), "a")
        b = await Chat.open(srv.ws_url(), "b")
        await a.join("r1", "ann")
        await b.join("r2", "bob")
        await a.quiet(0.1)
        m = await th(scrape, port, want, "serve")
        eq((val(m, "wsx_chat_rooms"), val(m, "wsx_chat_members"), val(m, "wsx_chat_connections")),
           (2, 2, 2), "serve: two rooms, two members, two connections after two joins")

        # --rate 1 --burst 1: of three messages at once, two are refused.
        for i in range(3):
            await a.send({"type": "message", "text": f"m{i}"})
        got = await a.quiet(0.5)
        errs = [g for g in got if g.get("type") == "error" and g.get("code") == "rate_limited"]
        eq(len(errs), 2, "serve: two rate_limited errors")
        m = await th(scrape, port, want, "serve")
        eq(val(m, "wsx_chat_rate_limited_total"), 2, "serve: wsx_chat_rate_limited_total is 2")

        # --max-per-ip 3: a fourth connection from 127.0.0.2 is refused at accept.
        held = [socket.create_connection(("127.0.0.1", port), 5, ("127.0.0.2", 0)) for _ in range(3)]
        await asyncio.sleep(0.1)
        st = await th(status_from, port, "127.0.0.2")
        eq(st, 503, "serve: a fourth connection from 127.0.0.2 -> 503")
        m = await th(scrape, port, want, "serve")
        eq(val(m, "wsx_admission_refused_total", reason="per_ip"), 1,
           "serve: wsx_admission_refused_total{reason=\"per_ip\"} counts it")
        for h in held:
            h.close()

        # A close with 4000 from a member of r1: its close line.
        local = "%s:%d" % a.ws.local_address[:2]
        cid = str(a.welcome.get("id"))
        cid = cid[1:] if cid.startswith("c") else cid  # the welcome's id, as "c<N>" or N
        await a.ws.close(4000, "custom")
        v = await th(wait_val, port, want, "wsx_closes_total", lambda x: x >= 1, 5, code="4000")
        eq(v, 1, "serve: wsx_closes_total{code=\"4000\"}")
        opn, close = await th(close_pair, srv, lambda o: o.get("peer") == local, 4000, "custom")
        if close:
            eq({k: close.get(k) for k in ("conn", "peer", "path", "code", "reason", "room")},
               {"conn": f"c{cid}", "peer": local, "path": "/ws", "code": 4000, "reason": "custom", "room": "r1"},
               "serve: the close line's fields (conn as the welcome's id, its room)")
            eq(close["msg"], f"{local} c{cid} close 4000 custom room r1", "serve: the close text")
            check(opn and opn["peer"] == local and opn["path"] == "/ws", "serve: the open line's fields", opn)
        await b.close()

        # An SSE listener: its open and close lines, and its access line at the end.
        lst = await th(SSE, port, "/sse?room=r9")
        eq(lst.status, 200, "serve: SSE admitted")
        sport = lst.sock.getsockname()[1]
        o = await th(wait_json, srv, lambda o: o.get("path") == "/sse" and " open " in o["msg"])
        check(o and o.get("room") == "r9" and re.fullmatch(r"s\d+", o.get("conn", "")) and
              o.get("peer") == f"127.0.0.1:{sport}", "serve: the SSE open line", o)
        lst.close()
        c = await th(wait_json, srv, lambda o: o.get("path") == "/sse" and " close " in o["msg"])
        check(c and o and c.get("conn") == o.get("conn") and c.get("reason") == "client left"
              and c.get("room") == "r9", "serve: the SSE close line", c)
        acc = await th(wait_json, srv, lambda o: o.get("path") == "/sse" and o.get("status") == 200)
        check(acc and acc.get("method") == "GET" and acc.get("bytes", 0) > 0,
              "serve: the stream's access line at its end (bytes written)", acc)
        acc = await th(wait_json, srv, lambda o: o.get("path") == "/ws" and o.get("status") == 101)
        check(acc is not None, "serve: the upgrades' access lines (101)")
        await asyncio.sleep(0.1)
        json_lines(srv, "serve")
        eq(srv.stop(), 0, "serve: exits 0")

    # --post-rate 1 --post-burst 1: the second post at once gets 429, counted.
    tok = (("Authorization", "Bearer t0k"), ("Content-Type", "application/json"))
    with Serve(["--token", "t0k", "--post-rate", "1", "--post-burst", "1"], quiet=True) as srv:
        body = json.dumps({"name": "bot", "text": "hi"}).encode()
        s1 = (await th(http_req, srv.port, "POST", "/api/rooms/ops/messages", tok, body))[0]
        s2 = (await th(http_req, srv.port, "POST", "/api/rooms/ops/messages", tok, body))[0]
        eq((s1, s2), (201, 429), "serve --post-rate 1 --post-burst 1: 201 then 429")
        m = await th(scrape, srv.port, want, "serve", tok[:1])
        eq(val(m, "wsx_chat_rate_limited_total"), 1, "serve: the refused post is counted")
    for arg, msg in (("--post-burst=0", "bad --post-burst '0' (1 to 1000000)"),
                     ("--post-rate=x", "bad --post-rate 'x' (0 to 1000000)")):
        p = subprocess.run([os.environ["WSX_BIN"], "serve", arg], capture_output=True, text=True, timeout=10)
        eq((p.returncode, p.stderr.splitlines()[:1]), (2, [f"wsx serve: {msg}"]), f"serve {arg}: status 2 and why")


def main_sync():
    echo_checks()


async def main():
    await astep("wsx echo: /metrics, close lines, access log", th(main_sync), 60)
    await astep("wsx serve: /metrics, close lines, SSE, access log, --post-rate", serve_checks(), 60)


if __name__ == "__main__":
    run("metrics_logs", main, timeout=150)
