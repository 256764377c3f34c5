// The differences of one comparison, each (path, kind) once, at most MAX_DIFFERENCES. Counting is
// per path, so a second `body.items[*]:changed` adds nothing; the first keeps its exact path and
// values. Past the bound the list just stops growing (no marker): every entry is a real difference.
import type { DiffKind, Difference } from '../types';

export const MAX_DIFFERENCES = 1000;

export class DifferenceList {
  readonly items: Difference[] = [];
  readonly #seen = new Set<string>();

  /** The bound is reached: walkers stop. */
  get full(): boolean {
    return this.items.length >= MAX_DIFFERENCES;
  }

  /** Would add() keep this one? Lets a caller skip rendering values for a repeat. */
  wants(path: string, kind: DiffKind): boolean {
    return !this.full && !this.#seen.has(`${path}:${kind}`);
  }

  add(path: string, kind: DiffKind, exactPath: string, primary: string | null, other: string | null): void {
    if (this.full) return;
    const key = `${path}:${kind}`;
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    this.items.push({ path, kind, exactPath, primary, other });
  }
}
