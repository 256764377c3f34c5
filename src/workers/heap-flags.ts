// The V8 young-generation size a proxy process runs with, and how it reaches the process.
//
// A shadow lives as long as its shadow upstream takes to answer, seconds. With V8's default 16 MB
// semi-space, a few hundred requests a second fill the young generation about once a second, so a
// 2 s shadow survives two scavenges and is promoted; the old space then fills with dead shadows
// between mark-compacts and RSS saws (130 → 200 MB in `npm run bench:soak`). At 32 MB a scavenge
// comes every ~2 s, most shadows die young, the old space stays flat and so does RSS. 64 MB only
// commits more young space (RSS ~210 MB). V8 reads the size when the heap is set up:
// v8.setFlagsFromString at run time does not resize it, so it must be on node's command line.

/** MB per semi-space for a proxy process (node's --max-semi-space-size). */
export const PROXY_SEMI_SPACE_MB = 32;

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
