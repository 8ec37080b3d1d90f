// Browser end-to-end test of the /sio/ page (issue 12): the chat on the official socket.io-client
// served from the binary, next to the / page on its WebSocket at /ws, in one room.
//
//   cd tests/e2e && npm ci && WSX=/path/to/build/wsx node --test --test-concurrency=1 sio.test.mjs
//   E2E_MOCK=1 node --test sio.test.mjs     (mock-server.mjs: Node socket.io; needs `npm ci` in
//                                            tests/socketio too)
//
// `$WSX serve --port 0 --history 50`; Debian's /usr/bin/chromium through playwright-core.
// 1. alice on /sio/ and bob on / chat in room e2e: presence, messages both ways, alice's page
//    on Socket.IO (requests to /socket.io/, upgraded to WebSocket), no WebSocket to /ws.
// 2. carol on /sio/ with WebSocket blocked (every WebSocket of her page closed before it reaches
//    the server, as a proxy that refuses upgrades would): she stays on HTTP long-polling and
//    still chats with bob.
// 3. The server is killed and started again on the same port: the /sio/ page reconnects by
//    itself, rejoins and delivers the message typed during the outage.
// Screenshots: tests/out/e2e/sio-*.png.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const outDir = path.join(repo, 'tests', 'out', 'e2e');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WAIT = 15000;
const RECONNECT_WAIT = 40000; // the page's backoff: a few full-jitter delays (cap 15 s)
const byId = (id) => `[data-testid="${id}"]`;
const MOCK = process.env.E2E_MOCK === '1';

const children = new Set();
process.on('exit', () => { for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } } });

function startServer(port = 0) {
  const args = ['serve', '--host', '127.0.0.1', '--port', String(port), '--history', '50'];
  const [cmd, argv] = MOCK ? [process.execPath, [path.join(here, 'mock-server.mjs'), ...args]] : [process.env.WSX, args];
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(proc);
    let stderr = '';
    let done = false;
    const finish = (err, val) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) { proc.kill('SIGKILL'); reject(err); } else resolve(val);
    };
    const timer = setTimeout(() => finish(new Error(`${cmd}: no "listening on" line within 10 s\n${stderr}`)), 10000);
    proc.stderr.on('data', (d) => { stderr += d; if (stderr.length > 20000) stderr = stderr.slice(-20000); });
    proc.on('error', (e) => finish(e));
    proc.on('exit', (code, sig) => { children.delete(proc); finish(new Error(`${cmd} exited (${code ?? sig}) before listening\n${stderr}`)); });
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      const m = /listening on http:\/\/[^ ]+:(\d+)\//.exec(line);
      if (m) finish(null, { proc, port: Number(m[1]) });
    });
  });
}

async function killServer(srv) {
  if (!srv || srv.proc.exitCode !== null || srv.proc.signalCode !== null) return;
  const exited = new Promise((r) => srv.proc.once('exit', r));
  srv.proc.kill('SIGKILL');
  await exited;
}

// Opens `path` (/ or /sio/) as a new user and joins room e2e. blockWebSocket: every WebSocket
// of this page is closed before it reaches the server (playwright's routeWebSocket).
async function openUser(browser, base, pagePath, name, { blockWebSocket = false } = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|ERR_BLOCKED|net::|socket\.io/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  const blocked = [];
  if (blockWebSocket) {
    // Never connected to the server: closed at once, as a proxy that refuses the upgrade does.
    await context.routeWebSocket(/^wss?:/, (ws) => { blocked.push(ws.url()); ws.close({ code: 1011, reason: 'blocked by the test' }); });
  }
  await page.goto(`${base}${pagePath.slice(1)}?room=e2e`, { timeout: WAIT });
  await page.fill(byId('name-input'), name);
  await page.click(byId('join-button'));
  await waitOnline(page, [name]);
  await waitStatus(page, 'connected');
  return { name, context, page, problems, sockets, requests, blocked };
}

function waitStatus(page, state, timeout = WAIT) {
  return page.waitForFunction((s) => document.querySelector('[data-testid="status"]')?.dataset.state === s, state, { timeout })
    .catch(async (e) => {
      const now = await page.evaluate(() => document.querySelector('[data-testid="status"]')?.textContent).catch(() => '?');
      throw new Error(`status did not become "${state}" (it shows "${now}"): ${e.message}`);
    });
}

