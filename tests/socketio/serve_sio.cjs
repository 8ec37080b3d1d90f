// The chat of `wsx serve` over Socket.IO (docs/chat-protocol.md, "Socket.IO"; issue 12) with the
// official socket.io-client 4.8.4, in the same rooms as the /ws WebSocket clients and SSE:
//
//   node serve_sio.cjs --mode upgrade|websocket|polling -- SERVER ARGV...
//
// SERVER ARGV is `wsx serve`, or `node ../e2e/mock-server.mjs serve` (the Node stand-in that
// validates these checks now). It is started with `--host 127.0.0.1 --port 0 --history 50`
// (and `--token T` for the token check) and must print "listening on http://HOST:PORT/".
// Each check prints "ok NAME" or "FAIL NAME: why"; the last line is "N passed, N failed".
"use strict";
const { spawn } = require("child_process");
const http = require("http");
const { isDeepStrictEqual: same, inspect } = require("util");
const { io } = require("socket.io-client");
const WebSocket = require("ws");

const argv = process.argv.slice(2);
const sep = argv.indexOf("--");
if (sep < 0 || sep === argv.length - 1) {
  console.error("usage: node serve_sio.cjs --mode upgrade|websocket|polling -- SERVER ARGV...");
  process.exit(2);
}
const serverArgv = argv.slice(sep + 1);
let mode = "upgrade";
for (let i = 0; i < sep; i++) {
  if (argv[i] === "--mode") mode = argv[++i];
  else { console.error(`serve_sio: unknown option ${argv[i]}`); process.exit(2); }
}
const TRANSPORTS = { upgrade: ["polling", "websocket"], websocket: ["websocket"], polling: ["polling"] }[mode];
if (!TRANSPORTS) { console.error(`serve_sio: unknown mode ${mode}`); process.exit(2); }

class CheckError extends Error {}
const fail = (msg) => { throw new CheckError(msg); };
const show = (v) => inspect(v, { depth: 6, breakLength: Infinity, maxStringLength: 80 });
const expectEq = (what, got, want) => { if (!same(got, want)) fail(`${what}: got ${show(got)}, want ${show(want)}`); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the server ----
const servers = new Set();
function startServer(extra = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(serverArgv[0], [...serverArgv.slice(1), "--host", "127.0.0.1", "--port", "0", "--history", "50", ...extra],
      { stdio: ["ignore", "pipe", "inherit"] });
    servers.add(child);
    let buf = "", done = false;
    const timer = setTimeout(() => finish(new Error("no listening line within 10 s")), 10000);
    function finish(e, v) { if (done) return; done = true; clearTimeout(timer); if (e) { child.kill("SIGKILL"); reject(e); } else resolve(v); }
    child.on("error", finish);
    child.on("exit", (code, sig) => { servers.delete(child); finish(new Error(`server exited (${code ?? sig}) before listening`)); });
    child.stdout.on("data", (d) => {
      buf += d;
      const m = buf.match(/listening on http:\/\/[^\s]*:(\d+)\//);
      if (m) { child.stdout.resume(); finish(null, { child, port: Number(m[1]) }); }
    });
  });
}
function stopServer(s) {
  return new Promise((resolve) => {
    if (!s || s.child.exitCode !== null || s.child.signalCode !== null) return resolve();
    const t = setTimeout(() => s.child.kill("SIGKILL"), 5000);
    s.child.on("exit", () => { clearTimeout(t); resolve(); });
    s.child.kill("SIGTERM");
  });
}

// ---- clients ----
let opened = [];
// A Socket.IO chat client: every event recorded as {type: event, ...object} in c.got.
function sioClient(port, extra = {}) {
  const s = io(`http://127.0.0.1:${port}`, { transports: TRANSPORTS, forceNew: true, reconnection: false, timeout: 5000, ...extra });
  opened.push(() => s.disconnect());
  const c = { kind: "sio", s, got: [], waiters: [] };
  s.onAny((event, obj, ...rest) => {
    if (rest.length) c.extra = rest; // the chat adds nothing after the object
    deliver(c, { event, obj });
  });
  c.send = (obj, ...more) => s.emit(obj.type, obj, ...more);
  c.ready = new Promise((resolve, reject) => {
    s.once("connect", resolve);
    s.once("connect_error", (e) => reject(new CheckError(`connect_error: ${e.message}`)));
  });
  return c;
}
// A /ws client of the same chat.
function wsClient(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  opened.push(() => ws.terminate());
  const c = { kind: "ws", ws, got: [], waiters: [] };
  ws.on("message", (d) => { const obj = JSON.parse(d.toString()); deliver(c, { event: obj.type, obj }); });
  c.send = (obj) => ws.send(JSON.stringify(obj));
  c.ready = new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  return c;
}
function deliver(c, e) {
  c.got.push(e);
  for (const w of c.waiters.slice()) {
    if (!e.used && w.pred(e)) { e.used = true; c.waiters.splice(c.waiters.indexOf(w), 1); w.resolve(e); }
  }
}
// The first event of c not waited for yet that matches pred: one already received, or the
// next one (events of one packet arrive before an await on the first of them returns).
function waitEvent(c, what, pred, ms = 5000) {
  const old = c.got.find((e) => !e.used && pred(e));
  if (old) { old.used = true; return Promise.resolve(old); }
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new CheckError(`${c.kind}: no ${what} within ${ms} ms; got ${show(c.got.map((e) => e.obj))}`)), ms);
    c.waiters.push({ pred, resolve: (e) => { clearTimeout(t); resolve(e); } });
  });
}
const ofType = (c, type, extra = () => true, ms) => waitEvent(c, `'${type}'`, (e) => e.event === type && extra(e.obj), ms).then((e) => e.obj);
function checkFraming(c, e) {
  // Socket.IO: the event's name is the object's type, the object the one argument.
  if (c.kind === "sio" && (e.obj === null || typeof e.obj !== "object" || e.obj.type !== e.event)) fail(`event ${e.event} carries ${show(e.obj)}`);
}

