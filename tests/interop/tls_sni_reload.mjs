// TLS certificate selection and renewal in `wsx echo` (certificates made at test time by
// certs.sh):
//  - SNI: with two --tls-cert/--tls-key pairs, a client asking for other.test gets the
//    other.test certificate (node tls and `openssl s_client`), any other name or no SNI the
//    first pair's;
//  - SIGHUP: the certificate files are replaced and the server is told to reload; new
//    connections see the new certificate while a connection opened before keeps echoing; a
//    reload from broken files is refused and the last good certificate stays in use.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import {
  run, step, check, eq, note, sleep, startWsx, connect, binaryPayload, makeCerts, tlsArgs, peerCertificate,
} from './lib.mjs';

// The subject line `openssl s_client` prints for 127.0.0.1:port (with -servername name).
function sClientSubject(port, name) {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-brief'];
  if (name) args.push('-servername', name); else args.push('-noservername');
  const r = spawnSync('openssl', args, { input: '', encoding: 'utf8', timeout: 10000 });
  const text = `${r.stdout}\n${r.stderr}`;
  const m = /Peer certificate: (.*)|subject=(.*)/.exec(text);
  return m ? (m[1] || m[2]).trim() : `no subject in: ${text.slice(0, 400)}`;
}

// Replaces dst with the contents of src through a rename, as certificate renewal tools do.
function replaceFile(src, dst) {
  fs.copyFileSync(src, `${dst}.tmp`);
  fs.renameSync(`${dst}.tmp`, dst);
}

run('tls_sni_reload', async () => {
  const certs = makeCerts();
  const ca = certs.pem('ca.pem');

  await step('SNI picks the certificate', async () => {
    const srv = await startWsx(tlsArgs(certs, 'server', 'other'));
    try {
      const none = await peerCertificate(srv.port);
      eq(none.subjectCN, 'wsx-test-server-A', 'no SNI: the first certificate');
      const oth = await peerCertificate(srv.port, { servername: 'other.test' });
      eq(oth.subjectCN, 'other.test', 'SNI other.test: the other.test certificate');
      eq(oth.san, 'DNS:other.test', 'its names');
      const loc = await peerCertificate(srv.port, { servername: 'localhost' });
      eq(loc.subjectCN, 'wsx-test-server-A', 'SNI localhost: the first certificate');
      const unk = await peerCertificate(srv.port, { servername: 'nobody.example' });
      eq(unk.subjectCN, 'wsx-test-server-A', 'SNI for a name no certificate has: the first (default) one');

      const s1 = sClientSubject(srv.port, 'other.test');
      check(/CN\s*=\s*other\.test/.test(s1), 'openssl s_client -servername other.test sees CN = other.test', s1);
      const s2 = sClientSubject(srv.port, null);
      check(/CN\s*=\s*wsx-test-server-A/.test(s2), 'openssl s_client -noservername sees CN = wsx-test-server-A', s2);

      // A verifying ws client that asks for other.test accepts the other.test certificate.
      const p = await connect(srv.url, { ca, servername: 'other.test' });
      await p.echo(binaryPayload(5000, 1), true, 'wss with SNI other.test, verified');
      p.ws.close(1000);
      await p.waitClose();
    } finally {
      eq((await srv.stop('SIGTERM')).code, 0, 'wsx echo exit status after SIGTERM');
    }
  });

  await step('SIGHUP reloads replaced certificate files; open connections are not disturbed', async () => {
    const live = { cert: certs.file('live.pem'), key: certs.file('live.key') };
    fs.copyFileSync(certs.file('server.pem'), live.cert);
    fs.copyFileSync(certs.file('server.key'), live.key);
    const srv = await startWsx(['--tls-cert', live.cert, '--tls-key', live.key]);
    try {
      const a = await peerCertificate(srv.port);
      eq(a.subjectCN, 'wsx-test-server-A', 'before the reload: certificate A');
      const serialA = a.serial;
      note(`A: CN ${a.subjectCN}, serial ${a.serial}`);

      const old = await connect(srv.url, { ca });
      await old.echo(Buffer.from('before the reload'), false, 'connection opened with A echoes');
      eq(old.ws._socket.getPeerCertificate().subject.CN, 'wsx-test-server-A', 'the old connection was made with A');

      replaceFile(certs.file('server-b.pem'), live.cert);
      replaceFile(certs.file('server-b.key'), live.key);
      let from = srv.stderr.length;
      srv.proc.kill('SIGHUP');
      const line = await srv.waitStderr(/SIGHUP/, 5000, from);
      check(/certificates reloaded/.test(line), 'the server logs "certificates reloaded"', line);

      const b = await peerCertificate(srv.port);
      eq(b.subjectCN, 'wsx-test-server-B', 'after the reload: a new connection sees certificate B');
      check(b.serial !== serialA, `B has another serial (${b.serial}, A had ${serialA})`);
      check(/1002$/i.test(b.serial), `B's serial is 0x1002 (${b.serial})`);

      await old.echo(binaryPayload(200000, 7), true, 'the connection opened before the reload still echoes 200000 bytes');
      const fresh = await connect(srv.url, { ca });
      eq(fresh.ws._socket.getPeerCertificate().subject.CN, 'wsx-test-server-B', 'a new verified wss connection uses B');
      await fresh.echo(Buffer.from('after the reload'), false, 'the new connection echoes');

      // Broken files: the reload fails, the server says so and keeps B.
      fs.writeFileSync(live.key, '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');
      from = srv.stderr.length;
      srv.proc.kill('SIGHUP');
      const bad = await srv.waitStderr(/SIGHUP/, 5000, from);
      check(/reload failed, keeping the old certificates/.test(bad), 'a broken key file: the reload is refused', bad);
      await sleep(50);
      eq((await peerCertificate(srv.port)).subjectCN, 'wsx-test-server-B', 'after a failed reload: still B');
      check(srv.running, 'the server is still running after the failed reload');
      await old.echo(Buffer.from('still here'), false, 'the oldest connection still echoes');
      await fresh.echo(Buffer.from('me too'), false, 'the B connection still echoes');
      old.ws.close(1000);
      fresh.ws.close(1000);
      eq((await old.waitClose()).code, 1000, 'the old connection closes normally');
      await fresh.waitClose();
    } finally {
      eq((await srv.stop('SIGTERM')).code, 0, 'wsx echo exit status after SIGTERM');
    }
  });
}, { timeoutMs: 60000 });
