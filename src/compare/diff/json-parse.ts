// A strict RFC 8259 parser for response bodies. JSON.parse would do the grammar, but it rounds
// big integers (hiding or inventing id differences), takes the last of duplicate keys silently
// and nests as deep as the stack allows; this one keeps exact numbers (json-number.ts), refuses
// duplicate keys (a body that repeats a key means different things to different readers, so it
// is compared as text instead) and stops at a bounded depth, so the walkers after it can recurse.
import { isUtf8 } from 'node:buffer';
import { numberFromToken } from './json-number';
import type { ExactNumber, JsonObject, JsonValue } from './json-value';

/** Containers (objects and arrays) open at once; one more and the body is not parsed. */
export const MAX_JSON_DEPTH = 200;

export type JsonParse =
  | { readonly ok: true; readonly value: JsonValue }
  | { readonly ok: false; readonly error: string; readonly offset: number };

/** The body as JSON; never throws. Invalid UTF-8 is not JSON (RFC 8259 §8.1); a leading BOM is skipped. */
export function parseJsonBody(body: Buffer): JsonParse {
  if (!isUtf8(body)) return { ok: false, error: 'not UTF-8', offset: 0 };
  return parseJsonText(body.toString('utf8'));
}

/** The text as JSON; never throws. */
export function parseJsonText(text: string): JsonParse {
  const parser = new Parser(text);
  try {
    return { ok: true, value: parser.document() };
  } catch (err) {
    if (err instanceof SyntaxFault) return { ok: false, error: err.message, offset: err.offset };
    // A string past V8's length limit, or memory: still "not JSON" to the caller.
    return { ok: false, error: err instanceof Error ? err.message : String(err), offset: parser.pos };
  }
}

class SyntaxFault extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

class Parser {
  pos = 0;
  #depth = 0;

  constructor(readonly text: string) {
    if (text.charCodeAt(0) === 0xfeff) this.pos = 1;
  }

  document(): JsonValue {
    this.#space();
    const value = this.#value();
    this.#space();
    if (this.pos < this.text.length) this.#fail('text after the JSON value');
    return value;
  }

  #value(): JsonValue {
    const c = this.text.charCodeAt(this.pos);
    switch (c) {
      case 0x7b /* { */:
        return this.#object();
      case 0x5b /* [ */:
        return this.#array();
      case 0x22 /* " */:
        return this.#string();
      case 0x74 /* t */:
        return this.#literal('true', true);
      case 0x66 /* f */:
        return this.#literal('false', false);
      case 0x6e /* n */:
        return this.#literal('null', null);
      default:
        if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) return this.#number();
        return this.#fail(this.pos < this.text.length ? 'unexpected character' : 'unexpected end');
    }
  }

  #object(): JsonObject {
    this.#enter();
    this.pos++;
    const object: JsonObject = new Map();
    this.#space();
    if (this.text.charCodeAt(this.pos) === 0x7d /* } */) {
      this.pos++;
      this.#depth--;
      return object;
    }
    for (;;) {
      if (this.text.charCodeAt(this.pos) !== 0x22) this.#fail('expected a key');
      const keyAt = this.pos;
      const key = this.#string();
      if (object.has(key)) this.#fail('duplicate key', keyAt);
      this.#space();
      if (this.text.charCodeAt(this.pos) !== 0x3a /* : */) this.#fail('expected ":"');
      this.pos++;
      this.#space();
      object.set(key, this.#value());
      this.#space();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x7d /* } */) break;
      if (c !== 0x2c /* , */) this.#fail('expected "," or "}"', this.pos - 1);
      this.#space();
    }
    this.#depth--;
    return object;
  }

  #array(): JsonValue[] {
    this.#enter();
    this.pos++;
    const array: JsonValue[] = [];
    this.#space();
    if (this.text.charCodeAt(this.pos) === 0x5d /* ] */) {
      this.pos++;
      this.#depth--;
      return array;
    }
    for (;;) {
      array.push(this.#value());
      this.#space();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x5d /* ] */) break;
      if (c !== 0x2c /* , */) this.#fail('expected "," or "]"', this.pos - 1);
      this.#space();
    }
    this.#depth--;
    return array;
  }

  #string(): string {
    const text = this.text;
    const start = ++this.pos;
    // Most strings have no escape: one slice.
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        this.pos = i + 1;
        return text.slice(start, i);
      }
      if (c === 0x5c /* \ */) return this.#escapedString(start, i);
      if (c < 0x20) this.#fail('control character in a string', i);
    }
    return this.#fail('unterminated string', text.length);
  }

  #escapedString(start: number, firstEscape: number): string {
    const text = this.text;
    const parts: string[] = [text.slice(start, firstEscape)];
    let i = firstEscape;
    let chunk = i;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        parts.push(text.slice(chunk, i));
        this.pos = i + 1;
        return parts.join('');
      }
      if (c < 0x20) this.#fail('control character in a string', i);
      if (c !== 0x5c) {
        i++;
        continue;
      }
      parts.push(text.slice(chunk, i));
      const e = text.charCodeAt(i + 1);
      const simple = ESCAPES.get(e);
      if (simple !== undefined) {
        parts.push(simple);
        i += 2;
      } else if (e === 0x75 /* u */) {
        const hex = text.slice(i + 2, i + 6);
        if (!/^[0-9A-Fa-f]{4}$/.test(hex)) this.#fail('bad \\u escape', i);
        parts.push(String.fromCharCode(parseInt(hex, 16)));
        i += 6;
      } else {
        this.#fail('bad escape', i);
      }
      chunk = i;
    }
    return this.#fail('unterminated string', text.length);
  }

  #number(): number | ExactNumber {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (m === null) return this.#fail('bad number');
    this.pos += m[0].length;
    // "01", "1.", "1e": the grammar's match stops short and a digit, dot or e follows.
    const next = this.text.charCodeAt(this.pos);
    if ((next >= 0x30 && next <= 0x39) || next === 0x2e || next === 0x65 || next === 0x45) this.#fail('bad number');
    return numberFromToken(m[0]);
  }

  #literal<T extends boolean | null>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.#fail('unexpected character');
    this.pos += word.length;
    return value;
  }

  #enter(): void {
    if (++this.#depth > MAX_JSON_DEPTH) this.#fail(`nested deeper than ${MAX_JSON_DEPTH}`);
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

  #fail(message: string, offset = this.pos): never {
    throw new SyntaxFault(message, offset);
  }
}

const ESCAPES = new Map<number, string>([
  [0x22, '"'], [0x5c, '\\'], [0x2f, '/'], [0x62, '\b'], [0x66, '\f'], [0x6e, '\n'], [0x72, '\r'], [0x74, '\t'],
]);
