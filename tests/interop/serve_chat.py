#!/usr/bin/python3
"""The chat protocol of `wsx serve` (docs/chat-protocol.md) with python websockets clients:
welcome, join with history and the online list, messages to everyone in the room and no one
else, presence, one person with many tabs, typing, every error code, the 16 KiB message limit,
and /metrics moving with the traffic."""

import asyncio
import json
import re
import sys
import time

import websockets

from wsxlib import astep, check, eq, note, run
from wsxserve import Chat, Serve, metrics

HISTORY = 3
MSG_KEYS = {"type", "id", "room", "name", "text", "ts"}


def person(name, tabs=1):
    return {"name": name, "tabs": tabs}


def check_message(m, room, name, text, label, id_=None):
    """A `message` object: exactly its fields, with ts close to now."""
    now = time.time() * 1000
    ok = (isinstance(m, dict) and set(m) == MSG_KEYS and m["type"] == "message" and m["room"] == room
          and m["name"] == name and m["text"] == text and type(m["id"]) is int
          and (id_ is None or m["id"] == id_) and type(m["ts"]) is int and abs(m["ts"] - now) < 10000)
    shown = dict(m, text=m["text"][:40] + "...") if isinstance(m, dict) and len(m.get("text", "")) > 40 else m
    return check(ok, f"{label}: message from {name} in {room}" + (f" with id {id_}" if id_ else ""),
                 f"got {shown} (now {now:.0f})")


async def post(sender, text, receivers, room, name, label, id_=None):
    """sender posts text; every receiver (the sender among them) gets the same message object."""
    await sender.send({"type": "message", "text": text})
    got = [await r.expect("message") for r in receivers]
    check_message(got[0], room, name, text.strip(" \t\r\n"), label, id_)
    check(all(g == got[0] for g in got), f"{label}: the {len(got)} receivers got the same object")
    return got[0]


async def quiet(clients, label):
    """None of clients receives anything for a moment."""
    got = await asyncio.gather(*(c.quiet(0.3) for c in clients))
    extra = {c.label: g for c, g in zip(clients, got) if g}
    check(not extra, label, extra)


async def closed(c, timeout=5):
    await c.close()
    await asyncio.wait_for(c.ws.wait_closed(), timeout)


async def welcome(srv):
    a = await Chat.open(srv.url, "a")
    b = await Chat.open(srv.url, "b")
    w = a.welcome
    eq(set(w), {"type", "server", "id", "limits"}, "welcome fields")
    eq(w["type"], "welcome", "first message type")
    check(re.fullmatch(r"wsx \d+\.\d+\.\d+", w["server"]), f"welcome names the server ({w['server']!r})")
    eq(w["limits"], {"name": 32, "room": 32, "text": 2000}, "welcome limits")
    ids = [a.welcome["id"], b.welcome["id"]]
    check(all(re.fullmatch(r"c\d+", i) for i in ids) and int(ids[1][1:]) > int(ids[0][1:]),
          f"connection ids are c<N>, increasing ({ids})")
    await closed(a)
    await closed(b)


async def rejoin_alone(srv, label):
    """The crash of issue 10: a connection alone in a room without messages joins it three
    times (a lone user renaming themselves twice). Each join leaves the room first; the room
    must survive that."""
    a = await Chat.open(srv.url, "alone")
    for i in range(3):
        await a.send('{"type":"join","room":"lobby","name":"a"}')
        j = await a.expect("joined")
        eq(j, {"type": "joined", "room": "lobby", "name": "a", "online": [person("a")]},
           f"{label}: join {i + 1} of 3 is answered")
        eq(await a.recv(), {"type": "history", "room": "lobby", "messages": []},
           f"{label}: the (empty) history follows joined")
        eq(await a.recv(), {"type": "presence", "room": "lobby", "event": "join", "name": "a",
                            "online": [person("a")]}, f"{label}: presence join {i + 1}")
    await a.send({"type": "join", "room": "lobby", "name": "b"})
    eq((await a.expect("joined"))["name"], "b", f"{label}: a fourth join under another name")
    await a.expect("history")
    await a.expect("presence")
    await post(a, "still alive", [a], "lobby", "b", f"{label}: the room works after the rejoins")
    check(srv.running, f"{label}: the server is still running")
    await closed(a)


