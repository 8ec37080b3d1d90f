// Prints the bytes socket.io 4.8 (this directory's lockfile) sends; docs/socketio.md, "Reference bytes".
// Run: npm ci && node capture.cjs
// Records the exact bytes socket.io 4.8 sends for the cases docs/socketio.md lists.
const http = require("http");
const { Server } = require("socket.io");
const WebSocket = require("ws");

const srv = http.createServer();
const io = new Server(srv);
io.of("/custom");
io.on("connection", (s) => {
  s.on("many", () => { s.emit("a", 1); s.emit("b", "two"); s.emit("c", { x: [1, 2], y: null }); });
  s.on("bin", () => s.emit("bin", Buffer.from([1, 2, 3, 4]), "t", Buffer.from([255])));
  s.on("ack", (...a) => { const cb = a.pop(); if (typeof cb === "function") cb("ok", 2); else console.log("ACK-ARGS", JSON.stringify(a.concat([cb])), Buffer.isBuffer(cb)); });
  s.on("esc", () => s.emit("esc", "a/b é € 😀 \u2028 \u0001 \"q\" \\"));
  s.on("kick", () => s.disconnect(true));
  s.on("disconnect", (r) => console.log("DISCONNECT-REASON", JSON.stringify(r)));
});
const { raw, show, body, get, post } = require("./lib.cjs").helpers({ quiet: 150, bodyEncoding: "latin1" });
srv.listen(0, "127.0.0.1", async () => {
  const p = srv.address().port;
  let r = await get(p, "EIO=4&transport=polling"); show("open (polling)", r);
  const sid = JSON.parse(body(r).slice(1)).sid;
  show("POST 40", await post(p, `EIO=4&transport=polling&sid=${sid}`, "40"));
  show("GET after CONNECT", await get(p, `EIO=4&transport=polling&sid=${sid}`));
  show("POST 40/nope, (unknown namespace)", await post(p, `EIO=4&transport=polling&sid=${sid}`, "40/nope,"));
  show("GET after bad ns", await get(p, `EIO=4&transport=polling&sid=${sid}`));
  show("POST 40/custom,{\"token\":1}", await post(p, `EIO=4&transport=polling&sid=${sid}`, '40/custom,{"token":1}'));
  show("GET after /custom", await get(p, `EIO=4&transport=polling&sid=${sid}`));
  await post(p, `EIO=4&transport=polling&sid=${sid}`, '42["many"]\x1e42["bin"]\x1e421["ack","x"]\x1e42["esc"]');
  await new Promise((z) => setTimeout(z, 50));
  show("GET payload with several packets (many, bin, ack, esc)", await get(p, `EIO=4&transport=polling&sid=${sid}`));
  show("POST binary event from client (b-base64)", await post(p, `EIO=4&transport=polling&sid=${sid}`, '451-7["ack",{"_placeholder":true,"num":0}]\x1ebAQIDBA=='));
  // answer: 431[...]? the ack id above is absent; 3 is fine
  show("GET after binary POST", await get(p, `EIO=4&transport=polling&sid=${sid}`));
  show("unknown sid", await get(p, "EIO=4&transport=polling&sid=nope"));
  show("bad transport", await get(p, "EIO=4&transport=carrier-pigeon"));
  show("missing EIO", await get(p, "transport=polling"));
  show("EIO=3", await get(p, "EIO=3&transport=polling"));
  show("missing transport", await get(p, "EIO=4"));
  show("POST without sid", await post(p, "EIO=4&transport=polling", "40"));
  show("websocket transport without upgrade", await get(p, "EIO=4&transport=websocket"));
  show("ws upgrade unknown sid", await raw(p, "GET /socket.io/?EIO=4&transport=websocket&sid=nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  // unknown EIO packet type over polling -> parse error
  let r2 = await get(p, "EIO=4&transport=polling"); const sid2 = JSON.parse(body(r2).slice(1)).sid;
  show("POST unknown eio type 9", await post(p, `EIO=4&transport=polling&sid=${sid2}`, "9x"));
  show("GET after parse error", await get(p, `EIO=4&transport=polling&sid=${sid2}`));
  // sio parse error: bad JSON
  let r3 = await get(p, "EIO=4&transport=polling"); const sid3 = JSON.parse(body(r3).slice(1)).sid;
  await post(p, `EIO=4&transport=polling&sid=${sid3}`, "40"); await get(p, `EIO=4&transport=polling&sid=${sid3}`);
  show("POST bad sio json", await post(p, `EIO=4&transport=polling&sid=${sid3}`, '42["a",'));
  show("GET after sio parse error", await get(p, `EIO=4&transport=polling&sid=${sid3}`));
  // WebSocket
  const frames = [];
  const ws = new WebSocket(`ws://127.0.0.1:${p}/socket.io/?EIO=4&transport=websocket`);
  ws.on("message", (d, isBin) => { frames.push((isBin ? "BIN " : "TXT ") + JSON.stringify(isBin ? [...d] : d.toString())); });
  ws.on("open", () => {
    ws.send("40");
    setTimeout(() => ws.send('42["bin"]'), 50);
    setTimeout(() => { ws.send('451-["ack",{"_placeholder":true,"num":0}]'); ws.send(Buffer.from([1,2,3,4])); }, 100);
    setTimeout(() => ws.send('421["ack",1]'), 150);
    setTimeout(() => ws.send('42["kick"]'), 200);
  });
  ws.on("close", (code, reason) => frames.push(`CLOSE ${code} ${JSON.stringify(reason.toString())}`));
  await new Promise((z) => setTimeout(z, 600));
  console.log("=== WebSocket frames (server->client)\n" + frames.join("\n"));
  srv.close(); io.close(); setTimeout(() => process.exit(0), 100);
});
