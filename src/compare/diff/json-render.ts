// Values as a difference shows them: JSON text, at most MAX_VALUE_CHARS characters. A value can be
// a whole 1 MiB body, so rendering stops once it has enough text instead of serialising it all.
import { ExactNumber, type JsonValue } from './json-value';

export const MAX_VALUE_CHARS = 200;

/** The value as JSON, shortened (see shorten); null for an absent value. */
export function renderJson(value: JsonValue | undefined, max = MAX_VALUE_CHARS): string | null {
  if (value === undefined) return null;
  const out = new BoundedText(max);
  write(value, out);
  return shorten(out.text(), max);
}

/**
 * At most `max` characters: cut text ends in "…", and a cut never falls inside a surrogate pair
 * (an emoji is kept whole or dropped whole).
 */
export function shorten(text: string, max = MAX_VALUE_CHARS): string {
  if (text.length <= max) return text;
  return `${cutAt(text, max - 1)}…`;
}

/** The first `n` UTF-16 units of `text`, one fewer when the n-th would split a surrogate pair. */
export function cutAt(text: string, n: number): string {
  if (n >= text.length) return text;
  const last = text.charCodeAt(n - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? n - 1 : n);
}

class BoundedText {
  readonly #parts: string[] = [];
  #length = 0;

  constructor(readonly limit: number) {}

  /** Past the limit more text would be cut anyway. */
  get full(): boolean {
    return this.#length > this.limit;
  }

  push(s: string): void {
    this.#parts.push(s);
    this.#length += s.length;
  }

  text(): string {
    return this.#parts.join('');
  }
}

function write(value: JsonValue, out: BoundedText): void {
  if (out.full) return;
  if (value === null || typeof value === 'boolean' || typeof value === 'number') {
    out.push(String(value));
  } else if (typeof value === 'string') {
    // JSON.stringify of a 1 MiB string would copy it all; the cut keeps pairs whole so no lone
    // surrogate turns into a \ud83d escape at the end.
    out.push(JSON.stringify(cutAt(value, out.limit + 1)));
  } else if (value instanceof ExactNumber) {
    out.push(value.text);
  } else if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length && !out.full; i++) {
      if (i > 0) out.push(',');
      write(value[i], out);
    }
    out.push(']');
  } else {
    out.push('{');
    let first = true;
    for (const [k, v] of value) {
      if (out.full) break;
      if (!first) out.push(',');
      first = false;
      out.push(JSON.stringify(cutAt(k, out.limit + 1)));
      out.push(':');
      write(v, out);
    }
    out.push('}');
  }
}
