import type { RuntimeFraction } from '../../config/base-model';
import { type Ctx, type Pb, at, each, fail, runtimeFraction, stringMatcher } from '../../config/decode/common';
import type { StringMatcher } from '../../config/matcher-model';
import { type Predicate, compileStringMatcher } from '../../router/matchers';
import { randomUint32 } from '../../router/route-table';
import type { Cell } from '../../stats/registry';
import { firstValue } from '../headers';
import type { FilterEnv, FilterRequest, FilterStream, HttpFilterKind, HttpFilterRunner, LocalReply } from './types';

// envoy.filters.http.csrf: a state-changing request whose Origin (else Referer) is not the host
// it is sent to, nor one of the additional origins, is refused with a 403 — a request that
// names no source at all too.

const CSRF_POLICY = 'envoy.extensions.filters.http.csrf.v3.CsrfPolicy';

interface CsrfPolicy {
  readonly filterEnabled: RuntimeFraction;
  /** Unset: no shadow mode. */
  readonly shadowEnabled: RuntimeFraction | null;
  readonly additionalOrigins: readonly StringMatcher[];
}

function decodeCsrfPolicy(p: Pb, ctx: Ctx): CsrfPolicy {
  const filterEnabled = runtimeFraction(p.filter_enabled as Pb | undefined);
  if (filterEnabled === null) fail(at(ctx, 'filter_enabled'), 'filter_enabled is required');
  return {
    filterEnabled: filterEnabled ?? { defaultValue: { numerator: 0, denominator: 100 }, runtimeKey: '' },
    shadowEnabled: runtimeFraction(p.shadow_enabled as Pb | undefined),
    additionalOrigins: each(ctx, p, 'additional_origins', stringMatcher),
  };
}

/** Envoy's list of methods that change state; GET, HEAD, OPTIONS and the rest pass untested. */
const MODIFYING = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

const INVALID: LocalReply = { status: 403, body: 'Invalid origin', details: 'csrf_origin_mismatch' };

interface CsrfStats {
  readonly missing: Cell;
  readonly invalid: Cell;
  readonly valid: Cell;
}

function csrfStats(env: FilterEnv): CsrfStats {
  const l = { envoy_http_conn_manager_prefix: env.statPrefix };
  const counter = (name: string, help: string): Cell =>
    env.stats.registry.family('counter', `envoy_http_csrf_${name}`, help, ['envoy_http_conn_manager_prefix'],
      (v) => `http.${String(v.envoy_http_conn_manager_prefix)}.csrf.${name}`).labels(l);
  return {
    missing: counter('missing_source_origin', 'State-changing requests with neither Origin nor Referer'),
    invalid: counter('request_invalid', 'State-changing requests from an origin other than their host'),
    valid: counter('request_valid', 'State-changing requests from their own host or an additional origin'),
  };
}

class CsrfRunner implements HttpFilterRunner<CsrfPolicy> {
  readonly #stats: CsrfStats;
  readonly #matchers = new WeakMap<CsrfPolicy, ReadonlyArray<Predicate<string>>>();

  constructor(private readonly policy: CsrfPolicy, private readonly env: FilterEnv) {
    this.#stats = csrfStats(env);
  }

  start(request: FilterRequest, perRoute: CsrfPolicy | undefined): FilterStream | null {
    if (!MODIFYING.has(request.method)) return null;
    const p = perRoute ?? this.policy;
    // Judged when the filters before this one let the request through, so only then counted.
    return { decodeHeaders: () => this.#judge(p, request) };
  }

  #judge(p: CsrfPolicy, request: FilterRequest): LocalReply | undefined {
    const enabled = this.#sample(p.filterEnabled);
    if (!enabled && (p.shadowEnabled === null || !this.#sample(p.shadowEnabled))) return undefined;
    const source = hostAndPort(firstValue(request.headers.origin)) || hostAndPort(firstValue(request.headers.referer));
    let valid = true;
    if (source === '') {
      valid = false;
      this.#stats.missing.inc();
    }
    if (!this.#sameOrAllowed(p, source, request)) {
      valid = false;
      this.#stats.invalid.inc();
    }
    if (valid) {
      this.#stats.valid.inc();
      return undefined;
    }
    // Shadow mode: judged and counted, never refused.
    return enabled ? INVALID : undefined;
  }

  #sample(f: RuntimeFraction): boolean {
    return this.env.runtime.featureEnabled(f.runtimeKey, f.defaultValue, randomUint32());
  }

  #sameOrAllowed(p: CsrfPolicy, source: string, request: FilterRequest): boolean {
    const host = firstValue(request.headers.host) ?? '';
    const target = host === '' ? '' : hostAndPort(`${request.scheme}://${host}`);
    if (source === target) return true;
    let m = this.#matchers.get(p);
    if (!m) this.#matchers.set(p, (m = p.additionalOrigins.map(compileStringMatcher)));
    return m.some((match) => match(source));
  }
}

/**
 * The host and port of an absolute URL, as written (no default port dropped, no case folded, as
 * Envoy compares them); a value that is no absolute URL (`null`, a relative Referer) as it is.
 */
function hostAndPort(value: string | undefined): string {
  if (!value) return '';
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]+)/.exec(value);
  if (!m) return value;
  const authority = m[1]!;
  return authority.slice(authority.lastIndexOf('@') + 1) || value;
}

export const csrfFilter: HttpFilterKind<CsrfPolicy, CsrfPolicy> = {
  configType: CSRF_POLICY,
  perRouteTypes: [CSRF_POLICY],
  decode: decodeCsrfPolicy,
  decodePerRoute: decodeCsrfPolicy,
  build: (policy, env) => new CsrfRunner(policy, env),
};
