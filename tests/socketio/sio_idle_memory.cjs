// Memory per idle Socket.IO client on WebSocket (issue 12's goal: under 1 KB): starts
// `wsx sio` (recovery off, or on with --recovery), opens N raw Socket.IO clients over
// WebSocket (handshake, "40", the CONNECT answer and the server's "auth" event, then idle)
// from several 127.0.0.x source addresses (the server's per-address limit is 256), and
// reads the server's VmRSS from /proc before and after. A measurement, not a test.
//
//   WSX_BIN=build/wsx node tests/socketio/sio_idle_memory.cjs [N] [--recovery]
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const WebSocket = require("ws");

const BIN = process.env.WSX_BIN;
const N = Number(process.argv.find((a) => /^\d+$/.test(a)) || 2000);
const recovery = process.argv.includes("--recovery");
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))[1]) * 1024;

function start() {
  const child = spawn(BIN, ["sio", "--host", "127.0.0.1", "--port", "0", "--quiet",
    "--recovery", recovery ? "120000" : "0"], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((ok) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^:]+:(\d+)\//);
      if (m) ok({ child, port: Number(m[1]) });
    });
  });
}

function client(port, i) {
  return new Promise((ok, no) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`,
      { localAddress: `127.0.0.${2 + Math.floor(i / 200)}` });
    let step = 0;
    ws.on("message", (d) => {
      const t = d.toString();
      if (step === 0 && t[0] === "0") { ws.send("40"); step = 1; }
      else if (step === 1 && t.startsWith("40")) step = 2;
      else if (step === 2 && t.startsWith('42["auth"')) { step = 3; ok(ws); }
      else if (t === "2") ws.send("3");
    });
    ws.on("error", no);
  });
}

(async () => {
  const { child, port } = await start();
  const warm = [];
  for (let i = 0; i < 20; i++) warm.push(await client(port, 1990 + i));
  await new Promise((r) => setTimeout(r, 300));
  const before = rss(child.pid);
  const all = [];
  for (let i = 0; i < N; i += 20) {
    const batch = [];
    for (let k = i; k < Math.min(N, i + 20); k++) batch.push(client(port, k));
    all.push(...(await Promise.all(batch)));
  }
  await new Promise((r) => setTimeout(r, 500));
  const after = rss(child.pid);
  console.log(`wsx sio${recovery ? " --recovery 120000" : " --recovery 0"}: ${N} idle Socket.IO ` +
    `clients on WebSocket: VmRSS ${(before / 1048576).toFixed(1)} -> ${(after / 1048576).toFixed(1)} MiB, ` +
    `${((after - before) / N).toFixed(0)} bytes per client`);
  for (const ws of all.concat(warm)) ws.terminate();
  child.kill("SIGKILL");
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
