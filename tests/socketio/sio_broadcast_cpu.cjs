// Server CPU per delivery of a broadcast to 1000 clients: `wsx sio` (Socket.IO broadcast-all,
// 1000 raw Socket.IO clients on WebSocket) next to `wsx echo`'s plain pub/sub fan-out (/sub
// and /pub), same payload, same client. A measurement for docs/socketio.md, not a test; run
// it on an idle machine, server pinned with taskset for stable figures.
//
//   WSX_BIN=build/wsx node tests/socketio/sio_broadcast_cpu.cjs [CLIENTS] [MESSAGES]
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const WebSocket = require("ws");

const BIN = process.env.WSX_BIN;
const N = Number(process.argv[2] || 1000);
const M = Number(process.argv[3] || 2000);
const BATCH = 50;
const PAYLOAD = "x".repeat(32);
const cpu = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, seconds
};

function start(args) {
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "inherit"] });
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

function plainClient(port, i, path, onMsg) {
  return new Promise((ok, no) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, src(i));
    ws.on("open", () => ok(ws));
    ws.on("message", (d) => onMsg(d.toString()));
    ws.on("error", no);
  });
}

async function run(name, server, connect, send) {
  const { child, port } = await server;
  let got = 0, waiting = null;
  const onMsg = () => { got++; if (waiting && got >= waiting.n) { const w = waiting; waiting = null; w.ok(); } };
  const clients = [];
  for (let i = 0; i < N; i += 20) {
    const batch = [];
    for (let k = i; k < Math.min(N, i + 20); k++) batch.push(connect(port, k, onMsg));
    clients.push(...(await Promise.all(batch)));
  }
  const sender = await connect(port, N, () => {}, true);
  await new Promise((r) => setTimeout(r, 300));
  const c0 = cpu(child.pid), t0 = process.hrtime.bigint();
  for (let sent = 0; sent < M; sent += BATCH) {
    const done = new Promise((ok) => { waiting = { n: (sent + BATCH) * N, ok }; });
    for (let b = 0; b < BATCH; b++) send(sender);
    await done;
  }
  const c1 = cpu(child.pid), secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const deliveries = M * N;
  console.log(`${name}: ${M} broadcasts x ${N} clients in ${secs.toFixed(2)} s, server CPU ` +
    `${(c1 - c0).toFixed(2)} s: ${((c1 - c0) / deliveries * 1e6).toFixed(3)} us per delivery`);
  for (const ws of clients.concat([sender])) ws.terminate();
  child.kill("SIGKILL");
}

(async () => {
  await run("wsx echo pub/sub",
    start(["echo", "--host", "127.0.0.1", "--port", "0", "--quiet", "--max-per-ip", "0",
           "--max-handshakes-per-ip", "0"]),
    (port, i, onMsg, pub) => plainClient(port, i, pub ? "/pub" : "/sub", onMsg),
    (ws) => ws.send(PAYLOAD));
  await run("wsx sio broadcast-all",
    start(["sio", "--host", "127.0.0.1", "--port", "0", "--quiet", "--recovery", "0"]),
    (port, i, onMsg) => sioClient(port, i, onMsg),
    (ws) => ws.send(`42["broadcast-all","${PAYLOAD}"]`));
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
