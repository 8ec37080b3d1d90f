// permessage-deflate (RFC 7692): the npm ws client with perMessageDeflate against `wsx echo`,
// which accepts the extension and always answers with server_no_context_takeover.
//
// For a cross product of the client's options (server/client_no_context_takeover,
// server_max_window_bits 8..15, client_max_window_bits bare/9..15; every value at least once)
// the response's Sec-WebSocket-Extensions must be exactly what docs/deflate.md's table says,
// and ws must have agreed the same parameters. Then messages of 0 B .. 1 MiB (16 MiB for a
// few combinations), text and binary, random and repetitive, are echoed byte for byte, with
// threshold 0 so that ws compresses every one of them; the TCP byte counts show that a
// repetitive message travels compressed both ways. Fragmented compressed messages (ws:
// fin:false, compress:true) are echoed whole. server_max_window_bits=8 is declined by wsx (the
// connection then runs uncompressed), and `wsx echo --no-deflate` agrees nothing.
import {
  run, step, check, eq, note, startWsx, connect, randomText, repetitive, binaryPayload,
  firstDifference,
} from './lib.mjs';

const MiB = 1 << 20;
const SIZES = [0, 1, 125, 1024, 64 * 1024, MiB];
// The wire size of an incompressible 16 MiB message compressed with a window of 9..13 bits is
// ~0.21% above 16 MiB: the frame limit must leave room for that (it was once too tight).

// Each value of each option at least once; all four no_context_takeover pairs several times.
// [serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits]
// (undefined: not offered; clientMaxWindowBits undefined/true: offered bare).
const COMBOS = [
  [false, false, undefined, undefined],
  [true, false, 15, true],
  [false, true, 14, 15],
  [true, true, 13, 14],
  [false, false, 12, 13],
  [true, false, 11, 12],
  [false, true, 10, 11],
  [true, true, 9, 10],
  [false, false, 9, 9],
  [true, true, 15, 9],
  [false, true, undefined, 12],
  [true, false, 10, undefined],
];
// Combinations that also get a 16 MiB message of each kind.
const BIG = new Set([0, 7, 8]);

// What docs/deflate.md's negotiation table makes `wsx echo` (server_no_context_takeover
// configured, windows 15) answer to a ws offer; null for "declined".
function expected([snct, cnct, smwb, cmwb]) {
  if (smwb === 8) return null;
  const p = ['permessage-deflate', 'server_no_context_takeover'];
  const params = { server_no_context_takeover: true };
  void snct; // granted whether asked or not: wsx echo configures it
  if (cnct) { p.push('client_no_context_takeover'); params.client_no_context_takeover = true; }
  if (smwb !== undefined) { p.push(`server_max_window_bits=${smwb}`); params.server_max_window_bits = smwb; }
  if (typeof cmwb === 'number' && cmwb < 15) {
    p.push(`client_max_window_bits=${cmwb}`);
    params.client_max_window_bits = cmwb;
  } else if (typeof cmwb === 'number') {
    // Not echoed (it would say nothing); ws then sets its own value for itself.
    params.client_max_window_bits = cmwb;
  }
  return { header: p.join('; '), params };
}

function pmdOptions([snct, cnct, smwb, cmwb]) {
  const o = { threshold: 0 };
  if (snct) o.serverNoContextTakeover = true;
  if (cnct) o.clientNoContextTakeover = true;
  if (smwb !== undefined) o.serverMaxWindowBits = smwb;
  if (cmwb !== undefined) o.clientMaxWindowBits = cmwb;
  return o;
}