async function waitOnline(page, names, timeout = WAIT) {
  try {
    await page.waitForFunction((want) => {
      const got = [...document.querySelectorAll('[data-testid="online-entry"] [data-testid="online-name"]')].map((e) => e.textContent);
      return want.every((n) => got.includes(n));
    }, names, { timeout });
  } catch (e) {
    const got = await page.$$eval(`${byId('online-entry')} ${byId('online-name')}`, (els) => els.map((x) => x.textContent)).catch(() => '?');
    throw new Error(`online list is ${JSON.stringify(got)}, wanted ${JSON.stringify(names)} in it: ${e.message}`);
  }
}

async function waitMessage(page, text, from, timeout = WAIT) {
  try {
    await page.waitForFunction(([t, n]) => [...document.querySelectorAll('[data-testid="message"]')].some((e) =>
      e.querySelector('[data-testid="message-text"]')?.textContent === t && e.dataset.state === 'sent'
      && e.querySelector('[data-testid="message-name"]')?.textContent === n), [text, from], { timeout });
  } catch (e) {
    const got = await page.$$eval(byId('message'), (els) => els.map((x) => `${x.dataset.name}: ${x.querySelector('[data-testid="message-text"]')?.textContent} (${x.dataset.state})`)).catch(() => '?');
    throw new Error(`no message ${JSON.stringify(text)} from ${from}; the page has ${JSON.stringify(got)}: ${e.message}`);
  }
}

async function say(page, text) {
  await page.fill(byId('message-input'), text);
  await page.press(byId('message-input'), 'Enter');
}

async function shot(page, file) {
  fs.mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: path.join(outDir, file) });
}

const transportOf = (page) => page.evaluate(() => document.body.dataset.transport || '');

test('web/vendor/socket.io.min.js is the pinned socket.io-client dist file, byte for byte', () => {
  const pkg = path.join(repo, 'tests', 'socketio', 'node_modules', 'socket.io-client');
  assert.ok(fs.existsSync(pkg), 'tests/socketio/node_modules is missing: run `npm ci` in tests/socketio');
  const version = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).version;
  const lock = JSON.parse(fs.readFileSync(path.join(repo, 'tests', 'socketio', 'package-lock.json'), 'utf8'));
  assert.equal(version, lock.packages['node_modules/socket.io-client'].version, 'installed as the lockfile says');
  const vendored = fs.readFileSync(path.join(repo, 'web', 'vendor', 'socket.io.min.js'));
  assert.ok(vendored.equals(fs.readFileSync(path.join(pkg, 'dist', 'socket.io.min.js'))),
    `web/vendor/socket.io.min.js differs from socket.io-client ${version}'s dist/socket.io.min.js: copy it again`);
  assert.ok(vendored.toString('latin1').startsWith(`/*!\n * Socket.IO v${version}\n`));
  assert.ok(fs.readFileSync(path.join(repo, 'web', 'vendor', 'socket.io.LICENSE.txt'))
    .equals(fs.readFileSync(path.join(pkg, 'LICENSE'))), 'the licence next to it is the package\'s');
});

let browser = null;
let srv = null;
after(async () => {
  await killServer(srv);
  if (browser) await browser.close().catch(() => {});
});

