// Every comparing policy's results, by name: what the proxy records into and what the admin
// report reads. Configuration updates keep a policy's data; a policy no longer configured goes.
import { Document, Scalar, YAMLSeq } from 'yaml';
import { PolicyResults, type PolicySettings } from './policy-results';
import { compilePathPattern } from './path-pattern';
import type { CompareReport, SamplesReport } from './report-types';
import type { CompareOutcome, ComparedRequest } from './types';

export type { PolicySettings } from './policy-results';

/** A runtime rule change: the rule as stored, or why it was refused. */
export type RuleChange = { readonly ok: true; readonly rule: string } | { readonly ok: false; readonly error: string };

/** A field's name may carry its kind (`body.total:changed`); a rule names the path alone. */
const KIND_SUFFIX = /:(?:changed|missing|added|type|order)$/;

export class CompareRegistry {
  readonly #policies = new Map<string, PolicyResults>();
  readonly #now: () => number;

  constructor(options: { readonly now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Creates the policy's results, or updates its settings keeping its data. */
  configure(name: string, settings: PolicySettings): void {
    const existing = this.#policies.get(name);
    if (existing) existing.configure(settings);
    else this.#policies.set(name, new PolicyResults(name, settings, this.#now));
  }

  /** Drops every policy not named (no longer configured). */
  retain(names: Iterable<string>): void {
    const keep = new Set(names);
    for (const name of [...this.#policies.keys()]) if (!keep.has(name)) this.#policies.delete(name);
  }

  names(): string[] {
    return [...this.#policies.keys()];
  }

  /** The outcome the policy's rules (config and runtime) give a result; null for an unknown policy. */
  outcomeOf(result: ComparedRequest): 'match' | 'diff' | 'noise_only' | null {
    return this.#policies.get(result.policy)?.outcomeOf(result) ?? null;
  }

  /**
   * Records a compared request under `result.policy`, with `outcome` when the caller decided it
   * (else outcomeOf). Returns the outcome counted, or null when the policy is not configured
   * (a config update removed it while the comparison ran).
   */
  record(result: ComparedRequest, outcome?: 'match' | 'diff' | 'noise_only'): 'match' | 'diff' | 'noise_only' | null {
    const p = this.#policies.get(result.policy);
    if (p === undefined) return null;
    const o = outcome ?? p.outcomeOf(result);
    p.record(result, o);
    return o;
  }

  /** Counts an outcome without a compared result (errors, skips); false for an unknown policy. */
  count(policy: string, outcome: CompareOutcome): boolean {
    const p = this.#policies.get(policy);
    p?.count(outcome);
    return p !== undefined;
  }

  /** Adds a runtime ignore rule ("mark as noise"); `path` may end in `:<kind>`, which is dropped. */
  markNoise(policy: string, path: string): RuleChange {
    const p = this.#policies.get(policy);
    if (p === undefined) return { ok: false, error: `no comparing policy named "${policy}"` };
    const pattern = compilePathPattern(path.trim().replace(KIND_SUFFIX, ''));
    if (typeof pattern === 'string') return { ok: false, error: pattern };
    p.addRuntimeRule(pattern);
    return { ok: true, rule: pattern.source };
  }

  /** Removes a runtime ignore rule; the config's rules change only with the config. */
  unmarkNoise(policy: string, path: string): RuleChange {
    const p = this.#policies.get(policy);
    if (p === undefined) return { ok: false, error: `no comparing policy named "${policy}"` };
    const rule = path.trim().replace(KIND_SUFFIX, '');
    if (p.removeRuntimeRule(rule)) return { ok: true, rule };
    if (p.configRules.includes(rule)) return { ok: false, error: `"${rule}" is a rule of the config; change it there` };
    return { ok: false, error: `no runtime rule "${rule}" in policy "${policy}"` };
  }

  /** Clears one policy's counts and samples, or every policy's; false for an unknown policy. */
  reset(policy?: string): boolean {
    if (policy === undefined) {
      for (const p of this.#policies.values()) p.reset();
      return true;
    }
    const p = this.#policies.get(policy);
    p?.reset();
    return p !== undefined;
  }

  /** Policies by diff rate (highest first), each with its endpoints and fields. */
  report(): CompareReport {
    const policies = [...this.#policies.values()].map((p) => p.report());
    policies.sort((a, b) => b.diff_rate - a.diff_rate || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { policies, memory: this.memory() };
  }

  /** Bytes held (estimated) over every policy, their budgets' sum, and evictions since their resets. */
  memory(): CompareReport['memory'] {
    let bytes = 0;
    let maxBytes = 0;
    let evicted = 0;
    for (const p of this.#policies.values()) {
      bytes += p.bytes;
      maxBytes += p.maxBytes;
      evicted += p.evicted;
    }
    return { bytes, max_bytes: maxBytes, evicted };
  }

  /** A field's samples (`field` is `<path>:<kind>`), newest first; null when not held. */
  samples(policy: string, endpoint: string, field: string): SamplesReport | null {
    const list = this.#policies.get(policy)?.samples(endpoint, field);
    return list == null ? null : { policy, endpoint, field, samples: list };
  }

  /** The policy's ignore rules, config and runtime, as a `compare:` snippet; null for an unknown policy. */
  exportYaml(policy: string): string | null {
    const p = this.#policies.get(policy);
    if (p === undefined) return null;
    const doc = new Document({ compare: { ignore: [] as string[] } });
    const seq = doc.getIn(['compare', 'ignore']) as YAMLSeq;
    const config = p.configRules;
    for (const rule of config) seq.add(new Scalar(rule));
    for (const rule of p.runtimeRules) {
      if (config.includes(rule)) continue;
      const s = new Scalar(rule);
      s.comment = ' marked as noise at run time';
      seq.add(s);
    }
    doc.commentBefore = ` policy ${policy}: its ignore rules, the config's and those marked at run time`;
    return doc.toString({ indentSeq: false });
  }
}
