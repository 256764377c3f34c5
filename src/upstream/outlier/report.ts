import type { Host } from '../host';

// How an exchange's results reach its host's outlier monitor, the way Envoy's router reports
// them: the response status when its headers arrive (for gRPC, a grpc-status in those headers,
// mapped to HTTP), a connection as a local-origin success, a reset or failed connection as a
// local-origin failure, and a timeout as one only while no response had started.

/** Envoy's Grpc::Utility::grpcToHttpStatus, by gRPC status code. */
const GRPC_TO_HTTP = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401];

/** The upstream connected (undici's onConnect: the request has a connection or a stream). */
export function reportConnected(host: Host): void {
  host.outlier?.putResult('connect_success');
}

/** Response headers: their status, or the grpc-status a gRPC response carries in them. */
export function reportResponseHead(host: Host, status: number, rawHeaders: ReadonlyArray<Buffer | string>): void {
  const sink = host.outlier;
  if (sink === null) return;
  sink.putHttpResponseCode(grpcStatusOf(rawHeaders) ?? status);
}

/** How an exchange failed; `responseStarted`: response headers had arrived. */
export function reportFailure(host: Host, failure: 'connect_failure' | 'reset' | 'protocol_error' | 'timeout', responseStarted: boolean): void {
  const sink = host.outlier;
  if (sink === null) return;
  if (failure === 'timeout') {
    // A timeout after the headers was already reported by their status.
    if (!responseStarted) sink.putResult('timeout', 504);
    return;
  }
  sink.putResult('connect_failed');
}

/** A gRPC response's grpc-status from its headers, as the HTTP status Envoy maps it to; null if none. */
function grpcStatusOf(raw: ReadonlyArray<Buffer | string>): number | null {
  let grpc = false;
  let status: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Only two names matter: compare lengths before decoding anything.
    if (name.length === 12 && latin1(name).toLowerCase() === 'content-type') {
      grpc = latin1(raw[i + 1]!).toLowerCase().startsWith('application/grpc');
    } else if (name.length === 11 && latin1(name).toLowerCase() === 'grpc-status') {
      status = latin1(raw[i + 1]!).trim();
    }
  }
  if (!grpc || status === null || !/^\d+$/.test(status)) return null;
  return GRPC_TO_HTTP[Number(status)] ?? 500;
}

function latin1(v: Buffer | string): string {
  return typeof v === 'string' ? v : v.toString('latin1');
}
