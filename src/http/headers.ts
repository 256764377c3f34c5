import { randomUUID } from 'node:crypto';
import type { HeaderToAdd, HttpConnectionManager } from '../config/model';

// Header rules of Envoy's HTTP connection manager and router, as pure functions over a plain
// header object (lowercase names → string or list of strings).

export type HeaderMap = Record<string, string | string[] | undefined>;

/** RFC 9110 connection-specific headers; never forwarded in either direction. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization']);

/**
 * A header map from Node's or undici's raw list ([name, value, name, value…], strings or
 * buffers), without hop-by-hop headers, in one pass. Names are lowercased; a repeated header
 * becomes a list, so it is forwarded as the separate lines it came in.
 */
export function mapFromRaw(raw: ReadonlyArray<string | Buffer>): HeaderMap {
  const out: HeaderMap = {};
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = String(raw[i]).toLowerCase();
    const value = typeof raw[i + 1] === 'string' ? (raw[i + 1] as string) : (raw[i + 1] as Buffer).toString('latin1');
    if (HOP_BY_HOP.has(name)) {
      if (name === 'connection') connection = connection ? `${connection},${value}` : value;
      else if (name === 'te' && value.toLowerCase().includes('trailers')) out.te = 'trailers';
      continue;
    }
    const prior = out[name];
    if (prior === undefined) out[name] = value;
    else if (Array.isArray(prior)) prior.push(value);
    else out[name] = [prior, value];
  }
  // Headers the Connection header names are hop-by-hop too (RFC 9110 §7.6.1).
  if (connection !== undefined) for (const n of connection.toLowerCase().split(',')) if (n.trim() !== 'te') delete out[n.trim()];
  return out;
}

/**
 * The fast path for response headers when no route edits apply: the upstream's raw list,
 * hop-by-hop headers dropped, `server` handled as the connection manager says, as the flat
 * list Node's writeHead takes.
 */
export function forwardRawResponse(raw: readonly Buffer[], serverName: string | null): string[] {
  const out: string[] = [];
  let connection: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') connection = raw[i + 1]!.toString('latin1').toLowerCase();
      continue;
    }
    if (serverName !== null && lower === 'server') continue;
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  if (connection !== null) {
    const named = new Set(connection.split(',').map((n) => n.trim()));
    for (let i = out.length - 2; i >= 0; i -= 2) if (named.has(out[i]!.toLowerCase())) out.splice(i, 2);
  }
  if (serverName !== null) out.push('server', serverName);
  return out;
}

/**
 * The first element of a comma-separated header value, trimmed ('' when none): what Envoy's
 * cluster_header reads when a header holds several values.
 */
export function firstListValue(v: string | undefined): string {
  if (!v) return '';
  const comma = v.indexOf(',');
  return (comma < 0 ? v : v.slice(0, comma)).trim();
}

export function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Envoy's Utility::appendXff: a bare ',' before the new address, no space ("10.0.0.1,127.0.0.1"). */
export function appendXff(headers: HeaderMap, address: string): void {
  const prior = headers['x-forwarded-for'];
  const joined = Array.isArray(prior) ? prior.join(',') : prior;
  headers['x-forwarded-for'] = joined ? `${joined},${address}` : address;
}

/** Strips an IPv4-mapped IPv6 prefix so addresses read as Envoy prints them. */
export function plainAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

export interface DownstreamInfo {
  readonly remoteAddress: string;
  readonly localAddress: string;
  readonly scheme: 'http' | 'https';
}

/**
 * The connection manager's request-header edits (Envoy's ConnectionManagerUtility):
 * x-forwarded-for appended only with use_remote_address, x-forwarded-proto set when absent (or
 * always, when we are the edge), x-request-id generated when absent.
 */
export function mutateRequestHeaders(headers: HeaderMap, hcm: HttpConnectionManager, down: DownstreamInfo): void {
  if (hcm.useRemoteAddress) {
    if (!hcm.skipXffAppend) appendXff(headers, down.remoteAddress);
    headers['x-forwarded-proto'] = down.scheme;
  } else if (headers['x-forwarded-proto'] === undefined) {
    headers['x-forwarded-proto'] = down.scheme;
  }
  const edgeRequest = hcm.useRemoteAddress && !hcm.preserveExternalRequestId && headers['x-envoy-internal'] === undefined;
  if (hcm.generateRequestId && (headers['x-request-id'] === undefined || edgeRequest)) {
    headers['x-request-id'] = randomUUID();
  }
  if (hcm.useRemoteAddress && !isInternalAddress(down.remoteAddress)) {
    // An external client cannot claim to be internal.
    delete headers['x-envoy-internal'];
  }
  if (hcm.via) headers.via = headers.via ? `${firstValue(headers.via)}, ${hcm.via}` : hcm.via;
}

function isInternalAddress(address: string): boolean {
  return /^(10\.|127\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|::1$|f[cd])/.test(address);
}

/** Applies Envoy header additions: append, add-if-absent, overwrite (and overwrite-if-exists). */
export function applyHeadersToAdd(headers: HeaderMap, adds: readonly HeaderToAdd[], format: (value: string) => string): void {
  for (const h of adds) {
    const value = format(h.value);
    if (value === '' && !h.keepEmptyValue) continue;
    const existing = headers[h.key];
    switch (h.appendAction) {
      case 'APPEND_IF_EXISTS_OR_ADD':
        headers[h.key] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
        break;
      case 'ADD_IF_ABSENT':
        if (existing === undefined) headers[h.key] = value;
        break;
      case 'OVERWRITE_IF_EXISTS_OR_ADD':
        headers[h.key] = value;
        break;
      case 'OVERWRITE_IF_EXISTS':
        if (existing !== undefined) headers[h.key] = value;
        break;
    }
  }
}

export function removeHeaders(headers: HeaderMap, names: readonly string[]): void {
  for (const n of names) delete headers[n];
}

/**
 * Expands the few Envoy header formatters that make sense here (`%DOWNSTREAM_REMOTE_ADDRESS%`,
 * `%REQ(name)%`, …); `%%` is a literal percent. Unknown commands stay as written.
 */
export function headerFormatter(down: DownstreamInfo, request: HeaderMap, hostname: string): (value: string) => string {
  return (value) => {
    if (!value.includes('%')) return value;
    return value.replace(/%%|%([A-Z_]+)(?:\(([^)]*)\))?%/g, (whole, command: string | undefined, arg: string | undefined) => {
      if (whole === '%%') return '%';
      switch (command) {
        case 'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT':
          return down.remoteAddress;
        case 'DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT':
          return down.localAddress;
        case 'PROTOCOL':
          return 'HTTP/1.1';
        case 'HOSTNAME':
          return hostname;
        case 'REQ':
          return firstValue(request[(arg ?? '').toLowerCase()]) ?? '';
        default:
          return whole;
      }
    });
  };
}
