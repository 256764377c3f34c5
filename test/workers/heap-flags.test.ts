import { PROXY_MALLOC_ARENA_MAX, PROXY_SEMI_SPACE_MB, proxyEnv, proxyExecArgv } from '../../src/workers/heap-flags';

// The proxy workers get a young generation sized for seconds-long shadows, unless the operator
// chose a size on node's command line or in NODE_OPTIONS.

const FLAG = `--max-semi-space-size=${PROXY_SEMI_SPACE_MB}`;

test('adds the semi-space size to the flags node was started with', () => {
  expect(proxyExecArgv([])).toEqual([FLAG]);
  expect(proxyExecArgv(['--trace-gc', '--enable-source-maps'], '--max-old-space-size=512')).toEqual(['--trace-gc', '--enable-source-maps', FLAG]);
});

test.each([
  [['--max-semi-space-size=8'], ''],
  [['--max_semi_space_size=8'], ''],
  [['--max-semi-space-size', '8'], ''],
  [[], '--max-semi-space-size=64'],
  [[], '--inspect=0 --max_semi_space_size=4'],
])('an operator choice stands: execArgv %j, NODE_OPTIONS %j', (execArgv, nodeOptions) => {
  expect(proxyExecArgv(execArgv, nodeOptions)).toEqual(execArgv);
});

test('the caller’s array is not changed', () => {
  const argv = ['--trace-gc'];
  proxyExecArgv(argv);
  expect(argv).toEqual(['--trace-gc']);
});

test('MALLOC_ARENA_MAX is added unless the environment sets it', () => {
  expect(proxyEnv({ PATH: '/bin' })).toEqual({ MALLOC_ARENA_MAX: PROXY_MALLOC_ARENA_MAX });
  expect(proxyEnv({ MALLOC_ARENA_MAX: '8' })).toEqual({});
});
