import { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';

/** What a request asks of its connection: more body bytes (the reader wants them). */
export interface RequestSource {
  wantBody(): void;
}

type HeaderDest = Record<string, string | string[]>;
const addHeaderLine = (IncomingMessage.prototype as unknown as {
  _addHeaderLine(field: string, value: string, dest: HeaderDest): void;
})._addHeaderLine;
const NOT_JOINED = { joinDuplicateHeaders: false };

/**
 * One request of the fast HTTP/1.1 codec, in the shape the connection manager reads of Node's
 * IncomingMessage: method, url, rawHeaders, lazily built `headers`, trailers, `complete`, and the
 * body as a Readable fed by the parser. Header objects are only built when something reads them.
 */
export class FastRequest extends Readable {
  httpVersionMajor: number;
  httpVersionMinor: number;
  httpVersion: string;
  complete = false;
  aborted = false;
  upgrade = false;
  rawTrailers: string[] = NO_TRAILERS;
  /** Set once the response is over: whatever body still comes is read and discarded. */
  dumped = false;
  #headers: HeaderDest | null = null;
  #trailers: HeaderDest | null = null;

  constructor(
    readonly socket: Socket,
    private readonly source: RequestSource,
    readonly method: string,
    readonly url: string,
    readonly rawHeaders: string[],
    major: number,
    minor: number,
  ) {
    super();
    this.httpVersionMajor = major;
    this.httpVersionMinor = minor;
    this.httpVersion = major === 1 && minor === 1 ? '1.1' : `${major}.${minor}`;
  }

  get connection(): Socket {
    return this.socket;
  }

  /** Node's header object, duplicates folded by its rules. */
  get headers(): NodeJS.Dict<string> & { 'set-cookie'?: string[] } {
    return (this.#headers ??= foldHeaders(this.rawHeaders)) as NodeJS.Dict<string>;
  }

  get trailers(): NodeJS.Dict<string> {
    return (this.#trailers ??= foldHeaders(this.rawTrailers)) as NodeJS.Dict<string>;
  }

  get headersDistinct(): Record<string, string[]> {
    return distinct(this.rawHeaders);
  }

  get trailersDistinct(): Record<string, string[]> {
    return distinct(this.rawTrailers);
  }

  setTimeout(ms: number, callback?: () => void): this {
    this.socket.setTimeout(ms, callback);
    return this;
  }

  override _read(): void {
    this.source.wantBody();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (!this.readableEnded || !this.complete) {
      this.aborted = true;
      this.emit('aborted');
    }
    // As Node's: an error is only emitted to whoever listens for one.
    process.nextTick(() => cb(this.listenerCount('error') > 0 ? err : null));
  }
}

const NO_TRAILERS: string[] = [];

function foldHeaders(raw: readonly string[]): HeaderDest {
  const dest: HeaderDest = {};
  for (let i = 0; i + 1 < raw.length; i += 2) addHeaderLine.call(NOT_JOINED, raw[i]!, raw[i + 1]!, dest);
  return dest;
}

function distinct(raw: readonly string[]): Record<string, string[]> {
  const dest: Record<string, string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) (dest[raw[i]!.toLowerCase()] ??= []).push(raw[i + 1]!);
  return dest;
}
