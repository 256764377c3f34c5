import { parseArgs } from 'node:util';
import { request } from 'undici';
import { createLogger } from '../../src/log/logger';
import { runLoad, startStack } from './stack';

// `npm run example:compare [-- --no-reference] [--requests N] [--keep]`: orders v1, a copy of v1
// and v2 behind the sidecar; a bounded load through it; then what the comparison found, as the
// report page at /mirror/compare shows it. --keep leaves it running for the page.

const USAGE = `npm run example:compare [-- --no-reference] [--requests 600] [--keep] [--port 10060] [--admin-port 10061]
  --no-reference   no copy of v1: the timestamp and the request id are named as noise by rules
  --requests N     requests the load sends (default 600, at most 100000)
  --keep           leave everything running after the load, until Ctrl-C
`;

/** The report's parts the summary prints (see /mirror/compare?format=json). */
interface Report {
  policies: Array<{
    name: string;
    outcomes: Record<string, number>;
    endpoints: Array<{ name: string; total: number; fields: Array<{ path: string; diffs: number; noise: number; verdict: string; reason?: string }> }>;
  }>;
}

const out = (text: string): void => void process.stdout.write(`${text}\n`);

async function report(adminUrl: string): Promise<Report> {
  const res = await request(`${adminUrl}/mirror/compare?format=json`);
  return (await res.body.json()) as Report;
}

/** Waits (at most 20 s) until every request has its outcome: the comparisons finish after the client's answers. */
async function settled(adminUrl: string, requests: number): Promise<Report> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await report(adminUrl);
    const outcomes = r.policies[0]?.outcomes ?? {};
    const done = Object.values(outcomes).reduce((a, b) => a + b, 0);
    if (done >= requests || Date.now() > deadline) return r;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function summary(r: Report): string[] {
  const lines: string[] = [];
  for (const p of r.policies) {
    const o = p.outcomes;
    lines.push(`policy ${p.name}: ${Object.entries(o).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    for (const e of p.endpoints) {
      lines.push(`  ${e.name} (${e.total} compared)`);
      for (const f of e.fields) lines.push(`    ${f.verdict === 'diff' ? 'DIFF ' : 'noise'}  ${f.path}  raw ${f.diffs}, noise ${f.noise}${f.reason ? ` (${f.reason})` : ''}`);
    }
  }
  return lines;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'no-reference': { type: 'boolean', default: false },
      requests: { type: 'string', default: '600' },
      keep: { type: 'boolean', default: false },
      port: { type: 'string' },
      'admin-port': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return void process.stdout.write(USAGE);
  const requests = Number(values.requests);
  if (!Number.isInteger(requests) || requests < 1 || requests > 100_000) throw new Error(`--requests must be 1 to 100000; got "${values.requests}"`);
  const stack = await startStack({
    reference: !values['no-reference'],
    proxyPort: values.port === undefined ? 10060 : Number(values.port),
    adminPort: values['admin-port'] === undefined ? 10061 : Number(values['admin-port']),
    logger: createLogger('warn'),
  });
  try {
    out(`sidecar ${stack.url} (config ${stack.configFile}), admin ${stack.adminUrl}`);
    const load = await runLoad(stack.url, requests, 8);
    out(`sent ${load.sent} requests; the client got ${Object.entries(load.statuses).map(([s, n]) => `${n} × ${s}`).join(', ')} (all from v1)`);
    for (const line of summary(await settled(stack.adminUrl, requests))) out(line);
    out(`report page: ${stack.adminUrl}/mirror/compare`);
    if (values.keep) {
      out('running until Ctrl-C');
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
  } finally {
    await stack.stop();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    process.exitCode = 1;
  });
}
