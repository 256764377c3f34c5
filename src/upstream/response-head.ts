import type { DownstreamResponse } from '../http/downstream';
import { CONNECTION_SPECIFIC } from '../http/headers';
import type { OutgoingHeaders } from './forward-types';
import type { ResponseView } from './retry-conditions';

// Small helpers over a primary response's head and trailers, in the forms undici gives them and
// Node's writeHead takes them.

/** The retry state's view of a response head, its header index built only if a condition reads one. */
export function responseView(status: number, raw: readonly Buffer[]): ResponseView {
  let index: Map<string, string> | null = null;
  return {
    status,
    header: (name) => {
      if (index === null) {
        index = new Map();
        for (let i = 0; i < raw.length; i += 2) {
          const n = latin1(raw[i]!).toLowerCase();
          const v = latin1(raw[i + 1]!);
          const prior = index.get(n);
          index.set(n, prior === undefined ? v : `${prior},${v}`);
        }
      }
      return index.get(name);
    },
  };
}

/** Adds a header to either form, replacing it in the object form. */
export function addHeader(headers: OutgoingHeaders, name: string, value: string): void {
  if (Array.isArray(headers)) headers.push(name, value);
  else headers[name] = value;
}

/** Trailers from a raw [name, value, …] list; connection-specific names never pass (HTTP/2 forbids them). */
export function trailerMap(raw: ReadonlyArray<Buffer | string>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = latin1(raw[i]!).toLowerCase();
    if (CONNECTION_SPECIFIC.has(name) || name.charCodeAt(0) === 58 /* ':' */) continue;
    const value = latin1(raw[i + 1]!);
    const prior = out[name];
    out[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
  return out;
}

/** Response headers set on the response (not written), from either form. */
export function setHeaders(res: DownstreamResponse, headers: OutgoingHeaders): void {
  if (Array.isArray(headers)) {
    const grouped: Record<string, string[]> = {};
    for (let i = 0; i < headers.length; i += 2) (grouped[headers[i]!.toLowerCase()] ??= []).push(headers[i + 1]!);
    for (const name of Object.keys(grouped)) res.setHeader(name, grouped[name]!.length === 1 ? grouped[name]![0]! : grouped[name]!);
    return;
  }
  for (const name of Object.keys(headers)) {
    const v = headers[name];
    if (v !== undefined) res.setHeader(name, v);
  }
}

function latin1(v: Buffer | string): string {
  return typeof v === 'string' ? v : v.toString('latin1');
}
