// Equality by JSON value: numbers by value (1.0 is 1; within the tolerance when one is set),
// exact numbers by their digits, objects regardless of key order, arrays in order. It stops at
// the first difference, so it is the cheap "is there anything to report here" test.
import { ExactNumber, type JsonValue } from './json-value';

export function jsonEqual(a: JsonValue, b: JsonValue, tolerance: number): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  if (typeof a !== 'object' || typeof b !== 'object') {
    return typeof a === 'number' && typeof b === 'number' && tolerance > 0 && Math.abs(a - b) <= tolerance;
  }
  if (a instanceof ExactNumber) return b instanceof ExactNumber && a.decimal === b.decimal;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i], tolerance)) return false;
    return true;
  }
  if (b instanceof ExactNumber || Array.isArray(b)) return false;
  const objA = a as Map<string, JsonValue>;
  if (objA.size !== b.size) return false;
  for (const [k, va] of objA) {
    const vb = b.get(k);
    if (vb === undefined || !jsonEqual(va, vb, tolerance)) return false;
  }
  return true;
}

/** Two numbers (doubles or exact) equal by value; the tolerance applies to doubles only. */
export function numbersEqual(a: number | ExactNumber, b: number | ExactNumber, tolerance: number): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b || (tolerance > 0 && Math.abs(a - b) <= tolerance);
  // An exact number never equals a double: a double with its value would have been kept as one.
  return a instanceof ExactNumber && b instanceof ExactNumber && a.decimal === b.decimal;
}
