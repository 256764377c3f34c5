import type { DownstreamRequest } from '../http/downstream';
import type { HeaderMap } from '../http/headers';
import type { HeaderGet } from './entry';

// Header lookups for %REQ% / %RESP% / %TRAILER% and the header filter, by lower-case name with
// Envoy's pseudo headers; a repeated header gives its first value, as Envoy's formatter does.

const first = (v: unknown): string | undefined => {
  const x = Array.isArray(v) ? v[0] : v;
  return x === undefined || x === null ? undefined : String(x);
};

/**
 * The request's headers: the connection manager's normalised map once it has one (what went
 * upstream, x-request-id and x-forwarded-for included), else Node's view of what came.
 */
export function requestGet(req: DownstreamRequest, headers: HeaderMap | null, scheme: string): HeaderGet {
  const map = (headers ?? req.headers) as Record<string, unknown>;
  return (name) => {
    switch (name) {
      case ':method': return req.method;
      case ':path': return req.url;
      case ':scheme': return scheme;
      case ':authority': return first(map.host) ?? first(map[':authority']);
      case 'host': return first(map.host) ?? first(map[':authority']);
      default: return first(map[name]);
    }
  };
}

/** Response headers as given to writeHead (a flat name/value list or an object), plus `:status`. */
export function headersGet(head: unknown, status: number): HeaderGet {
  if (Array.isArray(head)) {
    return (name) => {
      if (name === ':status') return String(status);
      for (let i = 0; i + 1 < head.length; i += 2) if (String(head[i]).toLowerCase() === name) return String(head[i + 1]);
      return undefined;
    };
  }
  const get = mapGet(head as Record<string, unknown>);
  return (name) => (name === ':status' ? String(status) : get(name));
}

/** An object of headers whose names may be in any case. */
export function mapGet(map: Readonly<Record<string, unknown>>): HeaderGet {
  return (name) => {
    if (name in map) return first(map[name]);
    for (const k of Object.keys(map)) if (k.toLowerCase() === name) return first(map[k]);
    return undefined;
  };
}
