// The parsed JSON the diff walks. Objects are Maps so any key (`__proto__` included) is an
// ordinary key kept in source order; a number a double cannot hold exactly keeps its text, so two
// ids past 2^53 that JSON.parse would make equal still compare unequal.

export type JsonValue = null | boolean | number | string | ExactNumber | JsonValue[] | JsonObject;
export type JsonObject = Map<string, JsonValue>;
export type JsonType = 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object';

/** A JSON number kept as its source text: an integer beyond ±(2^53 − 1), or any number a double would change. */
export class ExactNumber {
  /**
   * @param text the token as written
   * @param decimal its value as sign, significant digits and exponent (see decimalForm), for exact equality
   */
  constructor(readonly text: string, readonly decimal: string) {}
}

export function jsonType(v: JsonValue): JsonType {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return 'boolean';
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    default:
      if (v instanceof ExactNumber) return 'number';
      return Array.isArray(v) ? 'array' : 'object';
  }
}
