import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ForwardAction, HttpConnectionManager } from '../config/model';
import { HttpAccessLog } from '../access-log/http-log';
import type { AccessLogManager } from '../access-log/manager';
import type { Logger } from '../log/logger';
import type { Runtime } from '../runtime/runtime';
import type { HeaderLookup } from '../router/matchers';
import { type CompiledRoute, type RouteTable, randomUint32 } from '../router/route-table';
import { applyRequestHeaderEdits, applyResponseHeaderEdits, chooseCluster, redirectLocation, rewriteHost, rewritePath } from '../router/router';
import type { Mirror } from '../shadow/mirror';
import type { ShadowStream } from '../shadow/writer';
import type { HttpStats, StatsScopes } from '../stats/scopes';
import type { ClusterManager } from '../upstream/cluster-manager';
import { type ForwardFailure, PrimaryExchange } from '../upstream/forward';
import { RetryPlan } from '../upstream/retry-plan';
import {
  type DownstreamInfo,
  type HeaderMap,
  type TrustSettings,
  firstValue,
  forwardRawResponse,
  headerFormatter,
  mapFromRaw,
  mutateRequestHeaders,
  plainAddress,
} from './headers';
import type { DownstreamRequest, DownstreamResponse } from './downstream';
import { GRPC_STATUS, isGrpcContentType, legacyGrpcRouteTimeout, streamDurationMs } from './grpc';
import { bodyFollows, mapUpgrade, pseudoOrHeader, trailersOf } from './request-head';
import type { StreamInfo } from './stream-info';
import { DELAYED_CLOSE_MS, LOCAL_REPLY_DRAIN_BYTES, awaitRequestEnd, bodyPending, lingeringClose } from './early-response';
import { requestHashKey } from './hash-policy';
import { internalAddressMatcher, nodeAddress } from './internal-address';
import { LOCAL_REPLY_BODIES, sendLocalReply } from './local-reply';
import { admitRequest } from './request-validation';
import { proxyUpgrade } from './upgrade';
import { closingResponse } from './upgrade-response';
import { replayBody, teeBody } from './request-body';
import { type RequestContext, flatHeaders } from './request-context';
import { ResponseHeadRules } from './response-head-rules';
import { type ActiveFilters, type FilterReply, HttpFilterChain } from './filters/chain';

export interface ConnectionManagerDeps {
  readonly clusters: ClusterManager;
  readonly mirror: Mirror;
  readonly stats: StatsScopes;
  readonly logger: Logger;
  readonly hostname: string;
  readonly runtime: Runtime;
  /** True once the proxy drains: the health_check filter then fails checks. */
  readonly draining: () => boolean;
  /** Where access_log lines go and the runtime their filters read; absent: no access logs. */
  readonly accessLog?: { readonly manager: AccessLogManager; readonly runtime: Runtime };
}

/** The router filter's settings that change what the router adds to requests and responses. */
export interface RouterSettings {
  readonly suppressEnvoyHeaders: boolean;
  /** The listener's per_connection_buffer_limit_bytes: the body kept for retries unless the route says (default 1 MiB). */
  readonly bufferLimitBytes?: number;
}

const FAILURE_REPLIES: Record<Exclude<ForwardFailure, 'downstream_reset'>, [number, string]> = {
  connect_failure: [503, LOCAL_REPLY_BODIES.connectFailure],
  reset: [503, LOCAL_REPLY_BODIES.reset],
  protocol_error: [503, LOCAL_REPLY_BODIES.protocolError],
  timeout: [504, LOCAL_REPLY_BODIES.timeout],
  no_healthy_upstream: [503, LOCAL_REPLY_BODIES.noHealthyUpstream],
  retry_buffer_overflow: [507, LOCAL_REPLY_BODIES.retryBufferOverflow],
  overflow: [503, LOCAL_REPLY_BODIES.overflow],
};

