#!/usr/bin/python3
"""The Socket.IO front end of `wsx serve` (/socket.io/, docs/chat-protocol.md "Socket.IO") under
hostile and unusual clients, over raw WebSocket and raw HTTP long-polling, with exact answers:

- an event above 16 KiB: on WebSocket the connection closes with 1009 (the server's message
  limit, as on /ws), on polling the session closes (the next GET gets the close packet "1");
  a well-behaved client still chats;
- a POST above 64 KiB (maxPayload of /socket.io/): 413;
- a flood past --rate: exactly max_refusals (100) `rate_limited` errors, then the session
  closes (the chat's 1008 rule);
- a polling session that never reads, joining a room with 0.77 MiB of history 20 times: 2
  joins answered, then `slow_down` once (its queue above 1 MiB), the rest dropped;
- binary attachments: the `error` event `binary`; an unknown namespace: connect_error
  "Invalid namespace", and `/` still connects;
- --token: Authorization: Bearer on the handshake lets the CONNECT in without auth, a wrong
  auth.token gets connect_error {"message":"unauthorized"};
- --origin: a handshake from another origin gets 403 {"code":4,"message":"Forbidden"}
  (polling) or 403 (the WebSocket upgrade); --cors: the polling answers carry
  Access-Control-Allow-Origin for a listed origin only;
- --no-socketio: /socket.io/ is 404;
- --threads 2: Socket.IO is WebSocket only (polling: 400 "Transport unknown"); Socket.IO and
  /ws clients spread over both loops chat in one room.
"""

import json
import time

from wsxlib import Raw, check, eq, note, run, step
from wsxserve import Serve, http_req, wait_metric

WS_PATH = "/socket.io/?EIO=4&transport=websocket"
POLL = "/socket.io/?EIO=4&transport=polling"


def events(r, timeout=1.0):
    """Socket.IO events of namespace / until nothing comes for timeout s (pings answered):
    [(name, object)], or a ("closed", frame) entry when the server closes."""
    got = []
    while True:
        try:
            f = r.recv_frame(timeout)
        except TimeoutError:
            return got
        if f is None or f.opcode == 0x8:
            got.append(("closed", f))
            return got
        if f.opcode != 0x1:
            continue
        p = f.payload
        if p == b"2":
            r.send_frame(0x1, b"3")
        elif p.startswith(b"42["):
            name, obj = json.loads(p[2:])
            got.append((name, obj))
        elif p.startswith(b"4"):
            got.append(("packet", p.decode()))


def sio_ws(port, auth=None, headers=None, query=""):
    """A Socket.IO client on WebSocket connected to / (CONNECT answered): (Raw, events so far)."""
    key = "dGhlIHNhbXBsZSBub25jZQ==" if headers else None  # the one the headers carry
    r = Raw.connect(port, WS_PATH + query, headers=headers, key=key)
    f = r.recv_message()
    check(f is not None and f.payload.startswith(b'0{"sid":"'), "open packet")
    r.send_frame(0x1, b"40" + (json.dumps(auth).encode() if auth is not None else b""))
    return r, events(r, 0.5)


def join(r, room, name):
    r.send_frame(0x1, b'42["join",' + json.dumps({"room": room, "name": name}).encode() + b"]")
    got = events(r, 0.5)
    check(any(n == "joined" for n, _ in got), f"{name} joined {room}", repr(got[:3]))
    return got


def expect_closed(r, name, timeout=3):
    deadline = time.monotonic() + timeout
    while True:
        try:
            f = r.recv_frame(max(0.001, deadline - time.monotonic()))
        except TimeoutError:
            check(False, name, f"still open after {timeout} s")
            return
        if f is None or f.opcode == 0x8:
            break
    check(f is not None and f.payload == b"", name, f"got {f!r}")
    r.close()


def well_behaved(port):
    r, got = sio_ws(port)
    check(any(n == "welcome" for n, _ in got), "a well-behaved client gets welcome", repr(got))
    join(r, "ok", "fine")
    r.send_frame(0x1, b'42["message",{"text":"still here"}]')
    got = events(r, 0.5)
    check(any(n == "message" and o.get("text") == "still here" for n, o in got),
          "a well-behaved client still chats", repr(got))
    r.close()


def big_event(port):
    r, _ = sio_ws(port)
    join(r, "big", "big")
    r.send_frame(0x1, b'42["message",{"text":"' + b"a" * 17000 + b'"}]')
    # On WebSocket the server's message limit (the one of /ws) answers first.
    r.expect_close(1009, "an event above 16 KiB on WebSocket: closed with 1009")
    r.close()
    # On polling (a POST may hold 64 KiB) the front end closes the session.
    st, _, body = http_req(port, "GET", POLL)
    sid = json.loads(body[1:])["sid"]
    q = f"{POLL}&sid={sid}"
    http_req(port, "POST", q, [("Content-Type", "text/plain")], b"40")
    http_req(port, "GET", q)  # welcome
    http_req(port, "POST", q, [("Content-Type", "text/plain")],
             b'42["join",{"room":"big","name":"bigp"}]')
    http_req(port, "GET", q)  # joined, history
    st, _, _ = http_req(port, "POST", q, [("Content-Type", "text/plain")],
                        b'42["message",{"text":"' + b"a" * 17000 + b'"}]')
    eq(st, 200, "an event above 16 KiB on polling: the POST is taken")
    st, _, body = http_req(port, "GET", q)
    eq((st, body), (200, b"1"), "then the session is closed: the next GET gets the close packet")
    well_behaved(port)


