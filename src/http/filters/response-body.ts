import type { Transform } from 'node:stream';
import type { ResponseBodySink } from '../../upstream/forward-types';
import { type DownstreamResponse, writeBody } from '../downstream';

/**
 * The upstream's response body through the filters' transforms (the last filter's first, as
 * response phases run) and on to the client, with back-pressure both ways: the client's 'drain'
 * resumes the transforms' output, their 'drain' resumes the upstream. The upstream's trailers
 * follow the transformed body; a transform that fails, or a client that leaves, ends it all.
 */
export class TransformedBody implements ResponseBodySink {
  readonly #input: Transform;
  readonly #output: Transform;
  #trailers: Record<string, string | string[]> | null = null;
  #over = false;

  constructor(private readonly transforms: readonly Transform[], private readonly res: DownstreamResponse) {
    this.#input = transforms[0]!;
    this.#output = transforms[transforms.length - 1]!;
    for (let i = 0; i + 1 < transforms.length; i++) transforms[i]!.pipe(transforms[i + 1]!);
    for (const t of transforms) t.on('error', this.#fail);
    this.#output.on('data', this.#onData);
    this.#output.once('end', this.#onEnd);
    res.once('close', this.#release);
  }

  // implements ResponseBodySink
  write(chunk: Buffer, onDrain: () => void): boolean {
    if (this.#over) return true;
    if (this.#input.write(chunk)) return true;
    this.#input.once('drain', onDrain);
    return false;
  }

  end(trailers: Record<string, string | string[]> | null): void {
    if (this.#over) return;
    this.#trailers = trailers;
    this.#input.end();
  }

  readonly #onData = (chunk: Buffer): void => {
    if (writeBody(this.res, chunk)) return;
    this.#output.pause();
    this.res.once('drain', this.#resumeOutput);
  };

  readonly #resumeOutput = (): void => {
    if (!this.#over) this.#output.resume();
  };

  readonly #onEnd = (): void => {
    if (this.#over) return;
    try {
      if (this.#trailers !== null) this.res.addTrailers(this.#trailers);
      this.res.end();
    } catch {
      // Trailers Node refuses to write (an invalid name or value): the client's stream is reset.
      this.res.destroy();
    }
    this.#release();
  };

  /** A transform that fails mid-body leaves the client a broken body: reset it, as a failed upstream is. */
  readonly #fail = (): void => {
    if (this.#over) return;
    this.#release();
    this.res.destroy();
  };

  readonly #release = (): void => {
    if (this.#over) return;
    this.#over = true;
    this.res.off('close', this.#release);
    this.res.off('drain', this.#resumeOutput);
    for (const t of this.transforms) {
      t.off('data', this.#onData);
      t.destroy();
    }
  };
}
