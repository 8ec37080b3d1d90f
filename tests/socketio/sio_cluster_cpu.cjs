// Server CPU per delivery of Socket.IO broadcasts across two nodes on one Redis: two
// `wsx sio --redis` nodes, then two Node.js socket.io nodes with @socket.io/redis-adapter,
// N raw Socket.IO clients on WebSocket spread over the two, M broadcasts sent by
// @socket.io/redis-emitter from this process (so both nodes receive each one from Redis).
// CPU is the two server processes' (utime + stime from /proc), Redis not counted. A
// measurement for docs/cluster.md, not a test.
//
//   WSX_BIN=build/wsx node tests/socketio/sio_cluster_cpu.cjs [CLIENTS] [MESSAGES]
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const net = require("net");

if (process.argv[2] === "--node-server") {
  // The Node node: socket.io + the redis adapter on argv[3].
  (async () => {
    const { createServer } = require("http");
    const { Server } = require("socket.io");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const { createClient } = require("redis");
    const pub = createClient({ url: process.argv[3] });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    const http = createServer();
    const io = new Server(http, { adapter: createAdapter(pub, sub), transports: ["websocket"] });
    io.on("connection", (s) => s.emit("auth", {}));
    http.listen(0, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${http.address().port}/`));
  })();
  return;
}

const WebSocket = require("ws");
const { Emitter } = require("@socket.io/redis-emitter");
const { createClient } = require("redis");
const BIN = process.env.WSX_BIN;
const N = Number(process.argv[2] || 1000);
const M = Number(process.argv[3] || 1000);
const BATCH = 50;
const PAYLOAD = "x".repeat(32);
const cpu = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};
const kids = [];
process.on("exit", () => kids.forEach((k) => { try { k.kill("SIGKILL"); } catch { /* gone */ } }));

function start(cmd, args) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  kids.push(child);
  return new Promise((ok) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (?:ws|http):\/\/[^:]+:(\d+)\//);
      if (m) ok({ child, port: Number(m[1]) });
    });
  });
}

const src = (i) => ({ localAddress: `127.0.0.${2 + Math.floor(i / 200)}`, perMessageDeflate: false });
function sioClient(port, i, onMsg) {
  return new Promise((ok, no) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, src(i));
    let ready = false;
    ws.on("message", (d) => {
      const t = d.toString();
      if (t[0] === "0") ws.send("40");
      else if (t === "2") ws.send("3");
      else if (!ready && t.startsWith('42["auth"')) { ready = true; ok(ws); }
      else if (ready) onMsg(t);
    });
    ws.on("error", no);
  });
}

async function run(name, nodes, emitter) {
  let got = 0, waiting = null;
  const onMsg = () => { got++; if (waiting && got >= waiting.n) { const w = waiting; waiting = null; w.ok(); } };
  const clients = [];
  for (let i = 0; i < N; i += 20) {
    const batch = [];
    for (let k = i; k < Math.min(N, i + 20); k++) batch.push(sioClient(nodes[k % 2].port, k, onMsg));
    clients.push(...(await Promise.all(batch)));
  }
  await new Promise((r) => setTimeout(r, 500));
  const c0 = cpu(nodes[0].child.pid) + cpu(nodes[1].child.pid), t0 = process.hrtime.bigint();
  for (let sent = 0; sent < M; sent += BATCH) {
    const done = new Promise((ok) => { waiting = { n: (sent + BATCH) * N, ok }; });
    for (let b = 0; b < BATCH; b++) emitter.emit("tick", PAYLOAD);
    await done;
  }
  const c1 = cpu(nodes[0].child.pid) + cpu(nodes[1].child.pid);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${name}: ${M} broadcasts x ${N} clients on 2 nodes in ${secs.toFixed(2)} s, ` +
    `servers' CPU ${(c1 - c0).toFixed(2)} s: ${((c1 - c0) / (M * N) * 1e6).toFixed(3)} us per delivery`);
  for (const ws of clients) ws.terminate();
  for (const n of nodes) n.child.kill("SIGKILL");
}

(async () => {
  const rport = await new Promise((ok) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); }); });
  const redis = spawn("/usr/bin/redis-server", ["--port", String(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  kids.push(redis);
  await new Promise((r) => setTimeout(r, 500));
  const url = `redis://127.0.0.1:${rport}`;
  const ec = createClient({ url });
  await ec.connect();
  const em = new Emitter(ec);
  const wsxArgs = ["sio", "--host", "127.0.0.1", "--port", "0", "--quiet", "--recovery", "0",
    "--transports", "websocket", "--redis", url];
  await run("wsx sio --redis", [await start(BIN, wsxArgs), await start(BIN, wsxArgs)], em);
  const nodeArgs = [__filename, "--node-server", url];
  await run("Node socket.io + redis-adapter",
    [await start(process.execPath, nodeArgs), await start(process.execPath, nodeArgs)], em);
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
