// Prints the bytes socket.io 4.8 (this directory's lockfile) sends; docs/socketio.md, "Reference bytes".
// Run: npm ci && node capture3.cjs
const http = require("http");
const { Server } = require("socket.io");
const WebSocket = require("ws");
const srv = http.createServer();
const io = new Server(srv, { connectionStateRecovery: { maxDisconnectionDuration: 60000 } });
io.on("connection", (s) => {
  console.log("CONNECTION recovered=" + s.recovered + " id=" + s.id + " rooms=" + JSON.stringify([...s.rooms]));
  s.on("hi", () => { s.join("r1"); s.emit("x", 1); io.emit("all", "y"); });
  s.on("disconnect", (r) => console.log("DISCONNECT-REASON", JSON.stringify(r)));
});
const { show, body, get, post, sleep } = require("./lib.cjs").helpers();
srv.listen(0, "127.0.0.1", async () => {
  const p = srv.address().port;
  let r = await get(p, "EIO=4&transport=polling");
  const sid = JSON.parse(body(r).slice(1)).sid, q = `EIO=4&transport=polling&sid=${sid}`;
  await post(p, q, "40"); const conn = body(await get(p, q)); console.log("CONNECT answer", conn);
  const { sid: ssid, pid } = JSON.parse(conn.slice(2));
  const pending = get(p, q, 1000); await sleep(50);
  const frames = [];
  const ws = new WebSocket(`ws://127.0.0.1:${p}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
  ws.on("message", (d, isBin) => frames.push(isBin ? "BIN " + JSON.stringify([...d]) : "TXT " + JSON.stringify(d.toString())));
  ws.on("open", () => ws.send("2probe"));
  const t0 = Date.now(); show("pending GET released during upgrade", await pending); console.log("released after ms", Date.now() - t0);
  ws.send("5"); await sleep(50); ws.send('42["hi"]'); await sleep(100);
  console.log("=== WebSocket frames, upgrade then hi\n" + frames.join("\n"));
  const off = JSON.parse(frames[frames.length - 1].slice(4)).match(/"([^"]+)"\]$/)[1];
  ws.terminate(); await sleep(100);
  io.emit("missed", "while away"); io.to("r1").emit("room", "r1 only"); await sleep(50);
  const frames2 = [];
  const ws2 = new WebSocket(`ws://127.0.0.1:${p}/socket.io/?EIO=4&transport=websocket`);
  ws2.on("message", (d) => frames2.push("TXT " + JSON.stringify(d.toString())));
  const hello = `40{"pid":"${pid}","offset":"${off}"}`;
  ws2.on("open", () => ws2.send(hello));
  await sleep(200);
  ws2.send("41"); await sleep(100);
  console.log("=== recovery: client sent " + JSON.stringify(hello) + "\n" + frames2.join("\n"));
  // unknown pid
  const frames3 = [];
  const ws3 = new WebSocket(`ws://127.0.0.1:${p}/socket.io/?EIO=4&transport=websocket`);
  ws3.on("message", (d) => frames3.push("TXT " + JSON.stringify(d.toString())));
  ws3.on("open", () => ws3.send('40{"pid":"nope","offset":"x"}'));
  await sleep(150);
  ws3.send('40'); await sleep(100); ws3.send('42["a"]'); ws3.send('1'); await sleep(100);
  console.log("=== unknown pid, CONNECT twice, then eio close\n" + frames3.join("\n"));
  srv.close(); io.close(); setTimeout(() => process.exit(0), 100);
});
