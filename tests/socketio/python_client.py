#!/usr/bin/python3
"""Debian's python3-socketio client (5.7.2, a second implementation of the protocol) against a
Socket.IO server with the `wsx sio` behaviours of issue 12 (tests/socketio/ref_sio.cjs is the
reference).

    /usr/bin/python3 python_client.py [--mode upgrade|websocket|polling|all] -- SERVER ARGV...

The server is started as `SERVER ARGV... --host 127.0.0.1 --port 0` and must print a line
"listening on PORT" or "listening on http://HOST:PORT/". Each check prints "ok NAME" or
"FAIL NAME: why"; the last line is "N passed, N failed"; the exit status is 1 when any failed.
Needs python3-socketio with python3-requests (polling) and python3-websocket (WebSocket).

With connection state recovery on, the server appends an offset string to every event it emits
without an ack (this client does not know of it and passes it on as one more argument): the
checks expect it exactly when the CONNECT answer carried a pid.
"""
import logging
import queue
import re
import subprocess
import sys
import threading
import time

import socketio

TIMEOUT = 5.0
MODES = {"upgrade": ["polling", "websocket"], "websocket": ["websocket"], "polling": ["polling"]}


class CheckError(Exception):
    pass


def expect_eq(what, got, want):
    if got != want or type(got) is not type(want):
        raise CheckError(f"{what}: got {got!r:.300}, want {want!r:.300}")


class Server:
    """The server under test, on 127.0.0.1 and a port it chooses."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv + ["--host", "127.0.0.1", "--port", "0"],
                                     stdout=subprocess.PIPE, text=True)
        got = queue.Queue()

        def read():
            for line in self.proc.stdout:
                got.put(line)
            got.put(None)

        threading.Thread(target=read, daemon=True).start()
        end = time.monotonic() + 10
        while True:
            try:
                line = got.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                code = self.proc.poll()
                self.stop()
                raise RuntimeError("the server exited (%s) without a listening line" % code
                                   if code is not None else
                                   "the server printed no listening line within 10 s")
            m = re.match(r"^listening on (?:\S+?://\S*?:)?(\d+)/?\s*$", line)
            if m:
                self.port = int(m.group(1))
                return

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Client(socketio.Client):
    """A client that records every event per namespace and the CONNECT answers."""

    def __init__(self, transports):
        super().__init__(reconnection=False, request_timeout=TIMEOUT)
        self.transports = transports
        self.events = queue.Queue()
        self.connect_data = {}
        self.errors = queue.Queue()

    def _handle_connect(self, namespace, data):
        self.connect_data[namespace or "/"] = data
        super()._handle_connect(namespace, data)

    def _trigger_event(self, event, namespace, *args):
        if event == "connect_error":
            self.errors.put((namespace, list(args)))
        elif event not in ("connect", "disconnect"):
            self.events.put((namespace, event, list(args)))
        return super()._trigger_event(event, namespace, *args)

    def open(self, port, namespaces=("/",), auth=None, wait=TIMEOUT):
        self.connect(f"http://127.0.0.1:{port}", namespaces=list(namespaces), auth=auth,
                     transports=self.transports, wait_timeout=wait)
        return self

    def next(self, event, namespace="/", ack=False):
        """The arguments of the next `event` on namespace (events before it are skipped), the
        recovery offset checked and taken off."""
        end = time.monotonic() + TIMEOUT
        while True:
            try:
                ns, ev, args = self.events.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise CheckError(f"no '{event}' on {namespace} within {TIMEOUT} s") from None
            if ns == namespace and ev == event:
                return self.strip(args, namespace, event, ack)

    def strip(self, args, namespace, what, ack=False):
        if ack or "pid" not in (self.connect_data.get(namespace) or {}):
            return args
        if not args or not isinstance(args[-1], str) or not args[-1]:
            raise CheckError(f"{what}: no offset string as last argument (recovery is on): {args!r:.200}")
        return args[:-1]

    def seen(self, event, namespace="/"):
        """The `event`s received so far (the queue is drained)."""
        n = 0
        while True:
            try:
                ns, ev, _ = self.events.get_nowait()
            except queue.Empty:
                return n
            n += ns == namespace and ev == event

    def ack(self, event, *args, namespace="/"):
        """Emits with an ack; the ack's arguments as a list."""
        got = queue.Queue()
        self.emit(event, tuple(args), namespace=namespace, callback=lambda *a: got.put(list(a)))
        try:
            return got.get(timeout=TIMEOUT)
        except queue.Empty:
            raise CheckError(f"no ack to '{event}' within {TIMEOUT} s") from None


