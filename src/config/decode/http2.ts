import type { Http2Settings } from '../transport-model';
import { type Ctx, type Pb, at, fail, wrapped } from './common';

/** Envoy's defaults for core.v3.Http2ProtocolOptions (its safe defaults, not nghttp2's 64 KiB windows). */
export const HTTP2_DEFAULTS: Http2Settings = {
  maxConcurrentStreams: 1024,
  initialStreamWindowSize: 16 * 1024 * 1024,
  initialConnectionWindowSize: 24 * 1024 * 1024,
};

const MAX_WINDOW = 2 ** 31 - 1;

/** core.v3.Http2ProtocolOptions with the proto's bounds; absent: the defaults. */
export function http2Settings(o: Pb | undefined, ctx: Ctx): Http2Settings {
  if (!o) return HTTP2_DEFAULTS;
  const maxConcurrentStreams = wrapped(o.max_concurrent_streams, HTTP2_DEFAULTS.maxConcurrentStreams);
  const initialStreamWindowSize = wrapped(o.initial_stream_window_size, HTTP2_DEFAULTS.initialStreamWindowSize);
  const initialConnectionWindowSize = wrapped(o.initial_connection_window_size, HTTP2_DEFAULTS.initialConnectionWindowSize);
  if (maxConcurrentStreams < 1 || maxConcurrentStreams > MAX_WINDOW) fail(at(ctx, 'max_concurrent_streams'), `must be between 1 and ${MAX_WINDOW}`);
  if (initialStreamWindowSize < 65535 || initialStreamWindowSize > MAX_WINDOW) fail(at(ctx, 'initial_stream_window_size'), `must be between 65535 and ${MAX_WINDOW}`);
  if (initialConnectionWindowSize < 65535 || initialConnectionWindowSize > MAX_WINDOW) fail(at(ctx, 'initial_connection_window_size'), `must be between 65535 and ${MAX_WINDOW}`);
  return { maxConcurrentStreams, initialStreamWindowSize, initialConnectionWindowSize };
}
