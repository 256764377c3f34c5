import { PassThrough, type Readable, type Transform } from 'node:stream';
import type { PerFilterConfig } from '../../config/filter-model';
import type { HttpFilter } from '../../config/model';
import type { CompiledRoute } from '../../router/route-table';
import type { DownstreamResponse } from '../downstream';
import type { HeaderMap } from '../headers';
import { filterKind } from './registry';
import { TransformedBody } from './response-body';
import type { DecodeResult, FilterEnv, FilterRequest, FilterStream, HttpFilterRunner, LocalReply } from './types';

interface Entry {
  readonly name: string;
  readonly runner: HttpFilterRunner;
  /** http_filters[].disabled: off unless a route's typed_per_filter_config turns it on. */
  readonly disabledByDefault: boolean;
}

/**
 * A connection manager's HTTP filters (the router and mirror filter aside), built once per
 * connection manager. A request gets an ActiveFilters holding only the filters that have
 * something to do for it; with none, it costs the request nothing.
 */
export class HttpFilterChain {
  readonly #entries: readonly Entry[];

  constructor(filters: readonly HttpFilter[], env: Omit<FilterEnv, 'filterName'>) {
    const entries: Entry[] = [];
    for (const f of filters) {
      const kind = f.config ? filterKind(typeName(f.config.typeUrl)) : undefined;
      // The router, the mirror filter, and optional filters sidemirror does not know.
      if (!kind) continue;
      entries.push({ name: f.name, runner: kind.build(f.settings, { ...env, filterName: f.name }), disabledByDefault: f.disabled });
    }
    this.#entries = entries;
  }

  get empty(): boolean {
    return this.#entries.length === 0;
  }

  /**
   * The filters' parts in one request, or null when none of them takes part. `body`: the
   * request's body stream, for filters that read it whole (null when the request has none).
   */
  start(request: FilterRequest, body: Readable | null = null): ActiveFilters | null {
    let streams: FilterStream[] | null = null;
    for (const e of this.#entries) {
      const perRoute = perRouteConfig(request.route, e.name);
      if (perRoute?.disabled || (e.disabledByDefault && perRoute === undefined)) continue;
      const stream = e.runner.start(request, perRoute?.settings);
      if (stream) (streams ??= []).push(stream);
    }
    return streams ? new ActiveFilters(streams, request.method, body) : null;
  }
}

/** A local reply and how far into the chain it was decided (later filters never saw the request). */
export interface FilterReply {
  readonly reply: LocalReply;
  readonly index: number;
  /** The filter answered from its body phase: it stopped reading a body the client may still be sending. */
  readonly fromBody?: boolean;
}

/** The filters taking part in one request, in chain order. */
export class ActiveFilters {
  readonly hasEncoders: boolean;
  /** Some filter may rewrite the response body (the connection manager then asks encodeBody). */
  readonly hasBodyEncoders: boolean;
  /** The whole request body, once a filter has read it (it then replaces the client's stream). */
  body: Buffer | null = null;
  #done = false;

  constructor(private readonly streams: readonly FilterStream[], private readonly method: string, private readonly bodyStream: Readable | null) {
    this.hasEncoders = streams.some((s) => s.encodeHeaders !== undefined);
    this.hasBodyEncoders = streams.some((s) => s.encodeBody !== undefined);
  }

  /**
   * Request headers through every filter in order, and the body through a filter that reads it
   * whole right after its headers (as Envoy's buffer filter stops the chain until the body is in).
   * Synchronous while the filters are (the usual case); a filter that waits makes the rest of the
   * chain wait for it.
   */
  decodeHeaders(from = 0): FilterReply | null | Promise<FilterReply | null> {
    for (let i = from; i < this.streams.length; i++) {
      const result = this.streams[i]!.decodeHeaders?.();
      if (result instanceof Promise) return result.then((r) => (r ? { reply: r, index: i } : this.#done ? null : this.#decodeBody(i)));
      if (result) return { reply: result, index: i };
      if (this.streams[i]!.decodeBody && this.bodyStream) return this.#decodeBody(i);
    }
    return null;
  }

  /** Filter `i`'s body phase (when it has one), then the filters after it. */
  #decodeBody(i: number): FilterReply | null | Promise<FilterReply | null> {
    const stream = this.streams[i]!;
    if (!stream.decodeBody || !this.bodyStream) return this.decodeHeaders(i + 1);
    const body = this.body === null ? this.bodyStream : replay(this.body);
    return stream.decodeBody(body).then((r) => {
      if (this.#done) return null;
      if (!Buffer.isBuffer(r)) return { reply: r, index: i, fromBody: true };
      this.body = r;
      return this.decodeHeaders(i + 1);
    });
  }

  /** Response headers through the filters before `upTo` (all by default), last one first; no body follows them. */
  encodeHeaders(status: number, headers: HeaderMap, upTo = this.streams.length): void {
    for (let i = Math.min(upTo, this.streams.length) - 1; i >= 0; i--) this.streams[i]!.encodeHeaders?.(status, headers, true);
  }

  /** The upstream's response headers, last filter first; its body follows unless the response cannot have one. */
  encodeUpstreamHeaders(status: number, headers: HeaderMap): void {
    const endStream = this.method === 'HEAD' || status === 204 || status === 304;
    for (let i = this.streams.length - 1; i >= 0; i--) this.streams[i]!.encodeHeaders?.(status, headers, endStream);
  }

  /** After encodeUpstreamHeaders: where the body goes when some filter rewrites it, else null (straight to the client). */
  encodeBody(res: DownstreamResponse): TransformedBody | null {
    let transforms: Transform[] | null = null;
    for (let i = this.streams.length - 1; i >= 0; i--) {
      const t = this.streams[i]!.encodeBody?.() ?? null;
      if (t !== null) (transforms ??= []).push(t);
    }
    return transforms === null ? null : new TransformedBody(transforms, res);
  }

  /** The request is over; a filter still waiting in decodeHeaders stops the chain there. */
  done(): void {
    if (this.#done) return;
    this.#done = true;
    for (const s of this.streams) s.done?.();
  }

  get finished(): boolean {
    return this.#done;
  }
}

/** Envoy's most specific per-route config: the route's, else its virtual host's, else the route configuration's. */
function perRouteConfig(route: CompiledRoute | null, name: string): PerFilterConfig | undefined {
  if (!route) return undefined;
  return route.route.perFilter.get(name) ?? route.vhost.perFilter.get(name) ?? route.config.perFilter.get(name);
}

/** A body already read whole, as a stream again for the next filter that reads it. */
function replay(body: Buffer): Readable {
  const stream = new PassThrough();
  stream.end(body);
  return stream;
}

function typeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

export type { DecodeResult };
