// A lookup in a flat [name, value, …] header list as Node's parser gives it (names as sent).

/** The first value of the header `lower` (a lowercase name), comparing lengths before anything else. */
export function findHeader(raw: readonly string[], lower: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === lower.length && name.toLowerCase() === lower) return raw[i + 1];
  }
  return undefined;
}