async def rooms(srv):
    a = await Chat.open(srv.url, "ann")
    b = await Chat.open(srv.url, "bob")
    c = await Chat.open(srv.url, "cat")

    j, ev = await a.join("r1", "ann")
    eq(j, {"type": "joined", "room": "r1", "name": "ann", "online": [person("ann")], "history": []},
       "joined (first in an empty room)")
    eq(ev, {"type": "presence", "room": "r1", "event": "join", "name": "ann", "online": [person("ann")]},
       "presence join to the joiner itself")
    j, ev = await b.join("r1", "bob")
    both = [person("ann"), person("bob")]
    eq(j, {"type": "joined", "room": "r1", "name": "bob", "online": both, "history": []}, "joined (second person)")
    want = {"type": "presence", "room": "r1", "event": "join", "name": "bob", "online": both}
    eq(ev, want, "presence join for bob (to bob)")
    eq(await a.recv(), want, "presence join for bob (to ann)")
    j, ev = await c.join("r2", "cat")
    eq(j["online"], [person("cat")], "another room has its own online list")
    await quiet([a, b], "presence in r2 does not reach r1")

    m1 = await post(a, "hello", [a, b], "r1", "ann", "first message", 1)
    m2 = await post(b, "  hi ann \n", [b, a], "r1", "bob", "second message (text trimmed)", 2)
    check(m2["ts"] >= m1["ts"], "ts does not go backwards")
    await quiet([c], "r1's messages do not reach r2")
    await post(c, "in r2", [c], "r2", "cat", "room ids count per room", 1)
    await quiet([a, b], "r2's message does not reach r1")
    html = '<script>alert("x&y")</script> <b>bold</b> &amp; \' " <img src=x onerror=alert(1)>'
    await post(a, html, [a, b], "r1", "ann", "HTML delivered verbatim", 3)
    await post(b, "héllo 𝄞 日本 ✓ — \u202etxet", [a, b], "r1", "bob", "Unicode delivered verbatim", 4)
    await post(a, "line 1\n\tline 2", [a, b], "r1", "ann", "inner newline and tab kept", 5)

    # History: the last --history messages, oldest first, as they were sent.
    d = await Chat.open(srv.url, "dan")
    m6 = await post(a, "six", [a, b], "r1", "ann", "message 6", 6)
    m7 = await post(b, "seven", [a, b], "r1", "bob", "message 7", 7)
    j, ev = await d.join("r1", "  dan  ")
    eq(j["name"], "dan", "the name is trimmed")
    eq([h["id"] for h in j["history"]], [5, 6, 7], f"history holds the last {HISTORY}, oldest first (ids)")
    eq(j["history"][1:], [m6, m7], "history entries are the message objects as delivered")
    check_message(j["history"][0], "r1", "ann", "line 1\n\tline 2", "history entry 5", 5)
    eq(j["online"], [person("ann"), person("bob"), person("dan")], "online list of three")
    for x in (a, b):
        eq(await x.recv(), {"type": "presence", "room": "r1", "event": "join", "name": "dan", "online": j["online"]},
           f"presence join for dan (to {x.label})")

    # Moving to another room leaves the first one.
    j, ev = await d.join("r2", "dan")
    eq([h["text"] for h in j["history"]], ["in r2"], "history of r2 on joining it")
    left = {"type": "presence", "room": "r1", "event": "leave", "name": "dan", "online": both}
    eq(await a.recv(), left, "presence leave in r1 when dan moves to r2 (to ann)")
    eq(await b.recv(), left, "presence leave in r1 when dan moves to r2 (to bob)")
    eq(await c.recv(), {"type": "presence", "room": "r2", "event": "join", "name": "dan",
                        "online": [person("cat"), person("dan")]}, "presence join in r2 (to cat)")

    # Without a room: the lobby.
    e = await Chat.open(srv.url, "eve")
    await e.send({"type": "join", "name": "eve"})
    j = await e.expect("joined")
    eq((j["room"], j["online"]), ("lobby", [person("eve")]), "join without a room -> the lobby")
    await e.expect("history")
    await e.expect("presence")

    # leave: the others see it, the leaver gets nothing and is no longer in a room.
    await e.send({"type": "leave"})
    await quiet([e], "leave has no answer")
    await e.send({"type": "message", "text": "after leave"})
    eq((await e.expect("error"))["code"], "not_joined", "message after leave -> error code")
    await b.send({"type": "leave"})
    eq(await a.recv(), {"type": "presence", "room": "r1", "event": "leave", "name": "bob",
                        "online": [person("ann")]}, "presence leave after an explicit leave (to ann)")
    await b.send({"type": "leave"})
    await quiet([a, b], "a second leave changes nothing")
    await post(a, "alone", [a], "r1", "ann", "after bob left, only ann gets r1's messages", 8)
    await quiet([b, c, d, e], "nobody else got it")
    for x in (a, b, c, d, e):
        await closed(x)


