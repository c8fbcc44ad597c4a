// How the decision path asks a PDP: with `pdp.timeout` as a deadline, whatever the kind. A PDP
// that answers nothing in time is an error value (`timeout`), as Envoy's ext_authz filter treats
// a check that outlives its timeout: failure mode is config, not a code path per client.
// This is also the one place where a bug becomes a value: a PDP kind reports every expected
// failure as a PdpError (SPEC STYLE "A failure is a value"), so a throw or a rejection that
// still reaches here is our own code failing, reported as `error` and denied 503 like any other
// PDP failure (fail closed), never an allow and never cached.
import { pdpError, type Pdp, type PdpError, type PdpInput, type PdpResult } from './pdp.ts';

function bug(error: unknown): PdpError {
  return pdpError('error', error instanceof Error ? error.message : String(error));
}

/** The PDP's answer, or an error value; a synchronous PDP (embedded) stays synchronous. */
export function evaluateWithin(pdp: Pdp, input: PdpInput, timeoutMs: number): PdpResult | Promise<PdpResult> {
  let answer: PdpResult | Promise<PdpResult>;
  try {
    answer = pdp.evaluate(input);
  } catch (error) {
    return bug(error);
  }
  if (!(answer instanceof Promise)) return answer;
  return new Promise<PdpResult>((resolve) => {
    const timer = setTimeout(() => resolve(pdpError('timeout', `no answer within ${timeoutMs} ms`)), timeoutMs);
    answer.then(
      (result) => {
        clearTimeout(timer);
        resolve(result);
      },
      (error: unknown) => {
        clearTimeout(timer);
        resolve(bug(error));
      },
    );
  });
}
