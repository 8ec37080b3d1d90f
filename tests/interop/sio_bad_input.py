#!/usr/bin/python3
"""Socket.IO v5 over raw WebSocket against `wsx sio` (issue 12, docs/socketio.md): hostile and
malformed clients get the reference's answers, and every per-socket bound is pushed against
with its exact outcome.

- first packet not CONNECT, CONNECT twice, CONNECT_ERROR from a client, an event for a
  namespace the client is not in, bad JSON, 11 attachments: the session closes (a close
  frame without a status code, as the reference's WebSocket sends), and a well-behaved
  client still works afterwards;
- an unknown namespace: 44/nope,{"message":"Invalid namespace"}, the session stays;
- no CONNECT within --connect-timeout: closed;
- 10 attachments (the bound): echoed; attachments above maxPayload: closed;
- 300 request-ack never answered: exactly 256 server-ack-request (max_pending_acks), the rest
  dropped, the session alive;
- 300 joins: exactly 255 acks (max_rooms 256 with the socket's own room), the session alive;
- a CONNECT of 20000 bytes: connect_error "CONNECT payload too large" (max_auth_bytes), the
  session alive;
- admission: by default the 257th connection from one address gets 503 (--max-per-ip 256);
  with --max-per-ip 0 --max-handshakes-per-ip 0 --max-sessions-per-ip 20000 (as bench/sio/run.sh) 300 sessions
  from 127.0.0.1 all get their open packet.
"""

import json
import socket
import time

from wsxlib import Raw, Server, check, eq, note, run, step

PATH = "/socket.io/?EIO=4&transport=websocket"


class Sio(Server):
    command = "sio"
    ws_path = "/socket.io/"


def connect(port):
    """A WebSocket session that got its open packet."""
    r = Raw.connect(port, PATH)
    f = r.recv_message()
    check(f is not None and f.payload.startswith(b'0{"sid":"'), "open packet")
    return r


def texts(r, timeout=2.0):
    """Text messages until nothing comes for timeout seconds (pings answered)."""
    got = []
    while True:
        try:
            f = r.recv_frame(timeout)
        except TimeoutError:
            return got
        if f is None or f.opcode == 0x8:
            got.append(f)
            return got
        if f.opcode == 0x1 and f.payload == b"2":
            r.send_frame(0x1, b"3")
            continue
        got.append(f.payload if f.opcode == 0x1 else ("bin", f.payload))


