// Headers by exact (lower-case) name: skipped names are not looked at, volatile ones (Date, request
// ids) only for presence, the rest by their values in arrival order. Exact names, never prefixes
// or substrings: a volatile `date` leaves `x-date-id` compared.
import type { CompareRules } from '../types';
import type { DifferenceList } from './difference-list';
import { shorten } from './json-render';

type Headers = ReadonlyMap<string, readonly string[]>;
type HeaderRules = Pick<CompareRules, 'volatileHeaders' | 'skippedHeaders' | 'ignoreAllHeaders'>;

export function diffHeaders(primary: Headers, other: Headers, rules: HeaderRules, out: DifferenceList): void {
  if (rules.ignoreAllHeaders) return;
  for (const [name, values] of primary) {
    if (out.full) return;
    if (rules.skippedHeaders.has(name)) continue;
    const path = `header.${name}`;
    const otherValues = other.get(name);
    if (otherValues === undefined) out.add(path, 'missing', path, renderValues(values), null);
    else if (!rules.volatileHeaders.has(name) && !sameValues(values, otherValues)) {
      out.add(path, 'changed', path, renderValues(values), renderValues(otherValues));
    }
  }
  for (const [name, values] of other) {
    if (out.full) return;
    if (rules.skippedHeaders.has(name) || primary.has(name)) continue;
    const path = `header.${name}`;
    out.add(path, 'added', path, null, renderValues(values));
  }
}

function sameValues(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One value as a JSON string, several as a JSON array of them (so `a, b` and `a`+`b` read apart). */
function renderValues(values: readonly string[]): string {
  return shorten(JSON.stringify(values.length === 1 ? values[0] : values));
}
