import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ForwardAction, HttpConnectionManager } from '../config/model';
import type { Logger } from '../log/logger';
import type { HeaderLookup } from '../router/matchers';
import { type CompiledRoute, type RouteTable, randomUint32 } from '../router/route-table';
import { applyRequestHeaderEdits, applyResponseHeaderEdits, chooseCluster, redirectLocation, rewriteHost, rewritePath } from '../router/router';
import type { HttpStats } from '../stats/scopes';
import type { ClusterManager } from '../upstream/cluster-manager';
import { requestHashKey } from './hash-policy';
import { type DownstreamInfo, type HeaderMap, type TrustSettings, firstValue, headerFormatter, mapFromRaw, mutateRequestHeaders, plainAddress } from './headers';
import { LOCAL_REPLY_BODIES, sendLocalReply } from './local-reply';
import { admitRequest } from './request-validation';
import type { StreamInfo } from './stream-info';
import { type UpgradeDownstream, UpgradeExchange } from './upgrade-exchange';
import { closingResponse } from './upgrade-response';

// HTTP/1.1 Upgrade requests (WebSocket and others), Envoy's way: the connection manager's header
// rules and route, then upgrade_configs decide; an allowed upgrade is routed like any request
// (cluster, header edits, host rewrite) and sent with its Upgrade header. Never mirrored: Envoy
// sends a buffered shadow at the end of the request, which an upgraded stream never reaches.

/** What the connection manager lends the upgrade path. */
export interface UpgradeSettings {
  readonly hcm: HttpConnectionManager;
  readonly table: RouteTable | null;
  readonly suppressEnvoyHeaders: boolean;
  readonly clusters: ClusterManager;
  readonly logger: Logger;
  readonly hostname: string;
  readonly stats: HttpStats;
  readonly trust: TrustSettings;
}

/**
 * Envoy's precedence: a route's upgrade_configs entry for the type decides (enabled or not);
 * without one, the connection manager's list does. `type` and the lists are lower case.
 */
export function upgradeAllowed(type: string, hcmTypes: readonly string[], route: ReadonlyMap<string, boolean>): boolean {
  return route.get(type) ?? hcmTypes.includes(type);
}

const NO_UPGRADES: ReadonlyMap<string, boolean> = new Map();
const NO_HEADERS: readonly string[] = [];

/**
 * Answers or proxies one Upgrade request. Whatever happens, the connection ends with this stream:
 * a 101 turns it into a tunnel, and anything else is answered with `connection: close`.
 */
export function proxyUpgrade(s: UpgradeSettings, req: IncomingMessage, duplex: Duplex, head: Buffer, info: StreamInfo): void {
  const socket = duplex as Socket;
  // Node's server took its listeners off the socket: an error must not end the process.
  socket.on('error', () => undefined);
  const stream = new UpgradeStream(s.stats, s.hcm.serverName, req, socket);
  // What the codec refuses of a normal request (downstream-connection.ts), refused here too.
  if (req.rawHeaders.length / 2 > s.hcm.commonHttpProtocolOptions.maxHeadersCount) {
    s.stats.cxProtocolError.inc();
    stream.reply(431, 'Request Header Fields Too Large');
    return;
  }
  if (!admitRequest(req, stream.res, s.hcm, s.stats)) return;

  // Built from the raw list: hop-by-hop headers (Connection, Upgrade among them) are gone, and
  // undici writes `connection: upgrade` and the Upgrade value itself.
  const headers = mapFromRaw(req.rawHeaders);
  // undici refuses Expect; an upgrade request has no body to wait for anyway.
  delete headers.expect;
  const table = s.table;
  const trust = mutateRequestHeaders(headers, s.hcm, { address: plainAddress(socket.remoteAddress), scheme: info.scheme }, s.trust,
    table?.config.internalOnlyHeaders ?? NO_HEADERS);
  const down: DownstreamInfo = { remoteAddress: trust.remoteAddress, localAddress: plainAddress(socket.localAddress), scheme: info.scheme };
  const host = firstValue(headers.host) ?? '';
  const authority = host.toLowerCase();
  const path = req.url ?? '/';
  const method = req.method ?? 'GET';
  const lookup: HeaderLookup = (name) => requestHeader(name, headers, authority, path, method, info.scheme);

  const route = table?.match({ authority, path, header: lookup }) ?? null;
  if (route === null) {
    s.stats.noRoute.inc();
    stream.reply(404, '');
    return;
  }
  const action = route.route.action;
  const upgrade = upgradeValue(req);
  if (!upgradeAllowed(upgrade.toLowerCase(), s.hcm.upgradeTypes, action.kind === 'forward' ? action.upgradeConfigs : NO_UPGRADES)) {
    s.stats.rqWsOnNonWsRoute.inc();
    stream.reply(403, '');
    return;
  }
  stream.allowed();
  stream.route = route;
  if (action.kind === 'direct_response') {
    s.stats.directResponse.inc();
    stream.reply(action.status, action.body ?? '');
    return;
  }
  if (action.kind === 'redirect') {
    stream.reply(action.responseCode, '', { location: redirectLocation(action, route, host, path, down.scheme) });
    return;
  }
  // Envoy would stream such a body upstream ahead of the switch; undici cannot send one with an upgrade.
  if (declaresBody(req.rawHeaders)) {
    s.logger.debug({ path }, 'upgrade request with a body refused');
    stream.reply(400, 'upgrade requests with a body are not supported');
    return;
  }
  forward(s, stream, route, action, { headers, down, lookup, head, upgrade, path, method });
}

