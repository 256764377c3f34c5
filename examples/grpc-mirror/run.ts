import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';
import { type CallResult, runCalls } from './client';
import { greeterClient } from './greeter';
import { type ProcessName, type Stack, startStack } from './stack';

// `npm run example:grpc [-- --tls] [--keep]`: a Greeter, its mirror and the sidecar on loopback;
// a client makes a unary, a server-streaming and a bidi call through the sidecar, the example
// prints the replies and what the mirror received, and everything stops (--keep: runs on).

const USAGE = `npm run example:grpc [-- --tls] [--keep] [--port 10051] [--admin-port 10052] [--service-port 18091]
  --tls              the sidecar's listener speaks TLS (ALPN h2), certificates made now with openssl
  --keep             leave everything running after the calls, until Ctrl-C
  --port N           the sidecar's listener (default 10051)
  --admin-port N     the sidecar's admin (default 10052)
  --service-port N   the greeter on N, its mirror on N+1 (default 18091)
`;

/** How long the mirror may take to report the three calls after the client has its answers. */
const MIRROR_WAIT_MS = 5000;
/** Replies to SayHello, SayHelloStream (count 3) and Chat (three names). */
const EXPECTED_REPLIES = [1, 3, 3];
/** Request messages the mirror receives: one for each of the first two calls, three for Chat. */
const MIRRORED_MESSAGES = 5;

interface Options {
  tls: boolean;
  keep: boolean;
  ports: { proxy?: number; admin?: number; service?: number };
}

function port(value: string | undefined, flag: string, span = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n + span - 1 > 65535) throw new Error(`${flag} must be a port number${span > 1 ? ` below ${65536 - span + 1}` : ''}; got "${value}"`);
  return n;
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      tls: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      port: { type: 'string' },
      'admin-port': { type: 'string' },
      'service-port': { type: 'string' },
    },
  });
  return {
    tls: values.tls,
    keep: values.keep,
    ports: { proxy: port(values.port, '--port'), admin: port(values['admin-port'], '--admin-port'), service: port(values['service-port'], '--service-port', 2) },
  };
}

const out = (text: string): void => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);

/** What the mirror logged: `received <path> from <authority>: name "<name>"`, one per request message. */
interface MirrorSeen {
  path: string;
  authority: string;
  name: string;
}

function printCall(r: CallResult): void {
  out(`  ${r.call} → ${r.code === 0 ? 'OK' : `status ${r.code} ${r.details}`}`);
  for (const reply of r.replies) out(`      ${JSON.stringify(reply.message)} from ${reply.server} (it saw :authority ${reply.authority})`);
}

/** The sidecar's shadow counters that are not zero (admin /stats, Envoy's text form). */
function shadowStats(adminPort: number): Promise<string[]> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: adminPort, path: '/stats?filter=shadow', timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d.slice(0, 100_000)));
      res.on('end', () => resolve(body.split('\n').filter((l) => /: [1-9]/.test(l) && !l.includes('rq_time'))));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve([]));
  });
}

function addresses(stack: Stack): string {
  const p = stack.ports;
  const proto = 'examples/grpc-mirror/greeter.proto';
  const grpcurl = stack.tls
    ? `grpcurl -cacert ${stack.caFile} -authority localhost:${p.proxy} -import-path examples/grpc-mirror -proto greeter.proto -d '{"name":"you"}' localhost:${p.proxy} sidemirror.example.v1.Greeter/SayHello`
    : `grpcurl -plaintext -authority localhost:${p.proxy} -import-path examples/grpc-mirror -proto greeter.proto -d '{"name":"you"}' 127.0.0.1:${p.proxy} sidemirror.example.v1.Greeter/SayHello`;
  return `
Running (${stack.tls ? 'TLS, ALPN h2' : 'h2c'}):
  sidecar         ${stack.tls ? 'https' : 'http'}://127.0.0.1:${p.proxy}  (gRPC${stack.tls ? ' over TLS; certificate for localhost, CA ' + stack.caFile : ', h2c prior knowledge, and HTTP/1.1'})
  sidecar admin   http://127.0.0.1:${p.admin}  (curl -s 'http://127.0.0.1:${p.admin}/stats?filter=shadow')
  greeter         127.0.0.1:${p.greeter}  (h2c)
  greeter-mirror  127.0.0.1:${p.mirror}  (h2c; logs every message it receives)
  config          ${stack.configFile}
  service         ${proto}
Try, with grpcurl:
  ${grpcurl}
Ctrl-C stops everything.
`;
}