async def tabs(srv):
    x1 = await Chat.open(srv.url, "ann-tab1")
    y = await Chat.open(srv.url, "bob")
    x2 = await Chat.open(srv.url, "ann-tab2")
    await x1.join("tabs", "ann")
    await y.join("tabs", "bob")
    await x1.expect("presence")
    j, ev = await x2.join("tabs", "ann")
    two = [person("ann", 2), person("bob")]
    eq(j["online"], two, "joined by a second tab: ann has 2 tabs")
    want = {"type": "online", "room": "tabs", "online": two}
    eq(ev, want, "the second tab triggers `online`, not presence (to the new tab)")
    eq(await x1.recv(), want, "`online` to the first tab")
    eq(await y.recv(), want, "`online` to bob")
    await post(x2, "from tab 2", [x2, x1, y], "tabs", "ann", "a message from one tab reaches every tab")
    # A third tab, then tabs close one by one.
    x3 = await Chat.open(srv.url, "ann-tab3")
    j, ev = await x3.join("tabs", "ann")
    eq(ev["online"], [person("ann", 3), person("bob")], "third tab: 3 tabs")
    for x in (x1, x2, y):
        await x.expect("online")
    await closed(x3)
    eq(await y.recv(), {"type": "online", "room": "tabs", "online": two}, "closing one of three tabs -> `online`")
    await x1.expect("online")
    await x2.expect("online")
    await closed(x2)
    one = [person("ann"), person("bob")]
    eq(await y.recv(), {"type": "online", "room": "tabs", "online": one}, "closing the second-last tab -> `online` (to bob)")
    eq(await x1.recv(), {"type": "online", "room": "tabs", "online": one}, "... and to the tab that stays")
    await closed(x1)
    eq(await y.recv(), {"type": "presence", "room": "tabs", "event": "leave", "name": "ann", "online": [person("bob")]},
       "closing the last tab -> presence leave")
    await quiet([y], "nothing more")
    await closed(y)

    # The online list is sorted by name (byte order), one entry per person.
    cs = []
    for name in ("zoe", "amy", "Bea", "amy", "émile"):
        cs.append(await Chat.open(srv.url, name))
        await cs[-1].join("sorted", name)
    last = await Chat.open(srv.url, "probe")
    j, _ = await last.join("sorted", "probe")
    eq(j["online"], [person("Bea"), person("amy", 2), person("probe"), person("zoe"), person("émile")],
       "online sorted by name in byte order, tabs merged")
    for x in cs + [last]:
        await closed(x)


