#!/usr/bin/python3
"""`wsx serve --static DIR` and the embedded page over raw sockets (standard library only):
the exact heads and bodies of 200, 304, 412, 206 and 416; ranges at the edges (first byte,
last byte, suffixes longer than the file, several ranges, invalid ones, If-Range, a range of
a file streamed in 64 KiB pieces); HEAD without a body; directory redirects that keep the
query and escape the path; '..', %2e%2e and symlink escapes refused; an unreadable file;
CORS preflights accepted and refused (--cors) and the headers of normal responses; 400
pipelined range requests for a 64 MiB file never read (server growth < 64 MiB)."""

import email.utils
import os
import shutil
import socket
import subprocess
import tempfile
import time

from wsxlib import check, eq, note, proc_status_kib, run, step
from wsxserve import Serve

PLAIN = "text/plain; charset=utf-8"
TEN = b"0123456789"
GOOD = "https://good.example"


def exchange(port, method, path, headers=(), timeout=5):
    """One request with Connection: close on a raw socket, read until the server closes:
    (status, [(lowercased name, value)] in order, body bytes). The body is whatever follows
    the head, so a body where none belongs shows up."""
    lines = [f"{method} {path} HTTP/1.1", "Host: x", *(f"{k}: {v}" for k, v in headers),
             "Connection: close"]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    first, *rest = head.decode("latin-1").split("\r\n")
    fields = [(k.strip().lower(), v.strip()) for k, v in (ln.split(":", 1) for ln in rest)]
    return int(first.split(" ")[1]), fields, body


def expect(port, method, path, headers, status, want_fields, body, name):
    """Checks status, the exact set of header fields (name -> value; None: present with any
    value) and the body."""
    st, fields, got = exchange(port, method, path, headers)
    names = sorted(k for k, _ in fields)
    want = sorted(list(want_fields) + ["connection"])
    ok = st == status and names == want and got == body
    ok = ok and all(v is None or dict(fields).get(k) == v for k, v in want_fields.items())
    check(ok, f"{name} -> {status} with exactly {', '.join(sorted(want_fields))}",
          f"{st} {fields} {got[:80]!r}")
    return dict(fields)


def file_fields(path, ctype):
    sb = os.stat(path)
    return {"content-type": ctype, "etag": f'"{sb.st_ino:x}-{sb.st_size:x}-{sb.st_mtime_ns:x}"',
            "cache-control": "no-cache", "last-modified": email.utils.formatdate(sb.st_mtime, usegmt=True),
            "accept-ranges": "bytes", "content-length": str(sb.st_size)}


