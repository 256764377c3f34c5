import type { FractionalPercent } from '../../config/base-model';
import { type Ctx, type Pb, at, durationMs, each, fail, fractionalPercent, wrapped } from '../../config/decode/common';
import { decodeHeaderMatcher } from '../../config/decode/header-matcher';
import type { HeaderMatcher } from '../../config/model';
import { type HeaderLookup, type Predicate, compileHeaderMatcher } from '../../router/matchers';
import { randomUint32 } from '../../router/route-table';
import type { Runtime } from '../../runtime/runtime';
import type { Cell } from '../../stats/registry';
import { firstValue } from '../headers';
import type { DecodeResult, FilterEnv, FilterRequest, FilterStream, HttpFilterKind, HttpFilterRunner } from './types';

// envoy.filters.http.fault: delays and aborts, by percentage, by request header, by runtime key.

const HTTP_FAULT = 'envoy.extensions.filters.http.fault.v3.HTTPFault';

interface Delay {
  /** null: the delay comes from x-envoy-fault-delay-request. */
  readonly fixedMs: number | null;
  readonly percentage: FractionalPercent;
}

interface Abort {
  readonly kind: 'http' | 'grpc' | 'header';
  readonly status: number;
  readonly percentage: FractionalPercent;
}

interface FaultSettings {
  readonly delay: Delay | null;
  readonly abort: Abort | null;
  readonly upstreamCluster: string;
  readonly headers: readonly HeaderMatcher[];
  readonly downstreamNodes: readonly string[];
  readonly maxActiveFaults: number | null;
  readonly keys: {
    readonly delayPercent: string; readonly delayDuration: string; readonly abortPercent: string;
    readonly abortHttpStatus: string; readonly abortGrpcStatus: string; readonly maxActiveFaults: string;
  };
}

function decodeFault(f: Pb, ctx: Ctx): FaultSettings {
  return {
    delay: f.delay ? decodeDelay(f.delay as Pb, at(ctx, 'delay')) : null,
    abort: f.abort ? decodeAbort(f.abort as Pb, at(ctx, 'abort')) : null,
    upstreamCluster: String(f.upstream_cluster ?? ''),
    headers: each(ctx, f, 'headers', decodeHeaderMatcher),
    downstreamNodes: ((f.downstream_nodes as string[] | undefined) ?? []).map(String),
    maxActiveFaults: f.max_active_faults === undefined ? null : Number(wrapped(f.max_active_faults as Pb, 0)),
    keys: {
      delayPercent: String(f.delay_percent_runtime || 'fault.http.delay.fixed_delay_percent'),
      delayDuration: String(f.delay_duration_runtime || 'fault.http.delay.fixed_duration_ms'),
      abortPercent: String(f.abort_percent_runtime || 'fault.http.abort.abort_percent'),
      abortHttpStatus: String(f.abort_http_status_runtime || 'fault.http.abort.http_status'),
      abortGrpcStatus: String(f.abort_grpc_status_runtime || 'fault.http.abort.grpc_status'),
      maxActiveFaults: String(f.max_active_faults_runtime || 'fault.http.max_active_faults'),
    },
  };
}

function decodeDelay(d: Pb, ctx: Ctx): Delay {
  const percentage = fractionalPercent(d.percentage as Pb | undefined);
  if (d.header_delay) return { fixedMs: null, percentage };
  if (!d.fixed_delay) {
    fail(ctx, 'one of fixed_delay or header_delay is required');
    return { fixedMs: 0, percentage };
  }
  const ms = durationMs(d.fixed_delay as Pb, 0);
  if (ms <= 0) fail(at(ctx, 'fixed_delay'), 'must be greater than 0s');
  return { fixedMs: ms, percentage };
}

function decodeAbort(a: Pb, ctx: Ctx): Abort {
  const percentage = fractionalPercent(a.percentage as Pb | undefined);
  if (a.header_abort) return { kind: 'header', status: 0, percentage };
  if (a.grpc_status !== undefined) return { kind: 'grpc', status: Number(a.grpc_status), percentage };
  if (a.http_status === undefined) {
    fail(ctx, 'one of http_status, grpc_status or header_abort is required');
    return { kind: 'http', status: 503, percentage };
  }
  const status = Number(a.http_status);
  if (status < 200 || status >= 600) fail(at(ctx, 'http_status'), 'must be in [200, 600)');
  return { kind: 'http', status, percentage };
}

