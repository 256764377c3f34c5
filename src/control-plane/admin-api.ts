import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { redactedProto3Json } from '../config/redact';
import type { Logger } from '../log/logger';
import type { SnapshotCache } from './cache/snapshot-cache';
import type { ControlPlaneMetrics } from './metrics';
import type { ResourceEntry, ResourceMap } from './resources-file';
import type { NodeStatusRegistry } from './server/node-status';
import type { ResourceApplier } from './sources/apply';

// The control plane's HTTP admin: read and replace the resources, see what each node was sent
// and whether it ACKed or NACKed, scrape metrics. Meant for loopback or a trusted network: it
// has no authentication, like Envoy's own admin port.

export interface AdminApiOptions {
  readonly cache: SnapshotCache;
  readonly status: NodeStatusRegistry;
  readonly metrics: ControlPlaneMetrics;
  readonly applier: ResourceApplier;
  readonly logger: Logger;
  /** False while starting or shutting down: /ready answers 503. */
  readonly ready: () => boolean;
}

export interface AdminApi {
  readonly port: number;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;

export function startAdminApi(host: string, port: number, o: AdminApiOptions): Promise<AdminApi> {
  const server = http.createServer((req, res) => {
    route(req, res, o).catch((err: unknown) => {
      o.logger.error({ error: err instanceof Error ? err.message : String(err), url: req.url }, 'admin request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        }),
      });
    });
  });
}

async function route(req: http.IncomingMessage, res: http.ServerResponse, o: AdminApiOptions): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const method = req.method ?? 'GET';
  const allow = (methods: string[]): boolean => {
    if (methods.includes(method)) return true;
    res.setHeader('allow', methods.join(', '));
    send(res, 405, { error: `${method} not allowed on ${url.pathname}` });
    return false;
  };
  switch (url.pathname) {
    case '/ready':
      if (!allow(['GET', 'HEAD'])) return;
      res.writeHead(o.ready() ? 200 : 503, { 'content-type': 'text/plain' }).end(o.ready() ? 'LIVE\n' : 'NOT READY\n');
      return;
    case '/nodes':
      if (allow(['GET'])) send(res, 200, o.status.toJSON());
      return;
    case '/metrics': {
      if (!allow(['GET'])) return;
      const text = await o.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': o.metrics.registry.contentType }).end(text);
      return;
    }
    case '/snapshot':
      if (!allow(['GET', 'PUT'])) return;
      if (method === 'GET') send(res, 200, snapshotJson(o));
      else await putSnapshot(req, res, o);
      return;
    default:
      send(res, 404, { error: `no such endpoint ${url.pathname}`, endpoints: ['/nodes', '/snapshot', '/metrics', '/ready'] });
  }
}

async function putSnapshot(req: http.IncomingMessage, res: http.ServerResponse, o: AdminApiOptions): Promise<void> {
  const body = await readBody(req);
  if (body === null) {
    send(res, 413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
    return;
  }
  const result = o.applier.apply(body, 'PUT /snapshot');
  if (result.ok) send(res, 200, { version: result.version });
  else send(res, 400, { error: 'resources rejected; the previous snapshot is still served', version: o.cache.version, issues: result.error.issues });
}

/** The current resources in the same shape PUT /snapshot takes, plus the served version. */
function snapshotJson(o: AdminApiOptions): Record<string, unknown> {
  const set = o.cache.resources;
  const out: Record<string, unknown> = { version: o.cache.version };
  if (set.versionInfo) out.version_info = set.versionInfo;
  out.resources = resourcesJson(set.base);
  if (set.overrides.length > 0) {
    out.node_overrides = set.overrides.map((ov) => ({ node: { [ov.match.kind]: ov.match.value }, resources: resourcesJson(ov.resources) }));
  }
  const r = o.applier.lastRejection;
  if (r) out.last_rejection = { source: r.source, at: r.at, kept_version: r.keptVersion, issues: r.issues };
  return out;
}

function resourcesJson(map: ResourceMap): unknown[] {
  const all: ResourceEntry[] = [];
  for (const byName of map.values()) all.push(...byName.values());
  // Back in the order they were written: the trailing index of each entry's path.
  all.sort((a, b) => indexOf(a.path) - indexOf(b.path));
  // Secrets (sensitive fields, such as a Redis password in a listener's mirror filter) are
  // redacted: what PUT took is not all given back.
  return all.map((e) => ({ '@type': e.typeUrl, ...redactedProto3Json(e.message) }));
}

function indexOf(path: string): number {
  const m = /\[(\d+)\]$/.exec(path);
  return m ? Number(m[1]) : 0;
}

function readBody(req: http.IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooBig = true;
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(tooBig ? null : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
}
