import { type Hash, createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { BoundedCopy } from './bounded-copy';
import type { CapturedResponse } from './types';

// One response seen by the comparison as it streams past: the head, and the body decoded
// (Content-Encoding), hashed whole and kept up to a bound. Nothing here can slow the response it
// watches: chunks are hashed and copied into one bounded buffer, and a body past its bounds
// (bytes or chunks) is let go.

export interface CaptureLimits {
  /** Decoded bytes kept for field-level diffs. */
  readonly maxCaptureBytes: number;
  /** Raw or decoded bytes past which the response is not compared (too_large). */
  readonly maxBytes: number;
}

/** How a captured response ended. */
export type CaptureEnd =
  | { readonly kind: 'ok'; readonly response: CapturedResponse }
  | { readonly kind: 'too_large' | 'error' | 'timeout' | 'dropped' };

/** What a response's forwarder tells whoever watches it. */
export interface ResponseTap {
  head(status: number, rawHeaders: ReadonlyArray<Buffer | string>): void;
  /** False once the tap wants no more of this body (it went past its bounds). */
  data(chunk: Buffer): boolean;
  end(): void;
  fail(kind: 'error' | 'timeout' | 'dropped'): void;
}

/**
 * Compressed input a decoder may hold unprocessed. zlib decodes on the thread pool, behind the
 * socket; a body that outruns it by this much is not compared rather than buffered without end.
 */
const DECODE_BACKLOG_BYTES = 4 * 1024 * 1024;

/**
 * Body chunks one response may take (as the connection delivers them, before decoding). Each
 * costs a parser callback and a hash update on the event loop whatever its size, so a peer
 * answering in endless 1-byte chunks would hold the loop until compare.timeout; past this many
 * the response is not compared (too_large) and a shadow's connection is closed. A 1 MiB body
 * would need chunks under 64 bytes on average to reach it.
 */
export const MAX_BODY_CHUNKS = 16_384;

type Decoder = zlib.Gunzip | zlib.Inflate | zlib.InflateRaw | zlib.BrotliDecompress;

const DECODERS: Readonly<Record<string, () => Decoder>> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  br: () => zlib.createBrotliDecompress(),
};

export class ResponseCapture implements ResponseTap {
  #status = 0;
  #headers = new Map<string, string[]>();
  #encoding: string | null = null;
  #decoder: Decoder | null = null;
  /** The body has ended; the decoder may still be working through it. */
  #endRequested = false;
  #rawHash: Hash | null = null;
  #hash: Hash = createHash('sha256');
  readonly #kept: BoundedCopy;
  #chunks = 0;
  #rawBytes = 0;
  #decodedBytes = 0;
  #complete = true;
  #decodeError = false;
  #ended = false;
  #onGiveUp: (() => void) | null = null;
  #settle!: (end: CaptureEnd) => void;
  /** Resolves once, however the response ends. */
  readonly done: Promise<CaptureEnd>;

