import { cluster } from '../harness/bootstrap';
import { extBootstrap, extRoute, stat } from '../harness/mirror-ext';
import { fetchText, startProxy } from '../harness/proxy';
import { startRedis, startRedisCluster } from '../harness/redis';
import { sleep, startUpstream } from '../harness/upstream';
test('first request after start: single and cluster, default timeout', async () => {
  const primary = await startUpstream({ name: 'primary' });
  const mirror = await startUpstream({ name: 'mirror' });
  const redis = await startRedis();
  const rc = await startRedisCluster();
  const mk = (filter: object, limit: object) => extBootstrap({ routes: [extRoute('/', 'primary', [{ name: 'x', cluster: 'mirror', limit }])], clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])], filter: filter as any });
  for (const [label, text] of [
    ['single', mk({ redis: { m: { server: { host: '127.0.0.1', port: redis.port } } } }, { count: 5, time_window: '60s', policy: 'REDIS', redis: 'm' })],
    ['cluster', mk({ redis: { m: { cluster: { nodes: rc.ports.map((port) => ({ host: '127.0.0.1', port })) } } } }, { count: 5, time_window: '60s', policy: 'REDIS_CLUSTER', redis: 'm' })],
  ] as const) {
    const p = await startProxy(text);
    await fetchText(`${p.url}/one`);
    await sleep(700);
    console.log(label, 'sent', await stat(p, 'mirror_policy.x.sent'), 'err', await stat(p, 'mirror_policy.x.skipped.limit_error'));
    await fetchText(`${p.url}/two`);
    await sleep(300);
    console.log(label, 'after 2nd: sent', await stat(p, 'mirror_policy.x.sent'), 'err', await stat(p, 'mirror_policy.x.skipped.limit_error'));
    await p.stop();
  }
  await rc.stop(); await redis.stop(); await primary.close(); await mirror.close();
}, 60000);