async function joined(c, room, name, key) {
  await c.ready;
  await ofType(c, "welcome");
  c.send({ type: "join", room, name, key });
  const j = await ofType(c, "joined");
  const h = await ofType(c, "history");
  const idx = (x) => c.got.findIndex((e) => e.obj === x);
  if (idx(h) !== idx(j) + 1) fail(`${name}: history does not follow joined at once`);
  return { j, h };
}

// ---- the checks ----
const checks = [];
const check = (name, fn, ms = 15000) => checks.push({ name, fn, ms });
let srv = null;

check("welcome", async () => {
  const a = sioClient(srv.port);
  await a.ready;
  const w = await ofType(a, "welcome");
  checkFraming(a, a.got[0]);
  if (typeof w.id !== "number" && typeof w.id !== "string") fail(`welcome id ${show(w.id)}`);
  expectEq("welcome limits", w.limits, { name: 32, room: 32, text: 2000 });
  if (a.extra) fail(`arguments after the object: ${show(a.extra)}`);
});

check("join-history", async () => {
  const a = sioClient(srv.port);
  const { j, h } = await joined(a, "sio-r1", "ann", "k-ann-0123456789");
  expectEq("joined", j, { type: "joined", room: "sio-r1", name: "ann", online: [{ name: "ann", tabs: 1 }] });
  expectEq("history", h, { type: "history", room: "sio-r1", messages: [] });
  for (const e of a.got) checkFraming(a, e);
});

check("same-room-as-ws-and-sse", async () => {
  const room = "mixed";
  const sse = sseListen(srv.port, room);
  const a = sioClient(srv.port), b = wsClient(srv.port);
  await joined(a, room, "sio-ann", "key-sio-ann-0001");
  const pres = ofType(a, "presence", (o) => o.name === "ws-bob");
  await joined(b, room, "ws-bob", "key-ws-bob-00001");
  const p = await pres;
  expectEq("presence of the /ws client on Socket.IO", p, { type: "presence", room, event: "join", name: "ws-bob",
    online: [{ name: "sio-ann", tabs: 1 }, { name: "ws-bob", tabs: 1 }] });
  const onWs = ofType(b, "message", (o) => o.text === "from socket.io é 😀");
  const own = ofType(a, "message", (o) => o.text === "from socket.io é 😀");
  a.send({ type: "message", text: "from socket.io é 😀" });
  const m1 = await onWs, m1own = await own;
  expectEq("the same message on both", m1own, m1);
  expectEq("message fields", Object.keys(m1), ["type", "id", "room", "name", "text", "ts"]);
  expectEq("message", { ...m1, ts: 0 }, { type: "message", id: 1, room, name: "sio-ann", text: "from socket.io é 😀", ts: 0 });
  const onSio = ofType(a, "message", (o) => o.text === "from /ws");
  b.send({ type: "message", text: "from /ws" });
  const m2 = await onSio;
  expectEq("message from /ws on Socket.IO", { ...m2, ts: 0 }, { type: "message", id: 2, room, name: "ws-bob", text: "from /ws", ts: 0 });
  const events = await sse.until(2);
  expectEq("SSE got both", events.map((e) => [e.id, e.event, JSON.parse(e.data).text]), [["1", "message", "from socket.io é 😀"], ["2", "message", "from /ws"]]);
  // A third client, on Socket.IO, gets both in the room's history.
  const c = sioClient(srv.port);
  const { h } = await joined(c, room, "sio-cid", "key-sio-cid-0001");
  expectEq("history", h.messages.map((m) => [m.id, m.name, m.text]), [[1, "sio-ann", "from socket.io é 😀"], [2, "ws-bob", "from /ws"]]);
  // typing goes to the others, not back to the sender
  const tB = ofType(b, "typing", (o) => o.name === "sio-ann");
  a.send({ type: "typing", typing: true });
  expectEq("typing", await tB, { type: "typing", room, name: "sio-ann", typing: true });
  await sleep(200);
  if (a.got.some((e) => e.event === "typing" && e.obj.name === "sio-ann")) fail("typing went back to the sender");
  // the Socket.IO client leaves by disconnecting: presence leave on /ws
  const left = ofType(b, "presence", (o) => o.event === "leave" && o.name === "sio-ann");
  a.s.disconnect();
  await left;
  sse.close();
});