interface UpgradeRequest {
  readonly headers: HeaderMap;
  readonly down: DownstreamInfo;
  readonly lookup: HeaderLookup;
  readonly head: Buffer;
  readonly upgrade: string;
  readonly path: string;
  readonly method: string;
}

/** Phase 3 of the connection manager (cluster, edits, host), then the exchange. */
function forward(s: UpgradeSettings, stream: UpgradeStream, route: CompiledRoute, action: ForwardAction, r: UpgradeRequest): void {
  const { headers, down, lookup } = r;
  const clusterName = chooseCluster(action.cluster, lookup, randomUint32());
  const cluster = clusterName ? s.clusters.get(clusterName) : undefined;
  if (!cluster) {
    s.stats.noCluster.inc();
    stream.reply(action.clusterNotFoundResponseCode, '');
    return;
  }
  const format = headerFormatter(down, headers, s.hostname);
  applyRequestHeaderEdits(route, headers, s.table!.config, format);
  const weighted = action.cluster.kind === 'weighted_clusters' ? action.cluster.clusters.find((c) => c.name === clusterName) ?? null : null;
  if (weighted) applyRequestHeaderEdits(route, headers, weighted, format);
  const timeoutMs = action.timeoutMs;
  if (timeoutMs > 0 && !s.suppressEnvoyHeaders) headers['x-envoy-expected-rq-timeout-ms'] = String(timeoutMs);

  if (cluster.config.protocol.kind === 'http2') {
    // Envoy would carry it as an extended CONNECT (RFC 8441); sidemirror's HTTP/2 pool does not.
    s.logger.warn({ cluster: cluster.name }, 'upgrade refused: the cluster speaks HTTP/2, and upgrades to HTTP/2 upstreams are not supported');
    stream.reply(503, 'upgrades to HTTP/2 upstreams are not supported');
    return;
  }
  if (cluster.active >= cluster.config.circuitBreakers.maxRequests) {
    cluster.stats.pendingOverflow.inc();
    stream.reply(503, LOCAL_REPLY_BODIES.overflow, { 'x-envoy-overloaded': 'true' });
    return;
  }
  const hashKey = action.hashPolicy.length === 0 || cluster.config.lbPolicy !== 'RING_HASH' ? null
    : requestHashKey(action.hashPolicy, { headers, pseudo: lookup, sourceIp: down.remoteAddress, path: r.path });
  const host = cluster.pick(hashKey);
  if (host === null) {
    cluster.stats.noneHealthy.inc();
    stream.reply(503, LOCAL_REPLY_BODIES.noHealthyUpstream);
    return;
  }
  rewriteHost(action, headers, host, weighted?.hostRewriteLiteral ?? null);
  const table = s.table!;
  new UpgradeExchange({
    cluster, host, headers, timeoutMs,
    method: r.method,
    path: rewritePath(action, route, r.path),
    upgrade: r.upgrade,
    idleTimeoutMs: action.idleTimeoutMs ?? s.hcm.streamIdleTimeoutMs,
    streamDurationMs: action.maxStreamDuration.legacy ? 0 : action.maxStreamDuration.maxStreamDurationMs,
    responseHeaders: (status, raw, elapsedMs) => responseHeaders(s, route, table, format, headers, status, raw, elapsedMs),
  }, stream.downstream(r.head)).start();
}

