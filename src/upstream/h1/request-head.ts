import type { Readable } from 'node:stream';
import type { UpstreamDispatchOptions } from '../h2-exchange';
import { InvalidArgumentError, NotSupportedError } from './errors';

// A request's head as the HTTP/1.1 pool writes it, checked the way undici checks a request before
// it is queued (lib/core/request.js): a method that is a token, a path without controls or
// spaces, header names that are tokens, values without CR, LF or other controls, and none of
// the headers the pool writes itself (host is taken, content-length is read, connection is
// reduced to `close`; transfer-encoding, keep-alive, upgrade and expect are refused). Everything
// but the request line, host and connection lines becomes one latin1 string here, once.

/** What a checked request carries to the connection that writes it. */
export interface RequestHead {
  method: string;
  path: string;
  /** `host: …\r\n` from the request's headers; null: the pool's own (the origin's host). */
  hostLine: string | null;
  /** The other header lines, each ending in CRLF. */
  lines: string;
  /** The content-length header's value; -1 when the request had none. */
  declaredLength: number;
  /** `connection: close` was asked for: the connection is not reused after this request. */
  reset: boolean;
  upgrade: string | null;
  body: Buffer | Readable | null;
}

const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const INVALID_PATH = /[^\u0021-\u00ff]/;

/** What a header name means to the pool, by its lowercase form. */
const enum Kind { Plain, Host, ContentLength, Connection, Refused, Expect }
const SPECIAL: ReadonlyMap<string, Kind> = new Map([
  ['host', Kind.Host], ['content-length', Kind.ContentLength], ['connection', Kind.Connection],
  ['transfer-encoding', Kind.Refused], ['keep-alive', Kind.Refused], ['upgrade', Kind.Refused], ['expect', Kind.Expect],
]);
/** Names already checked, as given: most requests carry the same few dozen. Bounded, since names come from clients. */
const checked = new Map<string, Kind>();
const MAX_CHECKED = 2048;

/** Methods whose requests mean to carry a body: they get `content-length: 0` when they have none (RFC 9110 §8.6). */
export function expectsPayload(method: string): boolean {
  return method === 'PUT' || method === 'POST' || method === 'PATCH' || method === 'QUERY' || method === 'PROPFIND' || method === 'PROPPATCH';
}

/** Checks a request and fills `into` with its head; throws InvalidArgumentError (or NotSupportedError) as undici would. */
export function prepareRequest(into: RequestHead, opts: UpstreamDispatchOptions): void {
  const { path, method, upgrade } = opts;
  if (typeof path !== 'string') throw new InvalidArgumentError('path must be a string');
  if (path.charCodeAt(0) !== 47 /* / */ && !path.startsWith('http://') && !path.startsWith('https://') && method !== 'CONNECT') {
    throw new InvalidArgumentError('path must be an absolute URL or start with a slash');
  }
  if (INVALID_PATH.test(path)) throw new InvalidArgumentError('invalid request path');
  if (typeof method !== 'string') throw new InvalidArgumentError('method must be a string');
  if (!TOKEN.test(method)) throw new InvalidArgumentError('invalid request method');
  if (upgrade !== undefined && upgrade !== null) {
    if (typeof upgrade !== 'string') throw new InvalidArgumentError('upgrade must be a string');
    if (INVALID_VALUE.test(upgrade)) throw new InvalidArgumentError('invalid upgrade header');
  }
  into.method = method;
  into.path = path;
  into.upgrade = upgrade || null;
  if (opts.reset === true) into.reset = true;
  into.body = normalizeBody(opts.body);
  const headers = opts.headers as unknown;
  if (Array.isArray(headers)) {
    if (headers.length % 2 !== 0) throw new InvalidArgumentError('headers array must be even');
    for (let i = 0; i < headers.length; i += 2) addHeader(into, headers[i], headers[i + 1]);
  } else if (headers !== null && typeof headers === 'object') {
    if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
      for (const pair of headers as Iterable<unknown>) {
        if (!Array.isArray(pair) || pair.length !== 2) throw new InvalidArgumentError('headers must be in key-value pair format');
        addHeader(into, pair[0], pair[1]);
      }
    } else {
      const map = headers as Record<string, unknown>;
      for (const name of Object.keys(map)) addHeader(into, name, map[name]);
    }
  } else if (headers !== undefined && headers !== null) {
    throw new InvalidArgumentError('headers must be an object or an array');
  }
}

