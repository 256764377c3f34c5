// One comparing policy's results: outcome counts, per endpoint and field the raw and noise counts
// Diffy's test needs, a few redacted samples per field, and latency per role, all inside a byte
// budget. Endpoint records are kept to a share of it: every compared request leaves one, matches
// included, so a client visiting many distinct paths must not push the differences out. Past the
// share, endpoints that hold no field go, least recently updated first; over the whole budget,
// the least recently updated fields go (their samples with them), then endpoints. What went is
// counted, never silently lost.
import { LatencySummary } from './latency';
import { absoluteDifference, fieldKey, isRequestNoise, relativeDifference, requestOutcome, verdict } from './noise';
import { PathPatternSet, type PathPattern } from './path-pattern';
import { SampleRedactor } from './redact';
import type { EndpointReport, FieldReport, PolicyReport, RuleSource } from './report-types';
import { ENTRY_OVERHEAD, buildSample, estimateBytes, type Sample } from './sample';
import { COMPARE_OUTCOMES, type CompareOutcome, type ComparedRequest, type DiffKind, type Difference, type NoiseThresholds, type StoreLimits } from './types';

export interface PolicySettings {
  readonly limits: StoreLimits;
  readonly thresholds: NoiseThresholds;
  /** The config's ignore rules. */
  readonly configIgnore: PathPatternSet;
  /** A reference shadow measures noise. */
  readonly hasReference: boolean;
}

interface EndpointState {
  readonly name: string;
  total: number;
  diffs: number;
  noiseOnly: number;
  readonly fields: Map<string, FieldState>;
}

interface FieldState {
  readonly endpoint: EndpointState;
  readonly key: string;
  readonly path: string;
  readonly kind: DiffKind;
  raw: number;
  noise: number;
  lastSeen: number;
  /** Oldest first; at most samplesPerField. */
  readonly samples: SampleEntry[];
  readonly bytes: number;
}

interface SampleEntry {
  readonly sample: Sample;
  readonly bytes: number;
  /** Fields whose ring holds it; its bytes are freed when none does. */
  refs: number;
}

/** Counters of an endpoint (four numbers) and of a field (three), beyond their names. */
const COUNTERS_BYTES = 64;

/** The part of store.max_bytes endpoint records may take; past it, those holding no field go. */
const ENDPOINTS_SHARE = 0.25;

export class PolicyResults {
  #settings: PolicySettings;
  #redactor: SampleRedactor;
  readonly #runtime: PathPattern[] = [];
  #runtimeSet = new PathPatternSet();
  #ignoreAll = new PathPatternSet();
  #outcomes = zeroOutcomes();
  /** Insertion order is update order: the first entry is the least recently updated. */
  readonly #endpoints = new Map<string, EndpointState>();
  /** The endpoints that hold no field, in update order too: the first to go. */
  readonly #emptyEndpoints = new Map<string, EndpointState>();
  readonly #fields = new Map<string, FieldState>();
  #latency = newLatency();
  #bytes = 0;
  /** Of #bytes, what the endpoint records themselves hold. */
  #endpointBytes = 0;
  #evictedFields = 0;
  #evictedEndpoints = 0;
  #nextSampleId = 1;
  #since: number;
  #lastReset: number | null = null;

  constructor(readonly name: string, settings: PolicySettings, private readonly now: () => number) {
    this.#settings = settings;
    this.#redactor = new SampleRedactor(settings.limits);
    this.#since = now();
    this.#rebuildIgnore();
  }

  get bytes(): number {
    return this.#bytes;
  }

  get maxBytes(): number {
    return this.#settings.limits.maxBytes;
  }

  get evicted(): number {
    return this.#evictedFields + this.#evictedEndpoints;
  }