def big_post(port):
    st, _, body = http_req(port, "GET", POLL)
    eq(st, 200, "polling handshake")
    sid = json.loads(body[1:])["sid"]
    st, _, _ = http_req(port, "POST", f"{POLL}&sid={sid}", [("Content-Type", "text/plain")],
                        b"4" + b"a" * 70000)
    eq(st, 413, "a POST above 64 KiB: 413")


def flood(port):
    r, _ = sio_ws(port)
    join(r, "flood", "flood")
    for i in range(150):
        r.send_frame(0x1, b'42["message",{"text":"x"}]')
    got = events(r, 2.0)
    limited = [o for n, o in got if n == "error" and o.get("code") == "rate_limited"]
    eq(len(limited), 100, "a flood: 100 rate_limited errors (max_refusals)")
    check(got and got[-1][0] == "closed" and got[-1][1] is not None and got[-1][1].payload == b"",
          "then the session is closed", repr(got[-2:]))
    r.close()


def polling_history(port):
    """A polling session that never GETs, joining again and again a room whose history is
    0.77 MiB: the joins are refused with slow_down once its queue is above 1 MiB, as a /ws
    connection's (serve_history_attack_joins)."""
    w, _ = sio_ws(port)
    join(w, "heavy", "filler")
    text = "\U0001F600" * 2000  # 2000 code points, 8000 bytes
    for i in range(100):
        w.send_frame(0x1, ('42["message",' + json.dumps({"text": text}, ensure_ascii=False) + "]").encode())
    events(w, 1.0)
    w.close()
    st, _, body = http_req(port, "GET", POLL)
    sid = json.loads(body[1:])["sid"]
    q = f"{POLL}&sid={sid}"
    http_req(port, "POST", q, [("Content-Type", "text/plain")], b"40")
    joins = "\x1e".join(f'42["join",{{"room":"heavy","name":"p{i}"}}]' for i in range(20))
    st, _, _ = http_req(port, "POST", q, [("Content-Type", "text/plain")], joins.encode())
    eq(st, 200, "20 joins in one POST")
    got = b""
    for _ in range(50):
        st, _, body = http_req(port, "GET", q)
        if st != 200:
            break
        got += body + b"\x1e"
        if b'"slow_down"' in got and got.count(b'42["history"') >= 2:
            break
    eq((got.count(b'42["joined"'), got.count(b'"code":"slow_down"')), (2, 1),
       "a polling session that does not read: 2 joins answered, then slow_down once")


def binary_and_namespace(port):
    r, _ = sio_ws(port)
    r.send_frame(0x1, b'451-["message",{"_placeholder":true,"num":0}]')
    r.send_frame(0x2, b"\x01\x02")
    got = events(r, 0.5)
    eq([o.get("code") for n, o in got if n == "error"], ["binary"], "binary attachments: error binary")
    r.send_frame(0x1, b"40/nope,")
    got = events(r, 0.5)
    eq(got[:1], [("packet", '44/nope,{"message":"Invalid namespace"}')], "unknown namespace: connect_error")
    r.close()