async def typing(srv):
    p = await Chat.open(srv.url, "ann")
    q = await Chat.open(srv.url, "bob")
    r = await Chat.open(srv.url, "cat")
    o = await Chat.open(srv.url, "other-room")
    for c, name in ((p, "ann"), (q, "bob"), (r, "cat")):
        await c.join("typ", name)
    await o.join("typ2", "ann")
    await p.quiet(0.2)
    await q.quiet(0.2)
    for flag in (True, False):
        await p.send({"type": "typing", "typing": flag})
        want = {"type": "typing", "room": "typ", "name": "ann", "typing": flag}
        eq(await q.recv(), want, f"typing {str(flag).lower()} reaches bob")
        eq(await r.recv(), want, f"typing {str(flag).lower()} reaches cat")
        await quiet([p], f"typing {str(flag).lower()} does not come back to the sender")
        await quiet([o], f"typing {str(flag).lower()} does not reach another room")
    await p.send({"type": "typing"})
    eq((await q.recv())["typing"], False, "typing without the field -> typing false")
    await r.recv()
    for c in (p, q, r, o):
        await closed(c)


async def errors(srv):
    e = await Chat.open(srv.url, "e")
    w = await Chat.open(srv.url, "watcher")
    await w.join("err", "watcher")

    async def refused(payload, code, label):
        await e.send(payload)
        m = await e.recv()
        ok = (set(m) == {"type", "code", "message"} and m["type"] == "error" and m["code"] == code
              and isinstance(m["message"], str) and m["message"])
        check(ok, f"{label} -> error {code}", m)

    cases = [("not json", "bad_json", "text that is not JSON"), ("[1, 2]", "bad_json", "a JSON array"),
             ('"join"', "bad_json", "a JSON string"), ("{", "bad_json", "truncated JSON"),
             ("", "bad_json", "an empty message"),
             ('{"type":"message","text":"a\\u0000b"}', "bad_json", "a NUL escape in a string"),
             ("{}", "bad_type", "an object without type"), ('{"type":"nope"}', "bad_type", "an unknown type"),
             ('{"type":5}', "bad_type", "a numeric type"), ('{"type":"Join","name":"x"}', "bad_type", "type in another case"),
             ({"type": "message", "text": "hi"}, "not_joined", "message before join"),
             ({"type": "typing", "typing": True}, "not_joined", "typing before join")]
    for payload, code, label in cases:
        await refused(payload, code, label)
    for room in ("a b", "x" * 33, "", "   ", 5, None, "é", "../x", "a/b", "#lobby"):
        await refused({"type": "join", "room": room, "name": "eve"}, "bad_room", f"join with room {room!r:.40}")
    for name in ("", "   ", "a\u0001b", "tab\there", "del\x7f", "x" * 33, "é" * 33, 5, None):
        await refused({"type": "join", "room": "err", "name": name}, "bad_name", f"join with name {name!r:.40}")
    await refused({"type": "join", "room": "err"}, "bad_name", "join without a name")
    for name in ("\u0085x", "\u009b31m"):
        await e.send({"type": "join", "room": "c1", "name": name})
        m = await e.recv()
        check(m.get("code") == "bad_name", f"join with name {name!r} (a C1 control) -> error bad_name", m)
        if m.get("type") == "joined":
            await e.expect("history")
            await e.expect("presence")
            await e.send({"type": "leave"})
    await e.ws.send(b"\x01\x02")
    m = await e.recv()
    eq((m.get("type"), m.get("code")), ("error", "binary"), "a binary message -> error")
    await e.ws.send(json.dumps({"type": "message", "text": "x"}).encode())
    eq((await e.recv()).get("code"), "binary", "a binary message holding valid JSON -> error")
    await quiet([w], "refused joins and bad input reach no one")

    name32 = "é" * 31 + "𝄞"
    j, ev = await e.join("err", f" {name32} ")
    eq(j.get("name"), name32, "a name of 32 code points (64+ bytes) is accepted")
    await w.expect("presence")
    for text, label in (("", "empty text"), ("  \n\t ", "blank text"), ("x" * 2001, "2001 characters"),
                        ("é" * 2001, "2001 two-byte characters"), (5, "numeric text"), (None, "null text")):
        await refused({"type": "message", "text": text}, "bad_text", label)
    await refused({"type": "message"}, "bad_text", "a message without text")
    await refused({"type": "join", "room": "err", "name": "x\ny"}, "bad_name", "a joined client sending a bad join")
    await quiet([w], "refused messages reach no one")
    await post(e, "x" * 2000, [e, w], "err", name32, "2000 characters are accepted")
    await post(e, "𝄞" * 2000, [e, w], "err", name32, "2000 four-byte characters (8000 bytes) are accepted")
    await post(e, "  " + "y" * 2000 + "  ", [e, w], "err", name32, "2000 characters plus blanks that are trimmed")
    await post(e, "still here", [e, w], "err", name32, "the connection stays open through all the errors")
    await closed(e)
    await closed(w)


