// One string per JSON value, for the two checks that need elements as set members: "same
// elements, other order" and the multiset match of unordered arrays. Keys are sorted, numbers
// normalised (1.0 and 1 agree), and arrays that are themselves unordered by rule have their
// elements sorted, so [[1,2]] and [[2,1]] agree when the inner array is unordered.
import type { PathPatternSet } from '../path-pattern';
import { countingKeySegment, isMapLike } from './json-path';
import { ExactNumber, type JsonValue } from './json-value';

/**
 * @param path the value's counting path, used to find nested unordered arrays; null when no
 *   array is unordered (then no paths are built)
 */
export function canonicalJson(value: JsonValue, path: string | null, unordered: PathPatternSet): string {
  const parts: string[] = [];
  write(value, path, unordered, parts);
  return parts.join('');
}

function write(value: JsonValue, path: string | null, unordered: PathPatternSet, out: string[]): void {
  if (value === null || typeof value === 'boolean' || typeof value === 'number') {
    out.push(String(value));
  } else if (typeof value === 'string') {
    out.push(JSON.stringify(value));
  } else if (value instanceof ExactNumber) {
    // Never equal to a double's form (they start with a digit or "-", this with "#").
    out.push(`#${value.decimal}`);
  } else if (Array.isArray(value)) {
    const elementPath = path === null ? null : `${path}[*]`;
    if (path !== null && unordered.matches(path)) {
      const elements = value.map((v) => canonicalJson(v, elementPath, unordered)).sort();
      out.push('[', elements.join(','), ']');
      return;
    }
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(',');
      write(value[i], elementPath, unordered, out);
    }
    out.push(']');
  } else {
    const keys = [...value.keys()].sort();
    const mapLike = path !== null && isMapLike(value, value);
    out.push('{');
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (i > 0) out.push(',');
      out.push(JSON.stringify(k), ':');
      write(value.get(k) as JsonValue, path === null ? null : path + countingKeySegment(k, mapLike), unordered, out);
    }
    out.push('}');
  }
}
