import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as fs from 'node:fs';
import * as path from 'node:path';

// The example's Greeter service (greeter.proto, loaded at run time): the server that both the
// primary and the mirror run, logging every message they receive, and a typed client.

export const GREETER_SERVICE = 'sidemirror.example.v1.Greeter';
const MAX_COUNT = 10;
/** Names longer than this are cut in replies and logs: a client's input never grows a log line without bound. */
const MAX_NAME = 200;

export interface HelloRequest {
  name?: string;
  count?: number;
}

export interface HelloReply {
  message: string;
  index: number;
  server: string;
  authority: string;
}

/**
 * A file of this example's source folder, from the compiled dist/examples/grpc-mirror/ or the
 * sources (ts-jest): tsc does not copy .proto and .yaml files, so they are read where they are.
 */
export function exampleFile(name: string): string {
  const candidates = [path.join(__dirname, name), path.resolve(__dirname, '..', '..', '..', 'examples', 'grpc-mirror', name)];
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) throw new Error(`${name} not found in ${candidates.join(' or ')}`);
  return found;
}

let loaded: grpc.ServiceClientConstructor | undefined;

/** The Greeter client constructor (its `.service` is the service definition), loaded once. */
export function greeterDefinition(): grpc.ServiceClientConstructor {
  if (!loaded) {
    const definition = protoLoader.loadSync(exampleFile('greeter.proto'), { keepCase: false, longs: Number, defaults: true });
    const root = grpc.loadPackageDefinition(definition) as unknown as { sidemirror: { example: { v1: { Greeter: grpc.ServiceClientConstructor } } } };
    loaded = root.sidemirror.example.v1.Greeter;
  }
  return loaded;
}

const cut = (name: string | undefined): string => (name ?? '').slice(0, MAX_NAME);

/**
 * Serves Greeter on 127.0.0.1:port (h2c). `log` gets one line per request message
 * (`received <path> from <authority>: name "<name>"`) and one per finished call (`ended <path> …`).
 */
export async function startGreeter(o: { name: string; port: number; log: (line: string) => void }): Promise<grpc.Server> {
  const reply = (call: { getHost(): string }, message: string, index: number): HelloReply =>
    ({ message, index, server: o.name, authority: call.getHost() });
  const received = (call: { getPath(): string; getHost(): string }, req: HelloRequest): string => {
    const name = cut(req.name);
    o.log(`received ${call.getPath()} from ${call.getHost()}: name ${JSON.stringify(name)}`);
    return name;
  };
  const ended = (call: { getPath(): string }, inCount: number, outCount: number): void =>
    o.log(`ended ${call.getPath()} (${inCount} message(s) in, ${outCount} out)`);

  const handlers: grpc.UntypedServiceImplementation = {
    SayHello: (call: grpc.ServerUnaryCall<HelloRequest, HelloReply>, done: grpc.sendUnaryData<HelloReply>) => {
      const name = received(call, call.request);
      done(null, reply(call, `Hello, ${name}!`, 0));
      ended(call, 1, 1);
    },
    SayHelloStream: (call: grpc.ServerWritableStream<HelloRequest, HelloReply>) => {
      const name = received(call, call.request);
      const count = Math.min(Math.max(call.request.count ?? 0, 1), MAX_COUNT);
      for (let i = 0; i < count; i++) call.write(reply(call, `Hello #${i + 1}, ${name}!`, i));
      call.end();
      ended(call, 1, count);
    },
    Chat: (call: grpc.ServerDuplexStream<HelloRequest, HelloReply>) => {
      let index = 0;
      call.on('data', (req: HelloRequest) => {
        const name = received(call, req);
        call.write(reply(call, `Hello, ${name}!`, index++));
      });
      // A client that goes away mid-call is no error for the server.
      call.on('error', () => undefined);
      call.on('end', () => {
        call.end();
        ended(call, index, index);
      });
    },
  };
  const server = new grpc.Server();
  server.addService(greeterDefinition().service, handlers);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${o.port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return server;
}

/** The generic client's methods, typed. */
export interface GreeterClient extends grpc.Client {
  SayHello(req: HelloRequest, opts: grpc.CallOptions, cb: grpc.requestCallback<HelloReply>): grpc.ClientUnaryCall;
  SayHelloStream(req: HelloRequest, opts?: grpc.CallOptions): grpc.ClientReadableStream<HelloReply>;
  Chat(opts?: grpc.CallOptions): grpc.ClientDuplexStream<HelloRequest, HelloReply>;
}

export interface ClientOptions {
  /** The :authority sent, e.g. localhost:10051 (the client dials 127.0.0.1 whatever it says). */
  readonly authority: string;
  /** TLS: the CA the sidecar's certificate must chain to, and the name it must carry. */
  readonly tls?: { readonly ca: Buffer; readonly servername: string };
}

/** A Greeter client for 127.0.0.1:port; close it by its own handle. */
export function greeterClient(port: number, o: ClientOptions): GreeterClient {
  const credentials = o.tls ? grpc.credentials.createSsl(o.tls.ca) : grpc.credentials.createInsecure();
  const options: grpc.ChannelOptions = {
    'grpc.default_authority': o.authority,
    ...(o.tls ? { 'grpc.ssl_target_name_override': o.tls.servername } : {}),
  };
  return new (greeterDefinition())(`127.0.0.1:${port}`, credentials, options) as unknown as GreeterClient;
}
