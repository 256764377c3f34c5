import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { redactedProto3Json } from '../config/redact';
import type { Logger } from '../log/logger';
import type { BearerToken } from '../util/bearer-token';
import { foreignRequestReason, isStateChanging, ownHostNames } from '../util/request-origin';
import { SnapshotTooLargeError } from './cache/message-size';
import type { SnapshotCache } from './cache/snapshot-cache';
import type { ControlPlaneMetrics } from './metrics';
import type { ResourceEntry, ResourceMap } from './resources-file';
import type { NodeStatusRegistry } from './server/node-status';
import type { ResourceApplier } from './sources/apply';

// The control plane's HTTP admin: read and replace the resources, see what each node was sent
// and whether it ACKed or NACKed, scrape metrics. Whoever can PUT /snapshot controls every
// sidecar, and GET /snapshot shows their whole config, so with a token every request needs it;
// without one the API is bound to loopback (main.ts refuses anything else) and still refuses
// requests a browser page could forge (foreign Host or Origin, cross-site).

export interface AdminApiOptions {
  readonly cache: SnapshotCache;
  readonly status: NodeStatusRegistry;
  readonly metrics: ControlPlaneMetrics;
  readonly applier: ResourceApplier;
  readonly logger: Logger;
  /** False while starting or shutting down: /ready answers 503. */
  readonly ready: () => boolean;
  /** When set, every request needs `Authorization: Bearer <token>`. */
  readonly token: BearerToken | null;
  /** Largest PUT /snapshot body; the cache separately checks each node's response size. */
  readonly maxBodyBytes: number;
}

export interface AdminApi {
  readonly port: number;
  close(): Promise<void>;
}

export function startAdminApi(host: string, port: number, o: AdminApiOptions): Promise<AdminApi> {
  const names = ownHostNames(host);
  let boundPort = port;
  const server = http.createServer((req, res) => {
    if (!admit(req, res, o, names, boundPort)) return;
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
      boundPort = (server.address() as AddressInfo).port;
      resolve({
        port: boundPort,
        close: () => new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        }),
      });
    });
  });
}

/** Token first (401), then where the request comes from (403); true when the request may go on. */
function admit(req: http.IncomingMessage, res: http.ServerResponse, o: AdminApiOptions, names: ReadonlySet<string>, port: number): boolean {
  if (o.token && !o.token.matchesHeader(req.headers.authorization)) {
    o.metrics.adminRequestsRefused.inc({ reason: 'unauthorized' });
    res.setHeader('www-authenticate', 'Bearer realm="sidemirror-control-plane"');
    send(res, 401, { error: 'a bearer token is required (Authorization: Bearer <token>)' });
    return false;
  }
  // Reads are checked too when there is no token: a DNS-rebound page could otherwise read the
  // whole config from loopback.
  if (!o.token || isStateChanging(req.method)) {
    const reason = foreignRequestReason(req, names, port);
    if (reason !== null) {
      o.metrics.adminRequestsRefused.inc({ reason: 'foreign_origin' });
      send(res, 403, { error: `refused: ${reason}` });
      return false;
    }
  }
  return true;
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
  const limit = o.maxBodyBytes;
  const declared = Number(req.headers['content-length'] ?? NaN);
  const body = declared > limit ? null : await readBody(req, limit);
  if (body === null) {
    o.metrics.adminRequestsRefused.inc({ reason: 'too_large' });
    const size = declared > limit ? `${declared} bytes` : `more than ${limit} bytes`;
    // The rest is read and dropped (nothing kept), so the client sees the answer, not a reset.
    req.on('data', () => undefined);
    req.resume();
    send(res, 413, { error: `body of ${size} is over the limit of ${limit} bytes (--max-message-bytes); the previous snapshot is still served`, limit });
    return;
  }
  const result = o.applier.apply(body, 'PUT /snapshot');
  if (result.ok) {
    send(res, 200, { version: result.version });
  } else if (result.error instanceof SnapshotTooLargeError) {
    o.metrics.adminRequestsRefused.inc({ reason: 'too_large' });
    send(res, 413, { error: 'resources too large for one xDS message; the previous snapshot is still served', version: o.cache.version, limit: o.cache.maxMessageBytes, issues: result.error.issues });
  } else {
    send(res, 400, { error: 'resources rejected; the previous snapshot is still served', version: o.cache.version, issues: result.error.issues });
  }
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

/** The body as text, or null as soon as it passes `limit` (the rest is left unread). */
function readBody(req: http.IncomingMessage, limit: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      resolve(null);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
}
