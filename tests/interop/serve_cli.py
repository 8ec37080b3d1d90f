#!/usr/bin/env python3
"""The messages of `wsx serve` (and `wsx echo`) when they cannot start, exact words and exit
statuses: a mistyped option, a missing value, an address this machine does not have (the
errno text), the options both commands share (--threads bounds, admission counts, the TLS
handshake timeout), --tls-cert without --tls-key and the reverse, certificate and key swapped,
--tls-port equal to --port, a busy port under `make run` (scripts/run.sh: nothing on stdout
before the failure), and the "listening on" lines: the real addresses for all interfaces
(each one answers /healthz), one line for --host; the page's token probe GET /api/auth.

Run: WSX_BIN=build/wsx /usr/bin/python3 tests/interop/serve_cli.py
"""

import os
import re
import socket
import subprocess
import tempfile
import urllib.request

from wsxlib import WSX_BIN, check, eq, note, run, step
from wsxserve import Serve, http_req

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def wsx(*args, timeout=10):
    """Runs wsx with args to its end. Returns (status, stdout lines, stderr lines)."""
    r = subprocess.run([WSX_BIN, *args], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    for line in r.stderr.splitlines():
        note(f"stderr: {line}")
    return r.returncode, r.stdout.splitlines(), r.stderr.splitlines()


def errors(errl):
    """The stderr lines that are not log lines (timestamps) nor the --help hint."""
    return [x for x in errl if not re.match(r"^\d{4}-\d\d-\d\dT", x) and not x.startswith("Try ")]


def usage_cases():
    with step("--prot: one line naming the option, and did you mean --port"):
        rc, out, err = wsx("serve", "--prot", "9000")
        eq(rc, 2, "exit status")
        eq(errors(err), ["wsx serve: unknown option '--prot' (did you mean --port?)"], "message")
        eq(err[-1:], ["Try 'wsx serve --help'."], "the help hint follows")
        eq(out, [], "nothing on stdout")
    with step("an unknown option far from every name: no suggestion"):
        rc, _, err = wsx("serve", "--frobnicate")
        eq(rc, 2, "exit status")
        eq(errors(err), ["wsx serve: unknown option '--frobnicate'"], "message")
    with step("wsx echo --potr: the same words"):
        rc, _, err = wsx("echo", "--potr", "1")
        eq(rc, 2, "exit status")
        eq(errors(err), ["wsx echo: unknown option '--potr' (did you mean --port?)"], "message")
    with step("--port without its value"):
        rc, _, err = wsx("serve", "--port")
        eq(rc, 2, "exit status")
        eq(errors(err), ["wsx serve: option '--port' needs a value"], "message")
    # Parsed once for both commands (tool_runner_option): the same words, each naming its
    # command, and each command's own --threads bound.
    for cmd, args, msg in (
            ("serve", ["--threads", "17"], "bad --threads '17' (1 to 16)"),
            ("echo", ["--threads", "65"], "bad --threads '65' (1 to 64)"),
            ("serve", ["--threads", "0"], "bad --threads '0' (1 to 16)"),
            ("echo", ["--max-per-ip", "x"], "bad count 'x' (0 = no limit)"),
            ("serve", ["--max-handshakes", "-1"], "bad count '-1' (0 = no limit)"),
            ("echo", ["--tls-handshake-timeout", "0"],
             "bad --tls-handshake-timeout '0' (milliseconds, above 0)")):
        with step(f"wsx {cmd} {' '.join(args)}: usage error, status 2"):
            rc, out, err = wsx(cmd, *args)
            eq(rc, 2, "exit status")
            eq(errors(err), [f"wsx {cmd}: {msg}"], "message")
            eq(out, [], "nothing on stdout")


def listen_cases():
    with step("an address this machine does not have: the errno text"):
        rc, out, err = wsx("serve", "--quiet", "--host", "10.255.255.1", "--port", "9320")
        eq(rc, 1, "exit status")
        eq(errors(err), ["wsx serve: cannot listen on 10.255.255.1:9320: "
                         "Cannot assign requested address"], "message")
        eq(out, [], "no listening line")
    with step("--tls-port equal to --port is refused before listening"):
        rc, out, err = wsx("serve", "--port", "9000", "--tls-port", "9000", "--tls-cert", "c.pem",
                           "--tls-key", "k.pem")
        eq(rc, 2, "exit status")
        eq(errors(err), ["wsx serve: --tls-port 9000 is also --port: give TLS a port of its own "
                         "(or leave --tls-port out to serve only TLS on --port)"], "message")
        eq(out, [], "no listening line")
    with step("make run on a busy port: the error only, no 'chat server on' line first"):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "run.sh"),
                            os.path.dirname(WSX_BIN), str(port)], capture_output=True, text=True,
                           timeout=10, stdin=subprocess.DEVNULL)
        s.close()
        eq(r.returncode, 1, "exit status")
        eq(r.stdout, "", "nothing on stdout")
        check("chat server on" not in r.stderr, "no 'chat server on' line", r.stderr)
        eq(errors(r.stderr.splitlines()),
           [f"wsx serve: cannot listen on 127.0.0.1:{port}: address already in use"], "message")


