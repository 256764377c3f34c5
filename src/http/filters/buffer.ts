import type { Readable } from 'node:stream';
import { type Ctx, type Pb, at, fail, wrapped } from '../../config/decode/common';
import type { Cell } from '../../stats/registry';
import { firstValue } from '../headers';
import type { FilterEnv, FilterRequest, FilterStream, HttpFilterKind, HttpFilterRunner, LocalReply } from './types';

// envoy.filters.http.buffer: the whole request body is read (up to max_request_bytes) before the
// request goes on, then sent upstream in one piece with its content-length; a larger body gets
// Envoy's 413.

const BUFFER = 'envoy.extensions.filters.http.buffer.v3.Buffer';
const BUFFER_PER_ROUTE = 'envoy.extensions.filters.http.buffer.v3.BufferPerRoute';

interface BufferSettings {
  readonly maxRequestBytes: number;
}

/** BufferPerRoute: off for the route, or its own limit. */
type BufferPerRoute = { readonly disabled: true } | { readonly disabled: false; readonly settings: BufferSettings };

function decodeBuffer(b: Pb, ctx: Ctx): BufferSettings {
  const max = Number(wrapped(b.max_request_bytes as Pb | undefined, 0));
  if (b.max_request_bytes === undefined) fail(at(ctx, 'max_request_bytes'), 'max_request_bytes is required');
  else if (max <= 0) fail(at(ctx, 'max_request_bytes'), 'must be greater than 0');
  return { maxRequestBytes: max };
}

function decodeBufferPerRoute(p: Pb, ctx: Ctx): BufferPerRoute {
  if (p.disabled === true) return { disabled: true };
  if (p.disabled === false) fail(at(ctx, 'disabled'), 'must be true when set');
  if (!p.buffer) {
    if (p.disabled === undefined) fail(ctx, 'one of disabled or buffer is required');
    return { disabled: true };
  }
  return { disabled: false, settings: decodeBuffer(p.buffer as Pb, at(ctx, 'buffer')) };
}

/** Envoy's answer to a body over the limit (its connection manager's, counted the same way). */
const TOO_LARGE: LocalReply = { status: 413, body: 'Payload Too Large', details: 'request_payload_too_large' };

class BufferRunner implements HttpFilterRunner<BufferPerRoute> {
  readonly #tooLarge: Cell;

  constructor(private readonly settings: BufferSettings, env: FilterEnv) {
    this.#tooLarge = env.stats.registry.family('counter', 'envoy_http_downstream_rq_too_large', 'Requests answered 413 because their body was over a buffer limit',
      ['envoy_http_conn_manager_prefix'], (l) => `http.${String(l.envoy_http_conn_manager_prefix)}.downstream_rq_too_large`)
      .labels({ envoy_http_conn_manager_prefix: env.statPrefix });
  }

  start(request: FilterRequest, perRoute: BufferPerRoute | undefined): FilterStream | null {
    if (perRoute?.disabled) return null;
    // Nothing to hold: the request goes on as it is (Envoy's filter continues on end of stream).
    if (!request.hasBody) return null;
    return new BufferStream(perRoute?.settings ?? this.settings, request, this.#tooLarge);
  }
}

/** One request's body, read whole. */
class BufferStream implements FilterStream {
  #stop: (() => void) | null = null;

  constructor(private readonly s: BufferSettings, private readonly request: FilterRequest, private readonly tooLarge: Cell) {}

  decodeBody(body: Readable): Promise<Buffer | LocalReply> {
    const max = this.s.maxRequestBytes;
    const declared = firstValue(this.request.headers['content-length']);
    // A declared length over the limit cannot fit: answered before reading any of it.
    if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > max) return Promise.resolve(this.#refuse());
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const stop = (): void => {
        this.#stop = null;
        body.off('data', onData);
        body.off('end', onEnd);
        body.off('error', onGone);
        body.off('close', onGone);
      };
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (size > max) {
          stop();
          body.pause();
          resolve(this.#refuse());
          return;
        }
        chunks.push(chunk);
      };
      const onEnd = (): void => {
        stop();
        const whole = Buffer.concat(chunks, size);
        const headers = this.request.headers;
        // Envoy sends the buffered body with its length, whatever framing the client used.
        headers['content-length'] = String(whole.length);
        delete headers['transfer-encoding'];
        resolve(whole);
      };
      // The client left mid-body: the chain is over (done() follows), the value is not read.
      const onGone = (): void => {
        stop();
        resolve(TOO_LARGE);
      };
      this.#stop = onGone;
      body.on('data', onData);
      body.once('end', onEnd);
      body.once('error', onGone);
      body.once('close', onGone);
    });
  }

  done(): void {
    this.#stop?.();
  }

  #refuse(): LocalReply {
    this.tooLarge.inc();
    return TOO_LARGE;
  }
}

export const bufferFilter: HttpFilterKind<BufferSettings, BufferPerRoute> = {
  configType: BUFFER,
  perRouteTypes: [BUFFER_PER_ROUTE],
  decode: decodeBuffer,
  decodePerRoute: decodeBufferPerRoute,
  build: (settings, env) => new BufferRunner(settings, env),
};
