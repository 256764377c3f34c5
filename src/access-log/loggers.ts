import type { AccessLogConfig, LogFormat } from '../config/access-log-model';
import type { Runtime } from '../runtime/runtime';
import type { LogEntry } from './entry';
import { type EntryFilter, compileFilter } from './filters';
import { type LineFormatter, compileFormat } from './format';
import type { LogFile } from './log-file';
import type { AccessLogManager } from './manager';
import { ENVOY_DEFAULT_FORMAT, SHADOW_DEFAULT_FORMAT, parseFormat } from './parse';

/** One configured logger, ready to run: its filter, its line, its (shared) file. */
export interface CompiledLogger {
  readonly filter: EntryFilter | null;
  readonly format: LineFormatter;
  readonly file: LogFile;
}

function defaultFormat(text: string, shadow: boolean): LogFormat {
  const parsed = parseFormat(text, { shadow });
  if (!parsed.ok) throw new Error(parsed.error);
  return { kind: 'text', tokens: parsed.tokens, omitEmptyValues: false };
}

const ENVOY_DEFAULT = defaultFormat(ENVOY_DEFAULT_FORMAT, false);
const SHADOW_DEFAULT = defaultFormat(SHADOW_DEFAULT_FORMAT, true);

/** Compiles the loggers of one access_log list; throws when a file cannot be opened. */
export function compileLoggers(configs: readonly AccessLogConfig[], manager: AccessLogManager, runtime: Runtime): CompiledLogger[] {
  return configs.map((c) => ({
    filter: c.filter === null ? null : compileFilter(c.filter, runtime),
    format: compileFormat(c.format ?? (c.shadows ? SHADOW_DEFAULT : ENVOY_DEFAULT)),
    file: manager.file(c.target.path),
  }));
}

/** Writes one entry to every logger whose filter takes it. */
export function emit(loggers: readonly CompiledLogger[], entry: LogEntry): void {
  for (const l of loggers) {
    if (l.filter !== null && !l.filter(entry)) continue;
    l.file.write(l.format(entry));
  }
}
