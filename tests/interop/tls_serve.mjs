// `wsx serve` with TLS (certificates made at test time by certs.sh):
//  - --tls-cert/--tls-key with --tls-port: one process serves http:// + ws:// on --port and
//    https:// + wss:// on --tls-port, and both are one chat: a message posted on the plain
//    port reaches a member of the same room on the TLS port and the other way round (SSE over
//    https too);
//  - without --tls-port the one port is TLS only;
//  - SIGHUP reloads the certificates of the TLS side.
import https from 'node:https';
import http from 'node:http';
import {
  run, step, check, eq, note, startServe, connect, makeCerts, tlsArgs, peerCertificate, within,
} from './lib.mjs';

// One GET: {status, headers, body}; ca for https.
function get(url, { ca, ms = 5000, headers = {} } = {}) {
  const mod = url.startsWith('https:') ? https : http;
  return within(new Promise((resolve, reject) => {
    const req = mod.get(url, { ca, headers }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
  }), ms, `GET ${url}`);
}

// A chat client on a ws Peer: JSON in and out.
async function chat(url, opts = {}) {
  const p = await connect(url, opts);
  const c = {
    p,
    send: (o) => p.ws.send(JSON.stringify(o)),
    recv: async (ms = 5000) => JSON.parse((await p.next(ms)).data.toString()),
    // The next message of this type (others, such as presence, are skipped).
    async expect(type, ms = 5000) {
      const until = Date.now() + ms;
      for (;;) {
        const m = await c.recv(Math.max(1, until - Date.now()));
        if (m.type === type) return m;
      }
    },
    // The next chat message with this text (earlier ones, such as our own, are skipped).
    async message(text, ms = 5000) {
      const until = Date.now() + ms;
      for (;;) {
        const m = await c.expect('message', Math.max(1, until - Date.now()));
        if (m.text === text) return m;
      }
    },
  };
  c.welcome = await c.recv();
  return c;
}

run('tls_serve', async () => {
  const certs = makeCerts();
  const ca = certs.pem('ca.pem');

  await step('--tls-port: http and https side by side, one chat across both', async () => {
    const srv = await startServe([...tlsArgs(certs, 'server'), '--tls-port', '0']);
    try {
      const plain = srv.listening.http;
      const tlsPort = srv.listening.https;
      check(plain && tlsPort && plain !== tlsPort, `two ports: http ${plain}, https ${tlsPort}`);

      const page = await get(`https://127.0.0.1:${tlsPort}/`, { ca });
      eq(page.status, 200, 'GET https://…/ (the chat page)');
      check(/<html/i.test(page.body), 'the page is HTML');
      eq((await get(`https://localhost:${tlsPort}/healthz`, { ca })).status, 200, 'GET https://localhost:…/healthz (name checked)');
      eq((await get(`http://127.0.0.1:${plain}/healthz`)).status, 200, 'GET http://…/healthz on the plain port');
      const c = await peerCertificate(tlsPort);
      eq(c.subjectCN, 'wsx-test-server-A', 'the TLS port presents the certificate');
      const wrong = await get(`http://127.0.0.1:${tlsPort}/healthz`, { ms: 3000 }).then((r) => `HTTP ${r.status}`, (e) => e);
      check(wrong instanceof Error, 'plain http on the TLS port gets no answer', String(wrong));
      const wrong2 = await get(`https://127.0.0.1:${plain}/healthz`, { ca, ms: 3000 }).then((r) => `HTTP ${r.status}`, (e) => e);
      check(wrong2 instanceof Error, 'https on the plain port fails', String(wrong2));

      const alice = await chat(`ws://127.0.0.1:${plain}/ws`);
      const bob = await chat(`wss://127.0.0.1:${tlsPort}/ws`, { ca });
      eq(alice.welcome.type, 'welcome', 'plain client welcomed');
      eq(bob.welcome.type, 'welcome', 'wss client welcomed');
      alice.send({ type: 'join', room: 'tls-room', name: 'alice' });
      eq((await alice.expect('joined')).room, 'tls-room', 'alice (ws://) joined');
      bob.send({ type: 'join', room: 'tls-room', name: 'bob' });
      const bj = await bob.expect('joined');
      eq(bj.room, 'tls-room', 'bob (wss://) joined');
      check(JSON.stringify(bj.online).includes('alice'), 'bob sees alice online', JSON.stringify(bj.online));

      alice.send({ type: 'message', text: 'hello from the plain port' });
      const m1 = await bob.message('hello from the plain port');
      check(m1.name === 'alice' && m1.text === 'hello from the plain port',
        'a message posted on the plain port reaches the TLS client', JSON.stringify(m1));
      bob.send({ type: 'message', text: 'hi from the TLS port ✓' });
      const m2 = await alice.message('hi from the TLS port ✓');
      check(m2.name === 'bob' && m2.text === 'hi from the TLS port ✓',
        'a message posted on the TLS port reaches the plain client', JSON.stringify(m2));

      // Server-sent events over https see the room too.
      const sse = await within(new Promise((resolve, reject) => {
        const req = https.get(`https://127.0.0.1:${tlsPort}/sse?room=tls-room`, { ca, headers: { Accept: 'text/event-stream' } }, (res) => {
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (d) => {
            buf += d;
            if (buf.includes('over sse')) { resolve({ status: res.statusCode, buf }); req.destroy(); }
          });
          setTimeout(() => alice.send({ type: 'message', text: 'over sse' }), 200);
        });
        req.on('error', reject);
      }), 5000, 'SSE over https');
      eq(sse.status, 200, 'GET https://…/sse');
      check(/event: message/.test(sse.buf), 'the message arrives as a server-sent event over https');

      const from = srv.stderr.length;
      srv.proc.kill('SIGHUP');
      const line = await srv.waitStderr(/SIGHUP/, 5000, from);
      check(/certificates reloaded/.test(line), 'SIGHUP: the TLS side reloads its certificates', line);
      bob.send({ type: 'message', text: 'after SIGHUP' });
      eq((await alice.message('after SIGHUP')).name, 'bob', 'the chat goes on after SIGHUP');

      alice.p.ws.close(1000);
      bob.p.ws.close(1000);
      await alice.p.waitClose();
      await bob.p.waitClose();
    } finally {
      const st = await srv.stop('SIGTERM');
      eq(st.code, 0, 'wsx serve exit status after SIGTERM');
    }
  }, { timeoutMs: 40000 });

  await step('without --tls-port the port is TLS only', async () => {
    const srv = await startServe(tlsArgs(certs, 'server'));
    try {
      check(srv.listening.https && !srv.listening.http, 'one listening line, https', srv.stdout.join(' | '));
      eq((await get(`https://127.0.0.1:${srv.port}/healthz`, { ca })).status, 200, 'GET https://…/healthz');
      const c = await chat(`wss://127.0.0.1:${srv.port}/ws`, { ca });
      eq(c.welcome.type, 'welcome', 'wss chat client welcomed');
      c.p.ws.close(1000);
      await c.p.waitClose();
      const wrong = await get(`http://127.0.0.1:${srv.port}/healthz`, { ms: 3000 }).then((r) => `HTTP ${r.status}`, (e) => e);
      check(wrong instanceof Error, 'plain http gets no answer', String(wrong));
    } finally {
      eq((await srv.stop('SIGTERM')).code, 0, 'wsx serve exit status after SIGTERM');
    }
  });

  await step('--tls-port without --tls-cert is a usage error', async () => {
    const r = await startServe(['--tls-port', '0']).then(() => null, (e) => e);
    check(r && /exited before listening \(code 2/.test(r.message) && /--tls-port needs --tls-cert/.test(r.message),
      'wsx serve --tls-port alone: status 2, "--tls-port needs --tls-cert"', r && r.message);
  });
  await step('--tls-handshake-timeout: a usage error without --tls-cert, and with 0', async () => {
    for (const [args, text] of [
      [['--tls-handshake-timeout', '500'], '--tls-handshake-timeout needs --tls-cert'],
      [['--tls-handshake-timeout', '0'], "bad --tls-handshake-timeout '0' (milliseconds, above 0)"],
    ]) {
      const r = await startServe(args).then(() => null, (e) => e);
      check(r && /exited before listening \(code 2/.test(r.message) && r.message.includes(text),
        `wsx serve ${args.join(' ')}: status 2, "${text}"`, r && r.message);
    }
  });
  note('done');
}, { timeoutMs: 90000 });
