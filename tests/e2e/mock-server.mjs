#!/usr/bin/env node
// A small stand-in for `wsx serve`, written from docs/chat-protocol.md. It serves web/ at /,
// /app.js and /style.css and speaks the chat protocol at /ws, so that the page and the e2e
// test can be developed and checked without the C server; it also documents the protocol in
// code. The real e2e run uses $WSX; this mock is used only with E2E_MOCK=1.
// It also speaks the chat's Socket.IO events at /socket.io/ (docs/chat-protocol.md, "Socket.IO")
// for the /sio/ page, with the socket.io package of tests/socketio (its `npm ci`); without that
// package it serves /ws only.
//
//   node mock-server.mjs serve [--host 127.0.0.1] [--port 0] [--history 50] [--token T]
//
// Prints `listening on http://HOST:PORT/` on stdout once listening, like `wsx serve`.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { WebSocketServer } from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = path.resolve(here, '..', '..', 'web');

const argv = process.argv.slice(2);
if (argv[0] === 'serve') argv.shift();
const opt = { host: '127.0.0.1', port: 0, history: 50, token: null };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = argv[i + 1];
  if (a === '--host') { opt.host = v; i++; } else if (a === '--port') { opt.port = Number(v); i++; } else if (a === '--history') { opt.history = Number(v); i++; } else if (a === '--token') { opt.token = v; i++; } else {
    console.error(`mock-server: unknown argument ${a}`);
    process.exit(2);
  }
}

const LIMITS = { name: 32, room: 32, text: 2000 };
const MAX_MESSAGE = 16 * 1024;

const files = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
  '/sio/': ['sio/index.html', 'text/html; charset=utf-8'],
  '/sio/index.html': ['sio/index.html', 'text/html; charset=utf-8'],
  '/sio/sio.js': ['sio/sio.js', 'text/javascript; charset=utf-8'],
  '/vendor/socket.io.min.js': ['vendor/socket.io.min.js', 'text/javascript; charset=utf-8'],
};

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const f = files[url.pathname];
  if (f) {
    res.writeHead(200, { 'content-type': f[1], 'cache-control': 'no-store' });
    res.end(fs.readFileSync(path.join(webDir, f[0])));
  } else if (url.pathname === '/sse') {
    // docs/chat-protocol.md, "Server-sent events" (new messages only: no Last-Event-ID here).
    const r = room(url.searchParams.get('room') || 'lobby');
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(': hello\n\n');
    r.sse.add(res);
    req.on('close', () => r.sse.delete(res));
  } else if (url.pathname === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
  } else if (url.pathname === '/api/auth') {
    // The page's probe (docs/chat-protocol.md): 401 when the upgrade would be refused.
    const auth = req.headers.authorization || '';
    const ok = opt.token === null || url.searchParams.get('token') === opt.token || auth === `Bearer ${opt.token}`;
    res.writeHead(ok ? 200 : 401, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    res.end(ok ? 'ok\n' : '401 Unauthorized\n');
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }
});

const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE });

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/socket.io/') return; // socket.io's own upgrade listener
  if (url.pathname !== '/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  if (opt.token !== null) {
    const auth = req.headers.authorization || '';
    if (url.searchParams.get('token') !== opt.token && auth !== `Bearer ${opt.token}`) {
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n');
      return;
    }
  }
  wss.handleUpgrade(req, socket, head, (ws) => onWebSocket(ws));
});

function tokenOk(query, authHeader) {
  return opt.token === null || query === opt.token || authHeader === `Bearer ${opt.token}`;
}

// room name -> { seq, history: [message], conns: Set<conn> }
const rooms = new Map();
let nextConnId = 1;

function room(name) {
  let r = rooms.get(name);
  if (!r) { r = { seq: 0, history: [], conns: new Set(), sse: new Set() }; rooms.set(name, r); }
  return r;
}

function online(r) {
  const tabs = new Map();
  for (const c of r.conns) tabs.set(c.name, (tabs.get(c.name) || 0) + 1);
  return [...tabs.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([name, n]) => ({ name, tabs: n }));
}

function tabsOf(r, name) {
  let n = 0;
  for (const c of r.conns) if (c.name === name) n++;
  return n;
}

// A connection is {send(obj), ...}: a WebSocket sends the object's JSON text, a Socket.IO
// socket emits it as the event named by its type.
function send(c, obj) {
  c.send(obj);
}

function broadcast(r, obj, except) {
  for (const c of r.conns) if (c !== except) c.send(obj);
}

// Like serve.c: `presence` (to everyone in the room, the joiner too) when a person's first tab
// joins or last tab leaves; otherwise `{type:"online", room, online}` with the new tab counts.
function presence(r, roomName, name, joined) {
  const tabs = tabsOf(r, name);
  if (joined ? tabs === 1 : tabs === 0) {
    broadcast(r, { type: 'presence', room: roomName, event: joined ? 'join' : 'leave', name, online: online(r) });
  } else {
    broadcast(r, { type: 'online', room: roomName, online: online(r) });
  }
}