  /** New settings; the data stays, except samples redacted under different redaction rules. */
  configure(settings: PolicySettings): void {
    const old = this.#settings.limits;
    this.#settings = settings;
    this.#rebuildIgnore();
    if (!sameRedaction(old, settings.limits)) {
      this.#redactor = new SampleRedactor(settings.limits);
      for (const f of this.#fields.values()) while (f.samples.length > 0) this.#release(f.samples.shift()!);
    }
    const keep = Math.max(0, settings.limits.samplesPerField);
    for (const f of this.#fields.values()) while (f.samples.length > keep) this.#release(f.samples.shift()!);
    this.#enforce();
  }

  /** The outcome this policy's ignore rules (config and runtime) give a compared request. */
  outcomeOf(result: ComparedRequest): 'match' | 'diff' | 'noise_only' {
    return requestOutcome(result.raw, result.noise, this.#ignoreAll);
  }

  /** Counts a compared request; keeps a sample only when it differs beyond noise. */
  record(result: ComparedRequest, outcome: 'match' | 'diff' | 'noise_only' = this.outcomeOf(result)): void {
    const at = this.now();
    this.#outcomes[outcome]++;
    this.#latency.primary.add(result.primary.durationMs);
    this.#latency.candidate.add(result.candidate.durationMs);
    if (result.reference !== null) this.#latency.reference.add(result.reference.durationMs);
    const ep = this.#touchEndpoint(result.endpoint);
    ep.total++;
    if (outcome === 'diff') ep.diffs++;
    if (outcome === 'noise_only') ep.noiseOnly++;
    const rawFields = this.#countFields(ep, result.raw, at, 'raw');
    this.#countFields(ep, result.noise, at, 'noise');
    if (outcome === 'diff') this.#keepSample(result, rawFields, at);
    this.#enforce();
  }

  /** Counts an outcome that has no compared result (errors, skips). */
  count(outcome: CompareOutcome): void {
    this.#outcomes[outcome]++;
  }

  /** Adds a runtime ignore rule; false when it was there already. */
  addRuntimeRule(p: PathPattern): boolean {
    if (this.#runtime.some((q) => q.source === p.source)) return false;
    this.#runtime.push(p);
    this.#rebuildIgnore();
    return true;
  }

  /** Drops a runtime ignore rule; false when there was none of that source. */
  removeRuntimeRule(source: string): boolean {
    const i = this.#runtime.findIndex((q) => q.source === source);
    if (i < 0) return false;
    this.#runtime.splice(i, 1);
    this.#rebuildIgnore();
    return true;
  }

  get configRules(): string[] {
    return this.#settings.configIgnore.sources;
  }

  get runtimeRules(): string[] {
    return this.#runtime.map((p) => p.source);
  }

  /** Clears counts, fields, samples and latency; rules stay. */
  reset(): void {
    this.#outcomes = zeroOutcomes();
    this.#endpoints.clear();
    this.#emptyEndpoints.clear();
    this.#fields.clear();
    this.#latency = newLatency();
    this.#bytes = 0;
    this.#endpointBytes = 0;
    this.#evictedFields = 0;
    this.#evictedEndpoints = 0;
    this.#since = this.now();
    this.#lastReset = this.#since;
  }

  /** A field's samples, newest first; null when the endpoint or field is not held. */
  samples(endpoint: string, field: string): Sample[] | null {
    const f = this.#fields.get(globalKey(endpoint, field));
    return f === undefined ? null : f.samples.map((e) => e.sample).reverse();
  }

  report(): PolicyReport {
    const compared = this.#outcomes.match + this.#outcomes.diff + this.#outcomes.noise_only;
    const endpoints = [...this.#endpoints.values()].map((ep) => this.#endpointReport(ep));
    endpoints.sort((a, b) => b.diff_rate - a.diff_rate || b.diff_fields - a.diff_fields || compareText(a.name, b.name));
    const latency = { primary: this.#latency.primary.report(), candidate: this.#latency.candidate.report() };
    return {
      name: this.name,
      outcomes: { ...this.#outcomes },
      compared,
      diff_rate: percent(this.#outcomes.diff, compared),
      reference: this.#settings.hasReference,
      thresholds: { relative: this.#settings.thresholds.relative, absolute: this.#settings.thresholds.absolute },
      rules: { config: this.configRules, runtime: this.runtimeRules },
      since: new Date(this.#since).toISOString(),
      last_reset: this.#lastReset === null ? null : new Date(this.#lastReset).toISOString(),
      latency: this.#settings.hasReference ? { ...latency, reference: this.#latency.reference.report() } : latency,
      memory: { bytes: this.#bytes, max_bytes: this.maxBytes, evicted_fields: this.#evictedFields, evicted_endpoints: this.#evictedEndpoints },
      endpoints,
    };
  }

  #endpointReport(ep: EndpointState): EndpointReport {
    const fields = [...ep.fields.values()].map((f) => this.#fieldReport(f, ep.total));
    fields.sort((a, b) => rank(a.verdict) - rank(b.verdict) || b.diffs - a.diffs || b.noise - a.noise || compareText(a.path, b.path));
    return {
      name: ep.name,
      total: ep.total,
      diffs: ep.diffs,
      noise_only: ep.noiseOnly,
      diff_rate: percent(ep.diffs, ep.total),
      diff_fields: fields.filter((f) => f.verdict === 'diff').length,
      fields,
    };
  }

  #fieldReport(f: FieldState, total: number): FieldReport {
    const source = this.#ignoredBy(f.path);
    const common = {
      path: f.key,
      field: f.path,
      kind: f.kind,
      diffs: f.raw,
      noise: f.noise,
      diff_pct: percent(f.raw, total),
      noise_pct: percent(f.noise, total),
      relative: round(relativeDifference(f.raw, f.noise)),
      absolute: round(absoluteDifference(f.raw, f.noise, total)),
      samples: f.samples.length,
      last_seen: new Date(f.lastSeen).toISOString(),
    };
    if (source !== null) return { ...common, verdict: 'noise', reason: 'ignored', source };
    return { ...common, verdict: verdict(f.raw, f.noise, total, this.#settings.thresholds), reason: 'measured' };
  }

  #ignoredBy(path: string): RuleSource | null {
    if (this.#settings.configIgnore.matches(path)) return 'config';
    return this.#runtimeSet.matches(path) ? 'runtime' : null;
  }

  /** Counts each field of `diffs` once for this request; returns the fields, first occurrence each. */
  #countFields(ep: EndpointState, diffs: readonly Difference[], at: number, which: 'raw' | 'noise'): Map<string, { field: FieldState; d: Difference }> {
    const seen = new Map<string, { field: FieldState; d: Difference }>();
    for (const d of diffs) {
      const key = fieldKey(d);
      if (seen.has(key)) continue;
      const field = this.#touchField(ep, key, d, at);
      field[which]++;
      seen.set(key, { field, d });
    }
    return seen;
  }

  #keepSample(result: ComparedRequest, rawFields: Map<string, { field: FieldState; d: Difference }>, at: number): void {
    const keep = this.#settings.limits.samplesPerField;
    if (keep <= 0) return;
    const noiseKeys = new Set(result.noise.map(fieldKey));
    // Fields this request's own noise or a rule explains get no sample: only real differences are kept.
    const targets = [...rawFields.values()].filter(({ d }) => !isRequestNoise(d, noiseKeys, this.#ignoreAll)).map(({ field }) => field);
    if (targets.length === 0) return;
    const sample = buildSample(this.#nextSampleId++, new Date(at), result, this.#redactor);
    const entry: SampleEntry = { sample, bytes: estimateBytes(sample), refs: 0 };
    this.#bytes += entry.bytes;
    for (const f of targets) {
      f.samples.push(entry);
      entry.refs++;
      this.#bytes += ENTRY_OVERHEAD;
      while (f.samples.length > keep) this.#release(f.samples.shift()!);
    }
  }

  #release(entry: SampleEntry): void {
    this.#bytes -= ENTRY_OVERHEAD;
    if (--entry.refs === 0) this.#bytes -= entry.bytes;
  }

  #touchEndpoint(name: string): EndpointState {
    let ep = this.#endpoints.get(name);
    if (ep === undefined) {
      ep = { name, total: 0, diffs: 0, noiseOnly: 0, fields: new Map() };
      this.#bytes += endpointBytes(name);
      this.#endpointBytes += endpointBytes(name);
    } else {
      this.#endpoints.delete(name);
    }
    this.#endpoints.set(name, ep);
    if (ep.fields.size === 0) {
      this.#emptyEndpoints.delete(name);
      this.#emptyEndpoints.set(name, ep);
    }
    return ep;
  }

  #touchField(ep: EndpointState, key: string, d: Difference, at: number): FieldState {
    const gk = globalKey(ep.name, key);
    let f = this.#fields.get(gk);
    if (f === undefined) {
      f = { endpoint: ep, key, path: d.path, kind: d.kind, raw: 0, noise: 0, lastSeen: at, samples: [], bytes: fieldBytes(ep.name, key, d.path) };
      ep.fields.set(key, f);
      this.#emptyEndpoints.delete(ep.name);
      this.#bytes += f.bytes;
    } else {
      this.#fields.delete(gk);
      f.lastSeen = at;
    }
    this.#fields.set(gk, f);
    return f;
  }

  /**
   * Evicts until the estimate fits: endpoints without fields past their share, then fields, then
   * endpoints, least recently updated first.
   */
  #enforce(): void {
    const max = this.#settings.limits.maxBytes;
    while (this.#endpointBytes > max * ENDPOINTS_SHARE) {
      const empty = this.#emptyEndpoints.values().next();
      if (empty.done) break;
      this.#evictEndpoint(empty.value);
    }
    while (this.#bytes > max) {
      const oldestField = this.#fields.values().next();
      if (!oldestField.done) {
        this.#evictField(oldestField.value);
        continue;
      }
      const oldestEndpoint = this.#endpoints.values().next();
      if (oldestEndpoint.done) break;
      this.#evictEndpoint(oldestEndpoint.value);
    }
  }

  #evictEndpoint(ep: EndpointState): void {
    this.#endpoints.delete(ep.name);
    this.#emptyEndpoints.delete(ep.name);
    this.#bytes -= endpointBytes(ep.name);
    this.#endpointBytes -= endpointBytes(ep.name);
    this.#evictedEndpoints++;
  }

  #evictField(f: FieldState): void {
    this.#fields.delete(globalKey(f.endpoint.name, f.key));
    f.endpoint.fields.delete(f.key);
    if (f.endpoint.fields.size === 0) this.#emptyEndpoints.set(f.endpoint.name, f.endpoint);
    while (f.samples.length > 0) this.#release(f.samples.shift()!);
    this.#bytes -= f.bytes;
    this.#evictedFields++;
  }

  #rebuildIgnore(): void {
    this.#runtimeSet = new PathPatternSet(this.#runtime);
    this.#ignoreAll = new PathPatternSet(this.#runtime);
    const config = this.#settings.configIgnore;
    // One pattern standing for the config's whole set: its compiled patterns stay the one source of truth.
    if (config.size > 0) this.#ignoreAll.add({ source: '(config rules)', matches: (p) => config.matches(p) });
  }
}

function zeroOutcomes(): Record<CompareOutcome, number> {
  return Object.fromEntries(COMPARE_OUTCOMES.map((o) => [o, 0])) as Record<CompareOutcome, number>;
}

function newLatency(): { primary: LatencySummary; candidate: LatencySummary; reference: LatencySummary } {
  return { primary: new LatencySummary(), candidate: new LatencySummary(), reference: new LatencySummary() };
}

function globalKey(endpoint: string, field: string): string {
  return `${endpoint}\n${field}`;
}

function endpointBytes(name: string): number {
  // The name is held as the endpoints map's key and in the state.
  return 3 * ENTRY_OVERHEAD + 2 * 2 * name.length + COUNTERS_BYTES;
}

function fieldBytes(endpoint: string, key: string, path: string): number {
  // Keys in the endpoint's map and in the update-order map (endpoint + key), the path, the ring.
  return 5 * ENTRY_OVERHEAD + 2 * (key.length + endpoint.length + 1 + key.length + path.length) + COUNTERS_BYTES;
}

function sameRedaction(a: StoreLimits, b: StoreLimits): boolean {
  const headers = (l: StoreLimits): string => [...l.redactHeaders].map((h) => h.toLowerCase()).sort().join('\n');
  return headers(a) === headers(b) && a.redactBodyPaths.sources.join('\n') === b.redactBodyPaths.sources.join('\n') && a.sampleBodyBytes === b.sampleBodyBytes;
}

function percent(part: number, whole: number): number {
  return whole <= 0 ? 0 : round((part / whole) * 100);
}

function round(v: number): number {
  return Math.round(v * 10_000) / 10_000;
}

function rank(v: 'diff' | 'noise'): number {
  return v === 'diff' ? 0 : 1;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
