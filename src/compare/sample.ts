// One stored example of a differing request: the request, the three responses and what differed,
// every value redacted and cut before it is kept (redact.ts).
import { MAX_VALUE_CHARS, type SampleRedactor, type StoredBody, type StoredDifference } from './redact';
import { cutChars } from './text-cut';
import type { CapturedResponse, ComparedRequest } from './types';

/** A sample keeps at most this many of its request's differences (a changed array can give thousands). */
export const MAX_SAMPLE_DIFFERENCES = 200;

export interface StoredResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, readonly string[]>>;
  readonly body: StoredBody;
  readonly durationMs: number;
}

export interface Sample {
  /** Counts up per policy from 1. */
  readonly id: number;
  /** ISO time it was recorded. */
  readonly time: string;
  readonly endpoint: string;
  readonly request: { readonly line: string; readonly headers: Readonly<Record<string, string>> };
  readonly primary: StoredResponse;
  readonly candidate: StoredResponse;
  readonly reference: StoredResponse | null;
  /** Primary vs candidate, redacted. */
  readonly differences: readonly StoredDifference[];
  /** Differences of this request left out past MAX_SAMPLE_DIFFERENCES. */
  readonly differencesOmitted: number;
}

export function buildSample(id: number, time: Date, r: ComparedRequest, redactor: SampleRedactor): Sample {
  const kept = r.raw.slice(0, MAX_SAMPLE_DIFFERENCES);
  return {
    id,
    time: time.toISOString(),
    endpoint: r.endpoint,
    request: { line: cutChars(`${r.request.method} ${r.request.path}`, MAX_VALUE_CHARS), headers: redactor.requestHeaders(r.request.headers) },
    primary: storedResponse(r.primary, redactor),
    candidate: storedResponse(r.candidate, redactor),
    reference: r.reference === null ? null : storedResponse(r.reference, redactor),
    differences: kept.map((d) => redactor.difference(d, r.primary, r.candidate)),
    differencesOmitted: r.raw.length - kept.length,
  };
}

function storedResponse(res: CapturedResponse, redactor: SampleRedactor): StoredResponse {
  return { status: res.status, headers: redactor.responseHeaders(res.headers), body: redactor.body(res), durationMs: Math.round(res.durationMs * 100) / 100 };
}

/** What the estimate charges for any one object, array, map entry or string beyond its characters. */
export const ENTRY_OVERHEAD = 48;

/**
 * Bytes a plain value (strings, numbers, booleans, null, arrays and objects of them) is estimated
 * to hold in the heap: 2 per string character, ENTRY_OVERHEAD per string, object, array and key.
 */
export function estimateBytes(value: unknown): number {
  if (typeof value === 'string') return ENTRY_OVERHEAD + 2 * value.length;
  if (value === null || typeof value !== 'object') return 8;
  let n = ENTRY_OVERHEAD;
  if (Array.isArray(value)) {
    for (const v of value) n += estimateBytes(v);
    return n;
  }
  for (const [k, v] of Object.entries(value)) n += ENTRY_OVERHEAD + 2 * k.length + estimateBytes(v);
  return n;
}
