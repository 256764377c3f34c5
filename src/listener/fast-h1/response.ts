import { EventEmitter } from 'node:events';
import { STATUS_CODES, validateHeaderName, validateHeaderValue } from 'node:http';
import type { Socket } from 'node:net';
import { dateLine } from './date-header';
import { HeadFlags, scanHeader } from './head-flags';

/** What a response tells its connection. */
export interface ResponseOwner {
  /** The response's last byte is written (the socket took it). */
  responseFinished(res: FastResponse): void;
}

type OutHeaders = readonly string[] | Readonly<Record<string, string | string[] | number | undefined>>;

/**
 * One response of the fast HTTP/1.1 codec, with the part of Node's ServerResponse the proxy uses
 * (writeHead, write, end, addTrailers, destroy, 'drain', 'finish', 'close') and Node's framing
 * rules: Date added, keep-alive or close said, chunked when no length is known, no body for HEAD,
 * 1xx, 204 and 304. The head goes out with the first body bytes, as one write where they are small.
 */
export class FastResponse extends EventEmitter {
  statusCode = 200;
  statusMessage = '';
  shouldKeepAlive: boolean;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  socket: Socket | null;
  /** The request this answers. */
  req: { readonly complete: boolean } | null = null;
  #head: string | null = null;
  #chunked = false;
  #hasBody: boolean;
  #last = false;
  #trailers = '';
  #set: Record<string, [string, string | string[] | number]> | null = null;
  #closed = false;
  needDrain = false;

  constructor(socket: Socket, private readonly owner: ResponseOwner, private readonly http10: boolean, head: boolean, keepAlive: boolean) {
    super();
    this.socket = socket;
    this.#hasBody = !head;
    this.shouldKeepAlive = keepAlive;
  }

  get finished(): boolean {
    return this.writableEnded;
  }

  /** True once this response must end its connection (it said `connection: close`). */
  get last(): boolean {
    return this.#last;
  }

  get writable(): boolean {
    return !this.writableEnded && !this.destroyed;
  }

