import type { CompareReport } from '../../src/compare/report-types';
import { cluster } from '../harness/bootstrap';
import { extBootstrap, extRoute } from '../harness/mirror-ext';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { startRedis } from '../harness/redis';
import { startUpstream } from '../harness/upstream';

// The fleet view with a real Redis: two sidecars publish one policy's counts there, and either's
// page (?scope=fleet) shows their sum with the verdicts recomputed; its own view stays its own.

jest.setTimeout(60_000);

test('two sidecars sharing a Redis: each shows the fleet\'s sum', async () => {
  const redis = await startRedis();
  const primary = await startUpstream({ respond: (_req, res) => res.end(JSON.stringify({ total: 10 })) });
  const candidate = await startUpstream({ respond: (_req, res) => res.end(JSON.stringify({ total: 12 })) });
  const sidecars: TestProxy[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      sidecars.push(await startProxy(extBootstrap({
        routes: [extRoute('/', 'primary', [{ name: 'orders', cluster: 'candidate', compare: { body: { format: 'JSON' }, fleet: { redis: 'shared', interval: '0.1s' } } }])],
        clusters: [cluster('primary', [primary.port]), cluster('candidate', [candidate.port])],
        filter: { redis: { shared: { server: { host: '127.0.0.1', port: redis.port } } } },
      }).replace('"id": "test-node"', `"id": "node-${i}"`)));
    }
    const [a, b] = sidecars as [TestProxy, TestProxy];
    for (let i = 0; i < 3; i++) await fetchText(`${a.url}/o`);
    for (let i = 0; i < 5; i++) await fetchText(`${b.url}/o`);
    const view = async (p: TestProxy, scope: string): Promise<CompareReport & { fleet?: Record<string, { nodes?: number }> }> =>
      JSON.parse((await fetchText(`${p.adminUrl}/mirror/compare?format=json${scope}`)).body) as CompareReport;
    const deadline = Date.now() + 10_000;
    let fleet = await view(a, '&scope=fleet');
    while (fleet.policies[0]!.outcomes.diff < 8 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      fleet = await view(a, '&scope=fleet');
    }
    expect(fleet.fleet).toEqual({ orders: { nodes: 2 } });
    const p = fleet.policies[0]!;
    expect(p.outcomes.diff).toBe(8);
    expect(p.endpoints.map((e) => [e.name, e.total, e.fields.map((f) => [f.path, f.diffs, f.verdict])])).toEqual([['GET /o', 8, [['body.total:changed', 8, 'diff']]]]);
    // Each sidecar's own view is its own; the other sidecar sees the same sum.
    expect((await view(a, '')).policies[0]!.outcomes.diff).toBe(3);
    expect((await view(b, '&scope=fleet')).policies[0]!.outcomes.diff).toBe(8);
    // The HTML fleet view renders too.
    expect((await fetchText(`${b.adminUrl}/mirror/compare?scope=fleet`)).body).toContain('Response comparison (fleet)');
    // A sidecar that stops publishing drops out of the sum after three intervals.
    await a.stop();
    sidecars.shift();
    const gone = Date.now() + 5_000;
    let nodes = 2;
    while (nodes !== 1 && Date.now() < gone) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      nodes = (await view(b, '&scope=fleet')).fleet!.orders!.nodes!;
    }
    expect(nodes).toBe(1);
    expect((await view(b, '&scope=fleet')).policies[0]!.outcomes.diff).toBe(5);
  } finally {
    for (const s of sidecars) await s.stop();
    await primary.close();
    await candidate.close();
    await redis.stop();
  }
});
