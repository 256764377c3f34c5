import type { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import type { Runtime } from '../../runtime/runtime';
import type { Cell } from '../../stats/registry';
import { type HeaderMap, firstValue } from '../headers';
import { type EncodingDecision, type EncodingOffer, chooseEncoding } from './accept-encoding';
import {
  COMPRESSOR, COMPRESSOR_PER_ROUTE, type CompressorLibrary, type CompressorPerRoute, type CompressorSettings, decodeCompressor, decodeCompressorPerRoute,
} from './compressor-config';
import type { FilterEnv, FilterRequest, FilterStream, HttpFilterKind, HttpFilterRunner } from './types';

// envoy.filters.http.compressor: compresses upstream responses (gzip or brotli, with Node's zlib)
// for clients that accept the encoding, when the response is big enough, of a listed content
// type, not encoded already and not marked no-transform; adds Vary: Accept-Encoding, keeps weak
// ETags and drops strong ones. Several compressor filters in one chain share one choice of
// encoding per request, by the client's q-values. Local replies are not compressed.

/** The filter's counters, in Envoy's http.<stat_prefix>.compressor.<library name>.<library>. tree. */
interface CompressorStats {
  readonly compressed: Cell;
  readonly notCompressed: Cell;
  readonly totalUncompressedBytes: Cell;
  readonly totalCompressedBytes: Cell;
  readonly contentLengthTooSmall: Cell;
  readonly noAcceptHeader: Cell;
  readonly headerIdentity: Cell;
  readonly headerCompressorUsed: Cell;
  readonly headerCompressorOvershadowed: Cell;
  readonly headerWildcard: Cell;
  readonly headerNotValid: Cell;
  readonly notCompressedEtag: Cell;
  readonly requestNotCompressed: Cell;
}

const LABELS = ['envoy_http_conn_manager_prefix', 'compressor_library', 'compressor', 'direction'];

function compressorStats(env: FilterEnv, s: CompressorSettings): CompressorStats {
  const library = s.library.kind;
  const cell = (stat: string, direction: '' | 'response' | 'request', help: string): Cell =>
    env.stats.registry.family('counter', `envoy_http_compressor_${stat}`, help, LABELS,
      (l) => `http.${String(l.envoy_http_conn_manager_prefix)}.compressor.${String(l.compressor_library)}.${String(l.compressor)}.${l.direction ? `${String(l.direction)}.` : ''}${stat}`)
      .labels({ envoy_http_conn_manager_prefix: env.statPrefix, compressor_library: s.library.name, compressor: library, direction });
  // As in Envoy, the direction counters move under `response.` once response_direction_config is used.
  const dir = s.responseDirection ? 'response' : '';
  return {
    compressed: cell('compressed', dir, 'Bodies the compressor compressed, by direction'),
    notCompressed: cell('not_compressed', dir, 'Bodies the compressor left as they were, by direction'),
    totalUncompressedBytes: cell('total_uncompressed_bytes', dir, 'Bytes of the bodies it compressed, before'),
    totalCompressedBytes: cell('total_compressed_bytes', dir, 'Bytes of the bodies it compressed, after'),
    contentLengthTooSmall: cell('content_length_too_small', dir, 'Bodies under min_content_length'),
    noAcceptHeader: cell('no_accept_header', '', 'Requests without Accept-Encoding'),
    headerIdentity: cell('header_identity', '', 'Requests whose Accept-Encoding chose identity'),
    headerCompressorUsed: cell('header_compressor_used', '', 'Requests whose Accept-Encoding chose this compressor'),
    headerCompressorOvershadowed: cell('header_compressor_overshadowed', '', 'Requests whose Accept-Encoding chose another compressor of the chain'),
    headerWildcard: cell('header_wildcard', '', 'Requests whose Accept-Encoding chose *'),
    headerNotValid: cell('header_not_valid', '', 'Requests whose Accept-Encoding allowed no compressor'),
    notCompressedEtag: cell('not_compressed_etag', '', 'Responses not compressed because of their ETag'),
    requestNotCompressed: cell('not_compressed', 'request', 'Requests the compressor left as they were'),
  };
}

/** The compressor filters taking part in one request, in chain order, and their shared choice. */
interface RequestCompressors {
  readonly offers: EncodingOffer[];
  decision: EncodingDecision | null;
}

// Per request (the request object is the key, so an entry goes with its request).
const BY_REQUEST = new WeakMap<FilterRequest, RequestCompressors>();

class CompressorRunner implements HttpFilterRunner<CompressorPerRoute> {
  readonly stats: CompressorStats;
  readonly offer: EncodingOffer;

  constructor(readonly s: CompressorSettings, private readonly env: FilterEnv) {
    this.stats = compressorStats(env, s);
    this.offer = { encoding: s.encoding, chooseFirst: s.chooseFirst, contentTypes: s.contentTypes };
  }

  start(request: FilterRequest, perRoute: CompressorPerRoute | undefined): FilterStream {
    let shared = BY_REQUEST.get(request);
    if (!shared) BY_REQUEST.set(request, (shared = { offers: [], decision: null }));
    shared.offers.push(this.offer);
    return new CompressorStream(this, perRoute, request, shared);
  }

  get runtime(): Runtime {
    return this.env.runtime;
  }
}

/** One request's part: the request's Accept-Encoding read on the way in, the response compressed on the way out. */
class CompressorStream implements FilterStream {
  #acceptEncoding: string | null = null;
  #compressor: Transform | null = null;

  constructor(private readonly runner: CompressorRunner, private readonly perRoute: CompressorPerRoute | undefined,
    private readonly request: FilterRequest, private readonly shared: RequestCompressors) {}

  decodeHeaders(): undefined {
    const accept = this.request.headers['accept-encoding'];
    if (accept !== undefined) this.#acceptEncoding = Array.isArray(accept) ? accept.join(',') : accept;
    if (this.#enabled() && (this.perRoute?.removeAcceptEncoding ?? this.runner.s.removeAcceptEncoding)) delete this.request.headers['accept-encoding'];
    // Requests are never compressed (request_direction_config is refused); Envoy counts them so.
    this.runner.stats.requestNotCompressed.inc();
    return undefined;
  }

  encodeHeaders(_status: number, headers: HeaderMap, endStream: boolean): void {
    const { s, stats } = this.runner;
    // Envoy's order of checks, which decides which counters move.
    const bigEnough = this.#enabled() && this.#longEnough(headers);
    const compressible = bigEnough && this.#typeAllowed(headers) && !hasToken(headers['cache-control'], 'no-transform') &&
      this.#etagAllowed(headers) && headers['content-encoding'] === undefined;
    if (!endStream && this.#acceptAllowed(bigEnough, headers) && compressible) {
      dropStrongEtag(headers);
      delete headers['content-length'];
      headers['content-encoding'] = s.encoding;
      stats.compressed.inc();
      this.#compressor = createCompressor(s.library, stats);
    } else {
      stats.notCompressed.inc();
    }
    // Even when this client gets identity, a cache in front must know the answer varies.
    if (compressible) addVary(headers);
  }

  encodeBody(): Transform | null {
    return this.#compressor;
  }

  done(): void {
    this.#compressor?.destroy();
    this.#compressor = null;
  }

  #enabled(): boolean {
    const override = this.perRoute?.responseEnabled;
    if (override !== null && override !== undefined) return override;
    const flag = this.runner.s.enabled;
    const v = flag.runtimeKey ? this.runner.runtime.get(flag.runtimeKey)?.trim().toLowerCase() : undefined;
    return v === 'true' ? true : v === 'false' ? false : flag.defaultValue;
  }

  #longEnough(headers: HeaderMap): boolean {
    const length = firstValue(headers['content-length']);
    if (length === undefined) return true;
    if (/^\d+$/.test(length) && Number(length) >= this.runner.s.minContentLength) return true;
    this.runner.stats.contentLengthTooSmall.inc();
    return false;
  }

  #typeAllowed(headers: HeaderMap): boolean {
    const type = mediaType(headers);
    return type === '' || this.runner.s.contentTypes.has(type);
  }

  #etagAllowed(headers: HeaderMap): boolean {
    if (!this.runner.s.disableOnEtag || headers.etag === undefined) return true;
    this.runner.stats.notCompressedEtag.inc();
    return false;
  }

  /** Whether the chain's one choice for this request is this filter's encoding; the header_* counters say why. */
  #acceptAllowed(bigEnough: boolean, headers: HeaderMap): boolean {
    if (!bigEnough) return false;
    const { stats, s } = this.runner;
    if (this.#acceptEncoding === null) {
      stats.noAcceptHeader.inc();
      return false;
    }
    const decision = (this.shared.decision ??= chooseEncoding(this.#acceptEncoding, mediaType(headers), this.shared.offers));
    const mine = decision.encoding === s.encoding;
    if (decision.verdict === 'valid') (mine ? stats.headerCompressorUsed : stats.headerCompressorOvershadowed).inc();
    else if (decision.verdict === 'identity') stats.headerIdentity.inc();
    else if (decision.verdict === 'wildcard') stats.headerWildcard.inc();
    else stats.headerNotValid.inc();
    return mine;
  }
}

