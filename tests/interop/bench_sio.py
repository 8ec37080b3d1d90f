#!/usr/bin/python3
"""`wsx bench --mode sio-echo | sio-broadcast | sio-idle` (issue 12) against the Node.js
Socket.IO server of the benchmark, bench/sio/server.mjs (socket.io 4.8.4 from
tests/socketio/node_modules, installed by the socketio/npm_setup fixture): a clean run of each
mode reports figures and no error; the bench answers Engine.IO pings (a server with a 300 ms
ping interval and a 1 s timeout keeps its sockets through a 2 s run); a changed ack is a `corrupt`
error with exit status 1; a server that never opens an Engine.IO session makes every
connection fail with `connect_timeout` in bounded time; options the sio modes cannot take are
usage errors. A scripted Engine.IO server on raw sockets checks the rest exactly: a ping is
answered with a pong, connect_error is a `handshake` error, an ack with the wrong id an `order`
error, an Engine.IO close a `closed` error. Standard library only; NODE and SIO_NODE_MODULES
come from ctest."""

import contextlib
import os
import re
import subprocess
import sys
import threading

from wsxlib import (WSX_BIN, Raw, RawServer, Server, _reader, _track, build_frame, check, eq,
                    note, out, read_upgrade, run, run_bench, step)

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_MJS = os.path.join(HERE, "..", "..", "bench", "sio", "server.mjs")
NODE = os.environ.get("NODE", "node")


class NodeSio(Server):
    """bench/sio/server.mjs on 127.0.0.1, an ephemeral port; url is the http:// base that
    `wsx bench` takes (as ws://)."""

    def __init__(self, args=(), ready_timeout=20):
        argv = [NODE, SERVER_MJS, "--host", "127.0.0.1", "--port", "0", *args]
        self.argv = argv
        self.stderr = []
        self.port = 0
        self.url = ""
        self.quiet = True
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        _track(self.proc.pid)

        def on_err(line):
            with self._cond:
                self.stderr.append(line)
                self._cond.notify_all()
            out(f"[node] {line}", sys.stderr)

        def on_out(line):
            m = re.match(r"^listening on http://127\.0\.0\.1:(\d+)/$", line)
            with self._cond:
                if m and not self.port:
                    self.port = int(m.group(1))
                    self.url = f"ws://127.0.0.1:{self.port}/"
                    self._cond.notify_all()

        self._threads = [threading.Thread(target=_reader, args=(self.proc.stderr, on_err), daemon=True),
                         threading.Thread(target=_reader, args=(self.proc.stdout, on_out), daemon=True)]
        for t in self._threads:
            t.start()
        with self._cond:
            self._cond.wait_for(lambda: self.port or self.proc.poll() is not None, ready_timeout)
        if not self.port:
            self.kill()
            raise RuntimeError(f"{' '.join(argv)}: no listening line: {' | '.join(self.stderr[-5:])}")
        note(f"started: {' '.join(argv)} -> {self.url}")


class WsxSio(Server):
    """`wsx sio` on 127.0.0.1 (once the build has it)."""

    command = "sio"


