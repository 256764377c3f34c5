// The V8 young-generation size a proxy process runs with, and how it reaches the process.
//
// The young generation is where a proxy's per-request garbage dies. Measured 2026-12-02 (issue 13,
// fast codec, loaded 2-core machine, so CPU figures are loose): at saturation with one mirror an
// 8 MB semi-space peaked at 92 MB RSS against 130 MB at 32 MB (78.9 vs 86.2 CPU µs/request), and
// with a 2 s shadow at 132 vs 147 MB; in `bench:soak` (500 req/s, 2 s shadows, 90 s) RSS stayed
// flat at 94–124 MB with 8 MB, while 32 MB drifted 120 → 135 MB with no mark-compact yet. (With
// the older, allocation-heavier data path, V8's default 16 MB had made RSS saw 130 → 200 MB there,
// which is why 32 MB was chosen before.) V8 reads the size when the heap is set up:
// v8.setFlagsFromString at run time does not resize it, so it must be on node's command line.

/** MB per semi-space for a proxy process (node's --max-semi-space-size). */
export const PROXY_SEMI_SPACE_MB = 8;

const SEMI_SPACE_FLAG = /(^|\s)--max[-_]semi[-_]space[-_]size(=|\s|$)/;

/**
 * `execArgv` plus --max-semi-space-size=PROXY_SEMI_SPACE_MB, unless the operator already chose a
 * size in `execArgv` or in `nodeOptions` (NODE_OPTIONS), whose choice stands.
 */
export function proxyExecArgv(execArgv: readonly string[], nodeOptions = ''): string[] {
  if (execArgv.some((a) => SEMI_SPACE_FLAG.test(a)) || SEMI_SPACE_FLAG.test(nodeOptions)) return [...execArgv];
  return [...execArgv, `--max-semi-space-size=${PROXY_SEMI_SPACE_MB}`];
}

// glibc's malloc gives each thread that allocates an arena of its own, up to 8 per core; node's
// threads (libuv pool, V8 platform) leave memory spread over them that is never handed back.
// Two arenas cost nothing measurable in bench:soak (CPU 24.9 % vs 25.7 % of a core at 500 req/s)
// and keep ~7 MB less outside the JS heap. glibc reads it when the process starts: it is set by
// whoever starts the proxy (the supervisor for its workers, the Dockerfile, the sandbox, bench).
/** MALLOC_ARENA_MAX for a proxy process. */
export const PROXY_MALLOC_ARENA_MAX = '2';

/** The environment additions for a proxy process: MALLOC_ARENA_MAX unless `env` already sets it. */
export function proxyEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return env.MALLOC_ARENA_MAX === undefined ? { MALLOC_ARENA_MAX: PROXY_MALLOC_ARENA_MAX } : {};
}
