import { ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from './bootstrap';
import { HookDirs } from '../../src/shadow/hook-dirs';
import { type TestProxy, fetchText, startProxy } from './proxy';
import { type Upstream, type UpstreamOptions, sleep, startUpstream } from './upstream';

// Builders and a rig for the mirror filter (sidemirror.filters.http.mirror.v1): the filter listed
// before the router, MirrorPerRoute under its name in a route's typed_per_filter_config.

export type Json = Record<string, unknown>;

export const MIRROR_FILTER_NAME = 'sidemirror.filters.http.mirror';
export const MIRROR_TYPE = 'type.googleapis.com/sidemirror.filters.http.mirror.v1.Mirror';
export const MIRROR_PER_ROUTE_TYPE = 'type.googleapis.com/sidemirror.filters.http.mirror.v1.MirrorPerRoute';

/** http_filters: the mirror filter with `config` as its typed_config, then the router. */
export function mirrorHttpFilters(config: Json = {}): Json[] {
  return [
    { name: MIRROR_FILTER_NAME, typed_config: { '@type': MIRROR_TYPE, ...config } },
    { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } },
  ];
}

/** typed_per_filter_config holding the extended policies. */
export function perRoute(policies: Json[]): Json {
  return { [MIRROR_FILTER_NAME]: { '@type': MIRROR_PER_ROUTE_TYPE, policies } };
}

/** A prefix route to `clusterName` with extended mirror policies (and any route-action fields). */
export function extRoute(prefix: string, clusterName: string, policies: Json[], action: Json = {}): Json {
  return { ...route(prefix, clusterName, action), typed_per_filter_config: perRoute(policies) };
}

/** A listener (name `ingress`, free port) whose HCM lists the mirror filter and serves `routes`. */
export function extListener(routes: Json[], filter: Json = {}, port = 0): Json {
  return listener(routeConfig(routes), { port, hcm: { http_filters: mirrorHttpFilters(filter) } });
}

/** Bootstrap text: one listener with the mirror filter, plus `clusters`. */
export function extBootstrap(o: { routes: Json[]; clusters: Json[]; filter?: Json; port?: number }): string {
  return bootstrap({ listeners: [extListener(o.routes, o.filter, o.port)], clusters: o.clusters });
}

/** One counter from the proxy's stats in Envoy's text form (0 when absent). */
export async function stat(p: TestProxy, name: string): Promise<number> {
  const line = (await p.proxy.stats.text()).split('\n').find((l) => l.startsWith(`${name}: `));
  return line === undefined ? 0 : Number(line.slice(name.length + 2));
}

/** Polls `probe` every 20 ms until it holds; bounded by `timeoutMs` (and 1,000 rounds). */
export async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1000; i++) {
    if (await probe()) return;
    if (Date.now() > deadline) break;
    await sleep(20);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/** Runs `n` calls of `fn`, at most `concurrency` at a time. */
export async function sendMany(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

/**
 * Waits, if need be, until the current `windowMs` wall-clock window has at least `marginMs` left:
 * budgets count in fixed windows aligned to the clock, so a test must not straddle an edge.
 */
export async function awayFromWindowEdge(windowMs: number, marginMs = 3000): Promise<void> {
  const left = windowMs - (Date.now() % windowMs);
  if (left < marginMs) await sleep(left + 50);
}

export interface Rig {
  readonly p: TestProxy;
  readonly up: Record<string, Upstream>;
  /** GET (or `opts`) on the listener; throws unless the status is 2xx. */
  get(path: string, opts?: Parameters<typeof fetchText>[1]): ReturnType<typeof fetchText>;
  stat(name: string): Promise<number>;
}

/**
 * Starts one recording upstream per entry (answering with its name unless told otherwise) and a
 * proxy whose clusters are those upstreams (plus `clusters` given by `build`); runs `body`; stops
 * everything by handle, whatever happens.
 */
export async function withRig(upstreams: Record<string, UpstreamOptions>,
  build: (ports: Record<string, number>) => { routes: Json[]; clusters?: Json[]; clusterExtra?: Record<string, Json>; filter?: Json; hookDirs?: string[] },
  body: (rig: Rig) => Promise<void>): Promise<void> {
  const up: Record<string, Upstream> = {};
  try {
    for (const [name, o] of Object.entries(upstreams)) up[name] = await startUpstream({ name, ...o });
    const ports = Object.fromEntries(Object.entries(up).map(([n, u]) => [n, u.port]));
    const b = build(ports);
    const own = Object.keys(up).map((n) => cluster(n, [ports[n]!], b.clusterExtra?.[n] ?? {}));
    const p = await startProxy(extBootstrap({ routes: b.routes, clusters: [...own, ...(b.clusters ?? [])], filter: b.filter }),
      { hookDirs: new HookDirs(b.hookDirs ?? []) });
    try {
      await body({
        p,
        up,
        async get(path, opts) {
          const res = await fetchText(`${p.url}${path}`, opts);
          if (res.status < 200 || res.status > 299) throw new Error(`${path}: status ${res.status} ${res.body}`);
          return res;
        },
        stat: (name) => stat(p, name),
      });
    } finally {
      await p.stop();
    }
  } finally {
    for (const u of Object.values(up)) await u.close();
  }
}
