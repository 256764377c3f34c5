import type { CompareConfig } from '../config/model';
import { PathPatternSet, compilePathPattern } from './path-pattern';
import type { CompareRules } from './types';

// The rules one policy compares with: built-in header lists adjusted by its config.

/**
 * Values that differ on every response whatever the version (clocks, ids, traces, caches, CDNs);
 * their presence is still compared. Exact names: a substring rule would let `date` hide
 * `x-candidate-id`.
 */
export const VOLATILE_HEADERS: readonly string[] = [
  'date', 'set-cookie', 'age', 'expires', 'last-modified', 'etag',
  'x-request-id', 'request-id', 'x-correlation-id', 'x-runtime', 'server-timing',
  'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags',
  'x-datadog-trace-id', 'x-datadog-parent-id', 'x-amzn-trace-id', 'x-cloud-trace-context', 'sentry-trace',
  'via', 'x-amz-cf-id', 'x-envoy-upstream-service-time',
];

/** Framing and hop-by-hop: they say how the bytes travelled, not what the service answered. */
export const SKIPPED_HEADERS: readonly string[] = [
  'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer',
];

export function compileRules(c: CompareConfig): CompareRules {
  const compared = new Set(c.headers.compare);
  return {
    volatileHeaders: new Set([...VOLATILE_HEADERS, ...c.headers.volatile].filter((h) => !compared.has(h))),
    skippedHeaders: new Set(SKIPPED_HEADERS.filter((h) => !compared.has(h))),
    ignoreAllHeaders: c.headers.ignoreAll,
    bodyFormat: c.body.format,
    unorderedArrays: patternSet(c.body.unorderedArrays),
    numberTolerance: c.body.numberTolerance,
  };
}

/** Patterns the decoder has already checked. */
export function patternSet(sources: readonly string[]): PathPatternSet {
  const set = new PathPatternSet();
  for (const s of sources) {
    const p = compilePathPattern(s);
    if (typeof p !== 'string') set.add(p);
  }
  return set;
}
