import type { Socket } from 'node:net';
import type { NativeHttp, NativeParser } from '../../util/native-http';
import { findHeader } from '../../util/raw-header';
import { FastRequest, type RequestSource } from './request';
import { FastResponse, type ResponseOwner } from './response';

/** What a connection hands its codec. */
export interface ConnectionHost {
  request(req: FastRequest, res: FastResponse): void;
  upgrade(req: FastRequest, socket: Socket, head: Buffer): void;
  /** A CONNECT request (no connect matcher: refused). */
  connect(socket: Socket): void;
  /** What the parser refused, a socket error, or a request timeout. */
  clientError(err: NodeJS.ErrnoException, socket: Socket): void;
  timeout(socket: Socket): void;
}

interface StreamHandle {
  isStreamBase?: boolean;
  _consumed?: boolean;
  reading?: boolean;
  readStart(): number;
  readStop(): number;
}

type SocketInternals = Socket & { _handle: StreamHandle | null; _httpMessage?: FastResponse | null; _unrefTimer(): void };

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const CONTINUE_EXPECTATION = /(?:^|\W)100-continue(?:\W|$)/i;

/**
 * One downstream HTTP/1.1 connection on Node's native parser, consuming the socket's handle as
 * node:http does (reads never become JS 'data' events). Requests are served one at a time, as
 * Envoy's HTTP/1 codec does: a pipelined request waits, with reading stopped, until the response
 * before it is out, so what one connection can queue is bounded by one read. A body is read ahead
 * of its reader up to the listener's buffer limit, then reading stops until the reader catches up.
 */
export class FastConnection implements ResponseOwner, RequestSource {
  readonly #socket: SocketInternals;
  #parser: NativeParser | null;
  #consumed = false;
  /** The request whose head or body the parser is reading. */
  #reading: FastRequest | null = null;
  #active: FastResponse | null = null;
  #activeReq: FastRequest | null = null;
  #queue: Array<[FastRequest, boolean]> = [];
  #paused = false;
  #upgradeReq: FastRequest | null = null;
  #refused = false;
  #slowHeaders: string[] = [];
  #slowUrl = '';
  #finishing: FastResponse | null = null;
  /** performance.now() when the message now being read began (0: between messages), for the request timeouts. */
  messageStartedAt = performance.now();
  headersComplete = false;