async def keyed_join(c, room, name, key):
    """Sends a join with a key; returns the first answer (joined or error), and reads the
    history and the presence/online event that follow a joined."""
    msg = {"type": "join", "room": room, "name": name}
    if key is not None:
        msg["key"] = key
    await c.send(msg)
    a = await c.recv()
    if a.get("type") == "joined":
        await c.expect("history")
        await c.recv()
    return a


async def names(srv):
    e = await Chat.open(srv.url, "e")
    # Format characters (Unicode Cf), line and paragraph separators: invisible, or they reorder
    # what follows them (bidi). Each one inside, before and after a name.
    fmt = ["\u202e", "\u202a", "\u202d", "\u2066", "\u2067", "\u2069", "\u200b", "\u200c",
           "\u200d", "\u200e", "\u200f", "\ufeff", "\u00ad", "\u061c", "\u180e", "\u2060",
           "\u2028", "\u2029", "\U000e0041", "\U000e007f", "\U000e0001", "\u0600", "\ufff9"]
    bad = []
    for ch in fmt:
        for name in (f"a{ch}b", f"{ch}ann", f"ann{ch}"):
            await e.send({"type": "join", "room": "names", "name": name})
            m = await e.recv()
            if m.get("code") != "bad_name":
                bad.append((name, m))
                if m.get("type") == "joined":
                    await e.recv()  # history
                    await e.recv()
                    await e.send({"type": "leave"})
    eq(bad, [], f"{len(fmt) * 3} names with a format character -> error bad_name")
    for name in ("Zoë", "李雷", "ann-marie", "a b", "😀", "ℌ𝔢𝔩𝔩𝔬"):
        j = await keyed_join(e, "names-ok", name, "ok")
        eq(j.get("name"), name, f"name {name!r} without format characters is accepted")
    await e.send({"type": "leave"})

    for key, label in ((5, "a numeric key"), ("", "an empty key"), ("k" * 129, "a key of 129 bytes"),
                       ([1], "an array key"), (True, "a boolean key")):
        await e.send({"type": "join", "room": "own", "name": "x", "key": key})
        eq((await e.recv()).get("code"), "bad_key", f"{label} -> error")
    j = await keyed_join(e, "own", "x", "k" * 128)
    eq(j.get("type"), "joined", "a key of 128 bytes is accepted")
    j = await keyed_join(e, "own", "x", None)
    eq(j.get("type"), "joined", "a key of null is no key (and x's only tab may change its key)")
    await e.send({"type": "leave"})

    # Names are owned: the key of the person present under a name.
    ann1 = await Chat.open(srv.url, "ann-tab1")
    ann2 = await Chat.open(srv.url, "ann-tab2")
    bea = await Chat.open(srv.url, "bea")
    eq((await keyed_join(ann1, "own", "ann", "key-ann"))["type"], "joined", "ann joins with her key")
    eq((await keyed_join(bea, "own", "bea", "key-bea"))["type"], "joined", "bea joins with hers")
    await ann1.expect("presence")
    for key, label in (("key-bea", "bea's key"), ("key-x", "another key"), (None, "no key")):
        m = await keyed_join(bea, "own", "ann", key)
        eq((m.get("type"), m.get("code")), ("error", "name_taken"), f"taking ann's name with {label} -> error")
    m = await keyed_join(bea, "own", " ann ", "key-bea")
    eq(m.get("code"), "name_taken", "... also with blanks around it")
    await quiet([ann1], "refused joins reach no one")
    await post(bea, "still bea", [bea, ann1], "own", "bea", "the refused joiner stays who it was")
    j = await keyed_join(ann2, "own", "ann", "key-ann")
    eq(j.get("online"), [person("ann", 2), person("bea")], "ann's key: a second tab of ann")
    eq(await ann1.recv(), {"type": "online", "room": "own", "online": [person("ann", 2), person("bea")]},
       "an `online`, not a presence, for the second tab")
    await bea.expect("online")
    # Another room does not care whose name it is here.
    o = await Chat.open(srv.url, "other-room")
    eq((await keyed_join(o, "own2", "ann", "key-o"))["type"], "joined", "the same name in another room")
    # A name held without a key: not protected against a keyed join ...
    k1 = await Chat.open(srv.url, "keyless1")
    eq((await keyed_join(k1, "own3", "kim", None))["type"], "joined", "kim joins without a key")
    m = await keyed_join(o, "own3", "kim", "key-o")
    eq(m.get("code"), "name_taken", "a keyed join of a name held without a key -> error")
    # ... nor against a keyless one: without a key nobody proves to be kim.
    k2 = await Chat.open(srv.url, "keyless2")
    m = await keyed_join(k2, "own3", "kim", None)
    eq(m.get("code"), "name_taken", "a second keyless join of kim -> error (no merging)")
    # Once ann's tabs are gone, the name is free for another key.
    await closed(ann1)
    await bea.expect("online")
    await ann2.send({"type": "leave"})
    eq((await bea.expect("presence"))["event"], "leave", "ann's last tab left")
    j = await keyed_join(bea, "own", "ann", "key-bea")
    eq((j.get("type"), j.get("online")), ("joined", [person("ann")]), "then bea may take the name ann")
    for c in (ann2, bea, o, k1, k2, e):
        await closed(c)


