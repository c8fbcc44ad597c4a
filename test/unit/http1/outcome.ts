// What a request reader made of a connection's bytes, in one shape for llhttp and for ours, so
// the differential tests compare them with one toEqual.

export interface ParsedRequest {
  method: string;
  target: string;
  version: string;
  fields: string[];
  framing: string;
  keepAlive: boolean;
  upgrade: boolean;
  expect: string;
}

export interface Outcome {
  /** Every head accepted, in order. */
  heads: ParsedRequest[];
  /** The decoded body of every request read to its end (latin1). */
  bodies: string[];
  /** The connection was refused (a parse error, a check failed, or it ended mid-request). */
  refused: boolean;
}
