import { parseArgs } from 'node:util';
import { startGreeter } from './greeter';

// One Greeter process: `node service.js --name greeter --port 18091`. The example runs two, the
// primary and the mirror, and prints what each logs. It stops on SIGTERM or SIGINT, and when its
// stdin closes, which is how it notices that the example that started it is gone.

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { name: { type: 'string', default: 'greeter' }, port: { type: 'string', default: '18091' } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port must be a port number; got "${values.port}"`);
  const server = await startGreeter({ name: values.name, port, log: (line) => process.stdout.write(`${line}\n`) });
  process.stdout.write(`listening on 127.0.0.1:${port}\n`);
  const stop = (): void => {
    server.forceShutdown();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdin.once('close', stop);
  process.stdin.resume();
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
