import type { CidrRange, HeaderMatcher, StringMatcher } from '../../config/model';
import { type Ctx, type Pb, at, atIndex, atKey, cidrRange, fail, stringMatcher } from '../../config/decode/common';
import { decodeHeaderMatcher } from '../../config/decode/header-matcher';
import { type HeaderLookup, type Predicate, compileHeaderMatcher, compileStringMatcher } from '../../router/matchers';
import type { Cell } from '../../stats/registry';
import { internalAddressMatcher } from '../internal-address';
import { pseudoOrHeader } from '../request-head';
import type { FilterEnv, FilterRequest, FilterStream, HttpFilterKind, HttpFilterRunner } from './types';

// envoy.filters.http.rbac: named policies of permissions (what the request does) and principals
// (who sends it); ALLOW lets through what a policy matches, DENY stops it, LOG only counts.
// Shadow rules are evaluated and counted, never enforced.

const RBAC_FILTER = 'envoy.extensions.filters.http.rbac.v3.RBAC';
const RBAC_PER_ROUTE = 'envoy.extensions.filters.http.rbac.v3.RBACPerRoute';

type Permission =
  | { readonly kind: 'and' | 'or'; readonly rules: readonly Permission[] }
  | { readonly kind: 'any' }
  | { readonly kind: 'header'; readonly header: HeaderMatcher }
  | { readonly kind: 'url_path'; readonly path: StringMatcher }
  | { readonly kind: 'destination_ip'; readonly range: CidrRange }
  | { readonly kind: 'destination_port'; readonly start: number; readonly end: number }
  | { readonly kind: 'requested_server_name'; readonly name: StringMatcher }
  | { readonly kind: 'not'; readonly rule: Permission };

type Principal =
  | { readonly kind: 'and' | 'or'; readonly ids: readonly Principal[] }
  | { readonly kind: 'any' }
  | { readonly kind: 'authenticated'; readonly name: StringMatcher | null }
  | { readonly kind: 'direct_remote_ip' | 'remote_ip'; readonly range: CidrRange }
  | { readonly kind: 'header'; readonly header: HeaderMatcher }
  | { readonly kind: 'url_path'; readonly path: StringMatcher }
  | { readonly kind: 'not'; readonly id: Principal };

interface Rules {
  readonly action: 'ALLOW' | 'DENY' | 'LOG';
  readonly policies: ReadonlyArray<{ readonly name: string; readonly permissions: readonly Permission[]; readonly principals: readonly Principal[] }>;
}

interface RbacSettings {
  readonly rules: Rules | null;
  readonly shadow: Rules | null;
  readonly rulesStatPrefix: string;
  readonly shadowStatPrefix: string;
}

function decodeRbac(r: Pb, ctx: Ctx): RbacSettings {
  return {
    rules: r.rules ? decodeRules(r.rules as Pb, at(ctx, 'rules')) : null,
    shadow: r.shadow_rules ? decodeRules(r.shadow_rules as Pb, at(ctx, 'shadow_rules')) : null,
    rulesStatPrefix: String(r.rules_stat_prefix ?? ''),
    shadowStatPrefix: String(r.shadow_rules_stat_prefix ?? ''),
  };
}

/** RBACPerRoute: its RBAC replaces the filter's; without one the filter is off for the route. */
function decodePerRoute(p: Pb, ctx: Ctx): RbacSettings {
  return p.rbac ? decodeRbac(p.rbac as Pb, at(ctx, 'rbac')) : { rules: null, shadow: null, rulesStatPrefix: '', shadowStatPrefix: '' };
}

function decodeRules(r: Pb, ctx: Ctx): Rules {
  const policies = Object.entries((r.policies as Record<string, Pb> | undefined) ?? {}).map(([name, p]) => {
    const pctx = atKey(at(ctx, 'policies'), name);
    const list = <T>(field: string, decode: (x: Pb, c: Ctx) => T): T[] => {
      const items = (p[field] as Pb[] | undefined) ?? [];
      if (items.length === 0) fail(at(pctx, field), `at least one of ${field} is required`);
      return items.map((x, i) => decode(x, atIndex(pctx, field, i)));
    };
    return { name, permissions: list('permissions', decodePermission), principals: list('principals', decodePrincipal) };
  });
  return { action: String(r.action ?? 'ALLOW') as Rules['action'], policies };
}

