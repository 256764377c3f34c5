// What Envoy's tls_inspector listener filter learns from the first bytes of a connection: whether
// it starts with a TLS ClientHello and, if so, the SNI host name and the offered ALPN protocols,
// so a filter chain can be chosen before the handshake. The bytes are only read, never consumed:
// the caller hands the same bytes to TLS afterwards.
//
// Outcomes, as tls_inspector decides them (it runs BoringSSL on the peeked bytes):
//   - not_tls: the bytes are not a well-formed ClientHello (plain text, or a broken hello):
//     Envoy treats the connection as plain text (no transport protocol is detected, so
//     'raw_buffer'), unless close_connection_on_client_hello_parsing_errors is set;
//   - too_large: the ClientHello is still incomplete after maxBytes: Envoy counts
//     client_hello_too_large and closes the connection;
//   - tls: a complete ClientHello. A malformed ALPN extension only hides ALPN (Envoy ignores it);
//     a malformed SNI extension makes the hello unparseable, as BoringSSL rejects it.

export type ClientHelloResult =
  | { readonly kind: 'need_more' }
  | { readonly kind: 'not_tls' }
  | { readonly kind: 'too_large' }
  | { readonly kind: 'tls'; readonly serverName: string | null; readonly alpn: readonly string[] };

/**
 * tls_inspector's default (and largest) max_client_hello_size: 16 KiB. Envoy releases before
 * 1.3x used 64 KiB; pass that as maxBytes to behave like them.
 */
export const DEFAULT_MAX_CLIENT_HELLO_BYTES = 16 * 1024;

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const MAX_RECORD_PLAINTEXT = 16 * 1024;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

const NEED_MORE: ClientHelloResult = { kind: 'need_more' };
const NOT_TLS: ClientHelloResult = { kind: 'not_tls' };
const TOO_LARGE: ClientHelloResult = { kind: 'too_large' };

/**
 * Reads a ClientHello from a connection's bytes as they arrive. Each record is looked at once,
 * at most maxBytes are kept (memory grows with what arrived, not with declared lengths), so a
 * peer dribbling bytes or declaring huge lengths costs nothing more.
 */
export class ClientHelloReader {
  readonly #max: number;
  /** The connection's first bytes (at most maxBytes); grows as they come. */
  #data: Buffer = Buffer.alloc(0);
  #len = 0;
  /** Offset in #data of the next record header. */
  #recordAt = 0;
  /** The handshake message's fragments, when it spans several records (it rarely does). */
  #fragments: Buffer[] = [];
  #hsLen = 0;
  #needed = -1;
  #result: ClientHelloResult | null = null;

  constructor(maxBytes: number = DEFAULT_MAX_CLIENT_HELLO_BYTES) {
    this.#max = maxBytes;
  }

