import type { Socket } from 'node:net';
import type { NativeHttp, NativeParser } from '../../util/native-http';

// Responses read with Node's own llhttp binding (the parser node:http runs on), in RESPONSE mode
// and strict (no lenient flags). Two ways to feed it:
//   - consume: the parser becomes the socket handle's reader, as node:http's server does it; reads
//     go from libuv to llhttp in C++ and JS is entered only for the head, each body piece, the end
//     and once after each read (kOnExecute, which carries parse errors); measured cheaper than 'data' (pool.ts);
//   - data: the socket's 'data' events, each chunk passed to execute(), as node:http's client does.
// Consume is used where the handle is a StreamBase (TCP and TLS sockets both are).

/** What the parser tells its connection, message by message. */
export interface ParserSink {
  /** The head is parsed; the return value steers llhttp: 0 read the body, 1 no body (HEAD), 2 the rest is another protocol. */
  headersComplete(status: number, statusText: string, raw: string[], keepAlive: boolean): number;
  body(chunk: Buffer): void;
  /** Trailers of a chunked response, before its messageComplete. */
  trailers(raw: string[]): void;
  messageComplete(): void;
  /** A read that llhttp refused (Node's Error with code HPE_… and reason). */
  parseError(err: Error): void;
  /** After headersComplete returned 2: the bytes of the read past the head (empty when none). */
  upgraded(rest: Buffer): void;
  /** A read was parsed without error (see midMessage). */
  readDone(): void;
}

/** The native parser's flag, set at each head's end and cleared when the next message begins. */
type WithHeadState = NativeParser & { headersCompleted(): boolean };

export class ResponseParser {
  readonly #parser: NativeParser;
  readonly #socket: Socket;
  readonly #consumed: boolean;
  /** Header lines llhttp flushed before the head was complete (past 32 lines, or after a trailer flush). */
  #pending: string[] | null = null;
  /** The current message's head is done: kOnHeaders now carries trailers. */
  #inBody = false;
  #upgrading = false;
  #onData: ((chunk: Buffer) => void) | null = null;

  constructor(native: NativeHttp, socket: Socket, sink: ParserSink, consume: boolean) {
    const P = native.HTTPParser;
    const p = new P();
    this.#parser = p;
    this.#socket = socket;
    p.initialize(P.RESPONSE, this, 0, P.kLenientNone);
    p[P.kOnHeaders] = (raw: string[]) => {
      if (this.#inBody) sink.trailers(raw);
      else if (this.#pending === null) this.#pending = raw;
      else for (const h of raw) this.#pending.push(h);
    };
    p[P.kOnHeadersComplete] = (_major: number, _minor: number, raw: string[] | undefined, _method: unknown, _url: unknown, status: number, statusText: string, _upgrade: boolean, keepAlive: boolean) => {
      let headers = raw;
      if (this.#pending !== null) {
        headers = raw === undefined ? this.#pending : this.#pending.concat(raw);
        this.#pending = null;
      }
      this.#inBody = true;
      const directive = sink.headersComplete(status, statusText, headers ?? [], keepAlive);
      if (directive === 2) this.#upgrading = true;
      return directive;
    };
    p[P.kOnBody] = (chunk: Buffer) => sink.body(chunk);
    p[P.kOnMessageComplete] = () => {
      this.#inBody = false;
      if (!this.#upgrading) sink.messageComplete();
    };
    const handle = (socket as Socket & { _handle?: { isStreamBase?: boolean } })._handle;
    this.#consumed = consume && handle?.isStreamBase === true;
    if (this.#consumed) {
      p[P.kOnExecute] = (ret: number | Error) => {
        if (typeof ret !== 'number') sink.parseError(ret);
        else if (this.#upgrading) sink.upgraded(p.getCurrentBuffer().subarray(ret));
        else sink.readDone();
      };
      p.consume(handle);
    } else {
      this.#onData = (chunk: Buffer) => {
        const ret = p.execute(chunk);
        if (typeof ret !== 'number') sink.parseError(ret);
        else if (this.#upgrading) sink.upgraded(chunk.subarray(ret));
        else sink.readDone();
      };
      socket.on('data', this.#onData);
    }
  }

  /**
   * Bytes of a message whose head is not complete were parsed: a response began. Asked once a read
   * is parsed (one native call), instead of a JS callback at every message's start.
   */
  midMessage(): boolean {
    return !(this.#parser as WithHeadState).headersCompleted();
  }

  /** Stops reading the socket (what was read already is still parsed and told). */
  pause(): void {
    if (this.#consumed) (this.#socket as Socket & { _handle?: { readStop(): number } })._handle?.readStop();
    else this.#socket.pause();
  }

  resume(): void {
    if (this.#consumed) (this.#socket as Socket & { _handle?: { readStart(): number } })._handle?.readStart();
    else this.#socket.resume();
  }

  /** The socket ended: a response delimited by the close completes here, or fails. */
  finish(): Error | null {
    const ret = this.#parser.finish();
    // Not `instanceof Error`: the parser's errors come from Node's own realm (under jest's vm, not this one's Error).
    return typeof ret === 'object' && ret !== null ? ret : null;
  }

  /**
   * Gives the socket back for an upgrade, with `rest` (what came after the head) to be read first,
   * in the state a fresh socket is in: nothing flowing until its new owner reads or listens.
   */
  handOver(rest: Buffer): void {
    const socket = this.#socket;
    if (this.#consumed) {
      this.#parser.unconsume();
    } else if (this.#onData !== null) {
      socket.off('data', this.#onData);
      socket.pause();
    }
    if (rest.length > 0) socket.unshift(rest);
    // Paused only to stop our own reading: the next 'data' listener (or pipe) starts the flow again.
    if (!this.#consumed) (socket as { readableFlowing: boolean | null }).readableFlowing = null;
    this.close();
  }

  /**
   * Frees the native parser. Later, never from inside one of its callbacks: llhttp may still be
   * running on the read that called us.
   */
  close(): void {
    const p = this.#parser;
    setImmediate(() => {
      p.unconsume();
      p.close();
    });
  }
}
