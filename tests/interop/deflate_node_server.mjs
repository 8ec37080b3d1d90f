// permessage-deflate (RFC 7692): the wsx client against an npm ws SERVER with perMessageDeflate.
//
// Several server option sets (context takeover, server/client_no_context_takeover,
// serverMaxWindowBits 10, clientMaxWindowBits 10; threshold 0 so that ws compresses every
// message) against wsx_client_test --deflate (the scripted conversation, 16 MiB messages
// included for some) and `wsx cat -z`. The ws server checks the offer in the request's
// Sec-WebSocket-Extensions against what wsx documents (wsx_pmd_client_offer: the configured
// parameters, then always client_max_window_bits), and, from the TCP byte count against the
// payload received, that the wsx client really compressed what it sent.
import { once } from 'node:events';
import { WebSocketServer } from 'ws';
import {
  run, step, check, eq, note, sleep, runProgram, repetitive, binaryPayload, WSX_BIN, WSX_CLIENT_TEST,
} from './lib.mjs';

const MiB = 1 << 20;
const OFFER = 'permessage-deflate; client_max_window_bits';

// An echo server (compression options pmd) that records, per connection, the offer received,
// the response sent, the parameters agreed and the bytes on the wire against the payload.
// onConnection(ws, rec), when given, replaces the echo.
async function startServer(pmd, { onConnection } = {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 64 * MiB, perMessageDeflate: pmd });
  await once(wss, 'listening');
  const srv = { wss, conns: [], port: wss.address().port };
  srv.url = `ws://127.0.0.1:${srv.port}/`;
  let lastResponse;
  wss.on('headers', (headers) => {
    const h = headers.find((l) => /^sec-websocket-extensions:/i.test(l));
    lastResponse = h ? h.replace(/^[^:]*:\s*/, '') : undefined;
  });
  wss.on('connection', (ws, req) => {
    const c = {
      offer: req.headers['sec-websocket-extensions'],
      response: lastResponse,
      params: ws._extensions['permessage-deflate'] ? ws._extensions['permessage-deflate'].params : null,
      sock: req.socket,
      payloadIn: 0,
      payloadOut: 0,
      messages: 0,
      close: null,
    };
    srv.conns.push(c);
    ws.on('error', (err) => note(`ws server: ${err.message}`));
    ws.on('close', (code, reason) => { c.close = { code, reason: reason.toString() }; });
    if (onConnection) { onConnection(ws, c); return; }
    ws.on('message', (data, isBinary) => {
      c.messages++;
      c.payloadIn += data.length;
      c.payloadOut += data.length;
      ws.send(data, { binary: isBinary });
    });
  });
  note(`ws server ${JSON.stringify(pmd)} on ${srv.url}`);
  return srv;
}

async function stopServer(srv) {
  for (const ws of srv.wss.clients) ws.terminate();
  await new Promise((r) => srv.wss.close(r));
}

// Both directions far smaller on the wire than in payload (the conversation is half random
// binary, half repetitive text, so compression must save well over a quarter).
function checkCompressed(c, label) {
  const { bytesRead, bytesWritten } = c.sock;
  check(c.payloadIn > 0 && bytesRead < 0.75 * c.payloadIn,
    `${label}: the wsx client's messages came compressed (${bytesRead} B on the wire for ${c.payloadIn} B)`);
  check(c.payloadOut > 0 && bytesWritten < 0.75 * c.payloadOut,
    `${label}: ws sent compressed (${bytesWritten} B on the wire for ${c.payloadOut} B)`);
}

// wsx_client_test ARGS against srv; checks the exit status, the offer and the response.
async function conversation(srv, args, { offer = OFFER, response, params, timeoutMs = 90000 }) {
  const label = `wsx_client_test ${args.join(' ')}`;
  const before = srv.conns.length;
  const r = await runProgram(WSX_CLIENT_TEST, ['--timeout', String(Math.floor(timeoutMs / 1000) - 5), ...args, srv.url],
    { timeoutMs });
  eq(r.code, 0, `${label}: exit status`);
  const c = srv.conns[before];
  if (!check(c, `${label}: the ws server got a connection`)) return;
  eq(c.offer, offer, `${label}: offer (request Sec-WebSocket-Extensions)`);
  eq(c.response, response, `${label}: ws server's response`);
  eq(JSON.stringify(c.params), JSON.stringify(params), `${label}: parameters agreed by ws`);
  for (let i = 0; i < 100 && !c.close; i++) await sleep(20); // the client may exit first
  check(c.close && c.close.code === 1000, `${label}: closed with 1000`, JSON.stringify(c.close));
  checkCompressed(c, label);
}

