import * as fs from 'node:fs';
import type * as protobuf from 'protobufjs';
import { LineCounter, parseDocument } from 'yaml';
import { plain } from './decode/common';
import { decodeBootstrap } from './decode/bootstrap';
import { ConfigError, IssueCollector } from './errors';
import { localReads } from './local-reads';
import type { Bootstrap } from './model';
import { messageType } from './proto';
import { decodeProto3Json } from './proto-json';
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
  const decoded = decodeProto3Json(type, json, '');
  if (!decoded.message) throw new ConfigError(decoded.issues);
  // The bootstrap is the sidecar's own: the files and variables it names are read here.
  const bootstrap = decodeBootstrap(plain(type, decoded.message), { path: '', issues, local: localReads });
  if (issues.ok) validateBootstrap(bootstrap, issues);
  issues.throwIfAny();
  return { bootstrap, message: decoded.message };
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
