import type { HeaderMap } from './headers';
import type { DownstreamRequest } from './downstream';

// What the connection manager reads of a request head and its end, whichever codec it came on.

/** The Upgrade header's value, lower case. */
export function mapUpgrade(raw: readonly string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 7 && raw[i]!.toLowerCase() === 'upgrade') return raw[i + 1]!.trim().toLowerCase();
  return undefined;
}

/** HTTP/1.1 has a body when it is chunked or declares a non-zero length. */
export function bodyFollows(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return true;
    if (name.length === 14 && name.toLowerCase() === 'content-length' && raw[i + 1]!.trim() !== '0') return true;
  }
  return false;
}

/** The request's trailers once it has ended (both codecs fill `trailers`), null when it had none. */
export function trailersOf(req: DownstreamRequest): Record<string, string> | null {
  const t = req.trailers as Record<string, string | string[] | undefined>;
  let out: Record<string, string> | null = null;
  for (const name of Object.keys(t)) {
    const v = t[name];
    if (v === undefined) continue;
    out ??= {};
    out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

export function pseudoOrHeader(name: string, headers: HeaderMap, authority: string, path: string, method: string, scheme: string): string | undefined {
  if (name.charCodeAt(0) === 58 /* ':' */) {
    switch (name) {
      case ':authority':
        return authority;
      case ':path':
        return path;
      case ':method':
        return method;
      case ':scheme':
        return scheme;
      default:
        return undefined;
    }
  }
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}
