// OPA's Data API: POST {url} with {"input": facts}. `result` is a boolean or
// {allow, reason?, ttl?}; an undefined document (no `result`) denies.
import { authzenFacts } from './facts.ts';
import { JsonPoster } from './http-pdp.ts';
import { PdpUnavailable, type Pdp, type PdpInput, type PdpResult } from './pdp.ts';

export class OpaPdp implements Pdp {
  readonly kind = 'opa';
  private readonly poster: JsonPoster;

  constructor(url: string, timeoutMs: number) {
    this.poster = new JsonPoster(url, timeoutMs);
  }

  async evaluate(input: PdpInput): Promise<PdpResult> {
    const { body, ttlMs } = await this.poster.post({ input: authzenFacts(input) }, input.requestId);
    if (typeof body !== 'object' || body === null) throw new PdpUnavailable('bad_answer', 'answer is not a JSON object');
    if (!('result' in body)) return { allow: false, reason: 'policy_denied', detail: 'opa: undefined document', ttlMs };
    const result = (body as { result: unknown }).result;
    if (typeof result === 'boolean') return { allow: result, reason: result ? undefined : 'policy_denied', detail: `opa: ${result}`, ttlMs };
    if (typeof result === 'object' && result !== null) {
      const { allow, reason, ttl } = result as { allow?: unknown; reason?: unknown; ttl?: unknown };
      const ttlCap = typeof ttl === 'number' && ttl >= 0 ? ttl * 1000 : undefined;
      return {
        allow: allow === true,
        reason: allow === true ? undefined : 'policy_denied',
        detail: typeof reason === 'string' ? reason.slice(0, 200) : `opa: allow=${String(allow)}`,
        ttlMs: ttlCap === undefined ? ttlMs : Math.min(ttlCap, ttlMs ?? Infinity),
      };
    }
    throw new PdpUnavailable('bad_answer', 'result is neither a boolean nor an object');
  }

  close(): Promise<void> {
    return this.poster.close();
  }
}