function decodePermission(p: Pb, ctx: Ctx): Permission {
  if (p.and_rules || p.or_rules) {
    const kind = p.and_rules ? 'and' : 'or';
    const set = (p.and_rules ?? p.or_rules) as Pb;
    const sctx = at(at(ctx, `${kind}_rules`), 'rules');
    return { kind, rules: ((set.rules as Pb[] | undefined) ?? []).map((x, i) => decodePermission(x, { ...sctx, path: `${sctx.path}[${i}]` })) };
  }
  if (p.any !== undefined) return { kind: 'any' };
  if (p.header) return { kind: 'header', header: decodeHeaderMatcher(p.header as Pb, at(ctx, 'header')) };
  if (p.url_path) return { kind: 'url_path', path: pathMatcher(p.url_path as Pb, at(ctx, 'url_path')) };
  if (p.destination_ip) return { kind: 'destination_ip', range: cidrRange(p.destination_ip as Pb, at(ctx, 'destination_ip')) };
  if (p.destination_port !== undefined) return { kind: 'destination_port', start: Number(p.destination_port), end: Number(p.destination_port) + 1 };
  if (p.destination_port_range) {
    const r = p.destination_port_range as Pb;
    return { kind: 'destination_port', start: Number(r.start ?? 0), end: Number(r.end ?? 0) };
  }
  if (p.requested_server_name) return { kind: 'requested_server_name', name: stringMatcher(p.requested_server_name as Pb, at(ctx, 'requested_server_name')) };
  if (p.not_rule) return { kind: 'not', rule: decodePermission(p.not_rule as Pb, at(ctx, 'not_rule')) };
  fail(ctx, 'a permission rule is required');
  return { kind: 'any' };
}

function decodePrincipal(p: Pb, ctx: Ctx): Principal {
  if (p.and_ids || p.or_ids) {
    const kind = p.and_ids ? 'and' : 'or';
    const set = (p.and_ids ?? p.or_ids) as Pb;
    const sctx = at(at(ctx, `${kind}_ids`), 'ids');
    return { kind, ids: ((set.ids as Pb[] | undefined) ?? []).map((x, i) => decodePrincipal(x, { ...sctx, path: `${sctx.path}[${i}]` })) };
  }
  if (p.any !== undefined) return { kind: 'any' };
  if (p.authenticated) {
    const a = p.authenticated as Pb;
    return { kind: 'authenticated', name: a.principal_name ? stringMatcher(a.principal_name as Pb, at(at(ctx, 'authenticated'), 'principal_name')) : null };
  }
  // source_ip is the deprecated spelling of direct_remote_ip.
  if (p.source_ip) return { kind: 'direct_remote_ip', range: cidrRange(p.source_ip as Pb, at(ctx, 'source_ip')) };
  if (p.direct_remote_ip) return { kind: 'direct_remote_ip', range: cidrRange(p.direct_remote_ip as Pb, at(ctx, 'direct_remote_ip')) };
  if (p.remote_ip) return { kind: 'remote_ip', range: cidrRange(p.remote_ip as Pb, at(ctx, 'remote_ip')) };
  if (p.header) return { kind: 'header', header: decodeHeaderMatcher(p.header as Pb, at(ctx, 'header')) };
  if (p.url_path) return { kind: 'url_path', path: pathMatcher(p.url_path as Pb, at(ctx, 'url_path')) };
  if (p.not_id) return { kind: 'not', id: decodePrincipal(p.not_id as Pb, at(ctx, 'not_id')) };
  fail(ctx, 'a principal identifier is required');
  return { kind: 'any' };
}

function pathMatcher(m: Pb, ctx: Ctx): StringMatcher {
  if (!m.path) fail(at(ctx, 'path'), 'path is required');
  return stringMatcher((m.path ?? { exact: '' }) as Pb, at(ctx, 'path'));
}

/** What the matchers read of a request. */
interface Subject {
  readonly header: HeaderLookup;
  /** The path without its query string. */
  readonly path: string;
  readonly request: FilterRequest;
}

type Match = (s: Subject) => boolean;

function compilePermission(p: Permission): Match {
  switch (p.kind) {
    case 'and': {
      const all = p.rules.map(compilePermission);
      return (s) => all.every((m) => m(s));
    }
    case 'or': {
      const any = p.rules.map(compilePermission);
      return (s) => any.some((m) => m(s));
    }
    case 'any':
      return () => true;
    case 'header':
      return headerMatch(p.header);
    case 'url_path':
      return pathMatch(p.path);
    case 'destination_ip': {
      const inRange = internalAddressMatcher({ cidrRanges: [p.range] });
      return (s) => inRange(s.request.localAddress);
    }
    case 'destination_port':
      return (s) => s.request.localPort >= p.start && s.request.localPort < p.end;
    case 'requested_server_name': {
      const test = compileStringMatcher(p.name);
      return (s) => test(s.request.tls?.serverName ?? '');
    }
    case 'not': {
      const inner = compilePermission(p.rule);
      return (s) => !inner(s);
    }
  }
}

function compilePrincipal(p: Principal): Match {
  switch (p.kind) {
    case 'and': {
      const all = p.ids.map(compilePrincipal);
      return (s) => all.every((m) => m(s));
    }
    case 'or': {
      const any = p.ids.map(compilePrincipal);
      return (s) => any.some((m) => m(s));
    }
    case 'any':
      return () => true;
    case 'authenticated': {
      // As Envoy: any TLS connection when no name is given; else the certificate's URI SANs, then its DNS SANs.
      const test = p.name ? compileStringMatcher(p.name) : null;
      return (s) => {
        const tls = s.request.tls;
        if (!tls) return false;
        if (test === null) return true;
        const sans = parseSans(tls.peerSubjectAltNames);
        return sans.uri.some(test) || sans.dns.some(test);
      };
    }
    case 'direct_remote_ip': {
      const inRange = internalAddressMatcher({ cidrRanges: [p.range] });
      return (s) => inRange(s.request.directRemoteAddress);
    }
    case 'remote_ip': {
      const inRange = internalAddressMatcher({ cidrRanges: [p.range] });
      return (s) => inRange(s.request.remoteAddress);
    }
    case 'header':
      return headerMatch(p.header);
    case 'url_path':
      return pathMatch(p.path);
    case 'not': {
      const inner = compilePrincipal(p.id);
      return (s) => !inner(s);
    }
  }
}

