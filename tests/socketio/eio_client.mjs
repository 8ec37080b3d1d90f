// The official engine.io-client (pinned in package-lock.json) against `wsx sio`'s raw Engine.IO
// echo at /engine.io/, in the three modes of issue 12: polling then upgrade, WebSocket only,
// polling only. Each mode sends text, UTF-8, binary and a large message, before and (with the
// upgrade) after the move to WebSocket, and checks every echo, in order. (No text holds the
// record separator 0x1e: over polling it splits the packet, with the reference server too.)
// Then, with 200 ms pings, sessions in each mode must stay open: the client's pongs count.
//
//   WSX_BIN=build/wsx node tests/socketio/eio_client.mjs
//
// Exits 0 when every check passed, 1 otherwise; bounded to 60 s; kills the server it started.
import { spawn } from 'node:child_process';
import { Socket } from 'engine.io-client';

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

const within = (p, ms, what) => Promise.race([
  p, new Promise((_, no) => setTimeout(() => no(new Error(`${what}: timed out after ${ms} ms`)), ms)),
]);

function startServer(extra = []) {
  const child = spawn(WSX_BIN, ['sio', '--host', '127.0.0.1', '--port', '0', '--quiet', ...extra],
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

const same = (a, b) => {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  const x = Buffer.from(a), y = Buffer.from(b);
  return x.equals(y);
};

const show = (v) => (typeof v === 'string' ? JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)
  : `<binary ${Buffer.from(v).length} bytes>`);

// Sends each message and waits for its echo (the echo keeps the order).
async function roundTrip(sock, msgs, label) {
  const got = [];
  const done = new Promise((resolve) => {
    const on = (d) => { got.push(d); if (got.length === msgs.length) { sock.off('message', on); resolve(); } };
    sock.on('message', on);
  });
  for (const m of msgs) sock.send(m);
  await within(done, 10000, `${label}: echoes`);
  msgs.forEach((m, i) => check(same(got[i], m), `${label}: echo of ${show(m)}`, `got ${show(got[i])}`));
  const kinds = got.map((g) => typeof g === 'string');
  msgs.forEach((m, i) => check(kinds[i] === (typeof m === 'string'), `${label}: type of echo ${i} kept`));
}

function payloads() {
  const bin = new Uint8Array(256);
  for (let i = 0; i < 256; i++) bin[i] = i;
  return [
    'hello',
    'UTF-8: é € 😀 \u2028 \u0001 "q" \\ 中文',
    bin.buffer,
    new Uint8Array([0]).buffer,
    'x'.repeat(100000),
    '4 looks like a type digit',
  ];
}

async function mode(port, name, transports, expectUpgrade) {
  const sock = new Socket(`http://127.0.0.1:${port}`, {
    path: '/engine.io/', transports, upgrade: expectUpgrade,
  });
  sock.binaryType = 'arraybuffer';
  try {
    await within(new Promise((resolve, reject) => {
      sock.once('open', resolve);
      sock.once('error', (e) => reject(new Error(`error: ${e && e.message}`)));
    }), 10000, `${name}: open`);
    check(/^[A-Za-z0-9_-]{20}$/.test(sock.id), `${name}: session id of 20 base64url characters`, sock.id);
    check(sock.transport.name === transports[0], `${name}: opened on ${transports[0]}`, sock.transport.name);
    const upgraded = expectUpgrade
      ? within(new Promise((r) => sock.once('upgrade', (t) => r(t.name))), 10000, `${name}: upgrade`)
      : null;
    await roundTrip(sock, payloads(), `${name} (${sock.transport.name})`);
    if (upgraded) {
      check(await upgraded === 'websocket', `${name}: upgraded to websocket`);
      check(sock.transport.name === 'websocket', `${name}: transport is websocket after the upgrade`);
      await roundTrip(sock, payloads(), `${name} (after upgrade)`);
    } else {
      check(sock.transport.name === transports[0], `${name}: still on ${transports[0]}`);
    }
    const closed = new Promise((r) => sock.once('close', (reason) => r(reason)));
    sock.close();
    check(await within(closed, 5000, `${name}: close`) === 'forced close', `${name}: closed by the client`);
  } catch (e) {
    check(false, name, e.message);
    sock.close();
  }
}

// With pingInterval 200 and pingTimeout 300 the client must answer pings on its transport
// (polling, then WebSocket after the upgrade): the session outlives many intervals.
async function heartbeat(port, name, transports) {
  const sock = new Socket(`http://127.0.0.1:${port}`, { path: '/engine.io/', transports });
  try {
    await within(new Promise((r) => sock.once('open', r)), 10000, `${name}: open`);
    let pings = 0;
    sock.on('ping', () => pings++);
    let closed = null;
    sock.on('close', (reason) => { closed = reason; });
    await new Promise((r) => setTimeout(r, 1500));
    check(closed === null, `${name}: still open after 1.5 s of 200 ms pings`, closed);
    check(pings >= 4, `${name}: the client saw the pings (${pings})`);
    await roundTrip(sock, ['after pings'], name);
    sock.close();
  } catch (e) {
    check(false, name, e.message);
    sock.close();
  }
}

const deadline = setTimeout(() => { console.log('FAIL - the whole test took over 60 s'); process.exit(1); }, 60000);
const { child, port } = await startServer();
try {
  await mode(port, 'polling then upgrade', ['polling', 'websocket'], true);
  await mode(port, 'websocket only', ['websocket'], false);
  await mode(port, 'polling only', ['polling'], false);
} finally {
  child.kill('SIGKILL');
}
const hb = await startServer(['--ping-interval', '200', '--ping-timeout', '300']);
try {
  await heartbeat(hb.port, 'heartbeat, polling then upgrade', ['polling', 'websocket']);
  await heartbeat(hb.port, 'heartbeat, polling only', ['polling']);
  await heartbeat(hb.port, 'heartbeat, websocket only', ['websocket']);
} finally {
  hb.child.kill('SIGKILL');
  clearTimeout(deadline);
}
console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
process.exit(failed ? 1 : 0);
