// The Node.js Socket.IO reference server for `wsx bench --mode sio-*` (issue 12): the events
// of `wsx sio` that the benchmark uses, with the same answers, so that one client measures both.
//
//   node bench/sio/server.mjs [--port P] [--host H] [--engine ws|bufferutil]
//                             [--ping-interval MS] [--ping-timeout MS] [--corrupt-ack N]
//                             [--broadcast-form payload|room|offset]
//
// Prints "listening on http://H:P/" once it accepts connections (the line bench/run.sh and the
// tests wait for). 127.0.0.1 and port 0 (any free port) by default.
//
// Events (each as `wsx sio` answers it, docs/socketio.md and issue 12):
//   on connect               emits `auth` with the CONNECT payload (wsx sio does the same)
//   message-with-ack ...args acks with the same arguments: 42<id>["message-with-ack",x] -> 43<id>[x]
//   message ...args          emits `message-back` with the same arguments
//   join room                joins the room, acks "joined:"+room
//   broadcast room, payload  emits `broadcasted` payload to the room, the sender excluded
//   broadcast-all payload    emits `broadcasted-all` payload to every socket
//
// --engine: ws (the default: socket.io's own `ws` engine, with bufferutil turned off) or
// bufferutil (the same `ws` with its native masking addon, npm bufferutil). eiows and
// uWebSockets.js do not install from the npm registry here (bench/sio/README.md says why).
// --ping-interval, --ping-timeout: Engine.IO's (25000 and 20000 by default, as in socket.io).
// --corrupt-ack N: the Nth ack of the process carries one changed character (tests of the
// bench's verification only).
// --broadcast-form: what `broadcasted` carries: the payload (the default), the room and the
// payload, or the payload and an offset string like connection state recovery's (the other
// forms `wsx bench` takes; tests only).
//
// socket.io comes from bench/sio/node_modules (npm ci in bench/sio), else from
// tests/socketio/node_modules (the interop tests' fixture), else from $SIO_NODE_MODULES.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = { port: 0, host: '127.0.0.1', engine: 'ws', corruptAck: 0, broadcastForm: 'payload', pingInterval: 25000, pingTimeout: 20000 };
for (let i = 0; i < args.length; i++) {
  const a = args[i], v = args[i + 1];
  if (a === '--port') opt.port = Number(v), i++;
  else if (a === '--host') opt.host = v, i++;
  else if (a === '--engine') opt.engine = v, i++;
  else if (a === '--corrupt-ack') opt.corruptAck = Number(v), i++;
  else if (a === '--broadcast-form') opt.broadcastForm = v, i++;
  else if (a === '--ping-interval') opt.pingInterval = Number(v), i++;
  else if (a === '--ping-timeout') opt.pingTimeout = Number(v), i++;
  else {
    console.error(`server.mjs: unknown argument '${a}'`);
    process.exit(2);
  }
}
if (!['ws', 'bufferutil'].includes(opt.engine)) {
  console.error(`server.mjs: unknown engine '${opt.engine}' (ws or bufferutil)`);
  process.exit(2);
}
// ws loads bufferutil by itself when it can resolve it; the default engine must not.
if (opt.engine === 'ws') process.env.WS_NO_BUFFER_UTIL = '1';
else delete process.env.WS_NO_BUFFER_UTIL;

const candidates = [
  process.env.SIO_NODE_MODULES,
  join(here, 'node_modules'),
  join(here, '..', '..', 'tests', 'socketio', 'node_modules'),
].filter(Boolean);
const modules = candidates.find((d) => existsSync(join(d, 'socket.io', 'package.json')));
if (!modules) {
  console.error(`server.mjs: socket.io not found in ${candidates.join(', ')}: npm ci in bench/sio`);
  process.exit(1);
}
const require = createRequire(join(modules, 'x.js'));
const { Server } = require('socket.io');
const version = require('socket.io/package.json').version;
let engineNote = 'ws';
if (opt.engine === 'bufferutil') {
  try {
    require('bufferutil');
    engineNote = 'ws + bufferutil';
  } catch (e) {
    console.error(`server.mjs: --engine bufferutil: bufferutil not found in ${modules}`);
    process.exit(1);
  }
}

const http = require('node:http').createServer();
// Only the WebSocket transport is benchmarked, but polling stays on as in a default server.
const io = new Server(http, {
  serveClient: false,
  maxHttpBufferSize: 1e6,
  pingInterval: opt.pingInterval,
  pingTimeout: opt.pingTimeout,
});
let acks = 0;

io.on('connection', (socket) => {
  socket.emit('auth', socket.handshake.auth);
  socket.on('message-with-ack', (...a) => {
    const ack = a.pop();
    if (typeof ack !== 'function') return;
    // The same length, one character changed ('#' is not in the bench's words).
    if (++acks === opt.corruptAck)
      a = a.map((x) => (x && typeof x.text === 'string' ? { ...x, text: '#' + x.text.slice(1) } : x));
    ack(...a);
  });
  socket.on('message', (...a) => socket.emit('message-back', ...a));
  socket.on('join', (room, ack) => {
    socket.join(String(room));
    if (typeof ack === 'function') ack('joined:' + room);
  });
  socket.on('broadcast', (room, payload) => {
    const to = socket.to(String(room));
    if (opt.broadcastForm === 'room') to.emit('broadcasted', room, payload);
    else if (opt.broadcastForm === 'offset') to.emit('broadcasted', payload, 'Q8yOABd');
    else to.emit('broadcasted', payload);
  });
  socket.on('broadcast-all', (payload) => io.emit('broadcasted-all', payload));
});

http.listen(opt.port, opt.host, () => {
  const { port } = http.address();
  console.log(`listening on http://${opt.host}:${port}/`);
  console.error(`socket.io ${version} (${engineNote}) from ${modules}, pid ${process.pid}`);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
