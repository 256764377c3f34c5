// Which way a body is compared, from the primary's Content-Type (the candidate's own type is a
// header difference of its own).

export type BodyKind = 'json' | 'text' | 'bytes';

const TEXT_TYPES: ReadonlySet<string> = new Set([
  'application/xml',
  'application/javascript',
  'application/x-www-form-urlencoded',
]);

/** The Content-Type's `type/subtype`, lower-case, parameters dropped; null without one. */
export function mediaType(headers: ReadonlyMap<string, readonly string[]>): string | null {
  const value = headers.get('content-type')?.[0];
  if (value === undefined) return null;
  const semi = value.indexOf(';');
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  return type === '' ? null : type;
}

/** application/json, and any type whose subtype ends in +json (problem+json, vnd.api+json…). */
export function isJsonType(type: string | null): boolean {
  return type !== null && (type === 'application/json' || (type.endsWith('+json') && type.indexOf('/') > 0));
}

/** Any text type, the textual application types, and subtypes ending in +xml (atom, svg…). */
export function isTextType(type: string | null): boolean {
  if (type === null) return false;
  return type.startsWith('text/') || TEXT_TYPES.has(type) || (type.endsWith('+xml') && type.indexOf('/') > 0);
}
