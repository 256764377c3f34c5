import { createHash, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';

// Bearer tokens for the control plane's admin API and xDS port: read once from a file the
// operator controls, compared in constant time (hashing first makes the lengths equal, so the
// comparison leaks neither the token's bytes nor its length).

export class BearerToken {
  readonly #digest: Buffer;

  constructor(token: string) {
    if (token.length === 0) throw new Error('the token is empty');
    this.#digest = digest(token);
  }

  /** Reads and trims the file; throws a one-line Error for an unreadable or empty file. */
  static fromFile(file: string, flag: string): BearerToken {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const token = text.trim();
    if (token.length === 0) throw new Error(`${flag} ${file}: the file is empty`);
    return new BearerToken(token);
  }

  /** True when `presented` is exactly the token. */
  matches(presented: string): boolean {
    return timingSafeEqual(digest(presented), this.#digest);
  }

  /** True when an `authorization` header value is `Bearer <token>` (scheme case-insensitive, RFC 6750). */
  matchesHeader(value: string | undefined): boolean {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(value ?? '');
    // Compare even when malformed, so a bad header costs the same time as a wrong token.
    return this.matches(m ? m[1]! : '') && m !== null;
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
