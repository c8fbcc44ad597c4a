// One running Portcullis: the proxy, its SVID source, and the admin listener, from a config.
// Used by `portcullis run`, the demo and the integration tests alike.
import type { Server } from 'node:http';
import type { Config } from '../config/schema.ts';
import { createAdminServer } from '../admin/admin-server.ts';
import { FileSvidSource } from '../identity/svid-source.ts';
import { buildGeneration, Proxy } from '../server.ts';
import { createMetrics, type Metrics } from '../telemetry/metrics.ts';
import { createLogger, type Logger } from '../telemetry/logger.ts';

export interface InstanceOptions {
  readonly logger?: Logger;
  /** How often SVID and bundle files are checked for changes. */
  readonly svidPollMs?: number;
}

export interface Instance {
  readonly proxy: Proxy;
  readonly admin: Server;
  readonly metrics: Metrics;
  readonly svidSource: FileSvidSource;
  readonly proxyPort: number;
  readonly adminPort: number;
  close(): Promise<void>;
}

export async function startInstance(config: Config, options: InstanceOptions = {}): Promise<Instance> {
  const logger = options.logger ?? createLogger();
  const metrics = createMetrics();
  const { identity } = config;
  const svidSource = new FileSvidSource({
    certFile: identity.certFile!,
    keyFile: identity.keyFile!,
    bundleFile: identity.bundleFile!,
    trustDomains: identity.trustDomains,
    bundles: identity.bundles,
  });
  const proxy = new Proxy({ generation: buildGeneration(1, config), identity: svidSource.material, metrics, logger });
  svidSource.on('update', (material) => {
    proxy.useIdentity(material);
    metrics.svidReloads.inc({ result: 'ok' });
    logger.info({ spiffe_id: material.id.uri, not_after: material.notAfter.toISOString() }, 'SVID and bundles reloaded');
  });
  svidSource.on('error', (error) => {
    metrics.svidReloads.inc({ result: 'error' });
    logger.warn({ detail: error.message }, 'SVID or bundle change refused; keeping the last good set');
  });
  svidSource.start(options.svidPollMs ?? 1000);

  let shuttingDown = false;
  const admin = createAdminServer({
    metrics,
    notReadyReason: () => (shuttingDown ? 'shutting down' : undefined),
  });
  const proxyPort = await proxy.listen(config.listen.port, config.listen.address);
  const adminPort = await new Promise<number>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(config.admin.port, config.admin.address, () => {
      const address = admin.address();
      resolve(typeof address === 'object' && address ? address.port : config.admin.port);
    });
  });
  logger.info({ spiffe_id: svidSource.material.id.uri, listen: `${config.listen.address}:${proxyPort}`, admin: `${config.admin.address}:${adminPort}` }, 'portcullis is serving');

  return {
    proxy,
    admin,
    metrics,
    svidSource,
    proxyPort,
    adminPort,
    async close() {
      shuttingDown = true;
      svidSource.stop();
      await Promise.all([proxy.close(), new Promise<void>((resolve) => admin.close(() => resolve())).then(() => admin.closeAllConnections())]);
      await proxy.currentGeneration.upstream.close();
    },
  };
}
