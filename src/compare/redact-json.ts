// Redaction inside JSON text, in place: the values at the rules' places become "[redacted]" and
// every other character stays as the upstream wrote it. Parsing and re-serialising would round
// integers past 2^53, reorder nothing but lose spacing, and merge duplicate keys; splicing keeps
// the sample the bytes the upstream sent. Keys are read with their escapes resolved, so
// "em\u0061il" is the key `email`.
import { PLAIN_KEY, type PathPatternSet } from './path-pattern';

/** The redacted value as it stands in the text. */
const REDACTED_JSON = JSON.stringify('[redacted]');

export interface JsonRedaction {
  /** Rules in counting form (`body.user.email`, `body.items[*].card`, `*` for any key). */
  readonly rules: PathPatternSet;
  /** True when some rule names a place strictly inside `path`: only then is a container walked. */
  readonly reachesBelow: (path: string) => boolean;
  /** Containers walked into at most this deep; deeper, the text is not redactable. */
  readonly maxDepth: number;
}

/**
 * `text`, a JSON value found at counting path `root`, with every place a rule matches replaced;
 * `changed` false when none was (then `text` is returned as is). Null when `text` is not JSON or
 * a rule's place lies deeper than maxDepth: a redaction that cannot be done is not guessed at.
 */
export function redactJsonText(text: string, root: string, r: JsonRedaction): { text: string; changed: boolean } | null {
  try {
    // The grammar is checked natively first; the walk below can then trust the text.
    JSON.parse(text);
  } catch {
    return null;
  }
  const walk = new Walk(text, r);
  if (!walk.value(root, 0)) return null;
  return walk.result();
}

class Walk {
  pos = 0;
  /** Where the text not yet copied to `parts` starts. */
  #copied = 0;
  readonly #parts: string[] = [];
  /** reachesBelow by path: every element of an array shares its path. */
  readonly #reaches = new Map<string, boolean>();

  constructor(readonly text: string, readonly r: JsonRedaction) {}

  result(): { text: string; changed: boolean } {
    if (this.#parts.length === 0) return { text: this.text, changed: false };
    this.#parts.push(this.text.slice(this.#copied));
    return { text: this.#parts.join(''), changed: true };
  }

  /** Walks the value at `pos`; false when it nests too deep to walk where a rule reaches. */
  value(path: string, depth: number): boolean {
    this.#space();
    if (this.r.rules.matches(path)) {
      const start = this.pos;
      this.#skip();
      this.#parts.push(this.text.slice(this.#copied, start), REDACTED_JSON);
      this.#copied = this.pos;
      return true;
    }
    const c = this.text.charCodeAt(this.pos);
    if ((c !== 0x7b /* { */ && c !== 0x5b /* [ */) || !this.#reachesBelow(path)) {
      this.#skip();
      return true;
    }
    if (depth >= this.r.maxDepth) return false;
    this.pos++;
    this.#space();
    const close = c === 0x7b ? 0x7d : 0x5d;
    if (this.text.charCodeAt(this.pos) === close) {
      this.pos++;
      return true;
    }
    for (;;) {
      let child = `${path}[*]`;
      if (c === 0x7b) {
        const key = this.#key();
        child = `${path}.${PLAIN_KEY.test(key) ? key : '*'}`;
        this.#space();
        this.pos++; // ':'
      }
      if (!this.value(child, depth + 1)) return false;
      this.#space();
      if (this.text.charCodeAt(this.pos++) === close) return true;
      this.#space();
    }
  }

  #reachesBelow(path: string): boolean {
    let known = this.#reaches.get(path);
    if (known === undefined) this.#reaches.set(path, (known = this.r.reachesBelow(path)));
    return known;
  }

  #key(): string {
    const start = this.pos;
    this.#skipString();
    const raw = this.text.slice(start, this.pos);
    return raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
  }

  /** Moves past one value (the text is known to be JSON), without recursion. */
  #skip(): void {
    const text = this.text;
    const c = text.charCodeAt(this.pos);
    if (c === 0x22 /* " */) return this.#skipString();
    if (c !== 0x7b && c !== 0x5b) {
      // A number or a literal: up to the next delimiter.
      let i = this.pos;
      while (i < text.length && !isDelimiter(text.charCodeAt(i))) i++;
      this.pos = i;
      return;
    }
    let open = 0;
    while (this.pos < text.length) {
      const d = text.charCodeAt(this.pos);
      if (d === 0x22) {
        this.#skipString();
        continue;
      }
      this.pos++;
      if (d === 0x7b || d === 0x5b) open++;
      else if ((d === 0x7d || d === 0x5d) && --open === 0) return;
    }
  }

  #skipString(): void {
    const text = this.text;
    let from = this.pos + 1;
    for (;;) {
      const quote = text.indexOf('"', from);
      if (quote < 0) {
        // Not reached for text JSON.parse took; ends the walk rather than loop.
        this.pos = text.length;
        return;
      }
      // A quote preceded by an odd number of backslashes is escaped.
      let back = quote - 1;
      while (text.charCodeAt(back) === 0x5c /* \ */) back--;
      if ((quote - 1 - back) % 2 === 0) {
        this.pos = quote + 1;
        return;
      }
      from = quote + 1;
    }
  }

  #space(): void {
    const text = this.text;
    let i = this.pos;
    for (;;) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
    this.pos = i;
  }
}

function isDelimiter(c: number): boolean {
  return c === 0x2c || c === 0x7d || c === 0x5d || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}
