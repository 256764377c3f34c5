// A gRPC C-core peer (Debian's python3-grpcio running py_grpc_server.py) and a raw node:http2
// gRPC call. C-core answers a request without `te: trailers` with an error status, grpc-js
// does not care, so this is the peer that shows whether a proxy kept `te`.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import readline from 'node:readline';
import {
  CallLog, type CallOutcome, decodeEchoReply, type EchoCallRecord, type EchoMethod, echoPath, type EchoReply,
  type EchoRequest, encodeEchoRequest, type RecordingServer, type ServerTls,
} from './grpc-echo';

/** Debian's interpreter: a `python3` earlier on PATH may be a pyenv shim without grpc. */
export const SYSTEM_PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(__dirname, 'py_grpc_server.py');
const MISSING = 'python3-grpcio is missing (/usr/bin/python3 cannot import grpc): run scripts/test-deps.sh';

export interface PythonEchoServerOptions {
  /** TLS, or mTLS with requireClientCert (ca then required). */
  readonly tls?: ServerTls;
  /** In replies' `server`, `x-echo-server` and `x-echo-trailer` (default 'python'). */
  readonly name?: string;
  readonly maxRecords?: number;
  /** How long to wait for the port (default 10 s). */
  readonly startTimeoutMs?: number;
}

export interface PythonEchoServer extends RecordingServer {
  readonly pid: number;
}

interface PyEvent {
  event: 'listening' | 'start' | 'end';
  port?: number;
  id?: number;
  method?: string;
  authority?: string;
  metadata?: Array<[string, string]>;
  outcome?: Exclude<CallOutcome, 'open'>;
  code?: number;
  messages?: number;
  payloadBytes?: number;
  payloadSha256?: string;
}

/** Starts py_grpc_server.py on 127.0.0.1:0; it records calls like startEchoServer (no peer CN). */
export async function startPythonEchoServer(opts: PythonEchoServerOptions = {}): Promise<PythonEchoServer> {
  if (!existsSync(SYSTEM_PYTHON)) throw new Error(`${SYSTEM_PYTHON} not found; ${MISSING}`);
  const name = opts.name ?? 'python';
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: '1' };
  if (opts.tls) {
    env.SM_TLS_CERT = opts.tls.cert.toString();
    env.SM_TLS_KEY = opts.tls.key.toString();
    if (opts.tls.ca) env.SM_TLS_CA = opts.tls.ca.toString();
    if (opts.tls.requireClientCert) env.SM_TLS_REQUIRE_CLIENT_CERT = '1';
  }
  // stdin stays open as a lifeline: the script exits when it closes, even if this process dies.
  const child = spawn(SYSTEM_PYTHON, [SCRIPT, '--name', name], { stdio: ['pipe', 'pipe', 'pipe'], env });
  const log = new CallLog(opts.maxRecords ?? 1000);
  const open = new Map<number, EchoCallRecord>();
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4000);
  });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code === 3 ? MISSING : `py_grpc_server exited (code ${code}, signal ${signal}): ${stderr.trim()}`));
    child.once('error', (err) => resolve(`py_grpc_server did not start: ${err.message}`));
  });
  let listening: (port: number) => void = () => undefined;
  const bound = new Promise<number>((resolve) => {
    listening = resolve;
  });
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    let ev: PyEvent;
    try {
      ev = JSON.parse(line) as PyEvent;
    } catch {
      return;
    }
    if (ev.event === 'listening' && ev.port) listening(ev.port);
    else if (ev.event === 'start' && ev.id !== undefined) {
      const metadata: Record<string, string[]> = {};
      for (const [k, v] of ev.metadata ?? []) (metadata[k] ??= []).push(v);
      const method = ev.method ?? '';
      const rec: EchoCallRecord = {
        id: ev.id, method, path: echoPath(method as EchoMethod), authority: ev.authority ?? '', metadata,
        messages: 0, payloadBytes: 0, payloadSha256: '', outcome: 'open', code: 0,
      };
      open.set(ev.id, rec);
      log.start(rec);
    } else if (ev.event === 'end' && ev.id !== undefined) {
      const rec = open.get(ev.id);
      if (!rec) return;
      open.delete(ev.id);
      rec.messages = ev.messages ?? 0;
      rec.payloadBytes = ev.payloadBytes ?? 0;
      rec.payloadSha256 = ev.payloadSha256 ?? '';
      log.end(rec, ev.outcome ?? 'ok', ev.code ?? 0);
    }
  });
  const stop = async (): Promise<void> => stopChild(child, exited);
  const timeoutMs = opts.startTimeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  const port = await Promise.race([
    bound,
    exited.then((why) => Promise.reject(new Error(why))),
    new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new Error(`py_grpc_server: no port within ${timeoutMs} ms: ${stderr.trim()}`)), timeoutMs);
    }),
  ]).catch(async (err: unknown) => {
    await stop();
    throw err;
  }).finally(() => clearTimeout(timer));
  return { port, name, pid: child.pid ?? 0, calls: log.calls, waitForCalls: (n, t, u) => log.wait(n, t, u), stop };
}

