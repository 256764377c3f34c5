// Samples hold what upstreams answered and what clients sent, so secrets are taken out before
// anything is stored: credentials in headers always, configured headers and JSON body paths, and
// the same places where a difference quotes them. Where a body cannot be checked (it does not
// parse, or the capture bound cut it) while body paths are configured, it is not stored at all,
// and neither is a line quoted from it: a redaction that might have missed is a leak.
import { keyedPath } from './diff/json-path';
import { firstDifferingLine } from './diff/text-diff';
import type { PathPatternSet } from './path-pattern';
import { type JsonRedaction, redactJsonText } from './redact-json';
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
  readonly #json: JsonRedaction;
  /** Each response's body with the rules applied (null: it cannot be), worked out once per response. */
  readonly #redactedBodies = new WeakMap<CapturedResponse, string | null>();

  constructor(limits: RedactLimits) {
    this.#headers = new Set([...ALWAYS_REDACTED_HEADERS, ...[...limits.redactHeaders].map((h) => h.toLowerCase())]);
    this.#paths = limits.redactBodyPaths;
    this.#pathSegments = limits.redactBodyPaths.sources.filter((s) => s.startsWith('body')).map((s) => segments(s));
    this.#bodyBytes = limits.sampleBodyBytes;
    this.#json = { rules: this.#paths, reachesBelow: (path) => this.#mayCoverBelow(path), maxDepth: MAX_JSON_DEPTH };
  }

  isRedactedHeader(name: string): boolean {
    return this.#headers.has(name.toLowerCase());
  }

  requestHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
    // No prototype: a header named `__proto__` is kept like any other.
    const out = Object.create(null) as Record<string, string>;
    for (const [name, value] of Object.entries(headers)) {
      out[cutChars(name, MAX_VALUE_CHARS)] = this.isRedactedHeader(name) ? REDACTED : cutChars(String(value), MAX_VALUE_CHARS);
    }
    return out;
  }

  responseHeaders(headers: ReadonlyMap<string, readonly string[]>): Record<string, string[]> {
    const out = Object.create(null) as Record<string, string[]>;
    for (const [name, values] of headers) {
      out[cutChars(name, MAX_VALUE_CHARS)] = this.isRedactedHeader(name)
        ? values.map(() => REDACTED)
        : values.map((v) => cutChars(v, MAX_VALUE_CHARS));
    }
    return out;
  }

  /** The body as text, redacted, then cut to sampleBodyBytes on a character boundary. */
  body(res: CapturedResponse): StoredBody {
    const bytes = res.bodyBytes;
    if (res.body.length === 0) return { text: '', bytes, cut: !res.bodyComplete && bytes > 0 };
    let text: string | null;
    if (this.#paths.size > 0) {
      text = this.#redactedBody(res);
      if (text === null) return { text: NOT_REDACTABLE, bytes, cut: true };
    } else {
      text = decodeUtf8(res.bodyComplete ? res.body : withoutCutTail(res.body));
      if (text === null) return { text: `[binary body: ${bytes} bytes]`, bytes, cut: true };
    }
    const c = cutUtf8(text, this.#bodyBytes);
    return { text: c.text, bytes, cut: c.cut || !res.bodyComplete };
  }

  /** A difference between `primary` and `other` (the responses it was found in) as a sample keeps it. */
  difference(d: Difference, primary: CapturedResponse, other: CapturedResponse): StoredDifference {
    const keep = (v: string | null): string | null => (v === null ? null : cutChars(v, MAX_VALUE_CHARS));
    const values = d.path === 'body' && d.kind === 'changed' && this.#paths.size > 0 && (d.primary !== null || d.other !== null)
      ? this.#bodyLines(primary, other)
      : { primary: this.#value(d, d.primary), other: this.#value(d, d.other) };
    return { path: d.path, kind: d.kind, exactPath: cutChars(d.exactPath, MAX_VALUE_CHARS), primary: keep(values.primary), other: keep(values.other) };
  }

  /**
   * A whole-body difference quotes each body's first differing line, which may hold any value of
   * it: the lines are taken again from the bodies as redacted, and a body that cannot be
   * redacted has its line left out.
   */
  #bodyLines(primary: CapturedResponse, other: CapturedResponse): { primary: string | null; other: string | null } {
    const a = this.#redactedBody(primary);
    const b = this.#redactedBody(other);
    const line = firstDifferingLine(a === null ? primary.body : Buffer.from(a), b === null ? other.body : Buffer.from(b));
    // Equal once redacted: the bodies differed only inside redacted values.
    if (a !== null && b !== null && line.primary === null && line.other === null) return { primary: REDACTED, other: REDACTED };
    return { primary: a === null ? NOT_REDACTABLE : line.primary, other: b === null ? NOT_REDACTABLE : line.other };
  }

  /** A difference's value with whatever a redaction rule covers at or below its place removed. */
  #value(d: Difference, value: string | null): string | null {
    if (value === null) return null;
    if (d.path.startsWith('header.')) return this.isRedactedHeader(d.path.slice('header.'.length)) ? REDACTED : value;
    if (d.path !== 'body' && !d.path.startsWith('body.') && !d.path.startsWith('body[')) return value;
    // Rules are matched against the place the value came from, each key as itself: under a
    // map-like object the counting path says only `body.*`.
    const place = keyedPath(d.exactPath);
    if (this.#paths.matches(place)) return REDACTED;
    if (!this.#mayCoverBelow(place)) return value;
    // The value is a subtree a rule reaches into: redact inside it when it is whole JSON, else all of it.
    const r = redactJsonText(value, place, this.#json);
    return r === null ? REDACTED : r.text;
  }

  /** True when some rule names a place inside `path` (so a value at `path` may hold it). */
  #mayCoverBelow(path: string): boolean {
    const p = segments(path);
    return this.#pathSegments.some((rule) => rule.length > p.length && p.every((seg, i) => rule[i] === seg || (rule[i] === '.*' && seg.startsWith('.'))));
  }

  /** The body's text with the rules' places redacted, or null when it cannot be checked. */
  #redactedBody(res: CapturedResponse): string | null {
    let text = this.#redactedBodies.get(res);
    if (text === undefined) {
      const utf8 = res.bodyComplete ? decodeUtf8(res.body) : null;
      text = utf8 === null ? null : redactJsonText(utf8, 'body', this.#json)?.text ?? null;
      this.#redactedBodies.set(res, text);
    }
    return text;
  }
}

/** A counting path's segments after `body`: `.key`, `.*` or `[*]`. */
function segments(path: string): string[] {
  return path.slice(4).match(/\.[^.[]*|\[\*\]/g) ?? [];
}
