// Shared helpers for the node interop tests: checks and reporting, a bounded test runner that
// kills whatever it started, `wsx echo`, `wsx serve` and wsx_client_test processes, ws peers
// with message queues, deterministic payloads, raw frames for bad input, and throw-away TLS
// certificates (certs.sh) with a look at the certificate a TLS server presents.
//
// Environment: WSX_BIN (the wsx binary), WSX_CLIENT_TEST (the wsx_client_test binary).

import { spawn, execFileSync } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';

export const WSX_BIN = process.env.WSX_BIN || '';
export const WSX_CLIENT_TEST = process.env.WSX_CLIENT_TEST || '';

// ---- checks ----------------------------------------------------------------------------------

let nChecks = 0;
let nFailed = 0;

export function check(ok, name, detail) {
  nChecks++;
  if (!ok) nFailed++;
  const extra = !ok && detail !== undefined ? `: ${detail}` : '';
  console.log(`${ok ? 'ok' : 'FAIL'} - ${name}${extra}`);
  return !!ok;
}

export function eq(actual, expected, name) {
  return check(actual === expected, `${name} (${String(expected)})`,
    `expected ${String(expected)}, got ${String(actual)}`);
}

// A check that fails today because of a known bug (named in bug): a failure is reported as
// XFAIL and does not fail the test; a pass is reported as XPASS (fixed: make it a plain check).
export function xfail(ok, name, bug, detail) {
  nChecks++;
  if (ok) console.log(`ok - ${name} (XPASS: fixed? ${bug})`);
  else console.log(`XFAIL - ${name} [known bug: ${bug}]${detail !== undefined ? `: ${detail}` : ''}`);
  return !!ok;
}

