import { isIPv6 } from 'node:net';
import type { Http1Settings, HttpConnectionManager } from '../config/model';
import type { HttpStats } from '../stats/scopes';
import type { DownstreamRequest, DownstreamResponse } from './downstream';
import { sendLocalReply } from './local-reply';
import { type PathNormalizationConfig, normalizeRequestPath } from './path-normalization';

// What Envoy checks before a request is routed, in Envoy's order: its HTTP/1 codec
// (ServerConnectionImpl::handlePath, checkProtocolVersion, HeaderUtility::requestHeadersValid)
// and then its connection manager (missing Host, non-relative path, maybeNormalizePath).
// Nothing refused here reaches a filter, the router, the upstream or a mirror.

/** The parts of a request head the checks read (an IncomingMessage has them all). */
export interface RequestHead {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly httpVersion: string;
  readonly rawHeaders: readonly string[];
  readonly headers?: { readonly 'content-type'?: string | undefined };
  /** Present on a stream of an HTTP/2 connection (Node's compatibility request). */
  readonly stream?: unknown;
}

export interface ValidationSettings {
  readonly http1: Http1Settings;
  /** An edge proxy (use_remote_address, no trusted hops) refuses https:// targets over plaintext. */
  readonly validateScheme: boolean;
  readonly paths: PathNormalizationConfig;
}

/** Which counter a refusal adds to, besides downstream_rq_4xx. */
export type RefusalCounter = 'protocol_error' | 'failed_path_normalization' | 'redirected_with_normalized_path' | 'non_relative_path' | null;

export type Admission =
  | { readonly ok: true; readonly authority: string; readonly path: string }
  | {
      readonly ok: false;
      readonly status: number;
      readonly body: string;
      readonly counter: RefusalCounter;
      /** A codec-level error: Envoy closes the connection after its reply. */
      readonly close: boolean;
      readonly location?: string;
    };

const codecError = (status: number, body: string): Admission => ({ ok: false, status, body, counter: 'protocol_error', close: true });

/** The checks themselves: pure, over a request head. */
export function checkRequest(req: RequestHead, s: ValidationSettings): Admission {
  // RFC 9112 §3.2: more than one Host line is a 400, whatever the values.
  let host: string | undefined;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 4 || name.toLowerCase() !== 'host') continue;
    if (host !== undefined) return codecError(400, 'Bad Request');
    host = raw[i + 1]!;
  }

  const url = req.url ?? '';
  const method = req.method ?? 'GET';
  let authority = host;
  let path = url;
  if (!(url.charCodeAt(0) === 47 /* '/' */ || (method === 'OPTIONS' && url === '*')) && s.http1.allowAbsoluteUrl) {
    const target = absoluteTarget(url);
    if (target === null) return codecError(400, 'Bad Request');
    // RFC 9112 §3.2.2: the target's authority replaces any Host the client sent.
    if (target.scheme === 'https' && s.validateScheme) return codecError(403, 'Forbidden');
    authority = target.authority;
    path = target.path;
  }

  // Anything but HTTP/1.1 is handled as HTTP/1.0, as Envoy does: HTTP/0.9 (a request line
  // without a version, which Node reports as 0.9) and odd versions included.
  // HTTP/2 reaches here with its pseudo headers already turned into a path and a Host; an
  // HTTP/1 request line claiming 2.0 is handled as anything but 1.1 is.
  if (req.httpVersion !== '1.1' && !(req.httpVersion === '2.0' && req.stream !== undefined)) {
    if (!s.http1.acceptHttp10) return codecError(426, 'Upgrade Required');
    if (authority === undefined && s.http1.defaultHostForHttp10 !== '') authority = s.http1.defaultHostForHttp10;
  }
  if (authority !== undefined && !authorityIsValid(authority)) return codecError(400, 'Bad Request');

  // The connection manager's own checks.
  if (authority === undefined) return { ok: false, status: 400, body: '', counter: null, close: false };
  if (path === '') return { ok: false, status: 404, body: '', counter: null, close: false };
  if (path.charCodeAt(0) !== 47) return { ok: false, status: 404, body: '', counter: 'non_relative_path', close: false };
  const verdict = normalizeRequestPath(path, s.paths);
  if (verdict.action === 'reject' || (verdict.action === 'redirect' && isGrpc(req))) {
    // gRPC clients do not follow redirects, so Envoy refuses instead.
    return { ok: false, status: 400, body: '', counter: 'failed_path_normalization', close: false };
  }
  if (verdict.action === 'redirect') {
    return { ok: false, status: 307, body: '', counter: 'redirected_with_normalized_path', close: false, location: verdict.path };
  }
  return { ok: true, authority, path: verdict.path };
}

/**
 * Applies the checks at the start of the connection manager's pipeline. On success the request
 * carries what routing and the upstream must see: `req.url` in origin-form (normalized when so
 * configured) and one Host line with the authority. On refusal it answers, counts, and returns false.
 */
