import type { ShadowCounters, ShadowDropReason, ShadowFailReason, ShadowSkipReason } from '../stats/scopes';

// How each shadow of one request ended, for whoever asked to hear it (the shadow access logger).
// A shadow reports its ending to its counters exactly once; this wraps the counters of one
// shadow so that the same call also tells the request's listener, with the status, the host and
// how long the shadow took.

export type ShadowOutcome = 'succeeded' | 'failed' | 'timed_out' | 'dropped' | 'skipped';

export interface ShadowEnd {
  /** The mirror cluster, or the name the shadow is counted under when none was found. */
  readonly cluster: string;
  /** The extended policy, or null for Envoy's request_mirror_policies. */
  readonly policy: string | null;
  readonly outcome: ShadowOutcome;
  /** Why it failed, was dropped or skipped; the status class (2xx…) when it succeeded. */
  readonly reason: string;
  /** The shadow's response status; 0 when none came. */
  readonly status: number;
  /** `ip:port` of the host it went to, or null when none was picked. */
  readonly host: string | null;
  /** performance.now() at the start and at the end; start is null when it was never sent. */
  readonly sentAt: number | null;
  readonly endedAt: number;
}

export type ShadowEndSink = (end: ShadowEnd) => void;

/** Counters that also report the shadow's first ending to `sink`. */
export function reportingCounters(inner: ShadowCounters, cluster: string, policy: string | null, sink: ShadowEndSink): ShadowCounters {
  let sentAt: number | null = null;
  let host: string | null = null;
  let done = false;
  const end = (outcome: ShadowOutcome, reason: string, status = 0): void => {
    if (done) return;
    done = true;
    sink({ cluster, policy, outcome, reason, status, host, sentAt, endedAt: performance.now() });
  };
  return {
    get active() { return inner.active; },
    get rqTime() { return inner.rqTime; },
    sent() { sentAt ??= performance.now(); inner.sent(); },
    succeeded(status: number) { inner.succeeded(status); end('succeeded', `${Math.min(Math.max(Math.floor(status / 100), 1), 5)}xx`, status); },
    failed(reason: ShadowFailReason) { inner.failed(reason); end('failed', reason); },
    timedOut() { inner.timedOut(); end('timed_out', ''); },
    dropped(reason: ShadowDropReason) { inner.dropped(reason); end('dropped', reason); },
    skipped(reason: ShadowSkipReason) { inner.skipped(reason); end('skipped', reason); },
    retried() { inner.retried(); },
    responseTruncated() { inner.responseTruncated(); },
    picked(h: string) { host = h; inner.picked?.(h); },
  };
}

/** A shadow skipped before it had counters of its own (its policy did not apply to the method). */
export function reportSkip(sink: ShadowEndSink | null | undefined, cluster: string, policy: string | null, reason: ShadowSkipReason): void {
  sink?.({ cluster, policy, outcome: 'skipped', reason, status: 0, host: null, sentAt: null, endedAt: performance.now() });
}
