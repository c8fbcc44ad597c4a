// The facts a remote PDP receives, in AuthZEN's shape (SPEC "Remote PDPs"): subject, action,
// resource, context. OPA gets the same object as `input`. Grant claims go in, never the token.
import type { PdpInput } from './pdp.ts';

export interface AuthzenRequest {
  subject: { type: 'workload'; id: string; properties: { posture?: Record<string, unknown>; posture_tier?: string } };
  action: { name: string; properties: { method: string } };
  resource: { type: string; id: string; properties: { route: string; sensitivity: string } };
  context: { grant?: Record<string, unknown>; intent?: string; request_id: string; time: string };
}

export function authzenFacts(input: PdpInput): AuthzenRequest {
  const colon = input.resource.indexOf(':');
  const subjectProperties: AuthzenRequest['subject']['properties'] = {};
  if (input.posture) {
    subjectProperties.posture = { ...input.posture.posture };
    if (input.posture.tier) subjectProperties.posture_tier = input.posture.tier;
  }
  const context: AuthzenRequest['context'] = { request_id: input.requestId, time: new Date(input.nowMs).toISOString() };
  if (input.grant) context.grant = { ...input.grant.claims };
  if (input.intent !== undefined) context.intent = input.intent;
  return {
    subject: { type: 'workload', id: input.subject, properties: subjectProperties },
    action: { name: input.action, properties: { method: input.method } },
    resource: { type: colon === -1 ? input.resource : input.resource.slice(0, colon), id: input.resource, properties: { route: input.route, sensitivity: input.sensitivity } },
    context,
  };
}

/** `Cache-Control: max-age=N` caps the TTL; `no-store`/`no-cache` means do not cache (0). */
export function ttlFromCacheControl(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const value = (Array.isArray(header) ? header.join(',') : header).toLowerCase();
  if (/(^|[,\s])(no-store|no-cache)([,\s=]|$)/.test(value)) return 0;
  const match = /(?:^|[,\s])max-age\s*=\s*"?(\d+)"?/.exec(value);
  return match ? Number(match[1]) * 1000 : undefined;
}
