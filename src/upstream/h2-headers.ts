import type { OutgoingHttpHeaders } from 'node:http2';

// Header blocks between the proxy's HTTP/1-shaped requests and HTTP/2 frames (RFC 9113 §8.2–8.3).

/** Request header values as callers hand them: an object, or undici's flat [name, value, …] list. */
export type RequestHeaderInput = Record<string, string | string[] | undefined> | readonly string[] | Iterable<readonly [string, string | string[] | undefined]> | null | undefined;

/** Connection-specific fields that HTTP/2 forbids (§8.2.2); `te` is handled on its own. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

/**
 * The HEADERS block for one request: pseudo-headers first (`host` becomes `:authority`),
 * names lower-cased, connection-specific fields and the ones `connection` names dropped, and
 * `te` kept only as `trailers` (gRPC servers need it; anything else is a connection error).
 */
export function toHttp2RequestHeaders(method: string, path: string, scheme: 'http' | 'https', defaultAuthority: string, input: RequestHeaderInput): OutgoingHttpHeaders {
  const fields: Array<[string, string | string[]]> = [];
  forEachHeader(input, (name, value) => fields.push([name.toLowerCase(), value]));
  const nominated = new Set<string>();
  for (const [name, value] of fields) {
    if (name !== 'connection') continue;
    for (const v of Array.isArray(value) ? value : [value]) for (const token of v.split(',')) nominated.add(token.trim().toLowerCase());
  }
  let authority: string | null = null;
  let pseudoAuthority: string | null = null;
  const out: OutgoingHttpHeaders = { ':method': method, ':path': path, ':scheme': scheme };
  for (const [name, value] of fields) {
    if (name === 'host') {
      authority ??= Array.isArray(value) ? (value[0] ?? null) : value;
      continue;
    }
    if (name.startsWith(':')) {
      // The proxy's own pseudo-headers win; a stray :authority fills in only for a missing host.
      if (name === ':authority') pseudoAuthority ??= Array.isArray(value) ? (value[0] ?? null) : value;
      continue;
    }
    if (CONNECTION_SPECIFIC.has(name) || nominated.has(name)) continue;
    if (name === 'te' && !isTrailersOnly(value)) continue;
    const prior = out[name];
    if (prior === undefined) out[name] = value;
    else out[name] = [...asList(prior), ...asList(value)];
  }
  out[':authority'] = authority ?? pseudoAuthority ?? defaultAuthority;
  return out;
}

/** Trailers as the caller gave them, minus what may not appear in a trailer block. */
export function toHttp2Trailers(trailers: Record<string, string>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(trailers)) {
    const lower = name.toLowerCase();
    if (lower.startsWith(':') || lower === 'te' || lower === 'host' || CONNECTION_SPECIFIC.has(lower)) continue;
    out[lower] = value;
  }
  return out;
}

function isTrailersOnly(value: string | string[]): boolean {
  return !Array.isArray(value) && value.trim().toLowerCase() === 'trailers';
}

function asList(value: string | number | readonly string[]): string[] {
  return Array.isArray(value) ? [...(value as string[])] : [String(value)];
}

function forEachHeader(input: RequestHeaderInput, each: (name: string, value: string | string[]) => void): void {
  if (input === null || input === undefined) return;
  // Numbers slip into header maps (content-length); HTTP/2 wants strings.
  const fn = (name: string, value: unknown): void => each(name, Array.isArray(value) ? value.map(String) : String(value));
  if (Array.isArray(input)) {
    const flat = input as readonly string[];
    for (let i = 0; i + 1 < flat.length; i += 2) fn(flat[i]!, flat[i + 1]!);
    return;
  }
  if (typeof (input as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [name, value] of input as Iterable<readonly [string, string | string[] | undefined]>) if (value !== undefined) fn(name, value);
    return;
  }
  for (const [name, value] of Object.entries(input as Record<string, string | string[] | undefined>)) if (value !== undefined) fn(name, value);
}

/**
 * A response header block as undici's handlers take it: [name, value, …] as Buffers, without
 * pseudo-headers, each repeated field (set-cookie too) as its own pair.
 */
export function toRawHeaders(flat: readonly string[] | undefined): Buffer[] {
  const raw: Buffer[] = [];
  if (flat === undefined) return raw;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i]!;
    if (name.startsWith(':')) continue;
    raw.push(Buffer.from(name, 'latin1'), Buffer.from(flat[i + 1]!, 'latin1'));
  }
  return raw;
}
