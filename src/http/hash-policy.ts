import type { HashPolicy } from '../config/model';
import { xxHash64, xxHash64Chain } from '../upstream/hash64';
import type { HeaderMap } from './headers';

/** What a route's hash_policy can read from one request. */
export interface HashInput {
  /** The request headers as the router sends them (after the route's header edits). */
  readonly headers: HeaderMap;
  /** Pseudo-headers (`:authority`, `:path`, `:method`), read as the route matcher reads them. */
  readonly pseudo: (name: string) => string | undefined;
  /** The downstream peer's IP. */
  readonly sourceIp: string;
  /** The request target, for query_parameter. */
  readonly path: string;
}

/**
 * Envoy's HashPolicyImpl::generateHash: each policy that yields a value is folded into the key
 * (the key so far rotated left by one, then xor-ed with the new hash); evaluation stops at a
 * terminal policy once a key exists. null when no policy yielded anything.
 */
export function requestHashKey(policies: readonly HashPolicy[], input: HashInput): bigint | null {
  let hash: bigint | null = null;
  for (const policy of policies) {
    const h = evaluate(policy, input);
    if (h !== null) hash = hash === null ? h : rotl1(hash) ^ h;
    if (policy.terminal && hash !== null) break;
  }
  return hash;
}

const MASK64 = (1n << 64n) - 1n;
const rotl1 = (h: bigint): bigint => ((h << 1n) & MASK64) | (h >> 63n);

function evaluate(policy: HashPolicy, input: HashInput): bigint | null {
  switch (policy.kind) {
    case 'header': {
      const v = policy.name.charCodeAt(0) === 58 /* ':' */ ? input.pseudo(policy.name) : input.headers[policy.name];
      if (v === undefined) return null;
      // Envoy sorts repeated values so their order does not change the key.
      return Array.isArray(v) ? xxHash64Chain([...v].sort()) : xxHash64(v);
    }
    case 'cookie': {
      const v = cookieValue(input.headers.cookie, policy.name);
      return v === null ? null : xxHash64(v);
    }
    case 'source_ip':
      return input.sourceIp ? xxHash64(input.sourceIp) : null;
    case 'query_parameter': {
      const v = queryParameter(input.path, policy.name);
      return v === null ? null : xxHash64(v);
    }
  }
}

/** Envoy's Utility::parseCookieValue: the first `name=value` among the Cookie headers, unquoted. */
export function cookieValue(header: string | string[] | undefined, name: string): string | null {
  if (header === undefined) return null;
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const part of line.split(';')) {
      const pair = part.trimStart();
      const eq = pair.indexOf('=');
      if (eq < 0 || pair.slice(0, eq) !== name) continue;
      let value = pair.slice(eq + 1);
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      return value;
    }
  }
  return null;
}

/** The first value of a query parameter, not URL-decoded (Envoy's parseQueryString); "" when bare. */
export function queryParameter(path: string, name: string): string | null {
  const q = path.indexOf('?');
  if (q < 0) return null;
  const end = path.indexOf('#', q);
  const query = path.slice(q + 1, end < 0 ? undefined : end);
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (key === name) return eq < 0 ? '' : pair.slice(eq + 1);
  }
  return null;
}
