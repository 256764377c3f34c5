import * as fs from 'node:fs';
import * as path from 'node:path';
import { request } from 'undici';
import { parseDocument } from 'yaml';
import { loadBootstrapText } from '../../src/config/load';
import { type Logger, silentLogger } from '../../src/log/logger';
import { Proxy } from '../../src/proxy';
import { type OrdersService, startOrders } from './orders';

// The example's parts in this process: orders v1 (primary), a copy of v1 (reference, unless
// without one), v2 (candidate), and the sidecar running envoy.yaml (or envoy-no-reference.yaml)
// with the ports set; plus the bounded load and the report read back from the admin.

export interface StackOptions {
  readonly reference: boolean;
  /** The sidecar's listener and admin ports (0: any free one). */
  readonly proxyPort?: number;
  readonly adminPort?: number;
  readonly logger?: Logger;
}

export interface CompareStack {
  readonly url: string;
  readonly adminUrl: string;
  readonly configFile: string;
  stop(): Promise<void>;
}

/** The example's files sit beside this module in the sources, and beside dist/ when built. */
export function exampleFile(name: string): string {
  const here = path.join(__dirname, name);
  if (fs.existsSync(here)) return here;
  return path.resolve(__dirname, '..', '..', '..', 'examples', 'shadow-compare', name);
}

const endpointPort = (cluster: number): Array<string | number> =>
  ['static_resources', 'clusters', cluster, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address', 'port_value'];

export async function startStack(o: StackOptions): Promise<CompareStack> {
  const services: OrdersService[] = [];
  const started: Array<() => Promise<void>> = [];
  try {
    const ports: Record<string, number> = {};
    for (const [cluster, version] of [['orders-v1', 'v1'], ['orders-v1-copy', 'v1'], ['orders-v2', 'v2']] as const) {
      if (cluster === 'orders-v1-copy' && !o.reference) continue;
      const s = await startOrders(version);
      services.push(s);
      started.push(() => s.close());
      ports[cluster] = s.port;
    }
    const configFile = exampleFile(o.reference ? 'envoy.yaml' : 'envoy-no-reference.yaml');
    const doc = parseDocument(fs.readFileSync(configFile, 'utf8'));
    const clusters = (doc.getIn(['static_resources', 'clusters']) as { items: unknown[] }).items;
    clusters.forEach((_c, i) => {
      const name = String(doc.getIn(['static_resources', 'clusters', i, 'name']));
      if (ports[name] === undefined) throw new Error(`${configFile}: cluster ${name} has no service in the example`);
      doc.setIn(endpointPort(i), ports[name]);
    });
    if (o.proxyPort !== undefined) doc.setIn(['static_resources', 'listeners', 0, 'address', 'socket_address', 'port_value'], o.proxyPort);
    if (o.adminPort !== undefined) doc.setIn(['admin', 'address', 'socket_address', 'port_value'], o.adminPort);
    const proxy = await Proxy.start({ loaded: loadBootstrapText(doc.toString()), logger: o.logger ?? silentLogger(), drainTimeoutMs: 500 });
    started.push(() => proxy.stop());
    const port = proxy.listeners.listeners()[0]!.address.port;
    const admin = proxy.adminAddress()!;
    return {
      url: `http://127.0.0.1:${port}`,
      adminUrl: `http://127.0.0.1:${admin.port}`,
      configFile,
      stop: async () => {
        for (const stop of started.reverse()) await stop().catch(() => undefined);
      },
    };
  } catch (err) {
    for (const stop of started.reverse()) await stop().catch(() => undefined);
    throw err;
  }
}

/**
 * `total` requests from `clients` keep-alive clients: 30 % the order list, 65 % one order, 5 %
 * an invoice (the rare path), in a fixed order so that every run sends the same traffic.
 */
export async function runLoad(url: string, total: number, clients: number): Promise<{ sent: number; statuses: Record<number, number> }> {
  const statuses: Record<number, number> = {};
  let next = 0;
  const pathFor = (i: number): string => {
    const r = (i * 7919) % 100;
    if (r < 30) return '/orders';
    if (r < 95) return `/orders/${1 + ((i * 31) % 50)}`;
    return `/orders/${1 + (i % 50)}/invoice`;
  };
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < total) {
      const i = next++;
      const res = await request(`${url}${pathFor(i)}`, { headers: { 'x-api-key': 'example-secret-key' }, headersTimeout: 10_000, bodyTimeout: 10_000 });
      await res.body.dump();
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
    }
  }));
  return { sent: total, statuses };
}
