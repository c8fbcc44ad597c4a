// OPA's Data API: POST {url} with {"input": facts}. `result` is a boolean or
// {allow, reason?, ttl?}; an undefined document (no `result`) denies.
import { authzenFacts } from './facts.ts';
import { JsonPoster } from './http-pdp.ts';
import { pdpError, type Pdp, type PdpInput, type PdpResult } from './pdp.ts';

function answer(allow: boolean, detail: string, ttlMs: number | undefined): PdpResult {
  return allow ? { kind: 'allow', ttlMs, detail } : { kind: 'deny', reason: 'policy_denied', ttlMs, detail };
}

export class OpaPdp implements Pdp {
  readonly kind = 'opa';
  private readonly poster: JsonPoster;

  constructor(url: string, timeoutMs: number) {
    this.poster = new JsonPoster(url, timeoutMs);
  }

  async evaluate(input: PdpInput): Promise<PdpResult> {
    const posted = await this.poster.post({ input: authzenFacts(input) }, input.requestId);
    if (posted.kind === 'error') return posted;
    const { body, ttlMs } = posted;
    if (typeof body !== 'object' || body === null) return pdpError('bad_answer', 'answer is not a JSON object');
    // An undefined document denies: it is an answer, not an error.
    if (!('result' in body)) return answer(false, 'opa: undefined document', ttlMs);
    const result = (body as { result: unknown }).result;
    if (typeof result === 'boolean') return answer(result, `opa: ${result}`, ttlMs);
    if (typeof result === 'object' && result !== null) {
      const { allow, reason, ttl } = result as { allow?: unknown; reason?: unknown; ttl?: unknown };
      const ttlCap = typeof ttl === 'number' && ttl >= 0 ? ttl * 1000 : undefined;
      const detail = typeof reason === 'string' ? reason.slice(0, 200) : `opa: allow=${String(allow)}`;
      return answer(allow === true, detail, ttlCap === undefined ? ttlMs : Math.min(ttlCap, ttlMs ?? Infinity));
    }
    return pdpError('bad_answer', 'result is neither a boolean nor an object');
  }

  close(): Promise<void> {
    return this.poster.close();
  }
}
