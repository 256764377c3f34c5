import type { RequestFacts } from '../access-log/request-facts';
import type { DownstreamRequest, DownstreamResponse } from './downstream';
import type { ActiveFilters } from './filters/chain';
import type { RequestMarks } from './filters/types';
import type { HeaderMap } from './headers';

/** A header map as local replies take extra headers: one string per name. */
export function flatHeaders(headers: HeaderMap): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(headers)) {
    const v = headers[name];
    if (v !== undefined) out[name] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

/** One request as the connection manager's phases pass it along. */
export interface RequestContext {
  readonly req: DownstreamRequest;
  readonly res: DownstreamResponse;
  /** content-type application/grpc*: local replies are gRPC errors. */
  readonly grpc: boolean;
  readonly http2: boolean;
  /** performance.now() when the request's headers came. */
  readonly started: number;
  readonly marks: RequestMarks;
  /** The HTTP filters taking part in this request, once they are started. */
  filters: ActiveFilters | null;
  /** What the access log line is made of; null when the connection manager has none. */
  readonly facts: RequestFacts | null;
}