function headerMatch(h: HeaderMatcher): Match {
  const test: Predicate<HeaderLookup> = compileHeaderMatcher(h);
  return (s) => test(s.header);
}

function pathMatch(m: StringMatcher): Match {
  const test = compileStringMatcher(m);
  return (s) => test(s.path);
}

/** Node's subjectaltname text ("DNS:a, URI:spiffe://b") as lists by kind. */
function parseSans(text: string): { uri: string[]; dns: string[] } {
  const out = { uri: [] as string[], dns: [] as string[] };
  for (const part of text.split(', ')) {
    if (part.startsWith('URI:')) out.uri.push(part.slice(4));
    else if (part.startsWith('DNS:')) out.dns.push(part.slice(4));
  }
  return out;
}

interface CompiledRules {
  readonly action: Rules['action'];
  readonly policies: ReadonlyArray<{ readonly name: string; readonly matches: Match }>;
}

function compileRules(r: Rules): CompiledRules {
  return {
    action: r.action,
    policies: r.policies.map((p) => {
      const permissions = p.permissions.map(compilePermission);
      const principals = p.principals.map(compilePrincipal);
      return { name: p.name, matches: (s: Subject) => permissions.some((m) => m(s)) && principals.some((m) => m(s)) };
    }),
  };
}

/** The engine's verdict: allowed or not, and the first policy that matched. */
function evaluate(rules: CompiledRules, s: Subject): { allowed: boolean; policy: string | null } {
  const hit = rules.policies.find((p) => p.matches(s)) ?? null;
  const policy = hit?.name ?? null;
  if (rules.action === 'ALLOW') return { allowed: hit !== null, policy };
  if (rules.action === 'DENY') return { allowed: hit === null, policy };
  return { allowed: true, policy };
}

class RbacRunner implements HttpFilterRunner<RbacSettings> {
  readonly #compiled = new WeakMap<Rules, CompiledRules>();
  readonly #stats = new Map<string, Cell>();

  constructor(private readonly settings: RbacSettings, private readonly env: FilterEnv) {}

  start(request: FilterRequest, perRoute: RbacSettings | undefined): FilterStream | null {
    const s = perRoute ?? this.settings;
    if (s.rules === null && s.shadow === null) return null;
    const q = request.path.indexOf('?');
    const subject: Subject = {
      header: (name) => pseudoOrHeader(name, request.headers, request.authority, request.path, request.method, request.scheme),
      path: q < 0 ? request.path : request.path.slice(0, q),
      request,
    };
    if (s.shadow !== null) {
      const shadow = evaluate(this.#rules(s.shadow), subject);
      this.#count(s.shadowStatPrefix, shadow.allowed ? 'shadow_allowed' : 'shadow_denied');
    }
    if (s.rules === null) return null;
    const verdict = evaluate(this.#rules(s.rules), subject);
    this.#count(s.rulesStatPrefix, verdict.allowed ? 'allowed' : 'denied');
    if (verdict.allowed) return null;
    const details = `rbac_access_denied_matched_policy[${verdict.policy ?? 'none'}]`;
    return { decodeHeaders: () => ({ status: 403, body: 'RBAC: access denied', details }) };
  }

  #rules(r: Rules): CompiledRules {
    let c = this.#compiled.get(r);
    if (!c) this.#compiled.set(r, (c = compileRules(r)));
    return c;
  }

  /** http.<stat_prefix>.rbac.<rules_stat_prefix>{allowed,denied,shadow_allowed,shadow_denied}. */
  #count(rulesPrefix: string, what: string): void {
    const key = `${rulesPrefix}\0${what}`;
    let cell = this.#stats.get(key);
    if (!cell) {
      const family = this.env.stats.registry.family('counter', `envoy_http_rbac_${what}`, `Requests the RBAC filter's rules counted as ${what}`,
        ['envoy_http_conn_manager_prefix', 'envoy_rbac_prefix'], (l) => `http.${String(l.envoy_http_conn_manager_prefix)}.rbac.${String(l.envoy_rbac_prefix)}${what}`);
      this.#stats.set(key, (cell = family.labels({ envoy_http_conn_manager_prefix: this.env.statPrefix, envoy_rbac_prefix: rulesPrefix })));
    }
    cell.inc();
  }
}

export const rbacFilter: HttpFilterKind<RbacSettings, RbacSettings> = {
  configType: RBAC_FILTER,
  perRouteTypes: [RBAC_PER_ROUTE],
  decode: decodeRbac,
  decodePerRoute: decodePerRoute,
  build: (settings, env) => new RbacRunner(settings, env),
};
