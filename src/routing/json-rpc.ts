// JSON-RPC 2.0 request bodies (SPEC "JSON-RPC and MCP routes"): where the privileged action is in
// the body, not the path (MCP's Streamable HTTP: every call is `POST /mcp`). The body is scanned
// strictly before it is parsed: JSON syntax, nesting at most 64 deep, and no object with the same
// key twice (JSON.parse keeps the last one; a service's parser may keep the first, and then the
// call we judged is not the call it runs). Each call yields what the route's templates take:
// `{rpc.method}` (the method, `/` read as `.`) and `{rpc.name}` (params.name, else params.uri, else `-`).

export interface JsonRpcCall {
  /** As sent: `tools/call`. */
  readonly method: string;
  /** The action template's `{rpc.method}`: `tools.call`. */
  readonly actionMethod: string;
  /** `params.name` (a tool or prompt), else `params.uri` (a resource), else `-`. */
  readonly name: string;
  /** The call's id; undefined for a notification. */
  readonly id: string | number | null | undefined;
}

export type JsonRpcBody =
  | { readonly ok: true; readonly calls: readonly JsonRpcCall[]; readonly batch: boolean }
  | { readonly ok: false; readonly problem: string; /** The id of the (single) call, when one could be read. */ readonly id: string | number | null | undefined };

export const MAX_BATCH = 100;
const MAX_DEPTH = 64;
/** Method and name are policy input, audit fields and label-free strings: printable, bounded. */
const MAX_TEXT = 256;

/** Parses and checks a JSON-RPC 2.0 body (UTF-8 bytes). */
export function parseJsonRpc(body: Buffer): JsonRpcBody {
  let text: string;
  try {
    text = UTF8.decode(body);
  } catch {
    return { ok: false, problem: 'the body is not valid UTF-8', id: undefined };
  }
  const problem = new Scanner(text).document();
  if (problem !== undefined) return { ok: false, problem, id: undefined };
  const value: unknown = JSON.parse(text);
  if (Array.isArray(value)) {
    if (value.length === 0) return { ok: false, problem: 'an empty batch', id: undefined };
    if (value.length > MAX_BATCH) return { ok: false, problem: `a batch of more than ${MAX_BATCH} calls`, id: undefined };
    const calls: JsonRpcCall[] = [];
    for (const item of value) {
      const call = readCall(item);
      if (typeof call === 'string') return { ok: false, problem: `a call in the batch: ${call}`, id: undefined };
      calls.push(call);
    }
    return { ok: true, calls, batch: true };
  }
  const call = readCall(value);
  if (typeof call === 'string') return { ok: false, problem: call, id: readableId(value) };
  return { ok: true, calls: [call], batch: false };
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function readableId(value: unknown): string | number | null | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const id = (value as Record<string, unknown>).id;
  return typeof id === 'string' || typeof id === 'number' || id === null ? id : undefined;
}

function printable(text: string): boolean {
  if (text.length === 0 || text.length > MAX_TEXT) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) return false;
  }
  return true;
}

/** One call object, or what is wrong with it. */
function readCall(value: unknown): JsonRpcCall | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON-RPC request object';
  const call = value as Record<string, unknown>;
  if (call.jsonrpc !== '2.0') return 'jsonrpc must be "2.0"';
  if (typeof call.method !== 'string') return 'method must be a string';
  if (!printable(call.method)) return `method must be 1 to ${MAX_TEXT} printable characters`;
  const id = call.id;
  if (id !== undefined && id !== null && typeof id !== 'string' && typeof id !== 'number') return 'id must be a string, a number or null';
  const params = call.params;
  if (params !== undefined && (params === null || typeof params !== 'object')) return 'params must be an object or an array';
  let name = '-';
  if (params !== undefined && !Array.isArray(params)) {
    const p = params as Record<string, unknown>;
    const named = typeof p.name === 'string' ? p.name : typeof p.uri === 'string' ? p.uri : undefined;
    if (named !== undefined) {
      if (!printable(named)) return `params.name and params.uri must be 1 to ${MAX_TEXT} printable characters`;
      name = named;
    }
  }
  return { method: call.method, actionMethod: call.method.replaceAll('/', '.'), name, id: id as JsonRpcCall['id'] };
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** A strict JSON scanner: RFC 8259 syntax, a depth limit, and no duplicate keys in any object. */
class Scanner {
  private readonly text: string;
  private at = 0;

  constructor(text: string) {
    this.text = text;
  }

  document(): string | undefined {
    this.space();
    const problem = this.value(0);
    if (problem !== undefined) return problem;
    this.space();
    return this.at === this.text.length ? undefined : 'bytes after the JSON value';
  }

  private space(): void {
    const t = this.text;
    while (this.at < t.length) {
      const c = t.charCodeAt(this.at);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      this.at++;
    }
  }

  private value(depth: number): string | undefined {
    const c = this.text[this.at];
    if (c === '{' || c === '[') {
      if (depth >= MAX_DEPTH) return `nested deeper than ${MAX_DEPTH}`;
      return c === '{' ? this.object(depth + 1) : this.array(depth + 1);
    }
    if (c === '"') return typeof this.string() === 'string' ? undefined : 'a malformed string';
    for (const word of ['true', 'false', 'null']) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return undefined;
      }
    }
    NUMBER.lastIndex = this.at;
    if (NUMBER.test(this.text)) {
      this.at = NUMBER.lastIndex;
      return undefined;
    }
    return this.at >= this.text.length ? 'the body ends early' : 'not JSON';
  }

  private object(depth: number): string | undefined {
    this.at++; // {
    const keys = new Set<string>();
    this.space();
    if (this.text[this.at] === '}') {
      this.at++;
      return undefined;
    }
    for (;;) {
      if (this.text[this.at] !== '"') return 'an object key must be a string';
      const key = this.string();
      if (key === undefined) return 'a malformed string';
      if (keys.has(key)) return `the key ${JSON.stringify(key.slice(0, 64))} appears twice in one object`;
      keys.add(key);
      this.space();
      if (this.text[this.at] !== ':') return 'expected ":" after an object key';
      this.at++;
      this.space();
      const problem = this.value(depth);
      if (problem !== undefined) return problem;
      this.space();
      const next = this.text[this.at++];
      if (next === '}') return undefined;
      if (next !== ',') return 'expected "," or "}" in an object';
      this.space();
    }
  }

  private array(depth: number): string | undefined {
    this.at++; // [
    this.space();
    if (this.text[this.at] === ']') {
      this.at++;
      return undefined;
    }
    for (;;) {
      const problem = this.value(depth);
      if (problem !== undefined) return problem;
      this.space();
      const next = this.text[this.at++];
      if (next === ']') return undefined;
      if (next !== ',') return 'expected "," or "]" in an array';
      this.space();
    }
  }

  /** A string literal at `at`: its decoded value, or undefined if malformed. */
  private string(): string | undefined {
    const t = this.text;
    const start = ++this.at; // past the opening quote
    let escaped = false;
    while (this.at < t.length) {
      const c = t.charCodeAt(this.at);
      if (c === 0x22) {
        const raw = t.slice(start, this.at++);
        if (!escaped) return raw;
        try {
          return JSON.parse(`"${raw}"`) as string;
        } catch {
          return undefined;
        }
      }
      if (c < 0x20) return undefined; // RFC 8259 7: controls must be escaped
      if (c === 0x5c) {
        escaped = true;
        this.at += 2;
        continue;
      }
      this.at++;
    }
    return undefined;
  }
}