  setHeader(name: string, value: string | string[] | number): this {
    if (this.headersSent) throw Object.assign(new Error('Cannot set headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    validateHeaderName(name);
    validateHeaderValue(name, value as string);
    (this.#set ??= {})[name.toLowerCase()] = [name, value];
    return this;
  }

  getHeader(name: string): string | string[] | number | undefined {
    return this.#set?.[name.toLowerCase()]?.[1];
  }

  getHeaders(): Record<string, string | string[] | number> {
    const out: Record<string, string | string[] | number> = {};
    if (this.#set) for (const key of Object.keys(this.#set)) out[key] = this.#set[key]![1];
    return out;
  }

  hasHeader(name: string): boolean {
    return this.#set?.[name.toLowerCase()] !== undefined;
  }

  removeHeader(name: string): void {
    if (this.#set) delete this.#set[name.toLowerCase()];
  }

  writeHead(status: number, reasonOrHeaders?: string | OutHeaders, maybeHeaders?: OutHeaders): this {
    if (this.headersSent) throw Object.assign(new Error('Cannot write headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    let headers: OutHeaders | undefined;
    if (typeof reasonOrHeaders === 'string') {
      this.statusMessage = reasonOrHeaders;
      headers = maybeHeaders;
    } else headers = reasonOrHeaders;
    if (!(status >= 100 && status <= 999)) throw Object.assign(new RangeError(`Invalid status code: ${status}`), { code: 'ERR_HTTP_INVALID_STATUS_CODE' });
    this.statusCode = status;
    if (status === 204 || status === 304 || (status >= 100 && status <= 199)) this.#hasBody = false;
    this.#storeHead(headers, -1);
    return this;
  }

  /** Writes a body chunk; false: wait for 'drain'. */
  write(chunk: Buffer | string, encoding?: BufferEncoding | (() => void), cb?: () => void): boolean {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.writableEnded) return false;
    if (!this.headersSent) this.#storeHead(undefined, -1);
    const socket = this.socket;
    if (socket === null || socket.destroyed) return false;
    const data = typeof chunk === 'string' ? Buffer.from(chunk, encoding ?? 'utf8') : chunk;
    if (!this.#hasBody || (data.length === 0 && this.#head === null)) {
      cb?.();
      return true;
    }
    const ok = this.#send(data, '', cb);
    if (!ok) this.needDrain = true;
    return ok;
  }

  end(chunk?: Buffer | string | (() => void), encoding?: BufferEncoding | (() => void), cb?: () => void): this {
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.writableEnded) return this;
    const data = chunk === undefined || chunk === null ? EMPTY : typeof chunk === 'string' ? Buffer.from(chunk, (encoding as BufferEncoding | undefined) ?? 'utf8') : chunk;
    if (!this.headersSent) this.#storeHead(undefined, this.#hasBody ? data.length : 0);
    this.writableEnded = true;
    const socket = this.socket;
    if (socket === null || socket.destroyed) return this;
    if (cb) this.once('finish', cb);
    const tail = this.#chunked ? `0\r\n${this.#trailers}\r\n` : '';
    this.#send(this.#hasBody ? data : EMPTY, tail, this.#flushed);
    return this;
  }

  addTrailers(headers: Readonly<Record<string, string | string[] | number | undefined>> | readonly string[]): void {
    let out = '';
    const add = (name: string, value: unknown): void => {
      validateHeaderName(name);
      validateHeaderValue(name, value as string);
      out += `${name}: ${String(value)}\r\n`;
    };
    if (Array.isArray(headers)) for (let i = 0; i + 1 < headers.length; i += 2) add(headers[i]!, headers[i + 1]);
    else for (const name of Object.keys(headers)) {
      const v = (headers as Record<string, unknown>)[name];
      if (v !== undefined) add(name, v);
    }
    this.#trailers += out;
  }

  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.socket?.destroy(err);
    return this;
  }

  /** The connection lets go of the response: after its finish, or when the socket closed under it. */
  emitClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.destroyed = true;
    this.emit('close');
  }

  /** The connection's socket drained: a writer waiting for it goes on. */
  drained(): void {
    if (!this.needDrain || this.writableEnded) return;
    this.needDrain = false;
    this.emit('drain');
  }

  readonly #flushed = (): void => {
    this.writableFinished = true;
    // The connection's last response ends its socket before 'finish' listeners run, as node:http
    // does: nothing (a 400 for bytes pipelined after a close, say) may follow it.
    if (this.#last) this.socket?.destroySoon();
    this.emit('finish');
    this.owner.responseFinished(this);
  };

  /** Body bytes (framed when chunked) after the head when it is still unsent, then `tail`: one write when small. */
  #send(data: Buffer, tail: string, cb?: () => void): boolean {
    const socket = this.socket!;
    let prefix = this.#head ?? '';
    this.#head = null;
    if (this.#chunked && data.length > 0) {
      prefix += `${data.length.toString(16)}\r\n`;
      tail = `\r\n${tail}`;
    }
    if (data.length === 0) return socket.write(prefix + tail, 'latin1', cb);
    if (data.length <= COALESCE_BYTES) {
      const p = Buffer.byteLength(prefix, 'latin1');
      const out = Buffer.allocUnsafe(p + data.length + tail.length);
      out.write(prefix, 0, 'latin1');
      data.copy(out, p);
      if (tail.length > 0) out.write(tail, p + data.length, 'latin1');
      return socket.write(out, cb);
    }
    socket.cork();
    if (prefix.length > 0) socket.write(prefix, 'latin1');
    let ok = socket.write(data, tail.length > 0 ? undefined : cb);
    if (tail.length > 0) ok = socket.write(tail, 'latin1', cb);
    socket.uncork();
    return ok;
  }

  /** The head, decided now as Node decides it (`contentLength` ≥ 0: known from end() without a head). */
  #storeHead(headers: OutHeaders | undefined, contentLength: number): void {
    this.headersSent = true;
    const f = new HeadFlags();
    let head = `HTTP/1.1 ${this.statusCode} ${this.statusMessage || STATUS_CODES[this.statusCode] || 'unknown'}\r\n`;
    if (this.#set !== null) for (const key of Object.keys(this.#set)) head += headerLines(f, this.#set[key]![0], this.#set[key]![1], false);
    if (headers !== undefined) {
      if (Array.isArray(headers)) {
        for (let i = 0; i + 1 < headers.length; i += 2) head += headerLines(f, headers[i]!, headers[i + 1]!, true);
      } else {
        const obj = headers as Record<string, string | string[] | number | undefined>;
        for (const name of Object.keys(obj)) {
          const v = obj[name];
          if (v !== undefined) head += headerLines(f, name, v, true);
        }
      }
    }
    if (!f.date) head += dateLine();
    // As Node: a Connection header of the handler's own decides; anything but close keeps it.
    if (f.connectionClose) this.#last = true;
    else if (f.connection) this.shouldKeepAlive = true;
    let chunked = f.chunked;
    if (chunked && (this.statusCode === 204 || this.statusCode === 304)) {
      chunked = false;
      this.shouldKeepAlive = false;
    }
    const chunkedByDefault = !this.http10;
    if (!f.connection) {
      if (this.shouldKeepAlive && (f.contentLength || chunkedByDefault)) head += 'Connection: keep-alive\r\n';
      else {
        this.#last = true;
        head += 'Connection: close\r\n';
      }
    }
    if (!f.contentLength && !f.transferEncoding) {
      if (!this.#hasBody) chunked = false;
      else if (!chunkedByDefault) this.#last = true;
      else if (!f.trailer && contentLength >= 0) head += `Content-Length: ${contentLength}\r\n`;
      else {
        head += 'Transfer-Encoding: chunked\r\n';
        chunked = true;
      }
    }
    this.#chunked = chunked;
    this.#head = `${head}\r\n`;
  }
}

const EMPTY = Buffer.alloc(0);
/** Bodies up to this size are copied behind the head into one buffer: one write instead of a writev. */
const COALESCE_BYTES = 16 * 1024;

function headerLines(f: HeadFlags, name: string, value: string | string[] | number, validate: boolean): string {
  if (Array.isArray(value)) {
    let out = '';
    for (const v of value) out += headerLines(f, name, v, validate);
    return out;
  }
  const v = typeof value === 'string' ? value : String(value);
  if (validate) {
    validateHeaderName(name);
    validateHeaderValue(name, v);
  }
  scanHeader(f, name, v);
  return `${name}: ${v}\r\n`;
}
