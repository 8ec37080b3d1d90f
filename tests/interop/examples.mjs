// The public examples run as tests: examples/echo_server.c answers the ws client and
// examples/client.c, examples/client.c talks to `wsx echo`, and the echo server stops
// gracefully on SIGTERM.
// Environment: WSX_EXAMPLE_ECHO_SERVER, WSX_EXAMPLE_CLIENT (binaries), WSX_BIN.
import { run, step, check, eq, within, startProgram, startWsx, connect, runProgram } from './lib.mjs';

const ECHO = process.env.WSX_EXAMPLE_ECHO_SERVER;
const CLIENT = process.env.WSX_EXAMPLE_CLIENT;

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
}, { timeoutMs: 60000, needs: ['WSX_BIN', 'WSX_EXAMPLE_ECHO_SERVER', 'WSX_EXAMPLE_CLIENT'] });
