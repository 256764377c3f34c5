import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { ensureCliBuilt, runCli } from '../harness/cli';
import { type Json, extBootstrap, extRoute, mirrorHttpFilters, perRoute } from '../harness/mirror-ext';

// A mirror policy naming a Redis connection of its filter's `redis` map (compare.fleet.redis,
// limit.redis) that the map does not have is a config error by path, not a policy the proxy
// silently leaves out (review finding 4, issue 11).

jest.setTimeout(90_000);

// Proves: the README's compare example, pasted as it stands (its `fleet.redis: main` names a
// Redis connection the mirror filter's `redis` map does not have), is refused by `validate` with
// the field's path. Today validate says OK, and `proxy` then starts with the whole mirror policy
// left out (one error log line: no mirroring and no comparison at all).
test('validate refuses compare.fleet naming a Redis connection the filter does not define', async () => {
  ensureCliBuilt();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-review-'));
  try {
    const text = extBootstrap({
      routes: [extRoute('/', 'primary', [{ name: 'cand', cluster: 'candidate', compare: { fleet: { redis: 'main', interval: '5s' } } }])],
      clusters: [cluster('primary', [1]), cluster('candidate', [2])],
    });
    const file = path.join(dir, 'envoy.json');
    fs.writeFileSync(file, text);
    const out = await runCli(['validate', '-c', file]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('policies[0].compare.fleet.redis');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** The issues loading `text` gives, as `path: message` lines (none when it loads). */
function issues(text: string): string[] {
  try {
    loadBootstrapText(text);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
}

const clusters = [cluster('primary', [1]), cluster('candidate', [2])];
const REDIS = { main: { server: { host: '127.0.0.1', port: 6379 }, timeout: '2s' } };
const fleet = { name: 'cand', cluster: 'candidate', compare: { fleet: { redis: 'main' } } };
const limit = { name: 'lim', cluster: 'candidate', limit: { count: 5, time_window: '1s', policy: 'REDIS', redis: 'main' } };

// Proves: both references are checked, on routes and on virtual hosts, each reported at its own
// path with the names the map has; with `main` defined the same config loads.
test('each named Redis connection is looked up in the filter\'s map', () => {
  const missing = issues(extBootstrap({ routes: [extRoute('/', 'primary', [fleet, limit])], clusters }));
  expect(missing).toHaveLength(2);
  expect(missing[0]).toMatch(/routes\[0\]\.typed_per_filter_config\["sidemirror\.filters\.http\.mirror"\]\.policies\[0\]\.compare\.fleet\.redis: no Redis connection named "main" .*\(it has none\)$/);
  expect(missing[1]).toMatch(/\.policies\[1\]\.limit\.redis: no Redis connection named "main"/);
  expect(issues(extBootstrap({ routes: [extRoute('/', 'primary', [fleet, limit])], clusters, filter: { redis: REDIS } }))).toEqual([]);
  const other = issues(extBootstrap({ routes: [extRoute('/', 'primary', [fleet])], clusters, filter: { redis: { cache: REDIS.main } } }));
  expect(other).toEqual([expect.stringMatching(/compare\.fleet\.redis: .*\(it has "cache"\)$/)]);
  const onVhost: Json = listener(routeConfig([route('/', 'primary')], { typed_per_filter_config: perRoute([fleet]) }), { hcm: { http_filters: mirrorHttpFilters() } });
  expect(issues(bootstrap({ listeners: [onVhost], clusters }))).toEqual([
    expect.stringMatching(/virtual_hosts\[0\]\.typed_per_filter_config\["sidemirror\.filters\.http\.mirror"\]\.policies\[0\]\.compare\.fleet\.redis: /),
  ]);
});
