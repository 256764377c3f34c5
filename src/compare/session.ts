import { type CaptureEnd, ResponseCapture } from './capture';
import type { ComparePolicy } from './compare-policy';
import type { CapturedResponse, CompareOutcome } from './types';

/** The request a comparison is about, as the shadows were sent it. */
export interface ComparedRequestLine {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * One compared request: the primary's response and the candidate's (and the reference's), each
 * captured as it streams; once all have ended, or the comparison's timeout has passed, one
 * outcome. The client is long served by then: nothing here is on its path.
 */
export class CompareSession {
  readonly primary: ResponseCapture;
  readonly candidate: ResponseCapture;
  readonly reference: ResponseCapture | null;
  #timer: NodeJS.Timeout | null = null;
  #over = false;
  #started = false;

  constructor(
    private readonly policy: ComparePolicy,
    readonly endpoint: string,
    hasReference: boolean,
    started: number,
  ) {
    const limits = { maxCaptureBytes: policy.config.body.maxCaptureBytes, maxBytes: policy.config.body.maxBytes };
    this.primary = new ResponseCapture(limits, started);
    this.candidate = new ResponseCapture(limits, started);
    this.reference = hasReference ? new ResponseCapture(limits, started) : null;
  }

  /** The shadows are on their way with `request`: wait for every response, bounded by the timeout. */
  start(request: ComparedRequestLine): void {
    this.#started = true;
    this.#timer = setTimeout(() => {
      for (const c of this.#captures()) c.giveUp();
    }, this.policy.config.timeoutMs);
    this.#timer.unref();
    void Promise.all(this.#captures().map((c) => c.done)).then((ends) => this.#settle(request, ends));
  }

  /** The shadow was not sent after all (a hook or a budget said no): no comparison, no outcome. */
  cancel(): void {
    if (this.#over || this.#started) return;
    this.#over = true;
    this.#stop();
    this.policy.released();
  }

  /** An isolation bound dropped the shadow before it was sent: counted as skipped_limit. */
  skip(): void {
    if (this.#over) return;
    this.#over = true;
    this.#stop();
    this.policy.finished('skipped_limit');
  }

  #captures(): ResponseCapture[] {
    return this.reference ? [this.primary, this.candidate, this.reference] : [this.primary, this.candidate];
  }

  #settle(request: ComparedRequestLine, ends: readonly CaptureEnd[]): void {
    if (this.#over) return;
    this.#over = true;
    this.#stop();
    const failed = failure(ends);
    if (failed !== null) {
      this.policy.finished(failed);
      return;
    }
    const [primary, candidate, reference] = ends.map((e) => (e as Extract<CaptureEnd, { kind: 'ok' }>).response) as [CapturedResponse, CapturedResponse, CapturedResponse?];
    // Diffing is CPU work: after the I/O callbacks that ended the responses, never inside them.
    setImmediate(() => this.policy.compare(this.endpoint, request, primary, candidate, reference ?? null));
  }

  #stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    // Whatever still streams is no longer watched.
    for (const c of this.#captures()) c.fail('dropped');
  }
}

/** The outcome when some leg has no comparable response; null when all three answered. */
function failure(ends: readonly CaptureEnd[]): CompareOutcome | null {
  const [primary, ...shadows] = ends;
  if (primary!.kind === 'error' || primary!.kind === 'timeout' || primary!.kind === 'dropped') return 'primary_error';
  if (shadows.some((e) => e.kind === 'timeout')) return 'shadow_timeout';
  if (shadows.some((e) => e.kind === 'error')) return 'shadow_error';
  // An isolation bound (shadows in flight, buffered bytes) dropped a shadow: counted there too.
  if (shadows.some((e) => e.kind === 'dropped')) return 'skipped_limit';
  if (ends.some((e) => e.kind === 'too_large')) return 'too_large';
  return null;
}
