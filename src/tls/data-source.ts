import * as fs from 'node:fs';
import { MAX_LOCAL_FILE_BYTES } from '../config/local-reads';
import type { DataSource } from '../config/transport-model';

// A DataSource's bytes: a certificate chain, a key, a password or a CA bundle. Files are read at
// the moment a TLS context is (re)built, never by the config decoder, so a rotated file is seen.

/** What Envoy's admin `/certs` shows as the path of a source that is not a file. */
export const INLINE_PATH = '<inline>';

/** The file path of a filename source, else `<inline>` (inline bytes and environment variables alike). */
export function dataSourcePath(source: DataSource): string {
  return source.kind === 'filename' ? source.path : INLINE_PATH;
}

/**
 * The bytes of `source`. Throws, with the reason in the message, when the file cannot be read,
 * is not a regular file or is larger than MAX_LOCAL_FILE_BYTES, or the variable is not set.
 */
export function readDataSource(source: DataSource, env: NodeJS.ProcessEnv = process.env): Buffer {
  switch (source.kind) {
    case 'inline':
      return source.bytes;
    case 'environment_variable': {
      const value = env[source.name];
      if (value === undefined) throw new Error(`environment variable ${source.name} is not set`);
      return Buffer.from(value, 'utf8');
    }
    case 'filename':
      try {
        return readBoundedFile(source.path);
      } catch (err) {
        throw new Error(`${source.path}: ${(err as Error).message}`);
      }
  }
}

function readBoundedFile(file: string): Buffer {
  // A FIFO or device could block or never end; a symlink to a regular file (Kubernetes mounts
  // secrets that way) is followed.
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error('not a regular file');
    const buf = Buffer.alloc(MAX_LOCAL_FILE_BYTES + 1);
    let size = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, size, buf.length - size, null);
      if (n === 0) break;
      size += n;
      if (size > MAX_LOCAL_FILE_BYTES) throw new Error(`larger than ${MAX_LOCAL_FILE_BYTES} bytes`);
    }
    return Buffer.from(buf.subarray(0, size));
  } finally {
    fs.closeSync(fd);
  }
}
