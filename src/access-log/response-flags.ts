// Envoy's response flags, in Envoy's order (the order %RESPONSE_FLAGS% lists them in), as bits.
// sidemirror sets these today (connection-manager.ts, via RequestFacts):
//   NR no route · NC unknown cluster · UO circuit breaker overflow · UH no healthy host
//   UF connect failure · UC upstream connection reset · UT route timeout · UPE upstream protocol
//   error · DC client gone before the response was done · DPE malformed request · UMSDR
//   max_stream_duration reached. The rest are known (response_flag_filter accepts them) and are
//   for filters and retries to set.

const FLAGS = [
  ['LH', 'FailedLocalHealthCheck'],
  ['UH', 'NoHealthyUpstream'],
  ['UT', 'UpstreamRequestTimeout'],
  ['LR', 'LocalReset'],
  ['UR', 'UpstreamRemoteReset'],
  ['UF', 'UpstreamConnectionFailure'],
  ['UC', 'UpstreamConnectionTermination'],
  ['UO', 'UpstreamOverflow'],
  ['NR', 'NoRouteFound'],
  ['DI', 'DelayInjected'],
  ['FI', 'FaultInjected'],
  ['RL', 'RateLimited'],
  ['UAEX', 'UnauthorizedExternalService'],
  ['RLSE', 'RateLimitServiceError'],
  ['DC', 'DownstreamConnectionTermination'],
  ['URX', 'UpstreamRetryLimitExceeded'],
  ['SI', 'StreamIdleTimeout'],
  ['IH', 'InvalidEnvoyRequestHeaders'],
  ['DPE', 'DownstreamProtocolError'],
  ['UMSDR', 'UpstreamMaxStreamDurationReached'],
  ['RFCF', 'ResponseFromCacheFilter'],
  ['NFCF', 'NoFilterConfigFound'],
  ['DT', 'DurationTimeout'],
  ['UPE', 'UpstreamProtocolError'],
  ['NC', 'NoClusterFound'],
  ['OM', 'OverloadManager'],
  ['DF', 'DnsResolutionFailed'],
  ['DO', 'DropOverLoad'],
  ['DR', 'DownstreamRemoteReset'],
] as const;

export type ResponseFlag = (typeof FLAGS)[number][0];

const BITS = new Map<string, number>(FLAGS.map(([short], i) => [short, 1 << i]));

/** The bit of a flag by its short name; undefined for a name Envoy does not have. */
export function flagBit(short: string): number | undefined {
  return BITS.get(short);
}

/** The bit of a flag sidemirror sets. */
export function bitOf(flag: ResponseFlag): number {
  return BITS.get(flag)!;
}

/** Envoy's short form: `UF,URX`, or `-` when no flag is set. */
export function shortFlags(bits: number): string {
  return join(bits, 0, ',');
}

/** Envoy's long form (%RESPONSE_FLAGS_LONG%): `UpstreamConnectionFailure,…`, or `-`. */
export function longFlags(bits: number): string {
  return join(bits, 1, ',');
}

function join(bits: number, which: 0 | 1, sep: string): string {
  if (bits === 0) return '-';
  const out: string[] = [];
  for (let i = 0; i < FLAGS.length; i++) if ((bits & (1 << i)) !== 0) out.push(FLAGS[i]![which]);
  return out.join(sep);
}
