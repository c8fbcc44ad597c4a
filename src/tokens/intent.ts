// The declared intent (SPEC "Tokens"): printable text, at most 256 bytes.
const MAX_INTENT_BYTES = 256;

/** The intent header's value, undefined when absent, or null when malformed. */
export function readIntent(value: string | string[] | undefined): string | undefined | null {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_INTENT_BYTES) return null;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return null;
  }
  return value;
}
