import { ConfigError, type ConfigIssue, formatIssues } from '../../config/errors';
import type { Logger } from '../../log/logger';
import type { SnapshotCache } from '../cache/snapshot-cache';
import { parseResourcesText } from '../resources-file';

// The one path from text to the cache, shared by the file watcher, PUT /snapshot and tests:
// parse, validate, check consistency, install — or log exactly why not and keep what is served.

export interface Rejection {
  /** Where the text came from: the file path, `PUT /snapshot`… */
  readonly source: string;
  readonly at: string;
  readonly issues: readonly ConfigIssue[];
  /** The version still served. */
  readonly keptVersion: string;
}

export type ApplyResult = { readonly ok: true; readonly version: string } | { readonly ok: false; readonly error: ConfigError };

export class ResourceApplier {
  private rejection: Rejection | null = null;

  constructor(
    private readonly cache: SnapshotCache,
    private readonly logger: Logger,
  ) {}

  /** The most recent rejected update, cleared by the next accepted one. */
  get lastRejection(): Rejection | null {
    return this.rejection;
  }

  apply(text: string, source: string): ApplyResult {
    const parsed = parseResourcesText(text);
    let error: ConfigError;
    if (parsed instanceof ConfigError) {
      error = parsed;
    } else {
      try {
        const version = this.cache.setResources(parsed);
        this.rejection = null;
        this.logger.info({ source, version, resources: countResources(parsed.base), overrides: parsed.overrides.length }, 'resources accepted');
        return { ok: true, version };
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        error = err;
      }
    }
    const keptVersion = this.cache.version;
    this.rejection = { source, at: new Date().toISOString(), issues: error.issues, keptVersion };
    // One line, with every issue and its path, both as data and as readable text.
    this.logger.error({ source, kept_version: keptVersion, issues: error.issues },
      `resources from ${source} rejected; still serving version ${keptVersion}:\n${formatIssues(error.issues)}`);
    return { ok: false, error };
  }
}

function countResources(map: ReadonlyMap<unknown, ReadonlyMap<string, unknown>>): number {
  let n = 0;
  for (const byName of map.values()) n += byName.size;
  return n;
}
