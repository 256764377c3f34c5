// Captured responses as capture.ts makes them (status, lower-case header Map, body Buffer, its
// SHA-256), and compare rules with the usual volatile and skipped headers, for the diff tests.
import { createHash } from 'node:crypto';
import { compareResponses } from '../../src/compare/diff/compare-responses';
import { compilePathPattern, PathPatternSet } from '../../src/compare/path-pattern';
import type { CapturedResponse, CompareRules, Difference } from '../../src/compare/types';

export interface Shape {
  status?: number;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** The capture bound cut the body: `hash` is then the whole body's. */
  complete?: boolean;
  decodeError?: boolean;
  hash?: string;
}

export function response(shape: Shape = {}): CapturedResponse {
  const body = typeof shape.body === 'string' ? Buffer.from(shape.body, 'utf8') : (shape.body ?? Buffer.alloc(0));
  const headers = new Map<string, string[]>();
  for (const [name, v] of Object.entries(shape.headers ?? {})) headers.set(name, Array.isArray(v) ? v : [v]);
  return {
    status: shape.status ?? 200,
    headers,
    body,
    bodyComplete: shape.complete ?? true,
    bodyHash: shape.hash ?? createHash('sha256').update(body).digest('hex'),
    bodyBytes: body.length,
    decodedFrom: null,
    decodeError: shape.decodeError ?? false,
    durationMs: 3,
  };
}

export function json(body: unknown, extra: Shape = {}): CapturedResponse {
  return response({ headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(body), ...extra });
}

export function jsonText(body: string, extra: Shape = {}): CapturedResponse {
  return response({ headers: { 'content-type': 'application/json; charset=utf-8' }, body, ...extra });
}

export function rules(over: Partial<CompareRules> = {}): CompareRules {
  return {
    volatileHeaders: new Set(['date', 'x-request-id']),
    skippedHeaders: new Set(['content-length', 'connection', 'transfer-encoding']),
    ignoreAllHeaders: false,
    bodyFormat: 'auto',
    unorderedArrays: new PathPatternSet(),
    numberTolerance: 0,
    ...over,
  };
}

export function patterns(...sources: string[]): PathPatternSet {
  return new PathPatternSet(
    sources.map((s) => {
      const p = compilePathPattern(s);
      if (typeof p === 'string') throw new Error(p);
      return p;
    }),
  );
}

/** `<path>:<kind>` of each difference, as the result names them. */
export function names(diffs: readonly Difference[]): string[] {
  return diffs.map((d) => `${d.path}:${d.kind}`);
}

export function diff(a: CapturedResponse, b: CapturedResponse, r: CompareRules = rules()): Difference[] {
  return compareResponses(a, b, r);
}
