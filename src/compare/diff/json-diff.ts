// Structural JSON diff, Diffy's algebra: a key only in the primary is `missing`, only in the other
// `added`; different JSON types are `type`; same primitive type, other value, `changed`; an array
// holding the same elements in another order is one `order`. Array indices count as `[*]`, so one
// path covers every position. Recursion is bounded by the parser's depth bound.
import type { PathPatternSet } from '../path-pattern';
import type { DiffKind } from '../types';
import type { DifferenceList } from './difference-list';
import { canonicalJson } from './json-canonical';
import { jsonEqual, numbersEqual } from './json-equal';
import { countingKeySegment, exactKeySegment, isMapLike } from './json-path';
import { renderJson } from './json-render';
import { type JsonObject, type JsonValue, jsonType } from './json-value';

/** What the JSON walk needs of the compare rules. */
export interface JsonDiffRules {
  readonly unorderedArrays: PathPatternSet;
  readonly numberTolerance: number;
}

// With a tolerance, unordered elements that matched no twin exactly are tried pairwise; this many
// pair checks at most per array keeps two 10k-element arrays from costing 10^8 comparisons.
const MAX_TOLERANT_PAIRS = 10_000;

/** Adds the differences between two parsed bodies under the path `body`. */
export function diffJson(primary: JsonValue, other: JsonValue, rules: JsonDiffRules, out: DifferenceList): void {
  new JsonDiff(rules, out).value(primary, other, 'body', 'body');
}

class JsonDiff {
  readonly #tolerance: number;
  readonly #unordered: PathPatternSet;

  constructor(rules: JsonDiffRules, readonly out: DifferenceList) {
    this.#tolerance = rules.numberTolerance > 0 ? rules.numberTolerance : 0;
    this.#unordered = rules.unorderedArrays;
  }