export function note(msg) {
  console.log(`# ${msg}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves with p's value, or rejects with "<what>: timed out after <ms> ms".
export function within(p, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

// ---- processes -------------------------------------------------------------------------------

const children = new Set();

function killAll() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try { c.kill('SIGKILL'); } catch { /* already gone */ }
    }
  }
}
process.on('exit', killAll);

function track(proc) {
  children.add(proc);
  proc.exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => { children.delete(proc); resolve({ code, signal }); });
    proc.on('error', (err) => { children.delete(proc); resolve({ code: -1, signal: null, err }); });
  });
  return proc;
}

function lines(stream, fn) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      fn(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => { if (buf) fn(buf); });
}

// Runs the whole test: fn() within timeoutMs, then prints the summary and exits 0 only if
// at least one check ran and none failed. Whatever was started is killed on every path.
export function run(name, fn, { timeoutMs = 60000, needs = ['WSX_BIN'] } = {}) {
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    killAll();
    console.log(`${name}: ${nChecks} checks, ${nFailed} failed`);
    process.exit(nFailed || nChecks === 0 ? 1 : 0);
  };
  const timer = setTimeout(() => {
    check(false, `${name}: whole test timed out after ${timeoutMs} ms`);
    finish();
  }, timeoutMs);
  process.on('uncaughtException', (err) => {
    check(false, `uncaught exception: ${err && err.stack ? err.stack : err}`);
    finish();
  });
  const missing = needs.filter((v) => !process.env[v]);
  if (missing.length) {
    check(false, `environment not set: ${missing.join(', ')} (paths of the binaries under test)`);
    finish();
    return;
  }
  Promise.resolve()
    .then(fn)
    .catch((err) => check(false, `${name}: ${err && err.stack ? err.stack : err}`))
    .finally(() => { clearTimeout(timer); finish(); });
}

// One step of a test: a failure (exception or timeout) is a failed check and the test
// goes on with the next step. cleanup() runs in every case.
export async function step(name, fn, { timeoutMs = 20000, cleanup } = {}) {
  note(`--- ${name}`);
  try {
    await within(Promise.resolve().then(fn), timeoutMs, name);
  } catch (err) {
    check(false, name, err && err.message ? err.message : String(err));
  } finally {
    if (cleanup) {
      try { await cleanup(); } catch (err) { note(`cleanup of ${name}: ${err}`); }
    }
  }
}

// A running server process (`wsx echo`, an example) with its stderr lines.
export class WsxServer extends EventEmitter {
  constructor(proc) {
    super();
    this.proc = proc;
    this.stderr = [];
    this.stdout = [];
    this.port = 0;
    this.url = '';
  }

  // Resolves with the first stderr line (already seen or coming) matching re; with from, only
  // lines from index `from` of this.stderr on count (take this.stderr.length before acting).
  waitStderr(re, ms = 10000, from = 0) {
    const hit = this.stderr.slice(from).find((l) => re.test(l));
    if (hit !== undefined) return Promise.resolve(hit);
    return within(new Promise((resolve) => {
      const on = (l) => { if (re.test(l)) { this.off('stderr', on); resolve(l); } };
      this.on('stderr', on);
    }), ms, `waiting for server log line ${re}`);
  }

  get running() { return this.proc.exitCode === null && this.proc.signalCode === null; }

  // Sends sig and waits up to ms for the exit; then SIGKILL. Resolves {code, signal, killed}.
  async stop(sig = 'SIGTERM', ms = 10000) {
    if (!this.running) return this.proc.exited;
    this.proc.kill(sig);
    try {
      return await within(this.proc.exited, ms, `server exit after ${sig}`);
    } catch {
      this.proc.kill('SIGKILL');
      const r = await this.proc.exited;
      return { ...r, killed: true };
    }
  }
}

// Starts a server program; resolves once a stdout line matches readyRe, whose first group is
// the port it listens on.
// Every `listening on SCHEME://HOST:PORT/` line is also recorded in srv.listening
// ({scheme: port}); srv.url uses `scheme` (wss for a TLS `wsx echo`).
export async function startProgram(argv, readyRe, { readyMs = 10000, quiet = false, tag = 'wsx', scheme = 'ws' } = {}) {
  const proc = track(spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
  const srv = new WsxServer(proc);
  srv.listening = {};
  lines(proc.stderr, (l) => {
    srv.stderr.push(l);
    if (!quiet) process.stderr.write(`[${tag} ${srv.port}] ${l}\n`);
    srv.emit('stderr', l);
  });
  const listening = new Promise((resolve, reject) => {
    lines(proc.stdout, (l) => {
      srv.stdout.push(l);
      const any = /^listening on (\w+):\/\/.+:(\d+)\/?/.exec(l);
      if (any) srv.listening[any[1]] = Number(any[2]);
      const m = readyRe.exec(l);
      if (m && !srv.port) {
        srv.port = Number(m[1]);
        srv.url = `${scheme}://127.0.0.1:${srv.port}/`;
        resolve();
      } else {
        process.stderr.write(`[${tag} stdout] ${l}\n`);
      }
    });
    proc.exited.then((r) => reject(new Error(
      `${argv.join(' ')} exited before listening (code ${r.code}, signal ${r.signal}): ${srv.stderr.slice(-5).join(' | ')}`)));
  });
  await within(listening, readyMs, `${argv.join(' ')}: ready line`);
  note(`started: ${argv.join(' ')} -> ${srv.url}`);
  return srv;
}

// `wsx echo` on 127.0.0.1 (port 0 unless given), ready at its `listening on ws://HOST:PORT/`
// (wss:// with --tls-cert; srv.url is then wss://127.0.0.1:PORT/).
export function startWsx(args = [], { port = 0, wrapper = [], ...opts } = {}) {
  const argv = [...wrapper, WSX_BIN, 'echo', '--host', '127.0.0.1', '--port', String(port), ...args];
  const scheme = args.includes('--tls-cert') ? 'wss' : 'ws';
  return startProgram(argv, /^listening on wss?:\/\/.+:(\d+)\/?\s*$/, { scheme, ...opts });
}

// `wsx serve` (the chat server) on 127.0.0.1, ready once it printed a listening line for each
// port it serves: srv.listening.http and/or srv.listening.https are the ports; srv.port is the
// first one.
export async function startServe(args = [], { port = 0, ...opts } = {}) {
  const argv = [WSX_BIN, 'serve', '--host', '127.0.0.1', '--port', String(port), ...args];
  const want = args.includes('--tls-port') ? ['http', 'https'] : args.includes('--tls-cert') ? ['https'] : ['http'];
  const srv = await startProgram(argv, /^listening on https?:\/\/.+:(\d+)\/?\s*$/, opts);
  // Both lines are printed together; give the second one a moment to be read.
  for (let i = 0; i < 100 && !want.every((s) => srv.listening[s]); i++) await sleep(20);
  if (!want.every((s) => srv.listening[s])) {
    throw new Error(`wsx serve: expected listening lines for ${want.join(' and ')}, got ${srv.stdout.join(' | ')}`);
  }
  return srv;
}

// Runs a program to completion (bounded), echoing its output with a prefix.
// onLine(line, proc) sees each stdout line; input (a string or Buffer), when given, is
// written to its stdin, which is then closed (otherwise stdin is /dev/null).
// Lines longer than maxEcho characters are echoed cut short (they are kept whole). With
// keepStdin (and no input) stdin is a pipe left open: onLine ends it with proc.stdin.end().
// Resolves {code, signal, stdout: [lines], stderr: [lines]}.
export async function runProgram(cmd, args, { timeoutMs = 60000, onLine, prefix = '  | ', input, maxEcho = Infinity, keepStdin = false } = {}) {
  const cut = (l) => (l.length > maxEcho ? `${l.slice(0, maxEcho)}... (${l.length} characters)` : l);
  const proc = track(spawn(cmd, args, { stdio: [input === undefined && !keepStdin ? 'ignore' : 'pipe', 'pipe', 'pipe'] }));
  if (keepStdin) proc.stdin.on('error', () => {});
  const out = [];
  const err = [];
  lines(proc.stdout, (l) => { out.push(l); console.log(prefix + cut(l)); if (onLine) onLine(l, proc); });
  lines(proc.stderr, (l) => { err.push(l); process.stderr.write(`${prefix}${l}\n`); });
  if (input !== undefined) {
    proc.stdin.on('error', () => {}); // EPIPE if it exits before reading
    proc.stdin.end(input);
  }
  try {
    const r = await within(proc.exited, timeoutMs, `${cmd} ${args.join(' ')}`);
    return { ...r, stdout: out, stderr: err };
  } catch {
    proc.kill('SIGKILL');
    await proc.exited;
    return { code: null, signal: 'SIGKILL', stdout: out, stderr: err, timedOut: true };
  }
}

export async function freePort() {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

// ---- payloads --------------------------------------------------------------------------------

export const SIZES = [0, 125, 126, 65535, 65536, 16 << 20];

// Valid UTF-8 of exactly `size` bytes mixing 1- to 4-byte sequences (padded with ASCII).
export function textPayload(size, seed = 0) {
  const seqs = ['a', 'é', '€', '𝄞', 'Z', ' ', 'Ж', '日'].map((s) => Buffer.from(s, 'utf8'));
  const b = Buffer.alloc(size);
  let i = 0;
  let k = seed;
  while (i < size) {
    const s = seqs[k++ % seqs.length];
    if (s.length > size - i) { b[i] = 0x30 + (i % 10); i++; continue; }
    s.copy(b, i);
    i += s.length;
  }
  return b;
}

export function binaryPayload(size, seed = 0) {
  const b = Buffer.alloc(size);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = (x >>> 11) & 0xff;
  }
  return b;
}

// Random (incompressible) valid UTF-8 of exactly `size` bytes: random code points of 1 to 4
// bytes (no surrogates), padded with ASCII where a longer one would not fit.
export function randomText(size, seed = 0) {
  const b = Buffer.alloc(size);
  let x = (seed * 2654435761 + 12345) >>> 0;
  const rnd = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
  let i = 0;
  while (i < size) {
    const r = rnd();
    const want = 1 + (r & 3);
    const room = size - i;
    let cp;
    if (want === 1 || room < want) cp = 0x20 + ((r >>> 8) % 0x5f);
    else if (want === 2) cp = 0x80 + ((r >>> 8) % 0x780);
    else if (want === 3) { cp = 0x800 + ((r >>> 8) % 0xf800); if (cp >= 0xd800 && cp < 0xe000) cp -= 0x800; }
    else cp = 0x10000 + ((r >>> 8) % 0x100000);
    i += b.write(String.fromCodePoint(cp), i, 'utf8');
  }
  return b;
}

// Highly compressible bytes (a short phrase over and over), valid UTF-8 (ASCII).
export function repetitive(size, seed = 0) {
  const unit = Buffer.from(`wsx permessage-deflate ${seed} repeats itself; `);
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += unit.length) unit.copy(b, i, 0, Math.min(unit.length, size - i));
  return b;
}

export function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

// ---- ws peers --------------------------------------------------------------------------------

// Wraps a ws WebSocket so messages, pongs and the close can be awaited in order.
export class Peer {
  constructor(ws) {
    this.ws = ws;
    this.inbox = [];
    this.pongs = [];
    this.pings = [];
    this.waiters = [];
    this.pongWaiters = [];
    ws.on('message', (data, isBinary) => this.#push(this.inbox, this.waiters, { data, isBinary }));
    ws.on('pong', (data) => this.#push(this.pongs, this.pongWaiters, data));
    ws.on('ping', (data) => this.pings.push(data));
    ws.on('error', (err) => { this.error = err; });
    // The opening handshake's response headers (a client's view), e.g. for the extensions.
    ws.on('upgrade', (res) => { this.responseHeaders = res.headers; });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        resolve(this.closeInfo);
        for (const w of [...this.waiters, ...this.pongWaiters]) w.reject(new Error(`closed with ${code}`));
        this.waiters = [];
        this.pongWaiters = [];
      });
    });
  }

  #push(queue, waiters, item) {
    const w = waiters.shift();
    if (w) w.resolve(item); else queue.push(item);
  }

  #next(queue, waiters, ms, what) {
    if (queue.length) return Promise.resolve(queue.shift());
    if (this.closeInfo) return Promise.reject(new Error(`${what}: connection closed (${this.closeInfo.code})`));
    return within(new Promise((resolve, reject) => waiters.push({ resolve, reject })), ms, what);
  }

  next(ms = 10000) { return this.#next(this.inbox, this.waiters, ms, 'waiting for a message'); }
  nextPong(ms = 5000) { return this.#next(this.pongs, this.pongWaiters, ms, 'waiting for a pong'); }
  waitClose(ms = 10000) { return within(this.closed, ms, 'waiting for the close'); }
  get open() { return this.ws.readyState === WebSocket.OPEN; }

  // Sends data (text when !isBinary) and checks the echo byte for byte; returns the check.
  async echo(data, isBinary, label, ms = 30000) {
    this.ws.send(data, { binary: isBinary });
    const m = await this.next(ms);
    const same = m.isBinary === isBinary && Buffer.compare(m.data, data) === 0;
    return check(same, `${label} echoed byte for byte`,
      `got ${m.isBinary ? 'binary' : 'text'} ${m.data.length} bytes, first difference at ${firstDifference(m.data, data)}`);
  }
}

export function connect(url, opts = {}) {
  const ws = new WebSocket(url, { maxPayload: 64 << 20, ...opts });
  const peer = new Peer(ws);
  return within(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(peer));
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  }), 10000, `connecting to ${url}`);
}

