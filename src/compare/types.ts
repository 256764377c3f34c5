// The shapes the comparison's parts hand each other: a captured response (capture.ts), the
// differences found between two of them (diff/), and one compared request's result for the store
// (store.ts) and the report (report/).
import type { PathPatternSet } from './path-pattern';

/** One response as the comparison sees it: status, headers, and its body decoded, hashed and (boundedly) kept. */
export interface CapturedResponse {
  readonly status: number;
  /** Lower-case names; every value in arrival order. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  /** The decoded body's first bytes (at most the capture bound). */
  readonly body: Buffer;
  /** True when `body` is the whole decoded body; false when the capture bound cut it. */
  readonly bodyComplete: boolean;
  /** Hex SHA-256 of the whole decoded body (the raw one when it could not be decoded). */
  readonly bodyHash: string;
  /** Bytes of the whole decoded body. */
  readonly bodyBytes: number;
  /** The Content-Encoding that was decoded (gzip, deflate, br), or null. */
  readonly decodedFrom: string | null;
  /** The body said it was encoded but did not decode: bodyHash and body are the raw bytes. */
  readonly decodeError: boolean;
  readonly durationMs: number;
}

/** The last segment of a difference's path. */
export type DiffKind = 'changed' | 'missing' | 'added' | 'type' | 'order';

/** One difference between a baseline response (the primary) and another (candidate or reference). */
export interface Difference {
  /**
   * The counting path: `status`, `header.<name>`, `body` (whole-body, by hash or as text), or
   * `body.<json path>` with every array index as `[*]` and map-like keys as `*`. The result's
   * reported name is `<path>:<kind>`.
   */
  readonly path: string;
  readonly kind: DiffKind;
  /** The same place with real indices and keys (`body.items[3].price`), for samples. */
  readonly exactPath: string;
  /** The values at the place, shortened for display; null where there is none (missing/added). */
  readonly primary: string | null;
  readonly other: string | null;
}

/** The compiled rules one policy compares with (from the config's `compare`). */
export interface CompareRules {
  /** Header names whose values are never compared; presence still is (built-in list plus the config's). */
  readonly volatileHeaders: ReadonlySet<string>;
  /** Header names not compared at all (framing, hop-by-hop). */
  readonly skippedHeaders: ReadonlySet<string>;
  /** No header compared at all. */
  readonly ignoreAllHeaders: boolean;
  readonly bodyFormat: 'auto' | 'json' | 'text' | 'bytes';
  /** Counting paths (without kind) of arrays compared without regard to order. */
  readonly unorderedArrays: PathPatternSet;
  /** Two numbers closer than this are equal (0: exact). Integers beyond 2^53 are always compared exactly. */
  readonly numberTolerance: number;
}

/** The three responses of one compared request and what differed. */
export interface ComparedRequest {
  readonly policy: string;
  /** The route's name, or method plus the route's path match. */
  readonly endpoint: string;
  readonly request: { readonly method: string; readonly path: string; readonly headers: Readonly<Record<string, string>> };
  readonly primary: CapturedResponse;
  readonly candidate: CapturedResponse;
  readonly reference: CapturedResponse | null;
  /** Primary vs candidate. */
  readonly raw: readonly Difference[];
  /** Primary vs reference (empty without a reference). */
  readonly noise: readonly Difference[];
}

/** How one request's comparison ended; exactly one per request a comparing policy mirrored. */
export type CompareOutcome =
  | 'match'
  | 'diff'
  | 'noise_only'
  | 'shadow_error'
  | 'shadow_timeout'
  | 'too_large'
  | 'primary_error'
  | 'skipped_method'
  | 'skipped_sampling'
  | 'skipped_limit';

export const COMPARE_OUTCOMES: readonly CompareOutcome[] = [
  'match', 'diff', 'noise_only', 'shadow_error', 'shadow_timeout', 'too_large', 'primary_error',
  'skipped_method', 'skipped_sampling', 'skipped_limit',
];

/** Diffy's noise thresholds, in percent. */
export interface NoiseThresholds {
  /** |raw − noise| / (raw + noise) × 100 must exceed this (Diffy: 20). */
  readonly relative: number;
  /** |raw − noise| / the endpoint's compared requests × 100 must exceed this (Diffy: 0.03). */
  readonly absolute: number;
}

/** What the store keeps per policy, from the config. */
export interface StoreLimits {
  /** Everything this policy's results hold (endpoints, fields, samples), estimated in bytes. */
  readonly maxBytes: number;
  /** Samples kept per (endpoint, path). */
  readonly samplesPerField: number;
  /** Each body in a sample is cut to this many bytes (on a character boundary). */
  readonly sampleBodyBytes: number;
  /** Header names replaced with "[redacted]" in samples (authorization, cookie, set-cookie always). */
  readonly redactHeaders: ReadonlySet<string>;
  /** JSON body paths (counting form, `[*]` for arrays) replaced with "[redacted]" in samples. */
  readonly redactBodyPaths: PathPatternSet;
}