async function main(argv: string[]): Promise<number> {
  let o: Options;
  try {
    o = options(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  // Ctrl-C (or SIGTERM) at any point stops everything: while starting, during the calls, or in --keep.
  const interrupted = new AbortController();
  const interrupt = (): void => interrupted.abort();
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  const whenInterrupted = new Promise<'interrupted'>((resolve) => interrupted.signal.addEventListener('abort', () => resolve('interrupted'), { once: true }));

  const mirrorSeen: MirrorSeen[] = [];
  let mirrorEnded = 0;
  const onLine = (name: ProcessName, line: string): void => {
    out(`${name.padEnd(15)}| ${line}`);
    if (name !== 'greeter-mirror') return;
    const m = /^received (\S+) from (\S+): name (".*")$/.exec(line);
    if (m) mirrorSeen.push({ path: m[1] as string, authority: m[2] as string, name: JSON.parse(m[3] as string) as string });
    if (line.startsWith('ended ')) mirrorEnded++;
  };

  out(`Starting the greeter, its mirror and the sidecar (${o.tls ? 'TLS listener, ALPN h2' : 'h2c'}) on 127.0.0.1…`);
  let stack: Stack;
  try {
    stack = await startStack({ tls: o.tls, ports: o.ports, onLine, signal: interrupted.signal });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return interrupted.signal.aborted ? 130 : 1;
  }
  const p = stack.ports;
  out(`sidecar: ${stack.sidecarCommand}`);
  const authority = `localhost:${p.proxy}`;
  const client = greeterClient(p.proxy, { authority, tls: stack.caFile ? { ca: fs.readFileSync(stack.caFile), servername: 'localhost' } : undefined });
  let code = 0;
  try {
    out(`\nClient → ${o.tls ? 'https' : 'http'}://127.0.0.1:${p.proxy} (:authority ${authority}${o.tls ? `, verifying the certificate against the example CA ${stack.caFile}` : ''}):`);
    const work = runCalls(client, printCall);
    const first = await Promise.race([work, whenInterrupted, stack.exited]);
    if (first === 'interrupted') return 130;
    if (!Array.isArray(first)) throw new Error(`${first.name} exited (code ${first.code}) during the calls`);
    const results = first;

    const deadline = Date.now() + MIRROR_WAIT_MS;
    while (mirrorEnded < results.length && Date.now() < deadline && !interrupted.signal.aborted) await new Promise((r) => setTimeout(r, 50));
    out(`\nWhat the mirror (greeter-mirror) received, through the sidecar's request_mirror_policies:`);
    for (const s of mirrorSeen) out(`  ${s.path}  :authority ${s.authority}  name ${JSON.stringify(s.name)}`);
    if (mirrorSeen.length === 0) out('  nothing');
    const stats = await shadowStats(p.admin);
    if (stats.length > 0) out(`\nThe sidecar's shadow counters (admin /stats?filter=shadow):\n${stats.map((l) => `  ${l}`).join('\n')}`);

    const callsOk = results.every((r, i) => r.code === 0 && r.replies.length === EXPECTED_REPLIES[i] && r.replies.every((x) => x.server === 'greeter'));
    const shadowAuthority = `localhost-shadow:${p.proxy}`;
    const mirrorOk = mirrorSeen.length === MIRRORED_MESSAGES && mirrorSeen.every((s) => s.authority === shadowAuthority);
    out(`\n${callsOk ? 'OK' : 'FAILED'}: the three calls ${callsOk ? 'were answered by the greeter' : 'did not all get the expected replies'}`);
    out(`${mirrorOk ? 'OK' : 'FAILED'}: the mirror ${mirrorOk ? `saw all ${MIRRORED_MESSAGES} request messages, on :authority ${shadowAuthority}` : `saw ${mirrorSeen.length} of ${MIRRORED_MESSAGES} request messages (expected :authority ${shadowAuthority})`}`);
    code = callsOk && mirrorOk ? 0 : 1;

    if (o.keep && !interrupted.signal.aborted) {
      out(addresses(stack));
      const ended = await Promise.race([whenInterrupted, stack.exited]);
      // Ctrl-C in a terminal reaches the children too; one may exit before this process sees its SIGINT.
      if (ended !== 'interrupted') await new Promise((r) => setTimeout(r, 200));
      if (ended !== 'interrupted' && !interrupted.signal.aborted) {
        process.stderr.write(`${ended.name} exited (code ${ended.code}); stopping the rest\n`);
        code = 1;
      }
    }
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    code = 1;
  } finally {
    client.close();
    out('Stopping…');
    await stack.stop();
    out('Stopped: the greeter, its mirror and the sidecar have exited.');
  }
  return code;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
