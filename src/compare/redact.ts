// Samples hold what upstreams answered and what clients sent, so secrets are taken out before
// anything is stored: credentials in headers always, configured headers and JSON body paths, and
// the same places where a difference quotes them. Where a body cannot be checked (it does not
// parse, or the capture bound cut it) while body paths are configured, it is not stored at all:
// a redaction that might have missed is a leak.
import { PLAIN_KEY, type PathPatternSet } from './path-pattern';
import { cutChars, cutUtf8, decodeUtf8, withoutCutTail } from './text-cut';
import type { CapturedResponse, Difference, StoreLimits } from './types';

export const REDACTED = '[redacted]';
export const NOT_REDACTABLE = '[not stored: could not be redacted]';

/** Credentials, whatever the config says. */
export const ALWAYS_REDACTED_HEADERS: ReadonlySet<string> = new Set(['authorization', 'cookie', 'set-cookie', 'proxy-authorization']);

/** A header value, a request line or a difference's value is kept to this many characters. */
export const MAX_VALUE_CHARS = 2048;

/** Nesting deeper than this is not walked; such a body is not stored when paths are to be redacted. */
const MAX_JSON_DEPTH = 256;

/** A body as a sample keeps it. */
export interface StoredBody {
  /** Redacted and cut text, or a bracketed note saying why there is none. */
  readonly text: string;
  /** The whole decoded body's size. */
  readonly bytes: number;
  /** True when `text` is not the whole body (the capture bound or sampleBodyBytes cut it). */
  readonly cut: boolean;
}

/** A difference as a sample keeps it: values redacted where their place is redacted. */
export interface StoredDifference {
  readonly path: string;
  readonly kind: Difference['kind'];
  readonly exactPath: string;
  readonly primary: string | null;
  readonly other: string | null;
}

type RedactLimits = Pick<StoreLimits, 'redactHeaders' | 'redactBodyPaths' | 'sampleBodyBytes'>;

/** One policy's redaction, compiled from its limits. */
export class SampleRedactor {
  readonly #headers: ReadonlySet<string>;
  readonly #paths: PathPatternSet;
  readonly #pathSegments: ReadonlyArray<readonly string[]>;
  readonly #bodyBytes: number;

  constructor(limits: RedactLimits) {
    this.#headers = new Set([...ALWAYS_REDACTED_HEADERS, ...[...limits.redactHeaders].map((h) => h.toLowerCase())]);
    this.#paths = limits.redactBodyPaths;
    this.#pathSegments = limits.redactBodyPaths.sources.filter((s) => s.startsWith('body')).map((s) => segments(s));
    this.#bodyBytes = limits.sampleBodyBytes;
  }

  isRedactedHeader(name: string): boolean {
    return this.#headers.has(name.toLowerCase());
  }

  requestHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) {
      out[cutChars(name, MAX_VALUE_CHARS)] = this.isRedactedHeader(name) ? REDACTED : cutChars(String(value), MAX_VALUE_CHARS);
    }
    return out;
  }

  responseHeaders(headers: ReadonlyMap<string, readonly string[]>): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [name, values] of headers) {
      out[cutChars(name, MAX_VALUE_CHARS)] = this.isRedactedHeader(name)
        ? values.map(() => REDACTED)
        : values.map((v) => cutChars(v, MAX_VALUE_CHARS));
    }
    return out;
  }

  /** The body as text, redacted, then cut to sampleBodyBytes on a character boundary. */
  body(res: Pick<CapturedResponse, 'body' | 'bodyComplete' | 'bodyBytes'>): StoredBody {
    const bytes = res.bodyBytes;
    if (res.body.length === 0) return { text: '', bytes, cut: !res.bodyComplete && bytes > 0 };
    let text: string | null;
    if (this.#paths.size > 0) {
      text = res.bodyComplete ? this.#redactJsonText(res.body) : null;
      if (text === null) return { text: NOT_REDACTABLE, bytes, cut: true };
    } else {
      text = decodeUtf8(res.bodyComplete ? res.body : withoutCutTail(res.body));
      if (text === null) return { text: `[binary body: ${bytes} bytes]`, bytes, cut: true };
    }
    const c = cutUtf8(text, this.#bodyBytes);
    return { text: c.text, bytes, cut: c.cut || !res.bodyComplete };
  }

  difference(d: Difference): StoredDifference {
    const keep = (v: string | null): string | null => (v === null ? null : cutChars(v, MAX_VALUE_CHARS));
    return { path: d.path, kind: d.kind, exactPath: cutChars(d.exactPath, MAX_VALUE_CHARS), primary: keep(this.#value(d, d.primary)), other: keep(this.#value(d, d.other)) };
  }

  /** A difference's value with whatever a redaction rule covers at or below its place removed. */
  #value(d: Difference, value: string | null): string | null {
    if (value === null) return null;
    if (d.path.startsWith('header.')) return this.isRedactedHeader(d.path.slice('header.'.length)) ? REDACTED : value;
    if (d.path !== 'body' && !d.path.startsWith('body.') && !d.path.startsWith('body[')) return value;
    if (this.#paths.matches(d.path)) return REDACTED;
    if (!this.#mayCoverBelow(d.path)) return value;
    // The value is a subtree a rule reaches into: redact inside it when it is whole JSON, else all of it.
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      return REDACTED;
    }
    const r = redactTree(parsed, d.path, this.#paths, 0);
    return r === null ? REDACTED : r.changed ? JSON.stringify(r.value) : value;
  }

  /** True when some rule names a place inside `path` (so a value at `path` may hold it). */
  #mayCoverBelow(path: string): boolean {
    const p = segments(path);
    return this.#pathSegments.some((rule) => rule.length > p.length && p.every((seg, i) => rule[i] === seg || (rule[i] === '.*' && seg.startsWith('.'))));
  }

  /** The body's text with the rules' places redacted, or null when it cannot be checked. */
  #redactJsonText(body: Buffer): string | null {
    const text = decodeUtf8(body);
    if (text === null) return null;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return null;
    }
    const r = redactTree(parsed, 'body', this.#paths, 0);
    if (r === null) return null;
    // Unchanged, the upstream's own text is kept: re-serialising would round integers past 2^53.
    return r.changed ? JSON.stringify(r.value) : text;
  }
}

/**
 * `value` (found at counting path `path`) with every place a rule matches replaced by REDACTED;
 * null when it nests too deep to walk.
 */
function redactTree(value: unknown, path: string, rules: PathPatternSet, depth: number): { value: unknown; changed: boolean } | null {
  if (rules.matches(path)) return { value: REDACTED, changed: true };
  if (value === null || typeof value !== 'object') return { value, changed: false };
  if (depth >= MAX_JSON_DEPTH) return null;
  let changed = false;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const item of value) {
      const r = redactTree(item, `${path}[*]`, rules, depth + 1);
      if (r === null) return null;
      changed ||= r.changed;
      out.push(r.value);
    }
    return { value: changed ? out : value, changed };
  }
  // No prototype: a "__proto__" key from the upstream stays an ordinary key.
  const out = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const r = redactTree(v, `${path}.${PLAIN_KEY.test(k) ? k : '*'}`, rules, depth + 1);
    if (r === null) return null;
    changed ||= r.changed;
    out[k] = r.value;
  }
  return { value: changed ? out : value, changed };
}

/** A counting path's segments after `body`: `.key`, `.*` or `[*]`. */
function segments(path: string): string[] {
  return path.slice(4).match(/\.[^.[]*|\[\*\]/g) ?? [];
}
