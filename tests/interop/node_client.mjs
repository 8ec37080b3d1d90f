// The npm ws client against `wsx echo`: message sizes in text and binary, fragmented messages
// (with control frames between fragments and UTF-8 split across fragments), ping/pong, every
// valid close code echoed by the server, a close without a code, the server closing on SIGTERM
// (1001), keepalive pings answered by ws, and many clients at once.
import {
  run, step, check, eq, note, sleep, startWsx, connect, SIZES, textPayload, binaryPayload,
  firstDifference, within,
} from './lib.mjs';

const CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
  3000, 3999, 4000, 4999];

run('node_client', async () => {
  const srv = await startWsx([]);
  const url = srv.url;

  await step('text and binary messages of every size', async () => {
    const p = await connect(url);
    for (const isBinary of [false, true]) {
      for (const size of SIZES) {
        const data = isBinary ? binaryPayload(size, size) : textPayload(size, size);
        await p.echo(data, isBinary, `${isBinary ? 'binary' : 'text'} ${size} bytes`);
      }
    }
    p.ws.close(1000);
    eq((await p.waitClose()).code, 1000, 'close after the sizes');
  }, { timeoutMs: 40000 });

  await step('fragmented messages', async () => {
    const p = await connect(url);
    const ws = p.ws;
    // "héllo wörld €": the é is split between the first two fragments, the € between the
    // last two; a ping travels between fragments (RFC 6455 5.4).
    const text = Buffer.from('héllo wörld €', 'utf8');
    const cuts = [2, 9, text.length - 1];
    ws.send(text.subarray(0, cuts[0]), { binary: false, fin: false });
    ws.send(text.subarray(cuts[0], cuts[1]), { binary: false, fin: false });
    ws.ping(Buffer.from('between fragments'));
    ws.send(text.subarray(cuts[1], cuts[2]), { binary: false, fin: false });
    ws.send(text.subarray(cuts[2]), { binary: false, fin: true });
    let m = await p.next();
    check(!m.isBinary && m.data.equals(text), 'text in 4 fragments, UTF-8 split across them, echoed whole',
      `got ${m.isBinary ? 'binary' : 'text'} "${m.data}"`);
    const pong = await p.nextPong();
    eq(pong.toString(), 'between fragments', 'pong for a ping sent between fragments');

    const bin = binaryPayload(100 * 1000, 5);
    for (let i = 0; i < 100; i++) {
      ws.send(bin.subarray(i * 1000, (i + 1) * 1000), { binary: true, fin: i === 99 });
    }
    m = await p.next();
    check(m.isBinary && m.data.equals(bin), 'binary in 100 fragments echoed whole',
      `got ${m.data.length} bytes, first difference at ${firstDifference(m.data, bin)}`);

    // Empty fragments, first and last.
    ws.send(Buffer.alloc(0), { binary: true, fin: false });
    ws.send(Buffer.from([1, 2, 3]), { binary: true, fin: false });
    ws.send(Buffer.alloc(0), { binary: true, fin: true });
    m = await p.next();
    check(m.isBinary && m.data.equals(Buffer.from([1, 2, 3])), 'empty first and last fragments');

    const big = textPayload(3 * (1 << 20) + 17, 3);
    const cut = [0, 1 << 20, 2 << 20, big.length];
    for (let i = 0; i < 3; i++) {
      ws.send(big.subarray(cut[i], cut[i + 1]), { binary: false, fin: i === 2 });
    }
    m = await p.next(20000);
    check(!m.isBinary && m.data.equals(big), 'text of 3 MiB in three 1 MiB fragments echoed whole',
      `got ${m.data.length} bytes`);
    ws.close(1000);
    await p.waitClose();
  }, { timeoutMs: 30000 });

  await step('ping and pong', async () => {
    const p = await connect(url);
    for (const payload of [Buffer.alloc(0), Buffer.from('hello ping'), binaryPayload(125, 9)]) {
      p.ws.ping(payload);
      const pong = await p.nextPong();
      check(pong.equals(payload), `pong carries the ${payload.length}-byte ping payload`,
        `got ${pong.length} bytes`);
    }
    await p.echo(Buffer.from('still talking after pings'), false, 'message after pings');
    p.ws.close(1000);
    await p.waitClose();
  });

  await step('close codes echoed by the server', async () => {
    for (const code of CLOSE_CODES) {
      const p = await connect(url);
      const t0 = Date.now();
      p.ws.close(code, `reason ${code}`);
      const c = await p.waitClose(8000);
      check(c.code === code, `client close ${code} echoed by the server's close frame`,
        `got ${c.code} "${c.reason}"`);
      if (Date.now() - t0 > 3000) check(false, `close ${code} took ${Date.now() - t0} ms`);
    }
    const p = await connect(url);
    p.ws.close();
    const c = await p.waitClose(8000);
    eq(c.code, 1005, 'a close frame without a code is answered without one (ws reports 1005)');
  }, { timeoutMs: 60000 });

  await step('many clients at once', async () => {
    const peers = await Promise.all(Array.from({ length: 20 }, () => connect(url)));
    await Promise.all(peers.map(async (p, i) => {
      for (let k = 0; k < 5; k++) {
        const data = binaryPayload(1000 * i + k, i * 10 + k);
        p.ws.send(data);
        const m = await p.next();
        if (!m.data.equals(data)) check(false, `client ${i} message ${k} echo differs`);
      }
    }));
    check(true, '20 clients x 5 messages echoed to the right client');
    for (const p of peers) p.ws.close(1000);
    await Promise.all(peers.map((p) => p.waitClose()));
  });

  const st = await srv.stop('SIGTERM');
  eq(st.code, 0, 'first server exits 0 on SIGTERM with no clients');

  await step('server closes on SIGTERM with 1001', async () => {
    const s2 = await startWsx([]);
    try {
      const p = await connect(s2.url);
      await p.echo(Buffer.from('before shutdown'), false, 'message before shutdown');
      const t0 = Date.now();
      s2.proc.kill('SIGTERM');
      const c = await p.waitClose(8000);
      eq(c.code, 1001, 'client gets close code 1001 from a shutting-down server');
      eq(c.reason, 'server shutting down', 'close reason');
      const r = await within(s2.proc.exited, 8000, 'server exit after SIGTERM');
      eq(r.code, 0, 'server exit status after SIGTERM');
      check(Date.now() - t0 < 5000, 'shutdown completes well before the shutdown timeout',
        `${Date.now() - t0} ms`);
    } finally {
      await s2.stop('SIGKILL');
    }
  });

  await step('keepalive pings answered by ws keep the connection open', async () => {
    const s3 = await startWsx(['--ping-interval', '300', '--pong-timeout', '300']);
    try {
      const p = await connect(s3.url);
      await sleep(2000);
      check(p.open, 'connection open after 2 s of server pings', p.closeInfo && JSON.stringify(p.closeInfo));
      check(p.pings.length >= 3, `server pinged (${p.pings.length} pings in 2 s, interval 300 ms)`);
      await p.echo(Buffer.from('after 2 s of pings'), false, 'message after keepalive');
      p.ws.close(1000);
      await p.waitClose();
    } finally {
      await s3.stop('SIGKILL');
    }
  });
  note('done');
}, { timeoutMs: 90000 });
