// The wsx client (wsx_client_test) against `wsx echo`: the scripted conversation, and
// reconnection after the server is killed (SIGKILL) and restarted on the same port.
import { run, step, check, eq, note, sleep, startWsx, runProgram, WSX_CLIENT_TEST } from './lib.mjs';

run('c_client_echo', async () => {
  await step('conversation with close codes 1000 and 4000', async () => {
    const srv = await startWsx([]);
    try {
      for (const [code, small] of [[1000, false], [4000, true]]) {
        const args = ['--timeout', '40', ...(small ? ['--small'] : []), srv.url, String(code)];
        const r = await runProgram(WSX_CLIENT_TEST, args, { timeoutMs: 45000 });
        eq(r.code, 0, `wsx_client_test ${args.join(' ')} exit status`);
      }
      const st = await srv.stop('SIGTERM');
      eq(st.code, 0, 'wsx echo exit status after SIGTERM');
    } finally {
      await srv.stop('SIGKILL');
    }
  }, { timeoutMs: 50000 });

  await step('reconnect after wsx echo is killed and restarted on the same port', async () => {
    let srv = await startWsx([]);
    const port = srv.port;
    let restarted = null;
    try {
      const r = await runProgram(WSX_CLIENT_TEST, ['--timeout', '20', '--reconnect', srv.url], {
        timeoutMs: 25000,
        onLine: (line) => {
          if (!line.startsWith('READY') || restarted) return;
          restarted = (async () => {
            const k = await srv.stop('SIGKILL');
            note(`wsx echo killed (${k.signal}); restarting in 400 ms on port ${port}`);
            await sleep(400);
            srv = await startWsx([], { port });
          })();
        },
      });
      eq(r.code, 0, 'wsx_client_test --reconnect exit status');
      check(restarted !== null, 'the client reported READY before the restart');
    } finally {
      if (restarted) await restarted.catch((err) => check(false, 'restart on the same port', err.message));
      await srv.stop('SIGKILL');
    }
  }, { timeoutMs: 30000 });
}, { timeoutMs: 90000, needs: ['WSX_BIN', 'WSX_CLIENT_TEST'] });