const describe = (o) => JSON.stringify(o).replace(/"/g, '');

// Sends data and checks the echo; when the message is repetitive and compression was agreed,
// also that both directions carried far fewer bytes than the message (and, uncompressed, at
// least as many). Returns false when the connection is gone.
async function echo(p, data, isBinary, label, { compressed, compressible, ms = 30000 } = {}) {
  const sock = p.ws._socket;
  const w0 = sock.bytesWritten;
  const r0 = sock.bytesRead;
  p.ws.send(data, { binary: isBinary, compress: true });
  let m;
  try {
    m = await p.next(ms);
  } catch (err) {
    const why = `${err.message}${p.closeInfo ? ` "${p.closeInfo.reason}"` : ''}`;
    check(false, `${label} echoed`, why);
    return false;
  }
  const same = m.isBinary === isBinary && Buffer.compare(m.data, data) === 0;
  const ok = check(same, `${label} echoed byte for byte`,
    `got ${m.isBinary ? 'binary' : 'text'} ${m.data.length} bytes, first difference at ${firstDifference(m.data, data)}`);
  if (compressible && data.length >= 64 * 1024) {
    const sent = sock.bytesWritten - w0;
    const got = sock.bytesRead - r0;
    if (compressed) {
      check(sent < data.length / 10 && got < data.length / 10,
        `${label}: travelled compressed both ways (${sent} B out, ${got} B in)`);
    } else {
      check(sent >= data.length && got >= data.length,
        `${label}: travelled uncompressed (${sent} B out, ${got} B in)`);
    }
  }
  return ok;
}

// The message set on one connection: every size, text and binary, random and repetitive.
// With sizes = [16 MiB] only those (incompressible ones grow by ~0.2% on the wire).
async function messages(p, tag, { compressed, smwb, cmwb, sizes = SIZES }) {
  for (const size of sizes) {
    for (const isBinary of [false, true]) {
      for (const kind of ['repetitive', 'random']) {
        let data;
        if (kind === 'repetitive') data = repetitive(size, size);
        else data = isBinary ? binaryPayload(size, size + 1) : randomText(size, size + 1);
        const label = `${tag}: ${kind} ${isBinary ? 'binary' : 'text'} ${size} B`;
        const alive = await echo(p, data, isBinary, label, {
          compressed, compressible: kind === 'repetitive', ms: size >= 16 * MiB ? 60000 : 20000,
        });
        if (!alive && !p.open) return false;
      }
    }
  }
  if (sizes !== SIZES) return true;
  // Repeats 3000 bytes apart: only a window of 12 bits or more can see them. ws's inflater
  // is sized for the agreed server_max_window_bits and would refuse ("invalid distance too far
  // back") a reference beyond it, so an intact echo that came compressed exactly when the
  // server's window is >= 12 shows that wsx compressed within the window it announced.
  const far = Buffer.concat(Array.from({ length: 32 }, () => binaryPayload(3000, 77)));
  const sock = p.ws._socket;
  const w0 = sock.bytesWritten;
  const r0 = sock.bytesRead;
  if (!(await echo(p, far, true, `${tag}: 96000 B repeating every 3000 B`))) return false;
  if (compressed) {
    const sw = smwb === undefined ? 15 : smwb;
    const cw = typeof cmwb === 'number' ? cmwb : 15;
    const got = sock.bytesRead - r0;
    const sent = sock.bytesWritten - w0;
    check((got < far.length / 10) === (sw >= 12),
      `${tag}: repeats 3000 B apart came ${sw >= 12 ? 'compressed' : 'uncompressed'} (server window ${sw}; ${got} B in)`);
    check((sent < far.length / 10) === (cw >= 12),
      `${tag}: ws compressed them ${cw >= 12 ? 'well' : 'not at all'} (client window ${cw}; ${sent} B out)`);
  }
  return true;
}

// Compressed fragmented messages: ws compresses every fragment (RSV1 on the first).
async function fragments(p, tag) {
  const ws = p.ws;
  const text = Buffer.from('héllo wörld — compressed in fragments €'.repeat(50), 'utf8');
  const cuts = [3, 1001, text.length - 2]; // two of them inside a multi-byte character
  let prev = 0;
  for (const c of [...cuts, text.length]) {
    ws.send(text.subarray(prev, c), { binary: false, fin: c === text.length, compress: true });
    if (prev === 3) ws.ping(Buffer.from('between compressed fragments'));
    prev = c;
  }
  let m = await p.next();
  check(!m.isBinary && m.data.equals(text), `${tag}: text in 4 compressed fragments (UTF-8 split, a ping between) echoed whole`,
    `got ${m.isBinary ? 'binary' : 'text'} ${m.data.length} bytes, first difference at ${firstDifference(m.data, text)}`);
  const pong = await p.nextPong();
  eq(pong.toString(), 'between compressed fragments', `${tag}: pong for a ping between compressed fragments`);

  const bin = Buffer.concat([repetitive(512 * 1024, 3), binaryPayload(512 * 1024, 4)]);
  for (let i = 0; i < 64; i++) {
    ws.send(bin.subarray(i * 16384, (i + 1) * 16384), { binary: true, fin: i === 63, compress: true });
  }
  m = await p.next(20000);
  check(m.isBinary && m.data.equals(bin), `${tag}: 1 MiB binary in 64 compressed fragments echoed whole`,
    `got ${m.data.length} bytes, first difference at ${firstDifference(m.data, bin)}`);

  // An empty first and last fragment around a compressed middle.
  ws.send(Buffer.alloc(0), { binary: true, fin: false, compress: true });
  ws.send(repetitive(3000, 5), { binary: true, fin: false, compress: true });
  ws.send(Buffer.alloc(0), { binary: true, fin: true, compress: true });
  m = await p.next();
  check(m.isBinary && m.data.equals(repetitive(3000, 5)), `${tag}: empty first and last compressed fragments`);
}

run('deflate_node_client', async () => {
  const srv = await startWsx([]);

  for (let i = 0; i < COMBOS.length; i++) {
    const combo = COMBOS[i];
    const opts = pmdOptions(combo);
    const tag = `#${i} ${describe(opts)}`;
    await step(`ws client ${tag}`, async () => {
      const p = await connect(srv.url, { perMessageDeflate: opts });
      try {
        const want = expected(combo);
        eq(p.responseHeaders['sec-websocket-extensions'], want.header, `${tag}: Sec-WebSocket-Extensions`);
        eq(p.ws.extensions, 'permessage-deflate', `${tag}: ws.extensions`);
        const agreed = p.ws._extensions['permessage-deflate'] && p.ws._extensions['permessage-deflate'].params;
        eq(JSON.stringify(agreed), JSON.stringify(want.params), `${tag}: parameters ws agreed to`);
        const how = { compressed: true, smwb: combo[2], cmwb: combo[3] };
        if (!(await messages(p, tag, how))) return;
        await fragments(p, tag);
        if (BIG.has(i) && !(await messages(p, tag, { ...how, sizes: [16 * MiB] }))) return;
        p.ws.close(1000);
        eq((await p.waitClose()).code, 1000, `${tag}: close`);
      } finally {
        p.ws.terminate();
      }
    }, { timeoutMs: BIG.has(i) ? 120000 : 40000 });
  }

  // server_max_window_bits=8 (alone and with other parameters): wsx declines the only offer,
  // so the connection is uncompressed.
  for (const combo of [[false, false, 8, undefined], [true, true, 8, 9]]) {
    const opts = pmdOptions(combo);
    const tag = `declined ${describe(opts)}`;
    await step(`ws client ${tag}`, async () => {
      const p = await connect(srv.url, { perMessageDeflate: opts });
      try {
        eq(p.responseHeaders['sec-websocket-extensions'], undefined, `${tag}: no Sec-WebSocket-Extensions`);
        eq(p.ws.extensions, '', `${tag}: ws.extensions is empty`);
        for (const size of [0, 125, 64 * 1024]) {
          await echo(p, repetitive(size, 1), false, `${tag}: repetitive text ${size} B`, { compressed: false, compressible: true });
          await echo(p, binaryPayload(size, 2), true, `${tag}: random binary ${size} B`, { compressed: false });
        }
        p.ws.close(1000);
        await p.waitClose();
      } finally {
        p.ws.terminate();
      }
    });
  }
  await srv.stop('SIGTERM');

  await step('wsx echo --no-deflate agrees nothing', async () => {
    const s2 = await startWsx(['--no-deflate']);
    const p = await connect(s2.url, { perMessageDeflate: { threshold: 0, serverNoContextTakeover: true } });
    try {
      eq(p.responseHeaders['sec-websocket-extensions'], undefined, '--no-deflate: no Sec-WebSocket-Extensions');
      eq(p.ws.extensions, '', '--no-deflate: ws.extensions is empty');
      await echo(p, repetitive(MiB, 7), false, '--no-deflate: repetitive text 1 MiB', { compressed: false, compressible: true });
      await echo(p, binaryPayload(1000, 8), true, '--no-deflate: binary 1000 B', { compressed: false });
      p.ws.close(1000);
      await p.waitClose();
    } finally {
      p.ws.terminate();
      await s2.stop('SIGTERM');
    }
  });
  note('done');
}, { timeoutMs: 240000 });
