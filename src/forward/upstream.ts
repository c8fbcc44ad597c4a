// Forwarding to the service over an undici keep-alive pool (TCP or unix socket). Bodies stream
// both ways: the inbound request is the upstream body, and the upstream response is written
// straight into our response (undici's `stream`, no intermediate Readable).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import { isResponseHopByHop } from './headers.ts';
import type { DenyReason } from '../decision/denial.ts';

export interface UpstreamOptions {
  /** `http://host:port` or `unix:/path/to.sock`. */
  readonly url: string;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly connections: number;
}

export type UpstreamFailure = Extract<DenyReason, 'upstream_unavailable' | 'upstream_timeout'>;

export function classifyUpstreamError(error: unknown): UpstreamFailure {
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError || error instanceof undiciErrors.ConnectTimeoutError) {
    return 'upstream_timeout';
  }
  return 'upstream_unavailable';
}

export class Upstream {
  readonly pool: Pool;

  constructor(options: UpstreamOptions) {
    const common = {
      connections: options.connections,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connectTimeout: options.connectTimeoutMs,
      keepAliveTimeout: 30_000,
      pipelining: 1,
    };
    this.pool = options.url.startsWith('unix:')
      ? new Pool('http://localhost', { ...common, socketPath: options.url.slice('unix:'.length) })
      : new Pool(options.url, common);
  }

  /**
   * Sends the request and streams the answer into `res`. Resolves when done; rejects only before
   * any response header was written (the caller then answers 502/504). A client that goes away
   * aborts the upstream request.
   */
  forward(req: IncomingMessage, res: ServerResponse, path: string, headers: string[], onHeaders: (status: number) => void): Promise<void> {
    const controller = new AbortController();
    const abort = (): void => {
      if (!res.writableFinished) controller.abort();
    };
    res.once('close', abort);
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    const options: Dispatcher.RequestOptions = {
      method: req.method as Dispatcher.HttpMethod,
      path,
      headers,
      body: hasBody ? req : null,
      signal: controller.signal,
    };
    return this.pool
      .stream(options, ({ statusCode, headers: upstreamHeaders }) => {
        onHeaders(statusCode);
        const out: string[] = [];
        for (const name in upstreamHeaders) {
          if (isResponseHopByHop(name)) continue;
          const value = upstreamHeaders[name];
          if (Array.isArray(value)) for (const v of value) out.push(name, v);
          else if (value !== undefined) out.push(name, value);
        }
        res.writeHead(statusCode, out);
        return res;
      })
      .then(
        () => {
          res.off('close', abort);
        },
        (error: unknown) => {
          res.off('close', abort);
          throw error;
        },
      );
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