export function admitRequest(req: DownstreamRequest, res: DownstreamResponse, hcm: HttpConnectionManager, stats: HttpStats, grpc = false,
  onRefused?: (status: number, counter: RefusalCounter) => void): boolean {
  const admission = checkRequest(req, settingsFor(hcm));
  if (admission.ok) {
    if (req.url !== admission.path) req.url = admission.path;
    setHost(req.rawHeaders, admission.authority);
    return true;
  }
  onRefused?.(admission.status, admission.counter);
  switch (admission.counter) {
    case 'protocol_error':
      stats.cxProtocolError.inc();
      break;
    case 'failed_path_normalization':
      stats.failedPathNormalization.inc();
      break;
    case 'redirected_with_normalized_path':
      stats.redirectedWithNormalizedPath.inc();
      break;
    case 'non_relative_path':
      stats.nonRelativePath.inc();
      break;
    default:
      break;
  }
  const extra: Record<string, string> = {};
  if (admission.close) extra.connection = 'close';
  if (admission.location !== undefined) extra.location = admission.location;
  sendLocalReply(res, admission.status, admission.body, hcm.serverName, extra, grpc ? {} : null);
  if (!req.complete) req.resume();
  return false;
}

const SETTINGS = new WeakMap<HttpConnectionManager, ValidationSettings>();

function settingsFor(hcm: HttpConnectionManager): ValidationSettings {
  let s = SETTINGS.get(hcm);
  if (!s) {
    s = {
      http1: hcm.http1,
      // Envoy's HCM passes validate_scheme = (xff_num_trusted_hops == 0 && use_remote_address).
      validateScheme: hcm.useRemoteAddress && hcm.xffNumTrustedHops === 0,
      paths: { normalizePath: hcm.normalizePath, mergeSlashes: hcm.mergeSlashes, escapedSlashesAction: hcm.pathWithEscapedSlashesAction },
    };
    SETTINGS.set(hcm, s);
  }
  return s;
}

function setHost(raw: string[], authority: string): void {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') {
      if (raw[i + 1] !== authority) raw[i + 1] = authority;
      return;
    }
  }
  raw.push('host', authority);
}

function isGrpc(req: RequestHead): boolean {
  return req.headers?.['content-type']?.startsWith('application/grpc') ?? false;
}

/**
 * An absolute-form target split Envoy's way (Utility::Url::initialize over Chromium's URL
 * parser; WHATWG URL here): http or https only, a valid host and port, the default port left out
 * of the authority, the path with its query (and fragment, refused later). Null when invalid.
 */
export function absoluteTarget(target: string): { scheme: 'http' | 'https'; authority: string; path: string } | null {
  let u: URL;
  try {
    u = new URL(target);
  } catch {
    return null;
  }
  const scheme = u.protocol === 'http:' ? 'http' : u.protocol === 'https:' ? 'https' : null;
  if (scheme === null || u.hostname === '') return null;
  return { scheme, authority: u.host, path: `${u.pathname}${u.search}${u.hash}` };
}

// RFC 3986 characters an authority may hold (Envoy's HeaderUtility::authorityIsValid, via
// quiche's IsValidAuthority): unreserved, pct-encoded, sub-delims, and ':' '[' ']'.
const AUTHORITY_CHARS: Uint8Array = (() => {
  const t = new Uint8Array(128);
  for (const c of "-._~%!$&'()*+,;=:[]") t[c.charCodeAt(0)] = 1;
  for (let c = 0x30; c <= 0x39; c++) t[c] = 1;
  for (let c = 0x41; c <= 0x5a; c++) t[c] = 1;
  for (let c = 0x61; c <= 0x7a; c++) t[c] = 1;
  return t;
})();

/**
 * Envoy's character check, plus the shape RFC 3986 §3.2.2–3.2.3 gives an authority without
 * userinfo: `IP-literal / reg-name` then an optional `:port` (1–5 digits, at most 65535). An
 * IP-literal must be a whole bracketed IPv6 address; a reg-name holds no brackets or colons
 * and only well-formed percent-encodings. Empty is refused.
 */
export function authorityIsValid(a: string): boolean {
  if (a === '') return false;
  for (let i = 0; i < a.length; i++) {
    const c = a.charCodeAt(i);
    if (c >= 128 || AUTHORITY_CHARS[c] === 0) return false;
  }
  let port: string | null = null;
  if (a.charCodeAt(0) === 91 /* '[' */) {
    const close = a.indexOf(']');
    if (close < 0 || !isIPv6(a.slice(1, close))) return false;
    const rest = a.slice(close + 1);
    if (rest !== '') {
      if (rest.charCodeAt(0) !== 58 /* ':' */) return false;
      port = rest.slice(1);
    }
  } else {
    const colon = a.indexOf(':');
    const name = colon < 0 ? a : a.slice(0, colon);
    if (colon >= 0) port = a.slice(colon + 1);
    if (name === '' || /[[\]]/.test(name) || !/^(?:[^%]|%[0-9A-Fa-f]{2})*$/.test(name)) return false;
  }
  if (port !== null && !(/^[0-9]{1,5}$/.test(port) && Number(port) <= 65535)) return false;
  return true;
}
