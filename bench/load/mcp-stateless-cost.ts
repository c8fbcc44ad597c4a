// What the SDK's stateless mode costs the MCP service per request (bench/README.md "MCP"): a
// stateless StreamableHTTPServerTransport serves one request and refuses a second, and an
// McpServer connects to one transport at a time, so every POST to mcp-service.ts builds the
// sample's McpServer (three tools with their zod schemas), a transport, connects and closes
// them. This times that alone, in one process, with no HTTP: the part of the service's CPU per
// call a stateful server with a reused session would not spend.
// Usage: node bench/load/mcp-stateless-cost.ts [iterations]   (prints one JSON line)
import { loadSampleMcp } from '../../src/cli/sample-mcp-server.ts';

const iterations = Number(process.argv[2] ?? 5000);
const { build, StreamableHTTPServerTransport } = await loadSampleMcp();

/** CPU µs per iteration of `step` (user + system of this process), after as many warm-up iterations. */
async function cpuPer(step: () => Promise<void> | void): Promise<number> {
  for (let i = 0; i < iterations; i++) await step();
  const start = process.cpuUsage();
  for (let i = 0; i < iterations; i++) await step();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / iterations;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const buildOnly: number[] = [];
const whole: number[] = [];
for (let round = 0; round < 3; round++) {
  buildOnly.push(await cpuPer(() => void build()));
  whole.push(
    await cpuPer(async () => {
      const server = build();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      await server.connect(transport);
      await transport.close();
      await server.close();
    }),
  );
}
process.stdout.write(`${JSON.stringify({ iterations, buildServerUs: median(buildOnly), buildConnectCloseUs: median(whole) })}\n`);
