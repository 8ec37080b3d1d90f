// Browser end-to-end test of the chat page over TLS, run with node's test runner:
//
//   cd tests/e2e && npm ci && WSX=/path/to/build/wsx node --test https.test.mjs
//
// Makes throw-away certificates with tests/interop/certs.sh (openssl) in a temporary directory,
// runs `$WSX serve --tls-cert … --tls-key … --port 0`, and opens https://localhost:PORT/ in two
// headless Chromium pages (Debian's /usr/bin/chromium through playwright-core, a fresh profile
// each launch, --ignore-certificate-errors since the test CA is not in its store; localhost is
// mapped to 127.0.0.1). Both join a room and exchange a message over wss://. Screenshot:
// tests/out/e2e/https.png.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const outDir = path.join(repo, 'tests', 'out', 'e2e');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--ignore-certificate-errors', '--host-resolver-rules=MAP localhost 127.0.0.1'];
const WAIT = 15000;
const byId = (id) => `[data-testid="${id}"]`;

let proc = null;
let browser = null;
let certDir = null;
const kill = () => { if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); };
process.on('exit', () => {
  kill();
  if (certDir) fs.rmSync(certDir, { recursive: true, force: true });
});
after(async () => {
  kill();
  if (browser) await browser.close().catch(() => {});
});

// Starts `wsx serve` with TLS; resolves {port, stderr()} at its `listening on https://…` line.
function startServer(args) {
  return new Promise((resolve, reject) => {
    proc = spawn(process.env.WSX, ['serve', '--host', '127.0.0.1', '--port', '0', '--history', '20', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`wsx serve: no "listening on https://" line within 10 s\n${stderr}`)), 10000);
    proc.stderr.on('data', (d) => { stderr += d; if (stderr.length > 20000) stderr = stderr.slice(-20000); });
    proc.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`wsx serve exited (${code ?? sig}) before listening\n${stderr}`)); });
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      const m = /listening on https:\/\/[^ ]+:(\d+)\//.exec(line);
      if (m) { clearTimeout(timer); resolve({ port: Number(m[1]), stderr: () => stderr }); }
    });
  });
}

async function openUser(base, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const resp = await page.goto(`${base}?room=tls`, { timeout: WAIT });
  assert.equal(resp.status(), 200, `GET ${base}`);
  await page.fill(byId('name-input'), name);
  await page.click(byId('join-button'));
  await page.waitForFunction(() => document.querySelector('[data-testid="status"]')?.dataset.state === 'connected',
    null, { timeout: WAIT });
  return { context, page, problems, sockets };
}

function waitMessage(page, text) {
  return page.waitForFunction((t) => [...document.querySelectorAll('[data-testid="message"]')]
    .some((e) => e.querySelector('[data-testid="message-text"]')?.textContent === t && e.dataset.state === 'sent'),
  text, { timeout: WAIT });
}

test('two pages chat over https:// and wss:// (wsx serve --tls-cert)', { timeout: 120000 }, async () => {
  assert.ok(process.env.WSX && fs.existsSync(process.env.WSX), 'set WSX to the wsx binary');
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's Chromium`);
  const { chromium } = await import('playwright-core');

  certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsx-e2e-certs-'));
  execFileSync('sh', [path.join(repo, 'tests', 'interop', 'certs.sh'), certDir], { stdio: 'ignore', timeout: 30000 });
  const srv = await startServer(['--tls-cert', path.join(certDir, 'server.pem'), '--tls-key', path.join(certDir, 'server.key')]);
  const base = `https://localhost:${srv.port}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
  try {
    const alice = await openUser(base, 'alice');
    const bob = await openUser(base, 'bob');
    assert.deepEqual(alice.sockets, [`wss://localhost:${srv.port}/ws`], 'the page uses wss:// on the https origin');
    assert.equal(await alice.page.evaluate(() => window.isSecureContext && location.protocol), 'https:');

    await bob.page.waitForFunction(() => [...document.querySelectorAll('[data-testid="online-entry"] [data-testid="online-name"]')]
      .map((e) => e.textContent).join(',') === 'alice,bob', null, { timeout: WAIT });

    await alice.page.fill(byId('message-input'), 'hello over wss — déjà vu');
    await alice.page.press(byId('message-input'), 'Enter');
    await waitMessage(bob.page, 'hello over wss — déjà vu');
    await bob.page.fill(byId('message-input'), 'received, over TLS too');
    await bob.page.press(byId('message-input'), 'Enter');
    await waitMessage(alice.page, 'received, over TLS too');

    fs.mkdirSync(outDir, { recursive: true });
    await alice.page.screenshot({ path: path.join(outDir, 'https.png') });
    assert.deepEqual(alice.problems, []);
    assert.deepEqual(bob.problems, []);
  } catch (e) {
    e.message += `\n--- server stderr ---\n${srv.stderr().slice(-4000)}`;
    throw e;
  } finally {
    await browser.close().catch(() => {});
    browser = null;
    kill();
  }
});
