import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import { parseArgs } from 'node:util';
import { GRPC_BENCH_METHOD } from '../lib/h2-requests';

// The gRPC upstream of the bench's grpc rows: a grpc-js server whose one unary method answers
// with the request message as it came (bytes in, bytes out: the proxy never looks inside, so a
// protobuf codec would only add the same cost to every row). It counts the calls it answered;
// GET http://127.0.0.1:<count-port>/__bench_count returns that count.
// Usage: node grpc-echo.js --port P --count-port Q

const identity = (b: Buffer): Buffer => b;

const service: grpc.ServiceDefinition = {
  Unary: {
    path: GRPC_BENCH_METHOD,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: 'unary',
  },
};

function main(): void {
  const { values } = parseArgs({ options: { port: { type: 'string' }, 'count-port': { type: 'string' } } });
  let count = 0;
  const server = new grpc.Server();
  server.addService(service, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      count++;
      done(null, call.request);
    },
  });
  const counter = http.createServer((req, res) => res.end(req.url === '/__bench_count' ? `${count}\n` : ''));
  counter.listen(Number(values['count-port']), '127.0.0.1');
  // The count port opens first: the bench waits for --port, and then reads counts at once.
  counter.once('listening', () => {
    server.bindAsync(`127.0.0.1:${Number(values.port)}`, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err) {
        process.stderr.write(`grpc-echo: ${err.message}\n`);
        process.exit(1);
      }
    });
  });
  process.on('SIGTERM', () => {
    server.forceShutdown();
    process.exit(0);
  });
}

if (require.main === module) main();