// ---- raw frames (for bad input) ---------------------------------------------------------------

export function frame(opcode, payload = Buffer.alloc(0), { fin = true, rsv = 0, mask = true } = {}) {
  payload = Buffer.from(payload);
  const n = payload.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode)];
  const m = mask ? 0x80 : 0;
  if (n < 126) head.push(m | n);
  else if (n < 65536) head.push(m | 126, n >> 8, n & 0xff);
  else {
    head.push(m | 127, 0, 0, 0, 0);
    head.push((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(n);
  for (let i = 0; i < n; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([Buffer.from(head), key, body]);
}

// A TCP client that completed the opening handshake by hand. Frames from the server are
// parsed into this.frames (await nextFrame()); this.ended resolves at EOF or reset.
export class RawClient {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.ended = new Promise((resolve) => {
      sock.on('close', () => { resolve(Date.now()); for (const w of this.waiters) w(null); this.waiters = []; });
    });
    sock.on('error', () => {});
  }

  feed(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      let n = b[1] & 0x7f;
      let off = 2;
      if (n === 126) { if (b.length < 4) return; n = b.readUInt16BE(2); off = 4; }
      else if (n === 127) { if (b.length < 10) return; n = Number(b.readBigUInt64BE(2)); off = 10; }
      const masked = !!(b[1] & 0x80);
      if (masked) off += 4;
      if (b.length < off + n) return;
      const f = { fin: !!(b[0] & 0x80), rsv: (b[0] >> 4) & 7, opcode: b[0] & 0xf, masked,
        payload: b.subarray(off, off + n) };
      this.buf = b.subarray(off + n);
      const w = this.waiters.shift();
      if (w) w(f); else this.frames.push(f);
    }
  }

  // Resolves with the next frame, or null at EOF.
  nextFrame(ms = 5000) {
    if (this.frames.length) return Promise.resolve(this.frames.shift());
    if (this.sock.destroyed) return Promise.resolve(null);
    return within(new Promise((r) => this.waiters.push(r)), ms, 'waiting for a frame');
  }

  send(buf) { this.sock.write(buf); }
}

export async function rawConnect(port, path = '/') {
  const sock = net.connect(port, '127.0.0.1');
  await within(once(sock, 'connect'), 5000, 'raw connect');
  const key = crypto.randomBytes(16).toString('base64');
  sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  let head = Buffer.alloc(0);
  const raw = new RawClient(sock);
  await within(new Promise((resolve, reject) => {
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const text = head.subarray(0, end).toString('latin1');
      const accept = crypto.createHash('sha1')
        .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
      if (!/^HTTP\/1\.1 101 /.test(text)) return reject(new Error(`handshake: ${text.split('\r\n')[0]}`));
      if (!text.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)) {
        return reject(new Error('handshake: wrong Sec-WebSocket-Accept'));
      }
      sock.on('data', (x) => raw.feed(x));
      raw.feed(head.subarray(end + 4));
      resolve();
    };
    sock.on('data', onData);
    sock.once('close', () => reject(new Error('handshake: connection closed')));
  }), 5000, 'raw handshake');
  return raw;
}

