import { PassThrough, type Readable } from 'node:stream';
import type { ShadowStream } from '../shadow/writer';
import type { DownstreamRequest } from './downstream';
import { trailersOf } from './request-head';

/**
 * Sends the client's body to the primary with its back-pressure, and to each shadow without:
 * shadows take chunks as they come and drop themselves when they fall too far behind.
 */
export function teeBody(req: DownstreamRequest, shadows: readonly ShadowStream[]): Readable {
  const primary = new PassThrough();
  req.on('data', (chunk: Buffer) => {
    for (const s of shadows) s.write(chunk);
  });
  req.once('end', () => {
    const trailers = trailersOf(req);
    for (const s of shadows) s.end(trailers);
  });
  req.pipe(primary);
  return primary;
}

/** A body read whole by a filter, to the primary (as a stream) and to each shadow at once. */
export function replayBody(body: Buffer, shadows: readonly ShadowStream[], req: DownstreamRequest): Readable {
  const trailers = trailersOf(req);
  for (const s of shadows) {
    s.write(body);
    s.end(trailers);
  }
  const primary = new PassThrough();
  primary.end(body);
  return primary;
}

