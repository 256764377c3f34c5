import { type RunningAdmin, HOSTILE, filledRegistry, request, startCompareAdmin } from '../harness/compare-admin';
import type { CompareReport, SamplesReport } from '../../src/compare/report-types';
import type { CompareRegistry } from '../../src/compare/store';

// The comparison report's admin routes on a real AdminServer: the server's POST rules hold for
// them, hostile values are escaped, and the JSON, samples, rules, reset and export answer.

let admin: RunningAdmin;
let reg: CompareRegistry;

beforeEach(async () => {
  reg = filledRegistry();
  admin = await startCompareAdmin(reg);
});

afterEach(async () => {
  await admin.close();
});

const form = { 'content-type': 'application/x-www-form-urlencoded' };

test('GET on a POST route is 405, POST required', async () => {
  for (const p of ['/mirror/compare/noise?policy=shop&path=body.total', '/mirror/compare/unnoise?policy=shop&path=body.total', '/mirror/compare/reset']) {
    const r = await request(admin.port, 'GET', p);
    expect([p, r.status]).toEqual([p, 405]);
    expect(r.body).toContain('POST required');
  }
  expect(reg.report().policies.find((p) => p.name === 'shop')!.rules.runtime).toEqual([]);
});

test('a POST from a foreign Origin (or Host) is 403 and changes nothing', async () => {
  const foreign: Array<Record<string, string>> = [{ origin: 'http://evil.example' }, { host: `evil.example:${admin.port}` }, { 'sec-fetch-site': 'cross-site' }];
  for (const headers of foreign) {
    const r = await request(admin.port, 'POST', '/mirror/compare/noise', { ...form, ...headers }, 'policy=shop&path=body.total');
    expect([headers, r.status]).toEqual([headers, 403]);
    const reset = await request(admin.port, 'POST', '/mirror/compare/reset', { ...form, ...headers }, '');
    expect(reset.status).toBe(403);
  }
  const shop = reg.report().policies.find((p) => p.name === 'shop')!;
  expect(shop.rules.runtime).toEqual([]);
  expect(shop.outcomes.diff).toBe(8);
});

test('hostile values are escaped in the page, and a CSP with a nonce is sent', async () => {
  const page = await request(admin.port, 'GET', '/mirror/compare?policy=shop&endpoint=GET%20%2Fcart&field=body.total%3Achanged');
  expect(page.status).toBe(200);
  expect(page.headers['content-type']).toMatch(/^text\/html/);
  const csp = String(page.headers['content-security-policy']);
  const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
  expect(nonce).toBeDefined();
  expect(csp).toContain("default-src 'none'");
  // The sample view is rendered (so the hostile values were on the page to escape) ...
  expect(page.body).toContain('id="sample"');
  expect(page.body).toContain('&lt;script&gt;window.__pwned=1&lt;/script&gt;');
  // ... and no hostile markup survived: the only script tag is ours, with the nonce.
  expect(page.body).not.toContain(HOSTILE);
  expect(page.body).not.toContain('<img src=x');
  const scripts = page.body.match(/<script[^>]*>/g) ?? [];
  expect(scripts).toEqual([`<script nonce="${nonce}">`]);
});

test('?format=json is the report; samples, rules, reset and export answer', async () => {
  const json = await request(admin.port, 'GET', '/mirror/compare?format=json');
  expect(json.headers['content-type']).toBe('application/json');
  const report = JSON.parse(json.body) as CompareReport;
  expect(report.policies.map((p) => p.name)).toEqual(['shop', 'search']);
  const shop = report.policies[0]!;
  expect(shop.outcomes).toMatchObject({ diff: 8, noise_only: 12, shadow_timeout: 1 });
  const fields = Object.fromEntries(shop.endpoints[0]!.fields.map((f) => [f.path, f]));
  expect(fields['body.total:changed']).toMatchObject({ verdict: 'diff', diffs: 8, samples: 5 });
  expect(fields['body.ts:changed']).toMatchObject({ verdict: 'noise', reason: 'measured' });
  expect(fields['header.date:changed']).toMatchObject({ verdict: 'noise', reason: 'ignored', source: 'config' });

  const s = await request(admin.port, 'GET', '/mirror/compare/samples?policy=shop&endpoint=GET%20%2Fcart&field=body.total%3Achanged');
  expect(s.status).toBe(200);
  const samples = JSON.parse(s.body) as SamplesReport;
  expect(samples.samples).toHaveLength(5);
  expect(samples.samples[0]!.differences.find((d) => d.path === 'body.total')).toMatchObject({ primary: '10', other: '12' });
  expect((await request(admin.port, 'GET', '/mirror/compare/samples?policy=shop')).status).toBe(400);
  expect((await request(admin.port, 'GET', '/mirror/compare/samples?policy=shop&endpoint=x&field=y')).status).toBe(404);

  const mark = await request(admin.port, 'POST', '/mirror/compare/noise', form, 'policy=shop&path=body.total%3Achanged');
  expect([mark.status, JSON.parse(mark.body)]).toEqual([200, { ok: true, policy: 'shop', rule: 'body.total' }]);
  expect((await request(admin.port, 'POST', '/mirror/compare/noise?policy=shop&path=items[0]')).status).toBe(400);
  const exported = await request(admin.port, 'GET', '/mirror/compare/export?policy=shop');
  expect(exported.headers['content-type']).toMatch(/^text\/yaml/);
  expect(exported.body).toContain('compare:\n  ignore:\n  - header.date\n  - body.total');
  expect((await request(admin.port, 'GET', '/mirror/compare/export?policy=nope')).status).toBe(404);
  expect((await request(admin.port, 'POST', '/mirror/compare/unnoise?policy=shop&path=body.total')).status).toBe(200);

  expect((await request(admin.port, 'POST', '/mirror/compare/reset?policy=nope')).status).toBe(404);
  expect((await request(admin.port, 'POST', '/mirror/compare/reset', form, 'policy=shop')).status).toBe(200);
  const after = reg.report().policies.find((p) => p.name === 'shop')!;
  expect(after.compared).toBe(0);
  expect(reg.report().policies.find((p) => p.name === 'search')!.compared).toBe(5);
});

test('a form posted without script is sent back to the page, never elsewhere', async () => {
  const html = { ...form, accept: 'text/html,application/xhtml+xml' };
  const back = '/mirror/compare?policy=shop&endpoint=GET+%2Fcart&field=body.total%3Achanged';
  const r = await request(admin.port, 'POST', '/mirror/compare/noise', html, `policy=shop&path=body.ts&back=${encodeURIComponent(back)}`);
  expect([r.status, r.headers.location]).toEqual([303, back]);
  // A character a header cannot carry (the page writes its query percent-encoded) is no place to go back to either.
  for (const evil of ['https://evil.example/', '//evil.example/mirror/compare', '/mirror/compare/../../x\\y', '/mirror/compare?q=\u0100', '/mirror/compare?q=\u00e9']) {
    const e = await request(admin.port, 'POST', '/mirror/compare/unnoise', html, `policy=shop&path=body.ts&back=${encodeURIComponent(evil)}`);
    expect([evil, e.status, e.headers.location]).toEqual([evil, 303, '/mirror/compare']);
    expect((await request(admin.port, 'POST', '/mirror/compare/noise', form, 'policy=shop&path=body.ts')).status).toBe(200);
  }
});

test('the help list names the compare routes', async () => {
  const r = await request(admin.port, 'GET', '/help');
  expect(r.body).toContain('/mirror/compare: response comparison report');
  expect(r.body).toContain('/mirror/compare/noise: POST');
});
