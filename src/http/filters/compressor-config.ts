import { type Ctx, type Pb, at, fail, typeUrlName, unpackAny, wrapped } from '../../config/decode/common';

// The compressor filter's config (envoy.extensions.filters.http.compressor.v3.Compressor and
// CompressorPerRoute) and its libraries (gzip, brotli), decoded into plain settings, with
// Envoy's defaults and validation rules. zstd is refused: Node 20's zlib has none.

export const COMPRESSOR = 'envoy.extensions.filters.http.compressor.v3.Compressor';
export const COMPRESSOR_PER_ROUTE = 'envoy.extensions.filters.http.compressor.v3.CompressorPerRoute';
const GZIP = 'envoy.extensions.compression.gzip.compressor.v3.Gzip';
const BROTLI = 'envoy.extensions.compression.brotli.compressor.v3.Brotli';
const ZSTD = 'envoy.extensions.compression.zstd.compressor.v3.Zstd';

/** Envoy's RuntimeFeatureFlag: `defaultValue` unless the runtime key holds "true" or "false". */
export interface FeatureFlag {
  readonly defaultValue: boolean;
  /** '' when there is none. */
  readonly runtimeKey: string;
}

/** zlib's deflate settings with a gzip wrapper, Envoy's defaults filled in. */
export interface GzipLibrary {
  readonly kind: 'gzip';
  /** zlib's level: -1 (zlib's default, 6) or 1–9. */
  readonly level: number;
  readonly memLevel: number;
  readonly windowBits: number;
  /** zlib's strategy constant: 0 default, 1 filtered, 2 Huffman only, 3 RLE, 4 fixed. */
  readonly strategy: number;
  readonly chunkSize: number;
}

export interface BrotliLibrary {
  readonly kind: 'brotli';
  readonly quality: number;
  /** Brotli's mode constant: 0 generic, 1 text, 2 font. */
  readonly mode: number;
  readonly windowBits: number;
  readonly inputBlockBits: number;
  readonly chunkSize: number;
  readonly disableLiteralContextModeling: boolean;
}

export type CompressorLibrary = (GzipLibrary | BrotliLibrary) & {
  /** compressor_library.name: part of the filter's stat names. */
  readonly name: string;
};

export interface CompressorSettings {
  readonly library: CompressorLibrary;
  /** The Content-Encoding this filter produces. */
  readonly encoding: 'gzip' | 'br';
  readonly enabled: FeatureFlag;
  readonly minContentLength: number;
  /** Lowercase media types that are compressed. */
  readonly contentTypes: ReadonlySet<string>;
  readonly disableOnEtag: boolean;
  readonly removeAcceptEncoding: boolean;
  /** response_direction_config is set: Envoy's direction counters then sit under `response.`. */
  readonly responseDirection: boolean;
  readonly chooseFirst: boolean;
}

/** CompressorPerRoute: null leaves the filter's own setting. */
export interface CompressorPerRoute {
  readonly responseEnabled: boolean | null;
  readonly removeAcceptEncoding: boolean | null;
}

/** Envoy's default content types, when content_type lists none. */
const DEFAULT_CONTENT_TYPES: readonly string[] = [
  'text/html', 'text/plain', 'text/css', 'application/javascript', 'application/x-javascript', 'text/javascript',
  'text/x-javascript', 'text/ecmascript', 'text/js', 'text/jscript', 'text/x-js', 'application/ecmascript',
  'application/x-json', 'application/xml', 'application/json', 'image/svg+xml', 'text/xml', 'application/xhtml+xml',
  'application/grpc-web', 'application/grpc-web+proto',
];

const DEFAULT_MIN_CONTENT_LENGTH = 30;

export function decodeCompressor(c: Pb, ctx: Ctx): CompressorSettings {
  const library = decodeLibrary(c.compressor_library as Pb | undefined, at(ctx, 'compressor_library'));
  if (c.request_direction_config) fail(at(ctx, 'request_direction_config'), 'request compression is not supported by sidemirror');
  const direction = c.response_direction_config as Pb | undefined;
  // Without response_direction_config, Envoy reads the older top-level fields instead.
  const common = (direction ? direction.common_config : { min_content_length: c.content_length, content_type: c.content_type, enabled: c.runtime_enabled }) as Pb | undefined;
  const cctx = direction ? at(at(ctx, 'response_direction_config'), 'common_config') : ctx;
  const minLength = Number(wrapped(common?.min_content_length as Pb | undefined, 0));
  const types = ((common?.content_type as string[] | undefined) ?? []).map((t) => t.trim().toLowerCase());
  return {
    library,
    encoding: library.kind === 'gzip' ? 'gzip' : 'br',
    enabled: decodeFeatureFlag(common?.enabled as Pb | undefined, at(cctx, direction ? 'enabled' : 'runtime_enabled')),
    minContentLength: minLength > 0 ? minLength : DEFAULT_MIN_CONTENT_LENGTH,
    contentTypes: new Set(types.length > 0 ? types : DEFAULT_CONTENT_TYPES),
    disableOnEtag: Boolean(direction ? direction.disable_on_etag_header : c.disable_on_etag_header),
    removeAcceptEncoding: Boolean(direction ? direction.remove_accept_encoding_header : c.remove_accept_encoding_header),
    responseDirection: direction !== undefined,
    chooseFirst: Boolean(c.choose_first),
  };
}