def have_wsx_sio():
    p = subprocess.run([WSX_BIN, "sio", "--help"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10)
    return p.returncode == 0


OPEN = (b'0{"sid":"AAAAAAAAAAAAAAAAAAAA","upgrades":[],"pingInterval":25000,'
        b'"pingTimeout":20000,"maxPayload":1000000}')


class EioServer(RawServer):
    """A scripted Engine.IO server (WebSocket transport) on raw sockets: sends the open packet
    after the upgrade, then hands each text frame to on_text(payload) and sends back the
    packets it returns (a list of bytes, in order). Records every text frame in .got."""

    def __init__(self, on_text):
        self.on_text = on_text
        self.got = []
        super().__init__(lambda n, op, payload: None)

    def _serve(self, s):
        try:
            s.settimeout(30)
            up = read_upgrade(s)
            if up is None:
                return
            resp, rest = up
            s.sendall(resp + build_frame(0x1, OPEN, mask=False))
            r = Raw(s, rest)
            while True:
                f = r.recv_frame(30)
                if f is None or f.opcode == 0x8:
                    return
                if f.opcode != 0x1:
                    continue
                with self._lock:
                    self.got.append(f.payload)
                for pkt in self.on_text(f.payload):
                    s.sendall(build_frame(0x1, pkt, mask=False))
        except (OSError, TimeoutError):
            pass
        finally:
            with contextlib.suppress(OSError):
                s.close()


def good(res, name):
    return check(res is not None, f"{name}: one JSON object on stdout")


def clean(rc, res, name):
    eq(rc, 0, f"{name}: exit status")
    if not good(res, name):
        return False
    eq(res["errors"], 0, f"{name}: errors")
    eq(res["connections_failed"], 0, f"{name}: connections failed")
    return True


def main():
    with step("sio-echo, sio-broadcast and sio-idle against socket.io 4.8.4"):
        with NodeSio() as srv:
            pid = str(srv.proc.pid)
            rc, res, _, _ = run_bench(["--mode", "sio-echo", "-c", "10", "-k", "4", "-d", "1",
                                       "-w", "0.3", "-p", pid, srv.url])
            if clean(rc, res, "sio-echo"):
                eq(res["mode"], "sio-echo", "sio-echo: mode")
                eq(res["sio_url"],
                   f"ws://127.0.0.1:{srv.port}/socket.io/?EIO=4&transport=websocket",
                   "sio-echo: the Engine.IO URL")
                eq(res["connections_made"], 10, "sio-echo: connections made")
                check(res["messages"] > 0, "sio-echo: events acked", res["messages"])
                lat = res["latency_us"]
                check(0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"],
                      "sio-echo: latency percentiles in order", lat)
                check(res["server_us_per_msg"] is not None, "sio-echo: server CPU per event")
                eq(res["scenario"], None, "sio-echo: -c 10 -k 4 is no published scenario")

            rc, res, _, _ = run_bench(["--mode", "sio-broadcast", "-c", "50", "-k", "4", "-d", "1",
                                       "-w", "0.3", "-p", pid, srv.url])
            if clean(rc, res, "sio-broadcast"):
                eq(res["mode"], "sio-broadcast", "sio-broadcast: mode")
                eq(res["connections_made"], 51, "sio-broadcast: 50 subscribers and a publisher")
                eq(res["subscribers"], 50, "sio-broadcast: subscribers in the room")
                check(res["broadcasts"] > 0 and res["deliveries"] > 0,
                      "sio-broadcast: broadcasts completed", (res["broadcasts"], res["deliveries"]))
                # Every completed broadcast reached the 50; the window's edges cut a few.
                check(abs(res["deliveries"] - 50 * res["broadcasts"]) <= 50 * 4 * 2,
                      "sio-broadcast: deliveries = 50 x broadcasts (within the in-flight ones)",
                      (res["deliveries"], res["broadcasts"]))
                check(res["server_us_per_msg"] is not None, "sio-broadcast: server CPU per delivery")

            rc, res, _, _ = run_bench(["--mode", "sio-idle", "-c", "100", "-d", "0.3", "-w", "0.5",
                                       "-p", pid, srv.url])
            if clean(rc, res, "sio-idle"):
                eq(res["connections_made"], 100, "sio-idle: connections made")
                check(res["server_bytes_per_conn"] is not None, "sio-idle: server RSS per client")

    # A client that never answers is closed 1.3 s after connecting, within the 2 s run; the
    # timeout leaves room for a loaded machine (200 ms was missed under ASan).
    with step("the same modes against wsx sio, when the build has it"):
        if not have_wsx_sio():
            note("wsx sio is not in this build: step skipped")
        else:
            with WsxSio(["--quiet"], quiet=True) as srv:
                pid = str(srv.proc.pid)
                for mode, args in (("sio-echo", ["-c", "10", "-k", "4"]),
                                   ("sio-broadcast", ["-c", "50", "-k", "4"]),
                                   ("sio-idle", ["-c", "100"])):
                    # --stall 1: a broadcast that reaches nobody is named as a stall.
                    rc, res, _, _ = run_bench(["--mode", mode, *args, "-d", "1.2", "-w", "0.3",
                                               "--stall", "1", "-p", pid, srv.url])
                    if clean(rc, res, f"wsx sio {mode}"):
                        check(res["connections_made"] >= 10, f"wsx sio {mode}: connections",
                              res["connections_made"])
                        if mode != "sio-idle":
                            check(res["messages"] > 0, f"wsx sio {mode}: events answered",
                                  res["messages"])

    with step("Engine.IO pings are answered: 300 ms interval + 1 s timeout, a 2 s run"):
        with NodeSio(["--ping-interval", "300", "--ping-timeout", "1000"]) as srv:
            rc, res, _, _ = run_bench(["--mode", "sio-echo", "-c", "4", "-k", "1", "-d", "2",
                                       "-w", "0.2", srv.url])
            clean(rc, res, "pings")
            rc, res, _, _ = run_bench(["--mode", "sio-idle", "-c", "4", "-d", "1.5", "-w", "0",
                                       srv.url])
            clean(rc, res, "pings, idle")

    with step("broadcasts with the room before the payload, or an offset after it"):
        for form in ("room", "offset"):
            with NodeSio(["--broadcast-form", form]) as srv:
                rc, res, _, _ = run_bench(["--mode", "sio-broadcast", "-c", "5", "-k", "2", "-d",
                                           "0.5", "-w", "0.2", srv.url])
                if clean(rc, res, f"broadcast form {form}"):
                    check(res["deliveries"] > 0, f"broadcast form {form}: deliveries")

    with step("a changed ack is a corrupt error"):
        with NodeSio(["--corrupt-ack", "40"]) as srv:
            rc, res, err, _ = run_bench(["--mode", "sio-echo", "-c", "2", "-k", "2", "-d", "1",
                                         "-w", "0", srv.url])
            eq(rc, 1, "corrupt ack: exit status")
            if good(res, "corrupt ack"):
                eq(res["errors_by_kind"]["corrupt"], 1, "corrupt ack: one corrupt error")
                eq(res["errors"], 1, "corrupt ack: no other error")
                check("differs at byte" in (res["first_error"] or ""),
                      "corrupt ack: the error names the byte", res["first_error"])

    with step("no Engine.IO open packet: connect_timeout for every connection"):
        with Server(["--quiet"], quiet=True) as srv:  # `wsx echo`: a WebSocket, no Engine.IO
            rc, res, _, secs = run_bench(["--mode", "sio-echo", "-c", "3", "--connect-timeout",
                                          "1", "-d", "1", srv.url], timeout=30)
            eq(rc, 1, "no open packet: exit status")
            if good(res, "no open packet"):
                eq(res["connections_made"], 0, "no open packet: connections made")
                eq(res["connections_failed"], 3, "no open packet: connections failed")
                eq(res["errors_by_kind"]["connect_timeout"], 3, "no open packet: connect_timeout")
            check(secs < 10, "no open packet: bounded", f"{secs:.1f} s")

    with step("raw Engine.IO: a ping gets a pong, then the acks come back"):
        def echo_acks(p):
            if p == b"40":  # connected, then a ping at once
                return [b'40{"sid":"BBBBBBBBBBBBBBBBBBBB"}', b"2"]
            m = re.match(rb'^42(\d+)\["message-with-ack",(.*)\]$', p)
            return [b"43" + m.group(1) + b"[" + m.group(2) + b"]"] if m else []
        with EioServer(echo_acks) as srv:
            rc, res, _, _ = run_bench(["--mode", "sio-echo", "-c", "2", "-k", "2", "-d", "0.5",
                                       "-w", "0", srv.url])
            clean(rc, res, "raw acks")
            with srv._lock:
                got = list(srv.got)
            eq(got.count(b"3"), 2, "raw acks: one pong per connection")
            eq(got.count(b"40"), 2, "raw acks: one CONNECT per connection")

    with step("raw Engine.IO: connect_error is a handshake error"):
        with EioServer(lambda p: [b'44{"message":"refused"}'] if p == b"40" else []) as srv:
            rc, res, _, secs = run_bench(["--mode", "sio-echo", "-c", "2", "--connect-timeout",
                                          "5", "-d", "1", srv.url], timeout=30)
            eq(rc, 1, "connect_error: exit status")
            if good(res, "connect_error"):
                eq(res["connections_made"], 0, "connect_error: connections made")
                eq(res["connections_failed"], 2, "connect_error: connections failed")
                eq(res["errors_by_kind"]["handshake"], 2, "connect_error: handshake errors")
                check("connect_error" in (res["first_error"] or ""),
                      "connect_error: named", res["first_error"])
            check(secs < 4, "connect_error: at once, not at the connect timeout", f"{secs:.1f} s")

    with step("raw Engine.IO: an ack with the wrong id is an order error"):
        def wrong_id(p):
            if p == b"40":
                return [b'40{"sid":"BBBBBBBBBBBBBBBBBBBB"}']
            m = re.match(rb'^42(\d+)\["message-with-ack",(.*)\]$', p)
            return [b"43" + str(int(m.group(1)) + 1).encode() + b"[" + m.group(2) + b"]"] if m else []
        with EioServer(wrong_id) as srv:
            rc, res, _, _ = run_bench(["--mode", "sio-echo", "-c", "1", "-k", "1", "-d", "0.5",
                                       "-w", "0", srv.url])
            eq(rc, 1, "wrong ack id: exit status")
            if good(res, "wrong ack id"):
                eq(res["errors_by_kind"]["order"], 1, "wrong ack id: order error")

    with step("raw Engine.IO: a close packet is a closed error"):
        with EioServer(lambda p: [b'40{"sid":"BBBBBBBBBBBBBBBBBBBB"}', b"1"] if p == b"40" else []) as srv:
            rc, res, _, _ = run_bench(["--mode", "sio-echo", "-c", "1", "-d", "0.5", "-w", "0",
                                       srv.url])
            eq(rc, 1, "close packet: exit status")
            if good(res, "close packet"):
                eq(res["errors_by_kind"]["closed"], 1, "close packet: closed error")

    with step("usage errors"):
        for args, why in ((["--mode", "sio-echo", "-b"], "-b"),
                          (["--mode", "sio-echo", "--payload", "json", "-s", "100"], "--payload"),
                          (["--mode", "sio-nope"], "unknown mode")):
            rc, res, err, _ = run_bench([*args, "ws://127.0.0.1:9/"], timeout=10)
            eq(rc, 2, f"{why}: exit status")
            check(res is None, f"{why}: no result")
    note("done")


if __name__ == "__main__":
    run("bench_sio", main, timeout=150)