def expect_closed(r, name, timeout=3):
    """The server ends the session: a close frame without status, then TCP closes."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            f = r.recv_frame(max(0.001, deadline - time.monotonic()))
            if f is None or f.opcode == 0x8:
                break
    except TimeoutError:
        check(False, name, f"still open after {timeout} s")
        return
    check(f is not None and f.payload == b"", name, f"got {f!r}")
    r.send_frame(0x8, b"")
    check(r.wait_eof(3) is not None, f"{name}: TCP closed")
    r.close()


def sio_connect(r, nsp=""):
    r.send_frame(0x1, b"40" + (nsp.encode() + b"," if nsp else b""))
    got = texts(r, 1.0)
    check(len(got) >= 2 and isinstance(got[0], bytes) and got[0].startswith(b"40"), "CONNECT answered",
          repr(got))
    return got


def well_behaved(port):
    r = connect(port)
    sio_connect(r)
    r.send_frame(0x1, b'42["message","still here"]')
    got = texts(r, 1.0)
    check(any(isinstance(g, bytes) and g.startswith(b'42["message-back","still here"') for g in got),
          "a well-behaved client still gets its message-back", repr(got))
    r.close()


def closes(port):
    cases = [
        ("first packet not CONNECT", [b'42["message","x"]']),
        ("CONNECT twice", [b"40", b"40"]),
        ("CONNECT_ERROR from a client", [b'44{"message":"x"}']),
        ("an event for a namespace not joined", [b"40", b'42/custom,["message"]']),
        ("bad JSON", [b"40", b'42["message",']),
        ("11 attachments", [b"40", b'4511-["message"]']),
        ("a DISCONNECT for a namespace not joined", [b"40", b"41/custom,"]),
    ]
    for name, packets in cases:
        r = connect(port)
        for p in packets:
            r.send_frame(0x1, p)
        expect_closed(r, f"{name}: session closed")
    well_behaved(port)


def unknown_namespace(port):
    r = connect(port)
    r.send_frame(0x1, b"40/nope,")
    got = texts(r, 1.0)
    eq(got[:1], [b'44/nope,{"message":"Invalid namespace"}'], "unknown namespace: connect_error")
    sio_connect(r, "/custom")
    r.close()


def big_connect(port):
    r = connect(port)
    r.send_frame(0x1, b'40{"t":"' + b"a" * 20000 + b'"}')
    r.send_frame(0x1, b"40")  # at once: this server's connect timeout is 300 ms
    got = texts(r, 1.0)
    eq(got[:1], [b'44{"message":"CONNECT payload too large"}'],
       "a CONNECT above 16384 bytes: connect_error")
    check(len(got) >= 2 and isinstance(got[1], bytes) and got[1].startswith(b'40{"sid":"'),
          "the session stays: the next CONNECT is answered", repr(got[:3]))
    r.close()


def connect_timeout(port):
    r = connect(port)
    t0 = time.monotonic()
    expect_closed(r, "no CONNECT: closed")
    waited = time.monotonic() - t0
    check(0.2 <= waited <= 2.0, "closed after --connect-timeout 300", f"{waited:.2f} s")


def attachments(port):
    r = connect(port)
    sio_connect(r)
    holders = ",".join(f'{{"_placeholder":true,"num":{i}}}' for i in range(10))
    r.send_frame(0x1, f'4510-["message",{holders}]'.encode())
    for i in range(10):
        r.send_frame(0x2, bytes([i]) * 3)
    got = texts(r, 1.0)
    check(len(got) >= 11 and isinstance(got[0], bytes) and got[0].startswith(b'4510-["message-back"'),
          "10 attachments: echoed", repr(got[:2]))
    eq([g[1] for g in got[1:11] if isinstance(g, tuple)], [bytes([i]) * 3 for i in range(10)],
       "10 attachments: the same bytes back, in order")
    r.close()


def attachments_too_big(port):
    # --max-payload 1000 on this server: two attachments of 600 bytes pass it together.
    r = connect(port)
    sio_connect(r)
    r.send_frame(0x1, b'452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    r.send_frame(0x2, b"a" * 600)
    r.send_frame(0x2, b"b" * 600)
    expect_closed(r, "attachments above maxPayload: session closed")


def pending_acks(port):
    r = connect(port)
    sio_connect(r)
    for i in range(300):
        r.send_frame(0x1, f'42{i}["request-ack",{i}]'.encode())
    got = texts(r, 1.5)
    reqs = [g for g in got if isinstance(g, bytes) and g.startswith(b"42") and b"server-ack-request" in g]
    eq(len(reqs), 256, "300 request-ack never answered: 256 server-ack-request (max_pending_acks)")
    # Answering one frees a slot: the next request-ack gets through.
    first = json.loads(reqs[0][reqs[0].index(b"["):])
    ack_id = int(reqs[0][2:reqs[0].index(b"[")])  # "42<id>[...": the Engine.IO 4, EVENT 2
    r.send_frame(0x1, f'43{ack_id}["answer"]'.encode())
    r.send_frame(0x1, b'42999["request-ack","again"]')
    got = texts(r, 1.0)
    check(any(isinstance(g, bytes) and g.startswith(b"430") and b'"answer"' in g for g in got),
          "the answer goes back as the ack of its request-ack", repr(got[:3]))
    check(any(isinstance(g, bytes) and b'"server-ack-request","again"' in g for g in got),
          "a slot freed: the next request-ack is asked", repr(got[:3]))
    note(f"first server-ack-request: {first}")
    r.close()


def rooms(port):
    r = connect(port)
    sio_connect(r)
    for i in range(300):
        r.send_frame(0x1, f'42{i}["join","room-{i}"]'.encode())
    got = texts(r, 1.5)
    acks = [g for g in got if isinstance(g, bytes) and g.startswith(b"43")]
    eq(len(acks), 255, "300 joins: 255 acked (max_rooms 256, the socket's own room included)")
    eq(acks[0] if acks else None, b'430["joined:room-0"]', "first join acked")
    r.send_frame(0x1, b'42["message","alive"]')
    got = texts(r, 1.0)
    check(any(isinstance(g, bytes) and g.startswith(b'42["message-back","alive"') for g in got),
          "the socket still works", repr(got[:2]))
    r.close()


def per_address(port, n, limited):
    held = []
    try:
        for i in range(n):
            if limited and i == 256:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                head = s.recv(4096)
                s.close()
                check(head.startswith(b"HTTP/1.1 503") and b"\r\nRetry-After: 5\r\n" in head,
                      "the 257th connection from 127.0.0.1 gets 503 with Retry-After: 5", head[:80])
                return
            held.append(connect(port))
        eq(len(held), n, f"{n} sessions from 127.0.0.1")
    finally:
        for r in held:
            r.close()


def main():
    with Sio(["--quiet", "--recovery", "0", "--max-payload", "1000"]) as s:
        with step("packets that close the session"):
            closes(s.port)
        with step("unknown namespace"):
            unknown_namespace(s.port)
        with step("attachments"):
            attachments(s.port)
            attachments_too_big(s.port)
        with step("pending acks bound"):
            pending_acks(s.port)
        with step("rooms bound"):
            rooms(s.port)
    with step("admission: --max-per-ip 256 by default"):
        with Sio(["--quiet"]) as s:
            per_address(s.port, 257, True)
    with step("admission: --max-per-ip 0 --max-handshakes-per-ip 0 (and sessions) lift it"):
        with Sio(["--quiet", "--max-per-ip", "0", "--max-handshakes-per-ip", "0", "--max-handshakes", "0",
                  "--max-sessions-per-ip", "20000"]) as s:
            per_address(s.port, 300, False)
    with step("connect timeout"):
        with Sio(["--quiet", "--connect-timeout", "300"]) as s:
            big_connect(s.port)
            connect_timeout(s.port)


if __name__ == "__main__":
    run("sio_bad_input", main, timeout=100)
