import * as os from 'node:os';
import type { HeaderToAdd, RuntimeFraction } from '../../config/base-model';
import { type Ctx, type Pb, at, durationMs, each, fail, headerToAdd, runtimeFraction, wrapped } from '../../config/decode/common';
import { protoRoot } from '../../config/proto';
import { randomUint32 } from '../../router/route-table';
import type { Cell } from '../../stats/registry';
import { type HeaderMap, applyHeadersToAdd, headerFormatter } from '../headers';
import { TokenBucket } from './token-bucket';
import type { FilterEnv, FilterRequest, FilterStream, HttpFilterKind, HttpFilterRunner, LocalReply } from './types';

// envoy.filters.http.local_ratelimit: a token bucket in this process (one for the filter, one per
// per-route config, or one per downstream connection), 429 "local_rate_limited" when it is empty
// and the limit is enforced. Descriptors (which need the route's rate_limits actions) are not
// declared in our proto, so config naming them is refused by name.

const LOCAL_RATE_LIMIT = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
/** gRPC RESOURCE_EXHAUSTED, for rate_limited_as_resource_exhausted. */
const RESOURCE_EXHAUSTED = 8;
const MAX_HEADERS = 10;

interface BucketSettings {
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
}

interface LocalRateLimitSettings {
  readonly statPrefix: string;
  readonly status: number;
  /** null: no bucket (allowed in http_filters only), and then nothing is limited. */
  readonly bucket: BucketSettings | null;
  /** Unset: 0 %, as in Envoy. */
  readonly filterEnabled: RuntimeFraction | null;
  /** Unset: 0 %, as in Envoy. */
  readonly filterEnforced: RuntimeFraction | null;
  readonly responseHeadersToAdd: readonly HeaderToAdd[];
  readonly requestHeadersToAddWhenNotEnforced: readonly HeaderToAdd[];
  readonly perConnection: boolean;
  readonly xRateLimitHeaders: boolean;
  readonly resourceExhausted: boolean;
}

function decodeLocalRateLimit(c: Pb, ctx: Ctx, perRoute: boolean): LocalRateLimitSettings {
  const statPrefix = String(c.stat_prefix ?? '');
  if (!statPrefix) fail(at(ctx, 'stat_prefix'), 'stat_prefix is required');
  if (perRoute && !c.token_bucket) fail(at(ctx, 'token_bucket'), 'token_bucket is required in a per-route config');
  const headers = (field: string): HeaderToAdd[] => {
    const list = each(ctx, c, field, headerToAdd);
    if (list.length > MAX_HEADERS) fail(at(ctx, field), `at most ${MAX_HEADERS} headers`);
    return list;
  };
  return {
    statPrefix,
    status: decodeStatus(c.status as Pb | undefined, at(ctx, 'status')),
    bucket: c.token_bucket ? decodeBucket(c.token_bucket as Pb, at(ctx, 'token_bucket')) : null,
    filterEnabled: runtimeFraction(c.filter_enabled as Pb | undefined),
    filterEnforced: runtimeFraction(c.filter_enforced as Pb | undefined),
    responseHeadersToAdd: headers('response_headers_to_add'),
    requestHeadersToAddWhenNotEnforced: headers('request_headers_to_add_when_not_enforced'),
    perConnection: Boolean(c.local_rate_limit_per_downstream_connection),
    xRateLimitHeaders: c.enable_x_ratelimit_headers === 'DRAFT_VERSION_03',
    resourceExhausted: Boolean(c.rate_limited_as_resource_exhausted),
  };
}

/** Envoy's HttpStatus: a defined StatusCode other than Empty; below 400 it means 429, as in Envoy. */
function decodeStatus(s: Pb | undefined, ctx: Ctx): number {
  if (!s) return 429;
  // Decoded with enums as names: a number here is one the enum does not define.
  const code = typeof s.code === 'string' ? protoRoot().lookupEnum('envoy.type.v3.StatusCode').values[s.code] ?? 0 : 0;
  if (code === 0) fail(at(ctx, 'code'), s.code === undefined || s.code === 'Empty' ? 'code is required' : `${String(s.code)} is not one of Envoy's StatusCode values`);
  return code >= 400 && code < 600 ? code : 429;
}

function decodeBucket(b: Pb, ctx: Ctx): BucketSettings {
  const maxTokens = Number(b.max_tokens ?? 0);
  if (!(maxTokens > 0)) fail(at(ctx, 'max_tokens'), 'must be greater than 0');
  const tokensPerFill = Number(wrapped(b.tokens_per_fill as Pb | undefined, 1));
  if (!(tokensPerFill > 0)) fail(at(ctx, 'tokens_per_fill'), 'must be greater than 0');
  const fillIntervalMs = durationMs(b.fill_interval as Pb | undefined, 0);
  if (!b.fill_interval) fail(at(ctx, 'fill_interval'), 'fill_interval is required');
  else if (!(fillIntervalMs > 0)) fail(at(ctx, 'fill_interval'), 'must be greater than 0s');
  return { maxTokens, tokensPerFill, fillIntervalMs: Math.max(fillIntervalMs, 1) };
}

/** Envoy's <stat_prefix>.http_local_rate_limit.* counters (not under http.<hcm prefix>). */
interface RateLimitStats {
  readonly enabled: Cell;
  readonly enforced: Cell;
  readonly rateLimited: Cell;
  readonly ok: Cell;
}