/** Ends the child by its own handle: SIGTERM, SIGKILL after 3 s. */
async function stopChild(child: ChildProcess, exited: Promise<string>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.stdin?.destroy();
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

export interface RawGrpcOptions {
  /** Default: the Unary method's path. */
  readonly path?: string;
  /** Sent as one length-prefixed message (default: an empty EchoRequest). */
  readonly request?: EchoRequest;
  /** The te header: default 'trailers'; null sends none. */
  readonly te?: string | null;
  /** More request headers, e.g. ':authority'. */
  readonly headers?: http2.OutgoingHttpHeaders;
  readonly tls?: { readonly ca: string | Buffer; readonly cert?: string | Buffer; readonly key?: string | Buffer; readonly servername?: string };
  readonly timeoutMs?: number;
}

export interface RawGrpcAnswer {
  /** HTTP :status. */
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
  /** From the trailers, or from the headers of a Trailers-Only answer; null when neither has one. */
  readonly grpcStatus: number | null;
  /** Percent-decoded. */
  readonly grpcMessage: string;
  readonly replies: EchoReply[];
  /** RST_STREAM code the stream closed with (0 = none). */
  readonly rstCode: number;
}

const MAX_RAW_BODY = 32 * 1024 * 1024;

/** One gRPC call by hand on a fresh node:http2 session, so a test controls every header (e.g. te). */
export async function rawGrpcCall(port: number, opts: RawGrpcOptions = {}): Promise<RawGrpcAnswer> {
  const t = opts.tls;
  const session = http2.connect(`${t ? 'https' : 'http'}://127.0.0.1:${port}`, t ? { ca: t.ca, cert: t.cert, key: t.key, servername: t.servername ?? 'localhost' } : {});
  const timeoutMs = opts.timeoutMs ?? 5000;
  try {
    return await new Promise<RawGrpcAnswer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`raw gRPC call to port ${port}: no end within ${timeoutMs} ms`)), timeoutMs);
      session.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      const headers: http2.OutgoingHttpHeaders = {
        ':method': 'POST', ':path': opts.path ?? echoPath('Unary'), 'content-type': 'application/grpc', ...opts.headers,
      };
      const te = opts.te === undefined ? 'trailers' : opts.te;
      if (te !== null) headers.te = te;
      const stream = session.request(headers);
      const message = encodeEchoRequest(opts.request ?? {});
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(message.length, 1);
      stream.end(Buffer.concat([prefix, message]));
      let head: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const body: Buffer[] = [];
      let size = 0;
      stream.on('response', (h) => {
        head = h;
      });
      stream.on('trailers', (h) => {
        trailers = h;
      });
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_RAW_BODY) stream.close(http2.constants.NGHTTP2_CANCEL);
        else body.push(c);
      });
      stream.on('error', () => undefined);
      stream.on('close', () => {
        clearTimeout(timer);
        const from = trailers['grpc-status'] !== undefined ? trailers : head;
        const status = from['grpc-status'];
        resolve({
          status: Number(head[':status'] ?? 0), headers: head, trailers,
          grpcStatus: status === undefined ? null : Number(status),
          grpcMessage: percentDecoded(String(from['grpc-message'] ?? '')),
          replies: splitMessages(Buffer.concat(body)).map(decodeEchoReply),
          rstCode: stream.rstCode ?? 0,
        });
      });
    });
  } finally {
    session.destroy();
  }
}

function percentDecoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Splits a gRPC body into its (uncompressed) messages; a truncated tail is dropped. */
function splitMessages(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at + 5 <= body.length;) {
    const len = body.readUInt32BE(at + 1);
    if (at + 5 + len > body.length) break;
    out.push(body.subarray(at + 5, at + 5 + len));
    at += 5 + len;
  }
  return out;
}
