import type { HeaderMatcher, PathMatch, QueryParameterMatcher, StringMatcher } from '../config/model';

// Pure matchers compiled once per snapshot. Each returns a predicate the route table runs per request.

export type Predicate<T> = (value: T) => boolean;

export function compileStringMatcher(m: StringMatcher): Predicate<string> {
  if (m.kind === 'regex') {
    // RE2 safe_regex matches the whole value.
    const re = new RegExp(`^(?:${m.value})$`);
    return (v) => re.test(v);
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
      const re = new RegExp(`^(?:${m.value})$`, caseSensitive ? '' : 'i');
      return (path) => re.test(stripQuery(path));
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
