import type { HeaderMatcher, PathMatch, QueryParameterMatcher, StringMatcher } from '../config/model';
import { type Re2, type Re2Rewrite, compileRe2, compileRe2Rewrite } from '../util/re2';

// Pure matchers compiled once per snapshot. Each returns a predicate the route table runs per request.

export type Predicate<T> = (value: T) => boolean;

/**
 * A regex the decoder has already accepted (RE2 syntax, program size within the ceiling in force
 * then); the ceiling is not applied again here.
 */
export function compileConfigRegex(source: string): Re2 {
  const compiled = compileRe2(source, { maxProgramSize: Infinity });
  if (!compiled.ok) throw new Error(`regex '${source}' was not validated: ${compiled.error}`);
  return compiled.re;
}

/** A regex_rewrite the decoder has accepted: RE2::GlobalReplace with `\1`-style references. */
export function compileConfigRewrite(r: { readonly pattern: string; readonly substitution: string }): Re2Rewrite {
  const compiled = compileRe2Rewrite(r.pattern, r.substitution, { maxProgramSize: Infinity });
  if (!compiled.ok) throw new Error(`regex_rewrite '${r.pattern}' was not validated: ${compiled.error}`);
  return compiled.rewrite;
}

export function compileStringMatcher(m: StringMatcher): Predicate<string> {
  if (m.kind === 'regex') {
    // Envoy's RegexMatcher matches the whole value (RE2::FullMatch).
    const re = compileConfigRegex(m.value);
    return (v) => re.fullMatch(v);
  }
  const expected = m.value;
  const norm = m.ignoreCase ? (v: string) => v.toLowerCase() : (v: string) => v;
  switch (m.kind) {
    case 'exact':
      return (v) => norm(v) === expected;
    case 'prefix':
      return (v) => norm(v).startsWith(expected);
    case 'suffix':
      return (v) => norm(v).endsWith(expected);
    case 'contains':
      return (v) => norm(v).includes(expected);
  }
}

/** Matches the request path. `path` holds the query string; exact and regex matches ignore it. */
export function compilePathMatcher(m: PathMatch, caseSensitive: boolean): Predicate<string> {
  const fold = caseSensitive ? (s: string) => s : (s: string) => s.toLowerCase();
  const value = fold(m.value);
  switch (m.kind) {
    case 'prefix':
      return (path) => fold(path).startsWith(value);
    case 'path':
      return (path) => fold(stripQuery(path)) === value;
    case 'path_separated_prefix':
      return (path) => {
        const p = fold(stripQuery(path));
        return p === value || (p.startsWith(value) && p.charCodeAt(value.length) === 47 /* '/' */);
      };
    case 'safe_regex': {
      // Envoy: case_sensitive is ignored for safe_regex; the whole path (no query) must match.
      const re = compileConfigRegex(m.value);
      return (path) => re.fullMatch(stripQuery(path));
    }
  }
}

export function stripQuery(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

/** Reads a header, with Envoy's pseudo-header names mapped onto HTTP/1.1's. */
export type HeaderLookup = (name: string) => string | undefined;

export function compileHeaderMatcher(h: HeaderMatcher): Predicate<HeaderLookup> {
  const test = compileHeaderValueTest(h);
  return (lookup) => {
    let value = lookup(h.name);
    if (value === undefined && h.treatMissingAsEmpty) value = '';
    // Envoy: a missing header fails every value match, inverted or not; only presence matches see it.
    if (value === undefined && h.match.kind !== 'present') return false;
    return test(value) !== h.invert;
  };
}

function compileHeaderValueTest(h: HeaderMatcher): (value: string | undefined) => boolean {
  const m = h.match;
  switch (m.kind) {
    case 'present':
      return (v) => (v !== undefined) === m.present;
    case 'range':
      return (v) => {
        if (v === undefined || !/^-?\d+$/.test(v)) return false;
        const n = Number(v);
        return n >= m.start && n < m.end;
      };
    case 'string': {
      const test = compileStringMatcher(m.matcher);
      return (v) => v !== undefined && test(v);
    }
  }
}

export function compileQueryMatcher(q: QueryParameterMatcher): Predicate<URLSearchParams> {
  const test = q.matcher ? compileStringMatcher(q.matcher) : null;
  return (params) => {
    const v = params.get(q.name);
    if (v === null) return false;
    return test === null || test(v);
  };
}
