// The fetch jose uses for a remote JWKS (its `customFetch` option), counting each fetch's result
// for `portcullis_jwks_fetches_total`: an issuer whose keys cannot be fetched refuses every new
// grant it signs, and the operator should see why before the users do.

/** Bounded label values: ok is a 200 (jose still refuses a body that is not a key set), timeout is jose's timeoutDuration, error is the rest. */
export type JwksFetchResult = 'ok' | 'error' | 'timeout';

export function countingFetch(onFetch: (result: JwksFetchResult) => void): typeof fetch {
  return (url, init) =>
    fetch(url, init).then(
      (response) => {
        onFetch(response.status === 200 ? 'ok' : 'error');
        return response;
      },
      (error: unknown) => {
        // jose aborts with AbortSignal.timeout(timeoutDuration): a DOMException named TimeoutError.
        onFetch((error as Error).name === 'TimeoutError' ? 'timeout' : 'error');
        throw error;
      },
    );
}
