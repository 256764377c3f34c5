import { extRoute, until, withRig } from '../harness/mirror-ext';
test('probe read timing', () =>
  withRig({ primary: {}, mirror: { delayMs: 1500 } }, () => ({ routes: [extRoute('/', 'primary', [{ name: 'rd', cluster: 'mirror', timeouts: { read: '0.2s' } }])] }), async (r) => {
    const t0 = Date.now();
    await r.get('/t');
    await until('timed_out', async () => (await r.stat('mirror_policy.rd.timed_out')) === 1, 1200);
    console.log('timed out after', Date.now() - t0);
    const t1 = Date.now();
    (globalThis as any).t1 = t1;
  }).then(() => console.log('teardown done')));
