import { compilePathPattern } from '../../compare/path-pattern';
import type { CompareConfig } from '../model';
import { type Ctx, type Pb, at, atIndex, durationMs, fail, fractionalPercent, wrapped } from './common';

// A mirror policy's `compare` (sidemirror.filters.http.mirror.v1.Compare) into the model.

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const KiB = 1024;
const MiB = 1024 * KiB;

export function decodeCompare(c: Pb, ctx: Ctx, mirrorCluster: string | null): CompareConfig {
  const methods = tokens(c, 'methods', ctx, 'an HTTP method', (m) => m.toUpperCase());
  const reference = c.reference_cluster ? String(c.reference_cluster) : null;
  if (reference !== null && reference === mirrorCluster) {
    fail(at(ctx, 'reference_cluster'), 'is the candidate\'s own cluster: the reference must be a second copy of the primary\'s version');
  }
  const headers = (c.headers ?? {}) as Pb;
  const hctx = at(ctx, 'headers');
  const body = (c.body ?? {}) as Pb;
  const bctx = at(ctx, 'body');
  const store = (c.store ?? {}) as Pb;
  const sctx = at(ctx, 'store');
  const tolerance = Number(body.number_tolerance ?? 0);
  if (!(tolerance >= 0) || !Number.isFinite(tolerance)) fail(at(bctx, 'number_tolerance'), 'must be a finite number, 0 or more');
  const maxCapture = positive(body.max_capture_bytes, 256 * KiB, at(bctx, 'max_capture_bytes'));
  const maxBytes = positive(body.max_bytes, 64 * MiB, at(bctx, 'max_bytes'));
  if (maxCapture > maxBytes) fail(at(bctx, 'max_capture_bytes'), `must not exceed max_bytes (${maxBytes})`);
  const relative = percent(c.relative_threshold, 20, at(ctx, 'relative_threshold'));
  const absolute = percent(c.absolute_threshold, 0.03, at(ctx, 'absolute_threshold'));
  const timeoutMs = durationMs(c.timeout as Pb | undefined, 30_000);
  if (timeoutMs <= 0) fail(at(ctx, 'timeout'), 'must be positive');
  return {
    referenceCluster: reference,
    methods: new Set(methods.length > 0 ? methods : ['GET', 'HEAD']),
    sampling: c.sampling ? fractionalPercent(c.sampling as Pb) : null,
    headers: {
      ignoreAll: Boolean(headers.ignore_all),
      volatile: tokens(headers, 'volatile', hctx, 'a header name', (h) => h.toLowerCase()),
      compare: tokens(headers, 'compare', hctx, 'a header name', (h) => h.toLowerCase()),
    },
    body: {
      format: ({ JSON: 'json', TEXT: 'text', BYTES: 'bytes' } as const)[String(body.format) as 'JSON'] ?? 'auto',
      unorderedArrays: patterns(body, 'unordered_arrays', bctx, true),
      numberTolerance: tolerance,
      maxCaptureBytes: maxCapture,
      maxBytes,
    },
    ignore: patterns(c, 'ignore', ctx, false),
    thresholds: { relative, absolute },
    timeoutMs,
    maxPending: positive(c.max_pending, 256, at(ctx, 'max_pending')),
    store: {
      maxBytes: positive(store.max_bytes, 8 * MiB, at(sctx, 'max_bytes')),
      samplesPerField: wrapped(store.samples_per_field, 5),
      sampleBodyBytes: positive(store.sample_body_bytes, 4 * KiB, at(sctx, 'sample_body_bytes')),
      redactHeaders: tokens(store, 'redact_headers', sctx, 'a header name', (h) => h.toLowerCase()),
      redactBodyPaths: patterns(store, 'redact_body_paths', sctx, true),
    },
    fleet: c.fleet ? decodeFleet(c.fleet as Pb, at(ctx, 'fleet')) : null,
  };
}

function decodeFleet(f: Pb, ctx: Ctx): NonNullable<CompareConfig['fleet']> {
  const name = String(f.redis ?? '');
  if (!name) fail(at(ctx, 'redis'), 'name a Redis connection of the filter\'s `redis` map');
  const intervalMs = durationMs(f.interval as Pb | undefined, 5000);
  if (intervalMs < 100) fail(at(ctx, 'interval'), 'must be at least 100ms');
  // Looked up in the filter's `redis` map once the policy meets its filter (checkRedisNames).
  return { redis: { kind: 'named', name, path: at(ctx, 'redis').path }, intervalMs, keyPrefix: String(f.key_prefix ?? '') || 'sidemirror:compare:' };
}

function tokens(m: Pb, field: string, ctx: Ctx, what: string, norm: (s: string) => string): string[] {
  const list = ((m[field] as string[] | undefined) ?? []).map((s) => norm(String(s)));
  list.forEach((v, i) => {
    if (!TOKEN.test(v)) fail(atIndex(ctx, field, i), `"${v}" is not ${what}`);
  });
  return list;
}

/** Field path rules, each checked; `bodyOnly`: only `body…` paths make sense (arrays, JSON redaction). */
function patterns(m: Pb, field: string, ctx: Ctx, bodyOnly: boolean): string[] {
  const list = ((m[field] as string[] | undefined) ?? []).map(String);
  list.forEach((p, i) => {
    const compiled = compilePathPattern(p);
    if (typeof compiled === 'string') fail(atIndex(ctx, field, i), compiled);
    else if (bodyOnly && !p.startsWith('body.')) fail(atIndex(ctx, field, i), `"${p}": a JSON body path starts with "body."`);
  });
  return list;
}

function positive(w: Pb | undefined, fallback: number, ctx: Ctx): number {
  const v = Number(wrapped(w, fallback));
  if (!(v > 0)) fail(ctx, 'must be greater than 0');
  return v;
}

function percent(w: Pb | undefined, fallback: number, ctx: Ctx): number {
  const v = Number(wrapped(w, fallback));
  if (!(v >= 0 && v <= 100)) fail(ctx, 'a percentage from 0 to 100');
  return v;
}