function addHeader(into: RequestHead, name: unknown, value: unknown): void {
  if (value === undefined) return;
  if (typeof name !== 'string') throw new InvalidArgumentError('invalid header key');
  const kind = kindOf(name);
  if (kind === Kind.Plain) {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) into.lines += `${name}: ${headerValue(name, value[i])}\r\n`;
    } else {
      into.lines += `${name}: ${headerValue(name, value)}\r\n`;
    }
    return;
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) throw new InvalidArgumentError(`invalid ${name} header`);
  switch (kind) {
    case Kind.Host:
      if (into.hostLine !== null) throw new InvalidArgumentError('duplicate host header');
      if (typeof value !== 'string') throw new InvalidArgumentError('invalid host header');
      into.hostLine = `host: ${headerValue(name, value)}\r\n`;
      return;
    case Kind.ContentLength:
      if (into.declaredLength !== -1) throw new InvalidArgumentError('duplicate content-length header');
      if (typeof value !== 'string' || !/^\d+$/.test(value)) throw new InvalidArgumentError('invalid content-length header');
      into.declaredLength = parseInt(value, 10);
      return;
    case Kind.Connection:
      if (typeof value !== 'string') throw new InvalidArgumentError('invalid connection header');
      // The pool writes its own connection line; a `close` among the tokens is kept as intent.
      for (const token of value.toLowerCase().split(',')) {
        const t = token.trim();
        if (!TOKEN.test(t)) throw new InvalidArgumentError('invalid connection header');
        if (t === 'close') into.reset = true;
      }
      return;
    case Kind.Expect:
      throw new NotSupportedError('expect header not supported');
    default:
      throw new InvalidArgumentError(`invalid ${name.toLowerCase()} header`);
  }
}

function kindOf(name: string): Kind {
  const known = checked.get(name);
  if (known !== undefined) return known;
  if (!TOKEN.test(name)) throw new InvalidArgumentError('invalid header key');
  const kind = SPECIAL.get(name.toLowerCase()) ?? Kind.Plain;
  if (checked.size < MAX_CHECKED) checked.set(name, kind);
  return kind;
}

function headerValue(name: string, value: unknown): string {
  if (typeof value === 'string') {
    if (INVALID_VALUE.test(value)) throw new InvalidArgumentError(`invalid ${name} header`);
    return value;
  }
  if (value === null) return '';
  // Other primitives are coerced; objects (and anything with a crafted toString) are refused.
  if (typeof value === 'object' || typeof value === 'function' || typeof value === 'symbol') throw new InvalidArgumentError(`invalid ${name} header`);
  const s = `${value as string | number | boolean | bigint}`;
  if (INVALID_VALUE.test(s)) throw new InvalidArgumentError(`invalid ${name} header`);
  return s;
}

/** Buffers and strings as one Buffer (empty: none), streams as they are; anything else is refused. */
function normalizeBody(body: unknown): Buffer | Readable | null {
  if (body === undefined || body === null) return null;
  if (typeof body === 'string') return body.length > 0 ? Buffer.from(body) : null;
  if (Buffer.isBuffer(body)) return body.length > 0 ? body : null;
  if (ArrayBuffer.isView(body)) return body.byteLength > 0 ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : null;
  if (body instanceof ArrayBuffer) return body.byteLength > 0 ? Buffer.from(body) : null;
  if (typeof body === 'object' && typeof (body as Readable).pipe === 'function' && typeof (body as Readable).on === 'function') return body as Readable;
  throw new InvalidArgumentError('body must be a string, a Buffer or a Readable stream');
}