/**
 * Envoy's HTTP connection manager plus router for one listener: header rules, route lookup,
 * local replies, then the primary upstream and its shadows. Phases, in order:
 *   1. count and normalise (hop-by-hop; internal or external, as Envoy decides it, with what
 *      external requests lose: x-envoy-*, internal_only_headers; x-forwarded-*, x-request-id)
 *   2. route (404 when none), direct response or redirect
 *   3. cluster (503 when unknown), header edits, rewrites, host (503 when none is healthy)
 *   4. shadows started, then the primary; the body is teed to both as it arrives
 *   5. the primary's response streamed back; shadows never reach the client
 */
export class ConnectionManager {
  readonly stats: HttpStats;
  readonly #trust: TrustSettings;
  readonly #filters: HttpFilterChain;
  readonly #responseRules: ResponseHeadRules;
  /** null: no access_log, and requests carry no facts. */
  readonly #log: HttpAccessLog | null;

  constructor(
    readonly hcm: HttpConnectionManager,
    private readonly routes: () => RouteTable | null,
    private readonly router: RouterSettings,
    private readonly deps: ConnectionManagerDeps,
  ) {
    this.stats = deps.stats.http(hcm.statPrefix);
    this.#responseRules = new ResponseHeadRules(hcm, router.suppressEnvoyHeaders);
    this.#trust = { isInternal: internalAddressMatcher(hcm.internalAddressConfig), nodeAddress: nodeAddress() };
    this.#filters = new HttpFilterChain(hcm.httpFilters, {
      statPrefix: hcm.statPrefix, stats: deps.stats, runtime: deps.runtime, clusters: deps.clusters, logger: deps.logger, draining: deps.draining,
    });
    this.#log = HttpAccessLog.compile(hcm.accessLog, deps.accessLog?.manager, deps.accessLog?.runtime ?? deps.runtime);
  }

  /** The listener's per_connection_buffer_limit_bytes (1 MiB by default). */
  get bufferLimitBytes(): number {
    return this.router.bufferLimitBytes ?? 1024 * 1024;
  }

  handle(req: DownstreamRequest, res: DownstreamResponse, info: StreamInfo): void {
    const stats = this.stats;
    const started = performance.now();
    stats.rqTotal.inc();
    (info.protocol === 'HTTP/2' ? stats.rqHttp2Total : stats.rqHttp1Total).inc();
    stats.rqActive.inc();
    const log = this.#log;
    const facts = log?.begin(req, res, info, started) ?? null;
    // One close listener per request: the stats, what the forwarding path and filters must do then, then the access log.
    let onClose: (() => void) | null = null;
    let filters: ActiveFilters | null = null;
    res.once('close', () => {
      stats.rqActive.dec();
      stats.response(res.statusCode);
      stats.rqTime.observe(performance.now() - started);
      onClose?.();
      filters?.done();
      if (facts) log!.end(facts, req, res);
    });
    // Local replies to gRPC requests are gRPC errors (Envoy's rule), decided on the client's content-type.
    const grpc = isGrpcContentType(req.headers['content-type']);
    if (!admitRequest(req, res, this.hcm, stats, grpc, facts ? (status, counter) => facts.refused(status, counter) : undefined)) return;

    // Built from the raw list in one pass (Node's req.headers would be a second, lossier copy).
    const headers = mapFromRaw(req.rawHeaders);
    // We answer 100-continue ourselves (Node does), so the upstream must not be asked again.
    delete headers.expect;
    // As Envoy: the route table is snapped first, and its internal_only_headers are gone from
    // external requests before the route, cluster_header or any mirror policy reads a header.
    const table = this.routes();
    const trust = mutateRequestHeaders(headers, this.hcm, { address: plainAddress(req.socket.remoteAddress), scheme: info.scheme },
      this.#trust, table?.config.internalOnlyHeaders ?? NO_HEADERS);
    const down: DownstreamInfo = { remoteAddress: trust.remoteAddress, localAddress: plainAddress(req.socket.localAddress), scheme: info.scheme };
    facts?.requestHeaders(headers, trust.remoteAddress);
    const request: RequestContext = { req, res, grpc, http2: info.protocol === 'HTTP/2', started, marks: { healthCheck: false }, filters: null, facts };
    const host = firstValue(headers.host) ?? '';
    const authority = host.toLowerCase();
    const path = req.url ?? '/';
    const method = req.method ?? 'GET';
    const lookup: HeaderLookup = (name) => pseudoOrHeader(name, headers, authority, path, method, info.scheme);

    const route = table?.match({ authority, path, header: lookup }) ?? null;
    if (route) facts?.route(route.route.name);
    // Weighted clusters are picked once, here, so that filters (fault's upstream_cluster) and the
    // router agree on the cluster, as in Envoy where the route entry picks it.
    const action = route?.route.action;
    const clusterName = action?.kind === 'forward' ? chooseCluster(action.cluster, lookup, randomUint32()) || null : null;
    const hasBody = 'stream' in req ? !req.stream.endAfterHeaders : bodyFollows(req.rawHeaders);
    const next = (): void => {
      onClose = this.#route(request, route, clusterName, headers, down, lookup, table, hasBody);
    };
    filters = this.#filters.empty ? null : this.#filters.start({
      method, path, authority, scheme: info.scheme, protocol: info.protocol, headers, remoteAddress: down.remoteAddress,
      directRemoteAddress: plainAddress(req.socket.remoteAddress), localAddress: down.localAddress, localPort: req.socket.localPort ?? 0, tls: info.tls, grpc,
      connection: ('stream' in req ? req.stream.session : undefined) ?? req.socket,
      route, hasBody, clusterName, marks: request.marks,
    }, hasBody ? req : null);
    if (filters === null) return next();
    request.filters = filters;
    const active = filters;
    const decoded = active.decodeHeaders();
    if (!(decoded instanceof Promise)) return this.#afterFilters(request, decoded, route, next);
    // A filter that waits (a fault delay): the body stays unread meanwhile, and the client may leave.
    decoded.then((r) => {
      if (!active.finished && !res.destroyed) this.#afterFilters(request, r, route, next);
    }, (err: unknown) => {
      this.deps.logger.error({ err: (err as Error).message }, 'HTTP filter failed');
      if (!res.destroyed) this.#reply(request, 500, '', route ?? undefined);
    });
  }

  /** The filters said their word: a local reply, or on to the router. */
  #afterFilters(request: RequestContext, decoded: FilterReply | null, route: CompiledRoute | null, next: () => void): void {
    if (decoded === null) return next();
    const { reply, index } = decoded;
    if (reply.flag) request.facts?.flag(reply.flag, reply.details);
    else if (reply.details) request.facts?.detail(reply.details);
    const extra: HeaderMap = { ...reply.headers };
    request.filters?.encodeHeaders(reply.status, extra, index);
    // A filter that stopped reading the body (the buffer filter's 413) leaves the rest unframed, as in Envoy.
    if (decoded.fromBody && this.#closesEarly(request, true, request.req.socket)) extra.connection = 'close';
    this.#reply(request, reply.status, reply.body ?? '', route ?? undefined, flatHeaders(extra), reply.grpcStatus, true);
  }

  /** Route action: 404 without a route, a direct response or redirect, else the primary and its shadows. */
  #route(request: RequestContext, route: CompiledRoute | null, clusterName: string | null, headers: HeaderMap, down: DownstreamInfo,
    lookup: HeaderLookup, table: RouteTable | null, hasBody: boolean): (() => void) | null {
    const { stats } = this;
    if (route === null) {
      stats.noRoute.inc();
      request.facts?.flag('NR', 'route_not_found');
      this.#reply(request, 404, '');
      return null;
    }
    const action = route.route.action;
    if (action.kind === 'direct_response') {
      stats.directResponse.inc();
      request.facts?.detail('direct_response');
      this.#reply(request, action.status, action.body ?? '', route);
      return null;
    }
    if (action.kind === 'redirect') {
      const path = request.req.url ?? '/';
      const location = redirectLocation(action, route, firstValue(headers.host) ?? '', path, down.scheme);
      this.#reply(request, action.responseCode, '', route, { location });
      return null;
    }
    return this.#forward(request, route, action, clusterName, headers, down, lookup, table!, hasBody);
  }

  #forward(request: RequestContext, route: CompiledRoute, action: ForwardAction, clusterName: string | null, headers: HeaderMap,
    down: DownstreamInfo, lookup: HeaderLookup, table: RouteTable, hasBody: boolean): (() => void) | null {
    const { req, res } = request;
    // The route's idle_timeout replaces stream_idle_timeout for the rest of the stream (0: none).
    if (action.idleTimeoutMs !== null) req.setTimeout(action.idleTimeoutMs);
    const cluster = clusterName ? this.deps.clusters.get(clusterName) : undefined;
    if (!cluster) {
      this.stats.noCluster.inc();
      request.facts?.flag('NC', 'cluster_not_found');
      this.#reply(request, action.clusterNotFoundResponseCode, '', route);
      return null;
    }
    request.facts?.upstreamCluster(cluster.name);
    const format = headerFormatter(down, headers, this.deps.hostname);
    applyRequestHeaderEdits(route, headers, table.config, format);
    const weighted = action.cluster.kind === 'weighted_clusters' ? action.cluster.clusters.find((c) => c.name === clusterName) ?? null : null;
    if (weighted) applyRequestHeaderEdits(route, headers, weighted, format);
    const timeoutMs = this.#routeTimeout(request, action, headers);
    if (timeoutMs > 0 && !this.router.suppressEnvoyHeaders) headers['x-envoy-expected-rq-timeout-ms'] = String(timeoutMs);

    if (cluster.active >= cluster.config.circuitBreakers.maxRequests) {
      cluster.stats.pendingOverflow.inc();
      request.facts?.flag('UO', 'upstream_reset_before_response_started{overflow}');
      this.#reply(request, 503, LOCAL_REPLY_BODIES.overflow, route, { 'x-envoy-overloaded': 'true' });
      return null;
    }
    // Route hash_policy: computed only when the route has one and the cluster hashes (RING_HASH).
    const hashKey = action.hashPolicy.length === 0 || cluster.config.lbPolicy !== 'RING_HASH' ? null
      : requestHashKey(action.hashPolicy, { headers, pseudo: lookup, sourceIp: down.remoteAddress, path: req.url ?? '/' });
    const host = cluster.pick(hashKey);
    if (host === null) {
      cluster.stats.noneHealthy.inc();
      request.facts?.flag('UH', 'no_healthy_upstream');
      this.#reply(request, 503, LOCAL_REPLY_BODIES.noHealthyUpstream, route);
      return null;
    }
    rewriteHost(action, headers, host, weighted?.hostRewriteLiteral ?? null);
    // Before the shadows copy the headers: the x-envoy-retry-* ones are the primary's alone.
    const retry = RetryPlan.create({ route, action, cluster, headers, lookup, hashKey, weightedHostLiteral: weighted?.hostRewriteLiteral ?? null,
      routeTimeoutMs: timeoutMs, suppressEnvoyHeaders: this.router.suppressEnvoyHeaders, listenerBufferLimitBytes: this.router.bufferLimitBytes ?? 1024 * 1024 });
    const upstreamPath = rewritePath(action, route, req.url ?? '/');
    const method = req.method ?? 'GET';

    // Cluster-level policies, when present, replace the route's (Envoy's newest rule).
    const policies = cluster.config.mirrorPolicies.length > 0 ? cluster.config.mirrorPolicies : route.mirrorPolicies;
    const mirrored = (policies.length === 0 && route.extPolicies.length === 0) || method === 'CONNECT'
      ? null
      : this.deps.mirror.start(policies, route.extPolicies, {
          method, path: upstreamPath, headers, header: lookup, hasBody, timeoutMs, downstreamProtocol: request.http2 ? 'HTTP/2' : 'HTTP/1.1',
          proxyAddress: down.localAddress, remoteAddress: down.remoteAddress, format, routeName: route.route.name,
          shadowLog: request.facts ? this.#log!.shadowSink(request.facts, req) : null,
        });
    const shadows = mirrored?.streams ?? NO_SHADOWS;

    // A body a filter read whole (the buffer filter) goes as it is; the client's stream has ended.
    const buffered = request.filters?.body ?? null;
    const body = buffered !== null ? replayBody(buffered, shadows, req) : hasBody ? (shadows.length > 0 ? teeBody(req, shadows) : req) : null;
    // Node detaches the socket from the request once the response is done: keep our own handle.
    const socket = req.socket;
    const exchange = new PrimaryExchange({
      cluster, host, method, path: upstreamPath, headers, body, timeoutMs,
      requestTrailers: () => trailersOf(req),
      downstreamProtocol: request.http2 ? 'HTTP/2' : 'HTTP/1.1',
      suppressEnvoyHeaders: this.router.suppressEnvoyHeaders,
      responseHeaders: (status, raw) => {
        request.facts?.upstreamResponse();
        const filters = request.filters?.hasEncoders ? request.filters : null;
        const out = this.#responseRules.plain(route) && filters === null
          ? forwardRawResponse(raw, this.#responseRules.serverOverride())
          : this.#responseRules.apply(mapFromRaw(raw), route, table, format, headers);
        if (filters !== null) filters.encodeUpstreamHeaders(status, out as HeaderMap);
        if (this.#closesEarly(request, hasBody, socket)) addConnectionClose(out);
        return out;
      },
      localReply: (failure, replyHeaders) => {
        const [status, text] = FAILURE_REPLIES[failure as keyof typeof FAILURE_REPLIES];
        const reply = (): void => {
          const close = this.#closesEarly(request, hasBody, socket);
          if (!res.destroyed) this.#reply(request, status, text, route, replyHeaders ? { ...replyHeaders, ...(close ? CONNECTION_CLOSE : {}) } : close ? CONNECTION_CLOSE : undefined);
        };
        if (bodyPending(req, hasBody)) awaitRequestEnd(req, LOCAL_REPLY_DRAIN_BYTES, DELAYED_CLOSE_MS, reply);
        else reply();
      },
      syncWait: mirrored?.sync ?? null,
      tap: mirrored?.tap ?? null,
      retry,
      onFailure: request.facts ? (failure, err) => request.facts!.upstreamFailed(failure, err) : undefined,
      onAttempt: request.facts ? (h) => request.facts!.upstreamAttempt(h) : undefined,
      responseBody: request.filters?.hasBodyEncoders ? () => request.filters!.encodeBody(res) : null,
    }, res);
    exchange.start();
    const streamMs = streamDurationMs(headers, action.maxStreamDuration, request.grpc);
    const streamCap = streamMs > 0 ? this.#capStream(request, exchange, streamMs - (performance.now() - request.started), route) : null;

    if (hasBody && buffered === null) req.once('end', () => exchange.requestComplete());
    else {
      exchange.requestComplete();
      req.resume();
    }
    return () => {
      if (streamCap) clearTimeout(streamCap);
      // A no-op once the exchange completed; HTTP/2 marks a reset stream's response finished, so
      // the response's own state cannot tell a reset from a completed answer.
      exchange.downstreamReset();
      // The shadows got the body through 'data' and 'end': without 'end' theirs is incomplete (even when
      // Node parsed it all, it may still sit unread in a request the client has left), so abort them.
      if (!req.readableEnded) {
        for (const s of shadows) s.abort();
        // What the primary left unread of a complete request: drained, or the paused request would
        // keep this keep-alive connection from reading its next one.
        if (res.writableFinished && req.complete) {
          req.unpipe();
          req.resume();
        }
      }
    };
  }

  /** An HTTP/1.1 Upgrade request (WebSocket): see upgrade.ts. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, info: StreamInfo): void {
    // Envoy ignores `Upgrade: h2c` (no h2c upgrade) and serves the request as HTTP/1.1; Node has
    // already let go of the connection, so it closes after this one response.
    if (mapUpgrade(req.rawHeaders) === 'h2c' && !bodyFollows(req.rawHeaders)) {
      (socket as Socket).on('error', () => undefined);
      this.handle(req, closingResponse(req, socket as Socket), info);
      return;
    }
    const { clusters, logger, hostname } = this.deps;
    proxyUpgrade({ hcm: this.hcm, table: this.routes(), suppressEnvoyHeaders: this.router.suppressEnvoyHeaders, clusters, logger, hostname,
      stats: this.stats, trust: this.#trust }, req, socket, head, info);
  }

  /**
   * A response starting while the upload is still coming closes the connection after it (Envoy's
   * rule, counted as downstream_rq_response_before_rq_complete); one whose request has all
   * arrived keeps it, whatever of the body the primary left unread (Node drains it).
   */
  #closesEarly(request: RequestContext, hasBody: boolean, socket: DownstreamRequest['socket']): boolean {
    // An HTTP/2 stream ends alone: its connection carries other streams on.
    if (request.http2 || !bodyPending(request.req, hasBody)) return false;
    this.stats.rqResponseBeforeRqComplete.inc();
    lingeringClose(socket);
    return true;
  }

  /**
   * Envoy's route timeout, or for a gRPC request on a route with the legacy max_grpc_timeout, the
   * header's (capped); then grpc-timeout carries what the proxy will wait, as Envoy rewrites it.
   */
  #routeTimeout(request: RequestContext, action: ForwardAction, headers: HeaderMap): number {
    const fromHeader = request.grpc ? legacyGrpcRouteTimeout(headers, action.maxStreamDuration) : null;
    if (fromHeader === null) return action.timeoutMs;
    if (fromHeader > 0) headers['grpc-timeout'] = `${fromHeader}m`;
    return fromHeader;
  }

  /** max_stream_duration: the whole stream, from its start; past it a 408 (gRPC: DEADLINE_EXCEEDED), or a reset. */
  #capStream(request: RequestContext, exchange: PrimaryExchange, ms: number, route: CompiledRoute): NodeJS.Timeout {
    ms = Math.max(ms, 0);
    const timer = setTimeout(() => {
      request.facts?.streamCapped();
      exchange.downstreamReset();
      if (request.res.headersSent) request.res.destroy();
      else this.#reply(request, 408, LOCAL_REPLY_BODIES.streamDuration, route, undefined, GRPC_STATUS.DEADLINE_EXCEEDED);
    }, ms);
    timer.unref();
    return timer;
  }

  /** A local reply; `encoded` when the filters before the one that answered have seen its headers already. */
  #reply(request: RequestContext, status: number, body: string, route?: CompiledRoute, extra?: Record<string, string>, grpcStatus?: number, encoded = false): void {
    const { req, res } = request;
    if (!encoded && request.filters?.hasEncoders) {
      const headers: HeaderMap = { ...extra };
      request.filters.encodeHeaders(status, headers);
      extra = flatHeaders(headers);
    }
    if (route && (route.route.responseHeadersToAdd.length > 0 || route.vhost.responseHeadersToAdd.length > 0)) {
      const headers: HeaderMap = { ...extra };
      applyResponseHeaderEdits(route, headers, EMPTY_EDITS, (v) => v);
      extra = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]));
    }
    request.facts?.localReply(body);
    sendLocalReply(res, status, body, this.hcm.serverName, extra, request.grpc ? { grpcStatus } : null);
    // Drain what the client still sends so the connection can be reused.
    if (!req.complete) req.resume();
  }
}

const NO_SHADOWS: readonly ShadowStream[] = [];
const NO_HEADERS: readonly string[] = [];
const CONNECTION_CLOSE = { connection: 'close' };
const EMPTY_EDITS = { requestHeadersToAdd: [], requestHeadersToRemove: [], responseHeadersToAdd: [], responseHeadersToRemove: [] };

function addConnectionClose(headers: string[] | HeaderMap): void {
  if (Array.isArray(headers)) headers.push('connection', 'close');
  else headers.connection = 'close';
}

