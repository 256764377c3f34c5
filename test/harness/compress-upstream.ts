import { createHash } from 'node:crypto';
import type * as http from 'node:http';
import * as zlib from 'node:zlib';
import { type Upstream, startUpstream } from './upstream';

// An upstream for compressor tests: each path answers a kind of response the compressor must
// compress or leave alone, and the big ones are written with back-pressure, so that a test can
// see how far the upstream got while the client reads nothing.

type Json = Record<string, unknown>;
const COMPRESSOR = 'type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor';
const GZIP = 'type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip';
const BROTLI = 'type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli';

/** A compressor filter entry with response_direction_config (Envoy's current spelling) and `config` over it. */
export const compressor = (library: Json, config: Json = {}, name = 'envoy.filters.http.compressor'): Json => ({
  name, typed_config: { '@type': COMPRESSOR, response_direction_config: {}, compressor_library: library, ...config },
});
/** compressor_library entries named "text", as the stat names in the tests expect. */
export const gzipLib = (extra: Json = {}): Json => ({ name: 'text', typed_config: { '@type': GZIP, ...extra } });
export const brotliLib = (extra: Json = {}): Json => ({ name: 'text', typed_config: { '@type': BROTLI, ...extra } });

/** Compressible text, the same for a given size: numbered lines of words. */
export function textBody(size: number): Buffer {
  const words = ['mirror', 'shadow', 'primary', 'cluster', 'route', 'envoy', 'sidecar', 'listener', 'filter', 'upstream'];
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const line = `${i} ${words[i % 10]} ${words[(i * 7) % 10]} ${words[(i * 3) % 10]} ${(i * 2654435761) % 1000003}\n`;
    parts.push(line);
    length += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
}

/** Bytes that do not compress, the same for a given size: xorshift32 output. */
export function noiseBody(size: number): Buffer {
  const out = Buffer.alloc(size + 3);
  let x = 2463534242;
  for (let off = 0; off < size; off += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, off);
  }
  return out.subarray(0, size);
}

export interface CompressUpstream extends Upstream {
  /** Bytes the current /noise response has written so far. */
  readonly noiseWritten: () => number;
  /** Lets the held /stream response send its second half and end. */
  readonly release: () => void;
}

/** Writes `body` in `chunk`-sized pieces, waiting for 'drain' when the socket is full. */
async function writeAll(res: http.ServerResponse, body: Buffer, chunk: number, progress?: (n: number) => void): Promise<void> {
  for (let off = 0; off < body.length && !res.destroyed; off += chunk) {
    const piece = body.subarray(off, off + chunk);
    const more = res.write(piece);
    progress?.(off + piece.length);
    if (!more) await new Promise<void>((resolve) => {
      const done = (): void => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }
}

export async function startCompressUpstream(): Promise<CompressUpstream> {
  let noise = 0;
  let release: (() => void) | null = null;
  const respond = (req: { url: string }, res: http.ServerResponse): void => {
    const url = new URL(req.url, 'http://x');
    const size = Number(url.searchParams.get('size') ?? 4096);
    const type = url.searchParams.get('type') ?? 'text/plain';
    const body = textBody(size);
    switch (url.pathname) {
      case '/text':
        res.writeHead(200, { 'content-type': type, 'content-length': body.length, ...headerParams(url) });
        res.end(body);
        return;
      case '/chunked':
        res.writeHead(200, { 'content-type': type });
        void writeAll(res, body, 16 * 1024).then(() => res.end());
        return;
      case '/encoded': {
        const gz = zlib.gzipSync(body);
        res.writeHead(200, { 'content-type': type, 'content-encoding': 'gzip', 'content-length': gz.length });
        res.end(gz);
        return;
      }
      case '/trailers':
        res.writeHead(200, { 'content-type': type, trailer: 'x-checksum' });
        res.write(body);
        res.addTrailers({ 'x-checksum': createHash('sha256').update(body).digest('hex') });
        res.end();
        return;
      case '/stream':
        // The first half now; the rest only once the test has seen the first half arrive.
        res.writeHead(200, { 'content-type': type });
        res.write(body.subarray(0, size / 2));
        release = () => res.end(body.subarray(size / 2));
        return;
      case '/noise': {
        noise = 0;
        res.writeHead(200, { 'content-type': type });
        void writeAll(res, noiseBody(size), 64 * 1024, (n) => (noise = n)).then(() => res.end());
        return;
      }
      default:
        res.writeHead(404);
        res.end();
    }
  };
  const upstream = await startUpstream({ respond });
  return { ...upstream, noiseWritten: () => noise, release: () => release?.() };
}

/** Response headers the test asks for in the query: ?h=name:value&h=… */
function headerParams(url: URL): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of url.searchParams.getAll('h')) {
    const colon = h.indexOf(':');
    out[h.slice(0, colon)] = h.slice(colon + 1);
  }
  return out;
}