/** The filter's counters, in Envoy's http.<stat_prefix>.fault.* tree. */
interface FaultStats {
  readonly delays: Cell;
  readonly aborts: Cell;
  readonly overflow: Cell;
  readonly active: Cell;
}

function faultStats(env: FilterEnv): FaultStats {
  const l = { envoy_http_conn_manager_prefix: env.statPrefix };
  const text = (suffix: string) => (v: Record<string, unknown>): string => `http.${String(v.envoy_http_conn_manager_prefix)}.fault.${suffix}`;
  const counter = (name: string, help: string): Cell =>
    env.stats.registry.family('counter', `envoy_http_fault_${name}`, help, ['envoy_http_conn_manager_prefix'], text(name)).labels(l);
  return {
    delays: counter('delays_injected', 'Requests the fault filter delayed'),
    aborts: counter('aborts_injected', 'Requests the fault filter aborted'),
    overflow: counter('faults_overflow', 'Faults not injected because max_active_faults were active'),
    active: env.stats.registry.family('gauge', 'envoy_http_fault_active_faults', 'Faults active now', ['envoy_http_conn_manager_prefix'], text('active_faults')).labels(l),
  };
}

class FaultRunner implements HttpFilterRunner<FaultSettings> {
  readonly #stats: FaultStats;
  readonly #matchers = new WeakMap<FaultSettings, ReadonlyArray<Predicate<HeaderLookup>>>();
  #active = 0;

  constructor(private readonly settings: FaultSettings, private readonly env: FilterEnv) {
    this.#stats = faultStats(env);
  }

  start(request: FilterRequest, perRoute: FaultSettings | undefined): FilterStream | null {
    const s = perRoute ?? this.settings;
    if (s.delay === null && s.abort === null) return null;
    if (s.upstreamCluster && request.clusterName !== s.upstreamCluster) return null;
    const header = (name: string): string | undefined => firstValue(request.headers[name]);
    if (s.downstreamNodes.length > 0 && !s.downstreamNodes.includes(header('x-envoy-downstream-service-node') ?? '')) return null;
    if (!this.#headerMatchers(s).every((m) => m(header))) return null;
    return new FaultStream(this, s, request, header);
  }

  #headerMatchers(s: FaultSettings): ReadonlyArray<Predicate<HeaderLookup>> {
    let m = this.#matchers.get(s);
    if (!m) this.#matchers.set(s, (m = s.headers.map(compileHeaderMatcher)));
    return m;
  }

  get runtime(): Runtime {
    return this.env.runtime;
  }

  get stats(): FaultStats {
    return this.#stats;
  }

  /** Takes a fault slot, or counts an overflow when max_active_faults are active already. */
  acquire(s: FaultSettings): boolean {
    const limit = runtimeInt(this.env.runtime, s.keys.maxActiveFaults, s.maxActiveFaults);
    if (limit !== null && this.#active >= limit) {
      this.#stats.overflow.inc();
      return false;
    }
    this.#active++;
    this.#stats.active.inc();
    return true;
  }

  release(): void {
    this.#active--;
    this.#stats.active.dec();
  }
}

/** One request's faults: a delay first, then an abort, as Envoy applies them. */
class FaultStream implements FilterStream {
  #timer: NodeJS.Timeout | null = null;
  #wake: (() => void) | null = null;
  #holding = false;

  constructor(private readonly runner: FaultRunner, private readonly s: FaultSettings, private readonly request: FilterRequest,
    private readonly header: (name: string) => string | undefined) {}

  decodeHeaders(): DecodeResult | Promise<DecodeResult> {
    const delayMs = this.#delayMs();
    const abortsNow = delayMs === null ? this.#abort() : undefined;
    if (delayMs === null) return abortsNow;
    if (!this.#take()) return undefined;
    this.runner.stats.delays.inc();
    return new Promise<DecodeResult>((resolve) => {
      this.#wake = () => resolve(undefined);
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#wake = null;
        resolve(this.#abort());
      }, delayMs);
    });
  }