export function decodeCompressorPerRoute(p: Pb, ctx: Ctx): CompressorPerRoute {
  if (p.disabled !== undefined) {
    if (p.disabled !== true) fail(at(ctx, 'disabled'), 'must be true when set');
    return { responseEnabled: false, removeAcceptEncoding: null };
  }
  if (!p.overrides) {
    fail(ctx, 'one of disabled or overrides is required');
    return { responseEnabled: null, removeAcceptEncoding: null };
  }
  const response = (p.overrides as Pb).response_direction_config as Pb | undefined;
  // As in Envoy: overrides.response_direction_config, even empty, turns response compression on.
  if (!response) return { responseEnabled: null, removeAcceptEncoding: null };
  const remove = response.remove_accept_encoding_header as Pb | undefined;
  return { responseEnabled: true, removeAcceptEncoding: remove === undefined ? null : wrapped(remove, false) };
}

function decodeFeatureFlag(f: Pb | undefined, ctx: Ctx): FeatureFlag {
  if (!f) return { defaultValue: true, runtimeKey: '' };
  if (f.default_value === undefined) fail(at(ctx, 'default_value'), 'default_value is required');
  const runtimeKey = String(f.runtime_key ?? '');
  if (runtimeKey === '') fail(at(ctx, 'runtime_key'), 'runtime_key is required');
  return { defaultValue: wrapped(f.default_value as Pb | undefined, true), runtimeKey };
}

const UNSUPPORTED_LIBRARY: CompressorLibrary = { kind: 'gzip', name: '', level: -1, memLevel: 5, windowBits: 12, strategy: 0, chunkSize: 4096 };

function decodeLibrary(lib: Pb | undefined, ctx: Ctx): CompressorLibrary {
  if (!lib) {
    fail(ctx, 'compressor_library is required');
    return UNSUPPORTED_LIBRARY;
  }
  const name = String(lib.name ?? '');
  if (name === '') fail(at(ctx, 'name'), 'name is required');
  const tctx = at(ctx, 'typed_config');
  const config = unpackAny(lib.typed_config as Pb | undefined, tctx);
  if (!config) {
    if (!lib.typed_config) fail(tctx, 'typed_config is required');
    return UNSUPPORTED_LIBRARY;
  }
  const type = typeUrlName(config.typeUrl);
  const v = config.value as Pb;
  if (type === GZIP) return { name, ...decodeGzip(v, tctx) };
  if (type === BROTLI) return { name, ...decodeBrotli(v, tctx) };
  if (type === ZSTD) fail(tctx, 'zstd compression is not supported by sidemirror: Node 20\'s zlib has no zstd; use gzip or brotli');
  else fail(tctx, `"${config.typeUrl}" is not a compressor library sidemirror supports (gzip, brotli)`);
  return UNSUPPORTED_LIBRARY;
}

/**
 * chunk_size is the size of each output buffer, which changes no byte of the output. Unset, it is
 * Node's default rather than Envoy's 4 KiB: each buffer is a round trip to zlib's thread pool.
 */
const NODE_CHUNK_SIZE = 16 * 1024;

const GZIP_LEVELS: Record<string, number> = {
  DEFAULT_COMPRESSION: -1, BEST_SPEED: 1, COMPRESSION_LEVEL_1: 1, COMPRESSION_LEVEL_2: 2, COMPRESSION_LEVEL_3: 3, COMPRESSION_LEVEL_4: 4,
  COMPRESSION_LEVEL_5: 5, COMPRESSION_LEVEL_6: 6, COMPRESSION_LEVEL_7: 7, COMPRESSION_LEVEL_8: 8, COMPRESSION_LEVEL_9: 9, BEST_COMPRESSION: 9,
};
const GZIP_STRATEGIES: Record<string, number> = { DEFAULT_STRATEGY: 0, FILTERED: 1, HUFFMAN_ONLY: 2, RLE: 3, FIXED: 4 };
const BROTLI_MODES: Record<string, number> = { DEFAULT: 0, GENERIC: 0, TEXT: 1, FONT: 2 };

function decodeGzip(g: Pb, ctx: Ctx): GzipLibrary {
  return {
    kind: 'gzip',
    level: enumValue(g.compression_level, GZIP_LEVELS, 'DEFAULT_COMPRESSION', at(ctx, 'compression_level')),
    memLevel: ranged(g, 'memory_level', 5, 1, 9, ctx),
    windowBits: ranged(g, 'window_bits', 12, 9, 15, ctx),
    strategy: enumValue(g.compression_strategy, GZIP_STRATEGIES, 'DEFAULT_STRATEGY', at(ctx, 'compression_strategy')),
    chunkSize: ranged(g, 'chunk_size', NODE_CHUNK_SIZE, 4096, 65536, ctx),
  };
}

function decodeBrotli(b: Pb, ctx: Ctx): BrotliLibrary {
  return {
    kind: 'brotli',
    quality: ranged(b, 'quality', 3, 0, 11, ctx),
    mode: enumValue(b.encoder_mode, BROTLI_MODES, 'DEFAULT', at(ctx, 'encoder_mode')),
    windowBits: ranged(b, 'window_bits', 18, 10, 24, ctx),
    inputBlockBits: ranged(b, 'input_block_bits', 24, 16, 24, ctx),
    chunkSize: ranged(b, 'chunk_size', NODE_CHUNK_SIZE, 4096, 65536, ctx),
    disableLiteralContextModeling: Boolean(b.disable_literal_context_modeling),
  };
}

/** A UInt32Value with Envoy's default and its validation range. */
function ranged(obj: Pb, field: string, fallback: number, min: number, max: number, ctx: Ctx): number {
  const v = Number(wrapped(obj[field] as Pb | undefined, fallback));
  if (v < min || v > max) fail(at(ctx, field), `must be between ${min} and ${max}`);
  return v;
}

function enumValue(v: unknown, values: Record<string, number>, fallback: string, ctx: Ctx): number {
  const name = v === undefined ? fallback : String(v);
  const n = values[name];
  if (n === undefined) {
    fail(ctx, `unknown value ${name}`);
    return values[fallback]!;
  }
  return n;
}
