import type { HeaderMatcher } from '../model';
import { type Ctx, type Pb, at, fail, regexMatcher, stringMatcher } from './common';

/** Envoy's route HeaderMatcher (routes, retry policies, the fault, health_check and rbac filters). */
export function decodeHeaderMatcher(h: Pb, ctx: Ctx): HeaderMatcher {
  const name = String(h.name ?? '').toLowerCase();
  if (!name) fail(at(ctx, 'name'), 'name is required');
  const base = { name, invert: Boolean(h.invert_match), treatMissingAsEmpty: Boolean(h.treat_missing_header_as_empty) };
  if (h.string_match) return { ...base, match: { kind: 'string', matcher: stringMatcher(h.string_match as Pb, at(ctx, 'string_match')) } };
  if (h.present_match !== undefined) return { ...base, match: { kind: 'present', present: Boolean(h.present_match) } };
  if (h.range_match) {
    const r = h.range_match as Pb;
    return { ...base, match: { kind: 'range', start: Number(r.start ?? 0), end: Number(r.end ?? 0) } };
  }
  // The deprecated spellings still appear in many configs; they map onto the string matcher.
  for (const [field, kind] of [['exact_match', 'exact'], ['prefix_match', 'prefix'], ['suffix_match', 'suffix'], ['contains_match', 'contains']] as const) {
    if (h[field] !== undefined) return { ...base, match: { kind: 'string', matcher: { kind, value: String(h[field]), ignoreCase: false } } };
  }
  if (h.safe_regex_match) {
    const value = regexMatcher(h.safe_regex_match as Pb, at(ctx, 'safe_regex_match'));
    return { ...base, match: { kind: 'string', matcher: { kind: 'regex', value, ignoreCase: false } } };
  }
  // No match specifier: Envoy treats this as "header present".
  return { ...base, match: { kind: 'present', present: true } };
}

