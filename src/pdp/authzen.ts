// OpenID AuthZEN Authorization API 1.0, Access Evaluation: POST {url}/access/v1/evaluation.
// `decision: true` allows; anything else (false, missing, not a boolean) denies.
import { authzenFacts } from './facts.ts';
import { JsonPoster } from './http-pdp.ts';
import { pdpError, type Pdp, type PdpInput, type PdpResult } from './pdp.ts';

export class AuthzenPdp implements Pdp {
  readonly kind = 'authzen';
  private readonly poster: JsonPoster;

  constructor(url: string, timeoutMs: number) {
    this.poster = new JsonPoster(url.replace(/\/+$/, '') + '/access/v1/evaluation', timeoutMs);
  }

  async evaluate(input: PdpInput): Promise<PdpResult> {
    const answer = await this.poster.post(authzenFacts(input), input.requestId);
    if (answer.kind === 'error') return answer;
    const { body, ttlMs } = answer;
    if (typeof body !== 'object' || body === null) return pdpError('bad_answer', 'answer is not a JSON object');
    const decision = (body as { decision?: unknown }).decision;
    const reason = (body as { context?: { reason?: unknown } }).context?.reason;
    const detail = typeof reason === 'string' ? reason.slice(0, 200) : decision === true ? 'authzen: true' : 'authzen: not true';
    return decision === true ? { kind: 'allow', ttlMs, detail } : { kind: 'deny', reason: 'policy_denied', ttlMs, detail };
  }

  close(): Promise<void> {
    return this.poster.close();
  }
}