  constructor(socket: Socket, private readonly host: ConnectionHost, private readonly native: NativeHttp, maxHeaderSize: number,
    /** Body bytes read ahead of the reader before reading stops: the listener's per_connection_buffer_limit_bytes. */
    private readonly bufferLimit: number) {
    this.#socket = socket as SocketInternals;
    const P = native.HTTPParser;
    const parser = new P();
    parser.initialize(P.REQUEST, {}, maxHeaderSize, P.kLenientNone);
    parser[P.kOnMessageBegin] = this.#onMessageBegin;
    parser[P.kOnHeaders] = this.#onHeaders;
    parser[P.kOnHeadersComplete] = this.#onHeadersComplete;
    parser[P.kOnBody] = this.#onBody;
    parser[P.kOnMessageComplete] = this.#onMessageComplete;
    parser[P.kOnExecute] = this.#onExecute;
    this.#parser = parser;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);
    socket.on('error', this.#onError);
    socket.on('timeout', this.#onTimeout);
    const handle = this.#socket._handle;
    if (handle?.isStreamBase && !handle._consumed) {
      handle._consumed = true;
      this.#consumed = true;
      parser.consume(handle);
    }
  }

  get socket(): Socket {
    return this.#socket;
  }

  // implements RequestSource
  wantBody(): void {
    if (this.#queue.length === 0) this.#resume();
  }

  // implements ResponseOwner
  responseFinished(res: FastResponse): void {
    if (res !== this.#active) return;
    const req = this.#activeReq!;
    this.#active = null;
    this.#activeReq = null;
    this.#socket._httpMessage = null;
    res.socket = null;
    // A body nobody reads is read and thrown away, so that the next request can be parsed.
    if (!req.complete && req.listenerCount('data') === 0) {
      req.dumped = true;
      req.resume();
    }
    this.#finishing = res;
    process.nextTick(this.#afterFinish);
  }

  readonly #afterFinish = (): void => {
    const res = this.#finishing!;
    this.#finishing = null;
    res.emitClose();
    if (res.last) {
      this.#socket.destroySoon();
      return;
    }
    if (this.#socket.destroyed) return;
    const next = this.#queue.shift();
    if (next !== undefined) this.#dispatch(next[0], next[1]);
    if (this.#queue.length === 0) this.#resume();
  };

  /** A request timeout swept by the codec: `ERR_HTTP_REQUEST_TIMEOUT`, as Node reports it. */
  expire(): void {
    this.messageStartedAt = 0;
    this.host.clientError(Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), this.#socket);
  }

  #dispatch(req: FastRequest, keepAlive: boolean): void {
    const res = new FastResponse(this.#socket, this, req.httpVersionMajor < 1 || req.httpVersionMinor < 1, req.method === 'HEAD', keepAlive);
    res.req = req;
    this.#active = res;
    this.#activeReq = req;
    this.#socket._httpMessage = res;
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1) {
      const expect = findHeader(req.rawHeaders, 'expect');
      if (expect !== undefined) {
        if (!CONTINUE_EXPECTATION.test(expect)) {
          res.writeHead(417);
          res.end();
          return;
        }
        this.#socket.write(CONTINUE, 'latin1');
      }
    }
    this.host.request(req, res);
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    const handle = this.#socket._handle;
    if (this.#consumed && handle?.reading) {
      handle.reading = false;
      handle.readStop();
    }
    this.#socket.pause();
  }

  #resume(): void {
    if (!this.#paused || this.#parser === null) return;
    this.#paused = false;
    const handle = this.#socket._handle;
    if (this.#consumed && handle && !handle.reading) {
      handle.reading = true;
      handle.readStart();
    }
    this.#socket.resume();
  }

  // Parser callbacks: called by the native parser with the parser as `this`, hence arrow fields.

  readonly #onMessageBegin = (): void => {
    this.messageStartedAt = performance.now();
    this.headersComplete = false;
  };

  /** Headers that arrived in several reads (or trailers), before their headers-complete. */
  readonly #onHeaders = (headers: string[], url: string): void => {
    for (const h of headers) this.#slowHeaders.push(h);
    this.#slowUrl += url;
  };

  readonly #onHeadersComplete = (major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined,
    _status: number, _message: string, upgrade: boolean, keepAlive: boolean): number => {
    if (headers === undefined) {
      headers = this.#slowHeaders;
      this.#slowHeaders = [];
    }
    if (url === undefined) {
      url = this.#slowUrl;
      this.#slowUrl = '';
    }
    this.headersComplete = true;
    const name = methodName(this.native, method);
    const req = new FastRequest(this.#socket, this, name, url, headers, major, minor);
    if (upgrade) {
      req.upgrade = true;
      this.#upgradeReq = req;
      // 2: llhttp stops here; what follows the head belongs to the upgraded protocol.
      return 2;
    }
    this.#reading = req;
    if (this.#active === null && this.#queue.length === 0) this.#dispatch(req, keepAlive);
    else {
      this.#queue.push([req, keepAlive]);
      this.#pause();
    }
    return 0;
  };

  readonly #onBody = (chunk: Buffer): void => {
    const req = this.#reading;
    if (req === null || req.dumped) return;
    // As Envoy's connection buffer: read on (a client that leaves is seen) up to the limit, then stop.
    req.push(chunk);
    if (req.readableLength > this.bufferLimit) this.#pause();
  };

  readonly #onMessageComplete = (): void => {
    const req = this.#reading;
    this.messageStartedAt = 0;
    if (req === null) return;
    this.#reading = null;
    req.complete = true;
    if (this.#slowHeaders.length > 0) {
      req.rawTrailers = this.#slowHeaders;
      this.#slowHeaders = [];
      this.#slowUrl = '';
    }
    req.push(null);
  };

  readonly #onExecute = (ret: number | Error): void => {
    this.#socket._unrefTimer();
    this.#afterExecute(ret, undefined);
  };

  readonly #onData = (data: Buffer): void => {
    if (this.#parser === null) return;
    this.#afterExecute(this.#parser.execute(data), data);
  };

  #afterExecute(ret: number | Error, data: Buffer | undefined): void {
    const parser = this.#parser;
    if (parser === null) return;
    // Not `instanceof Error`: the native parser's errors come from Node's own realm (not jest's, say).
    if (typeof ret !== 'number') {
      const err = ret as NodeJS.ErrnoException & { bytesParsed?: number; rawPacket?: Buffer };
      err.rawPacket = data ?? parser.getCurrentBuffer();
      this.#refuse(err);
      return;
    }
    const req = this.#upgradeReq;
    if (req === null) return;
    const d = data ?? parser.getCurrentBuffer();
    this.#detach();
    (this.#socket as { readableFlowing: boolean | null }).readableFlowing = null;
    if (req.method === 'CONNECT') this.host.connect(this.#socket);
    else this.host.upgrade(req, this.#socket, d.subarray(ret));
  }

  readonly #onEnd = (): void => {
    const parser = this.#parser;
    if (parser === null) return;
    const ret = parser.finish();
    if (ret !== undefined && typeof ret !== 'number') this.#refuse(ret as NodeJS.ErrnoException);
  };

  #refuse(err: NodeJS.ErrnoException): void {
    if (this.#refused) return;
    this.#refused = true;
    this.#socket.removeListener('error', this.#onError);
    this.#socket.on('error', ignore);
    this.host.clientError(err, this.#socket);
  }

  readonly #onError = (err: NodeJS.ErrnoException): void => this.#refuse(err);

  readonly #onTimeout = (): void => this.host.timeout(this.#socket);

  readonly #onDrain = (): void => this.#active?.drained();

  readonly #onClose = (): void => {
    this.#freeParser();
    const reading = this.#reading;
    if (reading !== null && !reading.complete) reading.destroy();
    const req = this.#activeReq;
    if (req !== null && req !== reading && !req.complete) req.destroy();
    this.#active?.emitClose();
    for (const [queued] of this.#queue) if (!queued.complete) queued.destroy();
    this.#queue = [];
  };

  /** The socket becomes an upgraded protocol's: the codec lets go of it. */
  #detach(): void {
    const s = this.#socket;
    s.removeListener('data', this.#onData);
    s.removeListener('end', this.#onEnd);
    s.removeListener('close', this.#onClose);
    s.removeListener('drain', this.#onDrain);
    s.removeListener('error', this.#onError);
    s.removeListener('timeout', this.#onTimeout);
    this.#upgradeReq = null;
    this.#freeParser();
  }

  #freeParser(): void {
    const parser = this.#parser;
    if (parser === null) return;
    this.#parser = null;
    if (this.#consumed) {
      parser.unconsume();
      this.#consumed = false;
      const handle = this.#socket._handle;
      if (handle) handle._consumed = false;
    }
    parser.remove();
    // Freed once the native call that may be on the stack has returned.
    setImmediate(() => parser.close());
  }
}

function ignore(): void {}

/** llhttp's method index to its name (Node's list stops before PRI; QUERY is 46). */
function methodName(native: NativeHttp, index: number): string {
  if (index < 34) return native.methods[index] ?? 'GET';
  return index === 46 ? 'QUERY' : 'UNKNOWN';
}
