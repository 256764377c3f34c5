import type { ResponseTap } from '../compare/capture';
import { type CompareSink, ComparePolicy } from '../compare/compare-policy';
import { endpointName } from '../compare/endpoint';
import type { CompareSession } from '../compare/session';
import type { CompareConfig, ExtMirrorPolicy, MirrorFilterConfig } from '../config/model';
import { firstListValue, firstValue, setHeader } from '../http/headers';
import type { Logger } from '../log/logger';
import { randomUint32 } from '../router/route-table';
import type { Runtime } from '../runtime/runtime';
import { PolicyClusterStats, type PolicyStats, type ShadowCounters, type StatsScopes } from '../stats/scopes';
import type { ClusterManager, UpstreamCluster } from '../upstream/cluster-manager';
import { shadowHeaders } from './clone';
import { DeferredShadowStream } from './deferred-stream';
import { type HookContext, type HookRequest, type HookRunner, createHookContext } from './hooks';
import type { MirrorLimiter } from './limit/limiter';
import type { PrimaryRequest } from './mirror';
import { reportSkip, reportingCounters } from './shadow-end';
import type { MirrorResources } from './resources';
import { consistentSample } from './sample';
import { clusterAllowed, headerStatsName } from './select';
import type { ShadowOptions, ShadowRequest, ShadowResult, ShadowStream, ShadowWriter } from './writer';

/** What starting one extended policy gives back to the mirror. */
export interface ExtStart {
  readonly stream: ShadowStream | null;
  /** Sync mode: resolves with the headers afterMirror adds to the primary's response, never later than sync_timeout. */
  readonly sync: Promise<Record<string, string>> | null;
  /** A compared request: what the primary's response must be shown to as it streams. */
  readonly tap?: ResponseTap | null;
}

const NOTHING: ExtStart = { stream: null, sync: null };

/** The process's comparison results, which each comparing policy registers with (src/compare/hub.ts). */
export interface CompareHub extends CompareSink {
  configure(policy: string, config: CompareConfig, filter: MirrorFilterConfig | null): void;
}
const NO_HEADERS: Record<string, string> = {};

export interface ExtPolicyDeps {
  readonly clusters: ClusterManager;
  readonly writer: ShadowWriter;
  readonly runtime: Runtime;
  readonly stats: StatsScopes;
  readonly resources: MirrorResources;
  readonly logger: Logger;
  readonly maxBufferedBodyBytes: number;
  readonly maxInFlightPerCluster: number;
  /** Where comparing policies put their results; null: `compare` cannot run here. */
  readonly compare?: CompareHub | null;
}

/**
 * An extended mirror policy ready to run: its budget and hooks resolved once per config. Per
 * request it decides (methods, target, sampling, hooks, budget), builds the shadow (path,
 * headers, marker, body or not) and hands it to the one shadow writer with its own timeouts,
 * retries and, in sync mode, a promise the primary's response waits on.
 */
export class CompiledExtPolicy {
  readonly stats: PolicyStats;
  readonly #limiter: MirrorLimiter | null;
  readonly #hooks: HookRunner | null;
  readonly #byCluster = new Map<string, PolicyClusterStats>();
  #count = 0;
  /** A `host` target's cluster, made when the policy is compiled so that its name resolves before traffic. */
  readonly #hostCluster: UpstreamCluster | null = null;
  /** False until the host cluster's first resolution is done; until then shadows wait for it (deferred). */
  #hostReady = true;

  readonly #maxInFlight: number;
  readonly #compare: ComparePolicy | null = null;
  #referenceMissingLogged = false;

