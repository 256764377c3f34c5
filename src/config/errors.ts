/** One problem found in a configuration, located by the path of the offending field. */
export interface ConfigIssue {
  /** Field path in proto field names, e.g. `static_resources.clusters[2].load_assignment`. */
  readonly path: string;
  readonly message: string;
}

/** A configuration rejected whole; it lists every issue found, not just the first. */
export class ConfigError extends Error {
  readonly code = 'SM_CONFIG_INVALID';
  constructor(readonly issues: readonly ConfigIssue[]) {
    super(formatIssues(issues));
    this.name = 'ConfigError';
  }
}

export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('\n');
}

/** Joins a field name onto a path: `a` + `b` → `a.b`, `` + `b` → `b`. */
export function joinPath(base: string, field: string): string {
  return base ? `${base}.${field}` : field;
}

/**
 * Collects issues while a decoder walks a resource, so that decoding goes on past the first
 * problem and the caller gets them all at once.
 */
export class IssueCollector {
  readonly issues: ConfigIssue[] = [];

  add(path: string, message: string): void {
    this.issues.push({ path, message });
  }

  addAll(issues: readonly ConfigIssue[]): void {
    for (const i of issues) this.issues.push(i);
  }

  get ok(): boolean {
    return this.issues.length === 0;
  }

  /** Throws a ConfigError when anything was collected. */
  throwIfAny(): void {
    if (this.issues.length > 0) throw new ConfigError(this.issues);
  }
}
