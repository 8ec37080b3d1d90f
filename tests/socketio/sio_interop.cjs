// The official socket.io-client 4.8.4 against a Socket.IO server with the `wsx sio`
// behaviours (issue 12; tests/socketio/ref_sio.cjs is the reference), in one transport mode:
//
//   node sio_interop.cjs --mode upgrade|websocket|polling [--only NAME,NAME] -- SERVER ARGV...
//
// The server is started as `SERVER ARGV... --host 127.0.0.1 --port P --ping-interval 500
// --ping-timeout 2000 --cors-origin http://allowed.example --cors-credentials` (P is 0 the first time, then the
// port it printed; maxPayload is left at its default, 1000000), must print a line
// "listening on PORT" or "listening on http://HOST:PORT/", and is killed (SIGTERM) and
// started again on the same port by the `restart` check. Every check is named, bounded in
// time and prints "ok NAME" or "FAIL NAME: why"; the last line is "N passed, N failed" and the
// exit status is 1 when any failed.
//
// With connection state recovery on (the reference has it), the server appends an offset
// string to every event it emits; the checks expect exactly the arguments plus that one
// string when the socket got a pid, and exactly the arguments when it did not. An event the
// server emits with an ack (server-ack-request) carries no offset (the reference stores only
// events without ack for replay). On a reconnection the client puts {pid, offset} before its
// auth in the CONNECT payload, so the `auth` echo then shows them too (the reference's bytes).
"use strict";
const { spawn } = require("child_process");
const http = require("http");
const { isDeepStrictEqual: same, inspect } = require("util");
const { io, Manager } = require("socket.io-client");
const eioClient = require("engine.io-client");

// ---- command line ----
const argv = process.argv.slice(2);
const sep = argv.indexOf("--");
if (sep < 0 || sep === argv.length - 1) {
  console.error("usage: node sio_interop.cjs --mode upgrade|websocket|polling [--only A,B] -- SERVER ARGV...");
  process.exit(2);
}
const serverArgv = argv.slice(sep + 1);
let mode = "upgrade", only = null;
for (let i = 0; i < sep; i++) {
  if (argv[i] === "--mode") mode = argv[++i];
  else if (argv[i] === "--only") only = argv[++i].split(",");
  else { console.error(`sio_interop: unknown option ${argv[i]}`); process.exit(2); }
}
const TRANSPORTS = { upgrade: ["polling", "websocket"], websocket: ["websocket"], polling: ["polling"] }[mode];
if (!TRANSPORTS) { console.error(`sio_interop: unknown mode ${mode}`); process.exit(2); }
const PING_INTERVAL = 500, PING_TIMEOUT = 2000, CORS_ORIGIN = "http://allowed.example";

// ---- the server under test ----
let server = null, port = 0;

function startServer(p) {
  return new Promise((resolve, reject) => {
    const args = [...serverArgv.slice(1), "--host", "127.0.0.1", "--port", String(p),
                  "--ping-interval", String(PING_INTERVAL), "--ping-timeout", String(PING_TIMEOUT),
                  "--cors-origin", CORS_ORIGIN, "--cors-credentials"];
    const child = spawn(serverArgv[0], args, { stdio: ["ignore", "pipe", "inherit"] });
    let buf = "", done = false;
    const timer = setTimeout(() => fail(new Error("no listening line within 10 s")), 10000);
    function fail(e) { if (!done) { done = true; clearTimeout(timer); child.kill("SIGKILL"); reject(e); } }
    child.on("error", fail);
    child.on("exit", (code, sig) => fail(new Error(`server exited (${code ?? sig}) before listening`)));
    child.stdout.on("data", (d) => {
      if (done) return;
      buf += d;
      const m = buf.match(/^listening on (?:\S+?:\/\/\S*?:)?(\d+)\/?\s*$/m);
      if (m) { done = true; clearTimeout(timer); server = child; port = Number(m[1]); child.stdout.resume(); resolve(); }
    });
  });
}

function stopServer() {
  return new Promise((resolve) => {
    const child = server;
    server = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.on("exit", () => { clearTimeout(t); resolve(); });
    child.kill("SIGTERM");
  });
}

