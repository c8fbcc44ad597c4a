// The demo's sample service: answers with what it was sent (method, path, the identity headers
// Portcullis added), so a newcomer sees exactly what a service behind the sidecar receives.
import { createServer, type Server } from 'node:http';

const SHOWN = ['x-forwarded-client-cert', 'x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'x-jit-grant-id'];

export function createSampleUpstream(): Server {
  return createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on('end', () => {
      const headers: Record<string, string | string[] | undefined> = {};
      for (const name of SHOWN) if (req.headers[name] !== undefined) headers[name] = req.headers[name];
      const body = JSON.stringify({ service: 'sample-upstream', method: req.method, path: req.url, received_body_bytes: bytes, headers }, null, 2) + '\n';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
}
