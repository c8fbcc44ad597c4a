// What AuthZEN and OPA share: a JSON POST over an undici keep-alive pool, with a deadline, a
// body size cap, and every failure (connect, timeout, 5xx, 4xx, garbage) returned as a PdpError
// value (SPEC STYLE "A failure is a value") so it can never become an allow. undici throws; its
// throws stop here.
import { createRequire } from 'node:module';
import type { Pool } from 'undici';
import { pdpError, type PdpError } from './pdp.ts';
import { ttlFromCacheControl } from './facts.ts';

const MAX_ANSWER_BYTES = 64 * 1024;
// undici (~110 modules, ~30 MiB of RSS) loads when the first AuthZEN or OPA client is built, not
// whenever this file is imported: the embedded PDP's `run` never needs it (test/budgets/start-modules.json).
const require = createRequire(import.meta.url);

export interface JsonAnswer {
  readonly kind: 'answer';
  readonly body: unknown;
  readonly ttlMs: number | undefined;
}

export class JsonPoster {
  private readonly pool: Pool;
  private readonly path: string;
  private readonly timeoutMs: number;

  constructor(url: string, timeoutMs: number, connections = 64) {
    const parsed = new URL(url);
    this.path = parsed.pathname + parsed.search;
    this.timeoutMs = timeoutMs;
    const { Pool: UndiciPool } = require('undici') as typeof import('undici');
    this.pool = new UndiciPool(parsed.origin, { connections, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connectTimeout: timeoutMs, keepAliveTimeout: 30_000 });
  }

  async post(body: unknown, requestId: string): Promise<JsonAnswer | PdpError> {
    let response;
    try {
      response = await this.pool.request({
        method: 'POST',
        path: this.path,
        headers: { 'content-type': 'application/json', accept: 'application/json', 'x-request-id': requestId },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const name = (error as Error).name;
      const outcome = name === 'TimeoutError' || name === 'HeadersTimeoutError' || name === 'ConnectTimeoutError' ? 'timeout' : 'error';
      return pdpError(outcome, `${(error as NodeJS.ErrnoException).code ?? name}: ${(error as Error).message}`);
    }
    let text = '';
    try {
      for await (const chunk of response.body) {
        text += (chunk as Buffer).toString('utf8');
        if (text.length > MAX_ANSWER_BYTES) {
          response.body.destroy();
          return pdpError('bad_answer', `answer larger than ${MAX_ANSWER_BYTES} bytes`);
        }
      }
    } catch (error) {
      return pdpError('error', `answer broken off: ${(error as Error).message}`);
    }
    if (response.statusCode !== 200) return pdpError('error', `HTTP ${response.statusCode}`);
    try {
      return { kind: 'answer', body: JSON.parse(text) as unknown, ttlMs: ttlFromCacheControl(response.headers['cache-control']) };
    } catch {
      return pdpError('bad_answer', 'answer is not JSON');
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