async def too_big(srv):
    o = await Chat.open(srv.url, "big-sender")
    p = await Chat.open(srv.url, "big-peer")
    await o.join("big", "olga")
    await p.join("big", "pete")
    await o.expect("presence")
    # Exactly 16 KiB is allowed (and then too long as chat text).
    base = json.dumps({"type": "message", "text": ""})
    exact = json.dumps({"type": "message", "text": "z" * (16384 - len(base))})
    eq(len(exact.encode()), 16384, "the test message is 16384 bytes")
    await o.send(exact)
    eq((await o.expect("error"))["code"], "bad_text", "a 16384-byte message is read (and refused as too long)")
    await o.ws.send(json.dumps({"type": "message", "text": "z" * (16385 - len(base))}))
    try:
        got = await o.recv(5)
        check(False, "no answer expected to a message over 16 KiB", got)
    except websockets.ConnectionClosed:
        pass
    eq(o.ws.close_code, 1009, "a 16385-byte message -> close code")
    eq(await p.recv(), {"type": "presence", "room": "big", "event": "leave", "name": "olga",
                        "online": [person("pete")]}, "the peer sees the oversized sender leave")
    await post(p, "unaffected", [p], "big", "pete", "the peer still chats")

    q = await Chat.open(srv.url, "big-fragments")
    await q.join("big", "quin")
    await p.expect("presence")
    await q.ws.send(iter(["f" * 5000] * 4))
    try:
        await q.recv(5)
    except websockets.ConnectionClosed:
        pass
    eq(q.ws.close_code, 1009, "20000 bytes in 4 fragments -> close code")
    eq((await p.expect("presence"))["event"], "leave", "the peer sees that sender leave too")
    r = await Chat.open(srv.url, "after")
    j, _ = await r.join("big", "rita")
    eq(j["online"], [person("pete"), person("rita")], "a new client joins fine afterwards")
    await p.expect("presence")
    await post(r, "hi pete", [r, p], "big", "rita", "and chats with the peer")
    for c in (p, r):
        await closed(c)