  done(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#wake?.();
    this.#wake = null;
    if (this.#holding) this.runner.release();
    this.#holding = false;
  }

  /** One slot per request, whether it is delayed, aborted or both. */
  #take(): boolean {
    if (this.#holding) return true;
    this.#holding = this.runner.acquire(this.s);
    return this.#holding;
  }

  #delayMs(): number | null {
    const d = this.s.delay;
    if (d === null) return null;
    const keys = this.s.keys;
    let ms: number | null;
    if (d.fixedMs !== null) ms = runtimeInt(this.runner.runtime, this.#downstreamKey(keys.delayDuration, 'delay.fixed_duration_ms'), d.fixedMs);
    else ms = headerInt(this.header('x-envoy-fault-delay-request'));
    if (ms === null || ms <= 0) return null;
    const percentage = d.fixedMs !== null ? d.percentage : capped(d.percentage, this.header('x-envoy-fault-delay-request-percentage'));
    if (!this.#enabled(this.#downstreamKey(keys.delayPercent, 'delay.fixed_delay_percent'), percentage)) return null;
    return ms;
  }

  #abort(): DecodeResult {
    const a = this.s.abort;
    if (a === null) return undefined;
    const keys = this.s.keys;
    let status: number | null = null;
    let grpcStatus: number | null = null;
    if (a.kind === 'header') {
      status = headerInt(this.header('x-envoy-fault-abort-request'));
      grpcStatus = headerInt(this.header('x-envoy-fault-abort-grpc-request'));
      if (status !== null && (status < 200 || status >= 600)) status = null;
      if (grpcStatus !== null && grpcStatus > 16) grpcStatus = null;
    } else if (a.kind === 'http') {
      status = runtimeInt(this.runner.runtime, this.#downstreamKey(keys.abortHttpStatus, 'abort.http_status'), a.status);
    } else {
      grpcStatus = runtimeInt(this.runner.runtime, keys.abortGrpcStatus, a.status);
    }
    if (status === null && grpcStatus === null) return undefined;
    const percentage = a.kind === 'header' ? capped(a.percentage, this.header('x-envoy-fault-abort-request-percentage')) : a.percentage;
    if (!this.#enabled(this.#downstreamKey(keys.abortPercent, 'abort.abort_percent'), percentage)) return undefined;
    if (!this.#take()) return undefined;
    this.runner.stats.aborts.inc();
    const body = 'fault filter abort';
    // A gRPC abort is an HTTP 200 carrying the grpc-status, as Envoy sends it.
    if (grpcStatus !== null) return { status: 200, body, grpcStatus, details: 'fault_filter_abort', flag: 'FI' };
    return { status: status!, body, details: 'fault_filter_abort', flag: 'FI' };
  }

  #enabled(key: string, percentage: FractionalPercent): boolean {
    return this.runner.runtime.featureEnabled(key, percentage, randomUint32());
  }

  /** Envoy's fault.http.<downstream-cluster>.* keys win over the global ones when set. */
  #downstreamKey(global: string, suffix: string): string {
    const cluster = this.header('x-envoy-downstream-service-cluster');
    if (!cluster) return global;
    const own = `fault.http.${cluster}.${suffix}`;
    return this.runner.runtime.get(own) !== undefined ? own : global;
  }
}

/** A request header's percentage: its numerator capped by the config's, over the config's denominator. */
function capped(config: FractionalPercent, header: string | undefined): FractionalPercent {
  const n = headerInt(header);
  if (n === null) return config;
  return { numerator: Math.min(n, config.numerator), denominator: config.denominator };
}

function headerInt(v: string | undefined): number | null {
  if (v === undefined || !/^\d{1,9}$/.test(v.trim())) return null;
  return Number(v.trim());
}

function runtimeInt(runtime: Runtime, key: string, fallback: number | null): number | null {
  const v = runtime.get(key);
  if (v === undefined || !/^\d{1,9}$/.test(v.trim())) return fallback;
  return Number(v.trim());
}

export const faultFilter: HttpFilterKind<FaultSettings, FaultSettings> = {
  configType: HTTP_FAULT,
  perRouteTypes: [HTTP_FAULT],
  decode: decodeFault,
  decodePerRoute: decodeFault,
  build: (settings, env) => new FaultRunner(settings, env),
};