def token(port):
    r, got = sio_ws(port)
    eq(got[:1], [("packet", '44{"message":"unauthorized"}')], "no token: connect_error unauthorized")
    r.close()
    r, got = sio_ws(port, auth={"token": "nope"})
    eq(got[:1], [("packet", '44{"message":"unauthorized"}')], "a wrong auth.token: connect_error")
    r.close()
    r, got = sio_ws(port, auth={"token": "sekret"})
    check(any(n == "welcome" for n, _ in got), "auth.token: welcome", repr(got))
    r.close()
    hdrs = [("Host", f"127.0.0.1:{port}"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
            ("Authorization", "Bearer sekret")]
    r, got = sio_ws(port, headers=hdrs)
    check(any(n == "welcome" for n, _ in got), "Authorization: Bearer on the handshake: welcome", repr(got))
    r.close()
    r, got = sio_ws(port, query="&token=sekret")
    check(any(n == "welcome" for n, _ in got), "?token= on the handshake: welcome", repr(got))
    r.close()
    # Polling: the token of the handshake holds for the session's later requests.
    st, _, body = http_req(port, "GET", POLL + "&token=sekret")
    sid = json.loads(body[1:])["sid"]
    http_req(port, "POST", f"{POLL}&sid={sid}", [("Content-Type", "text/plain")], b"40")
    st, _, body = http_req(port, "GET", f"{POLL}&sid={sid}")
    check(st == 200 and b'"type":"welcome"' in body, "polling, ?token= on the handshake only: welcome",
          repr(body[:120]))


def origin_and_cors(port):
    st, _, body = http_req(port, "GET", POLL, [("Origin", "http://evil.example")])
    eq((st, body), (403, b'{"code":4,"message":"Forbidden"}'), "--origin: another origin's handshake: 403")
    try:
        Raw.connect(port, WS_PATH, headers=[("Host", f"127.0.0.1:{port}"), ("Upgrade", "websocket"),
                                            ("Connection", "Upgrade"), ("Origin", "http://evil.example"),
                                            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                            ("Sec-WebSocket-Version", "13")])
        check(False, "--origin: another origin's upgrade refused")
    except RuntimeError as e:
        eq(str(e), "handshake: status 403", "--origin: another origin's upgrade: 403")
    st, h, _ = http_req(port, "GET", POLL, [("Origin", "http://good.example")])
    eq((st, h.get("access-control-allow-origin")), (200, "http://good.example"),
       "--cors: a listed origin's polling answer carries Access-Control-Allow-Origin")
    st, h, _ = http_req(port, "GET", POLL)
    eq((st, h.get("access-control-allow-origin")), (200, None), "no Origin: no CORS header")


def topics_metric(port):
    r, _ = sio_ws(port)
    join(r, "m", "metric")
    eq((wait_metric(port, "wsx_topics", 1), wait_metric(port, "wsx_subscribers", 1)), (1, 1),
       "/metrics: one Socket.IO member in one room: wsx_topics 1 (not the socket's own), wsx_subscribers 1")
    r.close()


def no_socketio(port):
    st, _, _ = http_req(port, "GET", POLL)
    eq(st, 404, "--no-socketio: /socket.io/ is 404")


def threads(port):
    st, _, body = http_req(port, "GET", POLL)
    eq((st, body), (400, b'{"code":0,"message":"Transport unknown"}'),
       "--threads 2: no long-polling (a session's requests would reach any loop)")
    sio = [sio_ws(port)[0] for _ in range(6)]
    for i, r in enumerate(sio):
        join(r, "t", f"s{i}")
    for r in sio:
        events(r, 0.3)  # presence of the later joins
    # /ws clients through the Socket.IO events' twin (the raw WebSocket of /ws).
    ws = []
    for i in range(6):
        w = Raw.connect(port, "/ws")
        w.recv_message()  # welcome
        w.send_frame(0x1, json.dumps({"type": "join", "room": "t", "name": f"w{i}"}).encode())
        ws.append(w)
    time.sleep(0.5)
    for r in sio:
        events(r, 0.2)
    for w in ws:
        while True:
            try:
                w.recv_frame(0.1)
            except TimeoutError:
                break
    sio[0].send_frame(0x1, b'42["message",{"text":"from sio"}]')
    ws[0].send_frame(0x1, json.dumps({"type": "message", "text": "from ws"}).encode())
    ok_sio = 0
    for r in sio:
        got = events(r, 0.5)
        texts = sorted(o.get("text") for n, o in got if n == "message")
        ok_sio += texts == ["from sio", "from ws"]
    ok_ws = 0
    for w in ws:
        texts = []
        while True:
            try:
                f = w.recv_frame(0.5)
            except TimeoutError:
                break
            m = json.loads(f.payload)
            if m.get("type") == "message":
                texts.append(m["text"])
        ok_ws += sorted(texts) == ["from sio", "from ws"]
    eq((ok_sio, ok_ws), (6, 6), "--threads 2: every Socket.IO and /ws member got both messages")
    for c in sio + ws:
        c.close()


def main():
    with step("bounds and refusals"):
        with Serve(["--quiet", "--rate", "1", "--burst", "1"]) as s:
            big_event(s.port)
            big_post(s.port)
            flood(s.port)
            binary_and_namespace(s.port)
    with step("history to a polling session that does not read"):
        with Serve(["--quiet", "--rate", "0", "--rate-per-ip", "0"]) as s:
            polling_history(s.port)
    with step("token"):
        with Serve(["--quiet", "--token", "sekret"]) as s:
            token(s.port)
    with step("origin and cors"):
        with Serve(["--quiet", "--origin", "http://good.example", "--cors", "http://good.example"]) as s:
            origin_and_cors(s.port)
            topics_metric(s.port)
    with step("--no-socketio"):
        with Serve(["--quiet", "--no-socketio"]) as s:
            no_socketio(s.port)
    with step("--threads 2"):
        with Serve(["--quiet", "--threads", "2"]) as s:
            threads(s.port)
    note("done")


if __name__ == "__main__":
    run("serve_sio_abuse", main, timeout=100)
