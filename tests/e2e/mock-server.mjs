#!/usr/bin/env node
// A small stand-in for `wsx serve`, written from docs/chat-protocol.md. It serves web/ at /,
// /app.js and /style.css and speaks the chat protocol at /ws, so that the page and the e2e
// test can be developed and checked without the C server; it also documents the protocol in
// code. The real e2e run uses $WSX; this mock is used only with E2E_MOCK=1.
//
//   node mock-server.mjs serve [--host 127.0.0.1] [--port 0] [--history 50] [--token T]
//
// Prints `listening on http://HOST:PORT/` on stdout once listening, like `wsx serve`.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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
};

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const f = files[url.pathname];
  if (f) {
    res.writeHead(200, { 'content-type': f[1], 'cache-control': 'no-store' });
    res.end(fs.readFileSync(path.join(webDir, f[0])));
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
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws));
});

// room name -> { seq, history: [message], conns: Set<conn> }
const rooms = new Map();
let nextConnId = 1;

function room(name) {
  let r = rooms.get(name);
  if (!r) { r = { seq: 0, history: [], conns: new Set() }; rooms.set(name, r); }
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

function send(c, obj) {
  if (c.ws.readyState === c.ws.OPEN) c.ws.send(JSON.stringify(obj));
}

function broadcast(r, obj, except) {
  const s = JSON.stringify(obj);
  for (const c of r.conns) if (c !== except && c.ws.readyState === c.ws.OPEN) c.ws.send(s);
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

function onConnection(ws) {
  const c = { ws, id: nextConnId++, room: null, name: null };
  send(c, { type: 'welcome', server: 'wsx-mock', id: c.id, limits: LIMITS });
  const err = (code, message) => send(c, { type: 'error', code, message });

  ws.on('message', (data, isBinary) => {
    if (isBinary) return err('binary', 'binary messages are not accepted');
    let m;
    try { m = JSON.parse(data.toString('utf8')); } catch { return err('bad_json', 'not JSON'); }
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
  });
  ws.on('close', () => leave(c));
  ws.on('error', () => {});
}

server.listen(opt.port, opt.host, () => {
  const a = server.address();
  process.stdout.write(`listening on http://${a.address}:${a.port}/\n`);
});
