import * as path from 'node:path';
import { ensureCliBuilt, runCli } from '../harness/cli';

// Every flag is checked before anything starts: one line saying what is wrong, exit code 2, no
// stack trace, nothing listening.

const ROOT = path.resolve(__dirname, '..', '..');
const CONFIG = path.join(ROOT, 'examples', 'route-mirror', 'envoy.yaml');

beforeAll(ensureCliBuilt);

test.each([
  [['proxy', '--log-level', 'bogus'], '--log-level must be one of fatal, error, warn, info, debug, trace, silent; got "bogus"'],
  [['proxy', '--drain-time-s', 'abc'], '--drain-time-s must be a number of seconds (0 or more); got "abc"'],
  [['proxy', '--drain-time-s=-1'], '--drain-time-s must be a number of seconds (0 or more); got "-1"'],
  [['proxy', '--concurrency', 'two'], '--concurrency must be a positive integer'],
  [['proxy', '--shadow-max-inflight', '0'], '--shadow-max-inflight must be a positive integer'],
  [['proxy', '--hooks-dir', '/nonexistent-dir'], '--hooks-dir /nonexistent-dir: no such directory'],
  [['validate', '--hooks-dir', CONFIG], `--hooks-dir ${CONFIG}: not a directory`],
  [['control-plane', '--listen', 'localhost'], '--listen: expected HOST:PORT (e.g. 127.0.0.1:18000), got "localhost"'],
  [['control-plane', '--admin', '127.0.0.1:99999'], '--admin: expected HOST:PORT (e.g. 127.0.0.1:18000), got "127.0.0.1:99999"'],
])('%j → one line, exit 2', async (args, message) => {
  const r = await runCli([...args, '-c', CONFIG]);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe(`${message}\n`);
});
