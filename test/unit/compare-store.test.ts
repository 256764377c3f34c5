import { parse } from 'yaml';
import { LatencySummary } from '../../src/compare/latency';
import { CompareRegistry } from '../../src/compare/store';
import { COMPARE_OUTCOMES } from '../../src/compare/types';
import { compared, diff, limits, patterns, response, settings } from '../harness/compare-results';

function registry(over: Parameters<typeof settings>[0] = {}, now?: () => number): CompareRegistry {
  const reg = new CompareRegistry(now ? { now } : {});
  reg.configure('p', settings(over));
  return reg;
}

function field(reg: CompareRegistry, path: string, endpoint = 'GET /api') {
  return reg.report().policies.find((p) => p.name === 'p')!.endpoints.find((e) => e.name === endpoint)?.fields.find((f) => f.path === path);
}

test('the report names every outcome, counts results and results-less outcomes', () => {
  const reg = registry();
  expect(reg.record(compared())).toBe('match');
  expect(reg.record(compared({ raw: [diff('body.total', 'changed', '1', '2')] }))).toBe('diff');
  expect(reg.count('p', 'shadow_timeout')).toBe(true);
  expect(reg.count('nope', 'shadow_timeout')).toBe(false);
  expect(reg.record(compared({ policy: 'nope' }))).toBeNull();
  const p = reg.report().policies[0]!;
  expect(Object.keys(p.outcomes).sort()).toEqual([...COMPARE_OUTCOMES].sort());
  expect(p.outcomes).toMatchObject({ match: 1, diff: 1, shadow_timeout: 1, shadow_error: 0 });
  expect(p.compared).toBe(2);
  expect(p.diff_rate).toBe(50);
  expect(p.endpoints[0]).toMatchObject({ name: 'GET /api', total: 2, diffs: 1, noise_only: 0, diff_rate: 50 });
});

test('raw and noise counts per field give Diffy\'s verdict', () => {
  const reg = registry();
  // body.total differs in the candidate 10 times of 20; body.ts differs in candidate and reference alike.
  for (let i = 0; i < 20; i++) {
    const raw = [diff('body.ts', 'changed', `${i}`, `${i + 1}`)];
    if (i < 10) raw.push(diff('body.total', 'changed', '1', '2'));
    reg.record(compared({ raw, noise: [diff('body.ts', 'changed', `${i}`, `${i + 2}`)] }));
  }
  expect(field(reg, 'body.total:changed')).toMatchObject({ diffs: 10, noise: 0, verdict: 'diff', reason: 'measured', relative: 100, absolute: 50, diff_pct: 50, samples: 5 });
  expect(field(reg, 'body.ts:changed')).toMatchObject({ diffs: 20, noise: 20, verdict: 'noise', reason: 'measured', samples: 0 });
  const ep = reg.report().policies[0]!.endpoints[0]!;
  expect(ep).toMatchObject({ total: 20, diffs: 10, noise_only: 10, diff_fields: 1 });
  // Fields: diff first.
  expect(ep.fields.map((f) => f.path)).toEqual(['body.total:changed', 'body.ts:changed']);
});

test('a field differing several times in one request counts once for it', () => {
  const reg = registry();
  reg.record(compared({ raw: [diff('body.items[*].p', 'changed', '1', '2', 'body.items[0].p'), diff('body.items[*].p', 'changed', '3', '4', 'body.items[1].p')] }));
  expect(field(reg, 'body.items[*].p:changed')).toMatchObject({ diffs: 1, samples: 1 });
});

test('matches and noise-only requests keep no samples', () => {
  const reg = registry({ configIgnore: patterns('header.date') });
  reg.record(compared({ raw: [diff('header.date', 'changed', 'a', 'b')] }));
  reg.record(compared({ raw: [diff('body.ts', 'changed', '1', '2')], noise: [diff('body.ts', 'changed', '1', '3')] }));
  const p = reg.report().policies[0]!;
  expect(p.outcomes).toMatchObject({ noise_only: 2, diff: 0 });
  expect(p.endpoints[0]!.fields.every((f) => f.samples === 0)).toBe(true);
  expect(field(reg, 'header.date:changed')).toMatchObject({ verdict: 'noise', reason: 'ignored', source: 'config' });
});

test('samples: a ring of samplesPerField per field, newest kept, newest first', () => {
  const reg = registry({ limits: limits({ samplesPerField: 3 }) });
  for (let i = 1; i <= 7; i++) reg.record(compared({ raw: [diff('body.total', 'changed', '1', `${i}`)] }));
  const s = reg.samples('p', 'GET /api', 'body.total:changed')!;
  expect(s.samples.map((x) => x.differences[0]!.other)).toEqual(['7', '6', '5']);
  expect(s.samples.map((x) => x.id)).toEqual([7, 6, 5]);
  expect(reg.samples('p', 'GET /api', 'body.nope:changed')).toBeNull();
  expect(reg.samples('p', 'nope', 'body.total:changed')).toBeNull();
});

