// The JSON the admin report serves (GET /mirror/compare?format=json), Diffy's overview reshaped:
// per policy its outcomes, endpoints by diff rate, and per endpoint its fields with the verdict.
import type { LatencyReport } from './latency';
import type { Sample } from './sample';
import type { CompareOutcome, DiffKind, NoiseThresholds } from './types';

export type FieldVerdict = 'diff' | 'noise';
/** `ignored`: an ignore rule covers the field; `measured`: Diffy's test against the noise decided. */
export type VerdictReason = 'ignored' | 'measured';
export type RuleSource = 'config' | 'runtime';

export interface FieldReport {
  /** `<counting path>:<kind>`, the field's name. */
  readonly path: string;
  /** The counting path alone (what an ignore rule names). */
  readonly field: string;
  readonly kind: DiffKind;
  /** Requests where primary and candidate differed here. */
  readonly diffs: number;
  /** Requests where primary and reference differed here. */
  readonly noise: number;
  /** diffs and noise as percent of the endpoint's compared requests. */
  readonly diff_pct: number;
  readonly noise_pct: number;
  /** Diffy's relative and absolute differences, in percent. */
  readonly relative: number;
  readonly absolute: number;
  readonly verdict: FieldVerdict;
  readonly reason: VerdictReason;
  /** Which rules ignore it (with reason `ignored`). */
  readonly source?: RuleSource;
  readonly samples: number;
  readonly last_seen: string;
}

export interface EndpointReport {
  readonly name: string;
  /** Requests compared (match, diff, noise_only). */
  readonly total: number;
  /** Requests whose outcome was diff, under the rules in force when they were recorded. */
  readonly diffs: number;
  readonly noise_only: number;
  /** diffs / total, percent. */
  readonly diff_rate: number;
  /** Fields whose verdict is diff now. */
  readonly diff_fields: number;
  readonly fields: readonly FieldReport[];
}

export interface PolicyMemory {
  readonly bytes: number;
  readonly max_bytes: number;
  readonly evicted_fields: number;
  readonly evicted_endpoints: number;
}

export interface PolicyReport {
  readonly name: string;
  readonly outcomes: Readonly<Record<CompareOutcome, number>>;
  /** match + diff + noise_only. */
  readonly compared: number;
  /** outcomes.diff / compared, percent. */
  readonly diff_rate: number;
  readonly reference: boolean;
  readonly thresholds: NoiseThresholds;
  readonly rules: { readonly config: readonly string[]; readonly runtime: readonly string[] };
  /** When counting began (creation or the last reset). */
  readonly since: string;
  /** The last reset, or null when never reset. */
  readonly last_reset: string | null;
  readonly latency: { readonly primary: LatencyReport; readonly candidate: LatencyReport; readonly reference?: LatencyReport };
  readonly memory: PolicyMemory;
  readonly endpoints: readonly EndpointReport[];
}

export interface CompareReport {
  readonly policies: readonly PolicyReport[];
  readonly memory: { readonly bytes: number; readonly max_bytes: number; readonly evicted: number };
}

export interface SamplesReport {
  readonly policy: string;
  readonly endpoint: string;
  readonly field: string;
  /** Newest first. */
  readonly samples: readonly Sample[];
}
