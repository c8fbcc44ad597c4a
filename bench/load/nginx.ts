// nginx for the comparison cases: terminates the same mTLS (client certificate required) and
// proxies with keep-alive to the same upstream; optionally calls an auth service per request
// (auth_request), as teams do today. The HTTP/2 variants: the same listener with HTTP/2 in
// front of the HTTP/1.1 upstream, and gRPC (`grpc_pass`) to the h2c gRPC service.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export function findNginx(): string | undefined {
  for (const candidate of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx']) if (existsSync(candidate)) return candidate;
  const which = spawnSync('sh', ['-c', 'command -v nginx']);
  const found = which.stdout?.toString().trim();
  return found ? found : undefined;
}

/** nginx's version as [major, minor, patch] (`nginx -v` writes it to stderr). */
export function nginxVersion(binary: string): number[] {
  const text = spawnSync(binary, ['-v']).stderr?.toString() ?? '';
  return (/nginx\/(\d+)\.(\d+)\.(\d+)/.exec(text) ?? ['', '0', '0', '0']).slice(1).map(Number);
}

/** The `listen` line: `http2 on` exists from nginx 1.25.1; before it, HTTP/2 is a `listen` parameter. */
function listen(port: number, http2: boolean, version: number[]): string {
  if (!http2) return `listen 127.0.0.1:${port} ssl;`;
  const [major = 0, minor = 0, patch = 0] = version;
  const modern = major > 1 || (major === 1 && (minor > 25 || (minor === 25 && patch >= 1)));
  return modern ? `listen 127.0.0.1:${port} ssl;\n    http2 on;` : `listen 127.0.0.1:${port} ssl http2;`;
}

export interface NginxOptions {
  prefix: string;
  port: number;
  upstreamPort: number;
  authPort?: number;
  cert: string;
  key: string;
  ca: string;
  /** HTTP/2 on the listener (ALPN h2). */
  http2?: boolean;
  /** gRPC: `grpc_pass` to this h2c port instead of proxy_pass to the HTTP/1.1 upstream (implies http2). */
  grpcPort?: number;
  /** From nginxVersion(); decides how HTTP/2 is switched on. */
  version?: number[];
  /**
   * Idle upstream connections kept (default 64). nginx opens one upstream connection per request
   * in flight (its gRPC proxy does not multiplex either) and closes those beyond this number, so
   * it must cover the load's concurrency or nginx would pay a TCP connect per request.
   */
  keepalive?: number;
}

export function nginxConfig(o: NginxOptions): string {
  const location = o.grpcPort
    ? `grpc_pass grpc://grpcservice;
      grpc_set_header X-Forwarded-Client-Cert "Hash=$ssl_client_fingerprint";`
    : `${o.authPort ? 'auth_request /_auth;' : ''}
      proxy_pass http://service;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-Client-Cert "Hash=$ssl_client_fingerprint";`;
  const auth = o.authPort
    ? `
    location = /_auth {
      internal;
      proxy_pass http://auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Client-Cert-Hash $ssl_client_fingerprint;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }`
    : '';
  return `worker_processes 1;
daemon off;
master_process on;
pid ${o.prefix}/nginx.pid;
error_log ${o.prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${o.prefix}/body;
  proxy_temp_path ${o.prefix}/proxy;
  fastcgi_temp_path ${o.prefix}/fastcgi;
  uwsgi_temp_path ${o.prefix}/uwsgi;
  scgi_temp_path ${o.prefix}/scgi;
  keepalive_requests 1000000;
  upstream service { server 127.0.0.1:${o.upstreamPort}; keepalive ${o.keepalive ?? 64}; }
  ${o.authPort ? `upstream auth { server 127.0.0.1:${o.authPort}; keepalive 64; }` : ''}
  ${o.grpcPort ? `upstream grpcservice { server 127.0.0.1:${o.grpcPort}; keepalive ${o.keepalive ?? 64}; }` : ''}
  server {
    ${listen(o.port, o.http2 === true || o.grpcPort !== undefined, o.version ?? [0, 0, 0])}
    ssl_certificate ${o.cert};
    ssl_certificate_key ${o.key};
    ssl_client_certificate ${o.ca};
    ssl_verify_client on;
    location / {
      ${location}
    }${auth}
  }
}
`;
}
