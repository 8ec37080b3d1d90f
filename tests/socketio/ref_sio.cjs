// The reference for `wsx sio` (issue 12): the pinned Node socket.io 4.8.4 with exactly the
// behaviours the issue gives `wsx sio`, so that the interop suites (sio_interop.cjs,
// python_client.py) can be validated against it before the C server exists, and so that
// bytes can be compared side by side.
//
//   node ref_sio.cjs [--host 127.0.0.1] [--port 0] [--ping-interval MS] [--ping-timeout MS]
//                    [--max-payload BYTES] [--connect-timeout MS] [--cors-origin ORIGIN]...
//                    [--cors-credentials]
//
// Prints "listening on PORT" on stdout once ready. SIGINT/SIGTERM close it.
//
// Namespaces / and /custom (any other: connect_error "Invalid namespace"), in each:
//   on connection      emit("auth", <the CONNECT payload>)
//   message ...args    emit("message-back", ...args) to the sender (binary included)
//   message-with-ack   acked with its arguments
//   join room, ack     socket.join(room); ack("joined:" + room)
//   broadcast room, p  to(room) except the sender: emit("broadcasted", p)
//   broadcast-all p    to every socket of the namespace, the sender too: emit("broadcasted-all", p)
//   request-ack ...a, ack   emit("server-ack-request", ...a, cb) to the caller; cb's arguments
//                      are acked back to the caller
// Connection state recovery is on (socket.io's defaults: 120 s, middlewares skipped).
// /engine.io/ on the same port: a raw Engine.IO server that sends every message back unchanged.
"use strict";
const http = require("http");
const { Server } = require("socket.io");
const engine = require("engine.io");

function parseArgs(argv) {
  const o = { host: "127.0.0.1", port: 0, pingInterval: 25000, pingTimeout: 20000,
              maxPayload: 1000000, connectTimeout: 45000, cors: [], credentials: false };
  const num = (name, v) => {
    if (!/^\d+$/.test(v || "")) { console.error(`ref_sio: ${name} needs a number`); process.exit(2); }
    return Number(v);
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    switch (a) {
      case "--host": o.host = v; i++; break;
      case "--port": o.port = num(a, v); i++; break;
      case "--ping-interval": o.pingInterval = num(a, v); i++; break;
      case "--ping-timeout": o.pingTimeout = num(a, v); i++; break;
      case "--max-payload": o.maxPayload = num(a, v); i++; break;
      case "--connect-timeout": o.connectTimeout = num(a, v); i++; break;
      case "--cors-origin": o.cors.push(v); i++; break;
      case "--cors-credentials": o.credentials = true; break;
      default: console.error(`ref_sio: unknown option ${a}`); process.exit(2);
    }
  }
  return o;
}

const o = parseArgs(process.argv);
const cors = o.cors.length ? { origin: o.cors, credentials: o.credentials } : undefined;
const srv = http.createServer();
const io = new Server(srv, {
  pingInterval: o.pingInterval, pingTimeout: o.pingTimeout, maxHttpBufferSize: o.maxPayload,
  connectTimeout: o.connectTimeout, cors, destroyUpgrade: false,
  connectionStateRecovery: { maxDisconnectionDuration: 120000, skipMiddlewares: true },
});

function behaviours(nsp) {
  nsp.on("connection", (socket) => {
    socket.emit("auth", socket.handshake.auth);
    socket.on("message", (...args) => socket.emit("message-back", ...args));
    socket.on("message-with-ack", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") ack(...args);
    });
    socket.on("join", (room, ack) => {
      socket.join(room);
      if (typeof ack === "function") ack("joined:" + room);
    });
    socket.on("broadcast", (room, payload) => socket.to(room).emit("broadcasted", payload));
    socket.on("broadcast-all", (payload) => nsp.emit("broadcasted-all", payload));
    socket.on("request-ack", (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      socket.emit("server-ack-request", ...args, (...answer) => { if (ack) ack(...answer); });
    });
  });
}
// Only these two exist: socket.io refuses any other namespace with "Invalid namespace".
behaviours(io.of("/"));
behaviours(io.of("/custom"));

// The raw Engine.IO echo.
const eio = new engine.Server({
  pingInterval: o.pingInterval, pingTimeout: o.pingTimeout, maxHttpBufferSize: o.maxPayload,
  cors, destroyUpgrade: false,
});
eio.attach(srv, { path: "/engine.io/", destroyUpgrade: false });
eio.on("connection", (s) => s.on("message", (data) => s.send(data)));

srv.listen(o.port, o.host, () => {
  console.log(`listening on ${srv.address().port}`);
});
srv.on("error", (e) => { console.error(`ref_sio: ${e.message}`); process.exit(1); });
const stop = () => { io.close(); eio.close(); srv.close(); setTimeout(() => process.exit(0), 200).unref(); };
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
