import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as path from 'node:path';
import type { H2Request } from './h2load';

// What the HTTP/2 rows send, and a one-request check that a peer answers it properly before it
// is measured (h2load counts HTTP statuses only; a gRPC failure is a 200 with grpc-status ≠ 0).

/** The one method of bench/peers/grpc-echo.ts. */
export const GRPC_BENCH_METHOD = '/sidemirror.bench.v1.Echo/Unary';

/** h2c rows: GET / (the nginx upstreams answer `ok\n`). */
export const H2C_GET: H2Request = { path: '/' };

/**
 * A gRPC request message: protobuf field 1 (a string), encoded by hand (tag 0x0a = field 1,
 * length-delimited; then its length), behind gRPC's 5-byte prefix (not compressed, 4-byte length).
 */
export function grpcUnaryBody(text = 'sidemirror bench'): Buffer {
  const value = Buffer.from(text, 'utf8');
  if (value.length > 127) throw new Error('one length byte only: keep the text under 128 bytes');
  const message = Buffer.concat([Buffer.from([0x0a, value.length]), value]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** Writes the framed request into `dir` and returns what an h2load gRPC row sends. */
export function grpcUnaryRequest(dir: string): H2Request {
  const bodyFile = path.join(dir, 'grpc-unary.bin');
  fs.writeFileSync(bodyFile, grpcUnaryBody());
  return { path: GRPC_BENCH_METHOD, headers: ['content-type: application/grpc', 'te: trailers'], bodyFile };
}

export const isGrpc = (r: H2Request): boolean => (r.headers ?? []).some((h) => h.toLowerCase().startsWith('content-type: application/grpc'));

/**
 * Sends `req` once over h2c. Resolves when the answer is a 200 (for gRPC: with grpc-status 0 in
 * the trailers or the headers, and the request message echoed back); rejects saying what came back.
 */
export function preflight(port: number, req: H2Request, timeoutMs = 5000): Promise<void> {
  const body = req.bodyFile !== undefined ? fs.readFileSync(req.bodyFile) : undefined;
  const headers: http2.OutgoingHttpHeaders = { ':method': body ? 'POST' : 'GET', ':path': req.path };
  for (const h of req.headers ?? []) {
    const i = h.indexOf(':');
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const fail = (why: string): void => {
      clearTimeout(timer);
      session.destroy();
      reject(new Error(`preflight ${req.path}: ${why}`));
    };
    const timer: NodeJS.Timeout = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    session.on('error', (err) => fail(err.message));
    const stream = session.request(headers, { endStream: body === undefined });
    if (body) stream.end(body);
    let status = 0;
    let grpcStatus: string | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      grpcStatus = h['grpc-status'] as string | undefined;
    });
    stream.on('trailers', (t) => (grpcStatus = (t['grpc-status'] as string | undefined) ?? grpcStatus));
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('error', (err) => fail(err.message));
    stream.on('end', () => {
      clearTimeout(timer);
      session.close();
      if (status !== 200) return fail(`HTTP ${status}`);
      if (isGrpc(req)) {
        if (grpcStatus !== '0') return fail(`grpc-status ${grpcStatus ?? 'missing'}`);
        if (body && !Buffer.concat(chunks).equals(body)) return fail('the reply is not the request message');
      }
      resolve();
    });
  });
}