// [ws server options, the response ws gives to wsx's default offer, the params ws agrees,
//  run the full conversation (16 MiB messages) rather than --small]
const SETS = [
  [{ threshold: 0 }, 'permessage-deflate', {}, true],
  [{ threshold: 0, serverNoContextTakeover: true }, 'permessage-deflate; server_no_context_takeover',
    { server_no_context_takeover: true }, false],
  [{ threshold: 0, clientNoContextTakeover: true }, 'permessage-deflate; client_no_context_takeover',
    { client_no_context_takeover: true }, false],
  // A full conversation here meets the frame-limit bug of deflate_node_client.mjs from the
  // client's side (see the `wsx cat` step below).
  [{ threshold: 0, serverMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=10',
    { server_max_window_bits: 10 }, false],
  [{ threshold: 0, clientMaxWindowBits: 10 }, 'permessage-deflate; client_max_window_bits=10',
    { client_max_window_bits: 10 }, true],
];

run('deflate_node_server', async () => {
  for (const [pmd, response, params, full] of SETS) {
    await step(`ws server ${JSON.stringify(pmd)}: wsx_client_test --deflate${full ? '' : ' --small'}`, async () => {
      const srv = await startServer(pmd);
      try {
        await conversation(srv, ['--deflate', ...(full ? [] : ['--small'])], { response, params });
      } finally {
        await stopServer(srv);
      }
    }, { timeoutMs: 100000 });
  }

  await step('the wsx client offer with its options set', async () => {
    const srv = await startServer({ threshold: 0 });
    try {
      await conversation(srv, ['--deflate', '--small', '--deflate-no-context'], {
        offer: 'permessage-deflate; client_no_context_takeover; client_max_window_bits',
        response: 'permessage-deflate; client_no_context_takeover',
        params: { client_no_context_takeover: true },
      });
      await conversation(srv, ['--deflate', '--small', '--deflate-server-no-context', '--deflate-window', '11',
        '--deflate-server-window', '12', '--deflate-threshold', '0', '--deflate-level', '9'], {
        offer: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11',
        response: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11',
        params: { server_no_context_takeover: true, server_max_window_bits: 12, client_max_window_bits: 11 },
      });
      // Window 8 is offered as 9 (zlib cannot compress within 256 bytes).
      await conversation(srv, ['--deflate', '--small', '--deflate-window', '8'], {
        offer: 'permessage-deflate; client_max_window_bits=9',
        response: 'permessage-deflate; client_max_window_bits=9',
        params: { client_max_window_bits: 9 },
      });
    } finally {
      await stopServer(srv);
    }
  }, { timeoutMs: 100000 });

  await step('a ws server without compression: the wsx client talks uncompressed', async () => {
    const srv = await startServer(false);
    try {
      const r = await runProgram(WSX_CLIENT_TEST, ['--timeout', '40', '--deflate-refused', '--small', srv.url],
        { timeoutMs: 45000 });
      eq(r.code, 0, 'wsx_client_test --deflate-refused: exit status');
      const c = srv.conns[0];
      eq(c && c.offer, OFFER, 'the offer was made');
      eq(c && c.response, undefined, 'no Sec-WebSocket-Extensions in the response');
      check(c && c.sock.bytesRead > c.payloadIn, 'the messages came uncompressed',
        c && `${c.sock.bytesRead} B on the wire for ${c.payloadIn} B`);
    } finally {
      await stopServer(srv);
    }
  });

  await step('wsx cat -z: a 1 MiB repetitive line goes compressed and comes back', async () => {
    for (const pmd of [{ threshold: 0 }, { threshold: 0, serverNoContextTakeover: true, clientMaxWindowBits: 10 }]) {
      const srv = await startServer(pmd);
      try {
        const line = repetitive(MiB, 9).toString();
        const r = await runProgram(WSX_BIN, ['cat', '-z', srv.url], { timeoutMs: 20000, input: `${line}\nshort\n`, maxEcho: 80 });
        const label = `wsx cat -z against ${JSON.stringify(pmd)}`;
        eq(r.code, 0, `${label}: exit status`);
        check(r.stderr.some((l) => /^connected.*, permessage-deflate$/.test(l)), `${label}: says "connected, permessage-deflate"`,
          r.stderr.join(' | '));
        check(r.stdout[0] === line, `${label}: the 1 MiB echo printed intact`, `got ${r.stdout[0] && r.stdout[0].length} characters`);
        eq(r.stdout[1], 'short', `${label}: then the short line`);
        const c = srv.conns[0];
        eq(c && c.offer, OFFER, `${label}: offer`);
        check(c && c.payloadIn === MiB + 5 && c.sock.bytesRead < 64 * 1024,
          `${label}: the 1 MiB line came compressed (${c && c.sock.bytesRead} B on the wire for ${c && c.payloadIn} B)`);
        check(c && c.sock.bytesWritten < 64 * 1024, `${label}: the echo went compressed (${c && c.sock.bytesWritten} B)`);
      } finally {
        await stopServer(srv);
      }
    }
  });

  await step('wsx cat -z receives a random 16 MiB message compressed with a 10-bit window', async () => {
    // ws compresses incompressible data with a small window to ~0.2% more than its size; the
    // wsx client must still accept it (16 MiB is within its default --max-message 16M).
    const data = binaryPayload(16 * MiB, 3);
    const srv = await startServer({ threshold: 0, serverMaxWindowBits: 10 }, {
      onConnection: (ws, c) => {
        ws.send(data, { binary: true });
        c.payloadOut += data.length;
      },
    });
    try {
      let got = false;
      const r = await runProgram(WSX_BIN, ['cat', '-z', srv.url], {
        timeoutMs: 30000,
        keepStdin: true,
        onLine: (l, proc) => { if (l === `[binary message, ${16 * MiB} bytes]`) { got = true; proc.stdin.end(); } },
      });
      const c = srv.conns[0];
      note(`ws sent ${c && c.sock.bytesWritten} B for the 16 MiB message; wsx cat: ${r.stderr.join(' | ')}`);
      check(got && r.code === 0, 'wsx cat -z: the 16 MiB message arrived, exit 0',
        `exit ${r.code}, close ${JSON.stringify(c && c.close)}`);
    } finally {
      await stopServer(srv);
    }
  }, { timeoutMs: 40000 });
  note('done');
}, { timeoutMs: 240000, needs: ['WSX_BIN', 'WSX_CLIENT_TEST'] });
