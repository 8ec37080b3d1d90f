#!/usr/bin/python3
"""Hostile HTTP clients against `wsx serve` over real sockets (standard library only).

    attack_http.py pipeline   1 MB of pipelined `GET /app.js` never read: server growth
                              < 64 MiB; then every response arrives, correct and counted
    attack_http.py static     --static with an 8 MiB file: 3.4 KB of pipelined
                              `GET /big.bin` never read: growth < 64 MiB; then the first
                              response is read byte for byte
    attack_http.py files      large files byte for byte (SHA-256) over plain HTTP and TLS,
                              HEAD, a 65 MiB file (above the old 64 MiB cap), fast readers
                              of it, and the pipelined attack over TLS (growth < 64 MiB)

During each attack another client asks for /healthz on a new connection at several moments:
at each one the answer must come within 50 ms. This machine is shared and loaded (other tests,
valgrind), where even an idle server sometimes answers after 100 ms because it was not
scheduled; so a moment whose first answer is slower is tried up to four more times, 20 ms
apart, and counts with its fastest answer, and every first answer must still come within
800 ms (before the fix the loop stalled for 1 to 2 s). Growth is the server's VmHWM (peak RSS) after the attack minus its
VmRSS before (/proc/PID/status)."""

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from wsxlib import check, eq, free_port, note, proc_status_kib, run, step
from wsxserve import Serve

WEB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")
HERE = os.path.dirname(os.path.abspath(__file__))
GROWTH_MAX_MIB = 64
HEALTHZ_MAX_MS = 50
# 800, not 300: under ASan at load 14 on 2 cores one first try waited 438 ms for the server to be
# scheduled (the retries answered within 6 ms); the loop stalls this catches took 1 to 2 s.
HEALTHZ_FIRST_MAX_MS = 800
BIG = 8 << 20


def mib(kib):
    return kib / 1024.0