/** A zlib stream for one response, flushing after each upstream chunk (as Envoy does), its bytes counted. */
function createCompressor(lib: CompressorLibrary, stats: CompressorStats): Transform {
  const c = zlib.constants;
  const stream = lib.kind === 'gzip'
    ? zlib.createGzip({ level: lib.level, memLevel: lib.memLevel, windowBits: lib.windowBits, strategy: lib.strategy, chunkSize: lib.chunkSize, flush: c.Z_SYNC_FLUSH })
    : zlib.createBrotliCompress({
        chunkSize: lib.chunkSize,
        flush: c.BROTLI_OPERATION_FLUSH,
        params: {
          [c.BROTLI_PARAM_QUALITY]: lib.quality,
          [c.BROTLI_PARAM_MODE]: lib.mode,
          [c.BROTLI_PARAM_LGWIN]: lib.windowBits,
          [c.BROTLI_PARAM_LGBLOCK]: lib.inputBlockBits,
          [c.BROTLI_PARAM_DISABLE_LITERAL_CONTEXT_MODELING]: lib.disableLiteralContextModeling ? 1 : 0,
        },
      });
  let counted = 0;
  const countInput = (): void => {
    stats.totalUncompressedBytes.inc(stream.bytesWritten - counted);
    counted = stream.bytesWritten;
  };
  stream.on('data', (chunk: Buffer) => {
    stats.totalCompressedBytes.inc(chunk.length);
    countInput();
  });
  stream.once('close', countInput);
  return stream;
}

