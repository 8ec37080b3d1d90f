// The wsx client (wsx_client_test --cacert, public API only) over wss:// against an echo
// server written with the npm ws package on node's https server (certificates made at test
// time by certs.sh): the scripted conversation (0 .. 16 MiB, text and binary, a burst, ping,
// close codes checked on the ws side), by IP and by name (the certificate is for localhost and
// 127.0.0.1).
import https from 'node:https';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';
import { run, step, check, eq, note, sleep, runProgram, makeCerts, WSX_CLIENT_TEST } from './lib.mjs';

// A wss echo server on 127.0.0.1 that records what its connections report.
async function startTlsEcho(certs) {
  const server = https.createServer({ cert: certs.pem('server.pem'), key: certs.pem('server.key') });
  const wss = new WebSocketServer({ server, maxPayload: 64 << 20 });
  const rec = { server, wss, connections: 0, encrypted: 0, closes: [] };
  wss.on('connection', (ws, req) => {
    rec.connections++;
    if (req.socket.encrypted) rec.encrypted++;
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', (err) => note(`ws server: connection error: ${err.message}`));
    ws.on('close', (code, reason) => rec.closes.push({ code, reason: reason.toString() }));
  });
  server.on('tlsClientError', (err) => note(`https server: TLS client error: ${err.message}`));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  rec.port = server.address().port;
  note(`ws echo server on wss://127.0.0.1:${rec.port}/`);
  return rec;
}

async function stopTlsEcho(rec) {
  for (const ws of rec.wss.clients) ws.terminate();
  rec.wss.close();
  rec.server.closeAllConnections?.();
  await new Promise((r) => rec.server.close(r));
}

run('tls_node_server', async () => {
  const certs = makeCerts();
  const rec = await startTlsEcho(certs);
  try {
    await step('conversation over wss:// with close codes 1000, 3000, 4999', async () => {
      const cases = [
        [`wss://127.0.0.1:${rec.port}/`, 1000, false],
        [`wss://127.0.0.1:${rec.port}/`, 3000, true],
        [`wss://localhost:${rec.port}/path?q=1`, 4999, true],
      ];
      for (const [url, code, small] of cases) {
        const before = rec.closes.length;
        const args = ['--timeout', '50', '--cacert', certs.file('ca.pem'), ...(small ? ['--small'] : []), url, String(code)];
        const r = await runProgram(WSX_CLIENT_TEST, args, { timeoutMs: 55000 });
        eq(r.code, 0, `wsx_client_test ${small ? '--small ' : ''}${url} ${code} exit status`);
        await sleep(100);
        const c = rec.closes[before];
        check(c && c.code === code, `ws server received close code ${code} from the wsx client`, JSON.stringify(c));
        check(c && c.reason === 'bye from wsx_client_test', 'ws server received the close reason', JSON.stringify(c));
      }
      eq(rec.encrypted, rec.connections, 'every connection the ws server saw was TLS');
    }, { timeoutMs: 120000 });
  } finally {
    await stopTlsEcho(rec);
  }
}, { timeoutMs: 150000, needs: ['WSX_CLIENT_TEST'] });