  constructor(private readonly limits: CaptureLimits, private readonly started: number = performance.now()) {
    this.done = new Promise((resolve) => (this.#settle = resolve));
    this.#kept = new BoundedCopy(limits.maxCaptureBytes);
  }

  /** A retried shadow starts over: what the earlier attempt sent is forgotten. */
  restart(): void {
    if (this.#ended) return;
    this.#decoder?.destroy();
    this.#decoder = null;
    this.#status = 0;
    this.#headers = new Map();
    this.#encoding = null;
    this.#rawHash = null;
    this.#hash = createHash('sha256');
    this.#kept.clear();
    this.#chunks = this.#rawBytes = this.#decodedBytes = 0;
    this.#complete = true;
    this.#decodeError = false;
    this.#endRequested = false;
  }

  head(status: number, rawHeaders: ReadonlyArray<Buffer | string>): void {
    if (this.#ended) return;
    this.#status = status;
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const name = latin1(rawHeaders[i]!).toLowerCase();
      const list = this.#headers.get(name);
      const value = latin1(rawHeaders[i + 1]!);
      if (list) list.push(value);
      else this.#headers.set(name, [value]);
    }
    const encoding = (this.#headers.get('content-encoding') ?? []).join(',').trim().toLowerCase();
    if (encoding in DECODERS || encoding === 'deflate') {
      this.#encoding = encoding;
      this.#rawHash = createHash('sha256');
    }
  }

  data(chunk: Buffer): boolean {
    if (this.#ended) return false;
    this.#rawBytes += chunk.length;
    if (this.#rawBytes > this.limits.maxBytes || ++this.#chunks > MAX_BODY_CHUNKS) return this.#settleOnce({ kind: 'too_large' });
    if (this.#encoding === null) {
      this.#decoded(chunk);
      return !this.#ended;
    }
    this.#rawHash!.update(chunk);
    if (this.#decodeError) return true;
    const decoder = this.#decoder ?? this.#startDecoder(chunk);
    if (decoder.writableLength > DECODE_BACKLOG_BYTES) return this.#settleOnce({ kind: 'too_large' });
    decoder.write(chunk);
    return !this.#ended;
  }

  end(): void {
    if (this.#ended || this.#endRequested) return;
    this.#endRequested = true;
    if (this.#decoder === null || this.#decodeError) {
      this.#finish();
      return;
    }
    this.#decoder.once('end', () => this.#finish());
    this.#decoder.end();
  }

  fail(kind: 'error' | 'timeout' | 'dropped'): void {
    this.#settleOnce({ kind });
  }

  /** `listener` runs if the comparison gives up waiting for this response (giveUp). */
  onGiveUp(listener: () => void): void {
    this.#onGiveUp = listener;
  }

  /**
   * The comparison's timeout passed with this response still streaming (or not begun): it ends
   * as a timeout, and whoever sends it is told (a shadow then closes its connection rather than
   * wait on a peer that may never finish).
   */
  giveUp(): void {
    if (this.#ended) return;
    this.#settleOnce({ kind: 'timeout' });
    const listener = this.#onGiveUp;
    this.#onGiveUp = null;
    listener?.();
  }

  #startDecoder(first: Buffer): Decoder {
    // `deflate` is meant to be zlib-wrapped (RFC 9110) but some servers send it raw: the first
    // byte of a zlib stream says which.
    const enc = this.#encoding!;
    const decoder = enc === 'deflate' ? ((first[0]! & 0x0f) === 8 ? zlib.createInflate() : zlib.createInflateRaw()) : DECODERS[enc]!();
    decoder.on('data', (d: Buffer) => this.#decoded(d));
    decoder.on('error', () => {
      // Not what it said it was: compared by its raw bytes, with no field paths.
      this.#decodeError = true;
      this.#decoder = null;
      if (this.#ended) return;
      this.#kept.clear();
      this.#complete = false;
      if (this.#endRequested) this.#finish();
    });
    this.#decoder = decoder;
    return decoder;
  }

  #decoded(chunk: Buffer): void {
    if (this.#ended || this.#decodeError) return;
    this.#decodedBytes += chunk.length;
    if (this.#decodedBytes > this.limits.maxBytes) {
      this.#settleOnce({ kind: 'too_large' });
      return;
    }
    this.#hash.update(chunk);
    // Past the bound the kept copy is cut; the hash still covers every byte.
    if (this.#complete && !this.#kept.push(chunk)) this.#complete = false;
  }

  #finish(): void {
    if (this.#ended) return;
    const decodeError = this.#decodeError;
    const response: CapturedResponse = {
      status: this.#status,
      headers: this.#headers,
      body: decodeError ? Buffer.alloc(0) : this.#kept.bytes(),
      bodyComplete: !decodeError && this.#complete,
      bodyHash: (decodeError ? this.#rawHash! : this.#hash).digest('hex'),
      bodyBytes: decodeError ? this.#rawBytes : this.#decodedBytes,
      decodedFrom: decodeError ? null : this.#encoding,
      decodeError,
      durationMs: performance.now() - this.started,
    };
    this.#settleOnce({ kind: 'ok', response });
  }

  /** Returns false, for `data`'s callers: nothing more is wanted. */
  #settleOnce(end: CaptureEnd): false {
    if (this.#ended) return false;
    this.#ended = true;
    this.#decoder?.destroy();
    this.#decoder = null;
    this.#kept.clear();
    // Ended some other way: nothing to give up on later.
    if (end.kind !== 'timeout') this.#onGiveUp = null;
    this.#settle(end);
    return false;
  }
}

/** Hands one response to several taps (several comparing policies on one route). */
export function fanOutTap(taps: readonly ResponseTap[]): ResponseTap {
  if (taps.length === 1) return taps[0]!;
  return {
    head: (status, raw) => { for (const t of taps) t.head(status, raw); },
    data: (chunk) => {
      let more = false;
      for (const t of taps) more = t.data(chunk) || more;
      return more;
    },
    end: () => { for (const t of taps) t.end(); },
    fail: (kind) => { for (const t of taps) t.fail(kind); },
  };
}

function latin1(v: Buffer | string): string {
  return typeof v === 'string' ? v : v.toString('latin1');
}
