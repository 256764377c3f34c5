import type { PerFilterConfig } from '../../config/filter-model';
import type { HttpFilter } from '../../config/model';
import type { CompiledRoute } from '../../router/route-table';
import type { HeaderMap } from '../headers';
import { filterKind } from './registry';
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

  /** The filters' parts in one request, or null when none of them takes part. */
  start(request: FilterRequest): ActiveFilters | null {
    let streams: FilterStream[] | null = null;
    for (const e of this.#entries) {
      const perRoute = perRouteConfig(request.route, e.name);
      if (perRoute?.disabled || (e.disabledByDefault && perRoute === undefined)) continue;
      const stream = e.runner.start(request, perRoute?.settings);
      if (stream) (streams ??= []).push(stream);
    }
    return streams ? new ActiveFilters(streams) : null;
  }
}

/** A local reply and how far into the chain it was decided (later filters never saw the request). */
export interface FilterReply {
  readonly reply: LocalReply;
  readonly index: number;
}

/** The filters taking part in one request, in chain order. */
export class ActiveFilters {
  readonly hasEncoders: boolean;
  #done = false;

  constructor(private readonly streams: readonly FilterStream[]) {
    this.hasEncoders = streams.some((s) => s.encodeHeaders !== undefined);
  }

  /**
   * Request headers through every filter in order. Synchronous while the filters are (the usual
   * case); a filter that waits makes the rest of the chain wait for it.
   */
  decodeHeaders(from = 0): FilterReply | null | Promise<FilterReply | null> {
    for (let i = from; i < this.streams.length; i++) {
      const result = this.streams[i]!.decodeHeaders?.();
      if (result instanceof Promise) return result.then((r) => (r ? { reply: r, index: i } : this.#done ? null : this.decodeHeaders(i + 1)));
      if (result) return { reply: result, index: i };
    }
    return null;
  }

  /** Response headers through the filters before `upTo` (all by default), last one first. */
  encodeHeaders(status: number, headers: HeaderMap, upTo = this.streams.length): void {
    for (let i = Math.min(upTo, this.streams.length) - 1; i >= 0; i--) this.streams[i]!.encodeHeaders?.(status, headers);
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

function typeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

export type { DecodeResult };
