import { request } from 'undici';
import { runLoad, startStack } from '../../examples/shadow-compare/stack';
import type { CompareReport } from '../../src/compare/report-types';

// The shadow-compare example end to end, with real upstreams: orders v1 (primary), a copy of v1
// (reference) and v2 (candidate) behind the sidecar. v2's three changes are found (total, the
// header rename, the invoice's 500), the timestamp and the random id are noise; without a
// reference the same holds because rules name those two fields.

jest.setTimeout(60_000);

async function reportOf(adminUrl: string, requests: number): Promise<CompareReport> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = (await (await request(`${adminUrl}/mirror/compare?format=json`)).body.json()) as CompareReport;
    const o = r.policies[0]!.outcomes;
    const done = Object.values(o).reduce((a, b) => a + b, 0);
    if (done >= requests) return r;
    if (Date.now() > deadline) throw new Error(`only ${done} of ${requests} outcomes after 15 s: ${JSON.stringify(o)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Per endpoint: the fields whose verdict is diff, and those that are noise, sorted. */
function verdicts(r: CompareReport): Record<string, { diff: string[]; noise: string[] }> {
  const out: Record<string, { diff: string[]; noise: string[] }> = {};
  for (const e of r.policies[0]!.endpoints) {
    out[e.name] = {
      diff: e.fields.filter((f) => f.verdict === 'diff').map((f) => f.path).sort(),
      noise: e.fields.filter((f) => f.verdict === 'noise').map((f) => f.path).sort(),
    };
  }
  return out;
}

const REAL = {
  'GET /orders': ['header.x-cache-status:missing', 'header.x-cache:added'],
  'GET /orders/{n}': ['body.total:changed', 'header.x-cache-status:missing', 'header.x-cache:added'],
  'GET /orders/{n}/invoice': ['status:changed'],
};

test.each([
  ['with a reference cluster', true, 'measured'],
  ['without one, by ignore rules', false, 'ignored'],
])('the example: v2\'s three changes found, the timestamp and the id noise (%s)', async (_name, reference, reason) => {
  const stack = await startStack({ reference, proxyPort: 0, adminPort: 0 });
  try {
    const load = await runLoad(stack.url, 400, 8);
    // The client saw only v1: every answer a 200, invoices included.
    expect(load.statuses).toEqual({ 200: 400 });
    const r = await reportOf(stack.adminUrl, 400);
    const p = r.policies[0]!;
    // Every request got exactly one outcome, and every one differed (the header rename is everywhere).
    expect(p.outcomes.diff).toBe(400);
    expect(Object.values(p.outcomes).reduce((a, b) => a + b, 0)).toBe(400);
    const v = verdicts(r);
    expect(Object.keys(v).sort()).toEqual(Object.keys(REAL).sort());
    for (const [endpoint, diffs] of Object.entries(REAL)) expect(v[endpoint]!.diff).toEqual([...diffs].sort());
    // The per-request noise fields are noise everywhere they show up, for the reason expected.
    for (const e of p.endpoints) {
      for (const f of e.fields.filter((x) => /generated_at|request_id/.test(x.path))) {
        expect([f.path, f.verdict, f.reason]).toEqual([f.path, 'noise', reason]);
      }
    }
    if (reference) expect(v['GET /orders/{n}']!.noise).toEqual(['body.generated_at:changed', 'body.request_id:changed']);
    // The API key the load sends never reaches a stored sample.
    const samples = await (await request(`${stack.adminUrl}/mirror/compare/samples?policy=orders-v2&endpoint=${encodeURIComponent('GET /orders/{n}')}&field=${encodeURIComponent('body.total:changed')}`)).body.text();
    expect(samples).toContain('[redacted]');
    expect(samples).not.toContain('example-secret-key');
  } finally {
    await stack.stop();
  }
});
