// nginx for the comparison cases: terminates the same mTLS (client certificate required) and
// proxies with keep-alive to the same upstream; optionally calls an auth service per request
// (auth_request), as teams do today.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export function findNginx(): string | undefined {
  for (const candidate of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx']) if (existsSync(candidate)) return candidate;
  const which = spawnSync('sh', ['-c', 'command -v nginx']);
  const found = which.stdout?.toString().trim();
  return found ? found : undefined;
}

export function nginxConfig(o: { prefix: string; port: number; upstreamPort: number; authPort?: number; cert: string; key: string; ca: string }): string {
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
  upstream service { server 127.0.0.1:${o.upstreamPort}; keepalive 64; }
  ${o.authPort ? `upstream auth { server 127.0.0.1:${o.authPort}; keepalive 64; }` : ''}
  server {
    listen 127.0.0.1:${o.port} ssl;
    ssl_certificate ${o.cert};
    ssl_certificate_key ${o.key};
    ssl_client_certificate ${o.ca};
    ssl_verify_client on;
    location / {
      ${o.authPort ? 'auth_request /_auth;' : ''}
      proxy_pass http://service;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-Client-Cert "Hash=$ssl_client_fingerprint";
    }${auth}
  }
}
`;
}
