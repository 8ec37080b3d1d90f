// The public examples run as tests: examples/echo_server.c answers the ws client and
// examples/client.c, examples/client.c talks to `wsx echo`, and the echo server stops
// gracefully on SIGTERM.
// Environment: WSX_EXAMPLE_ECHO_SERVER, WSX_EXAMPLE_CLIENT (binaries), WSX_BIN.
import { run, step, check, eq, within, startProgram, startWsx, connect, runProgram } from './lib.mjs';

const ECHO = process.env.WSX_EXAMPLE_ECHO_SERVER;
const CLIENT = process.env.WSX_EXAMPLE_CLIENT;
const ROUTES = process.env.WSX_EXAMPLE_ROUTES;

run('examples', async () => {
  await step('example_echo_server with the ws client and example_client', async () => {
    const srv = await startProgram([ECHO, '0'], /^listening on port (\d+)\s*$/, { tag: 'example_echo_server' });
    try {
      const p = await connect(srv.url);
      await p.echo(Buffer.from('hello example'), false, 'ws text through example_echo_server');
      await p.echo(Buffer.from([0, 1, 2, 255]), true, 'ws binary through example_echo_server');
      p.ws.close(1000, 'bye');
      eq((await p.waitClose()).code, 1000, 'close echoed by example_echo_server');

      const r = await runProgram(CLIENT, [srv.url, 'hi from example_client']);
      eq(r.code, 0, 'example_client exit status');
      check(r.stdout.includes('received: hi from example_client'), 'example_client printed the echo',
        r.stdout.join(' | '));

      const q = await connect(srv.url);
      srv.proc.kill('SIGTERM');
      eq((await q.waitClose(5000)).code, 1001, 'open client gets 1001 when the example stops');
      const x = await within(srv.proc.exited, 5000, 'example_echo_server exit');
      eq(x.code, 0, 'example_echo_server exit status after SIGTERM');
      check(srv.stdout.some((l) => /^closed 1000 bye/.test(l)), 'example_echo_server printed the close',
        srv.stdout.join(' | '));
    } finally {
      await srv.stop('SIGKILL');
    }
  });

  await step('example_client against wsx echo', async () => {
    const srv = await startWsx([]);
    try {
      const r = await runProgram(CLIENT, [srv.url]);
      eq(r.code, 0, 'example_client exit status');
      check(r.stdout.includes('received: hello'), 'example_client printed the echo of "hello"');
      const r2 = await runProgram(CLIENT, ['ws://127.0.0.1:1/']);
      check(r2.code !== 0, `example_client against a closed port fails (status ${r2.code})`);
    } finally {
      await srv.stop('SIGKILL');
    }
  });

  if (ROUTES) await step('example_routes: HTTP routes and two WebSocket paths', async () => {
    const srv = await startProgram([ROUTES, '0'], /^listening on port (\d+)\s*$/, { tag: 'example_routes' });
    const base = `http://127.0.0.1:${srv.port}`;
    try {
      let r = await fetch(`${base}/hello`);
      eq(r.status, 200, 'GET /hello -> status');
      check((await r.text()).startsWith('hello 127.0.0.1:'), 'GET /hello names the client');
      r = await fetch(`${base}/echo`, { method: 'POST', body: 'some body' });
      eq(await r.text(), 'some body', 'POST /echo -> the body back');
      r = await fetch(`${base}/echo`);
      eq(r.status, 405, 'GET /echo -> status');
      eq(r.headers.get('allow'), 'POST', 'GET /echo -> Allow');
      r = await fetch(`${base}/echo`, { method: 'POST', body: 'x'.repeat(1025) });
      eq(r.status, 413, 'POST /echo of 1025 bytes -> status');
      r = await fetch(`${base}/files/a/b.txt`);
      eq(await r.text(), 'a/b.txt', 'GET /files/a/b.txt (prefix route) -> the name');
      eq((await fetch(`${base}/nothing`)).status, 404, 'GET /nothing -> status');
      const e = await connect(`ws://127.0.0.1:${srv.port}/echo-ws`);
      await e.echo(Buffer.from('quiet please'), false, 'ws /echo-ws');
      const s = await connect(`ws://127.0.0.1:${srv.port}/shout`);
      s.ws.send('quiet please');
      eq((await s.next()).data.toString(), 'QUIET PLEASE', 'ws /shout answers in capitals');
      srv.proc.kill('SIGTERM');
      eq((await e.waitClose(5000)).code, 1001, 'ws /echo-ws gets 1001 when the example stops');
      const x = await within(srv.proc.exited, 5000, 'example_routes exit');
      eq(x.code, 0, 'example_routes exit status after SIGTERM');
    } finally {
      await srv.stop('SIGKILL');
    }
  });
}, { timeoutMs: 60000, needs: ['WSX_BIN', 'WSX_EXAMPLE_ECHO_SERVER', 'WSX_EXAMPLE_CLIENT'] });
