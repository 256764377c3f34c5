import { RE2JS } from 're2js';

// The one place a regular expression from config or from a client is compiled. re2js is a
// pure-JavaScript port of RE2/J: RE2 syntax (no backreferences, no lookaround), and matching in
// time linear in the input, so no pattern can stall the event loop the way a backtracking
// RegExp can.

/** Envoy's default for the runtime key `re2.max_program_size.error_level`. */
export const DEFAULT_MAX_PROGRAM_SIZE = 100;

/** The runtime key Envoy reads the program-size ceiling from. */
export const MAX_PROGRAM_SIZE_RUNTIME_KEY = 're2.max_program_size.error_level';

/**
 * The largest program RE2 compiles under its default 8 MiB max_mem (two thirds of it for the
 * forward program, 16-byte instructions, a quarter of the budget for instructions). For patterns
 * that Envoy does not size-check, such as the admin `/stats?filter=`.
 */
export const RE2_MAX_MEM_PROGRAM_SIZE = Math.floor(((8 << 20) * 2) / 3 / 4 / 16);

/**
 * About the most program instructions `source` can compile to, from its text alone: its length
 * times the product of every counted repetition (`{n}`, `{n,}`, `{n,m}`) in it.
 * re2js builds the whole program before its size is known, and a pattern such as
 * `[^x]{1000}[^x]{1000}…` takes a second to build; a client-supplied pattern is checked with this
 * first, so building it stays cheap.
 */
export function expansionBound(source: string): number {
  let bound = source.length;
  for (const m of source.matchAll(/\{(\d+)(?:,(\d*))?\}/g)) {
    bound *= 1 + Math.max(Number(m[1]), Number(m[2] || 0));
    if (bound > Number.MAX_SAFE_INTEGER / 1e4) return Infinity;
  }
  return bound;
}

export interface Re2Options {
  /** Refuse a program with more instructions than this. */
  readonly maxProgramSize: number;
  /** Names the limit in the error: a runtime key or a config field. */
  readonly limitSource?: 'error_level' | 'max_program_size' | 'max_mem';
}

/** A compiled pattern. */
export interface Re2 {
  readonly source: string;
  /** RE2's program size: the number of instructions of the compiled program. */
  readonly programSize: number;
  readonly groupCount: number;
  /** RE2::FullMatch: the pattern matches the whole of `s`. */
  fullMatch(s: string): boolean;
  /** RE2::PartialMatch: the pattern matches somewhere in `s`. */
  search(s: string): boolean;
}

export type Re2Result = { readonly ok: true; readonly re: Re2 } | { readonly ok: false; readonly error: string };

/** Compiles `source` with RE2 semantics, or says why RE2 refuses it or why it is too large. */
export function compileRe2(source: string, options: Re2Options): Re2Result {
  const compiled = compileChecked(source, options);
  if (!compiled.ok) return compiled;
  const re = compiled.re;
  // Every match starts with the program's literal prefix; a route table mostly sees misses, and
  // a startsWith rejects most of them without entering the engine.
  const prefix = typeof re.re2().prefix === 'string' ? (re.re2().prefix as string) : '';
  return {
    ok: true,
    re: {
      source,
      programSize: re.programSize(),
      groupCount: re.groupCount(),
      fullMatch: prefix ? (s) => s.startsWith(prefix) && re.testExact(s) : (s) => re.testExact(s),
      search: (s) => re.test(s),
    },
  };
}

function compileChecked(source: string, options: Re2Options): { ok: true; re: RE2JS } | { ok: false; error: string } {
  let re: RE2JS;
  try {
    re = RE2JS.compile(source);
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  const size = re.programSize();
  if (size > options.maxProgramSize) return { ok: false, error: sizeError(source, size, options) };
  return { ok: true, re };
}

function sizeError(source: string, size: number, o: Re2Options): string {
  const base = `regex '${source}' RE2 program size of ${size} > max program size of ${o.maxProgramSize}`;
  switch (o.limitSource ?? 'error_level') {
    case 'error_level':
      return `${base} set for the error level threshold (runtime ${MAX_PROGRAM_SIZE_RUNTIME_KEY}). Increase configured max program size if necessary.`;
    case 'max_program_size':
      return `${base}. Increase configured max program size if necessary.`;
    case 'max_mem':
      return `${base} (RE2's default memory budget)`;
  }
}

/** A regex_rewrite: the pattern and the substitution, parsed once. */
export interface Re2Rewrite {
  /** RE2::GlobalReplace: every non-overlapping match of the pattern in `s` replaced. */
  replaceAll(s: string): string;
}

/** One piece of a parsed substitution: literal text or a capture group number. */
type Piece = string | number;

/**
 * Parses an RE2 rewrite string the way RE2::CheckRewriteString reads it: `\0`…`\9` name a
 * capture group (`\0` the whole match), `\\` is a backslash, and any other backslash is an error,
 * as is a group the pattern does not have. Returns the error text, or the pieces.
 */
export function parseSubstitution(substitution: string, groupCount: number): { ok: true; pieces: readonly Piece[] } | { ok: false; error: string } {
  const pieces: Piece[] = [];
  let literal = '';
  for (let i = 0; i < substitution.length; i++) {
    const c = substitution[i]!;
    if (c !== '\\') {
      literal += c;
      continue;
    }
    const next = substitution[i + 1];
    if (next === '\\') {
      literal += '\\';
      i++;
    } else if (next !== undefined && next >= '0' && next <= '9') {
      const n = next.charCodeAt(0) - 48;
      if (n > groupCount) return { ok: false, error: `substitution refers to \\${n}, but the pattern has ${groupCount} capture group(s)` };
      if (literal) pieces.push(literal);
      literal = '';
      pieces.push(n);
      i++;
    } else {
      return { ok: false, error: next === undefined ? "substitution may not end with '\\'" : "in the substitution '\\' must be followed by a digit or '\\'" };
    }
  }
  if (literal) pieces.push(literal);
  return { ok: true, pieces };
}

/** Compiles a regex_rewrite: the pattern with RE2 semantics and an RE2 substitution (`\1`). */
export function compileRe2Rewrite(pattern: string, substitution: string, options: Re2Options): { ok: true; rewrite: Re2Rewrite } | { ok: false; error: string } {
  const compiled = compileChecked(pattern, options);
  if (!compiled.ok) return compiled;
  const re = compiled.re;
  const parsed = parseSubstitution(substitution, re.groupCount());
  if (!parsed.ok) return parsed;
  const pieces = parsed.pieces;
  return { ok: true, rewrite: { replaceAll: (s) => globalReplace(re, pieces, s) } };
}

/**
 * RE2::GlobalReplace: successive non-overlapping leftmost-first matches, each searched for in the
 * whole input (so `^` and `\b` see the real context). An empty match right where the previous
 * match ended is skipped by one character, as RE2 does (Java, and so re2js's replaceAll, would
 * take it).
 */
function globalReplace(re: RE2JS, pieces: readonly Piece[], s: string): string {
  const m = re.matcher(s);
  let out = '';
  let p = 0;
  let lastEnd = -1;
  while (p <= s.length && m.find(p)) {
    const start = m.start();
    const end = m.end();
    if (p < start) out += s.slice(p, start);
    if (start === end && start === lastEnd) {
      const step = p < s.length && (s.codePointAt(p) ?? 0) > 0xffff ? 2 : 1;
      out += s.slice(p, p + step);
      p += step;
      continue;
    }
    for (const piece of pieces) out += typeof piece === 'string' ? piece : (m.group(piece) ?? '');
    p = end;
    lastEnd = end;
  }
  return p < s.length ? out + s.slice(p) : out;
}