function rateLimitStats(env: FilterEnv, statPrefix: string): RateLimitStats {
  const l = { envoy_local_http_ratelimit_prefix: statPrefix };
  const counter = (name: string, help: string): Cell =>
    env.stats.registry.family('counter', `envoy_http_local_rate_limit_${name}`, help, ['envoy_local_http_ratelimit_prefix'],
      (v) => `${String(v.envoy_local_http_ratelimit_prefix)}.http_local_rate_limit.${name}`).labels(l);
  return {
    enabled: counter('enabled', 'Requests the local rate limit filter was enabled for'),
    enforced: counter('enforced', 'Rate-limited requests that were refused'),
    rateLimited: counter('rate_limited', 'Requests that found the token bucket empty'),
    ok: counter('ok', 'Requests that took a token'),
  };
}

class LocalRateLimitRunner implements HttpFilterRunner<LocalRateLimitSettings> {
  // One bucket per settings object: the filter's, and each per-route config's own, as in Envoy;
  // with local_rate_limit_per_downstream_connection, one per settings and connection.
  readonly #buckets = new WeakMap<LocalRateLimitSettings, TokenBucket>();
  readonly #connectionBuckets = new WeakMap<LocalRateLimitSettings, WeakMap<object, TokenBucket>>();
  readonly #stats = new WeakMap<LocalRateLimitSettings, RateLimitStats>();
  readonly #hostname = os.hostname();

  constructor(private readonly settings: LocalRateLimitSettings, private readonly env: FilterEnv) {}

  start(request: FilterRequest, perRoute: LocalRateLimitSettings | undefined): FilterStream | null {
    const s = perRoute ?? this.settings;
    if (s.bucket === null) return null;
    return new RateLimitStream(this, s, request);
  }

  sample(f: RuntimeFraction | null): boolean {
    return f !== null && this.env.runtime.featureEnabled(f.runtimeKey, f.defaultValue, randomUint32());
  }

  stats(s: LocalRateLimitSettings): RateLimitStats {
    let st = this.#stats.get(s);
    if (!st) this.#stats.set(s, (st = rateLimitStats(this.env, s.statPrefix)));
    return st;
  }

  bucket(s: LocalRateLimitSettings, b: BucketSettings, connection: object, now: number): TokenBucket {
    const make = (): TokenBucket => new TokenBucket(b.maxTokens, b.tokensPerFill, b.fillIntervalMs, now);
    if (s.perConnection) {
      let byConnection = this.#connectionBuckets.get(s);
      if (!byConnection) this.#connectionBuckets.set(s, (byConnection = new WeakMap()));
      let bucket = byConnection.get(connection);
      if (!bucket) byConnection.set(connection, (bucket = make()));
      return bucket;
    }
    let bucket = this.#buckets.get(s);
    if (!bucket) this.#buckets.set(s, (bucket = make()));
    return bucket;
  }

  format(request: FilterRequest): (value: string) => string {
    return headerFormatter({ remoteAddress: request.remoteAddress, localAddress: request.localAddress, scheme: request.scheme }, request.headers, this.#hostname);
  }
}

class RateLimitStream implements FilterStream {
  /** The bucket this request drew from, for the X-RateLimit-* headers. */
  #bucket: TokenBucket | null = null;
  /** Only with X-RateLimit-* headers: other responses need no encode phase. */
  readonly encodeHeaders?: (status: number, headers: HeaderMap) => void;

  constructor(private readonly runner: LocalRateLimitRunner, private readonly s: LocalRateLimitSettings, private readonly request: FilterRequest) {
    if (s.xRateLimitHeaders) this.encodeHeaders = (_status, headers) => this.#addRateLimitHeaders(headers);
  }

  decodeHeaders(): LocalReply | undefined {
    const { runner, s, request } = this;
    if (!runner.sample(s.filterEnabled)) return undefined;
    const stats = runner.stats(s);
    stats.enabled.inc();
    const now = performance.now();
    const bucket = runner.bucket(s, s.bucket!, request.connection, now);
    this.#bucket = bucket;
    if (bucket.take(now)) {
      stats.ok.inc();
      return undefined;
    }
    stats.rateLimited.inc();
    if (!runner.sample(s.filterEnforced)) {
      applyHeadersToAdd(request.headers, s.requestHeadersToAddWhenNotEnforced, runner.format(request));
      return undefined;
    }
    stats.enforced.inc();
    const headers: HeaderMap = {};
    applyHeadersToAdd(headers, s.responseHeadersToAdd, runner.format(request));
    this.#addRateLimitHeaders(headers);
    return {
      status: s.status,
      body: 'local_rate_limited',
      headers: flat(headers),
      ...(s.resourceExhausted ? { grpcStatus: RESOURCE_EXHAUSTED } : {}),
      details: 'local_rate_limited',
      flag: 'RL',
    };
  }

  #addRateLimitHeaders(headers: HeaderMap): void {
    const bucket = this.#bucket;
    if (!this.s.xRateLimitHeaders || bucket === null) return;
    const now = performance.now();
    // Added beside any the upstream sent, as Envoy adds them.
    add(headers, 'x-ratelimit-limit', String(bucket.maxTokens));
    add(headers, 'x-ratelimit-remaining', String(bucket.remaining(now)));
    add(headers, 'x-ratelimit-reset', String(bucket.resetSeconds(now)));
  }
}

function add(headers: HeaderMap, name: string, value: string): void {
  const prior = headers[name];
  headers[name] = prior === undefined ? value : [...(Array.isArray(prior) ? prior : [prior]), value];
}

function flat(headers: HeaderMap): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

export const localRateLimitFilter: HttpFilterKind<LocalRateLimitSettings, LocalRateLimitSettings> = {
  configType: LOCAL_RATE_LIMIT,
  perRouteTypes: [LOCAL_RATE_LIMIT],
  decode: (c, ctx) => decodeLocalRateLimit(c, ctx, false),
  decodePerRoute: (c, ctx) => decodeLocalRateLimit(c, ctx, true),
  build: (settings, env) => new LocalRateLimitRunner(settings, env),
};
