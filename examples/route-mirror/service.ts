import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

// The sandbox's tiny service (Envoy's shared/python/tracing/service.py, in Node): for
// GET /{type}/{n} it prints the Host it received and an access-log line with the request line,
// then answers 404 unless n is its SERVICE_NAME.

export interface ServiceOptions {
  readonly serviceName: string;
  readonly port: number;
  readonly host?: string;
  readonly log?: (line: string) => void;
}

export async function startService(o: ServiceOptions): Promise<http.Server> {
  const log = o.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const server = http.createServer((req, res) => {
    log(`Host: ${req.headers.host ?? ''}`);
    const match = /^\/([^/?]+)\/([^/?]+)/.exec(req.url ?? '');
    let status = 404;
    let body = '404: Not Found';
    if (match && match[2] === o.serviceName) {
      status = 200;
      body = `Hello from behind Envoy (service ${match[2]})!\n`;
    }
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(body);
      const addr = req.socket.remoteAddress ?? '-';
      log(`${addr} [${new Date().toISOString()}] "${req.method} ${req.url} HTTP/${req.httpVersion}" ${status} ${Buffer.byteLength(body)} "-" "${req.headers['user-agent'] ?? '-'}"`);
    });
  });
  await new Promise<void>((resolve) => server.listen(o.port, o.host ?? '127.0.0.1', resolve));
  return server;
}

if (require.main === module) {
  const serviceName = process.env.SERVICE_NAME ?? '1';
  const port = Number(process.env.PORT ?? 8080);
  // Loopback unless told otherwise (docker compose sets HOST=0.0.0.0 inside its network).
  const host = process.env.HOST ?? '127.0.0.1';
  void startService({ serviceName, port, host }).then((s) => {
    process.stdout.write(`service ${serviceName} listening on ${(s.address() as AddressInfo).port}\n`);
    process.on('SIGTERM', () => s.close(() => process.exit(0)));
    process.on('SIGINT', () => s.close(() => process.exit(0)));
  });
}