test('/sio/ (Socket.IO) and / (WebSocket) chat in one room; WebSocket blocked; restart', { timeout: 180000 }, async (t) => {
  if (!MOCK) {
    assert.ok(process.env.WSX, 'set WSX to the wsx binary, or E2E_MOCK=1 for the mock server');
    assert.ok(fs.existsSync(process.env.WSX), `WSX=${process.env.WSX} does not exist`);
  }
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium)`);
  const { chromium } = await import('playwright-core').catch(() => {
    throw new Error('playwright-core is not installed: run `npm ci` in tests/e2e');
  });
  srv = await startServer(0);
  const port = srv.port;
  const base = `http://127.0.0.1:${port}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });

  const alice = await openUser(browser, base, '/sio/', 'alice');
  const bob = await openUser(browser, base, '/', 'bob');

  await t.test('the /sio/ page loads the pinned socket.io-client from the server, nothing else', async () => {
    const scripts = alice.requests.filter((u) => u.endsWith('.js'));
    assert.deepEqual(scripts, [`${base}vendor/socket.io.min.js`, `${base}sio/sio.js`, `${base}app.js`]);
    assert.equal(await alice.page.evaluate(() => window.io && window.io.Socket && typeof window.io), 'function');
    assert.ok(alice.requests.every((u) => u.startsWith(base)), `only ${base}: ${alice.requests.filter((u) => !u.startsWith(base))}`);
  });

  await t.test('alice (/sio/) is on Socket.IO, upgraded to WebSocket; bob (/) on /ws', async () => {
    assert.ok(alice.requests.some((u) => u.startsWith(`${base}socket.io/?EIO=4&transport=polling`)), 'a polling handshake');
    await alice.page.waitForFunction(() => document.body.dataset.transport === 'websocket', null, { timeout: WAIT });
    assert.ok(alice.sockets.length >= 1 && alice.sockets.every((u) => u.startsWith(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`)),
      `alice's WebSockets: ${alice.sockets}`);
    assert.deepEqual(bob.sockets, [`ws://127.0.0.1:${port}/ws`]);
  });

  await t.test('both see each other online, and messages go both ways', async () => {
    await waitOnline(alice.page, ['alice', 'bob']);
    await waitOnline(bob.page, ['alice', 'bob']);
    await say(alice.page, 'hello from Socket.IO 😀');
    await waitMessage(bob.page, 'hello from Socket.IO 😀', 'alice');
    await waitMessage(alice.page, 'hello from Socket.IO 😀', 'alice');
    await say(bob.page, 'and back over /ws — é \u2028 ok');
    await waitMessage(alice.page, 'and back over /ws — é \u2028 ok', 'bob');
    await shot(alice.page, 'sio-alice.png');
    await shot(bob.page, 'sio-bob.png');
  });

  await t.test('/sio/ with WebSocket blocked stays on polling and still chats', async () => {
    const carol = await openUser(browser, base, '/sio/', 'carol', { blockWebSocket: true });
    await waitOnline(bob.page, ['alice', 'bob', 'carol']);
    await say(carol.page, 'polling only');
    await waitMessage(bob.page, 'polling only', 'carol');
    await waitMessage(alice.page, 'polling only', 'carol');
    await say(bob.page, 'carol, do you read?');
    await waitMessage(carol.page, 'carol, do you read?', 'bob');
    assert.equal(await transportOf(carol.page), 'polling');
    assert.ok(carol.blocked.length >= 1 && carol.blocked.every((u) => u.includes('/socket.io/?EIO=4&transport=websocket')),
      `the upgrade was tried and blocked: ${carol.blocked}`);
    assert.ok(carol.requests.some((u) => u.startsWith(`${base}socket.io/?EIO=4&transport=polling`) && u.includes('&sid=')), 'polling requests with a sid');
    await shot(carol.page, 'sio-carol-polling.png');
    assert.deepEqual(carol.problems, []);
    await carol.context.close();
  });

  await t.test('the /sio/ page reconnects by itself after a server restart', async () => {
    await killServer(srv);
    await waitStatus(alice.page, 'reconnecting', WAIT);
    await say(alice.page, 'typed while the server was down');
    const until = Date.now() + 10000;
    for (;;) {
      try { srv = await startServer(port); break; } catch (e) { if (Date.now() > until) throw e; await new Promise((r) => setTimeout(r, 250)); }
    }
    await waitStatus(alice.page, 'connected', RECONNECT_WAIT);
    await waitStatus(bob.page, 'connected', RECONNECT_WAIT);
    await waitOnline(bob.page, ['alice', 'bob'], RECONNECT_WAIT);
    await waitMessage(bob.page, 'typed while the server was down', 'alice', RECONNECT_WAIT);
  });

  await t.test('no page errors', () => {
    assert.deepEqual(alice.problems, []);
    assert.deepEqual(bob.problems, []);
  });
});