test('mark as noise at run time: the field becomes noise (ignored, runtime); unmark restores it', () => {
  const reg = registry();
  reg.record(compared({ raw: [diff('body.meta.ts', 'changed', '1', '2')] }));
  expect(field(reg, 'body.meta.ts:changed')!.verdict).toBe('diff');
  expect(reg.markNoise('p', 'body.meta.ts:changed')).toEqual({ ok: true, rule: 'body.meta.ts' });
  expect(field(reg, 'body.meta.ts:changed')).toMatchObject({ verdict: 'noise', reason: 'ignored', source: 'runtime' });
  expect(reg.report().policies[0]!.rules).toEqual({ config: [], runtime: ['body.meta.ts'] });
  // New requests differing only there are noise only now.
  expect(reg.record(compared({ raw: [diff('body.meta.ts', 'changed', '1', '3')] }))).toBe('noise_only');
  expect(reg.unmarkNoise('p', 'body.meta.ts')).toEqual({ ok: true, rule: 'body.meta.ts' });
  expect(field(reg, 'body.meta.ts:changed')).toMatchObject({ verdict: 'diff', reason: 'measured' });
  expect(reg.record(compared({ raw: [diff('body.meta.ts', 'changed', '1', '3')] }))).toBe('diff');
});

test('rule changes are validated', () => {
  const reg = registry({ configIgnore: patterns('header.date') });
  expect(reg.markNoise('p', 'items[0]')).toMatchObject({ ok: false });
  expect(reg.markNoise('p', 'body.items[0]')).toMatchObject({ ok: false, error: expect.stringContaining('[*]') });
  expect(reg.markNoise('nope', 'body.x')).toMatchObject({ ok: false, error: expect.stringContaining('nope') });
  expect(reg.unmarkNoise('p', 'header.date')).toMatchObject({ ok: false, error: expect.stringContaining('config') });
  expect(reg.unmarkNoise('p', 'body.never')).toMatchObject({ ok: false });
});

test('reset clears counts and samples, keeps rules, records the time', () => {
  let t = Date.parse('2025-01-01T00:00:00Z');
  const reg = registry({}, () => t);
  reg.record(compared({ raw: [diff('body.total', 'changed', '1', '2')] }));
  reg.count('p', 'shadow_error');
  reg.markNoise('p', 'header.date');
  t += 60_000;
  expect(reg.reset('p')).toBe(true);
  expect(reg.reset('nope')).toBe(false);
  const p = reg.report().policies[0]!;
  expect(p.outcomes.diff + p.outcomes.shadow_error).toBe(0);
  expect(p.endpoints).toEqual([]);
  expect(p.latency.primary.count).toBe(0);
  expect(p.rules.runtime).toEqual(['header.date']);
  expect(p.last_reset).toBe('2025-01-01T00:01:00.000Z');
  expect(p.memory.bytes).toBe(0);
  expect(reg.samples('p', 'GET /api', 'body.total:changed')).toBeNull();
});

test('memory bound holds while recording 10,000 distinct field paths: bytes <= max, evictions counted, newest kept', () => {
  const maxBytes = 256 * 1024;
  const reg = registry({ limits: limits({ maxBytes, samplesPerField: 2 }) });
  const body = JSON.stringify({ filler: 'x'.repeat(2000) });
  let maxSeen = 0;
  for (let i = 0; i < 10_000; i++) {
    reg.record(compared({ endpoint: `GET /e${i % 50}`, primary: response(body), candidate: response(body), raw: [diff(`body.f${i}`, 'changed', '1', '2')] }));
    maxSeen = Math.max(maxSeen, reg.memory().bytes);
  }
  const r = reg.report();
  expect(maxSeen).toBeLessThanOrEqual(maxBytes);
  expect(r.memory.bytes).toBeGreaterThan(maxBytes / 2);
  expect(r.memory.evicted).toBeGreaterThan(9_000);
  expect(r.policies[0]!.memory.evicted_fields).toBe(r.memory.evicted);
  // The newest fields and their samples are there, the oldest gone; every request was still counted.
  expect(reg.samples('p', 'GET /e49', 'body.f9999:changed')!.samples).toHaveLength(1);
  expect(reg.samples('p', 'GET /e0', 'body.f0:changed')).toBeNull();
  expect(r.policies[0]!.outcomes.diff).toBe(10_000);
  expect(r.policies[0]!.endpoints.reduce((n, e) => n + e.total, 0)).toBe(10_000);
}, 60_000);

test('over budget with no field left, empty endpoints are evicted too', () => {
  const reg = registry({ limits: limits({ maxBytes: 2000 }) });
  for (let i = 0; i < 100; i++) reg.record(compared({ endpoint: `GET /endpoint-with-a-long-name-${i}` }));
  const r = reg.report();
  expect(r.memory.bytes).toBeLessThanOrEqual(2000);
  expect(r.policies[0]!.memory.evicted_endpoints).toBeGreaterThan(0);
  expect(r.policies[0]!.endpoints.some((e) => e.name === 'GET /endpoint-with-a-long-name-99')).toBe(true);
});