def make_site(tmp):
    root = os.path.join(tmp, "site")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(root, "my dir"))
    files = {"ten.txt": TEN, "sub/index.html": b"<p>sub</p>\n", "my dir/index.html": b"spaced\n",
             "empty.bin": b"", "big.bin": bytes((i * 7 + i // 251) % 256 for i in range(300_000)),
             "locked.txt": b"locked\n"}
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    os.utime(os.path.join(root, "ten.txt"), (1700000000, 1700000000))
    os.chmod(os.path.join(root, "locked.txt"), 0)
    with open(os.path.join(tmp, "secret.txt"), "wb") as f:
        f.write(b"TOP SECRET outside the root\n")
    os.symlink(os.path.join(tmp, "secret.txt"), os.path.join(root, "out.txt"))
    os.symlink(tmp, os.path.join(root, "up"))
    os.symlink("/etc/passwd", os.path.join(root, "passwd"))
    os.symlink("ten.txt", os.path.join(root, "alias.txt"))
    return root, files


def full_and_conditional(port, root):
    path = os.path.join(root, "ten.txt")
    ff = file_fields(path, PLAIN)
    with step("200: the whole file, exact head"):
        expect(port, "GET", "/ten.txt", (), 200, ff, TEN, "GET /ten.txt")
        eq(ff["last-modified"], "Tue, 14 Nov 2023 22:13:20 GMT", "Last-Modified of ten.txt")
        expect(port, "GET", "/alias.txt", (), 200, file_fields(path, PLAIN), TEN,
               "GET /alias.txt (a symlink inside the root)")
    with step("HEAD: the head of the GET, no body"):
        expect(port, "HEAD", "/ten.txt", (), 200, ff, b"", "HEAD /ten.txt")
        expect(port, "HEAD", "/ten.txt", [("Range", "bytes=0-0")], 200, ff, b"",
               "HEAD /ten.txt with a Range (ranges are for GET only)")
        expect(port, "HEAD", "/nope", (), 404, {"content-type": PLAIN, "content-length": "14"}, b"",
               "HEAD /nope")
    v304 = {k: ff[k] for k in ("etag", "cache-control", "last-modified")}
    with step("304: If-None-Match and If-Modified-Since"):
        etag = ff["etag"]
        for inm in (etag, "W/" + etag, f'"x", {etag}', "*"):
            expect(port, "GET", "/ten.txt", [("If-None-Match", inm)], 304, v304, b"",
                   f"If-None-Match: {inm}")
        expect(port, "HEAD", "/ten.txt", [("If-None-Match", etag)], 304, v304, b"",
               "HEAD with If-None-Match")
        expect(port, "GET", "/ten.txt", [("If-None-Match", '"other"')], 200, ff, TEN,
               "If-None-Match: another tag")
        expect(port, "GET", "/ten.txt", [("If-Modified-Since", ff["last-modified"])], 304, v304, b"",
               "If-Modified-Since: Last-Modified")
        expect(port, "GET", "/ten.txt", [("If-Modified-Since", "Tue, 14 Nov 2023 22:13:19 GMT")],
               200, ff, TEN, "If-Modified-Since: a second before")
        expect(port, "GET", "/ten.txt", [("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")],
               200, ff, TEN, "If-Modified-Since in the future (ignored)")
        expect(port, "GET", "/ten.txt", [("If-None-Match", '"other"'),
                                        ("If-Modified-Since", ff["last-modified"])], 200, ff, TEN,
               "If-None-Match not matching wins over If-Modified-Since")
    with step("412: If-Match and If-Unmodified-Since"):
        t412 = {"content-type": PLAIN, "content-length": "24"}
        expect(port, "GET", "/ten.txt", [("If-Match", '"other"')], 412, t412,
               b"412 Precondition Failed\n", "If-Match: another tag")
        expect(port, "GET", "/ten.txt", [("If-Match", ff["etag"])], 200, ff, TEN, "If-Match: the tag")
        expect(port, "GET", "/ten.txt", [("If-Unmodified-Since", "Tue, 14 Nov 2023 22:13:19 GMT")],
               412, t412, b"412 Precondition Failed\n", "If-Unmodified-Since: a second before")


def ranges(port, root, files):
    path = os.path.join(root, "ten.txt")
    ff = file_fields(path, PLAIN)
    base = {k: v for k, v in ff.items() if k != "content-length"}

    def r206(rng, first, last, name):
        want = dict(base, **{"content-range": f"bytes {first}-{last}/10",
                             "content-length": str(last - first + 1)})
        expect(port, "GET", "/ten.txt", [("Range", rng)], 206, want, TEN[first:last + 1], name)

    with step("206: single ranges at the edges"):
        r206("bytes=0-0", 0, 0, "the first byte")
        r206("bytes=9-9", 9, 9, "the last byte")
        r206("bytes=9-", 9, 9, "from the last byte on")
        r206("bytes=-1", 9, 9, "a suffix of one")
        r206("bytes=3-5", 3, 5, "the middle")
        r206("bytes=0-", 0, 9, "from the start")
        r206("bytes=-10", 0, 9, "a suffix of the whole length")
        r206("bytes=-100", 0, 9, "a suffix longer than the file")
        r206("bytes=5-99999999999999999999999", 5, 9, "an end past the file (and 64 bits)")
        r206("Bytes=2-2", 2, 2, "the unit in another case")
    with step("416: nothing to send"):
        for rng in ("bytes=10-", "bytes=10-20", "bytes=-0", "bytes=99999999999999999999-",
                    "bytes=10-,20-"):
            expect(port, "GET", "/ten.txt", [("Range", rng)], 416,
                   {"content-type": PLAIN, "accept-ranges": "bytes", "content-range": "bytes */10",
                    "content-length": "26"}, b"416 Range Not Satisfiable\n", f"Range: {rng}")
    with step("200: several, invalid, foreign and empty-file ranges"):
        for rng in ("bytes=0-1,3-4", "bytes=0-1,20-30", "bytes=5-4", "bytes=x-y", "items=0-1",
                    "bytes=0-1;2"):
            expect(port, "GET", "/ten.txt", [("Range", rng)], 200, ff, TEN, f"Range: {rng}")
        ef = file_fields(os.path.join(root, "empty.bin"), "application/octet-stream")
        expect(port, "GET", "/empty.bin", [("Range", "bytes=0-")], 200, ef, b"",
               "Range on an empty file")
    with step("hostile Range values: bounded by the head size, answered exactly"):
        many = "bytes=" + ",".join(["0-0"] * 1500)  # 6 KB of ranges: several -> all of it
        expect(port, "GET", "/ten.txt", [("Range", many)], 200, ff, TEN, "Range with 1500 ranges")
        huge = "bytes=" + "9" * 7000 + "-"  # saturates: past any file
        expect(port, "GET", "/ten.txt", [("Range", huge)], 416,
               {"content-type": PLAIN, "accept-ranges": "bytes", "content-range": "bytes */10",
                "content-length": "26"}, b"416 Range Not Satisfiable\n", "Range starting at a 7000-digit number")
        suffix = "bytes=-" + "9" * 7000
        r = dict(base, **{"content-range": "bytes 0-9/10", "content-length": "10"})
        expect(port, "GET", "/ten.txt", [("Range", suffix)], 206, r, TEN, "a 7000-digit suffix")
    with step("If-Range"):
        r = [("Range", "bytes=1-2")]
        expect(port, "GET", "/ten.txt", r + [("If-Range", ff["etag"])], 206,
               dict(base, **{"content-range": "bytes 1-2/10", "content-length": "2"}), b"12",
               "If-Range: the tag")
        expect(port, "GET", "/ten.txt", r + [("If-Range", ff["last-modified"])], 206,
               dict(base, **{"content-range": "bytes 1-2/10", "content-length": "2"}), b"12",
               "If-Range: Last-Modified")
        for ir in ('"other"', "W/" + ff["etag"], "Tue, 14 Nov 2023 22:13:21 GMT"):
            expect(port, "GET", "/ten.txt", r + [("If-Range", ir)], 200, ff, TEN,
                   f"If-Range: {ir} -> the whole file")
    with step("206 of a file streamed in 64 KiB pieces"):
        big = files["big.bin"]
        for first, last in ((0, 0), (65535, 65536), (70000, 200000), (299_999, 299_999),
                            (1, 299_999)):
            st, fields, body = exchange(port, "GET", "/big.bin", [("Range", f"bytes={first}-{last}")])
            fd = dict(fields)
            check(st == 206 and body == big[first:last + 1]
                  and fd.get("content-range") == f"bytes {first}-{last}/{len(big)}"
                  and fd.get("content-length") == str(last - first + 1),
                  f"big.bin bytes={first}-{last} -> 206, those bytes exactly",
                  f"{st} {fd.get('content-range')} {len(body)}")
        st, fields, body = exchange(port, "GET", "/big.bin", [("Range", "bytes=-70000")])
        check(st == 206 and body == big[-70000:], "big.bin bytes=-70000 -> the last 70000 bytes",
              f"{st} {len(body)}")
    with step("ranges on one keep-alive connection"):
        # Three pipelined requests: each answer's Content-Length frames the next.
        reqs = b"".join(f"GET /ten.txt HTTP/1.1\r\nHost: x\r\nRange: {r}\r\n\r\n".encode()
                        for r in ("bytes=0-1", "bytes=-3", "bytes=0-1,5-6"))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(reqs + b"GET /ten.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            buf = b""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
        bodies = []
        while buf:
            head, _, rest = buf.partition(b"\r\n\r\n")
            n = int([ln.split(b":")[1] for ln in head.split(b"\r\n")
                     if ln.lower().startswith(b"content-length:")][0])
            bodies.append((head.split(b" ")[1], rest[:n]))
            buf = rest[n:]
        eq(bodies, [(b"206", b"01"), (b"206", b"789"), (b"200", TEN), (b"200", TEN)],
           "pipelined ranges -> statuses and bodies in order")


def unread_ranges(srv, root):
    """Pipelined range requests for a 64 MiB file that are never read: the server's memory
    stays bounded (the file is read as the client reads), and others are served meanwhile."""
    with open(os.path.join(root, "huge.bin"), "wb") as f:
        f.truncate(64 << 20)  # sparse: zeros on read
    first, last = 1000, 1000 + (8 << 20) - 1
    req = (f"GET /huge.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={first}-{last}\r\n\r\n"
           "GET /huge.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-33554432\r\n\r\n").encode()
    pid = srv.proc.pid
    rss0 = proc_status_kib(pid, "VmRSS")
    socks = []
    with step("4 connections x 100 pipelined range requests of a 64 MiB file, never read"):
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(req * 50)
            socks.append(s)
        time.sleep(1.0)
        st, fields, body = exchange(srv.port, "GET", "/ten.txt", [("Range", "bytes=-2")])
        check(st == 206 and body == b"89", "another client's range meanwhile -> 206 with its bytes", st)
        growth = (proc_status_kib(pid, "VmHWM") - rss0) / 1024.0
        note(f"server RSS {rss0 / 1024.0:.1f} MiB before, VmHWM {rss0 / 1024.0 + growth:.1f} MiB "
             f"with 400 unread range requests (7.8 GiB of answers)")
        check(growth < 64, f"server growth {growth:.1f} MiB < 64 MiB")
    with step("the first answer of an unread connection, read: 206, 8 MiB of zeros"):
        s = socks[0]
        buf = b""
        deadline = time.monotonic() + 20
        while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
            buf += s.recv(65536)
        head, _, body = buf.partition(b"\r\n\r\n")
        n = len(body)
        zeros = body.count(0) == n
        while n < (8 << 20) and time.monotonic() < deadline:
            d = s.recv(min(1 << 20, (8 << 20) - n))
            if not d:
                break
            zeros = zeros and d.count(0) == len(d)
            n += len(d)
        check(head.startswith(b"HTTP/1.1 206 ") and f"Content-Range: bytes {first}-{last}/{64 << 20}".encode() in head
              and n == 8 << 20 and zeros, "206, Content-Range, 8 MiB of zeros", f"{head[:200]!r} {n}")
    for s in socks:
        s.close()
    os.unlink(os.path.join(root, "huge.bin"))


def paths(port, root):
    secret = b"TOP SECRET"
    nf = {"content-type": PLAIN, "content-length": "14"}
    bad = {"content-type": PLAIN, "content-length": "13"}
    with step("'..', %2e%2e and symlinks out of the root are refused"):
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/%2e%2e/etc/passwd",
                     "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt",
                     "/sub/..", "/./ten.txt", "/ten.txt%00", "/sub%5c..%5c..%5csecret.txt",
                     "/ten%0d%0aX-Injected:%201.txt"):
            st, fields, body = exchange(port, "GET", path)
            check(st == 400 and body == b"400 bad path\n" and secret not in body,
                  f"GET {path} -> 400 bad path", f"{st} {body[:60]!r}")
        for path in ("/out.txt", "/up/secret.txt", "/up", "/passwd", "/up/site/../secret.txt"):
            st, fields, body = exchange(port, "GET", path)
            want = 400 if ".." in path else 404
            check(st == want and secret not in body and b"root:" not in body,
                  f"GET {path} -> {want}", f"{st} {body[:60]!r}")
        expect(port, "GET", "/out.txt", (), 404, nf, b"404 Not Found\n", "GET /out.txt (a symlink out)")
        expect(port, "GET", "/nope/", (), 404, nf, b"404 Not Found\n", "GET /nope/")
        expect(port, "GET", "/sub\\x", (), 400, bad, b"400 bad path\n", "GET /sub\\x")
    with step("an unreadable file -> 403"):
        if os.geteuid() == 0:
            note("running as root: the mode-000 file is readable, 403 not checked")
        else:
            expect(port, "GET", "/locked.txt", (), 403, {"content-type": PLAIN, "content-length": "14"},
                   b"403 Forbidden\n", "GET /locked.txt (mode 000)")
    with step("directories: index files and redirects"):
        expect(port, "GET", "/sub", (), 301, {"location": "/sub/", "content-length": "0"}, b"", "GET /sub")
        expect(port, "GET", "/sub?a=1&b=%20", (), 301, {"location": "/sub/?a=1&b=%20", "content-length": "0"},
               b"", "GET /sub?a=1&b=%20 keeps the query")
        expect(port, "GET", "/my%20dir", (), 301, {"location": "/my%20dir/", "content-length": "0"}, b"",
               "GET /my%20dir -> an escaped Location")
        st, _, body = exchange(port, "GET", "/my%20dir/")
        check(st == 200 and body == b"spaced\n", "GET /my%20dir/ -> its index.html", f"{st} {body!r}")


def cors(port):
    pre = [("Origin", GOOD), ("Access-Control-Request-Method", "GET")]
    vary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
    with step("CORS preflights (--cors https://good.example)"):
        expect(port, "OPTIONS", "/ten.txt", pre, 204,
               {"vary": vary, "access-control-allow-origin": GOOD,
                "access-control-allow-methods": "GET, HEAD"}, b"", "preflight from the allowed origin")
        expect(port, "OPTIONS", "/ten.txt", [("Origin", "HTTPS://GOOD.example"),
                                             ("Access-Control-Request-Method", "HEAD")], 204,
               {"vary": vary, "access-control-allow-origin": "HTTPS://GOOD.example",
                "access-control-allow-methods": "GET, HEAD"}, b"",
               "preflight from the allowed origin in another case (echoed as sent)")
        refused = {"vary": vary, "content-type": PLAIN}
        for hdrs, why, name in (
                ([("Origin", "https://evil.example"), ("Access-Control-Request-Method", "GET")],
                 "origin not allowed", "preflight from another origin"),
                ([("Origin", "null"), ("Access-Control-Request-Method", "GET")],
                 "origin not allowed", "preflight from origin null"),
                ([("Origin", GOOD), ("Access-Control-Request-Method", "PUT")],
                 "method not allowed", "preflight for PUT"),
                ([("Origin", GOOD), ("Access-Control-Request-Method", "GET"),
                  ("Access-Control-Request-Headers", "x-custom")],
                 "header not allowed", "preflight asking for a header")):
            body = f"403 Forbidden\nCORS: {why}\n".encode()
            expect(port, "OPTIONS", "/ten.txt", hdrs, 403, dict(refused, **{"content-length": str(len(body))}),
                   body, name)
        st, _, _ = exchange(port, "OPTIONS", "/ten.txt", [("Origin", GOOD)])
        eq(st, 405, "OPTIONS without Access-Control-Request-Method (not a preflight) -> status")
    with step("CORS headers of normal responses"):
        _, f, _ = exchange(port, "GET", "/ten.txt", [("Origin", GOOD)])
        f = dict(f)
        check(f.get("access-control-allow-origin") == GOOD and f.get("vary") == "Origin",
              "GET from the allowed origin -> Access-Control-Allow-Origin and Vary: Origin", f)
        for hdrs, name in (([("Origin", "https://evil.example")], "another origin"), ((), "no Origin")):
            _, f, _ = exchange(port, "GET", "/ten.txt", hdrs)
            f = dict(f)
            check("access-control-allow-origin" not in f and f.get("vary") == "Origin",
                  f"GET from {name} -> no Access-Control-Allow-Origin, Vary: Origin", f)
        st, f, _ = exchange(port, "GET", "/nope", [("Origin", GOOD)])
        check(st == 404 and dict(f).get("access-control-allow-origin") == GOOD,
              "a 404 for the allowed origin carries Access-Control-Allow-Origin too", f)
        st, f, _ = exchange(port, "GET", "/ten.txt", [("Origin", GOOD), ("Range", "bytes=0-0")])
        check(st == 206 and dict(f).get("access-control-allow-origin") == GOOD,
              "a 206 for the allowed origin carries Access-Control-Allow-Origin", f)


def main():
    tmp = tempfile.mkdtemp(prefix="wsx-serve-static-")
    try:
        root, files = make_site(tmp)
        srv = Serve(["--static", root], quiet=True)
        try:
            full_and_conditional(srv.port, root)
            ranges(srv.port, root, files)
            paths(srv.port, root)
            unread_ranges(srv, root)
        finally:
            eq(srv.stop(), 0, "--static server exit status after SIGTERM")
        srv = Serve(["--static", root, "--cors", GOOD], quiet=True)
        try:
            cors(srv.port)
        finally:
            srv.kill()
        srv = Serve(["--static", root, "--cors", "*"], quiet=True)
        try:
            with step("--cors '*': any origin, no Vary"):
                expect(srv.port, "OPTIONS", "/ten.txt",
                       [("Origin", "https://any.example"), ("Access-Control-Request-Method", "GET")], 204,
                       {"vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                        "access-control-allow-origin": "*", "access-control-allow-methods": "GET, HEAD"},
                       b"", "preflight from any origin")
                _, f, _ = exchange(srv.port, "GET", "/ten.txt", [("Origin", "https://any.example")])
                f = dict(f)
                check(f.get("access-control-allow-origin") == "*" and "vary" not in f,
                      "GET from any origin -> Access-Control-Allow-Origin: *, no Vary", f)
        finally:
            srv.kill()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with step("--static with a file or a missing directory: refused at start"):
        for arg, why in ((os.path.abspath(__file__), "not a directory"),
                         ("/nonexistent/wsx-static", "No such file or directory")):
            p = subprocess.run([os.environ["WSX_BIN"], "serve", "--port", "0", "--static", arg],
                               capture_output=True, text=True, timeout=10)
            check(p.returncode == 1 and f"--static {arg}: {why}" in p.stderr,
                  f"--static {arg} -> exit 1, '{why}'", f"{p.returncode} {p.stderr!r}")
    srv = Serve([], quiet=True)
    try:
        with step("the embedded page: ranges, 304, no CORS without --cors"):
            st, f, page = exchange(srv.port, "GET", "/")
            f = dict(f)
            check(st == 200 and f.get("accept-ranges") == "bytes" and len(page) > 100,
                  "GET / -> 200 with Accept-Ranges: bytes", f)
            expect(srv.port, "GET", "/", [("Range", "bytes=0-14")], 206,
                   {"content-type": "text/html; charset=utf-8", "etag": f["etag"], "cache-control": "no-cache",
                    "accept-ranges": "bytes", "content-range": f"bytes 0-14/{len(page)}",
                    "content-length": "15"}, page[:15], "GET / bytes=0-14")
            expect(srv.port, "GET", "/", [("Range", "bytes=-1")], 206,
                   {"content-type": "text/html; charset=utf-8", "etag": f["etag"], "cache-control": "no-cache",
                    "accept-ranges": "bytes", "content-range": f"bytes {len(page) - 1}-{len(page) - 1}/{len(page)}",
                    "content-length": "1"}, page[-1:], "GET / bytes=-1")
            expect(srv.port, "GET", "/", [("Range", f"bytes={len(page)}-")], 416,
                   {"content-type": PLAIN, "accept-ranges": "bytes", "content-range": f"bytes */{len(page)}",
                    "content-length": "26"}, b"416 Range Not Satisfiable\n", "GET / past the end")
            expect(srv.port, "GET", "/", [("If-None-Match", f["etag"])], 304,
                   {"etag": f["etag"], "cache-control": "no-cache"}, b"", "GET / If-None-Match")
            st, _, _ = exchange(srv.port, "OPTIONS", "/", [("Origin", GOOD), ("Access-Control-Request-Method", "GET")])
            eq(st, 405, "a preflight without --cors -> status")
    finally:
        srv.kill()
    note("done")


if __name__ == "__main__":
    run("serve_static", main, timeout=90)
