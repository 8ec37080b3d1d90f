// Server CPU per delivery of a chat message to a room of 1000 members of `wsx serve`: members on
// /ws next to members on Socket.IO (raw Socket.IO clients on WebSocket), the same sender (a /ws
// member), the same text; and the server's VmRSS per member once the room is full. A
// measurement for docs/chat-protocol.md, not a test; run it on an idle machine.
//
//   WSX_BIN=build/wsx node tests/socketio/serve_broadcast_cpu.cjs [MEMBERS] [MESSAGES]
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const WebSocket = require("ws");

const BIN = process.env.WSX_BIN;
const N = Number(process.argv[2] || 1000);
const M = Number(process.argv[3] || 1000);
const BATCH = 50;
const TEXT = "x".repeat(32);
const cpu = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, seconds
};
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))[1]);

function start() {
  const child = spawn(BIN, ["serve", "--host", "127.0.0.1", "--port", "0", "--quiet", "--rate", "0",
    "--rate-per-ip", "0", "--join-rate", "0", "--join-rate-per-ip", "0", "--max-per-ip", "0",
    "--max-handshakes-per-ip", "0"], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((ok) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^:]+:(\d+)\//);
      if (m) ok({ child, port: Number(m[1]) });
    });
  });
}

// Five source addresses: the Engine.IO layer admits 256 sessions per address.
const src = (i) => ({ localAddress: `127.0.0.${2 + Math.floor(i / 200)}`, perMessageDeflate: false });

function sioMember(port, i, onMsg) {
  return new Promise((ok, no) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, src(i));
    let joined = false;
    ws.on("message", (d) => {
      const t = d.toString();
      if (t[0] === "0") ws.send("40");
      else if (t === "2") ws.send("3");
      else if (t.startsWith('42["welcome"')) ws.send(`42["join",{"room":"b","name":"s${i}"}]`);
      else if (!joined && t.startsWith('42["history"')) { joined = true; ok(ws); }
      else if (t.startsWith('42["message"')) onMsg();
    });
    ws.on("error", no);
  });
}

function wsMember(port, i, onMsg) {
  return new Promise((ok, no) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, src(i));
    let joined = false;
    ws.on("message", (d) => {
      const t = d.toString();
      if (t.startsWith('{"type":"welcome"')) ws.send(`{"type":"join","room":"b","name":"w${i}"}`);
      else if (!joined && t.startsWith('{"type":"history"')) { joined = true; ok(ws); }
      else if (t.startsWith('{"type":"message"')) onMsg();
    });
    ws.on("error", no);
  });
}

async function run(name, connect) {
  const { child, port } = await start();
  let got = 0, waiting = null;
  const onMsg = () => { got++; if (waiting && got >= waiting.n) { const w = waiting; waiting = null; w.ok(); } };
  const sender = await wsMember(port, 999999 % 1000, () => {});
  await new Promise((r) => setTimeout(r, 200));
  const rss0 = rssKiB(child.pid);
  const members = [];
  for (let i = 0; i < N; i += 20) {
    const batch = [];
    for (let k = i; k < Math.min(N, i + 20); k++) batch.push(connect(port, k, onMsg));
    members.push(...(await Promise.all(batch)));
  }
  await new Promise((r) => setTimeout(r, 500));
  const rss1 = rssKiB(child.pid);
  const c0 = cpu(child.pid), t0 = process.hrtime.bigint();
  for (let sent = 0; sent < M; sent += BATCH) {
    const done = new Promise((ok) => { waiting = { n: (sent + BATCH) * N, ok }; });
    for (let b = 0; b < BATCH; b++) sender.send(`{"type":"message","text":"${TEXT}"}`);
    await done;
  }
  const c1 = cpu(child.pid), secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${name}: ${M} messages x ${N} members in ${secs.toFixed(2)} s, server CPU ` +
    `${(c1 - c0).toFixed(2)} s: ${((c1 - c0) / (M * N) * 1e6).toFixed(3)} us per delivery; ` +
    `VmRSS +${((rss1 - rss0) / N * 1024).toFixed(0)} bytes per joined member`);
  for (const ws of members.concat([sender])) ws.terminate();
  child.kill("SIGKILL");
}

(async () => {
  await run("/ws members", wsMember);
  await run("Socket.IO members", sioMember);
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