  constructor(
    readonly policy: ExtMirrorPolicy,
    filter: MirrorFilterConfig | null,
    private readonly deps: ExtPolicyDeps,
  ) {
    this.#maxInFlight = filter?.maxInflightPerCluster ?? 0;
    this.stats = deps.stats.policy(policy.name);
    this.#limiter = policy.limit ? deps.resources.limiter(policy.limit, filter) : null;
    const h = policy.hooks;
    this.#hooks = h ? deps.resources.hooks(policy.name, h.module, h.timeoutMs, (hook, outcome) => this.stats.hook(hook, outcome)) : null;
    if (policy.compare) {
      if (!deps.compare) throw new Error('compare needs the comparison store, which this process has not');
      deps.compare.configure(policy.name, policy.compare, filter);
      this.#compare = new ComparePolicy(policy.name, policy.compare, deps.compare, this.stats);
    }
    const t = policy.target;
    if (t.kind === 'host') {
      this.#hostCluster = deps.clusters.hostCluster(t.url, t.host, t.port);
      this.#hostReady = false;
      const ready = (): void => void (this.#hostReady = true);
      this.#hostCluster.ready.then(ready, ready);
    }
  }

  start(p: PrimaryRequest): ExtStart {
    const policy = this.policy;
    if (policy.methods !== null && !policy.methods.has(p.method)) {
      this.stats.skipped('method');
      reportSkip(p.shadowLog, this.policy.target.kind === 'cluster' ? this.policy.target.name : '', policy.name, 'method');
      return NOTHING;
    }
    const target = this.#target(p);
    if (target === null) return NOTHING;
    // One set of counters per shadow: its ending is counted (and reported) once, whichever step ends it.
    const counters = this.#countersFor(target.name, p);
    if (!this.#sample(p)) {
      counters.skipped('sampling');
      return NOTHING;
    }
    const session = this.#compare?.begin(p.method, endpointName(p.routeName ?? '', p.method, p.path), performance.now()) ?? null;
    const tap = session?.primary ?? null;
    const decideLater = !this.#hostReady || this.#limiter !== null || this.#hooks?.hasBefore === true || this.#hooks?.hasRewrite === true;
    if (!decideLater) return { ...this.#send(p, target, counters, null, null, undefined, session), tap };

    // Shadows waiting for a hook or a budget hold body too: they count against the in-flight cap.
    if (this.#deciding >= (this.#maxInFlight || this.deps.maxInFlightPerCluster)) {
      counters.dropped('inflight_cap');
      session?.skip();
      return NOTHING;
    }
    const cap = this.#bodyCap();
    const deferred = new DeferredShadowStream(cap.bytes, () => counters.dropped(cap.reason));
    this.#deciding++;
    const sync = this.#decide(p, target, counters, deferred, session);
    void sync.finally(() => {
      this.#deciding--;
      // Not sent after all (a hook or the budget said no, the body overflowed): nothing to compare.
      session?.cancel();
    });
    return { stream: deferred, sync: policy.mode === 'sync' ? this.#bounded(sync) : null, tap };
  }

  /** Shadows of this policy that went the slow way and have not ended yet (deciding or in flight). */
  #deciding = 0;

  /** The slow path: hooks and the budget may answer asynchronously; the body waits in `deferred`. */
  async #decide(p: PrimaryRequest, target: UpstreamCluster, counters: ShadowCounters, deferred: DeferredShadowStream,
    session: CompareSession | null): Promise<Record<string, string>> {
    // A host named by DNS: the first shadows wait for its first resolution instead of finding no host.
    if (!this.#hostReady) await this.#hostCluster!.ready;
    const hooks = this.#hooks;
    const ctx = this.#hookContext(p, target);
    if (hooks?.hasBefore && !(await hooks.beforeMirror(ctx))) {
      deferred.discard();
      counters.skipped('hook');
      return NO_HEADERS;
    }
    if (this.#limiter !== null) {
      const decision = await this.#limiter.acquire();
      if (decision === 'limited' || (decision === 'error' && this.policy.limit!.onRedisError === 'skip')) {
        deferred.discard();
        counters.skipped(decision === 'limited' ? 'limited' : 'limit_error');
        return NO_HEADERS;
      }
    }
    let rewritten: HookRequest | null = null;
    if (hooks?.hasRewrite) {
      const carries = this.#carriesBody(p);
      const body = carries ? await deferred.wholeBody() : null;
      if (carries && body === null) return NO_HEADERS; // the body overflowed (counted) or the client left
      rewritten = await hooks.mirrorRewrite(ctx, { ...this.#request(p), body });
      if (rewritten === null) {
        deferred.discard();
        counters.skipped('hook');
        return NO_HEADERS;
      }
    }
    if (!deferred.usable) return NO_HEADERS;
    return new Promise((resolve) => {
      // The writer reports every end, skips and drops included, through onDone: `resolve` always runs.
      const started = this.#send(p, target, counters, rewritten, resolve, ctx, session);
      if (started.stream) deferred.attach(started.stream);
      else deferred.discard();
    });
  }

  /**
   * Builds and starts the shadow. `rewritten` replaces method, path, headers and body when a
   * mirrorRewrite hook ran. `settle` receives the headers for the primary (sync mode).
   */
  #send(p: PrimaryRequest, target: UpstreamCluster, counters: ShadowCounters, rewritten: HookRequest | null,
    settle: ((h: Record<string, string>) => void) | null, ctx?: HookContext, session: CompareSession | null = null): ExtStart {
    const policy = this.policy;
    const req = rewritten ?? this.#request(p);
    // A rewrite that returns a body replaces it; one that leaves it null keeps the client's.
    const explicitBody = rewritten?.body ?? null;
    const hasBody = explicitBody !== null ? explicitBody.length > 0 : this.#carriesBody(p);
    if (explicitBody !== null) {
      req.headers['content-length'] = String(explicitBody.length);
      delete req.headers['transfer-encoding'];
    }
    let resolveSync: ((h: Record<string, string>) => void) | null = settle;
    let sync: Promise<Record<string, string>> | null = null;
    if (policy.mode === 'sync' && resolveSync === null) {
      sync = this.#bounded(new Promise((resolve) => (resolveSync = resolve)));
    }
    const hooks = this.#hooks;
    const onDone = hooks?.hasAfter || resolveSync !== null
      ? (result: ShadowResult): void => void this.#after(result, hooks, ctx ?? this.#hookContext(p, target), resolveSync)
      : null;
    const t = policy.timeouts;
    const options: ShadowOptions = {
      maxBodyBytes: policy.maxBodyBytes,
      connectTimeoutMs: t.connectMs,
      sendTimeoutMs: t.sendMs,
      readTimeoutMs: t.readMs,
      retry: policy.retry,
      captureBodyBytes: hooks?.hasAfter ? policy.hooks!.maxResponseBodyBytes : 0,
      onDone,
      maxInFlight: this.#maxInFlight,
      capture: session?.candidate ?? null,
    };
    const shadow = {
      downstreamProtocol: p.downstreamProtocol,
      method: req.method,
      path: req.path,
      headers: req.headers,
      hasBody,
      // The policy's own timeouts replace the route's when it sets any.
      timeoutMs: t.connectMs || t.sendMs || t.readMs ? 0 : p.timeoutMs,
    };
    session?.start({ method: req.method, path: req.path, headers: flatHeaders(req.headers) });
    const candidate = this.deps.writer.start({ ...shadow, cluster: target, stats: counters, options });
    // Diffy's secondary: the same request (body, headers) to a copy of the primary's version.
    const reference = session?.reference ? this.#startReference(p, shadow, options, session) : null;
    const stream = candidate && reference ? fanOut([candidate, reference]) : candidate ?? reference;
    if (stream && explicitBody !== null) {
      if (explicitBody.length > 0) stream.write(explicitBody);
      stream.end();
      return { stream: null, sync };
    }
    if (stream && !hasBody) {
      stream.end();
      return { stream: null, sync };
    }
    return { stream, sync };
  }

  #startReference(p: PrimaryRequest, shadow: Omit<ShadowRequest, 'cluster' | 'stats' | 'options'>, options: ShadowOptions,
    session: CompareSession): ShadowStream | null {
    const name = this.policy.compare!.referenceCluster!;
    const cluster = this.deps.clusters.get(name);
    const counters = this.#countersFor(name, p);
    if (!cluster) {
      counters.skipped('unknown_cluster');
      session.reference!.fail('error');
      // Every comparison of the policy ends shadow_error until the cluster exists: said once, not per request.
      if (!this.#referenceMissingLogged) {
        this.#referenceMissingLogged = true;
        this.deps.logger.error({ policy: this.policy.name, reference_cluster: name }, 'compare: reference_cluster names no cluster; each comparison ends shadow_error (counted as cluster.<name>.shadow.skipped.unknown_cluster)');
      }
      return null;
    }
    // Never the candidate's hooks or sync wait: the reference exists only to be compared.
    return this.deps.writer.start({ ...shadow, cluster, stats: counters, options: { ...options, onDone: null, captureBodyBytes: 0, capture: session.reference } });
  }

  async #after(result: ShadowResult, hooks: HookRunner | null, ctx: HookContext, settle: ((h: Record<string, string>) => void) | null): Promise<void> {
    let headers = NO_HEADERS;
    if (result.ok && hooks?.hasAfter) headers = await hooks.afterMirror(ctx, result);
    settle?.(this.policy.mode === 'sync' ? headers : NO_HEADERS);
  }

  /** Waits for a sync shadow no longer than sync_timeout; the primary's response never waits more. */
  #bounded(p: Promise<Record<string, string>>): Promise<Record<string, string>> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.stats.syncTimedOut();
        resolve(NO_HEADERS);
      }, this.policy.syncTimeoutMs);
      timer.unref();
      void p.then((h) => {
        clearTimeout(timer);
        resolve(h);
      });
    });
  }

  /** The shadow request before hooks: path rewritten, headers cloned and marked. */
  #request(p: PrimaryRequest): HookRequest {
    const policy = this.policy;
    const headers = shadowHeaders(p.headers, policy, p.proxyAddress, p.format) as Record<string, string | string[]>;
    if (policy.markerHeader !== null) headers[policy.markerHeader] = firstValue(p.headers.host) ?? '';
    if (!policy.forwardBody) {
      delete headers['content-length'];
      delete headers['transfer-encoding'];
    }
    return { method: p.method, path: this.#path(p.path), headers, body: null };
  }

  /** APISIX's path and path_concat_mode; the query string is kept either way. */
  #path(original: string): string {
    const path = this.policy.path;
    if (path === null) return original;
    if (path.mode === 'prefix') return path.value.replace(/\/$/, '') + original;
    const q = original.indexOf('?');
    return q < 0 ? path.value : path.value + original.slice(q);
  }

  #carriesBody(p: PrimaryRequest): boolean {
    return p.hasBody && this.policy.forwardBody;
  }

  /**
   * What a shadow may hold while its go/no-go is decided, and what going over it counts as: max_bytes
   * when it is the tighter bound (or, for mirrorRewrite, which needs the whole body, whenever it is
   * set): `body_too_large`, as the writer counts it; else the buffer cap: `body_cap`.
   */
  #bodyCap(): { readonly bytes: number; readonly reason: 'body_too_large' | 'body_cap' } {
    const max = this.policy.maxBodyBytes;
    const buffer = this.deps.maxBufferedBodyBytes;
    if (max > 0 && (this.#hooks?.hasRewrite === true || max <= buffer)) return { bytes: max, reason: 'body_too_large' };
    return { bytes: buffer, reason: 'body_cap' };
  }

  #hookContext(p: PrimaryRequest, target: UpstreamCluster): HookContext {
    return createHookContext({
      policy: this.policy.name,
      cluster: target.name,
      mode: this.policy.mode,
      request: { method: p.method, path: p.path, headers: p.headers as Record<string, string | string[]>, body: null },
    });
  }

  /** The mirror cluster, or null (counted) when the header names none, one not allowed, or an unknown one. */
  #target(p: PrimaryRequest): UpstreamCluster | null {
    const t = this.policy.target;
    switch (t.kind) {
      case 'cluster': {
        const c = this.deps.clusters.get(t.name);
        if (!c) this.#countersFor(t.name, p).skipped('unknown_cluster');
        return c ?? null;
      }
      case 'host':
        return this.#hostCluster;
      case 'cluster_header': {
        // Counted under the header, never under the client's value: clients cannot grow the stats.
        const name = firstListValue(p.header(t.header));
        const allowed = name !== '' && clusterAllowed(t.allowed, name);
        const c = allowed ? this.deps.clusters.get(name) : undefined;
        if (!c) this.#countersFor(headerStatsName(t.header), p).skipped(!name ? 'missing_header' : !allowed ? 'cluster_not_allowed' : 'unknown_cluster');
        return c ?? null;
      }
    }
  }

  #sample(p: PrimaryRequest): boolean {
    const s = this.policy.sampling;
    switch (s.kind) {
      case 'all':
        return true;
      case 'random':
        return this.deps.runtime.featureEnabled(s.fraction.runtimeKey, s.fraction.defaultValue, randomUint32());
      case 'every_nth':
        // Exact: the 1st, (N+1)th, (2N+1)th… request of this policy; one event loop, so no races.
        return this.#count++ % s.n === 0;
      case 'consistent': {
        const key = s.key.kind === 'source_ip' ? p.remoteAddress : s.key.kind === 'header' ? p.header(s.key.name) : cookie(p.header('cookie'), s.key.name);
        return key !== undefined && key !== '' && consistentSample(key, s.fraction);
      }
    }
  }

  /** The shadow's counters: the policy's and the cluster's, and the request's shadow log when it has one. */
  #countersFor(cluster: string, p: PrimaryRequest): ShadowCounters {
    const stats = this.#statsFor(cluster);
    return p.shadowLog ? reportingCounters(stats, cluster, this.policy.name, p.shadowLog) : stats;
  }

  #statsFor(cluster: string): PolicyClusterStats {
    let s = this.#byCluster.get(cluster);
    if (!s) this.#byCluster.set(cluster, (s = new PolicyClusterStats(this.deps.stats.shadow(cluster), this.stats)));
    return s;
  }
}

/** Several shadows fed the one request body. */
function fanOut(streams: readonly ShadowStream[]): ShadowStream {
  return {
    write: (chunk) => { for (const s of streams) s.write(chunk); },
    end: (trailers) => { for (const s of streams) s.end(trailers); },
    abort: () => { for (const s of streams) s.abort(); },
  };
}

function flatHeaders(h: Readonly<Record<string, string | string[]>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(h)) {
    const v = h[name];
    if (v !== undefined) setHeader(out, name, Array.isArray(v) ? v.join(', ') : v);
  }
  return out;
}

function cookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

