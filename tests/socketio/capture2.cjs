// Prints the bytes socket.io 4.8 (this directory's lockfile) sends; docs/socketio.md, "Reference bytes".
// Run: npm ci && node capture2.cjs
const http = require("http");
const { Server } = require("socket.io");
const WebSocket = require("ws");
const srv = http.createServer();
const io = new Server(srv, { pingInterval: 300, pingTimeout: 200, maxHttpBufferSize: 100,
  connectionStateRecovery: { maxDisconnectionDuration: 60000 } });
io.on("connection", (s) => {
  console.log("CONNECTION recovered=" + s.recovered + " id=" + s.id + " rooms=" + JSON.stringify([...s.rooms]));
  s.on("hi", () => { s.emit("x", 1); io.emit("all", "y"); });
  s.on("disconnect", (r) => console.log("DISCONNECT-REASON", JSON.stringify(r)));
});
const { show, body, get, post, sleep } = require("./lib.cjs").helpers();
srv.listen(0, "127.0.0.1", async () => {
  const p = srv.address().port;
  let r = await get(p, "EIO=4&transport=polling"); show("open (pingInterval 300, pingTimeout 200, maxHttpBufferSize 100)", r);
  const sid = JSON.parse(body(r).slice(1)).sid, q = `EIO=4&transport=polling&sid=${sid}`;
  await post(p, q, "40"); show("CONNECT answer with recovery on", await get(p, q));
  show("POST over maxHttpBufferSize (101 bytes)", await post(p, q, "4" + "x".repeat(100)));
  show("GET after 413", await get(p, q));
  // overlapping GETs
  r = await get(p, "EIO=4&transport=polling"); const sid2 = JSON.parse(body(r).slice(1)).sid, q2 = `EIO=4&transport=polling&sid=${sid2}`;
  const g1 = get(p, q2, 800); await sleep(50); const g2 = get(p, q2, 800);
  show("first of two concurrent GETs", await g1); show("second of two concurrent GETs", await g2);
  // ping / no pong
  r = await get(p, "EIO=4&transport=polling"); const sid3 = JSON.parse(body(r).slice(1)).sid, q3 = `EIO=4&transport=polling&sid=${sid3}`;
  await post(p, q3, "40"); await get(p, q3);
  const t0 = Date.now(); show("GET waits for the ping", await get(p, q3, 1000)); console.log("ping after ms", Date.now() - t0);
  await sleep(400); show("GET after no pong (pingTimeout)", await get(p, q3));
  // upgrade
  r = await get(p, "EIO=4&transport=polling"); const sid4 = JSON.parse(body(r).slice(1)).sid, q4 = `EIO=4&transport=polling&sid=${sid4}`;
  await post(p, q4, "40"); await get(p, q4);
  const pending = get(p, q4, 1000);
  await sleep(50);
  const frames = [];
  const ws = new WebSocket(`ws://127.0.0.1:${p}/socket.io/?EIO=4&transport=websocket&sid=${sid4}`);
  ws.on("message", (d, isBin) => {
    const s = isBin ? "BIN " + JSON.stringify([...d]) : "TXT " + JSON.stringify(d.toString());
    frames.push(s);
    if (d.toString() === "3probe") ws.send("5");
    if (d.toString() === "2") ws.send("3");
  });
  ws.on("open", () => ws.send("2probe"));
  show("pending GET during upgrade", await pending);
  await sleep(100); ws.send('42["hi"]'); await sleep(500);
  // recovery: drop the transport, then reconnect with pid+offset
  const lastEvent = frames.filter((f) => f.startsWith('TXT "42')).pop();
  console.log("=== WebSocket frames after upgrade (server->client)\n" + frames.join("\n"));
  const conn = frames.find((f) => f.includes("pid"));
  ws.terminate(); await sleep(200);
  io.emit("missed", "while away");
  await sleep(50);
  const m = /"sid\\":\\"([^\\]+)\\",\\"pid\\":\\"([^\\]+)\\"/.exec(body(await Promise.resolve(Buffer.from(""))) || "");
  console.log("lastEvent", lastEvent);
  srv.close(); io.close(); setTimeout(() => process.exit(0), 100);
});
