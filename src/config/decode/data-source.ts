import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { DataSource } from '../transport-model';
import { type Ctx, type Pb, at, fail } from './common';

// core.v3.DataSource as the TLS contexts use it: the model keeps where the bytes come from (the
// runtime reads and watches them). On the sidecar (`ctx.local`) a file or environment variable
// is read once here, so that a missing file, a FIFO or an unset variable refuses the config with
// the field's path, as Envoy refuses a DataSource it cannot read when the config loads. The
// control plane decodes without `ctx.local`: it checks the shape and reads nothing.

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SPECIFIERS = ['filename', 'inline_bytes', 'inline_string', 'environment_variable'] as const;

/** The source, or null when none is given (a problem is reported only if `required`). */
export function decodeDataSource(ds: Pb | undefined, ctx: Ctx, required: boolean): DataSource | null {
  const given = SPECIFIERS.filter((k) => ds?.[k] !== undefined);
  if (!ds || given.length === 0) {
    if (required) fail(ctx, 'one of filename, inline_bytes, inline_string or environment_variable is required');
    return null;
  }
  if (ds.filename !== undefined) {
    const path = String(ds.filename);
    if (!path) fail(at(ctx, 'filename'), 'must name a file');
    return { kind: 'filename', path };
  }
  if (ds.inline_bytes !== undefined) return { kind: 'inline', bytes: Buffer.from(ds.inline_bytes as Uint8Array) };
  if (ds.inline_string !== undefined) return { kind: 'inline', bytes: Buffer.from(String(ds.inline_string), 'utf8') };
  const name = String(ds.environment_variable);
  if (!ENV_NAME.test(name)) fail(at(ctx, 'environment_variable'), `"${name}" is not an environment variable name`);
  return { kind: 'environment_variable', name };
}

/**
 * The source's text where this process can have it: inline, or read from a file or variable on
 * the sidecar. null on the control plane (not read) and after a reported failure.
 */
export function dataSourceText(src: DataSource | null, ctx: Ctx): string | null {
  if (!src) return null;
  if (src.kind === 'inline') return src.bytes.toString('utf8');
  if (!ctx.local) return null;
  if (src.kind === 'filename') {
    if (!src.path) return null;
    try {
      return ctx.local.readFile(src.path);
    } catch (err) {
      fail(at(ctx, 'filename'), `cannot read "${src.path}": ${(err as Error).message}`);
      return null;
    }
  }
  if (!ENV_NAME.test(src.name)) return null;
  const value = ctx.local.env(src.name);
  if (value === undefined) fail(at(ctx, 'environment_variable'), `environment variable ${src.name} is not set`);
  return value ?? null;
}

/** What a PEM text fails to hold, in words that never quote it; null when it is fine. */
export function certificatesProblem(text: string): string | null {
  if (!text.includes('-----BEGIN CERTIFICATE-----')) return 'holds no PEM certificate';
  try {
    new X509Certificate(text);
    return null;
  } catch {
    return 'holds no valid PEM certificate';
  }
}

/** The key's problem (it may need `passphrase`); null when it parses. */
export function privateKeyProblem(text: string, passphrase: string | null): string | null {
  try {
    createPrivateKey(passphrase === null ? text : { key: text, passphrase });
    return null;
  } catch {
    // The parser's message could quote the key; this one cannot.
    return passphrase === null ? 'holds no unencrypted PEM private key (an encrypted one needs password)' : 'holds no PEM private key that password decrypts';
  }
}

/** Whether `keyText` is the private key of the first certificate in `chainText` (both already parsed once). */
export function keyMatchesCertificate(chainText: string, keyText: string, passphrase: string | null): boolean {
  try {
    const key = createPrivateKey(passphrase === null ? keyText : { key: keyText, passphrase });
    return new X509Certificate(chainText).checkPrivateKey(key);
  } catch {
    return false;
  }
}