async def metric_moves(srv):
    port = srv.port
    loop = asyncio.get_running_loop()

    async def m():
        return await loop.run_in_executor(None, metrics, port)

    async def wait(name, want):
        deadline = time.monotonic() + 3
        while True:
            v = (await m()).get(name)
            if v == want or time.monotonic() > deadline:
                return v
            await asyncio.sleep(0.05)

    eq(await wait("wsx_connections_open", 0), 0, "wsx_connections_open once every client closed")
    eq((await m())["wsx_subscribers"], 0, "wsx_subscribers with no client")
    before = await m()
    k1 = await Chat.open(srv.url, "k1")
    k2 = await Chat.open(srv.url, "k2")
    k3 = await Chat.open(srv.url, "k3")
    now = await m()
    eq(now["wsx_connections_open"], 3, "wsx_connections_open with 3 clients")
    eq(now["wsx_upgrades_total"] - before["wsx_upgrades_total"], 3, "wsx_upgrades_total grew by 3")
    await k1.join("m1", "k")
    await k2.join("m1", "l")
    await k1.expect("presence")
    await k3.join("m2", "k")
    now = await m()
    eq((now["wsx_subscribers"], now["wsx_topics"]), (3, 2), "wsx_subscribers and wsx_topics (3 members, 2 rooms)")

    before = await m()
    texts = ["one", "two two", "three 𝄞"]
    sent_bytes = recv_bytes = 0
    for t in texts:
        payload = json.dumps({"type": "message", "text": t})
        await k1.send(payload)
        raw1 = await k1.recv_raw()
        raw2 = await k2.recv_raw()
        eq(raw1, raw2, f"the same bytes to both members ({t!r})")
        sent_bytes += len(payload.encode())
        recv_bytes += 2 * len(raw1.encode())
    after = await m()
    d = {k: after[k] - before[k] for k in ("wsx_messages_received_total", "wsx_messages_sent_total",
                                           "wsx_bytes_received_total", "wsx_bytes_sent_total")}
    eq(d["wsx_messages_received_total"], 3, "wsx_messages_received_total grew by the 3 messages")
    eq(d["wsx_messages_sent_total"], 6, "wsx_messages_sent_total grew by 3 messages x 2 members")
    eq(d["wsx_bytes_received_total"], sent_bytes, "wsx_bytes_received_total grew by the payload bytes")
    eq(d["wsx_bytes_sent_total"], recv_bytes, "wsx_bytes_sent_total grew by the bytes delivered")

    await closed(k2)
    eq(await wait("wsx_connections_open", 2), 2, "wsx_connections_open after one client closed")
    eq((await m())["wsx_subscribers"], 2, "wsx_subscribers after it closed")
    await k1.send({"type": "leave"})
    await wait("wsx_subscribers", 1)
    now = await m()
    eq((now["wsx_subscribers"], now["wsx_topics"]), (1, 1), "after a leave: 1 member, 1 room")
    for c in (k1, k3):
        await closed(c)
    eq(await wait("wsx_connections_open", 0), 0, "wsx_connections_open back to 0")


async def main():
    srv = Serve(["--history", str(HISTORY), "--ping-interval", "0"])
    try:
        await astep("welcome", welcome(srv))
        await astep("joining the room one is alone in, three times", rejoin_alone(srv, "--history 3"))
        await astep("rooms, messages, presence, history", rooms(srv), 40)
        await astep("one person, many tabs", tabs(srv), 30)
        await astep("typing", typing(srv))
        await astep("errors", errors(srv), 40)
        await astep("names: format characters, owned names, keys", names(srv), 40)
        await astep("messages over 16 KiB", too_big(srv))
        check(srv.running, "the server is still running after all of it")
        eq(srv.stop(), 0, "exit status after SIGTERM")
    finally:
        srv.kill()
    srv = Serve(["--history", "0", "--ping-interval", "0"])
    try:
        await astep("the same with --history 0", rejoin_alone(srv, "--history 0"))
        eq(srv.stop(), 0, "--history 0: exit status after SIGTERM")
    finally:
        srv.kill()
    # A server of its own: exact counts, whatever happened above.
    srv = Serve(["--ping-interval", "0"])
    try:
        await astep("/metrics moves with the traffic", metric_moves(srv))
    finally:
        srv.kill()
    note("done")


if __name__ == "__main__":
    note(f"python {sys.version.split()[0]}, websockets {websockets.__version__}")
    run("serve_chat", main, timeout=120)