/** The upstream's answer as the client gets it: the connection manager's and route's response rules. */
function responseHeaders(s: UpgradeSettings, route: CompiledRoute, table: RouteTable, format: (v: string) => string, request: HeaderMap,
  status: number, raw: readonly Buffer[], elapsedMs: number): HeaderMap {
  const out = mapFromRaw(raw);
  // A 101 keeps its Connection and Upgrade (Envoy's mutateResponseHeaders); nothing else hop-by-hop passes.
  if (status === 101) {
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1').toLowerCase();
      if (name === 'connection' || name === 'upgrade') out[name] = raw[i + 1]!.toString('latin1');
    }
  }
  applyResponseHeaderEdits(route, out, table.config, format);
  const t = s.hcm.serverHeaderTransformation;
  if (t === 'OVERWRITE' || (t === 'APPEND_IF_ABSENT' && out.server === undefined)) out.server = s.hcm.serverName;
  if (s.hcm.alwaysSetRequestIdInResponse && request['x-request-id'] !== undefined) out['x-request-id'] = request['x-request-id'];
  if (s.suppressEnvoyHeaders) delete out['x-envoy-upstream-service-time'];
  else out['x-envoy-upstream-service-time'] = String(Math.round(elapsedMs));
  return out;
}

/** The client's Upgrade value as sent (repeated lines joined, as Envoy's header map reads them). */
function upgradeValue(req: IncomingMessage): string {
  const v = req.headers.upgrade;
  return (Array.isArray(v) ? v.join(', ') : v ?? '').trim();
}

/** HTTP/1.1 framing that announces a body: chunked, or a non-zero length. */
function declaresBody(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'transfer-encoding' || (name === 'content-length' && raw[i + 1]!.trim() !== '0')) return true;
  }
  return false;
}

function requestHeader(name: string, headers: HeaderMap, authority: string, path: string, method: string, scheme: string): string | undefined {
  switch (name) {
    case ':authority':
      return authority;
    case ':path':
      return path;
    case ':method':
      return method;
    case ':scheme':
      return scheme;
    default: {
      if (name.charCodeAt(0) === 58 /* ':' */) return undefined;
      const v = headers[name];
      return Array.isArray(v) ? v.join(',') : v;
    }
  }
}

/**
 * The downstream side of one upgrade stream: the connection manager's request stats (counted
 * when the connection closes, which every upgrade stream ends with), Envoy's upgrade counters,
 * and local replies.
 */
class UpgradeStream {
  readonly res: ServerResponse;
  route: CompiledRoute | null = null;
  #allowed = false;
  #tunnelled = false;
  #status = 0;

  constructor(private readonly stats: HttpStats, private readonly serverName: string, req: IncomingMessage, readonly socket: Socket) {
    const started = performance.now();
    stats.rqTotal.inc();
    stats.rqHttp1Total.inc();
    stats.rqActive.inc();
    this.res = closingResponse(req, socket);
    socket.once('close', () => {
      stats.rqActive.dec();
      if (this.#status > 0) stats.response(this.#status);
      stats.rqTime.observe(performance.now() - started);
      if (this.#allowed) {
        stats.cxUpgradesActive.dec();
        if (!this.#tunnelled) stats.upgradesFailed.inc();
      }
    });
  }

  /** upgrade_configs let it through (Envoy counts downstream_cx_upgrades_* from here). */
  allowed(): void {
    this.#allowed = true;
    this.stats.cxUpgradesTotal.inc();
    this.stats.cxUpgradesActive.inc();
  }

  /** A local reply; once a route is chosen, with its response_headers_to_add, as the router adds them. */
  reply(status: number, body: string, extra?: Record<string, string>): void {
    if (this.socket.destroyed) return;
    this.#status = status;
    const route = this.route;
    if (route && (route.route.responseHeadersToAdd.length > 0 || route.vhost.responseHeadersToAdd.length > 0)) {
      const headers: HeaderMap = { ...extra };
      applyResponseHeaderEdits(route, headers, EMPTY_EDITS, (v) => v);
      extra = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]));
    }
    sendLocalReply(this.res, status, body, this.serverName, extra);
  }

  downstream(head: Buffer): UpgradeDownstream {
    return {
      socket: this.socket,
      head,
      res: this.res,
      reply: (status, body, extra) => this.reply(status, body, extra),
      answered: (status) => {
        this.#status = status;
      },
      tunnelled: () => {
        this.#tunnelled = true;
      },
      idleTimedOut: () => this.stats.rqIdleTimeout.inc(),
    };
  }
}

const EMPTY_EDITS = { requestHeadersToAdd: [], requestHeadersToRemove: [], responseHeadersToAdd: [], responseHeadersToRemove: [] };
