import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LocalReads } from './decode/common';

// What the sidecar's config may read from its own machine when it is loaded: secrets and
// certificates named by path or environment variable. Never used by the control plane.

/** Bigger than any password, certificate chain or key; a bound against a config naming a huge file. */
export const MAX_LOCAL_FILE_BYTES = 1024 * 1024;

function readBoundedFile(file: string): string {
  // A FIFO or device would block or never end; only regular files (symlinks to them, as
  // Kubernetes mounts secrets, included) are read.
  if (!fs.statSync(file).isFile()) throw new Error('not a regular file');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(MAX_LOCAL_FILE_BYTES + 1);
    let size = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, size, buf.length - size, null);
      if (n === 0) break;
      size += n;
      if (size > MAX_LOCAL_FILE_BYTES) throw new Error(`larger than ${MAX_LOCAL_FILE_BYTES} bytes`);
    }
    return buf.subarray(0, size).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** A log file's path: an existing file we may write, or a new one in a directory we may write. */
function appendProblem(file: string): string | null {
  if (file === '/dev/stdout' || file === '/dev/stderr') return null;
  try {
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (st?.isDirectory()) return 'is a directory';
    fs.accessSync(st ? file : path.dirname(path.resolve(file)), fs.constants.W_OK);
    return null;
  } catch (err) {
    return `cannot be opened for appending: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
}

/** The process's own files and environment. */
export const localReads: LocalReads = {
  readFile: readBoundedFile,
  env: (name) => process.env[name],
  appendProblem,
};
