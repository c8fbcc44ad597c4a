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
   * Sends the request and streams the answer into `res`. `onFailure` is called only when nothing
   * was written yet (the caller then answers 502/504); after that a failure just ends the response.
   * A client that goes away aborts the upstream request.
   */
  forward(req: IncomingMessage, res: ServerResponse, path: string, headers: string[], onHeaders: (status: number) => void, onFailure: (error: Error) => void): void {
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    this.pool.dispatch(
      { method: req.method as Dispatcher.HttpMethod, path, headers, body: hasBody ? req : null },
      new ResponseRelay(res, onHeaders, onFailure),
    );
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * Relays one upstream response into our response with undici's lowest-level handler API: no
 * intermediate stream, no AbortController; backpressure by pausing the upstream read while our
 * client's socket drains.
 */
class ResponseRelay implements Dispatcher.DispatchHandler {
  private readonly res: ServerResponse;
  private readonly reportStatus: (status: number) => void;
  private readonly reportFailure: (error: Error) => void;
  private controller: Dispatcher.DispatchController | undefined;
  private done = false;

  constructor(res: ServerResponse, onHeaders: (status: number) => void, onFailure: (error: Error) => void) {
    this.res = res;
    this.reportStatus = onHeaders;
    this.reportFailure = onFailure;
    res.once('close', this.onClientClose);
  }

  private readonly onClientClose = (): void => {
    if (!this.done) this.controller?.abort(new Error('client went away'));
  };

  private readonly onDrain = (): void => {
    this.controller?.resume();
  };

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.res.destroyed) controller.abort(new Error('client went away'));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.reportStatus(statusCode);
    const out: string[] = [];
    for (const name in headers) {
      if (isResponseHopByHop(name)) continue;
      const value = headers[name];
      if (Array.isArray(value)) for (const v of value) out.push(name, v);
      else if (value !== undefined) out.push(name, value);
    }
    this.res.writeHead(statusCode, out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', this.onDrain);
    }
  }

  onResponseEnd(): void {
    this.done = true;
    this.res.off('close', this.onClientClose);
    this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.done = true;
    this.res.off('close', this.onClientClose);
    if (this.res.headersSent) this.res.destroy(error);
    else this.reportFailure(error);
  }
}
