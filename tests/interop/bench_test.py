#!/usr/bin/python3
"""`wsx bench` checks what it measures: a clean run against `wsx echo` reports figures and no
error; a server that corrupts one byte, or drops one message, makes it fail with the right
kind of error in bounded time; fan-out and idle modes run; a target outside loopback is
refused before any connection is attempted. Standard library only."""

from wsxlib import RawServer, Server, check, eq, note, run, run_bench, step


def good(res, name):
    return check(res is not None, f"{name}: one JSON object on stdout")


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

            # Binary messages, larger than one small frame, on two threads.
            rc, res, _, _ = run_bench(["-c", "6", "-k", "2", "-s", "70000", "-b", "-t", "2", "-d",
                                       "1", "-w", "0.2", srv.url])
            eq(rc, 0, "binary, 2 threads: exit status")
            if good(res, "binary"):
                eq(res["errors"], 0, "binary, 2 threads: errors")
                check(res["messages"] > 0, "binary, 2 threads: messages completed")
                eq(res["threads"], 2, "binary, 2 threads: threads")

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
        with Server(["--quiet"], quiet=True) as srv:
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
