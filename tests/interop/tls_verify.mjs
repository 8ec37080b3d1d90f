// The wsx client checks the server's certificate (certificates made at test time by certs.sh):
// `wsx cat` and wsx_client_test refuse a certificate from an unknown CA and one for another
// name, each with a message that says why; with --insecure both connect (and `wsx cat`
// prints its WARNING line on stderr); a CA file that cannot be read is reported.
import {
  run, step, check, eq, note, startWsx, runProgram, makeCerts, tlsArgs, WSX_BIN, WSX_CLIENT_TEST,
} from './lib.mjs';

const UNKNOWN_CA = 'certificate verify failed: unable to get local issuer certificate';

// `wsx cat ARGS` with one line on stdin: {code, stdout, stderr, err (stderr joined)}.
async function cat(args, input = 'hello over tls\n') {
  const r = await runProgram(WSX_BIN, ['cat', ...args], { timeoutMs: 15000, input });
  return { ...r, err: r.stderr.join('\n') };
}

run('tls_verify', async () => {
  const certs = makeCerts();
  const ca = certs.file('ca.pem');
  const rogue = await startWsx(tlsArgs(certs, 'rogue'), { tag: 'rogue' });
  const other = await startWsx(tlsArgs(certs, 'other'), { tag: 'other.test' });
  const good = await startWsx(tlsArgs(certs, 'server'), { tag: 'good' });

  await step('a certificate from an unknown CA is refused', async () => {
    for (const extra of [['--cacert', ca], []]) {
      const label = extra.length ? 'with --cacert (test CA)' : 'with the system CAs';
      const r = await cat([...extra, rogue.url]);
      eq(r.code, 1, `wsx cat ${label}: exit status`);
      check(r.err.includes(UNKNOWN_CA), `wsx cat ${label}: message says "${UNKNOWN_CA}"`, r.err);
      eq(r.stdout.length, 0, `wsx cat ${label}: nothing printed on stdout`);
    }
    const t = await runProgram(WSX_CLIENT_TEST,
      ['--timeout', '10', '--cacert', ca, '--expect-error', UNKNOWN_CA, rogue.url], { timeoutMs: 15000 });
    eq(t.code, 0, 'wsx_client_test --expect-error (unknown CA) exit status');
    // The right server with the wrong CA file: the same refusal.
    const w = await cat(['--cacert', certs.file('rogue-ca.pem'), good.url]);
    check(w.code === 1 && w.err.includes(UNKNOWN_CA), 'a CA file that did not sign the certificate: refused', w.err);
    // The server saw the client's refusal as a failed handshake.
    const line = await rogue.waitStderr(/TLS/, 3000).catch(() => null);
    check(line, 'the server logged the failed handshake', 'no TLS line');
  });

  await step('a certificate for another name is refused (hostname mismatch)', async () => {
    for (const url of [other.url, `wss://localhost:${other.port}/`]) {
      const r = await cat(['--cacert', ca, url]);
      eq(r.code, 1, `wsx cat ${url}: exit status`);
      check(/mismatch/.test(r.err), `wsx cat ${url}: message mentions the mismatch`, r.err);
      check(r.err.includes('other.test'), `wsx cat ${url}: message names the certificate's name other.test`, r.err);
      note(r.err);
    }
    const t = await runProgram(WSX_CLIENT_TEST,
      ['--timeout', '10', '--cacert', ca, '--expect-error', 'mismatch', other.url], { timeoutMs: 15000 });
    eq(t.code, 0, 'wsx_client_test --expect-error mismatch exit status');
  });

  await step('--insecure connects to both, with a WARNING on stderr', async () => {
    for (const [srv, what] of [[rogue, 'unknown CA'], [other, 'other name']]) {
      for (const flag of ['--insecure', '-k']) {
        const r = await cat([flag, srv.url], `hello ${what}\n`);
        eq(r.code, 0, `wsx cat ${flag} (${what}): exit status`);
        check(r.stdout.includes(`hello ${what}`), `wsx cat ${flag} (${what}): the echo is printed`, JSON.stringify(r.stdout));
        check(/^wsx cat: WARNING: --insecure/m.test(r.err), `wsx cat ${flag} (${what}): WARNING line on stderr`, r.err);
      }
    }
    const t = await runProgram(WSX_CLIENT_TEST, ['--timeout', '30', '--insecure', '--small', other.url, '3001'],
      { timeoutMs: 35000 });
    eq(t.code, 0, 'wsx_client_test --insecure conversation with the other.test server');
    // No warning without --insecure, and no warning for ws:// even with it.
    const ok = await cat(['--cacert', ca, good.url]);
    check(ok.code === 0 && ok.stdout.includes('hello over tls') && !/WARNING/.test(ok.err),
      'wsx cat --cacert against the right certificate: echo, no warning', ok.err);
  });

  await step('wss:// to a plain ws:// server fails at once with a TLS message', async () => {
    const plain = await startWsx([], { tag: 'plain' });
    try {
      const t0 = Date.now();
      const r = await cat(['--cacert', ca, `wss://127.0.0.1:${plain.port}/`]);
      eq(r.code, 1, 'wsx cat wss:// to a plain server: exit status');
      check(/TLS handshake failed/.test(r.err), 'the message says the TLS handshake failed', r.err);
      check(Date.now() - t0 < 5000, `and it fails promptly (${Date.now() - t0} ms)`);
    } finally {
      await plain.stop('SIGTERM');
    }
  });

  await step('a CA file that cannot be loaded is reported', async () => {
    const r = await cat(['--cacert', certs.file('does-not-exist.pem'), good.url]);
    eq(r.code, 1, 'wsx cat --cacert MISSING: exit status');
    check(r.err.includes('does-not-exist.pem'), 'the message names the file', r.err);
    const t = await runProgram(WSX_CLIENT_TEST, ['--timeout', '10', '--cacert', certs.file('does-not-exist.pem'),
      '--expect-error', 'does-not-exist.pem', good.url], { timeoutMs: 15000 });
    eq(t.code, 0, 'wsx_client_connect: WSX_ETLS and its wsx_error names the file (wsx_client_test exit status)');
  });

  for (const s of [rogue, other, good]) eq((await s.stop('SIGTERM')).code, 0, 'wsx echo exit status after SIGTERM');
}, { timeoutMs: 120000, needs: ['WSX_BIN', 'WSX_CLIENT_TEST'] });
