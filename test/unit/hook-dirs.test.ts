import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HookDirs } from '../../src/shadow/hook-dirs';

// Where a hook module may come from: only the directories the operator allowed (--hooks-dir),
// resolved inside them, never against the working directory, with no way out through .. or links.

let root: string;
let allowed: string;
let second: string;
let outside: string;

beforeAll(() => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'sm-hookdirs-')));
  allowed = path.join(root, 'allowed');
  second = path.join(root, 'second');
  outside = path.join(root, 'outside');
  for (const d of [allowed, second, outside, path.join(allowed, 'sub')]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(allowed, 'a.js'), 'exports.beforeMirror = () => true;');
  fs.writeFileSync(path.join(allowed, 'sub', 'b.ts'), 'export function beforeMirror() { return true; }');
  fs.writeFileSync(path.join(second, 'a.js'), 'exports.beforeMirror = () => false;');
  fs.writeFileSync(path.join(second, 'c.cjs'), 'exports.beforeMirror = () => false;');
  fs.writeFileSync(path.join(outside, 'planted.js'), 'exports.beforeMirror = () => true;');
  fs.symlinkSync(path.join(outside, 'planted.js'), path.join(allowed, 'link.js'));
  fs.symlinkSync(outside, path.join(allowed, 'linkdir'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

test('no directory allowed: every hook is refused, with the flag that allows them', () => {
  expect(() => HookDirs.NONE.locate('a.js')).toThrow('hook modules are not allowed: start sidemirror with --hooks-dir DIR to allow hooks from DIR');
  expect(() => HookDirs.NONE.locate(path.join(allowed, 'a.js'))).toThrow(/not allowed/);
});

test('a relative path resolves against the allowed directory, not the working directory', () => {
  const dirs = new HookDirs([allowed]);
  expect(dirs.locate('a.js')).toBe(path.join(allowed, 'a.js'));
  expect(dirs.locate('sub/b')).toBe(path.join(allowed, 'sub', 'b.ts'));
  const cwd = process.cwd();
  try {
    process.chdir(outside);
    expect(() => dirs.locate('planted.js')).toThrow(`hook module "planted.js" not found in the allowed --hooks-dir ${allowed}`);
  } finally {
    process.chdir(cwd);
  }
});

test('several directories are searched in order', () => {
  const dirs = new HookDirs([allowed, second]);
  expect(dirs.locate('a.js')).toBe(path.join(allowed, 'a.js'));
  expect(dirs.locate('c')).toBe(path.join(second, 'c.cjs'));
  expect(() => dirs.locate('nope.js')).toThrow(`not found in every allowed --hooks-dir (${allowed}, ${second})`);
});

test('an absolute path must lie inside an allowed directory', () => {
  const dirs = new HookDirs([allowed]);
  expect(dirs.locate(path.join(allowed, 'sub', 'b.ts'))).toBe(path.join(allowed, 'sub', 'b.ts'));
  expect(() => dirs.locate(path.join(outside, 'planted.js'))).toThrow(`is outside the allowed --hooks-dir ${allowed}`);
});

test('.. and symbolic links cannot lead out of an allowed directory', () => {
  const dirs = new HookDirs([allowed]);
  expect(() => dirs.locate('../outside/planted.js')).toThrow(/is outside the allowed --hooks-dir/);
  expect(() => dirs.locate('link.js')).toThrow(`(${path.join(outside, 'planted.js')}) is outside`);
  expect(() => dirs.locate('linkdir/planted.js')).toThrow(/is outside/);
  // A sibling whose name starts like the allowed one is not inside it.
  fs.mkdirSync(`${allowed}-evil`, { recursive: true });
  fs.writeFileSync(path.join(`${allowed}-evil`, 'x.js'), '');
  expect(() => dirs.locate(path.join(`${allowed}-evil`, 'x.js'))).toThrow(/is outside/);
});

test('an allowed directory that does not exist, or is a file, is refused at once', () => {
  expect(() => new HookDirs([path.join(root, 'missing')])).toThrow(`--hooks-dir ${path.join(root, 'missing')}: no such directory`);
  expect(() => new HookDirs([path.join(allowed, 'a.js')])).toThrow(/not a directory/);
});