def checks(port, transports):
    made = []

    def client(namespaces=("/",), auth=None):
        c = Client(transports)
        made.append(c)
        return c.open(port, namespaces, auth)

    def connect_auth():
        auth = {"token": "py", "n": 1, "list": [1, "é", None]}
        c = client(auth=auth)
        expect_eq("auth", c.next("auth"), [auth])
        if transports == ["websocket"] and c.transport() != "websocket":
            raise CheckError(f"transport {c.transport()}")

    def message_back():
        c = client()
        args = ["hi", 1, -2.5, {"a": [1, None, True], "b": {}}, False, None, []]
        c.emit("message", tuple(args))
        expect_eq("message-back", c.next("message-back"), args)

    def utf8():
        c = client()
        args = ["é € 😀 \u2028 \u2029", "𝄞🎉", "\x00\x01\"\\/", "😀" * 5000]
        c.emit("message", tuple(args))
        expect_eq("message-back", c.next("message-back"), args)

    def binary():
        c = client()
        args = [b"\x00\x01\xfe\xff", "t", {"nested": "é".encode(), "l": [b"\x09"]}, bytes(range(256)) * 300]
        c.emit("message", tuple(args))
        expect_eq("binary message-back", c.next("message-back"), args)

    def ack():
        c = client()
        expect_eq("ack", c.ack("message-with-ack", "a", 2, {"k": [3]}), ["a", 2, {"k": [3]}])
        expect_eq("binary ack", c.ack("message-with-ack", b"\x01\x02", "x"), [b"\x01\x02", "x"])

    def server_ack():
        c = client()
        c.on("server-ack-request", lambda *a: ("answer", a[0] + 1, b"\x07"))
        expect_eq("ack of request-ack", c.ack("request-ack", 41), ["answer", 42, b"\x07"])
        expect_eq("server-ack-request", c.next("server-ack-request", ack=True), [41])

    def broadcast():
        a, b, o = client(), client(), client()
        expect_eq("a joins", a.ack("join", "pyroom"), ["joined:pyroom"])
        expect_eq("b joins", b.ack("join", "pyroom"), ["joined:pyroom"])
        a.emit("broadcast", ("pyroom", {"x": 1, "b": b"\xff"}))
        expect_eq("b got", b.next("broadcasted"), [{"x": 1, "b": b"\xff"}])
        for s in (a, o):  # a round trip: anything sent before it has arrived
            expect_eq("sync", s.ack("message-with-ack", "sync"), ["sync"])
        expect_eq("the sender got its broadcast", a.seen("broadcasted"), 0)
        expect_eq("a socket outside the room got it", o.seen("broadcasted"), 0)

    def broadcast_all():
        a, b = client(), client()
        a.emit("broadcast-all", ("everyone",))
        expect_eq("a got", a.next("broadcasted-all"), ["everyone"])
        expect_eq("b got", b.next("broadcasted-all"), ["everyone"])

    def custom():
        c = client(namespaces=("/", "/custom"), auth={"ns": "both"})
        expect_eq("auth on /custom", c.next("auth", "/custom"), [{"ns": "both"}])
        c.emit("message", ("on custom",), namespace="/custom")
        expect_eq("message-back on /custom", c.next("message-back", "/custom"), ["on custom"])
        expect_eq("ack on /custom", c.ack("message-with-ack", "c", namespace="/custom"), ["c"])
        expect_eq("ack on /", c.ack("message-with-ack", "r"), ["r"])
        if c.get_sid("/") == c.get_sid("/custom"):
            raise CheckError("the same socket id in two namespaces")

    def refused():
        c = Client(transports)
        made.append(c)
        try:
            c.open(port, ("/nope",), wait=1)  # the client waits this long after the refusal
        except socketio.exceptions.ConnectionError as e:
            expect_eq("error", str(e), "One or more namespaces failed to connect")
        else:
            raise CheckError("/nope was accepted")
        try:
            ns, data = c.errors.get(timeout=TIMEOUT)
        except queue.Empty:
            raise CheckError("no connect_error") from None
        expect_eq("connect_error", (ns, data), ("/nope", [{"message": "Invalid namespace"}]))

    return made, [("connect-auth", connect_auth), ("message-back", message_back), ("utf8", utf8),
                  ("binary", binary), ("ack", ack), ("server-ack", server_ack),
                  ("broadcast", broadcast), ("broadcast-all", broadcast_all),
                  ("custom", custom), ("refused-namespace", refused)]


def main():
    args = sys.argv[1:]
    if "--" not in args or args.index("--") == len(args) - 1:
        print(__doc__, file=sys.stderr)
        return 2
    sep = args.index("--")
    opts, argv = args[:sep], args[sep + 1:]
    mode = "all"
    if opts[:1] == ["--mode"] and len(opts) == 2:
        mode = opts[1]
    elif opts:
        print(f"python_client: bad options {opts}", file=sys.stderr)
        return 2
    modes = list(MODES) if mode == "all" else [mode]
    if any(m not in MODES for m in modes):
        print(f"python_client: unknown mode {mode}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.CRITICAL)
    passed = failed = 0
    try:
        server = Server(argv)
    except (OSError, RuntimeError) as e:
        print(f"FAIL python/start: {e}\n0 passed, 1 failed")
        return 1
    try:
        for m in modes:
            for name, _ in checks(server.port, MODES[m])[1]:
                made, table = checks(server.port, MODES[m])  # a fresh list of clients per check
                fn = dict(table)[name]
                t0 = time.monotonic()
                try:
                    fn()
                    print(f"ok   python-{m}/{name} ({(time.monotonic() - t0) * 1000:.0f} ms)", flush=True)
                    passed += 1
                except (CheckError, socketio.exceptions.SocketIOError) as e:
                    print(f"FAIL python-{m}/{name}: {type(e).__name__}: {e}", flush=True)
                    failed += 1
                finally:
                    for c in made:
                        try:
                            c.disconnect()
                        except Exception:  # already closed
                            pass
    finally:
        server.stop()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
