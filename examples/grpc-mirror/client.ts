import * as grpc from '@grpc/grpc-js';
import type { EventEmitter } from 'node:events';
import type { GreeterClient, HelloReply, HelloRequest } from './greeter';

// The example's client: one call of each kind through the sidecar, each bounded by a deadline.

export interface CallResult {
  /** How the call reads in the output, e.g. `SayHello({"name":"Ada"})`. */
  readonly call: string;
  readonly replies: HelloReply[];
  /** The gRPC status the call ended with. */
  readonly code: grpc.status;
  readonly details: string;
}

const DEADLINE_MS = 10_000;
const deadline = (): grpc.CallOptions => ({ deadline: Date.now() + DEADLINE_MS });

/** Follows a streaming call to its status, collecting replies; never rejects. */
function settle(call: EventEmitter, replies: HelloReply[]): Promise<grpc.StatusObject> {
  call.on('data', (r: HelloReply) => replies.push(r));
  // Every outcome arrives as the status event; 'error' repeats it.
  call.on('error', () => undefined);
  return new Promise((resolve) => call.once('status', resolve));
}

export function unary(client: GreeterClient, req: HelloRequest): Promise<CallResult> {
  return new Promise((resolve) => {
    client.SayHello(req, deadline(), (err, reply) => {
      resolve({
        call: `SayHello(${JSON.stringify(req)})`,
        replies: reply ? [reply] : [],
        code: err?.code ?? grpc.status.OK,
        details: err?.details ?? '',
      });
    });
  });
}

export async function serverStream(client: GreeterClient, req: HelloRequest): Promise<CallResult> {
  const replies: HelloReply[] = [];
  const status = await settle(client.SayHelloStream(req, deadline()), replies);
  return { call: `SayHelloStream(${JSON.stringify(req)})`, replies, code: status.code, details: status.details };
}

/** Sends each name in turn, each after the reply to the one before, then half-closes. */
export async function bidi(client: GreeterClient, names: readonly string[]): Promise<CallResult> {
  const replies: HelloReply[] = [];
  const call = client.Chat(deadline());
  const done = settle(call, replies);
  let ended = false;
  void done.then(() => (ended = true));
  for (const name of names) {
    if (ended) break;
    const before = replies.length;
    call.write({ name });
    await Promise.race([done, new Promise<void>((resolve) => {
      const check = (): void => {
        if (replies.length <= before) return;
        call.off('data', check);
        resolve();
      };
      call.on('data', check);
    })]);
  }
  call.end();
  const status = await done;
  return { call: `Chat(${names.map((n) => JSON.stringify(n)).join(', ')})`, replies, code: status.code, details: status.details };
}

/** The example's three calls, one after the other; `onResult` sees each as it ends. */
export async function runCalls(client: GreeterClient, onResult: (r: CallResult) => void = () => undefined): Promise<CallResult[]> {
  const calls = [
    () => unary(client, { name: 'Ada' }),
    () => serverStream(client, { name: 'Grace', count: 3 }),
    () => bidi(client, ['Alan', 'Barbara', 'Edsger']),
  ];
  const results: CallResult[] = [];
  for (const call of calls) {
    const r = await call();
    onResult(r);
    results.push(r);
  }
  return results;
}
