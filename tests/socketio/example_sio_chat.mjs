// examples/sio_chat.c with the official socket.io-client: two clients (one on WebSocket, one
// on polling); a 'chat message' from either reaches both, the sender included; SIGTERM ends
// the example with status 0 after disconnecting both ("server shutting down").
//
//   WSX_EXAMPLE_SIO_CHAT=build/example_sio_chat node tests/socketio/example_sio_chat.mjs
//
// Exits 0 when every check passed, 1 otherwise; bounded to 30 s; kills what it started.
import { spawn } from 'node:child_process';
import { io } from 'socket.io-client';

const BIN = process.env.WSX_EXAMPLE_SIO_CHAT;
if (!BIN) {
  console.error('WSX_EXAMPLE_SIO_CHAT is not set');
  process.exit(2);
}
let failed = 0;
function check(ok, name, detail) {
  if (!ok) failed++;
  console.log(`${ok ? 'ok' : 'FAIL'} - ${name}${!ok && detail !== undefined ? `: ${detail}` : ''}`);
}
const within = (p, ms, what) => Promise.race([
  p, new Promise((_, no) => setTimeout(() => no(new Error(`${what}: timed out after ${ms} ms`)), ms)),
]);
const once = (s, ev) => within(new Promise((ok) => s.once(ev, (...a) => ok(a))), 5000, ev);

const timer = setTimeout(() => { console.log('FAIL - timed out after 30 s'); process.exit(1); }, 30000);
const child = spawn(BIN, ['0'], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
const exited = new Promise((ok) => child.on('exit', (code, sig) => ok({ code, sig })));
try {
  const port = await within(new Promise((ok) => child.stdout.on('data', (d) => {
    out += d;
    const m = out.match(/listening on port (\d+)/);
    if (m) ok(Number(m[1]));
  })), 5000, 'listening');
  const url = `http://127.0.0.1:${port}`;
  const a = io(url, { transports: ['websocket'], reconnection: false });
  const b = io(url, { transports: ['polling'], reconnection: false });
  await Promise.all([once(a, 'connect'), once(b, 'connect')]);
  const got = Promise.all([once(a, 'chat message'), once(b, 'chat message')]);
  a.emit('chat message', 'hello é😀');
  const [[x], [y]] = await got;
  check(x === 'hello é😀' && y === 'hello é😀', 'a chat message reaches both clients, the sender too',
    JSON.stringify([x, y]));
  const got2 = Promise.all([once(a, 'chat message'), once(b, 'chat message')]);
  b.emit('chat message', 'from polling');
  const [[x2], [y2]] = await got2;
  check(x2 === 'from polling' && y2 === 'from polling', 'and from the polling client');
  const gone = Promise.all([once(a, 'disconnect'), once(b, 'disconnect')]);
  child.kill('SIGTERM');
  const x3 = await within(exited, 5000, 'exit');
  check(x3.code === 0, 'exit status 0 after SIGTERM', JSON.stringify(x3));
  await within(gone, 5000, 'disconnect').catch((e) => check(false, 'clients disconnected', e.message));
  check(/disconnected \S+: server shutting down/.test(out), 'the server reports "server shutting down"', out);
  a.close();
  b.close();
} catch (e) {
  check(false, 'example_sio_chat', e.stack || String(e));
} finally {
  clearTimeout(timer);
  child.kill('SIGKILL');
}
console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
process.exit(failed ? 1 : 0);
