// Field paths as rules name them: `status`, `header.<name>`, `body`, `body.<key>…` with `[*]` for
// every array element and `*` for any one key. A rule matches its own path and everything under
// it (ignoring `body.meta` ignores `body.meta.ts`), never a mere substring: `body.id` does not
// match `body.idempotency`.

/** A key that can stand in a counting path as itself; any other key is counted as `*` (map-like data). */
export const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]{0,63}$/;

const SEGMENT = /^(?:\.(\*|[A-Za-z_$][A-Za-z0-9_$-]{0,63})|\[\*\])/;
const HEADER = /^header\.[!#$%&'*+\-.^_`|~0-9a-z]+$/;

export interface PathPattern {
  readonly source: string;
  /** True for the pattern's own path and every path below it. */
  matches(path: string): boolean;
}

/** The pattern, or why it is not one (for the config decoder and the report's "mark as noise"). */
export function compilePathPattern(source: string): PathPattern | string {
  if (source === 'status' || source === 'body') return exact(source);
  if (source.startsWith('header.')) {
    return HEADER.test(source) ? exact(source) : `"${source}": a header rule is header.<lower-case name>`;
  }
  if (!source.startsWith('body')) return `"${source}": a path starts with status, header.<name> or body`;
  const segments: string[] = [];
  let rest = source.slice(4);
  while (rest.length > 0) {
    const m = SEGMENT.exec(rest);
    if (m === null) return `"${source}": expected .<key>, .* or [*] at "${rest}" (array indices are written [*])`;
    segments.push(m[1] === undefined ? '[*]' : `.${m[1]}`);
    rest = rest.slice(m[0].length);
  }
  if (!segments.includes('.*')) return exact(source);
  return wildcard(source, segments);
}

function exact(source: string): PathPattern {
  return { source, matches: (path) => path === source || (path.startsWith(source) && isBoundary(path, source.length)) };
}

function wildcard(source: string, segments: readonly string[]): PathPattern {
  return {
    source,
    matches(path) {
      if (!path.startsWith('body')) return false;
      let at = 4;
      for (const seg of segments) {
        if (seg === '.*') {
          if (path[at] !== '.') return false;
          at = segmentEnd(path, at + 1);
        } else {
          if (!path.startsWith(seg, at)) return false;
          at += seg.length;
        }
      }
      return at === path.length || isBoundary(path, at);
    },
  };
}

function isBoundary(path: string, at: number): boolean {
  const c = path[at];
  return c === '.' || c === '[' || c === ':';
}

function segmentEnd(path: string, from: number): number {
  let i = from;
  while (i < path.length && path[i] !== '.' && path[i] !== '[') i++;
  return i;
}

/** Patterns compiled once; `matches` is true when any of them matches. */
export class PathPatternSet {
  readonly #patterns: PathPattern[] = [];

  constructor(patterns: Iterable<PathPattern> = []) {
    for (const p of patterns) this.#patterns.push(p);
  }

  add(p: PathPattern): void {
    if (!this.#patterns.some((q) => q.source === p.source)) this.#patterns.push(p);
  }

  matches(path: string): boolean {
    for (const p of this.#patterns) if (p.matches(path)) return true;
    return false;
  }

  get sources(): string[] {
    return this.#patterns.map((p) => p.source);
  }

  get size(): number {
    return this.#patterns.length;
  }
}
