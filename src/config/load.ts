import * as fs from 'node:fs';
import type * as protobuf from 'protobufjs';
import { LineCounter, parseDocument } from 'yaml';
import { plain } from './decode/common';
import { decodeBootstrap } from './decode/bootstrap';
import { ConfigError, IssueCollector } from './errors';
import { localReads } from './local-reads';
import type { Bootstrap } from './model';
import { messageType } from './proto';
import { decodeProto3JsonPartial } from './proto-json';
import { validateBootstrap } from './validate';

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

/** A decoded bootstrap plus the message it came from (kept for /config_dump only). */
export interface LoadedBootstrap {
  readonly bootstrap: Bootstrap;
  readonly message: protobuf.Message;
}

/** Parses YAML or JSON text (JSON is YAML) into a plain value; syntax errors become issues. */
export function parseYamlOrJson(text: string, issues: IssueCollector): unknown {
  // Without prettyErrors, yaml leaves linePos unset; a LineCounter turns offsets into lines.
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter });
  for (const err of doc.errors) {
    const pos = err.linePos?.[0] ?? (err.pos ? lineCounter.linePos(err.pos[0]) : undefined);
    const where = pos ? ` (line ${pos.line}, column ${pos.col})` : '';
    issues.add('', `${err.message.split('\n')[0]}${where}`);
  }
  return issues.ok ? doc.toJS() : undefined;
}

/** Text → validated bootstrap, or a ConfigError listing every issue by field path. */
export function loadBootstrapText(text: string): LoadedBootstrap {
  const issues = new IssueCollector();
  const json = parseYamlOrJson(text, issues);
  issues.throwIfAny();
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError([{ path: '', message: 'the bootstrap must be a mapping (a YAML or JSON object)' }]);
  }
  const type = messageType(BOOTSTRAP_TYPE);
  // Every stage runs on what the one before could read, so a file's problems come in one report:
  // proto3-JSON issues, then the decoders', then the cross-resource checks'.
  const decoded = decodeProto3JsonPartial(type, json, '');
  issues.addAll(decoded.issues);
  if (!decoded.message) throw new ConfigError(issues.issues);
  const later = new IssueCollector();
  const bootstrap = decodeBootstrap(plain(type, decoded.message), { path: '', issues: later, local: localReads });
  validateBootstrap(bootstrap, later);
  // What was left out at a path is reported there once, not again as "missing" by a later stage.
  const dropped = decoded.dropped ?? [];
  issues.addAll(later.issues.filter((i) => !dropped.some((d) => within(i.path, d))));
  issues.throwIfAny();
  return { bootstrap, message: decoded.message };
}

/** `path` is `base` or a field, element or entry beneath it. */
function within(path: string, base: string): boolean {
  return path === base || path.startsWith(`${base}.`) || path.startsWith(`${base}[`);
}

export function loadBootstrapFile(file: string): LoadedBootstrap {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).message}` }]);
  }
  return loadBootstrapText(text);
}
