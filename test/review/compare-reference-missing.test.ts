import { fetchText } from '../harness/proxy';
import { closeAll, jsonReply, rig } from './compare-rig';

// A reference_cluster that names no cluster: the config loads (the cluster may come later, over
// CDS), and every comparison of the policy ends shadow_error, counted under the missing name, while
// the candidate is still mirrored and the client still served.

jest.setTimeout(60_000);

afterEach(closeAll);

test('a missing reference cluster ends each comparison shadow_error, counted under its name', async () => {
  const r = await rig({ primary: { http: jsonReply({ a: 1 }) }, candidate: { http: jsonReply({ a: 1 }) }, compare: { reference_cluster: 'nowhere' } });
  for (let i = 0; i < 3; i++) expect((await r.get('/x')).body.toString()).toBe('{"a":1}');
  const p = await r.report(3);
  expect(p.outcomes.shadow_error).toBe(3);
  const stats = (await fetchText(`${r.proxy.adminUrl}/stats`)).body;
  expect(stats).toMatch(/^cluster\.nowhere\.shadow\.skipped\.unknown_cluster: 3$/m);
  expect(stats).toMatch(/^cluster\.candidate\.shadow\.succeeded\.2xx: 3$/m);
});
