import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { readDiskLayer } from '../../src/runtime/disk-layer';
import { ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type Upstream, startUpstream } from '../harness/upstream';

// layered_runtime disk layers on a real temp directory: the tree read into keys, the symlink
// root swapped the way trees are published, and a fault filter following the file.

type Json = Record<string, unknown>;
const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sm-runtime-'));
});
afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function write(file: string, content: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}

/** Points `link` at `dir` in one rename, as `ln -s dir tmp && mv -T tmp link` does. */
function swapLink(link: string, dir: string): void {
  const tmp = `${link}.tmp`;
  fs.symlinkSync(dir, tmp);
  fs.renameSync(tmp, link);
}

describe('reading a disk layer', () => {
  test('paths become dotted keys; comments dropped, values trimmed, dot-names skipped', () => {
    write(path.join(root, 'envoy/fault/http/abort/abort_percent'), '# raised for the drill\n 42 \n');
    write(path.join(root, 'envoy/health_check/min_interval'), '5');
    write(path.join(root, 'envoy/.hidden'), 'x');
    write(path.join(root, 'envoy/.git/config'), 'x');
    const read = readDiskLayer(path.join(root, 'envoy'));
    expect(Object.fromEntries(read.values)).toEqual({ 'fault.http.abort.abort_percent': '42', 'health_check.min_interval': '5' });
    expect(read.errors).toEqual([]);
  });

  test('a missing directory is an empty layer; limits skip files by path', () => {
    expect(readDiskLayer(path.join(root, 'nothing'))).toEqual({ values: new Map(), errors: [] });
    write(path.join(root, 'd/a'), '1');
    write(path.join(root, 'd/b'), '2');
    write(path.join(root, 'd/big'), 'x'.repeat(100));
    write(path.join(root, 'd/sub/c'), '3');
    write(path.join(root, 'd/sub/e'), '4');
    write(path.join(root, 'd/z'), '5');
    const read = readDiskLayer(path.join(root, 'd'), { maxFiles: 3, maxFileBytes: 10, maxTotalBytes: 1000, maxDepth: 4 });
    expect(Object.fromEntries(read.values)).toEqual({ a: '1', b: '2', 'sub.c': '3' });
    expect(read.errors).toEqual([
      `${path.join(root, 'd/big')}: 100 bytes is over the 10-byte limit; skipped`,
      `${path.join(root, 'd/sub/e')}: more than 3 files; the rest are skipped`,
    ]);
  });

  test('a symlink loop stops at the depth limit', () => {
    fs.mkdirSync(path.join(root, 'd'));
    fs.symlinkSync(path.join(root, 'd'), path.join(root, 'd/loop'));
    const read = readDiskLayer(path.join(root, 'd'), { maxFiles: 10, maxFileBytes: 10, maxTotalBytes: 100, maxDepth: 3 });
    expect(read.values.size).toBe(0);
    expect(read.errors).toEqual([`${path.join(root, 'd/loop/loop/loop/loop')}: deeper than 3 levels; skipped`]);
  });
});

function runtimeBootstrap(layers: Json[], node: Json = { id: 'n', cluster: 'svc' }): Json {
  return { layered_runtime: { layers }, node };
}

function configErrors(layers: Json[], node?: Json): string[] {
  try {
    loadBootstrapText(bootstrap({ listeners: [], clusters: [], extra: runtimeBootstrap(layers, node) }));
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
}

describe('disk_layer config', () => {
  test('errors name the field', () => {
    expect(configErrors([
      { name: 'a', disk_layer: { symlink_root: 'relative/current' } },
      { name: 'b', disk_layer: { subdirectory: 'envoy' } },
      { name: 'c', disk_layer: { symlink_root: '/srv/current', subdirectory: '../etc' } },
      { name: 'd', disk_layer: { symlink_root: '/srv/current', append_service_cluster: true } },
    ], { id: 'n' })).toEqual([
      'layered_runtime.layers[0].disk_layer.symlink_root: symlink_root must be an absolute path',
      'layered_runtime.layers[1].disk_layer.symlink_root: symlink_root is required',
      'layered_runtime.layers[2].disk_layer.subdirectory: subdirectory must not climb out of symlink_root ("..")',
      'layered_runtime.layers[3].disk_layer.append_service_cluster: append_service_cluster needs node.cluster to be set',
    ]);
  });

  test('append_service_cluster reads <root>/<subdirectory>/<node.cluster>', () => {
    const loaded = loadBootstrapText(bootstrap({ listeners: [], clusters: [], extra: runtimeBootstrap([
      { name: 'override', disk_layer: { symlink_root: '/srv/current', subdirectory: 'envoy_override', append_service_cluster: true } },
    ]) }));
    expect(loaded.bootstrap.runtime).toEqual([{ name: 'override', kind: 'disk', symlinkRoot: '/srv/current', directory: '/srv/current/envoy_override/svc' }]);
  });
});

describe('a proxy on a disk layer', () => {
  let upstream: Upstream;
  let p: TestProxy | null = null;
  beforeAll(async () => {
    upstream = await startUpstream({ name: 'upstream' });
  });
  afterAll(async () => {
    await upstream.close();
  });
  afterEach(async () => {
    await p?.stop();
    p = null;
  });

  async function statusSoon(url: string, want: number): Promise<number> {
    let last = 0;
    for (let i = 0; i < 60 && last !== want; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      last = (await fetchText(url)).status;
    }
    return last;
  }

  test('the fault filter follows the file, and a link swap publishes a new value', async () => {
    write(path.join(root, 'v1/envoy/fault/http/abort/abort_percent'), '100\n');
    write(path.join(root, 'v2/envoy/fault/http/abort/abort_percent'), '0\n');
    const link = path.join(root, 'current');
    fs.symlinkSync(path.join(root, 'v1'), link);
    const filters = [
      { name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT, abort: { http_status: 503 } } },
      { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } },
    ];
    p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([route('/', 'backend')]), { hcm: { http_filters: filters } })],
      clusters: [cluster('backend', [upstream.port])],
      extra: { layered_runtime: { layers: [
        { name: 'static', static_layer: {} },
        { name: 'disk', disk_layer: { symlink_root: link, subdirectory: 'envoy' } },
        { name: 'admin', admin_layer: {} },
      ] } },
    }));
    expect((await fetchText(`${p.url}/`)).status).toBe(503);
    const runtime = JSON.parse((await fetchText(`${p.adminUrl}/runtime`)).body) as { layers: string[]; entries: Record<string, unknown> };
    expect(runtime.layers).toEqual(['static', 'disk', 'admin']);
    expect(runtime.entries['fault.http.abort.abort_percent']).toEqual({ layer_values: ['', '100', ''], final_value: '100' });

    swapLink(link, path.join(root, 'v2'));
    expect(await statusSoon(`${p.url}/`, 200)).toBe(200);
    // Editing a file in place is not a publish: the tree is read again only on a swap.
    write(path.join(root, 'v2/envoy/fault/http/abort/abort_percent'), '100\n');
    write(path.join(root, 'v3/envoy/fault/http/abort/abort_percent'), '100\n');
    swapLink(link, path.join(root, 'v3'));
    expect(await statusSoon(`${p.url}/`, 503)).toBe(503);
  });
});