export function closeCode(f) {
  return f && f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
}

// ---- TLS ----------------------------------------------------------------------------------------

const HERE = path.dirname(fileURLToPath(import.meta.url));

// Generates the test certificates (certs.sh: a CA, server certificates A and B for localhost
// and 127.0.0.1, one for other.test, one from an unknown CA) in a new temporary directory,
// removed at exit. Returns {dir, file(name), pem(name)}, e.g. file('server.pem').
export function makeCerts() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsx-certs-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  execFileSync('sh', [path.join(HERE, 'certs.sh'), dir], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 30000 });
  const file = (name) => path.join(dir, name);
  return { dir, file, pem: (name) => fs.readFileSync(file(name)) };
}

// `--tls-cert F --tls-key K` for each certificate base name ('server', 'other', ...).
export function tlsArgs(certs, ...names) {
  return names.flatMap((n) => ['--tls-cert', certs.file(`${n}.pem`), '--tls-key', certs.file(`${n}.key`)]);
}

// Completes a TLS handshake with 127.0.0.1:port (servername: the SNI name, or none) without
// verifying anything, and resolves with the certificate presented:
// {subjectCN, serial (upper-case hex, as node prints it), san, alpn, protocol}.
export function peerCertificate(port, { servername, ms = 5000 } = {}) {
  return within(new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] };
    if (servername) opts.servername = servername;
    const sock = tls.connect(opts, () => {
      const c = sock.getPeerCertificate();
      resolve({ subjectCN: c.subject && c.subject.CN, serial: c.serialNumber, san: c.subjectaltname,
        alpn: sock.alpnProtocol, protocol: sock.getProtocol() });
      sock.end(); // close_notify and FIN (a destroy could reset before the server reads Finished)
    });
    sock.once('error', reject);
  }), ms, `TLS handshake with 127.0.0.1:${port}${servername ? ` (SNI ${servername})` : ''}`);
}