function leave(c) {
  if (!c.room) return;
  const r = rooms.get(c.room);
  r.conns.delete(c);
  presence(r, c.room, c.name, false);
  c.room = null;
  c.name = null;
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/; // eslint-disable-line no-control-regex

function newConn(sendObj) {
  const c = { send: sendObj, id: nextConnId++, room: null, name: null };
  send(c, { type: 'welcome', server: 'wsx-mock', id: c.id, limits: LIMITS });
  return c;
}

function onWebSocket(ws) {
  const c = newConn((obj) => { if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(obj)); });
  ws.on('message', (data, isBinary) => {
    if (isBinary) return send(c, { type: 'error', code: 'binary', message: 'binary messages are not accepted' });
    let m;
    try { m = JSON.parse(data.toString('utf8')); } catch { return send(c, { type: 'error', code: 'bad_json', message: 'not JSON' }); }
    return onChat(c, m);
  });
  ws.on('close', () => leave(c));
  ws.on('error', () => {});
}

// Socket.IO: the event's name is the type, its first argument the object.
async function startSocketIO() {
  let Server;
  try {
    ({ Server } = createRequire(path.resolve(here, '..', 'socketio', 'package.json'))('socket.io'));
  } catch {
    process.stderr.write('mock-server: no socket.io in tests/socketio/node_modules: /socket.io/ not served\n');
    return;
  }
  const io = new Server(server, { serveClient: false, maxHttpBufferSize: MAX_MESSAGE });
  io.use((sock, next) => {
    const h = sock.handshake;
    if (tokenOk(h.query.token || (h.auth && h.auth.token), h.headers.authorization || '')) next();
    else next(new Error('unauthorized'));
  });
  io.on('connection', (sock) => {
    const c = newConn((obj) => sock.emit(obj.type, obj));
    sock.onAny((event, ...args) => {
      if (args.some((a) => Buffer.isBuffer(a))) return send(c, { type: 'error', code: 'binary', message: 'binary messages are not accepted' });
      const m = args[0];
      if (!m || typeof m !== 'object' || Array.isArray(m)) return send(c, { type: 'error', code: 'bad_json', message: 'not a JSON object' });
      return onChat(c, { ...m, type: event });
    });
    sock.on('disconnect', () => leave(c));
  });
}

function onChat(c, m) {
  const err = (code, message) => send(c, { type: 'error', code, message });
  if (!m || typeof m !== 'object' || Array.isArray(m)) return err('bad_json', 'not a JSON object');
  switch (m.type) {
    case 'join': {
      const roomName = m.room === undefined ? 'lobby' : m.room;
      if (typeof roomName !== 'string' || !/^[A-Za-z0-9_.-]{1,32}$/.test(roomName)) return err('bad_room', 'bad room');
      const name = typeof m.name === 'string' ? m.name.trim() : '';
      const len = Array.from(name).length;
      if (len < 1 || len > LIMITS.name || CONTROL.test(name)) return err('bad_name', 'bad name');
      leave(c);
      const r = room(roomName);
      c.room = roomName;
      c.name = name;
      r.conns.add(c);
      send(c, { type: 'joined', room: roomName, name, online: online(r) });
      send(c, { type: 'history', room: roomName, messages: r.history });
      presence(r, roomName, name, true);
      return undefined;
    }
    case 'message': {
      if (!c.room) return err('not_joined', 'join a room first');
      const text = typeof m.text === 'string' ? m.text.trim() : '';
      const len = Array.from(text).length;
      if (len < 1 || len > LIMITS.text) return err('bad_text', 'empty or too long');
      const r = rooms.get(c.room);
      const msg = { type: 'message', id: ++r.seq, room: c.room, name: c.name, text, ts: Date.now() };
      r.history.push(msg);
      while (r.history.length > opt.history) r.history.shift();
      broadcast(r, msg);
      for (const res of r.sse) res.write(`id: ${msg.id}\nevent: message\ndata: ${JSON.stringify(msg)}\n\n`);
      return undefined;
    }
    case 'typing': {
      if (!c.room) return err('not_joined', 'join a room first');
      broadcast(rooms.get(c.room), { type: 'typing', room: c.room, name: c.name, typing: !!m.typing }, c);
      return undefined;
    }
    case 'leave':
      leave(c);
      return undefined;
    default:
      return err('bad_type', 'missing or unknown type');
  }
}

await startSocketIO();
server.listen(opt.port, opt.host, () => {
  const a = server.address();
  process.stdout.write(`listening on http://${a.address}:${a.port}/\n`);
});
