import * as http from 'node:http';
import { type AdminSources, AdminServer } from '../../src/admin/server';
import { silentLogger } from '../../src/log/logger';
import { CompareRegistry } from '../../src/compare/store';
import { compared, diff, patterns, response, settings } from './compare-results';

// A real admin server whose only live part is the comparison report, and a registry filled the
// way the page tests expect: a field that differs, a noise field, a sample with a changed value.

export interface RunningAdmin {
  readonly port: number;
  readonly base: string;
  close(): Promise<void>;
}

export async function startCompareAdmin(compare: AdminSources['compare']): Promise<RunningAdmin> {
  const unused = (): never => {
    throw new Error('not part of this test');
  };
  const sources: AdminSources = {
    stats: { prometheus: unused, prometheusContentType: 'text/plain', text: unused, json: unused, resetCounters: unused },
    runtime: { entries: () => [], layerNames: () => [], modify: unused },
    clustersText: unused,
    clustersJson: unused,
    listeners: async () => [],
    node: { id: 'test', cluster: 'test' },
    startedAt: new Date(),
    version: 'test',
    commandLine: {},
    state: () => 'LIVE',
    configDump: () => ({}),
    quit: () => undefined,
    compare,
  };
  const server = new AdminServer(sources, silentLogger());
  const addr = await server.listen({ host: '127.0.0.1', port: 0 });
  return { port: addr.port, base: `http://127.0.0.1:${addr.port}`, close: () => server.close() };
}

/** The hostile value the page must escape: it arrives in an upstream's header and body. */
export const HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';

/**
 * Policy `shop`, endpoint `GET /cart`: 20 requests; `body.total` differs in 8 (candidate only:
 * a diff), `body.ts` differs in all 20 against candidate and reference (noise), `header.date` is
 * ignored by the config. Policy `search`: a clean run.
 */
export function filledRegistry(): CompareRegistry {
  const reg = new CompareRegistry();
  reg.configure('shop', settings({ configIgnore: patterns('header.date') }));
  reg.configure('search', settings({ hasReference: false }));
  for (let i = 0; i < 20; i++) {
    const differs = i < 8;
    const primaryBody = JSON.stringify({ total: 10, ts: 1000 + i, items: [{ sku: 'a', note: HOSTILE }] });
    const candidateBody = JSON.stringify({ total: differs ? 12 : 10, ts: 2000 + i, items: [{ sku: 'a', note: HOSTILE }] });
    const raw = [diff('body.ts', 'changed', `${1000 + i}`, `${2000 + i}`), diff('header.date', 'changed', 'Mon', 'Tue')];
    if (differs) raw.push(diff('body.total', 'changed', '10', '12'));
    reg.record(
      compared({
        policy: 'shop',
        endpoint: 'GET /cart',
        request: { method: 'GET', path: `/cart?id=${i}`, headers: { host: 'shop', 'x-trace': HOSTILE } },
        primary: response(primaryBody, { headers: { 'content-type': 'application/json', 'x-hostile': HOSTILE }, durationMs: 12 }),
        candidate: response(candidateBody, { headers: { 'content-type': 'application/json', 'x-hostile': HOSTILE }, durationMs: 30 }),
        reference: response(primaryBody, { durationMs: 13 }),
        raw,
        noise: [diff('body.ts', 'changed', `${1000 + i}`, `${3000 + i}`)],
      }),
    );
  }
  for (let i = 0; i < 5; i++) reg.record(compared({ policy: 'search', endpoint: 'GET /q', reference: null }));
  reg.count('shop', 'shadow_timeout');
  return reg;
}

export interface HttpResult {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** One request to the admin server, Host set to it unless given; bounded by a timeout. */
export function request(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...headers }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    r.on('error', reject);
    r.on('timeout', () => r.destroy(new Error('timed out')));
    r.end(body);
  });
}
