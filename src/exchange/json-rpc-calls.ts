// A JSON-RPC route's decision (SPEC "JSON-RPC and MCP routes"): the body is read whole (only
// here: Envoy's with_request_body hung streaming RPCs by reading every body), bounded by
// limits.maxJsonRpcBytes and the header timeout, then every call in it is decided on its own
// through the very same decision path as any request, with the route's action and resource filled
// from the call. A batch passes only if every call does.
import type { Readable } from 'node:stream';
import { badRequest, denial, type Denial } from '../decision/denial.ts';
import type { Authorizer, RequestFacts, Verdict } from '../decision/authorizer.ts';
import { jsonRpcError } from '../forward/deny-response.ts';
import type { Route } from '../routing/route-table.ts';
import { parseJsonRpc, type JsonRpcCall } from '../routing/json-rpc.ts';

export const NOT_JSON = badRequest(415, 'a JSON-RPC route takes Content-Type: application/json');
export const TOO_LARGE = badRequest(413, 'the JSON-RPC body is larger than limits.maxJsonRpcBytes');
export const TOO_SLOW = badRequest(408, 'the JSON-RPC body did not arrive within limits.headersTimeout');
export const NOT_JSON_RPC = denial('bad_request');

export type BodyResult = { readonly body: Buffer } | { readonly refused: Denial } | { readonly gone: true };

/**
 * Reads a request body of at most `maxBytes` within `timeoutMs`. Past either, reading stops at
 * once (the caller refuses, and the connection cannot be reused: the rest was never read).
 */
export function readBody(body: Readable, maxBytes: number, timeoutMs: number, done: (result: BodyResult) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const finish = (result: BodyResult): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    body.off('data', onData);
    body.off('end', onEnd);
    body.off('aborted', onGone);
    body.off('error', onGone);
    body.off('close', onClose);
    if (!('body' in result)) body.pause();
    done(result);
  };
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > maxBytes) finish({ refused: TOO_LARGE });
    else chunks.push(chunk);
  };
  const onEnd = (): void => finish({ body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
  const onGone = (): void => finish({ gone: true });
  const onClose = (): void => void setImmediate(() => finish({ gone: true })); // 'end' comes first on a complete body
  const timer = setTimeout(() => finish({ refused: TOO_SLOW }), timeoutMs);
  body.on('data', onData);
  body.on('end', onEnd);
  body.on('aborted', onGone);
  body.on('error', onGone);
  body.on('close', onClose);
}

/** `{rpc.method}` and `{rpc.name}` of a template, filled from one call. */
function fill(template: string, call: JsonRpcCall): string {
  return template.includes('{rpc.') ? template.replaceAll('{rpc.method}', call.actionMethod).replaceAll('{rpc.name}', call.name) : template;
}

/** What each call was decided: for the per-tool counter. */
export interface CallDecision {
  readonly name: string;
  readonly allow: boolean;
}

export type CallsOutcome = (
  | { readonly allow: true; readonly verdict: Extract<Verdict, { allow: true }> }
  | { readonly allow: false; readonly denial: Denial; /** The JSON-RPC error body: one object, or an array for a batch. */ readonly body: string; readonly audited: boolean }
) & { readonly calls: readonly CallDecision[] };

/**
 * Decides every call of `body` through `authorizer`. `facts` are the request's, made once;
 * each call gets its own route (action filled) and resource. Returns synchronously when every
 * decision did (a cache hit), as the decision path itself does.
 */
export function decideCalls(body: Buffer, authorizer: Authorizer, route: Route, resource: string, facts: Omit<RequestFacts, 'route' | 'resource' | 'rpc'>, requestId: string): CallsOutcome | Promise<CallsOutcome> {
  const parsed = parseJsonRpc(body);
  if (!parsed.ok) {
    // SPEC: 400 bad_request, with a JSON-RPC error body when the call's id could be read.
    const errorBody = parsed.id !== undefined ? jsonRpcError(parsed.id, NOT_JSON_RPC, requestId, -32600) : undefined;
    return { allow: false, denial: NOT_JSON_RPC, body: errorBody ?? '', audited: false, calls: [] };
  }
  const verdicts: (Verdict | Promise<Verdict>)[] = [];
  let pending = false;
  for (const call of parsed.calls) {
    const v = authorizer.authorize({
      ...facts,
      route: { ...route, action: fill(route.action, call) },
      resource: fill(resource, call),
      rpc: { method: call.method, name: call.name, id: call.id },
    });
    if (v instanceof Promise) pending = true;
    verdicts.push(v);
  }
  const settle = (all: readonly Verdict[]): CallsOutcome => outcome(all, parsed.calls, parsed.batch, requestId);
  return pending ? Promise.all(verdicts).then(settle) : settle(verdicts as Verdict[]);
}

function outcome(verdicts: readonly Verdict[], calls: readonly JsonRpcCall[], batch: boolean, requestId: string): CallsOutcome {
  let refused: Denial | undefined;
  const errors: string[] = [];
  let grantId: string | undefined;
  let grantExpMs: number | undefined;
  let postureDeadlineMs: number | undefined;
  const decided = verdicts.map((v, i) => ({ name: calls[i]!.name, allow: v.allow }));
  verdicts.forEach((v, i) => {
    if (!v.allow) {
      refused ??= v.denial;
      errors.push(jsonRpcError(calls[i]!.id, v.denial, requestId));
      return;
    }
    // The exchange rests on every allow's grounds: it ends with the earliest.
    grantId ??= v.grantId;
    if (v.grantExpMs !== undefined) grantExpMs = Math.min(grantExpMs ?? Infinity, v.grantExpMs);
    if (v.postureDeadlineMs !== undefined) postureDeadlineMs = Math.min(postureDeadlineMs ?? Infinity, v.postureDeadlineMs);
  });
  // The decision path has audited each call's refusal.
  if (refused !== undefined) return { allow: false, denial: refused, body: batch ? `[${errors.join(',')}]` : errors[0]!, audited: true, calls: decided };
  return { allow: true, verdict: { allow: true, grantId, grantExpMs, postureDeadlineMs }, calls: decided };
}
