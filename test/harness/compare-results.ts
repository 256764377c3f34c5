import { createHash } from 'node:crypto';
import { PathPatternSet, compilePathPattern } from '../../src/compare/path-pattern';
import type { PolicySettings } from '../../src/compare/store';
import type { CapturedResponse, ComparedRequest, DiffKind, Difference, StoreLimits } from '../../src/compare/types';

// Hand-built comparison results for the store's and the report page's tests: what the capture
// and the diff engine would hand the store, without running them.

export function patterns(...sources: string[]): PathPatternSet {
  return new PathPatternSet(
    sources.map((s) => {
      const p = compilePathPattern(s);
      if (typeof p === 'string') throw new Error(p);
      return p;
    }),
  );
}

export function limits(over: Partial<StoreLimits> = {}): StoreLimits {
  return { maxBytes: 4 * 1024 * 1024, samplesPerField: 5, sampleBodyBytes: 64 * 1024, redactHeaders: new Set(), redactBodyPaths: new PathPatternSet(), ...over };
}

export function settings(over: Partial<PolicySettings> = {}): PolicySettings {
  return { limits: limits(), thresholds: { relative: 20, absolute: 0.03 }, configIgnore: new PathPatternSet(), hasReference: true, ...over };
}

export function response(body: string | Buffer, over: Partial<Omit<CapturedResponse, 'headers'>> & { headers?: Record<string, string | string[]> } = {}): CapturedResponse {
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const headers = new Map<string, readonly string[]>();
  for (const [k, v] of Object.entries(over.headers ?? { 'content-type': 'application/json' })) headers.set(k, Array.isArray(v) ? v : [v]);
  return {
    status: 200,
    body: buf,
    bodyComplete: true,
    bodyHash: createHash('sha256').update(buf).digest('hex'),
    bodyBytes: buf.length,
    decodedFrom: null,
    decodeError: false,
    durationMs: 5,
    ...over,
    headers,
  };
}

export function diff(path: string, kind: DiffKind, primary: string | null, other: string | null, exactPath = path): Difference {
  return { path, kind, exactPath, primary, other };
}

export function compared(over: Partial<ComparedRequest> = {}): ComparedRequest {
  return {
    policy: 'p',
    endpoint: 'GET /api',
    request: { method: 'GET', path: '/api', headers: { host: 'svc', accept: 'application/json' } },
    primary: response('{"total":1}'),
    candidate: response('{"total":2}'),
    reference: response('{"total":1}'),
    raw: [],
    noise: [],
    ...over,
  };
}
