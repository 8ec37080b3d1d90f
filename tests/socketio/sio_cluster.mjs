// Socket.IO broadcasts across nodes (issue 13, docs/cluster.md "Socket.IO"): two `wsx sio
// --redis` nodes and one Node.js socket.io node with @socket.io/redis-adapter on one
// redis-server started here (a free loopback port, no persistence); official socket.io-client
// clients on each node; @socket.io/redis-emitter from this process. Checks that room and
// namespace broadcasts reach every node's clients exactly once, the sender excluded, in both
// directions between wsx and Node; that binary arguments cross; that hostile messages on the
// adapter's channels are dropped and the nodes keep going; that with Redis down local
// broadcasts continue. Versions pinned in package-lock.json.
//
//   WSX_BIN=build/wsx node tests/socketio/sio_cluster.mjs
//
// Exits 0 when every check passed, 1 otherwise, 77 without redis-server; bounded to 90 s;
// kills what it started.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { io } from 'socket.io-client';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { Emitter } from '@socket.io/redis-emitter';
import { createClient } from 'redis';

const WSX_BIN = process.env.WSX_BIN;
const REDIS = '/usr/bin/redis-server';
if (!WSX_BIN) {
  console.error('WSX_BIN is not set');
  process.exit(2);
}
if (!existsSync(REDIS)) {
  console.log('skipped: no /usr/bin/redis-server');
  process.exit(77);
}

let failed = 0;
function check(ok, name, detail) {
  if (!ok) failed++;
  console.log(`${ok ? 'ok' : 'FAIL'} - ${name}${!ok && detail !== undefined ? `: ${detail}` : ''}`);
  return ok;
}
const sleep = (ms) => new Promise((z) => setTimeout(z, ms));
const within = (p, ms, what) => Promise.race([
  p, new Promise((_, no) => setTimeout(() => no(new Error(`${what}: timed out after ${ms} ms`)), ms)),
]);
const children = [];
const killAll = () => { for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ } };
process.on('exit', killAll);
setTimeout(() => { console.log('FAIL - the whole test took over 90 s'); killAll(); process.exit(1); }, 90000).unref();

function freePort() {
  return new Promise((ok) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => ok(p)); });
  });
}

async function startRedis(port) {
  const c = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no'], { stdio: 'ignore' });
  children.push(c);
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((ok) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); ok(true); });
      s.on('error', () => ok(false));
    });
    if (up) return c;
    await sleep(50);
  }
  throw new Error('redis-server did not start');
}

function startWsx(redisUrl) {
  const child = spawn(WSX_BIN, ['sio', '--host', '127.0.0.1', '--port', '0', '--quiet',
    '--redis', redisUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return within(new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^:]+:(\d+)\//);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`wsx sio exited with ${code}`)));
  }), 10000, 'wsx sio start');
}

// The Node node: socket.io with the redis adapter and wsx sio's join/broadcast behaviours.
async function startNode(redisUrl) {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on('error', () => {});
  sub.on('error', () => {});
  await Promise.all([pub.connect(), sub.connect()]);
  const http = createServer();
  const srv = new Server(http, { adapter: createAdapter(pub, sub) });
  srv.on('connection', (s) => {
    s.on('join', (room, ack) => { s.join(room); if (ack) ack(`joined:${room}`); });
    s.on('broadcast', (room, p) => s.to(room).emit('broadcasted', p));
    s.on('broadcast-all', (p) => srv.emit('broadcasted-all', p));
  });
  await new Promise((ok) => http.listen(0, '127.0.0.1', ok));
  return { srv, http, pub, sub, port: http.address().port };
}

// A client that records every event it gets.
async function client(port, name) {
  const s = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false, forceNew: true });
  s.got = [];
  s.onAny((ev, ...args) => s.got.push([ev, ...args]));
  await within(new Promise((ok, no) => { s.on('connect', ok); s.on('connect_error', no); }), 5000, `${name} connect`);
  s.label = name;
  return s;
}
const join = (s, room) => within(s.emitWithAck('join', room), 5000, `${s.label} join`);
const count = (s, ev, p) => s.got.filter((e) => e[0] === ev && JSON.stringify(e[1]) === JSON.stringify(p)).length;

// Waits until every client in `want` has the event once (or 3 s), then 300 ms more for
// duplicates; checks each client's count.
async function expect(what, ev, p, want, not) {
  for (let i = 0; i < 60 && !want.every((s) => count(s, ev, p) >= 1); i++) await sleep(50);
  await sleep(300);
  for (const s of want) check(count(s, ev, p) === 1, `${what}: ${s.label} got it once`, `${count(s, ev, p)} times`);
  for (const s of not) check(count(s, ev, p) === 0, `${what}: ${s.label} did not get it`, `${count(s, ev, p)} times`);
}

