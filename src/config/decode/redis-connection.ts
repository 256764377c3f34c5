import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { RedisConnectionModel, RedisConnectionSecurity, RedisServerAddress, RedisTlsModel } from '../model';
import { type Ctx, type Pb, at, durationMs, each, fail } from './common';

// sidemirror.filters.http.mirror.v1.RedisConnection (the mirror budget's Redis) into the model.
// A password given by file or environment variable, and TLS files, are read here when the
// sidecar loads its config, so a missing one refuses the config with the field's path (as Envoy
// reads a DataSource's filename when it loads a config). The control plane decodes without
// `ctx.local`: it checks the shape and reads nothing of its own machine. No message here ever
// holds a secret's value.

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

export function decodeRedisConnection(c: Pb, ctx: Ctx): RedisConnectionModel {
  const security = decodeSecurity(c, ctx);
  const timeoutMs = durationMs(c.timeout as Pb | undefined, 100);
  const server = (s: Pb, sctx: Ctx): RedisServerAddress => {
    const host = String(s.host ?? '');
    const port = Number(s.port ?? 6379);
    if (!host) fail(at(sctx, 'host'), 'host is required');
    if (!(port > 0 && port < 65536)) fail(at(sctx, 'port'), `port ${port} is out of range`);
    return { host, port };
  };
  if (c.cluster) {
    const cl = c.cluster as Pb;
    const nodes = each(at(ctx, 'cluster'), cl, 'nodes', server);
    if (nodes.length === 0) fail(at(at(ctx, 'cluster'), 'nodes'), 'at least one node is required');
    if (c.database) fail(at(ctx, 'database'), 'Redis Cluster has only database 0');
    return { kind: 'cluster', nodes, name: String(cl.name ?? ''), ...security, timeoutMs };
  }
  if (!c.server) fail(ctx, 'one of server or cluster is required');
  return { kind: 'single', server: server((c.server ?? {}) as Pb, at(ctx, 'server')), ...security, database: Number(c.database ?? 0), timeoutMs };
}

function decodeSecurity(c: Pb, ctx: Ctx): RedisConnectionSecurity {
  let password: string | null = null;
  let given = false;
  if (c.password) {
    password = String(c.password);
    given = true;
  } else if (c.password_file !== undefined) {
    password = passwordFromFile(String(c.password_file), at(ctx, 'password_file'));
    given = true;
  } else if (c.password_env !== undefined) {
    password = passwordFromEnv(String(c.password_env), at(ctx, 'password_env'));
    given = true;
  }
  const username = c.username ? String(c.username) : null;
  if (username !== null && !given) fail(at(ctx, 'username'), 'a username needs a password (password, password_file or password_env)');
  const tls = c.tls ? decodeTls(c.tls as Pb, at(ctx, 'tls')) : null;
  return { password, username, tls };
}

/** One trailing newline is what `echo secret > file` adds; it is not part of the password. */
function dropTrailingNewline(s: string): string {
  return s.replace(/\r?\n$/, '');
}

function passwordFromFile(file: string, ctx: Ctx): string | null {
  if (!file) {
    fail(ctx, 'must name a file');
    return null;
  }
  const text = readLocal(file, ctx);
  if (text === null) return null;
  const password = dropTrailingNewline(text);
  if (!password) fail(ctx, `"${file}" is empty`);
  return password || null;
}

function passwordFromEnv(name: string, ctx: Ctx): string | null {
  if (!ENV_NAME.test(name)) {
    fail(ctx, `"${name}" is not an environment variable name`);
    return null;
  }
  if (!ctx.local) return null;
  const value = ctx.local.env(name);
  if (value === undefined) fail(ctx, `environment variable ${name} is not set`);
  else if (!value) fail(ctx, `environment variable ${name} is empty`);
  return value || null;
}

/** The file's text on the sidecar; null on the control plane (not read) or when it cannot be read. */
function readLocal(file: string, ctx: Ctx): string | null {
  if (!ctx.local) return null;
  try {
    return ctx.local.readFile(file);
  } catch (err) {
    fail(ctx, `cannot read "${file}": ${(err as Error).message}`);
    return null;
  }
}

function decodeTls(t: Pb, ctx: Ctx): RedisTlsModel {
  const pem = (field: 'ca_file' | 'cert_file' | 'key_file', check: (text: string) => string | null): string | null => {
    if (!t[field]) return null;
    const file = String(t[field]);
    const fctx = at(ctx, field);
    const text = readLocal(file, fctx);
    if (text === null) return null;
    const problem = check(text);
    if (problem) fail(fctx, `"${file}" ${problem}`);
    return problem ? null : text;
  };
  const ca = pem('ca_file', (text) => certificateProblem(text));
  const cert = pem('cert_file', (text) => certificateProblem(text));
  const key = pem('key_file', (text) => keyProblem(text));
  if (Boolean(t.cert_file) !== Boolean(t.key_file)) fail(ctx, 'cert_file and key_file go together');
  if (cert && key && !new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) {
    fail(at(ctx, 'key_file'), 'is not the key of cert_file\'s certificate');
  }
  const serverName = t.server_name ? String(t.server_name) : null;
  if (serverName !== null && !HOST_NAME.test(serverName)) fail(at(ctx, 'server_name'), `"${serverName}" is not a host name`);
  return { ca, cert, key, serverName };
}

function certificateProblem(text: string): string | null {
  try {
    new X509Certificate(text);
    return null;
  } catch {
    return 'holds no PEM certificate';
  }
}

function keyProblem(text: string): string | null {
  try {
    createPrivateKey(text);
    return null;
  } catch {
    // The parser's message could quote the file; this one cannot.
    return 'holds no unencrypted PEM private key';
  }
}
