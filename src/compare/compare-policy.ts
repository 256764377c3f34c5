import type { CompareConfig } from '../config/model';
import type { PolicyStats } from '../stats/scopes';
import { compareResponses } from './diff/compare-responses';
import { compileRules } from './rules';
import { CompareSession, type ComparedRequestLine } from './session';
import type { CapturedResponse, CompareOutcome, CompareRules, ComparedRequest, Difference } from './types';

/** Where a policy's results go: the process's result store (store.ts). */
export interface CompareSink {
  /** Records the result and returns its outcome under the policy's rules in force; null: the policy is gone. */
  record(result: ComparedRequest): 'match' | 'diff' | 'noise_only' | null;
  count(policy: string, outcome: CompareOutcome): void;
}

/**
 * One mirror policy's comparing side: whether a request is compared (methods, sampling, the
 * pending bound), its session, the diff once every response is in, and exactly one outcome per
 * request, counted in stats and in the store.
 */
export class ComparePolicy {
  readonly rules: CompareRules;
  #pending = 0;

  constructor(
    readonly name: string,
    readonly config: CompareConfig,
    private readonly sink: CompareSink,
    private readonly stats: PolicyStats,
    private readonly random: () => number = Math.random,
  ) {
    this.rules = compileRules(config);
  }

  /** A session for this request, or null with the reason counted. */
  begin(method: string, endpoint: string, started: number): CompareSession | null {
    if (!this.config.methods.has(method)) return this.#skip('skipped_method');
    const s = this.config.sampling;
    if (s !== null && this.random() * s.denominator >= s.numerator) return this.#skip('skipped_sampling');
    if (this.#pending >= this.config.maxPending) return this.#skip('skipped_limit');
    this.#pending++;
    return new CompareSession(this, endpoint, this.config.referenceCluster !== null, started);
  }

  /** Called by the session: a comparison that will have no outcome (its shadow was never sent). */
  released(): void {
    this.#pending--;
  }

  /** Called by the session: it ended without three comparable responses. */
  finished(outcome: CompareOutcome): void {
    this.#pending--;
    this.#count(outcome);
  }

  /** Called by the session once every response is in. */
  compare(endpoint: string, request: ComparedRequestLine, primary: CapturedResponse, candidate: CapturedResponse, reference: CapturedResponse | null): void {
    this.#pending--;
    this.stats.compareTime('primary', primary.durationMs);
    this.stats.compareTime('candidate', candidate.durationMs);
    if (reference) this.stats.compareTime('reference', reference.durationMs);
    const raw = statusFirst(compareResponses(primary, candidate, this.rules));
    const noise = reference ? statusFirst(compareResponses(primary, reference, this.rules)) : [];
    const outcome = this.sink.record({ policy: this.name, endpoint, request, primary, candidate, reference, raw, noise });
    if (outcome !== null) this.stats.compared(outcome);
  }

  #skip(outcome: CompareOutcome): null {
    this.#count(outcome);
    return null;
  }

  #count(outcome: CompareOutcome): void {
    this.stats.compared(outcome);
    this.sink.count(this.name, outcome);
  }
}

/**
 * A changed status is the difference: a 500 instead of a 200 has a different body and headers
 * too, and listing them would bury the one fact that matters under fields of an error page.
 */
function statusFirst(diffs: Difference[]): Difference[] {
  const status = diffs.find((d) => d.path === 'status');
  return status ? [status] : diffs;
}
