import { fetchText } from '../harness/proxy';
import { closeAll, jsonReply, rig, sleep } from './compare-rig';

// What compare.timeout ends: the comparison, and with it the shadows it was waiting for (review
// finding 8, issue 11).

jest.setTimeout(90_000);

afterEach(closeAll);

// Proves: once compare.timeout has given up on a candidate (shadow_timeout), that shadow is not
// kept in flight. On a route without a timeout (timeout: 0s, as streaming APIs have), a candidate
// that sends its headers and then nothing stays open for ever, holding one of the cluster's
// in-flight slots (1,000 by default; past them every shadow is dropped and no request compared).
test('a comparison that timed out lets its silent candidate go', async () => {
  let closed = 0;
  const r = await rig({
    primary: { http: jsonReply({ a: 1 }) },
    candidate: { raw: (s) => { s.on('close', () => closed++); s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n'); } },
    compare: { timeout: '0.3s' },
    action: { timeout: '0s' },
  });
  for (let i = 0; i < 3; i++) await r.get('/s');
  expect((await r.report(3)).outcomes.shadow_timeout).toBe(3);
  for (let i = 0; i < 100 && closed < 3; i++) await sleep(50);
  expect(closed).toBe(3);
  // Counted as the shadows' timeouts, and their in-flight slots are free again.
  const stats = (await fetchText(`${r.proxy.adminUrl}/stats`)).body;
  expect(stats).toMatch(/^mirror_policy\.cand\.timed_out: 3$/m);
  expect(stats).toMatch(/^cluster\.candidate\.shadow\.timed_out: 3$/m);
  expect(stats).toMatch(/^cluster\.candidate\.upstream_rq_active: 0$/m);
});