  value(a: JsonValue, b: JsonValue, path: string, exact: string): void {
    if (a === b) return;
    const type = jsonType(a);
    if (type !== jsonType(b)) return this.#report(path, 'type', exact, a, b);
    switch (type) {
      case 'number':
        if (!numbersEqual(a as number, b as number, this.#tolerance)) this.#report(path, 'changed', exact, a, b);
        return;
      case 'array':
        return this.#array(a as JsonValue[], b as JsonValue[], path, exact);
      case 'object':
        return this.#object(a as JsonObject, b as JsonObject, path, exact);
      default:
        // string or boolean, and not ===
        return this.#report(path, 'changed', exact, a, b);
    }
  }

  #object(a: JsonObject, b: JsonObject, path: string, exact: string): void {
    const mapLike = isMapLike(a, b);
    for (const [key, va] of a) {
      if (this.out.full) return;
      const vb = b.get(key);
      // Equal primitives are the common case: decided without building a path.
      if (va === vb) continue;
      const childPath = path + countingKeySegment(key, mapLike);
      const childExact = exact + exactKeySegment(key);
      if (vb === undefined) this.#report(childPath, 'missing', childExact, va, undefined);
      else this.value(va, vb, childPath, childExact);
    }
    if (b.size === a.size && this.#allKeysShared(a, b)) return;
    for (const [key, vb] of b) {
      if (this.out.full) return;
      if (a.has(key)) continue;
      this.#report(path + countingKeySegment(key, mapLike), 'added', exact + exactKeySegment(key), undefined, vb);
    }
  }

  // Same size and no key missing from b means no key of b is new: the second loop is skipped.
  #allKeysShared(a: JsonObject, b: JsonObject): boolean {
    for (const key of a.keys()) if (!b.has(key)) return false;
    return true;
  }

  #array(a: JsonValue[], b: JsonValue[], path: string, exact: string): void {
    const firstUnequal = this.#firstUnequal(a, b);
    if (firstUnequal < 0) return;
    if (this.#unordered.size > 0 && this.#unordered.matches(path)) return this.#unorderedArray(a, b, firstUnequal, path, exact);
    const elementPath = `${path}[*]`;
    if (a.length === b.length && this.#reordered(a, b, firstUnequal, elementPath)) {
      return this.#report(path, 'order', exact, a, b);
    }
    const common = Math.min(a.length, b.length);
    for (let i = firstUnequal; i < common; i++) {
      if (this.out.full) return;
      if (a[i] !== b[i]) this.value(a[i], b[i], elementPath, `${exact}[${i}]`);
    }
    // Each (path, kind) is kept once, so the first surplus element stands for all of them.
    if (a.length > common) this.#report(elementPath, 'missing', `${exact}[${common}]`, a[common], undefined);
    if (b.length > common) this.#report(elementPath, 'added', `${exact}[${common}]`, undefined, b[common]);
  }

  /** The first index where the arrays differ (the shorter one's length when one is a prefix); -1 when equal. */
  #firstUnequal(a: JsonValue[], b: JsonValue[]): number {
    const common = Math.min(a.length, b.length);
    for (let i = 0; i < common; i++) if (!jsonEqual(a[i], b[i], this.#tolerance)) return i;
    return a.length === b.length ? -1 : common;
  }

  /** Equal-length arrays, unequal from `from` on: is the rest the same elements in another order? */
  #reordered(a: JsonValue[], b: JsonValue[], from: number, elementPath: string): boolean {
    const rulePath = this.#unordered.size > 0 ? elementPath : null;
    const ca: string[] = [];
    const cb: string[] = [];
    let sameSequence = true;
    for (let i = from; i < a.length; i++) {
      ca.push(canonicalJson(a[i], rulePath, this.#unordered));
      cb.push(canonicalJson(b[i], rulePath, this.#unordered));
      if (ca[ca.length - 1] !== cb[cb.length - 1]) sameSequence = false;
    }
    // Same canonical sequence: the elements differ only inside (a nested unordered array, or
    // numbers within the tolerance); the element-wise walk tells which.
    if (sameSequence) return false;
    ca.sort();
    cb.sort();
    for (let i = 0; i < ca.length; i++) if (ca[i] !== cb[i]) return false;
    return true;
  }

  /** Elements before `from` are equal pair by pair, so they match each other and need no canonical form. */
  #unorderedArray(a: JsonValue[], b: JsonValue[], from: number, path: string, exact: string): void {
    const elementPath = `${path}[*]`;
    const rulePath = elementPath;
    // Other's elements by canonical form, each form's indices taken in order.
    const pool = new Map<string, { indices: number[]; next: number }>();
    for (let j = from; j < b.length; j++) {
      const key = canonicalJson(b[j], rulePath, this.#unordered);
      const entry = pool.get(key);
      if (entry === undefined) pool.set(key, { indices: [j], next: 0 });
      else entry.indices.push(j);
    }
    const matchedB = new Uint8Array(b.length);
    let unmatchedA: number[] = [];
    for (let i = from; i < a.length; i++) {
      const entry = pool.get(canonicalJson(a[i], rulePath, this.#unordered));
      if (entry !== undefined && entry.next < entry.indices.length) matchedB[entry.indices[entry.next++]] = 1;
      else unmatchedA.push(i);
    }
    let unmatchedB: number[] = [];
    for (let j = from; j < b.length; j++) if (matchedB[j] === 0) unmatchedB.push(j);
    if (this.#tolerance > 0 && unmatchedA.length > 0 && unmatchedB.length > 0) {
      [unmatchedA, unmatchedB] = this.#matchWithinTolerance(a, b, unmatchedA, unmatchedB);
    }
    if (unmatchedA.length > 0) {
      const i = unmatchedA[0];
      this.#report(elementPath, 'missing', `${exact}[${i}]`, a[i], undefined);
    }
    if (unmatchedB.length > 0) {
      const j = unmatchedB[0];
      this.#report(elementPath, 'added', `${exact}[${j}]`, undefined, b[j]);
    }
  }

  #matchWithinTolerance(a: JsonValue[], b: JsonValue[], restA: number[], restB: number[]): [number[], number[]] {
    let budget = MAX_TOLERANT_PAIRS;
    const leftA: number[] = [];
    const takenB = new Set<number>();
    for (const i of restA) {
      let found = false;
      for (const j of restB) {
        if (takenB.has(j)) continue;
        if (budget-- <= 0) break;
        if (jsonEqual(a[i], b[j], this.#tolerance)) {
          takenB.add(j);
          found = true;
          break;
        }
      }
      if (!found) leftA.push(i);
    }
    return [leftA, restB.filter((j) => !takenB.has(j))];
  }

  #report(path: string, kind: DiffKind, exact: string, a: JsonValue | undefined, b: JsonValue | undefined): void {
    if (!this.out.wants(path, kind)) return;
    this.out.add(path, kind, exact, renderJson(a), renderJson(b));
  }
}