/** The response's media type, lowercase, without parameters; '' without a content-type. */
function mediaType(headers: HeaderMap): string {
  const v = firstValue(headers['content-type']);
  if (v === undefined) return '';
  const semi = v.indexOf(';');
  return (semi < 0 ? v : v.slice(0, semi)).trim().toLowerCase();
}

function hasToken(v: string | string[] | undefined, token: string): boolean {
  if (v === undefined) return false;
  return (Array.isArray(v) ? v.join(',') : v).split(',').some((t) => t.trim().toLowerCase() === token);
}

function addVary(headers: HeaderMap): void {
  const vary = headers.vary;
  if (vary === undefined) headers.vary = 'Accept-Encoding';
  else if (!hasToken(vary, 'accept-encoding')) headers.vary = `${Array.isArray(vary) ? vary.join(', ') : vary}, Accept-Encoding`;
}

/** A strong ETag names the bytes, which change; a weak one names the content, which does not. */
function dropStrongEtag(headers: HeaderMap): void {
  const etag = firstValue(headers.etag);
  if (etag !== undefined && etag.length > 2 && !/^[wW]\//.test(etag)) delete headers.etag;
}

export const compressorFilter: HttpFilterKind<CompressorSettings, CompressorPerRoute> = {
  configType: COMPRESSOR,
  perRouteTypes: [COMPRESSOR_PER_ROUTE],
  decode: decodeCompressor,
  decodePerRoute: decodeCompressorPerRoute,
  build: (settings, env) => new CompressorRunner(settings, env),
};
