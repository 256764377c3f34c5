import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Spawned, startServer } from './processes';

// nginx instances for the bench: each one gets its own prefix dir (conf, pid, logs, temp paths),
// runs in the foreground (daemon off) with one worker, and is removed with its dir on stop.

function header(prefix: string): string {
  return `daemon off;
master_process on;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 16384; }
`;
}

function httpHeader(prefix: string): string {
  return `  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
`;
}

/**
 * A fast upstream answering `ok\n` on `/` (an empty 200 with `emptyBody`); with `statusPort`, also
 * stub_status on that port. With `http2`, the port speaks h2c only (prior knowledge, no upgrade).
 */
export function upstreamConf(prefix: string, port: number, statusPort?: number, emptyBody = false, http2 = false): string {
  const status =
    statusPort === undefined
      ? ''
      : `  server {
    listen 127.0.0.1:${statusPort};
    location = /status { stub_status; }
  }
`;
  return `${header(prefix)}http {
${httpHeader(prefix)}  server {
    listen 127.0.0.1:${port}${http2 ? ' http2' : ''} backlog=4096;
    location / { return 200 "${emptyBody ? '' : 'ok\\n'}"; }
  }
${status}}
`;
}

/**
 * A fast upstream answering `body` on every path as `application/json`, with stub_status on
 * `statusPort`. `body` must hold no `'` and no `$` (nginx would read them as its own syntax).
 */
export function jsonUpstreamConf(prefix: string, port: number, statusPort: number, body: string): string {
  if (/['$\\]/.test(body)) throw new Error("a JSON upstream's body cannot hold ', $ or \\ in an nginx string");
  return `${header(prefix)}http {
${httpHeader(prefix)}  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type application/json;
      return 200 '${body}';
    }
  }
  server {
    listen 127.0.0.1:${statusPort};
    location = /status { stub_status; }
  }
}
`;
}

function upstreamBlock(name: string, port: number): string {
  return `  upstream ${name} {
    server 127.0.0.1:${port};
    keepalive 64;
    keepalive_requests 1000000;
  }
`;
}

/**
 * A reverse proxy to `primaryPort` over keep-alive; with `shadowPort`, every request is also
 * mirrored there through a keep-alive upstream as well. Note: nginx marks mirror subrequests
 * header_only, so it closes the shadow connection instead of reading a response body; it can only
 * reuse shadow connections when the shadow's responses have no body (see --empty-shadow-body).
 */
export function proxyConf(prefix: string, port: number, primaryPort: number, shadowPort?: number): string {
  const keepalive = `      proxy_http_version 1.1;
      proxy_set_header Connection "";
`;
  const mirror = shadowPort === undefined ? '' : `      mirror /mirror;
      mirror_request_body on;
`;
  const mirrorLocation =
    shadowPort === undefined
      ? ''
      : `    location = /mirror {
      internal;
      proxy_pass http://shadow_upstream$request_uri;
${keepalive}    }
`;
  return `${header(prefix)}http {
${httpHeader(prefix)}${upstreamBlock('primary_upstream', primaryPort)}${shadowPort === undefined ? '' : upstreamBlock('shadow_upstream', shadowPort)}  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
${mirror}      proxy_pass http://primary_upstream;
${keepalive}    }
${mirrorLocation}  }
}
`;
}

/**
 * gRPC through nginx: h2c downstream, `grpc_pass` to `primaryPort` over keep-alive; with
 * `shadowPort`, every call is also mirrored there. nginx's grpc module gives each upstream
 * connection one stream at a time (no multiplexing), and a mirror subrequest carries its own URI
 * (`/mirror`) as :path, so the mirror location rewrites it back to the call's path.
 */
export function grpcProxyConf(prefix: string, port: number, primaryPort: number, shadowPort?: number): string {
  const mirror = shadowPort === undefined ? '' : `      mirror /mirror;
      mirror_request_body on;
`;
  const mirrorLocation =
    shadowPort === undefined
      ? ''
      : `    location = /mirror {
      internal;
      rewrite ^ $request_uri break;
      grpc_pass grpc://shadow_grpc;
    }
`;
  return `${header(prefix)}http {
${httpHeader(prefix)}${upstreamBlock('primary_grpc', primaryPort)}${shadowPort === undefined ? '' : upstreamBlock('shadow_grpc', shadowPort)}  server {
    listen 127.0.0.1:${port} http2 backlog=4096;
    location / {
${mirror}      grpc_pass grpc://primary_grpc;
    }
${mirrorLocation}  }
}
`;
}

export interface NginxInstance {
  readonly proc: Spawned;
  readonly prefix: string;
  stop(): Promise<void>;
}

/** Writes `conf(prefix)`, starts nginx pinned to `cpus`, waits for `port`. */
export async function startNginx(label: string, conf: (prefix: string) => string, port: number, cpus?: string): Promise<NginxInstance> {
  // -e: nginx opens its error log before reading the conf; keep it out of /var/log.
  const server = await startServer({
    label: `nginx-${label}`,
    port,
    cpus,
    logs: ['stderr.log', 'error.log'],
    command: (prefix) => {
      const confFile = path.join(prefix, 'nginx.conf');
      fs.writeFileSync(confFile, conf(prefix));
      return { cmd: 'nginx', args: ['-p', prefix, '-e', path.join(prefix, 'error.log'), '-c', confFile] };
    },
  });
  return { proc: server.proc, prefix: server.dir, stop: server.stop };
}

/** The `requests` counter of a stub_status page (it counts the status request itself too). */
export function parseStubRequests(text: string): number {
  const m = /\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n/.exec(text);
  if (!m) throw new Error(`unexpected stub_status output: ${text}`);
  return Number(m[3]);
}