const url = (nsp = "") => `http://127.0.0.1:${port}${nsp}`;

// ---- helpers ----
class CheckError extends Error {}
const fail = (msg) => { throw new CheckError(msg); };
const show = (v) => inspect(v, { depth: 6, breakLength: Infinity, maxStringLength: 80 });
function expectEq(what, got, want) {
  if (!same(got, want)) fail(`${what}: got ${show(got)}, want ${show(want)}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let opened = []; // sockets and managers of the current check, closed after it
function track(x) { opened.push(x); return x; }

function opts(extra = {}) {
  return { transports: TRANSPORTS, forceNew: true, reconnection: false, timeout: 5000, autoConnect: false, ...extra };
}
// A socket to namespace nsp on its own connection, connected (rejects on connect_error).
function socket(nsp = "/", extra = {}) {
  return track(io(url(nsp), opts(extra)));
}
// Connects s, and resolves once it is connected; first records every event it gets.
function connect(s, ms = 5000) {
  record(s);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new CheckError(`no connect on ${s.nsp} within ${ms} ms`)), ms);
    s.once("connect", () => { clearTimeout(t); resolve(s); });
    s.once("connect_error", (e) => { clearTimeout(t); reject(new CheckError(`connect_error on ${s.nsp}: ${e.message}`)); });
    s.connect();
  });
}
// Every event s receives, in order, as [name, ...args] (the offset left on): s.got.
function record(s) {
  if (s.got) return;
  s.got = [];
  s.onAny((...a) => s.got.push(a));
}
// Resolves with the args (an ack callback last, if any) of the next `ev` on s.
function next(s, ev, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new CheckError(`no '${ev}' on ${s.nsp} within ${ms} ms`)), ms);
    s.once(ev, (...a) => { clearTimeout(t); resolve(a); });
  });
}
// Emits with an ack; resolves with the ack's arguments. ACK_MS: the many-client checks wait
// longer (80 requests at once on a loaded 2-core machine, a sanitizer build).
let ACK_MS = 5000;
function ack(s, ev, ...args) {
  const ms = ACK_MS;
  const p = new Promise((resolve, reject) => {
    s.timeout(ms).emit(ev, ...args, (err, ...res) => (err ? reject(new CheckError(`no ack to '${ev}': ${err.message} (timeout ${ms} ms)`)) : resolve(res)));
  });
  p.catch(() => {}); // a check that failed before awaiting it leaves no unhandled rejection
  return p;
}
// The event's arguments without the recovery offset: checks that the offset is there
// exactly when the socket has a pid (connection state recovery on) and the event has no ack.
function noOffset(s, args, what, withAck = false) {
  if (!s._pid || withAck) {
    if (args.length && typeof args[args.length - 1] === "string" && /^[\w.-]{6,}$/.test(args[args.length - 1]) && withAck)
      fail(`${what}: an offset-like last argument on an event with an ack: ${show(args)}`);
    return args;
  }
  const off = args[args.length - 1];
  if (typeof off !== "string" || !off.length) fail(`${what}: no offset string as last argument (recovery is on): ${show(args)}`);
  return args.slice(0, -1);
}
// The raw Engine.IO message packets a manager receives: the Socket.IO packets, text as
// strings without the Engine.IO type ("2[...]" for an EVENT), attachments as Buffers.
function rawLog(m) {
  const log = [];
  const hook = () => m.engine.on("packet", (p) => { if (p.type === "message") log.push(p.data); });
  if (m.engine) hook();
  m.on("open", hook);
  return log;
}
// A round trip on s: everything the server sent to s before it is received after it.
async function sync(s) {
  const r = await ack(s, "message-with-ack", "sync");
  expectEq("sync ack", r, ["sync"]);
}
function httpGet(path, headers = {}, method = "GET") {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method, headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body, headers: res.headers }));
    });
    req.end();
    req.on("error", reject);
    req.setTimeout(3000, () => req.destroy(new Error("GET timed out")));
  });
}
async function waitFor(what, ms, pred) {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) fail(`${what}: not within ${ms} ms`);
    await sleep(25);
  }
}
const count = (s, ev) => s.got.filter((a) => a[0] === ev).length;

// ---- the checks ----
const checks = [];
const check = (name, fn, ms = 10000) => checks.push({ name, fn, ms });

check("transport", async () => {
  const s = socket();
  await connect(s);
  const e = s.io.engine;
  if (mode === "upgrade") {
    if (!e.transport || (e.transport.name !== "websocket" && e.transport.name !== "polling")) fail("no transport");
    await waitFor("upgrade to websocket", 5000, () => e.transport.name === "websocket");
  } else {
    await sleep(300);
    expectEq("transport", e.transport.name, TRANSPORTS[0]);
  }
  if (!/^[\w-]{1,64}$/.test(e.id)) fail(`engine id ${show(e.id)}`);
  if (typeof s.id !== "string" || !s.id.length || s.id === e.id) fail(`socket id ${show(s.id)} (engine id ${e.id})`);
});

check("auth-echo", async () => {
  const auth = { token: "abc", n: 1, nested: { list: [1, "é", null, true] } };
  const s = socket("/", { auth });
  const got = next(s, "auth");
  await connect(s);
  expectEq("auth event", noOffset(s, await got, "auth"), [auth]);
});

check("auth-empty", async () => {
  const s = socket();
  const got = next(s, "auth");
  await connect(s);
  expectEq("auth event without auth", noOffset(s, await got, "auth"), [{}]);
});

check("message-back", async () => {
  const s = await connect(socket());
  const args = ["hello", 42, -7.5, { a: [1, 2, { b: null }], c: "d" }, true, false, null, [], {}];
  const got = next(s, "message-back");
  s.emit("message", ...args);
  expectEq("message-back", noOffset(s, await got, "message-back"), args);
});

check("message-back-bytes", async () => {
  // The server's JSON must be JSON.stringify's bytes: no spaces, key order kept, numbers in
  // JavaScript's notation, only the required escapes.
  const s = socket();
  const raw = rawLog(s.io);
  await connect(s);
  const args = [{ b: 1, a: [0.1, 1e21, 1.5e-7, 12345678901234567000, -1, 2.5e-308, 1.7976931348623157e308], 2: "x",
                  s: "\u001f\u007f\b\f\n\r\t\"\\/ <\u2028\u2029>" }, 0, -0.000001, 123456789.125];
  const got = next(s, "message-back");
  s.emit("message", ...args);
  const a = await got;
  const want = "2" + JSON.stringify(["message-back", ...a]);
  expectEq("message-back arguments", noOffset(s, a, "message-back"), JSON.parse(JSON.stringify(args)));
  const line = raw.find((d) => typeof d === "string" && d.startsWith('2["message-back"'));
  expectEq("message-back bytes", line, want);
});

check("utf8", async () => {
  const s = socket();
  const raw = rawLog(s.io);
  await connect(s);
  const texts = ["é € 😀 \u2028 \u2029 end", "𝄞🎉🏳️‍🌈", "\u0000nul\u0001", "x".repeat(3000) + "😀".repeat(3000), "\ufeff\uffff"];
  const got = next(s, "message-back");
  s.emit("message", ...texts);
  const a = await got;
  expectEq("message-back", noOffset(s, a, "message-back"), texts);
  const line = raw.find((d) => typeof d === "string" && d.startsWith('2["message-back"'));
  expectEq("message-back bytes", line, "2" + JSON.stringify(["message-back", ...a]));
});

check("binary", async () => {
  const s = await connect(socket());
  const big = Buffer.alloc(100000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919 + 13) & 255;
  const args = [Buffer.from([0, 1, 2, 255]), "text", { nested: Buffer.from("é€"), list: [Buffer.from([9])] }, big];
  const got = next(s, "message-back");
  s.emit("message", ...args);
  const a = noOffset(s, await got, "message-back");
  expectEq("binary message-back", a, args);
  if (!Buffer.isBuffer(a[0]) || !Buffer.isBuffer(a[2].nested) || !Buffer.isBuffer(a[3])) fail("a binary value came back as something else");
});

check("binary-empty", async () => {
  const s = await connect(socket());
  const got = next(s, "message-back");
  s.emit("message", Buffer.alloc(0), "after");
  expectEq("empty buffer message-back", noOffset(s, await got, "message-back"), [Buffer.alloc(0), "after"]);
});

check("ack", async () => {
  const s = await connect(socket());
  const args = [1, "two", { three: [3] }, null];
  expectEq("ack", await ack(s, "message-with-ack", ...args), args);
  expectEq("ack without arguments", await ack(s, "message-with-ack"), []);
});

check("ack-binary", async () => {
  const s = await connect(socket());
  const args = ["bin", Buffer.from([1, 2, 3, 4]), { x: Buffer.from([0xff]) }];
  expectEq("binary ack", await ack(s, "message-with-ack", ...args), args);
});

check("acks-in-flight", async () => {
  const s = await connect(socket());
  const n = 64;
  const res = await Promise.all(Array.from({ length: n }, (_, i) => ack(s, "message-with-ack", i, "n" + i)));
  expectEq("64 acks", res, Array.from({ length: n }, (_, i) => [i, "n" + i]));
});

check("large-payload", async () => {
  const s = await connect(socket());
  const text = "abcdefghijklmnopqrstuvwxyz0123456789".repeat(20000); // 720 000 bytes, under maxPayload
  const got = next(s, "message-back", 8000);
  s.emit("message", text);
  const a = noOffset(s, await got, "message-back");
  if (a.length !== 1 || a[0] !== text) fail(`720000-byte string came back as ${show(a).slice(0, 100)}`);
});

check("server-ack", async () => {
  const s = await connect(socket());
  const asked = next(s, "server-ack-request");
  const answer = ack(s, "request-ack", "question", 7, { k: "v" });
  const a = await asked;
  const cb = a.pop();
  if (typeof cb !== "function") fail(`server-ack-request came without an ack: ${show(a)}`);
  expectEq("server-ack-request arguments", noOffset(s, a, "server-ack-request", true), ["question", 7, { k: "v" }]);
  cb("answer", 8, Buffer.from([7, 7]));
  expectEq("ack of request-ack (what the client answered)", await answer, ["answer", 8, Buffer.from([7, 7])]);
});

check("join", async () => {
  const s = await connect(socket());
  expectEq("join ack", await ack(s, "join", "room-é 1"), ["joined:room-é 1"]);
});

check("room-broadcast", async () => {
  const [a, b, c, d] = await Promise.all([0, 1, 2, 3].map(() => connect(socket())));
  expectEq("a joins", await ack(a, "join", "room1"), ["joined:room1"]);
  expectEq("b joins", await ack(b, "join", "room1"), ["joined:room1"]);
  expectEq("d joins", await ack(d, "join", "room1"), ["joined:room1"]);
  const gotB = next(b, "broadcasted"), gotD = next(d, "broadcasted");
  a.emit("broadcast", "room1", { hello: "room", bin: Buffer.from([1, 2]) });
  expectEq("b got", noOffset(b, await gotB, "broadcasted"), [{ hello: "room", bin: Buffer.from([1, 2]) }]);
  expectEq("d got", noOffset(d, await gotD, "broadcasted"), [{ hello: "room", bin: Buffer.from([1, 2]) }]);
  await Promise.all([sync(a), sync(c), sync(b), sync(d)]);
  expectEq("broadcasted to the sender", count(a, "broadcasted"), 0);
  expectEq("broadcasted to a socket not in the room", count(c, "broadcasted"), 0);
  expectEq("broadcasted to b", count(b, "broadcasted"), 1);
  // d in the room twice (joined again) still gets it once
  expectEq("d joins again", await ack(d, "join", "room1"), ["joined:room1"]);
  c.emit("broadcast", "room1", "from outside");
  await waitFor("a, b and d get the broadcast of a non-member", 5000, () =>
    count(a, "broadcasted") === 1 && count(b, "broadcasted") === 2 && count(d, "broadcasted") === 2);
  await Promise.all([sync(c), sync(d)]);
  expectEq("c (sender) got its own", count(c, "broadcasted"), 0);
  expectEq("d got it once", count(d, "broadcasted"), 2);
});

check("broadcast-all", async () => {
  const [a, b, c] = await Promise.all([0, 1, 2].map(() => connect(socket())));
  const other = await connect(socket("/custom"));
  const gots = [a, b, c].map((s) => next(s, "broadcasted-all"));
  a.emit("broadcast-all", ["to", "all"]);
  const res = await Promise.all(gots);
  [a, b, c].forEach((s, i) => expectEq(`socket ${i} got`, noOffset(s, res[i], "broadcasted-all"), [["to", "all"]]));
  await Promise.all([sync(a), sync(b), sync(c), sync(other)]);
  [a, b, c].forEach((s, i) => expectEq(`socket ${i} count`, count(s, "broadcasted-all"), 1));
  expectEq("a socket of /custom got a broadcast of /", count(other, "broadcasted-all"), 0);
});

check("namespace-multiplexed", async () => {
  const m = track(new Manager(url(), opts()));
  const raw = rawLog(m);
  const root = m.socket("/", { auth: { ns: "root" } });
  const custom = m.socket("/custom", { auth: { ns: "custom" } });
  track(root); track(custom);
  const authR = next(root, "auth"), authC = next(custom, "auth");
  await Promise.all([connect(root), connect(custom)]);
  expectEq("auth on /", noOffset(root, await authR, "auth"), [{ ns: "root" }]);
  expectEq("auth on /custom", noOffset(custom, await authC, "auth"), [{ ns: "custom" }]);
  if (root.io !== custom.io || !m.engine) fail("not one manager");
  if (root.id === custom.id) fail("same socket id in two namespaces");
  const got = next(custom, "message-back");
  custom.emit("message", "on custom");
  const a = await got;
  expectEq("message-back on /custom", noOffset(custom, a, "message-back"), ["on custom"]);
  expectEq("raw packet", raw.find((d) => typeof d === "string" && d.startsWith('2/custom,["message-back"')), "2/custom," + JSON.stringify(["message-back", ...a]));
  const all = next(custom, "broadcasted-all");
  custom.emit("broadcast-all", "custom only");
  expectEq("broadcasted-all on /custom", noOffset(custom, await all, "broadcasted-all"), ["custom only"]);
  await sync(root);
  expectEq("/ got /custom's message-back or broadcast", root.got.filter((e) => e[0] !== "auth"), []);
  expectEq("ack on /", await ack(root, "message-with-ack", "root"), ["root"]);
  expectEq("ack on /custom", await ack(custom, "message-with-ack", "custom"), ["custom"]);
});

check("invalid-namespace", async () => {
  const m = track(new Manager(url(), opts()));
  const raw = rawLog(m);
  const root = track(m.socket("/"));
  await connect(root);
  const nope = track(m.socket("/nope"));
  const err = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new CheckError("no connect_error for /nope within 5000 ms")), 5000);
    nope.once("connect", () => { clearTimeout(t); reject(new CheckError("/nope was accepted")); });
    nope.once("connect_error", (e) => { clearTimeout(t); resolve(e); });
    nope.connect();
  });
  expectEq("connect_error message", err.message, "Invalid namespace");
  expectEq("raw connect_error", raw.find((d) => typeof d === "string" && d.startsWith("4")), '4/nope,{"message":"Invalid namespace"}');
  // The session stays open: / still works on the same connection.
  expectEq("ack on / after the refusal", await ack(root, "message-with-ack", "still"), ["still"]);
  if (!root.connected) fail("/ disconnected by the refusal of /nope");
});

check("client-disconnect", async () => {
  // m has / and /custom on one connection; / leaves: the server must take it out of its room
  // (nothing more for / reaches m) and keep the session (/custom still works); then /custom
  // leaves too, the client closes the connection and the server drops the Engine.IO session.
  const m = track(new Manager(url(), opts()));
  const raw = rawLog(m);
  const root = track(m.socket("/")), custom = track(m.socket("/custom"));
  await Promise.all([connect(root), connect(custom)]);
  const [a, w] = await Promise.all([connect(socket()), connect(socket())]);
  for (const s of [root, a, w]) expectEq("join", await ack(s, "join", "gone"), ["joined:gone"]);
  const sid = m.engine.id;
  const disc = next(root, "disconnect");
  root.disconnect();
  expectEq("client-side reason", (await disc)[0], "io client disconnect");
  await sync(custom); // the 41 is before this on the same connection
  const before = raw.length;
  const gotW = next(w, "broadcasted");
  a.emit("broadcast", "gone", "after leaving");
  expectEq("witness got", noOffset(w, await gotW, "broadcasted"), ["after leaving"]);
  const gotAll = next(w, "broadcasted-all");
  a.emit("broadcast-all", "all after leaving");
  await gotAll;
  await sync(custom);
  const leaked = raw.slice(before).filter((d) => typeof d === "string" && /^2\[/.test(d));
  expectEq("packets for / after its disconnect", leaked, []);
  if (!custom.connected) fail("/custom lost with /");
  custom.disconnect();
  // No namespace left: the manager closes the connection; the session must go.
  await waitFor("the server forgets the Engine.IO session", 5000, async () => {
    const r = await httpGet(`/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`);
    return r.status === 400 && r.body === '{"code":1,"message":"Session ID unknown"}';
  });
});

check("eio-echo", async () => {
  // The raw Engine.IO echo at /engine.io/: every message comes back unchanged.
  const e = track(new eioClient.Socket(url(), { path: "/engine.io/", transports: TRANSPORTS }));
  e.disconnect = () => e.close();
  const got = [];
  e.on("message", (d) => got.push(d));
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new CheckError("no Engine.IO open within 5000 ms")), 5000);
    e.once("open", () => { clearTimeout(t); resolve(); });
    e.once("error", (err) => { clearTimeout(t); reject(new CheckError(`Engine.IO error: ${err.message || err}`)); });
  });
  if (mode === "upgrade") await waitFor("Engine.IO upgrade to websocket", 5000, () => e.transport.name === "websocket");
  const sent = ["héllo 😀 \u2028", Buffer.from([0, 1, 2, 0xfe, 0xff]), "", "42[\"not socket.io\"]", Buffer.alloc(70000, 0xab), "x".repeat(100000)];
  for (const m of sent) e.send(m);
  await waitFor("all echoes", 5000, () => got.length >= sent.length);
  // engine.io-client reads the bare "4" of an empty message as a message without data
  expectEq("echoes", got.map((d) => (typeof d === "string" || d === undefined ? d : Buffer.from(d))),
           sent.map((m) => (m === "" ? undefined : m)));
});

// Options that make a client connect from 127.0.0.(2 + i): many clients as many addresses, so
// that a server's per-address admission limits do not decide the outcome.
function fromAddress(i) {
  const localAddress = `127.0.0.${2 + (i % 250)}`;
  return { agent: new http.Agent({ localAddress }), localAddress };
}

check("broadcast-many", async () => {
  // One broadcast to 40 sockets (the frame-once path), from 40 addresses: each gets it once.
  const n = 40;
  const socks = [];
  ACK_MS = 15000;
  for (let i = 0; i < n; i += 10) socks.push(...(await Promise.all(Array.from({ length: 10 }, (_, k) => connect(socket("/", fromAddress(i + k)))))));
  const got = socks.map((s) => next(s, "broadcasted-all", 15000));
  socks[7].emit("broadcast-all", { many: true, bin: Buffer.from([1, 2, 3]) });
  const res = await Promise.all(got);
  res.forEach((a, i) => expectEq(`socket ${i}`, noOffset(socks[i], a, "broadcasted-all"), [{ many: true, bin: Buffer.from([1, 2, 3]) }]));
  await Promise.all(socks.map(sync));
  socks.forEach((s, i) => expectEq(`socket ${i} count`, count(s, "broadcasted-all"), 1));
}, 30000);

check("one-address-many", async () => {
  // 40 clients from one address (a NAT, a proxy): each connects and gets two acks in flight.
  // The reference has no per-address limit; a polling client always holds a GET open.
  const n = 40;
  const socks = [];
  ACK_MS = 15000;
  for (let i = 0; i < n; i += 10) socks.push(...(await Promise.all(Array.from({ length: 10 }, () => connect(socket())))));
  const res = await Promise.all(socks.map((s, i) => Promise.all([ack(s, "message-with-ack", i), ack(s, "message-with-ack", "second", i)])));
  expectEq("acks", res, socks.map((_, i) => [[i], ["second", i]]));
  if (!socks.every((s) => s.connected)) fail(`${socks.filter((s) => !s.connected).length} of ${n} disconnected`);
}, 30000);

check("max-payload", async () => {
  // A message above maxPayload (default 1000000 bytes) ends the session (WebSocket: closed;
  // polling: 413); the client sees its transport close. The server serves others on.
  const s = await connect(socket());
  const disc = next(s, "disconnect", 8000);
  s.emit("message", "y".repeat(1000001));
  const [reason] = await disc;
  if (reason !== "transport close" && reason !== "transport error") fail(`disconnect reason ${show(reason)}`);
  const t = await connect(socket());
  expectEq("another client after it", await ack(t, "message-with-ack", "fine"), ["fine"]);
});

check("cors", async () => {
  // --cors-origin: the polling handshake and its preflight name an allowed origin (with
  // credentials, as socket.io's cors option with credentials: true) and no other.
  const q = "/socket.io/?EIO=4&transport=polling";
  const ok = await httpGet(q, { Origin: CORS_ORIGIN });
  expectEq("status", ok.status, 200);
  expectEq("Access-Control-Allow-Origin", ok.headers["access-control-allow-origin"], CORS_ORIGIN);
  expectEq("Access-Control-Allow-Credentials", ok.headers["access-control-allow-credentials"], "true");
  if (!/(^|,\s*)origin(\s*,|$)/i.test(ok.headers.vary || "")) fail(`Vary ${show(ok.headers.vary)} lacks Origin`);
  const pre = await httpGet(q, { Origin: CORS_ORIGIN, "Access-Control-Request-Method": "POST" }, "OPTIONS");
  expectEq("preflight status", pre.status, 204);
  expectEq("preflight Access-Control-Allow-Origin", pre.headers["access-control-allow-origin"], CORS_ORIGIN);
  if (!/\bPOST\b/.test(pre.headers["access-control-allow-methods"] || "")) fail(`preflight methods ${show(pre.headers["access-control-allow-methods"])}`);
  const bad = await httpGet(q, { Origin: "http://other.example" });
  expectEq("Access-Control-Allow-Origin for another origin", bad.headers["access-control-allow-origin"], undefined);
  const none = await httpGet(q);
  expectEq("Access-Control-Allow-Origin without Origin", none.headers["access-control-allow-origin"], undefined);
});

check("heartbeat", async () => {
  // The server pings every 500 ms (pingTimeout 2000): an idle client that answers stays.
  const s = await connect(socket());
  const id = s.io.engine.id;
  let pings = 0;
  s.io.engine.on("ping", () => pings++);
  await sleep(PING_INTERVAL * 3 + 300);
  if (!s.connected || s.io.engine.id !== id) fail("the idle client was disconnected");
  if (pings < 2) fail(`${pings} pings in ${PING_INTERVAL * 3 + 300} ms with pingInterval ${PING_INTERVAL}`);
  expectEq("ack after idling", await ack(s, "message-with-ack", "awake"), ["awake"]);
});

check("recovery", async () => {
  const a = socket("/", { auth: { who: "a" } });
  await connect(a);
  if (!a._pid) fail("no pid in the CONNECT answer: connection state recovery is off");
  const b = await connect(socket());
  expectEq("a joins", await ack(a, "join", "r"), ["joined:r"]);
  await sync(a);
  if (!a._lastOffset) fail("no offset received yet");
  const id = a.id, sid = a.io.engine.id, pid = a._pid;
  a.io.reconnection(false);
  const disc = next(a, "disconnect");
  // A transport drop: the TCP connection of the WebSocket destroyed, or the polling
  // transport closed (the client posts "1").
  const t = a.io.engine.transport;
  if (t.name === "websocket") t.ws._socket.destroy(); else a.io.engine.close();
  await disc;
  await sleep(100);
  const gotAll = next(b, "broadcasted-all");
  b.emit("broadcast-all", "missed-1");
  b.emit("broadcast", "r", "missed-2");
  await gotAll;
  await sync(b);
  a.got.length = 0;
  const offset = a._lastOffset;
  const reconnected = new Promise((resolve) => a.once("connect", resolve));
  const authAgain = next(a, "auth");
  a.io.reconnection(true);
  a.connect();
  await reconnected;
  if (a.io.engine.id === sid) fail("same Engine.IO session: not a new connection");
  expectEq("socket.recovered", a.recovered, true);
  expectEq("socket id kept", a.id, id);
  expectEq("pid kept", a._pid, pid);
  // The missed events first, then the connection handler runs again (socket.io does on a
  // recovered socket too): auth echoes the CONNECT payload, {pid, offset} included.
  await authAgain;
  expectEq("missed events, then auth", a.got.map((e) => [e[0], ...noOffset(a, e.slice(1), e[0])]),
           [["broadcasted-all", "missed-1"], ["broadcasted", "missed-2"], ["auth", { pid, offset, who: "a" }]]);
  // rooms are restored: a broadcast to r reaches a
  const gotR = next(a, "broadcasted");
  b.emit("broadcast", "r", "after");
  expectEq("room kept", noOffset(a, await gotR, "broadcasted"), ["after"]);
});

check("no-recovery-after-disconnect", async () => {
  // A client's own disconnect is final: connecting again is a new socket.
  const a = await connect(socket());
  if (!a._pid) fail("no pid in the CONNECT answer: connection state recovery is off");
  const id = a.id;
  a.disconnect();
  await sleep(100);
  await connect(a);
  expectEq("socket.recovered", a.recovered, false);
  if (a.id === id) fail("the id of a disconnected socket was given back");
});

check("restart", async () => {
  // The server goes away and comes back on the same port: the client reconnects by itself.
  const auth = { who: "restart" };
  const s = socket("/", { auth, reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 500, randomizationFactor: 0 });
  await connect(s);
  const id = s.id, pid = s._pid;
  await sync(s);
  const offset = s._lastOffset;
  const disc = next(s, "disconnect");
  await stopServer();
  const [reason] = await disc;
  if (reason !== "transport close" && reason !== "transport error" && reason !== "ping timeout") fail(`disconnect reason ${reason}`);
  await sleep(300); // at least one failed attempt while the server is down
  const again = next(s, "connect", 15000);
  const authAgain = next(s, "auth", 15000);
  await startServer(port);
  await again;
  // the client sends {pid, offset} of the old server before its auth
  expectEq("auth after the restart", noOffset(s, await authAgain, "auth"), [pid ? { pid, offset, ...auth } : auth]);
  if (s.recovered) fail("socket.recovered after a restart: the new server cannot know the socket");
  if (s.id === id) fail("same socket id from a new server");
  expectEq("ack after the restart", await ack(s, "message-with-ack", "back"), ["back"]);
}, 30000);

// ---- run ----
async function main() {
  let passed = 0, failed = 0;
  const t0 = Date.now();
  try {
    await startServer(0);
  } catch (e) {
    console.log(`FAIL ${mode}/start: ${e.message}`);
    console.log("0 passed, 1 failed");
    process.exit(1);
  }
  for (const c of checks) {
    if (only && !only.includes(c.name)) continue;
    const name = `${mode}/${c.name}`;
    const start = Date.now();
    let timer;
    try {
      if (!server) await startServer(port);
      await Promise.race([c.fn(), new Promise((_, rej) => { timer = setTimeout(() => rej(new CheckError(`timed out after ${c.ms} ms`)), c.ms); })]);
      console.log(`ok   ${name} (${Date.now() - start} ms)`);
      passed++;
    } catch (e) {
      console.log(`FAIL ${name}: ${e instanceof CheckError ? e.message : e.stack}`);
      failed++;
    } finally {
      clearTimeout(timer);
      ACK_MS = 5000;
      for (const x of opened.reverse()) { try { x.io ? x.disconnect() : x._close(); } catch (_) { /* closed */ } }
      opened = [];
    }
  }
  await stopServer();
  console.log(`# ${mode}: ${Date.now() - t0} ms`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
process.on("unhandledRejection", (e) => { console.log(`FAIL ${mode}/unhandled: ${e && e.stack}`); });
main();