async function main() {
  const rport = await freePort();
  const redis = await startRedis(rport);
  const url = `redis://127.0.0.1:${rport}`;
  const [A, B] = await Promise.all([startWsx(url), startWsx(url)]);
  const N = await startNode(url);
  await sleep(500); // the nodes subscribe
  const a1 = await client(A.port, 'a1 (wsx A)');
  const a2 = await client(A.port, 'a2 (wsx A)');
  const b1 = await client(B.port, 'b1 (wsx B)');
  const bx = await client(B.port, 'bx (wsx B, no room)');
  const n1 = await client(N.port, 'n1 (Node)');
  const nx = await client(N.port, 'nx (Node, no room)');
  for (const s of [a1, a2, b1, n1]) await join(s, 'r');
  const all = [a1, a2, b1, bx, n1, nx];

  // wsx to room, sender excluded: the other wsx node and the Node node.
  a1.emit('broadcast', 'r', 'p1');
  await expect('wsx A to room r', 'broadcasted', 'p1', [a2, b1, n1], [a1, bx, nx]);
  a1.emit('broadcast-all', 'p2');
  await expect('wsx A to all', 'broadcasted-all', 'p2', all, []);
  // Node to room and to all: the wsx nodes' clients.
  n1.emit('broadcast', 'r', 'p3');
  await expect('Node to room r', 'broadcasted', 'p3', [a1, a2, b1], [n1, bx, nx]);
  n1.emit('broadcast-all', 'p4');
  await expect('Node to all', 'broadcasted-all', 'p4', all, []);
  // Binary arguments cross both ways (wsx sio's broadcast carries its second argument).
  const isBuf = (s, ev, bytes) => s.got.filter((e) => e[0] === ev && Buffer.isBuffer(e[1]) &&
    Buffer.from(e[1]).equals(Buffer.from(bytes))).length;
  a1.emit('broadcast', 'r', Buffer.from([0, 1, 255]));
  n1.emit('broadcast', 'r', Buffer.from([9, 8, 7]));
  await sleep(800);
  for (const s of [a2, b1, n1]) check(isBuf(s, 'broadcasted', [0, 1, 255]) === 1, `binary from wsx reaches ${s.label} once`);
  check(isBuf(a1, 'broadcasted', [0, 1, 255]) === 0, 'binary from wsx: not to the sender');
  for (const s of [a1, a2, b1]) check(isBuf(s, 'broadcasted', [9, 8, 7]) === 1, `binary from Node reaches ${s.label} once`);

  // The emitter from this process: to a room, to all, except a room (a socket's own id).
  const ec = createClient({ url });
  ec.on('error', () => {});
  await ec.connect();
  const em = new Emitter(ec);
  em.to('r').emit('from-emitter', { k: 1 });
  await expect('emitter to room r', 'from-emitter', { k: 1 }, [a1, a2, b1, n1], [bx, nx]);
  em.emit('from-emitter', 'all');
  await expect('emitter to all', 'from-emitter', 'all', all, []);
  em.to('r').except(a1.id).emit('from-emitter', 'except');
  await expect('emitter to r except a1', 'from-emitter', 'except', [a2, b1, n1], [a1]);
  em.to('r').to('other').emit('from-emitter', 'two rooms');
  await expect('emitter to r and other', 'from-emitter', 'two rooms', [a1, a2, b1, n1], [bx, nx]);

  // Hostile bytes on a channel of wsx's pattern (KEY#*) that the Node adapter's (KEY#/#*)
  // does not match (notepack.io throws out of the adapter on them): dropped; the wsx nodes
  // keep relaying.
  const hostile = [
    Buffer.from([0xc1]), Buffer.from([0xdd, 0x00, 0xff, 0xff, 0xff]), // a 16M-element claim
    Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff]), Buffer.alloc(100, 0x91), // deep nesting
    Buffer.from([0x93, 0xa1, 0x78, 0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0x02, 0x80]), // no data
    Buffer.from('not msgpack at all'), Buffer.alloc(0),
  ];
  for (const h of hostile) {
    await ec.publish('socket.io#/x#', h);
    await ec.publish('socket.io#/x#r#', h);
  }
  em.to('r').emit('from-emitter', 'after hostile');
  await expect('after hostile messages', 'from-emitter', 'after hostile', [a1, a2, b1, n1], [bx]);
  check(A.child.exitCode === null && B.child.exitCode === null, 'wsx nodes alive after hostile messages');

  // Redis down: local broadcasts go on; nothing crosses.
  await ec.quit().catch(() => {});
  redis.kill('SIGKILL');
  await sleep(500);
  a1.emit('broadcast', 'r', 'down');
  await expect('Redis down: local room broadcast', 'broadcasted', 'down', [a2], [a1, b1, n1]);
  a1.emit('broadcast-all', 'down-all');
  await expect('Redis down: local broadcast-all', 'broadcasted-all', 'down-all', [a1, a2], [b1, bx, n1, nx]);
  check(A.child.exitCode === null && B.child.exitCode === null, 'wsx nodes alive with Redis down');

  for (const s of all) s.close();
  // A graceful stop with Redis down: exit 0 (under ASan, LeakSanitizer runs at that exit).
  for (const [name, n] of [['A', A], ['B', B]]) {
    const code = await within(new Promise((ok) => { n.child.on('exit', (c, sig) => ok(c ?? sig)); n.child.kill('SIGTERM'); }), 10000, `wsx ${name} stop`);
    check(code === 0, `wsx node ${name} stops with exit 0`, String(code));
  }
  N.srv.close();
  await Promise.all([N.pub.disconnect().catch(() => {}), N.sub.disconnect().catch(() => {})]);
}

try {
  await main();
} catch (e) {
  check(false, 'the test ran to its end', e.stack || String(e));
}
killAll();
console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
process.exit(failed ? 1 : 0);