  /** Adds the next bytes read; every call after a final answer returns that answer again. */
  feed(chunk: Uint8Array): ClientHelloResult {
    if (this.#result) return this.#result;
    const take = Math.min(chunk.length, this.#max - this.#len);
    if (this.#len + take > this.#data.length) {
      const grown = Buffer.alloc(Math.min(this.#max, Math.max(512, this.#data.length * 2, this.#len + take)));
      this.#data.copy(grown, 0, 0, this.#len);
      this.#data = grown;
    }
    this.#data.set(chunk.subarray(0, take), this.#len);
    this.#len += take;
    this.#result = this.#advance();
    if (!this.#result && this.#len >= this.#max) this.#result = TOO_LARGE;
    return this.#result ?? NEED_MORE;
  }

  /** A final answer, or null when more bytes are needed. */
  #advance(): ClientHelloResult | null {
    const d = this.#data;
    for (;;) {
      const avail = this.#len - this.#recordAt;
      const at = this.#recordAt;
      if (avail >= 1 && d[at] !== RECORD_HANDSHAKE) return NOT_TLS;
      if (avail >= 2 && d[at + 1] !== 3) return NOT_TLS;
      if (avail >= 6 && this.#hsLen === 0 && d[at + 5] !== HANDSHAKE_CLIENT_HELLO) return NOT_TLS;
      if (avail < 5) return null;
      const size = d.readUInt16BE(at + 3);
      if (size === 0 || size > MAX_RECORD_PLAINTEXT) return NOT_TLS;
      // A declared length that cannot fit (its records' headers come on top) is refused as soon
      // as the first record shows it, before its bytes are waited for.
      if (this.#hsLen === 0 && size >= 4 && avail >= 9 && 4 + d.readUIntBE(at + 6, 3) + 5 > this.#max) return TOO_LARGE;
      if (avail < 5 + size) return null;
      this.#recordAt = at + 5 + size;
      this.#fragments.push(d.subarray(at + 5, at + 5 + size));
      this.#hsLen += size;
      if (this.#hsLen < 4) continue;
      if (this.#needed < 0) {
        const head = this.#fragments.length === 1 ? this.#fragments[0]! : Buffer.concat(this.#fragments);
        this.#needed = 4 + head.readUIntBE(1, 3);
        if (this.#needed + 5 > this.#max) return TOO_LARGE;
      }
      if (this.#hsLen >= this.#needed) {
        const hs = this.#fragments.length === 1 ? this.#fragments[0]! : Buffer.concat(this.#fragments);
        return parseClientHello(hs.subarray(4, this.#needed));
      }
    }
  }
}

/** One look at the bytes read so far (a new reader each time). */
export function inspectClientHello(buf: Uint8Array, maxBytes: number = DEFAULT_MAX_CLIENT_HELLO_BYTES): ClientHelloResult {
  return new ClientHelloReader(maxBytes).feed(buf);
}

/** A bounds-checked reader over a ClientHello body; every read returns null when past the end. */
class Cursor {
  constructor(
    private readonly b: Buffer,
    private pos = 0,
    private readonly end = b.length,
  ) {}

  get left(): number {
    return this.end - this.pos;
  }

  u8(): number | null {
    return this.left >= 1 ? this.b[this.pos++]! : null;
  }

  u16(): number | null {
    if (this.left < 2) return null;
    const v = this.b.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  /** A sub-cursor over the next `n` bytes, skipped here. */
  take(n: number | null): Cursor | null {
    if (n === null || this.left < n) return null;
    const c = new Cursor(this.b, this.pos, this.pos + n);
    this.pos += n;
    return c;
  }

  rest(): Buffer {
    return this.b.subarray(this.pos, this.end);
  }
}

function parseClientHello(body: Buffer): ClientHelloResult {
  const c = new Cursor(body);
  const major = c.u8();
  const minor = c.u8();
  // BoringSSL under tls_inspector negotiates TLS 1.0 to 1.3: an SSL 3.0 hello fails.
  if (major !== 3 || minor === null || minor < 1) return NOT_TLS;
  if (!c.take(32)) return NOT_TLS;
  const sessionIdLen = c.u8();
  if (sessionIdLen === null || sessionIdLen > 32 || !c.take(sessionIdLen)) return NOT_TLS;
  const suitesLen = c.u16();
  if (suitesLen === null || suitesLen < 2 || suitesLen % 2 !== 0 || !c.take(suitesLen)) return NOT_TLS;
  const compressionLen = c.u8();
  if (compressionLen === null || compressionLen < 1 || !c.take(compressionLen)) return NOT_TLS;
  let serverName: string | null = null;
  let alpn: readonly string[] = [];
  if (c.left === 0) return { kind: 'tls', serverName, alpn };
  const exts = c.take(c.u16());
  if (!exts || c.left !== 0) return NOT_TLS;
  const seen = new Set<number>();
  while (exts.left > 0) {
    const type = exts.u16();
    const ext = type === null ? null : exts.take(exts.u16());
    if (type === null || !ext || seen.has(type)) return NOT_TLS;
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const name = parseServerName(ext);
      if (name === null) return NOT_TLS;
      serverName = name;
    } else if (type === EXT_ALPN) {
      alpn = parseAlpn(ext);
    }
  }
  return { kind: 'tls', serverName, alpn };
}

/** BoringSSL's rules: exactly one host_name entry, 1 to 255 bytes, no NUL. */
function parseServerName(ext: Cursor): string | null {
  const list = ext.take(ext.u16());
  if (!list || ext.left !== 0) return null;
  const type = list.u8();
  const name = list.take(list.u16());
  if (type !== 0 || !name || list.left !== 0) return null;
  const bytes = name.rest();
  if (bytes.length === 0 || bytes.length > 255 || bytes.includes(0)) return null;
  // latin1 keeps every byte distinct: a non-ASCII name can never equal an ASCII server_name.
  return bytes.toString('latin1');
}

/** tls_inspector's reading: a well-formed, non-empty list, else no ALPN at all. */
function parseAlpn(ext: Cursor): readonly string[] {
  const list = ext.take(ext.u16());
  if (!list || ext.left !== 0 || list.left < 2) return [];
  const out: string[] = [];
  while (list.left > 0) {
    const name = list.take(list.u8());
    if (!name || name.left === 0) return [];
    out.push(name.rest().toString('latin1'));
  }
  return out;
}
