// The wsx client (wsx_client_test, public API only) against an echo server written with the
// npm ws package: the scripted conversation with several close codes (the ws server checks
// the code it receives), reconnection after the server vanishes and comes back on the same
// port, and giving up against a closed port.
import { once } from 'node:events';
import { WebSocketServer } from 'ws';
import { run, step, check, eq, note, sleep, runProgram, freePort, WSX_CLIENT_TEST } from './lib.mjs';

// An echo server on 127.0.0.1:port that records what its connections report.
async function startEcho(port = 0) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port, maxPayload: 64 << 20 });
  await once(wss, 'listening');
  const rec = { wss, port: wss.address().port, connections: 0, closes: [], unmasked: 0 };
  wss.on('connection', (ws) => {
    rec.connections++;
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', (err) => note(`ws server: connection error: ${err.message}`));
    ws.on('close', (code, reason) => rec.closes.push({ code, reason: reason.toString() }));
  });
  rec.url = `ws://127.0.0.1:${rec.port}/`;
  note(`ws echo server on ${rec.url}`);
  return rec;
}

// Makes the server vanish abruptly: every connection is reset, the port is closed.
async function vanish(rec) {
  for (const ws of rec.wss.clients) ws.terminate();
  await new Promise((r) => rec.wss.close(r));
}

run('node_server', async () => {
  await step('conversation with close codes 1000, 3000, 4999', async () => {
    const rec = await startEcho();
    try {
      for (const [code, small] of [[1000, false], [3000, true], [4999, true]]) {
        const before = rec.closes.length;
        const args = ['--timeout', '40', ...(small ? ['--small'] : []), rec.url, String(code)];
        const r = await runProgram(WSX_CLIENT_TEST, args, { timeoutMs: 45000 });
        eq(r.code, 0, `wsx_client_test ${args.join(' ')} exit status`);
        await sleep(100);
        const c = rec.closes[before];
        check(c && c.code === code, `ws server received close code ${code} from the wsx client`,
          JSON.stringify(c));
        check(c && c.reason === 'bye from wsx_client_test', 'ws server received the close reason',
          JSON.stringify(c));
      }
    } finally {
      await vanish(rec);
    }
  }, { timeoutMs: 50000 });

  await step('reconnect after the server vanishes and returns on the same port', async () => {
    let rec = await startEcho();
    const port = rec.port;
    let restarted = null;
    try {
      const r = await runProgram(WSX_CLIENT_TEST, ['--timeout', '20', '--reconnect', rec.url], {
        timeoutMs: 25000,
        onLine: (line) => {
          if (!line.startsWith('READY') || restarted) return;
          restarted = (async () => {
            await vanish(rec);
            note('ws server gone; restarting in 400 ms on the same port');
            await sleep(400);
            rec = await startEcho(port);
          })();
        },
      });
      eq(r.code, 0, 'wsx_client_test --reconnect exit status');
      check(restarted !== null, 'the client reported READY before the restart');
      if (restarted) await restarted;
      check(rec.connections === 1, 'the restarted server got the reconnection',
        `${rec.connections} connections`);
    } finally {
      if (restarted) await restarted.catch(() => {});
      await vanish(rec).catch(() => {});
    }
  }, { timeoutMs: 30000 });

  await step('give up against a closed port', async () => {
    const port = await freePort();
    const r = await runProgram(WSX_CLIENT_TEST,
      ['--timeout', '15', '--give-up', `ws://127.0.0.1:${port}/`], { timeoutMs: 20000 });
    eq(r.code, 0, 'wsx_client_test --give-up exit status');
  });
}, { timeoutMs: 90000, needs: ['WSX_CLIENT_TEST'] });
