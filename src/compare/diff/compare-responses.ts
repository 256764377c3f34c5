// One response against the primary's: status, then headers, then body, each only as far as it
// needs to go (equal body hashes mean no body is parsed).
import type { CapturedResponse, CompareRules, Difference } from '../types';
import { diffBody } from './body-diff';
import { DifferenceList } from './difference-list';
import { diffHeaders } from './headers-diff';

/**
 * The differences from `primary` to `other`, each (path, kind) once, at most MAX_DIFFERENCES.
 * Never throws: bodies are arbitrary bytes from services under test.
 */
export function compareResponses(primary: CapturedResponse, other: CapturedResponse, rules: CompareRules): Difference[] {
  const out = new DifferenceList();
  if (primary.status !== other.status) {
    out.add('status', 'changed', 'status', String(primary.status), String(other.status));
  }
  diffHeaders(primary.headers, other.headers, rules, out);
  try {
    diffBody(primary, other, rules, out);
  } catch {
    // Not expected (the parser and walkers are bounded and total), but a comparison that failed
    // must still count: the hashes differ, so the bodies do.
    out.add('body', 'changed', 'body', null, null);
  }
  return out.items;
}
