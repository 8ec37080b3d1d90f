#!/usr/bin/python3
"""`wsx bench` checks what it measures: a clean run against `wsx echo` reports figures and no
error; a server that corrupts one byte, or drops one message, makes it fail with the right
kind of error in bounded time; fan-out and idle modes run; a target outside loopback is
refused before any connection is attempted; JSON payloads are JSON and are verified too, and
permessage-deflate is agreed with `wsx echo`; wss:// works with --cacert, fails with a tls
error without it, and --insecure warns. Standard library only (and openssl for the
certificates of the wss:// step)."""

import json
import os
import shutil
import subprocess
import tempfile

from wsxlib import WSX_BIN, RawServer, Server, check, eq, note, run, run_bench, step

HERE = os.path.dirname(os.path.abspath(__file__))


def good(res, name):
    return check(res is not None, f"{name}: one JSON object on stdout")


def tls_echo(certs):
    """`wsx echo` serving wss:// on 127.0.0.1 with the certificate of certs.sh (its url is the
    ws:// one: build the wss:// URL from its port)."""
    return Server(["--quiet", "--tls-cert", os.path.join(certs, "server.pem"), "--tls-key",
                   os.path.join(certs, "server.key")], quiet=True)


def main():
    with step("echo against wsx echo: figures, no error"):
        with Server(["--quiet"], quiet=True) as srv:
            pid = str(srv.proc.pid)
            rc, res, _, _ = run_bench(["-c", "10", "-k", "4", "-s", "64", "-d", "2", "-w", "0.5",
                                       "-p", pid, srv.url])
            eq(rc, 0, "echo: exit status")
            if good(res, "echo"):
                eq(res["errors"], 0, "echo: errors")
                check(res["messages"] > 0, "echo: messages completed", res["messages"])
                eq(res["connections_made"], 10, "echo: connections made")
                eq(res["connections_failed"], 0, "echo: connections failed")
                lat = res["latency_us"]
                check(0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"],
                      "echo: latency percentiles in order", lat)
                check(res["msgs_per_s"] > 0 and res["MB_per_s"] > 0, "echo: rates reported")
                check(res["server_us_per_msg"] is not None, "echo: server CPU per message",
                      res["server_us_per_msg"])
                check(res["command"].startswith("wsx bench ") and srv.url in res["command"],
                      "echo: the command line is in the result", res["command"])
                eq(res["scenario"], None, "echo: -c 10 -k 4 -s 64 is no published scenario")

            # Binary messages, larger than one small frame, on two threads.
            rc, res, _, _ = run_bench(["-c", "6", "-k", "2", "-s", "70000", "-b", "-t", "2", "-d",
                                       "1", "-w", "0.2", srv.url])
            eq(rc, 0, "binary, 2 threads: exit status")
            if good(res, "binary"):
                eq(res["errors"], 0, "binary, 2 threads: errors")
                check(res["messages"] > 0, "binary, 2 threads: messages completed")
                eq(res["threads"], 2, "binary, 2 threads: threads")

    with step("no options: scenario A (the README's figure), clean against wsx echo's defaults"):
        with Server(["--quiet"], quiet=True) as srv:
            rc, res, _, _ = run_bench(["-d", "1", "-w", "0.2", "-p", str(srv.proc.pid), srv.url])
            eq(rc, 0, "defaults: exit status")
            if good(res, "defaults"):
                eq((res["mode"], res["connections"], res["in_flight"], res["size"], res["binary"],
                    res["threads"]), ("echo", 100, 16, 32, False, 1),
                   "defaults: mode, -c, -k, -s, binary, threads (bench/run.sh's scenario A)")
                eq(res["scenario"], "A", "defaults: the scenario named in the result")
                # --max-connecting 32 stays within the servers' --max-handshakes-per-ip 32.
                eq(res["connections_failed"], 0, "defaults: connections refused by wsx echo")
                eq(res["errors"], 0, "defaults: errors")
            argv = [WSX_BIN, "bench", "--mode", "fanout", "-c", "1000", "-d", "0.5", "-w", "0",
                    srv.url]
            note("run: " + " ".join(argv))
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            text = p.stdout.decode()
            eq(p.returncode, 1, "1000 subscribers against wsx echo's defaults: exit status")
            check("scenario     E16, the README's broadcast figure" in text,
                  "the summary names scenario E16", text)
            check("503" in text and "--max-per-ip 0 --max-handshakes-per-ip 0" in text,
                  "past wsx echo's 256 connections per address the summary says which options "
                  "lift the limit", text)

    with step("a server that flips one byte of the 50th message"):
        def corrupt(n, opcode, payload):
            if n == 50:
                b = bytearray(payload)
                b[20] ^= 0x01
                return bytes(b)
            return payload

        with RawServer(corrupt) as srv:
            rc, res, err, secs = run_bench(["-c", "2", "-k", "4", "-s", "64", "-d", "2", "-w", "0",
                                            srv.url], timeout=30)
            check(rc not in (0, None), "corrupt: non-zero exit status", rc)
            if good(res, "corrupt"):
                eq(res["errors_by_kind"]["corrupt"], 1, "corrupt: one corrupt message")
                check("byte 20 is" in (res["first_error"] or ""), "corrupt: the byte is named",
                      res["first_error"])
                eq(res["ok"], False, "corrupt: ok")
            check(any("error: corrupt" in line for line in err), "corrupt: reported on stderr")

    with step("a server that never echoes the 50th message, one in flight: a stall"):
        def drop(n, opcode, payload):
            return None if n == 50 else payload

        with RawServer(drop) as srv:
            rc, res, err, secs = run_bench(["-c", "2", "-k", "1", "-s", "64", "-d", "2", "-w", "0",
                                            "--stall", "0.5", srv.url], timeout=30)
            check(rc not in (0, None), "drop, -k 1: non-zero exit status", rc)
            check(secs < 10, "drop, -k 1: bounded in time", f"{secs:.1f} s")
            if good(res, "drop, -k 1"):
                eq(res["errors_by_kind"]["stall"], 1, "drop, -k 1: one stalled connection")
                check("nothing came back" in (res["first_error"] or ""), "drop, -k 1: the stall "
                      "is described", res["first_error"])

    with step("a server that never echoes the 50th message, four in flight: a loss"):
        with RawServer(drop) as srv:
            rc, res, err, secs = run_bench(["-c", "2", "-k", "4", "-s", "64", "-d", "2", "-w", "0",
                                            srv.url], timeout=30)
            check(rc not in (0, None), "drop, -k 4: non-zero exit status", rc)
            if good(res, "drop, -k 4"):
                eq(res["errors_by_kind"]["order"], 1, "drop, -k 4: one order error")
                check("lost" in (res["first_error"] or ""), "drop, -k 4: reported as a loss",
                      res["first_error"])

    with step("a message shorter than the header, corrupted: still caught"):
        def corrupt_small(n, opcode, payload):
            return payload[:-1] + bytes([payload[-1] ^ 0x01]) if n == 30 else payload

        with RawServer(corrupt_small) as srv:
            rc, res, _, _ = run_bench(["-c", "1", "-k", "1", "-s", "8", "-d", "1", "-w", "0",
                                       srv.url], timeout=30)
            check(rc not in (0, None), "8-byte messages: non-zero exit status", rc)
            if good(res, "8-byte messages"):
                eq(res["errors_by_kind"]["corrupt"], 1, "8-byte messages: one corrupt message")

    with step("fan-out: 20 subscribers, one publisher"):
        with Server(["--quiet"], quiet=True) as srv:
            rc, res, _, _ = run_bench(["--mode", "fanout", "-c", "20", "-k", "2", "-d", "2", "-w",
                                       "0.5", "-p", str(srv.proc.pid), srv.url])
            eq(rc, 0, "fanout: exit status")
            if good(res, "fanout"):
                eq(res["errors"], 0, "fanout: errors")
                check(res["deliveries"] > 0, "fanout: deliveries", res["deliveries"])
                check(res["broadcasts"] > 0, "fanout: broadcasts", res["broadcasts"])
                eq(res["subscribers"], 20, "fanout: subscribers")
                eq(res["connections_made"], 21, "fanout: connections made (20 + publisher)")
                check(res["deliveries_per_s"] > 0, "fanout: deliveries/s")
                check(res["latency_us"]["p50"] is not None, "fanout: delivery latency")

    with step("idle: 50 connections held"):
        # 50 handshakes at once from one address: more than the default per-address limit.
        with Server(["--quiet", "--max-handshakes-per-ip", "0"], quiet=True) as srv:
            url = srv.url.replace("127.0.0.1", "localhost")
            rc, res, _, _ = run_bench(["--idle", "50", "-d", "1", "-w", "0.3", "-p",
                                       str(srv.proc.pid), url])
            eq(rc, 0, "idle: exit status")
            if good(res, "idle"):
                eq(res["mode"], "idle", "idle: mode")
                eq(res["connections_made"], 50, "idle: connections made")
                eq(res["errors"], 0, "idle: errors")
                check(res["server_rss_before_kb"] is not None and
                      res["server_rss_after_kb"] is not None, "idle: server RSS read")
                check(res["server_bytes_per_conn"] is not None, "idle: bytes per connection",
                      res["server_bytes_per_conn"])

    with step("(g) --deflate --payload json against wsx echo: agreed on every connection"):
        with Server(["--quiet"], quiet=True) as srv:
            rc, res, _, _ = run_bench(["--deflate", "--payload", "json", "-s", "1024", "-c", "8",
                                       "-k", "4", "-d", "1", "-w", "0.3", "-p",
                                       str(srv.proc.pid), srv.url])
            eq(rc, 0, "deflate: exit status")
            if good(res, "deflate"):
                eq(res["errors"], 0, "deflate: errors")
                check(res["messages"] > 0, "deflate: messages completed", res["messages"])
                eq(res["payload"], "json", "deflate: payload")
                eq(res["deflate_offered"], True, "deflate: offered")
                eq(res["connections_made"], 8, "deflate: connections made")
                eq(res["deflate_agreed"], 8, "deflate: agreed on every connection")
                check(res["server_bytes_per_conn"] is not None, "deflate: server memory per "
                      "connection under load", res["server_bytes_per_conn"])
        with Server(["--quiet", "--no-deflate"], quiet=True) as srv:
            rc, res, _, _ = run_bench(["--deflate", "--payload", "json", "-s", "1024", "-c", "4",
                                       "-d", "0.5", "-w", "0", srv.url])
            eq(rc, 0, "deflate refused: exit status")
            if good(res, "deflate refused"):
                eq(res["deflate_agreed"], 0, "deflate refused by --no-deflate: agreed on none")

        # Every message is JSON with the connection and sequence number in it; one byte of the
        # text changed is still caught.
        seen = []

        def corrupt_json(n, opcode, payload):
            if n <= 3:
                seen.append(payload)
            if n == 40:
                b = bytearray(payload)
                b[500] ^= 0x01
                return bytes(b)
            return payload

        with RawServer(corrupt_json) as srv:
            rc, res, _, _ = run_bench(["--payload", "json", "-s", "600", "-c", "1", "-k", "2",
                                       "-d", "1", "-w", "0", srv.url], timeout=30)
            check(rc not in (0, None), "json, corrupt: non-zero exit status", rc)
            if good(res, "json, corrupt"):
                eq(res["errors_by_kind"]["corrupt"], 1, "json, corrupt: one corrupt message")
                check("byte 500 is" in (res["first_error"] or ""), "json, corrupt: the byte is "
                      "named", res["first_error"])
            msgs = []
            for p in seen:
                try:
                    msgs.append(json.loads(p))
                except ValueError as e:
                    check(False, "json payload parses as JSON", f"{e}: {p[:100]!r}")
            eq(len(msgs), 3, "json payload: three messages parsed")
            check(all(m.get("type") == "message" and m.get("name") == "user0000000" and
                      isinstance(m.get("text"), str) for m in msgs),
                  "json payload: type, name and text fields", msgs[:1])
            eq([m.get("seq") for m in msgs], [0, 1, 2], "json payload: seq fields")
            eq({len(p) for p in seen}, {600}, "json payload: exactly -s bytes")

        rc, _, _, _ = run_bench(["--payload", "json", "-s", "82", "ws://127.0.0.1:9/"])
        eq(rc, 2, "json payload below 83 bytes: a usage error")

    with step("(h) wss:// against wsx echo --tls-cert --tls-key"):
        if not shutil.which("openssl"):
            note("openssl not found: wss:// step skipped")
        else:
            with tempfile.TemporaryDirectory(prefix="wsx-bench-certs-") as certs:
                subprocess.run(["sh", os.path.join(HERE, "certs.sh"), certs], check=True,
                               stdout=subprocess.DEVNULL, timeout=30)
                ca = os.path.join(certs, "ca.pem")
                with tls_echo(certs) as srv:
                    url = f"wss://localhost:{srv.port}/"
                    rc, res, _, _ = run_bench(["--cacert", ca, "-c", "10", "-k", "4", "-s", "512",
                                               "-d", "1", "-w", "0.3", "-p", str(srv.proc.pid),
                                               url])
                    eq(rc, 0, "wss: exit status")
                    if good(res, "wss"):
                        eq(res["errors"], 0, "wss: errors")
                        check(res["messages"] > 0, "wss: messages completed", res["messages"])
                        eq(res["connections_made"], 10, "wss: connections made")
                        eq(res["tls"], True, "wss: tls")
                        eq(res["tls_insecure"], False, "wss: verified")
                        check(res["server_us_per_msg"] is not None, "wss: server CPU per message")

                    # Without the CA the certificate cannot be verified: a tls error, at once.
                    rc, res, _, secs = run_bench(["-c", "2", "-d", "1", "-w", "0", url],
                                                 timeout=30)
                    eq(rc, 1, "wss, unknown CA: exit status")
                    if good(res, "wss, unknown CA"):
                        eq(res["errors_by_kind"]["tls"], 2, "wss, unknown CA: tls errors")
                        eq(res["connections_made"], 0, "wss, unknown CA: no connection")
                    check(secs < 10, "wss, unknown CA: fails fast", f"{secs:.1f} s")

                    rc, res, err, _ = run_bench(["--insecure", "-c", "2", "-d", "0.5", "-w", "0",
                                                 url])
                    eq(rc, 0, "wss --insecure: exit status")
                    check(any("WARNING: --insecure" in line for line in err),
                          "wss --insecure: a warning on stderr", err)
                    if good(res, "wss --insecure"):
                        eq(res["tls_insecure"], True, "wss --insecure: reported")

    with step("a target outside loopback is refused before connecting"):
        # 192.0.2.0/24 is TEST-NET-1: nothing answers there, so an attempt would hang until
        # the 30 s connect timeout instead of failing at once.
        rc, res, err, secs = run_bench(["--connect-timeout", "30", "-d", "30",
                                        "ws://192.0.2.1:80/"], timeout=20)
        eq(rc, 2, "remote: exit status")
        check(res is None, "remote: no result printed")
        check(any("not a loopback address" in line for line in err), "remote: a clear message",
              err)
        check(secs < 3, "remote: refused at once", f"{secs:.1f} s")
    note("done")


if __name__ == "__main__":
    run("bench_test", main, timeout=110)