check("errors", async () => {
  const a = sioClient(srv.port);
  await a.ready;
  await ofType(a, "welcome");
  const err = async (what, send, code) => {
    const n = a.got.length;
    send();
    const e = await waitEvent(a, `error ${code} (${what})`, (x) => x.event === "error" && a.got.indexOf(x) >= n);
    checkFraming(a, e);
    expectEq(`${what}: error code`, e.obj.code, code);
    if (typeof e.obj.message !== "string") fail(`${what}: error without a message`);
  };
  await err("message before join", () => a.send({ type: "message", text: "x" }), "not_joined");
  await err("unknown event", () => a.s.emit("bogus", { type: "bogus" }), "bad_type");
  await err("a string instead of an object", () => a.s.emit("message", "text"), "bad_json");
  await err("an array instead of an object", () => a.s.emit("join", ["lobby"]), "bad_json");
  await err("binary", () => a.s.emit("message", { type: "message", text: "x" }, Buffer.from([1])), "binary");
  await err("bad room", () => a.send({ type: "join", room: "no spaces", name: "x" }), "bad_room");
  // the event name counts, not a "type" inside the object
  a.s.emit("join", { type: "message", room: "ev-name", name: "evan" });
  const j = await ofType(a, "joined");
  expectEq("join by the event name", [j.room, j.name], ["ev-name", "evan"]);
  if (!a.s.connected) fail("an error closed the connection");
});

check("token", async () => {
  const t = await startServer(["--token", "sekret"]);
  try {
    const no = sioClient(t.port);
    const e = await no.ready.then(() => null, (x) => x);
    if (!e) fail("connected without the token");
    expectEq("refusal", e.message, "connect_error: unauthorized");
    const yes = sioClient(t.port, { auth: { token: "sekret" } });
    await yes.ready;
    await ofType(yes, "welcome");
    const q = sioClient(t.port, { query: { token: "sekret" } });
    await q.ready;
    await ofType(q, "welcome");
  } finally {
    await stopServer(t);
  }
});

// SSE listener of a room: resolves with the first n events.
function sseListen(port, room) {
  const events = [];
  let buf = "", waiter = null, req;
  const p = new Promise((resolve, reject) => {
    req = http.get({ host: "127.0.0.1", port, path: `/sse?room=${room}`, agent: false }, (res) => {
      if (res.statusCode !== 200) reject(new CheckError(`SSE status ${res.statusCode}`));
      res.setEncoding("utf8");
      res.on("data", (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i); buf = buf.slice(i + 2);
          const e = {};
          for (const line of block.split("\n")) { const m = line.match(/^(\w+): ?(.*)$/); if (m) e[m[1]] = m[2]; }
          if (e.data !== undefined) events.push(e);
          if (waiter) waiter();
        }
      });
    });
    req.on("error", reject);
    resolve();
  });
  return {
    until: async (n, ms = 5000) => {
      await p;
      const end = Date.now() + ms;
      while (events.length < n) {
        if (Date.now() > end) fail(`SSE: ${events.length} events of ${n} within ${ms} ms`);
        await new Promise((r) => { waiter = r; setTimeout(r, 50); });
      }
      return events.slice(0, n);
    },
    close: () => req.destroy(),
  };
}

async function main() {
  let passed = 0, failed = 0;
  try {
    srv = await startServer();
  } catch (e) {
    console.log(`FAIL serve-${mode}/start: ${e.message}\n0 passed, 1 failed`);
    process.exit(1);
  }
  for (const c of checks) {
    const name = `serve-${mode}/${c.name}`;
    const t0 = Date.now();
    let timer;
    try {
      await Promise.race([c.fn(), new Promise((_, rej) => { timer = setTimeout(() => rej(new CheckError(`timed out after ${c.ms} ms`)), c.ms); })]);
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
      passed++;
    } catch (e) {
      console.log(`FAIL ${name}: ${e instanceof CheckError ? e.message : e.stack}`);
      failed++;
    } finally {
      clearTimeout(timer);
      for (const f of opened) { try { f(); } catch (_) { /* closed */ } }
      opened = [];
    }
  }
  await stopServer(srv);
  for (const s of servers) s.kill("SIGKILL");
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
main();
