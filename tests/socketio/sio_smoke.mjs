// A short smoke test of `wsx sio`'s Socket.IO server with the official socket.io-client
// (pinned in package-lock.json), over WebSocket only and over polling only: the behaviours
// of issue 12 (auth echo, message-back with binary, message-with-ack, join and room
// broadcast without the sender, broadcast-all, request-ack, /custom multiplexed, an unknown
// namespace refused with "Invalid namespace", a client disconnect). The full interop suite
// is tests/socketio/sio_interop.cjs.
//
//   WSX_BIN=build/wsx node tests/socketio/sio_smoke.mjs
//
// Exits 0 when every check passed, 1 otherwise; bounded to 60 s; kills the server it started.
import { spawn } from 'node:child_process';
import { io } from 'socket.io-client';

const WSX_BIN = process.env.WSX_BIN;
if (!WSX_BIN) {
  console.error('WSX_BIN is not set');
  process.exit(2);
}

let failed = 0;
function check(ok, name, detail) {
  if (!ok) failed++;
  console.log(`${ok ? 'ok' : 'FAIL'} - ${name}${!ok && detail !== undefined ? `: ${detail}` : ''}`);
  return ok;
}
const eq = (a, b, name) => check(JSON.stringify(a) === JSON.stringify(b), name,
  `got ${JSON.stringify(a)}, expected ${JSON.stringify(b)}`);

const within = (p, ms, what) => Promise.race([
  p, new Promise((_, no) => setTimeout(() => no(new Error(`${what}: timed out after ${ms} ms`)), ms)),
]);
const once = (sock, ev) => within(new Promise((ok) => sock.once(ev, (...a) => ok(a))), 5000, ev);

function startServer() {
  const child = spawn(WSX_BIN, ['sio', '--host', '127.0.0.1', '--port', '0', '--quiet'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^:]+:(\d+)\//);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`wsx sio exited with ${code}`)));
  });
}

async function mode(port, transports) {
  const tag = transports.join('+');
  const url = `http://127.0.0.1:${port}`;
  const opts = { transports, reconnection: false, forceNew: true };
  const a = io(url, { ...opts, auth: { token: 'é😀', n: 1.5 } });
  const [auth] = await once(a, 'auth');
  eq(auth, { token: 'é😀', n: 1.5 }, `${tag}: auth echo`);

  a.emit('message', 'text', 1, { x: [null, true] }, Buffer.from([0, 1, 255]));
  const back = await once(a, 'message-back');
  eq(back.slice(0, 3), ['text', 1, { x: [null, true] }], `${tag}: message-back arguments`);
  check(Buffer.isBuffer(back[3]) && Buffer.from(back[3]).equals(Buffer.from([0, 1, 255])),
    `${tag}: message-back binary`);

  const acked = await within(a.emitWithAck('message-with-ack', 'x', 2), 5000, 'ack');
  eq(acked, 'x', `${tag}: message-with-ack (first argument)`);

  const b = io(url, opts);
  await once(b, 'auth');
  eq(await within(a.emitWithAck('join', 'room1'), 5000, 'join'), 'joined:room1', `${tag}: join a`);
  eq(await within(b.emitWithAck('join', 'room1'), 5000, 'join'), 'joined:room1', `${tag}: join b`);
  let aGot = false;
  a.on('broadcasted', () => { aGot = true; });
  b.emit('broadcast', 'room1', { hi: 'there' });
  // a gets it, b (the sender) does not
  const [payload] = await once(a, 'broadcasted').catch(() => [undefined]);
  aGot = false;
  eq(payload, { hi: 'there' }, `${tag}: room broadcast reaches the other member`);
  let bGot = false;
  b.on('broadcasted', () => { bGot = true; });
  const both = Promise.all([once(a, 'broadcasted-all'), once(b, 'broadcasted-all')]);
  a.emit('broadcast-all', [1, 2]);
  const [[all1], [all2]] = await both;
  eq([all1, all2], [[1, 2], [1, 2]], `${tag}: broadcast-all reaches both`);
  check(!bGot && !aGot, `${tag}: the sender of a room broadcast does not get it`);
  // Binary broadcast: the attachment framed once, reaching both.
  const bins = Promise.all([once(a, 'broadcasted-all'), once(b, 'broadcasted-all')]);
  a.emit('broadcast-all', Buffer.from([9, 8, 7]));
  const [[ba], [bb]] = await bins;
  check(Buffer.from(ba).equals(Buffer.from([9, 8, 7])) && Buffer.from(bb).equals(Buffer.from([9, 8, 7])),
    `${tag}: binary broadcast-all reaches both`, `${ba} ${bb}`);

  b.on('server-ack-request', (...args) => {
    const cb = args.pop();
    cb('answer', args.length);
  });
  eq(await within(b.emitWithAck('request-ack', 'q1', 'q2'), 5000, 'request-ack'), 'answer',
    `${tag}: request-ack acks back the client's answer`);

  const c = io(`${url}/custom`, { ...opts, auth: { ns: 'custom' } });
  const [cAuth] = await once(c, 'auth');
  eq(cAuth, { ns: 'custom' }, `${tag}: /custom auth echo`);

  const bad = io(`${url}/nope`, opts);
  const [err] = await once(bad, 'connect_error');
  eq(err && err.message, 'Invalid namespace', `${tag}: unknown namespace refused`);
  bad.close();

  const gone = once(b, 'disconnect');
  b.disconnect();
  eq((await gone)[0], 'io client disconnect', `${tag}: client disconnect`);
  a.close();
  c.close();
}

const timer = setTimeout(() => {
  console.log('FAIL - timed out after 60 s');
  process.exit(1);
}, 60000);
let server;
try {
  server = await startServer();
  await mode(server.port, ['websocket']);
  await mode(server.port, ['polling']);
  await mode(server.port, ['polling', 'websocket']);
} catch (e) {
  check(false, 'smoke', e.stack || String(e));
} finally {
  clearTimeout(timer);
  if (server) server.child.kill('SIGKILL');
}
console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
process.exit(failed ? 1 : 0);
