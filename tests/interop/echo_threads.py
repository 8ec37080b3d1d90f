#!/usr/bin/python3
"""`wsx echo --threads 3` (the multi-loop runner shared with `wsx serve`): a message published
on one loop reaches the subscribers of every loop, SIGHUP leaves a plain server running,
SIGTERM closes every loop's connections with 1001 and exits 0, and a second signal during the
shutdown exits 1 at once, also when the first loop (which reads the signals) has no
connections left."""

import signal
import time

from wsxlib import Raw, Server, check, eq, note, run, step


def main():
    with step("--threads 3: a publish reaches the subscribers of every loop"):
        with Server(["--threads", "3"]) as srv:
            subs = [Raw.connect(srv.port, "/sub") for _ in range(12)]
            pub = Raw.connect(srv.port, "/pub")
            echo = Raw.connect(srv.port, "/")
            # Subscribing happens in on_open, before a message can arrive on that loop; the
            # other loops must have opened theirs too: wait for every open in the log.
            for _ in range(50):
                if sum(" open" in line for line in srv.stderr) >= 14:
                    break
                time.sleep(0.1)
            pub.send_frame(0x1, b"to all loops")
            got = [s.recv_message(5) for s in subs]
            eq(sum(1 for f in got if f is not None and f.payload == b"to all loops"), 12,
               "every subscriber gets the message once")
            echo.send_frame(0x1, b"ping")
            f = echo.recv_message(5)
            check(f is not None and f.payload == b"ping", "an echo on another path still echoes")

            srv.proc.send_signal(signal.SIGHUP)
            echo.send_frame(0x1, b"after hup")
            f = echo.recv_message(5)
            check(f is not None and f.payload == b"after hup", "SIGHUP: a plain server keeps serving")
            check(srv.running, "SIGHUP does not stop the server")

            srv.proc.send_signal(signal.SIGTERM)
            for i, s in enumerate(subs + [pub, echo]):
                s.expect_close(1001, f"SIGTERM: connection {i} gets 1001")
            line = srv.wait_stderr(r"SIGTERM: shutting down \(\d+ connections on this thread\)", 5)
            check(line is not None, "the log says SIGTERM: shutting down (N connections on this thread)")
            eq(srv.wait_exit(10), 0, "exit status after SIGTERM")
            check(srv.wait_stderr(r"\bstopped\b", 2) is not None, "the log ends with stopped")

    with step("--threads 16: a second signal during the shutdown exits 1 at once"):
        # These clients never answer the close: the shutdown would wait 20 s. With 16 loops
        # and 2 clients the first loop, which reads the signals, most likely has none and
        # is done first: it must keep reading signals while the others wait.
        with Server(["--threads", "16", "--shutdown-timeout", "20000"]) as srv:
            mute = [Raw.connect(srv.port, "/") for _ in range(2)]
            for _ in range(50):
                if sum(" open" in line for line in srv.stderr) >= 2:
                    break
                time.sleep(0.1)
            srv.proc.send_signal(signal.SIGINT)
            check(srv.wait_stderr(r"SIGINT: shutting down", 5) is not None,
                  "the log says SIGINT: shutting down")
            check(srv.running, "still running: waiting for the clients to close")
            srv.proc.send_signal(signal.SIGTERM)
            eq(srv.wait_exit(5), 1, "exit status after a second signal")
            check(srv.wait_stderr(r"second signal: exiting now", 2) is not None,
                  "the log says second signal: exiting now")
            for m in mute:
                m.close()
    note("done")


run("echo_threads", main, timeout=60)
