// Browser end-to-end test of the `wsx serve` chat page (web/), run with node's test runner:
//
//   cd tests/e2e && npm ci && WSX=/path/to/build/wsx node --test --test-concurrency=1
//
// WSX is the wsx binary; the test runs `$WSX serve --port 0 --history 50`, reads the port from
// its `listening on http://HOST:PORT/` line, and drives two headless Chromium pages (Debian's
// /usr/bin/chromium through playwright-core; no browser is downloaded). E2E_MOCK=1 runs the
// same test against tests/e2e/mock-server.mjs instead (to work on the page without the C
// server). Screenshots go to tests/out/e2e/. Only 127.0.0.1 is used. The WebSocket handshakes
// are read through the Chrome DevTools Protocol (Network domain) to check that Chromium and
// `wsx serve` agreed on permessage-deflate (RFC 7692), before and after the reconnect.
// Issue 14: the token flow (`--token`: the page's GET /api/auth probe, the token form,
// sessionStorage, the token taken out of the URL), and the page before and in a room (join form
// only, focus, Shift+Enter, links, the character counter, "new messages ↓", the unread count in
// the title, dates, Leave, a taken name, reconnects and reloads not announced). Screenshots are
// also copied to /tmp (SHOTS_DIR) as wsx-*.png.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const webDir = path.join(repo, 'web');
const outDir = path.join(repo, 'tests', 'out', 'e2e');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WAIT = 15000; // default bound for one expectation
const RECONNECT_WAIT = 40000; // backoff: the sum of a few full-jitter delays (cap 15 s)

// ---- static check (no browser, no server) -----------------------------------------------------

// Every file under web/ (the /sio/ page and web/vendor/ included), as paths relative to it.
function webFiles(dir = webDir, rel = '') {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory()
    ? webFiles(path.join(dir, d.name), `${rel}${d.name}/`) : [`${rel}${d.name}`]));
}