def connect(port, tls_ctx=None, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls_ctx is not None:
        s = tls_ctx.wrap_socket(s, server_hostname="127.0.0.1")
    return s


def healthz_once(port, tls_ctx=None):
    """One GET /healthz on a new connection: (status line, milliseconds from connect to the
    whole answer)."""
    t0 = time.monotonic()
    with connect(port, tls_ctx, timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        buf = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            buf += d
    ms = (time.monotonic() - t0) * 1000.0
    return buf.split(b"\r\n", 1)[0], buf.endswith(b"\r\n\r\nok\n"), ms


def probe_healthz(port, name, n=10, gap=0.05, tls_ctx=None):
    """/healthz at n moments gap seconds apart (see the module's note on retries); checks
    every answer is 200 ok and the bounds."""
    firsts, bests, bad = [], [], []
    for _ in range(n):
        tries = []
        # Five tries 20 ms apart, not three back to back: under ASan with the machine at load
        # 10-15 (2 cores), three immediate tries all fell into one 80 ms pause of the server's
        # process, while every other moment answered within 5 ms.
        for t in range(5):
            if t:
                time.sleep(0.02)
            line, ok, ms = healthz_once(port, tls_ctx)
            tries.append(ms)
            if not ok:
                bad.append(line)
            if ms < HEALTHZ_MAX_MS:
                break
        firsts.append(tries[0])
        bests.append(min(tries))
        time.sleep(gap)
    note(f"{name}: /healthz at {n} moments: slowest {max(bests):.1f} ms (first tries: max "
         f"{max(firsts):.1f} ms, median {sorted(firsts)[n // 2]:.1f} ms)")
    check(not bad, f"{name}: every /healthz answered 200 ok", bad[:3])
    check(max(bests) < HEALTHZ_MAX_MS, f"{name}: /healthz answered within {HEALTHZ_MAX_MS} ms at every "
          f"moment (slowest {max(bests):.1f} ms)", [round(t, 1) for t in bests])
    check(max(firsts) < HEALTHZ_FIRST_MAX_MS, f"{name}: every first /healthz try within "
          f"{HEALTHZ_FIRST_MAX_MS} ms (max {max(firsts):.1f} ms)", [round(t, 1) for t in firsts])
    return max(bests)


class Attacker:
    """A client that writes `data` (in a thread, however long the server takes to read it) and
    reads nothing until told to."""

    def __init__(self, port, data, tls_ctx=None):
        self.sock = connect(port, tls_ctx, timeout=30)
        self.data = data
        self.sent = 0
        self.error = None
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self):
        try:
            view = memoryview(self.data)
            while self.sent < len(self.data):
                n = self.sock.send(view[self.sent:self.sent + 65536])
                self.sent += n
        except OSError as e:
            self.error = e

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def measure_attack(srv, name, attacker_fn, settle=1.5):
    """Starts the attack, probes /healthz (plain HTTP on srv.port) meanwhile, and lets it
    settle: (attacker, growth in MiB). Asserts the growth bound."""
    pid = srv.proc.pid
    rss0 = proc_status_kib(pid, "VmRSS")
    a = attacker_fn()
    probe_healthz(srv.port, f"{name}, during the attack")
    deadline = time.monotonic() + settle
    peak = 0
    while time.monotonic() < deadline:
        peak = max(peak, proc_status_kib(pid, "VmRSS") or 0)
        time.sleep(0.05)
    probe_healthz(srv.port, f"{name}, while the attacker holds its answers unread", n=5)
    hwm = proc_status_kib(pid, "VmHWM")
    rss = proc_status_kib(pid, "VmRSS")
    growth = mib(hwm - rss0)
    note(f"{name}: server RSS {mib(rss0):.1f} MiB before, peak {mib(hwm):.1f} MiB, now {mib(rss):.1f} MiB; "
         f"attacker sent {a.sent} of {len(a.data)} bytes")
    check(growth < GROWTH_MAX_MIB, f"{name}: server growth {growth:.1f} MiB < {GROWTH_MAX_MIB} MiB")
    check(srv.running, f"{name}: the server is still running")
    return a, growth


def read_responses(sock, count, expect_body, timeout):
    """Reads `count` HTTP responses from sock: the number that were 200 with exactly
    expect_body, and the number read at all."""
    buf = bytearray()
    good = got = 0
    deadline = time.monotonic() + timeout
    sock.settimeout(5)
    pos = 0
    while got < count and time.monotonic() < deadline:
        end = buf.find(b"\r\n\r\n", pos)
        if end >= 0:
            head = bytes(buf[pos:end]).decode("latin-1").split("\r\n")
            clen = 0
            for line in head[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    clen = int(v)
            start = end + 4
            if len(buf) - start >= clen:
                got += 1
                if head[0].startswith("HTTP/1.1 200 ") and buf[start:start + clen] == expect_body:
                    good += 1
                pos = start + clen
                if pos > (4 << 20):
                    del buf[:pos]
                    pos = 0
                continue
        try:
            d = sock.recv(1 << 20)
        except socket.timeout:
            break
        if not d:
            break
        buf += d
    return good, got


def pipeline():
    app = open(os.path.join(WEB, "app.js"), "rb").read()
    req = b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n"
    n = (1 << 20) // len(req)
    data = req * n
    srv = Serve([], quiet=True)
    try:
        with step(f"1 MB of pipelined GET /app.js ({n} requests, {len(app)} bytes each answer), never read"):
            a, growth = measure_attack(srv, "pipelined /app.js", lambda: Attacker(srv.port, data))
        with step("the attacker reads: every response arrives, each one correct"):
            t0 = time.monotonic()
            good, got = read_responses(a.sock, n, app, timeout=20)
            a.thread.join(5)
            note(f"read {got} responses ({got * len(app) / 1e6:.0f} MB) in {time.monotonic() - t0:.1f} s")
            eq(a.sent, len(data), "the whole 1 MB of requests was taken by the server")
            eq(got, n, "responses read")
            eq(good, n, "responses that are 200 with app.js byte for byte")
            a.close()
        with step("the server serves afterwards"):
            probe_healthz(srv.port, "after the attack", n=3)
        eq(srv.stop(), 0, "server exit status after SIGTERM")
    finally:
        srv.kill()


def make_site(tmp):
    root = os.path.join(tmp, "site")
    os.makedirs(root)
    big = os.urandom(BIG)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(big)
    with open(os.path.join(root, "index.html"), "wb") as f:
        f.write(b"<!doctype html><title>static</title>\n")
    return root, big


def get_file(port, path, tls_ctx=None, method="GET", timeout=20):
    """One request with Connection: close: (status line, headers, SHA-256 of the body, body
    length)."""
    with connect(port, tls_ctx, timeout=timeout) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(65536)
            if not d:
                break
            head += d
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        h = hashlib.sha256(rest)
        n = len(rest)
        while True:
            try:
                d = s.recv(1 << 20)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not d:
                break
            h.update(d)
            n += len(d)
        return lines[0], hdrs, h.hexdigest(), n


def static():
    tmp = tempfile.mkdtemp(prefix="wsx-attack-http-")
    try:
        root, big = make_site(tmp)
        req = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
        n = 3400 // len(req)
        data = req * n
        srv = Serve(["--static", root], quiet=True)
        try:
            with step(f"--static: 3.4 KB of pipelined GET /big.bin ({n} requests for an 8 MiB file), never read"):
                a, growth = measure_attack(srv, "pipelined /big.bin", lambda: Attacker(srv.port, data))
            with step("the attacker reads its first answer: the 8 MiB file byte for byte"):
                good, got = read_responses(a.sock, 1, big, timeout=20)
                eq((good, got), (1, 1), "(correct, read) of the first response")
                a.close()
            with step("an honest client gets big.bin byte for byte"):
                line, h, digest, size = get_file(srv.port, "/big.bin")
                eq(line, "HTTP/1.1 200 OK", "GET /big.bin -> status line")
                eq(h.get("content-length"), str(BIG), "GET /big.bin -> Content-Length")
                eq((size, digest), (BIG, hashlib.sha256(big).hexdigest()), "GET /big.bin -> (length, SHA-256)")
            eq(srv.stop(), 0, "server exit status after SIGTERM")
        finally:
            srv.kill()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def files():
    tmp = tempfile.mkdtemp(prefix="wsx-attack-http-")
    try:
        root, big = make_site(tmp)
        want = hashlib.sha256(big).hexdigest()
        # Sparse: 65 MiB of zeros costs no disk.
        huge = 65 << 20
        with open(os.path.join(root, "huge.bin"), "wb") as f:
            f.truncate(huge)
        zeros = hashlib.sha256()
        block = bytes(1 << 20)
        for _ in range(huge >> 20):
            zeros.update(block)
        srv = Serve(["--static", root], quiet=True)
        try:
            with step("plain HTTP: files byte for byte, HEAD without a body"):
                line, h, digest, size = get_file(srv.port, "/big.bin")
                eq((line, size, digest), ("HTTP/1.1 200 OK", BIG, want), "GET /big.bin -> (status, length, SHA-256)")
                line, h, digest, size = get_file(srv.port, "/huge.bin", timeout=30)
                eq((line, h.get("content-length"), size, digest), ("HTTP/1.1 200 OK", str(huge), huge, zeros.hexdigest()),
                   "GET /huge.bin (65 MiB, above the old 64 MiB cap) -> (status, Content-Length, length, SHA-256)")
                line, h, digest, size = get_file(srv.port, "/big.bin", method="HEAD")
                eq((line, h.get("content-length"), size), ("HTTP/1.1 200 OK", str(BIG), 0),
                   "HEAD /big.bin -> (status, Content-Length, body bytes)")
            with step("a fast reader downloading 65 MiB again and again does not hold the loop"):
                stop, got = threading.Event(), []

                def download():
                    while not stop.is_set():
                        got.append(get_file(srv.port, "/huge.bin", timeout=30)[3])

                t = threading.Thread(target=download, daemon=True)
                t.start()
                time.sleep(0.1)
                probe_healthz(srv.port, "during fast downloads of /huge.bin")
                stop.set()
                t.join(30)
                check(got and all(n == huge for n in got), f"every download was whole ({len(got)} of 65 MiB)",
                      got)
        finally:
            srv.kill()

        certs = os.path.join(tmp, "certs")
        r = subprocess.run(["sh", os.path.join(HERE, "certs.sh"), certs], capture_output=True, timeout=60)
        if r.returncode != 0:
            check(False, "certs.sh made the test certificates", r.stderr.decode(errors="replace")[-300:])
            return
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        # TLS on its own port, plain HTTP on srv.port: the /healthz probes measure the loop,
        # not the cost of a TLS handshake on a loaded machine.
        tls_port = free_port()
        srv = Serve(["--static", root, "--tls-cert", os.path.join(certs, "server.pem"),
                     "--tls-key", os.path.join(certs, "server.key"), "--tls-port", str(tls_port),
                     "--shutdown-timeout", "1000"], quiet=True)
        try:
            with step("TLS: files byte for byte, HEAD without a body"):
                line, h, digest, size = get_file(tls_port, "/big.bin", tls_ctx=ctx)
                eq((line, size, digest), ("HTTP/1.1 200 OK", BIG, want),
                   "GET /big.bin over TLS -> (status, length, SHA-256)")
                line, h, digest, size = get_file(tls_port, "/big.bin", tls_ctx=ctx, method="HEAD")
                eq((line, h.get("content-length"), size), ("HTTP/1.1 200 OK", str(BIG), 0),
                   "HEAD /big.bin over TLS -> (status, Content-Length, body bytes)")
            req = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
            n = 3400 // len(req)
            with step(f"TLS: 3.4 KB of pipelined GET /big.bin ({n} requests), never read"):
                a, growth = measure_attack(srv, "pipelined /big.bin over TLS",
                                           lambda: Attacker(tls_port, req * n, tls_ctx=ctx))
                good, got = read_responses(a.sock, 2, big, timeout=20)
                eq((good, got), (2, 2), "(correct, read) of the first two responses over TLS")
            with step("SIGTERM while a file is half sent to a client that stopped reading"):
                t0 = time.monotonic()
                rc = srv.stop(timeout=10)
                a.close()
                eq(rc, 0, "server exit status after SIGTERM")
                check(time.monotonic() - t0 < 5, f"the server exited within the 1 s shutdown timeout "
                      f"(+ slack): {time.monotonic() - t0:.1f} s")
        finally:
            srv.kill()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


CASES = {"pipeline": pipeline, "static": static, "files": files}

if __name__ == "__main__":
    case = sys.argv[1] if len(sys.argv) > 1 else ""
    if case not in CASES:
        print(f"usage: attack_http.py {{{'|'.join(CASES)}}}", file=sys.stderr)
        sys.exit(2)
    run(f"attack_http {case}", CASES[case], timeout=60)