def tls_cases():
    d = tempfile.mkdtemp(prefix="wsx-serve-cli-")
    subprocess.run(["sh", os.path.join(HERE, "certs.sh"), d], check=True, capture_output=True)
    cert, key = os.path.join(d, "server.pem"), os.path.join(d, "server.key")
    with step("--tls-cert without --tls-key: which one is missing"):
        rc, _, err = wsx("serve", "--tls-cert", cert)
        eq(rc, 2, "exit status")
        eq(errors(err), [f"wsx serve: --tls-cert {cert} has no --tls-key (give the "
                         "certificate's private key)"], "message")
    with step("--tls-key without --tls-cert"):
        rc, _, err = wsx("serve", "--tls-key", key)
        eq(rc, 2, "exit status")
        eq(errors(err), [f"wsx serve: --tls-key {key} has no --tls-cert (give the certificate "
                         "it goes with)"], "message")
    with step("certificate and key swapped: said so"):
        rc, out, err = wsx("serve", "--tls-cert", key, "--tls-key", cert)
        eq(rc, 2, "exit status")
        eq(errors(err), [f"wsx serve: {key} holds a private key, not a certificate, and {cert} a "
                         "certificate: --tls-cert and --tls-key are swapped"], "message")
        eq(out, [], "no listening line")
    with step("a key given as both: the --tls-cert one holds no certificate"):
        rc, _, err = wsx("serve", "--tls-cert", key, "--tls-key", key)
        eq(rc, 2, "exit status")
        eq(errors(err), [f"wsx serve: --tls-cert {key} holds a private key, not a certificate"],
           "message")
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    os.rmdir(d)


def listening_lines():
    for host, want_one in ((None, False), ("127.0.0.1", True)):
        what = "--host 127.0.0.1: one line" if want_one else "all interfaces: a line per address"
        with step(what):
            args = [WSX_BIN, "serve", "--port", "0"] + (["--host", host] if host else [])
            p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, text=True)
            try:
                lines = [p.stdout.readline().rstrip("\n")]
                urls = []
                m = re.match(r"^listening on (http://(.+):(\d+)/)$", lines[0])
                check(m is not None, "first line is 'listening on http://ADDR:PORT/'", lines)
                if want_one:
                    eq(lines[0], f"listening on http://127.0.0.1:{m.group(3)}/", "the line")
                    urls.append(m.group(1))
                else:
                    eq(m.group(2), "127.0.0.1", "loopback first")
                    check(m.group(2) not in ("0.0.0.0", "localhost"), "a real address", lines)
                    urls.append(m.group(1))
                    # The other lines come at once; read up to the log line about them.
                    while True:
                        e = p.stderr.readline()
                        if not e or "listening on all interfaces" in e:
                            break
                    check("reachable from the network" in e, "the log says reachable from the "
                          "network", e)
                    with urllib.request.urlopen(urls[0] + "healthz", timeout=5) as r:
                        eq(r.status, 200, f"{urls[0]}healthz answers")
                    p.terminate()
                    rest = p.stdout.read().splitlines()
                    for x in rest:
                        mm = re.match(r"^listening on (http://(.+):(\d+)/)$", x)
                        if mm:
                            check(mm.group(2) not in ("0.0.0.0", "::", "[::]", "localhost"),
                                  f"{x}: a real address")
                    urls = []
                for u in urls:
                    with urllib.request.urlopen(u + "healthz", timeout=5) as r:
                        eq(r.status, 200, f"{u}healthz answers")
            finally:
                p.kill()
                p.wait()


def auth_probe():
    with step("GET /api/auth with --token: 401 without or with a wrong token, 200 with it"):
        with Serve(["--quiet", "--token", "s3cret"], quiet=True) as srv:
            st, h, body = http_req(srv.port, "GET", "/api/auth")
            eq(st, 401, "no token")
            eq(h.get("www-authenticate"), 'Bearer realm="chat"', "WWW-Authenticate")
            eq(h.get("cache-control"), "no-store", "not cached")
            eq(body, b"401 Unauthorized\nthis server needs an access token\n", "body")
            eq(http_req(srv.port, "GET", "/api/auth?token=wrong")[0], 401, "wrong ?token=")
            eq(http_req(srv.port, "GET", "/api/auth", [("Authorization", "Bearer nope")])[0], 401,
               "wrong Bearer")
            eq(http_req(srv.port, "GET", "/api/auth?token=s3cret")[0], 200, "?token=")
            eq(http_req(srv.port, "GET", "/api/auth", [("Authorization", "Bearer s3cret")])[0],
               200, "Bearer")
            eq(http_req(srv.port, "GET", "/healthz")[0], 200, "/healthz stays public")
    with step("GET /api/auth without --token: 200"):
        with Serve(["--quiet"], quiet=True) as srv:
            eq(http_req(srv.port, "GET", "/api/auth")[0], 200, "no token needed")


def all_tests():
    auth_probe()
    usage_cases()
    listen_cases()
    tls_cases()
    listening_lines()


if __name__ == "__main__":
    run("serve_cli", all_tests, timeout=60)