test('web/ never assigns HTML strings (no innerHTML / outerHTML / insertAdjacentHTML / document.write)', () => {
  const bad = /\.(innerHTML|outerHTML)\s*\+?=|insertAdjacentHTML\s*\(|document\.write(ln)?\s*\(|\.setHTML(Unsafe)?\s*\(|createContextualFragment\s*\(/;
  const found = [];
  for (const f of webFiles()) {
    if (!/\.(js|mjs|html)$/.test(f)) continue;
    const lines = fs.readFileSync(path.join(webDir, f), 'utf8').split('\n');
    lines.forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, ''); // comments may mention the names
      if (bad.test(code)) found.push(`web/${f}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(found, [], `HTML sinks in web/:\n${found.join('\n')}`);
});

test('web/ loads nothing from outside (no http(s):// URLs, no CDN, no web fonts)', () => {
  const found = [];
  for (const f of webFiles()) {
    const text = fs.readFileSync(path.join(webDir, f), 'utf8');
    for (const m of text.matchAll(/(?:src|href)\s*=\s*["']?(?:https?:)?\/\/|@import|url\(\s*["']?(?:https?:)?\/\//g)) {
      found.push(`web/${f}: ${m[0]}`);
    }
  }
  assert.deepEqual(found, []);
});

// ---- server process ---------------------------------------------------------------------------

const children = new Set();
process.on('exit', () => { for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } } });

function serverCommand(port, extra = []) {
  const args = ['serve', '--host', '127.0.0.1', '--port', String(port), '--history', '50', ...extra];
  if (process.env.E2E_MOCK === '1') return [process.execPath, [path.join(here, 'mock-server.mjs'), ...args]];
  return [process.env.WSX, args];
}

// Starts the server and resolves {proc, host, port} once it printed its listening line.
function startServer(port = 0, extra = []) {
  const [cmd, args] = serverCommand(port, extra);
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(proc);
    let stderr = '';
    let done = false;
    const finish = (err, val) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) { proc.kill('SIGKILL'); reject(err); } else resolve(val);
    };
    const timer = setTimeout(() => finish(new Error(`${cmd} ${args.join(' ')}: no "listening on" line within 10 s\n${stderr}`)), 10000);
    proc.stderr.on('data', (d) => { stderr += d; if (stderr.length > 20000) stderr = stderr.slice(-20000); });
    proc.on('error', (e) => finish(e));
    proc.on('exit', (code, sig) => {
      children.delete(proc);
      finish(new Error(`${cmd} ${args.join(' ')} exited (${code ?? sig}) before listening\n${stderr}`));
    });
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      const m = /listening on http:\/\/(\[[^\]]+\]|[^/:]+):(\d+)\//.exec(line);
      if (m) {
        let host = m[1];
        if (host === '0.0.0.0' || host === '[::]' || host === '::' || host === 'localhost') host = '127.0.0.1';
        finish(null, { proc, host, port: Number(m[2]), stderr: () => stderr });
      }
    });
  });
}

async function killServer(srv) {
  if (!srv || srv.proc.exitCode !== null || srv.proc.signalCode !== null) return;
  const exited = new Promise((r) => srv.proc.once('exit', r));
  srv.proc.kill('SIGKILL');
  await exited;
}

// The same port again right after a kill: retried for a few seconds in case it is still busy.
async function restartServer(port) {
  const until = Date.now() + 10000;
  for (;;) {
    try {
      return await startServer(port);
    } catch (e) {
      if (Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

// ---- page helpers -----------------------------------------------------------------------------

const byId = (id) => `[data-testid="${id}"]`;

// sameAs: a user whose browser context (and so localStorage, where the page keeps the key that
// makes it the same person) the new page shares: another tab of that user.
async function openUser(browser, base, name, viewport = { width: 1280, height: 800 }, sameAs = null) {
  const context = sameAs ? sameAs.context : await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  if (sameAs) await page.setViewportSize(viewport);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|net::/.test(m.text())) problems.push(`console: ${m.text()}`); });
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  // Every WebSocket handshake of the page: {status, request, response} (header objects).
  const handshakes = [];
  const requests = new Map();
  const cdp = await context.newCDPSession(page);
  cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => requests.set(e.requestId, e.request.headers));
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => handshakes.push({
    status: e.response.status, request: requests.get(e.requestId) || e.response.requestHeaders || {},
    response: e.response.headers || {},
  }));
  await cdp.send('Network.enable');
  await page.goto(`${base}?room=e2e`, { timeout: WAIT });
  assert.equal(await page.inputValue(byId('room-input')), 'e2e', 'room is taken from ?room=');
  await page.fill(byId('name-input'), name);
  await page.click(byId('join-button'));
  await waitOnline(page, [name], { includes: true });
  await waitStatus(page, 'connected');
  return { name, context, page, problems, sockets, handshakes };
}

// A header of a CDP header object, whatever the case of its name ('' when absent).
function header(headers, name) {
  const k = Object.keys(headers).find((h) => h.toLowerCase() === name);
  return k === undefined ? '' : headers[k];
}

// The page's last WebSocket handshake offered permessage-deflate and wsx serve accepted it
// (wsx serve answers with server_no_context_takeover, docs/deflate.md).
function assertDeflate(u) {
  assert.ok(u.handshakes.length >= 1, `${u.name}: a WebSocket handshake was seen`);
  const h = u.handshakes[u.handshakes.length - 1];
  assert.equal(h.status, 101);
  assert.match(header(h.request, 'sec-websocket-extensions'), /permessage-deflate/, `${u.name}: Chromium offered permessage-deflate`);
  const agreed = header(h.response, 'sec-websocket-extensions');
  assert.match(agreed, /^permessage-deflate(;|$)/, `${u.name}: the server agreed to permessage-deflate`);
  assert.equal(agreed, 'permessage-deflate; server_no_context_takeover');
}

function waitStatus(page, state, timeout = WAIT) {
  return page.waitForFunction(
    (s) => document.querySelector('[data-testid="status"]')?.dataset.state === s,
    state, { timeout },
  ).catch(async (e) => {
    const now = await page.evaluate(() => document.querySelector('[data-testid="status"]')?.textContent).catch(() => '?');
    throw new Error(`status did not become "${state}" (it shows "${now}"): ${e.message}`);
  });
}

async function onlineNames(page) {
  return page.$$eval(`${byId('online-entry')} ${byId('online-name')}`, (els) => els.map((e) => e.textContent));
}

async function waitOnline(page, names, { includes = false, timeout = WAIT } = {}) {
  try {
    await page.waitForFunction(([want, inc]) => {
      const got = [...document.querySelectorAll('[data-testid="online-entry"] [data-testid="online-name"]')].map((e) => e.textContent);
      return inc ? want.every((n) => got.includes(n)) : JSON.stringify(got) === JSON.stringify(want);
    }, [names, includes], { timeout });
  } catch (e) {
    throw new Error(`online list is ${JSON.stringify(await onlineNames(page))}, wanted ${JSON.stringify(names)}: ${e.message}`);
  }
}

async function messages(page) {
  return page.$$eval(byId('message'), (els) => els.map((e) => ({
    name: e.querySelector('[data-testid="message-name"]')?.textContent,
    text: e.querySelector('[data-testid="message-text"]')?.textContent,
    state: e.dataset.state,
    time: e.querySelector('time')?.textContent,
  })));
}

// Waits until the page shows a message with this text (and, by default, a confirmed one).
async function waitMessage(page, text, { state = 'sent', timeout = WAIT } = {}) {
  try {
    await page.waitForFunction(([t, s]) => [...document.querySelectorAll('[data-testid="message"]')]
      .some((e) => e.querySelector('[data-testid="message-text"]')?.textContent === t && (!s || e.dataset.state === s)),
    [text, state], { timeout });
  } catch (e) {
    throw new Error(`no ${state || ''} message ${JSON.stringify(text)}; the page has ${JSON.stringify(await messages(page))}: ${e.message}`);
  }
  return (await messages(page)).find((m) => m.text === text && (!state || m.state === state));
}

async function say(page, text) {
  await page.fill(byId('message-input'), text);
  await page.press(byId('message-input'), 'Enter');
}

async function shot(page, file) {
  fs.mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: path.join(outDir, file) });
  // A copy in /tmp to look at (SHOTS_DIR overrides).
  const extra = process.env.SHOTS_DIR || '/tmp';
  await page.screenshot({ path: path.join(extra, `wsx-${file}`) }).catch(() => {});
}

async function noticeTexts(page) {
  return page.$$eval(byId('notice'), (els) => els.map((e) => e.querySelector('.notice-text')?.textContent));
}

async function waitToast(page, re) {
  await page.waitForFunction((src) => {
    const t = document.querySelector('[data-testid="error-toast"]');
    return t && !t.hidden && new RegExp(src).test(t.textContent);
  }, re.source, { timeout: WAIT }).catch(async (e) => {
    throw new Error(`no toast matching ${re}: it shows ${JSON.stringify(await page.textContent(byId('error-toast')))}: ${e.message}`);
  });
}

async function launch() {
  const { chromium } = await import('playwright-core').catch(() => {
    throw new Error('playwright-core is not installed: run `npm ci` in tests/e2e');
  });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
}

// ---- the chat test ----------------------------------------------------------------------------

let browser = null;
let srv = null;
after(async () => {
  await killServer(srv);
  if (browser) await browser.close().catch(() => {});
});

test('two users chat, the server dies and comes back, the pages reconnect by themselves', { timeout: 180000 }, async (t) => {
  if (process.env.E2E_MOCK !== '1') {
    assert.ok(process.env.WSX, 'set WSX to the wsx binary (e.g. WSX=$PWD/build/wsx), or E2E_MOCK=1 for the mock server');
    assert.ok(fs.existsSync(process.env.WSX), `WSX=${process.env.WSX} does not exist`);
  }
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium)`);
  const { chromium } = await import('playwright-core').catch(() => {
    throw new Error('playwright-core is not installed: run `npm ci` in tests/e2e');
  });

  srv = await startServer(0);
  const port = srv.port;
  const base = `http://${srv.host}:${port}/`;
  // playwright-core gives every launch a fresh temporary profile (user-data-dir) of its own.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });

  try {
    const alice = await openUser(browser, base, 'alice');
    const bob = await openUser(browser, base, 'bob');

    await t.test('the page talks to ws://HOST:PORT/ws', () => {
      assert.deepEqual(alice.sockets, [`ws://${srv.host}:${port}/ws`]);
    });

    await t.test('the online list shows both, once each', async () => {
      await waitOnline(alice.page, ['alice', 'bob']);
      await waitOnline(bob.page, ['alice', 'bob']);
      assert.equal(await alice.page.locator(byId('online-tabs')).count(), 0, 'no ×N tabs badge for single tabs');
      // A join notice for bob on alice's page.
      await alice.page.waitForFunction(() => [...document.querySelectorAll('[data-testid="notice"]')]
        .some((n) => n.textContent.includes('bob joined')), null, { timeout: WAIT });
    });

    await t.test('messages go both ways with the right sender and a local HH:MM time', async () => {
      await say(alice.page, 'hi bob, how are you?');
      const m1 = await waitMessage(bob.page, 'hi bob, how are you?');
      assert.equal(m1.name, 'alice');
      assert.match(m1.time, /^\d\d:\d\d$/);
      await waitMessage(alice.page, 'hi bob, how are you?'); // the sender's own echo
      await say(bob.page, 'great — the new server works!');
      const m2 = await waitMessage(alice.page, 'great — the new server works!');
      assert.equal(m2.name, 'bob');
      assert.equal(await alice.page.inputValue(byId('message-input')), '', 'the input is cleared after sending');
    });

    await t.test('the WebSockets use permessage-deflate; long compressible messages arrive intact',
      { skip: process.env.E2E_MOCK === '1' && 'the mock server does not compress' }, async () => {
        for (const u of [alice, bob]) assertDeflate(u);
        const long = 'a'.repeat(2000); // the chat's longest message (2000 characters)
        await say(alice.page, long);
        assert.equal((await waitMessage(bob.page, long)).name, 'alice');
        await waitMessage(alice.page, long);
        let varied = 'line 0: ünïcödé € 𝄞;';
        for (let i = 1; varied.length < 1950; i++) varied += ` line ${i}: ünïcödé € 𝄞;`;
        await say(bob.page, varied);
        assert.equal((await waitMessage(alice.page, varied)).name, 'bob');
      });

    await t.test('the typing indicator shows and clears', async () => {
      await bob.page.type(byId('message-input'), 'hm', { delay: 20 });
      await alice.page.waitForFunction(() => document.querySelector('[data-testid="typing-indicator"]')?.textContent === 'bob is typing…', null, { timeout: WAIT });
      await say(bob.page, 'one more thing');
      await waitMessage(alice.page, 'one more thing');
      await alice.page.waitForFunction(() => document.querySelector('[data-testid="typing-indicator"]')?.textContent === '', null, { timeout: WAIT });
    });

    await t.test('HTML from a user is shown as text and creates no element', async () => {
      const html = '<img src=x onerror="window.__xss=1"><b id="xss-b">bold</b>';
      await say(alice.page, html);
      await waitMessage(bob.page, html);
      const check = await bob.page.evaluate((h) => {
        const item = [...document.querySelectorAll('[data-testid="message"]')]
          .find((e) => e.querySelector('[data-testid="message-text"]')?.textContent === h);
        const textEl = item.querySelector('[data-testid="message-text"]');
        return {
          children: textEl.children.length,
          img: document.querySelectorAll('[data-testid="message-list"] img').length,
          b: document.getElementById('xss-b') !== null,
          xss: window.__xss === 1,
          visible: textEl.innerText,
        };
      }, html);
      assert.deepEqual(check, { children: 0, img: 0, b: false, xss: false, visible: html });
    });

    await shot(alice.page, 'chat.png');
    await shot(bob.page, 'chat-bob.png');

    await t.test('joining without a name shows an error and does not join', async () => {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await ctx.newPage();
      await page.goto(`${base}?room=e2e`, { timeout: WAIT });
      await page.fill(byId('name-input'), '');
      await page.click(byId('join-button'));
      await page.waitForSelector(`${byId('error-toast')}:not([hidden])`, { timeout: WAIT });
      assert.match(await page.textContent(byId('error-toast')), /name/i);
      assert.equal(await page.locator(byId('online-entry')).count(), 0);
      await shot(page, 'join-error.png');
      await ctx.close();
    });

    await t.test('a second tab of alice shows "×2 tabs" (mobile width)', async () => {
      const alice2 = await openUser(browser, base, 'alice', { width: 390, height: 844 }, alice);
      await alice2.page.waitForFunction(() => [...document.querySelectorAll('[data-testid="online-entry"]')]
        .some((e) => e.dataset.name === 'alice' && e.querySelector('[data-testid="online-tabs"]')?.textContent === '×2 tabs'),
      null, { timeout: WAIT });
      await waitMessage(alice2.page, 'one more thing'); // history
      // bob's page learns the new tab count too.
      await bob.page.waitForFunction(() => [...document.querySelectorAll('[data-testid="online-entry"]')]
        .some((e) => e.dataset.name === 'alice' && e.querySelector('[data-testid="online-tabs"]')?.textContent === '×2 tabs'),
      null, { timeout: WAIT });
      await shot(alice2.page, 'chat-mobile.png');
      assert.deepEqual(alice2.problems, []);
      await alice2.page.close();
      // The tab is gone: back to one entry without a badge, and no "alice left" (she has a tab).
      await bob.page.waitForFunction(() => document.querySelectorAll('[data-testid="online-tabs"]').length === 0,
        null, { timeout: WAIT });
      await waitOnline(bob.page, ['alice', 'bob']);
      assert.equal(await bob.page.locator(byId('notice'), { hasText: 'alice left' }).count(), 0);
    });

    await t.test('the server is killed: both pages show reconnecting with a countdown and "Retry now"', async () => {
      await killServer(srv);
      for (const u of [alice, bob]) {
        await waitStatus(u.page, 'reconnecting');
        // The countdown and "Retry now" (checked together: between two attempts the page is
        // briefly "connecting").
        await u.page.waitForFunction(() => {
          const st = document.querySelector('[data-testid="status"]');
          const retry = document.querySelector('[data-testid="retry-button"]');
          return st.dataset.state === 'reconnecting' && /^Reconnecting in \d+s$/.test(st.textContent)
            && !retry.hidden && retry.offsetParent !== null;
        }, null, { timeout: WAIT });
      }
      // Typed but not sent during the outage: must survive the reconnect.
      await bob.page.fill(byId('message-input'), 'typed during the outage');
      // Submitted during the outage: queued, shown as pending, sent after the rejoin.
      await say(alice.page, 'sent while the server was down');
      await waitMessage(alice.page, 'sent while the server was down', { state: 'pending' });
      assert.equal(await alice.page.inputValue(byId('message-input')), '');
      await shot(alice.page, 'reconnecting.png');
    });

    await t.test('the server comes back on the same port: the pages rejoin by themselves', async () => {
      srv = await restartServer(port);
      assert.equal(srv.port, port);
      for (const u of [alice, bob]) {
        await waitStatus(u.page, 'connected', RECONNECT_WAIT);
        await waitOnline(u.page, ['alice', 'bob'], { timeout: WAIT });
        assert.equal(await u.page.inputValue(byId('room-input')), 'e2e');
      }
      assert.equal(await bob.page.inputValue(byId('message-input')), 'typed during the outage', 'unsent input survives');
      // Everyone came back with the server: a return, not an arrival (RECONNECT_GRACE_MS).
      for (const u of [alice, bob]) {
        const n = await noticeTexts(u.page);
        const after = n.slice(n.lastIndexOf('Reconnected'));
        assert.ok(after.length >= 1, `${u.name}: a "Reconnected" notice (${JSON.stringify(n)})`);
        assert.deepEqual(after.filter((x) => / (joined|left)$/.test(x)), [], `${u.name}: nobody announced again after the restart`);
      }
      // The queued message was delivered after the rejoin, and is no longer pending.
      const q = await waitMessage(bob.page, 'sent while the server was down');
      assert.equal(q.name, 'alice');
      await waitMessage(alice.page, 'sent while the server was down', { state: 'sent' });
    });

    await t.test('the new WebSockets after the reconnect use permessage-deflate too',
      { skip: process.env.E2E_MOCK === '1' && 'the mock server does not compress' }, () => {
        for (const u of [alice, bob]) {
          assert.ok(u.handshakes.length >= 2, `${u.name}: a second handshake after the restart`);
          assertDeflate(u);
        }
      });

    await t.test('chatting works again after the reconnect', async () => {
      await bob.page.press(byId('message-input'), 'Enter');
      const m = await waitMessage(alice.page, 'typed during the outage');
      assert.equal(m.name, 'bob');
      await say(alice.page, 'welcome back ✓ — ünïcödé');
      assert.equal((await waitMessage(bob.page, 'welcome back ✓ — ünïcödé')).name, 'alice');
      // Everything once: the pre-outage conversation stayed, nothing was duplicated.
      const texts = (await messages(bob.page)).map((x) => x.text);
      for (const s of ['hi bob, how are you?', 'sent while the server was down', 'typed during the outage']) {
        assert.equal(texts.filter((x) => x === s).length, 1, `${JSON.stringify(s)} shown once on bob's page`);
      }
      await shot(alice.page, 'after-reconnect.png');
    });

    await t.test('no script errors on the pages', () => {
      assert.deepEqual(alice.problems, []);
      assert.deepEqual(bob.problems, []);
    });
  } catch (e) {
    if (srv) e.message += `\n--- server stderr ---\n${srv.stderr().slice(-4000)}`;
    throw e;
  } finally {
    await killServer(srv);
    await browser.close().catch(() => {});
    browser = null;
  }
});

// ---- issue 14: the token flow ------------------------------------------------------------------

test('with --token: the page asks for the token, keeps it for the tab, and takes it out of the URL',
  { timeout: 120000 }, async (t) => {
    if (process.env.E2E_MOCK !== '1') assert.ok(process.env.WSX && fs.existsSync(process.env.WSX), 'set WSX to the wsx binary');
    const tsrv = await startServer(0, ['--token', 's3cret']);
    const b = await launch();
    const base = `http://${tsrv.host}:${tsrv.port}/`;
    try {
      await t.test('no token: "this server needs an access token", no WebSocket, no reconnect loop', async () => {
        const ctx = await b.newContext({ viewport: { width: 1100, height: 700 } });
        const page = await ctx.newPage();
        const sockets = [];
        page.on('websocket', (ws) => sockets.push(ws.url()));
        await page.goto(`${base}?room=e2e`, { timeout: WAIT });
        await page.waitForSelector(`${byId('token-box')}:not([hidden])`, { timeout: WAIT });
        assert.match(await page.textContent(byId('token-box')), /This server needs an access token/);
        await waitStatus(page, 'locked');
        assert.equal(await page.textContent(byId('status')), 'Needs an access token');
        assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'token-input');
        await shot(page, 'token-prompt.png');
        await new Promise((r) => setTimeout(r, 1500));
        assert.deepEqual(sockets, [], 'no WebSocket was tried');
        assert.equal(await page.getAttribute(byId('retry-button'), 'hidden'), '', 'no "Retry now"');

        await page.fill(byId('token-input'), 'wrong');
        await page.press(byId('token-input'), 'Enter');
        await page.waitForFunction(() => document.querySelector('[data-testid="token-why"]')?.dataset.state === 'wrong', null, { timeout: WAIT });
        assert.match(await page.textContent(byId('token-why')), /not accepted/);

        await page.fill(byId('token-input'), 's3cret');
        await page.press(byId('token-input'), 'Enter');
        await waitStatus(page, 'connected');
        assert.equal(await page.isHidden(byId('token-box')), true);
        assert.equal(await page.evaluate(() => sessionStorage.getItem('wsx.chat.token')), 's3cret');
        await page.fill(byId('name-input'), 'tess');
        await page.click(byId('join-button'));
        await waitOnline(page, ['tess']);
        assert.deepEqual(sockets, [`ws://${tsrv.host}:${tsrv.port}/ws?token=s3cret`]);
        await ctx.close();
      });

      await t.test('?token= is read once, kept in sessionStorage and removed from the address bar', async () => {
        const ctx = await b.newContext({ viewport: { width: 1100, height: 700 } });
        const page = await ctx.newPage();
        await page.goto(`${base}?token=s3cret&room=e2e`, { timeout: WAIT });
        await waitStatus(page, 'connected');
        const url = new URL(page.url());
        assert.equal(url.searchParams.get('token'), null, `the URL has no token: ${page.url()}`);
        assert.equal(url.searchParams.get('room'), 'e2e', 'the room stays in the URL');
        assert.equal(await page.evaluate(() => sessionStorage.getItem('wsx.chat.token')), 's3cret');
        // A reload (the token is no longer in the URL) still gets in.
        await page.reload();
        await waitStatus(page, 'connected');
        assert.equal(await page.isHidden(byId('token-box')), true);
        await ctx.close();
      });
    } finally {
      await killServer(tsrv);
      await b.close().catch(() => {});
    }
  });

// ---- issue 14: the page before and in a room ---------------------------------------------------

test('the page: join form first, focus, Shift+Enter, links, counter, new-messages marker, title, dates, Leave, name taken, reloads',
  { timeout: 180000 }, async (t) => {
    if (process.env.E2E_MOCK !== '1') assert.ok(process.env.WSX && fs.existsSync(process.env.WSX), 'set WSX to the wsx binary');
    const psrv = await startServer(0);
    const b = await launch();
    const base = `http://${psrv.host}:${psrv.port}/`;
    try {
      const ann = await openUser(b, base, 'ann');

      const ctx = await b.newContext({ viewport: { width: 1100, height: 700 } });
      const page = await ctx.newPage();
      await t.test('before joining: only the join form (no empty room, no "Nobody yet")', async () => {
        await page.goto(`${base}?room=e2e`, { timeout: WAIT });
        await waitStatus(page, 'connected');
        assert.equal(await page.isVisible(byId('join-form')), true);
        assert.equal(await page.isVisible(byId('intro')), true);
        for (const id of ['message-list', 'online-list', 'room-title', 'message-input']) {
          assert.equal(await page.isVisible(byId(id)), false, `${id} is not shown before joining`);
        }
        const body = await page.innerText('body');
        assert.doesNotMatch(body, /No messages yet|Nobody yet|ONLINE 0/i);
        await shot(page, 'before-join.png');
      });

      await t.test('after Join the focus is in the message box', async () => {
        await page.fill(byId('name-input'), 'cleo');
        await page.focus(byId('room-input'));
        await page.press(byId('room-input'), 'Enter');
        await waitOnline(page, ['cleo'], { includes: true });
        await page.waitForFunction(() => document.activeElement?.dataset.testid === 'message-input', null, { timeout: WAIT });
        await page.keyboard.type('typed right after joining');
        await page.keyboard.press('Enter');
        await waitMessage(ann.page, 'typed right after joining');
      });

      await t.test('Leave: back to the join form; the others see the name go', async () => {
        await page.click(byId('leave-button'));
        await page.waitForSelector(`${byId('intro')}:visible`, { timeout: WAIT });
        assert.equal(await page.isVisible(byId('message-list')), false);
        assert.equal(await page.isVisible(byId('leave-button')), false);
        await waitOnline(ann.page, ['ann']);
      });

      await t.test('a name taken by someone else: the error is shown and the page does not join',
        { skip: process.env.E2E_MOCK === '1' && 'the mock server does not own names' }, async () => {
        await page.fill(byId('name-input'), 'ann');
        await page.click(byId('join-button'));
        await waitToast(page, /Someone else in this room goes by that name/);
        assert.match(await page.textContent(byId('intro-text')), /"ann" is taken in #e2e/);
        assert.equal(await page.isVisible(byId('message-list')), false);
        await waitOnline(ann.page, ['ann']);
        assert.equal(await ann.page.locator(byId('online-tabs')).count(), 0, 'not merged into ann as a second tab');
      });
      await ctx.close();

      const bea = await openUser(b, base, 'bea');

      await t.test('Shift+Enter is a new line; Enter sends the lines as one message', async () => {
        await bea.page.click(byId('message-input'));
        await bea.page.keyboard.type('line one');
        await bea.page.keyboard.press('Shift+Enter');
        await bea.page.keyboard.type('line two');
        assert.equal(await bea.page.inputValue(byId('message-input')), 'line one\nline two');
        await bea.page.keyboard.press('Enter');
        await waitMessage(ann.page, 'line one\nline two');
      });

      await t.test('links are anchors with rel=noopener, made of text nodes (no HTML)', async () => {
        const text = 'see https://example.com/a?b=1. and <b>x</b> javascript:alert(1)';
        await say(bea.page, text);
        await waitMessage(ann.page, text);
        const got = await ann.page.evaluate((tx) => {
          const item = [...document.querySelectorAll('[data-testid="message"]')]
            .find((e) => e.querySelector('[data-testid="message-text"]')?.textContent === tx);
          const el = item.querySelector('[data-testid="message-text"]');
          return {
            links: [...el.querySelectorAll('a')].map((a) => ({ href: a.getAttribute('href'), rel: a.rel, target: a.target, text: a.textContent })),
            children: [...el.children].map((c) => c.tagName),
            nodes: [...el.childNodes].map((n) => n.nodeName),
          };
        }, text);
        assert.deepEqual(got.links, [{ href: 'https://example.com/a?b=1', rel: 'noopener noreferrer nofollow', target: '_blank', text: 'https://example.com/a?b=1' }]);
        assert.deepEqual(got.children, ['A'], 'one element: the link (no <b>)');
        assert.deepEqual(got.nodes, ['#text', 'A', '#text']);
      });

      await t.test('a counter near the limit; a longer text is refused with a word, not cut', async () => {
        await bea.page.fill(byId('message-input'), 'y'.repeat(1500));
        assert.equal(await bea.page.isVisible(byId('char-counter')), false, 'no counter far from the limit');
        await bea.page.fill(byId('message-input'), 'y'.repeat(1850));
        assert.equal(await bea.page.textContent(byId('char-counter')), '1850 / 2000');
        assert.equal(await bea.page.getAttribute(byId('char-counter'), 'data-over'), '0');
        const long = 'z'.repeat(2500);
        await bea.page.fill(byId('message-input'), long);
        assert.equal((await bea.page.inputValue(byId('message-input'))).length, 2500, 'the paste is not cut');
        assert.equal(await bea.page.textContent(byId('char-counter')), '2500 / 2000');
        assert.equal(await bea.page.getAttribute(byId('char-counter'), 'data-over'), '1');
        await shot(bea.page, 'counter-over.png');
        await bea.page.press(byId('message-input'), 'Enter');
        await waitToast(bea.page, /at most 2000 characters; this one has 2500/);
        assert.equal((await bea.page.inputValue(byId('message-input'))).length, 2500, 'the text stays to be shortened');
        await bea.page.fill(byId('message-input'), 'y'.repeat(1990));
        await shot(bea.page, 'counter-near.png');
        await bea.page.fill(byId('message-input'), '');
        await say(bea.page, 'after the refusal');
        await waitMessage(ann.page, 'after the refusal');
        const texts = (await messages(ann.page)).map((m) => m.text);
        assert.equal(texts.some((x) => x.startsWith('zzz')), false, 'nothing of the long text was sent');
      });

      await t.test('scrolled up: "new messages ↓" counts arrivals; clicking it goes down', async () => {
        // Enough lines to scroll, paced under the chat's rate limit (20/s, burst 40).
        for (let i = 1; i <= 12; i++) {
          await say(bea.page, `filler ${i}\nsecond line\nthird line`);
          await bea.page.waitForTimeout(100);
        }
        await waitMessage(ann.page, 'filler 12\nsecond line\nthird line');
        await ann.page.$eval(byId('message-list'), (m) => { m.scrollTop = 0; });
        await ann.page.waitForTimeout(200);
        await say(bea.page, 'while ann reads old messages 1');
        await say(bea.page, 'while ann reads old messages 2 — see https://example.org/x');
        await waitMessage(ann.page, 'while ann reads old messages 2 — see https://example.org/x');
        await ann.page.waitForSelector(`${byId('new-marker')}:visible`, { timeout: WAIT });
        assert.equal(await ann.page.textContent(byId('new-marker')), '2 new messages ↓');
        assert.equal(await ann.page.$eval(byId('message-list'), (m) => m.scrollTop), 0, 'the page did not scroll away');
        await shot(ann.page, 'new-messages.png');
        await ann.page.click(byId('new-marker'));
        assert.equal(await ann.page.isVisible(byId('new-marker')), false);
        assert.ok(await ann.page.$eval(byId('message-list'), (m) => m.scrollHeight - m.scrollTop - m.clientHeight < 5), 'at the bottom');
      });

      await t.test('tab hidden: the unread count is in the title, and goes when the tab is seen', async () => {
        const setHidden = (h) => ann.page.evaluate((hid) => {
          Object.defineProperty(document, 'hidden', { configurable: true, get: () => hid });
          Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hid ? 'hidden' : 'visible') });
          document.dispatchEvent(new Event('visibilitychange'));
        }, h);
        assert.equal(await ann.page.title(), '#e2e · wsx chat');
        await setHidden(true);
        await say(bea.page, 'are you there?');
        await say(bea.page, 'hello?');
        await waitMessage(ann.page, 'hello?');
        assert.equal(await ann.page.title(), '(2) #e2e · wsx chat');
        await setHidden(false);
        assert.equal(await ann.page.title(), '#e2e · wsx chat');
      });

      await t.test('timestamps not from today show the date', async () => {
        const ctx = await b.newContext({ viewport: { width: 1100, height: 700 } });
        const page = await ctx.newPage();
        // Two days later on this page's clock: the history is from "the day before yesterday".
        await page.clock.setFixedTime(new Date(Date.now() + 2 * 86400000));
        await page.goto(`${base}?room=e2e`, { timeout: WAIT });
        await page.fill(byId('name-input'), 'dora');
        await page.click(byId('join-button'));
        const m = await waitMessage(page, 'hello?');
        assert.doesNotMatch(m.time, /^\d\d:\d\d$/, 'more than the time');
        assert.match(m.time, /\d.* \d\d:\d\d$/, `a date, then HH:MM (${m.time})`);
        const today = (await messages(ann.page)).find((x) => x.text === 'hello?');
        assert.match(today.time, /^\d\d:\d\d$/, 'today: HH:MM only');
        await ctx.close();
      });

      await t.test('a reload is not a departure and an arrival', async () => {
        const before = (await noticeTexts(ann.page)).length;
        await bea.page.reload();
        await waitOnline(bea.page, ['ann', 'bea'], { includes: true });
        await waitStatus(bea.page, 'connected');
        await say(bea.page, 'back after a reload');
        await waitMessage(ann.page, 'back after a reload');
        const after = (await noticeTexts(ann.page)).slice(before);
        assert.deepEqual(after.filter((x) => /^bea (joined|left)$/.test(x)), [], `no "bea left"/"bea joined" (${JSON.stringify(after)})`);
      });

      await t.test('a departure that lasts is announced, once the 15 s grace is over', async () => {
        // cleo left (the Leave button) earlier in this test and never came back.
        await ann.page.waitForFunction(() => [...document.querySelectorAll('[data-testid="notice"]')]
          .some((n) => n.textContent.includes('cleo left')), null, { timeout: 20000 });
        assert.equal((await noticeTexts(ann.page)).filter((x) => x === 'cleo left').length, 1);
      });

      await t.test('no script errors', () => {
        assert.deepEqual(ann.problems, []);
      });
    } catch (e) {
      e.message += `\n--- server stderr ---\n${psrv.stderr().slice(-4000)}`;
      throw e;
    } finally {
      await killServer(psrv);
      await b.close().catch(() => {});
    }
  });