// Proves: endpoint records that hold no field (every match leaves one) are kept to their share
// of the budget, least recently updated going first, so a new difference is kept however many
// distinct paths came before it; an endpoint holding a field is kept with it.
test('endpoint records without fields do not push out new fields', () => {
  const maxBytes = 64 * 1024;
  const reg = registry({ limits: limits({ maxBytes }) });
  reg.record(compared({ endpoint: 'GET /old', raw: [diff('body.total', 'changed', '1', '2')] }));
  for (let i = 0; i < 2000; i++) reg.record(compared({ endpoint: `GET /match-${i}` }));
  for (let i = 0; i < 5; i++) reg.record(compared({ endpoint: 'GET /real', raw: [diff('body.v', 'changed', '1', '2')] }));
  const p = reg.report().policies[0]!;
  expect(p.memory.bytes).toBeLessThanOrEqual(maxBytes);
  expect(p.memory.evicted_endpoints).toBeGreaterThan(1000);
  expect(p.memory.evicted_fields).toBe(0);
  const byName = new Map(p.endpoints.map((e) => [e.name, e]));
  expect(byName.get('GET /real')!.fields.map((f) => [f.path, f.diffs, f.samples])).toEqual([['body.v:changed', 5, 5]]);
  expect(byName.get('GET /old')!.fields.map((f) => f.path)).toEqual(['body.total:changed']);
  expect(byName.has('GET /match-1999')).toBe(true);
  expect(byName.has('GET /match-0')).toBe(false);
  expect(p.outcomes.match).toBe(2000);
});

test('configure updates and keeps data; a lower budget evicts at once; retain drops unconfigured policies', () => {
  const reg = registry();
  for (let i = 0; i < 50; i++) reg.record(compared({ raw: [diff(`body.f${i}`, 'changed', '1', '2')] }));
  reg.configure('p', settings({ limits: limits({ maxBytes: 10_000 }), thresholds: { relative: 50, absolute: 1 } }));
  const p = reg.report().policies[0]!;
  expect(p.outcomes.diff).toBe(50);
  expect(p.thresholds).toEqual({ relative: 50, absolute: 1 });
  expect(p.memory.bytes).toBeLessThanOrEqual(10_000);
  reg.configure('q', settings());
  reg.retain(['q']);
  expect(reg.names()).toEqual(['q']);
});

test('changed redaction rules drop samples stored under the old ones', () => {
  const reg = registry();
  reg.record(compared({ primary: response('{"token":"t0ken","total":1}'), raw: [diff('body.total', 'changed', '1', '2')] }));
  expect(JSON.stringify(reg.samples('p', 'GET /api', 'body.total:changed'))).toContain('t0ken');
  reg.configure('p', settings({ limits: limits({ redactBodyPaths: patterns('body.token') }) }));
  expect(reg.samples('p', 'GET /api', 'body.total:changed')!.samples).toEqual([]);
  expect(field(reg, 'body.total:changed')!.diffs).toBe(1);
});

test('policies and endpoints are sorted by diff rate', () => {
  const reg = registry();
  reg.configure('worse', settings());
  reg.record(compared({ endpoint: 'calm' }));
  reg.record(compared({ endpoint: 'bad', raw: [diff('status', 'changed', '200', '500')] }));
  reg.record(compared({ policy: 'worse', raw: [diff('status', 'changed', '200', '500')] }));
  const r = reg.report();
  expect(r.policies.map((p) => p.name)).toEqual(['worse', 'p']);
  expect(r.policies[1]!.endpoints.map((e) => e.name)).toEqual(['bad', 'calm']);
});

test('latency of primary and candidate side by side', () => {
  const reg = registry();
  for (let i = 1; i <= 100; i++) reg.record(compared({ primary: response('{}', { durationMs: 4 }), candidate: response('{}', { durationMs: i === 100 ? 900 : 40 }) }));
  const l = reg.report().policies[0]!.latency;
  expect(l.primary).toMatchObject({ count: 100, max: 4, p50: 4, p99: 4, mean: 4 });
  expect(l.candidate).toMatchObject({ count: 100, max: 900, p50: 50, p99: 50 });
  expect(l.reference!.count).toBe(100);
  const s = new LatencySummary();
  s.add(45_000);
  expect(s.report()).toMatchObject({ p50: 45_000, p99: 45_000, max: 45_000 });
});

test('export YAML holds the config\'s and the runtime rules', () => {
  const reg = registry({ configIgnore: patterns('header.date') });
  reg.markNoise('p', 'body.meta:changed');
  const y = reg.exportYaml('p')!;
  expect(y).toContain('compare:\n  ignore:\n  - header.date\n  - body.meta');
  expect(parse(y)).toEqual({ compare: { ignore: ['header.date', 'body.meta'] } });
  expect(reg.exportYaml('nope')).toBeNull();
});
