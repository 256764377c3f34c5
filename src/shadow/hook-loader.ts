import * as fs from 'node:fs';
import Module, { createRequire } from 'node:module';
import * as path from 'node:path';
import type * as TS from 'typescript';

// Loads a user's hook module: CommonJS JavaScript through require, TypeScript transpiled with the
// typescript package and evaluated as a CommonJS module. Every failure is an Error that says
// which file and why, for config validation to report with its field path.

const SUPPORTED_EXTENSIONS = ['.js', '.cjs', '.ts', '.cts'];

export function isErrorLike(v: unknown): v is Error {
  return typeof v === 'object' && v !== null && typeof (v as { message?: unknown }).message === 'string';
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return v.length > 40 ? `a string (${JSON.stringify(v.slice(0, 40))}…)` : `the string ${JSON.stringify(v)}`;
  if (typeof v === 'object') return Buffer.isBuffer(v) ? 'a Buffer' : 'an object';
  return `${typeof v} ${String(v)}`;
}

export function resolveHookFile(modulePath: string, baseDir: string): string {
  if (typeof modulePath !== 'string' || modulePath.trim() === '') throw new Error('hook module path is empty');
  const file = path.isAbsolute(modulePath) ? modulePath : path.resolve(baseDir, modulePath);
  const ext = path.extname(file).toLowerCase();
  if (ext === '.mjs' || ext === '.mts') {
    throw new Error(
      `hook module ${file}: ES modules (${ext}) are not supported; hooks are loaded synchronously as CommonJS. ` +
        'Use a .js/.cjs (CommonJS) or .ts/.cts file',
    );
  }
  const stat = statOrNull(file);
  if (stat?.isDirectory()) throw new Error(`hook module ${file} is a directory; name the file`);
  if (stat?.isFile()) {
    if (!SUPPORTED_EXTENSIONS.includes(ext)) {
      throw new Error(`hook module ${file}: unsupported extension ${ext === '' ? '(none)' : ext}; use one of ${SUPPORTED_EXTENSIONS.join(', ')}`);
    }
    return file;
  }
  for (const e of SUPPORTED_EXTENSIONS) {
    if (statOrNull(file + e)?.isFile()) return file + e;
  }
  const from = path.isAbsolute(modulePath) ? '' : ` (resolved against ${baseDir})`;
  throw new Error(`hook module not found: ${file}${from}`);
}

function statOrNull(file: string): fs.Stats | null {
  try {
    return fs.statSync(file);
  } catch {
    return null;
  }
}

/**
 * Evaluates a hook module. A module that tries to end the process while it loads (a CLI script
 * named by mistake calls process.exit) gets an exception instead, and the load fails.
 */
export function loadModuleFile(file: string): unknown {
  return withoutProcessExit(file, () => {
    const ext = path.extname(file).toLowerCase();
    if (ext === '.ts' || ext === '.cts') return loadTypeScript(file);
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(file) as unknown;
    } catch (err) {
      throw new Error(`failed to load hook module ${file}: ${errorText(err, file)}`, { cause: err });
    }
  });
}

function withoutProcessExit<T>(file: string, load: () => T): T {
  const saved = { exit: process.exit, abort: process.abort, reallyExit: (process as unknown as { reallyExit: unknown }).reallyExit };
  const refuse = (what: string) => (): never => {
    throw new Error(`hook module ${file} called process.${what}() while loading`);
  };
  process.exit = refuse('exit');
  process.abort = refuse('abort');
  (process as unknown as { reallyExit: unknown }).reallyExit = refuse('reallyExit');
  try {
    return load();
  } finally {
    process.exit = saved.exit;
    process.abort = saved.abort;
    (process as unknown as { reallyExit: unknown }).reallyExit = saved.reallyExit;
  }
}

function loadTypeScript(file: string): unknown {
  const ts = requireTypeScript(file);
  const source = fs.readFileSync(file, 'utf8');
  const out = ts.transpileModule(source, {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      inlineSourceMap: true,
      inlineSources: true,
    },
  });
  const errors = (out.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) {
    const lines = errors.slice(0, 5).map((d) => {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (d.file === undefined || d.start === undefined) return text;
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
      return `${line + 1}:${character + 1} ${text}`;
    });
    const more = errors.length > 5 ? `; and ${errors.length - 5} more` : '';
    throw new Error(`failed to compile hook module ${file}: ${lines.join('; ')}${more}`);
  }
  const m = new Module(file) as unknown as InternalModule;
  m.filename = file;
  m.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(path.dirname(file));
  try {
    m._compile(out.outputText, file);
  } catch (err) {
    throw new Error(`failed to load hook module ${file}: ${errorText(err, file)}`, { cause: err });
  }
  m.loaded = true;
  return m.exports;
}

/** Node's CommonJS internals used to evaluate transpiled TypeScript as a module. */
interface InternalModule {
  filename: string;
  paths: string[];
  loaded: boolean;
  exports: unknown;
  _compile(code: string, filename: string): unknown;
}

function requireTypeScript(file: string): typeof TS {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('typescript') as typeof TS;
  } catch (first) {
    try {
      // A typescript installed next to the hook will do too.
      return createRequire(file)('typescript') as typeof TS;
    } catch {
      throw new Error(
        `hook module ${file} is TypeScript, and the 'typescript' package could not be loaded ` +
          `(${isErrorLike(first) ? first.message.split('\n')[0] : String(first)}); install it, or compile the hook to .js`,
        { cause: first },
      );
    }
  }
}

/** A load error's message, with the line for syntax errors when Node put it in the stack. */
function errorText(err: unknown, file: string): string {
  if (!isErrorLike(err)) return `threw ${describe(err)}`;
  const name = err.name && err.name !== 'Error' ? `${err.name}: ` : '';
  let where = '';
  if (err.name === 'SyntaxError' && typeof err.stack === 'string') {
    const first = err.stack.split('\n', 1)[0];
    if (first.startsWith(`${file}:`)) where = ` (line ${first.slice(file.length + 1)})`;
  }
  return `${name}${err.message.split('\n')[0]}${where}`;
}

