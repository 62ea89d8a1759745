// Runs volmaster: connects to etcd and Ceph, listens, and closes gracefully (in-flight requests
// finish, new ones get 503, then etcd and Ceph connections close). Everything else is app.ts.

import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { readTokenFile } from '../api/client.js';
import { readSecretFile } from '../common/secret-file.js';
import { openDaemonState } from '../common/daemon.js';
import type { Storage } from '../storage/types.js';
import { createApp, type App } from './app.js';
import { isLoopback, type MasterConfig } from './config.js';
import { parseFailpoints } from './failpoints.js';
import { metricsAuthorizer } from './metrics.js';
import { scrapeTokenAuthorizer, startMetricsServer, type MetricsServer } from '../metrics/server.js';

export interface RunningMaster {
  app: App;
  /** The address it listens on, e.g. http://127.0.0.1:9005. */
  url: string;
  /** The Prometheus endpoint (null: --metrics-listen none). */
  metrics: MetricsServer | null;
  close(): Promise<void>;
}

export interface StartOptions {
  config: MasterConfig;
  log: Logger;
  /** Opens the Ceph connection (main.ts passes openStorage with a timeout). */
  openStorage: () => Promise<Storage>;
}

/** The TLS key and certificate of --tls-key/--tls-cert; the key may not be readable by others. */
async function readTls(config: MasterConfig): Promise<{ key: string; cert: string } | null> {
  if (!config.tlsCert || !config.tlsKey) return null;
  const key = await readSecretFile(config.tlsKey, { what: 'the TLS key', flag: '--tls-key', groupMayRead: true });
  let cert: string;
  try {
    cert = await readFile(config.tlsCert, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the TLS certificate ${config.tlsCert} (${(err as NodeJS.ErrnoException).code ?? 'error'}); check --tls-cert`, { cause: err });
  }
  if (!cert.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`--tls-cert ${config.tlsCert} holds no PEM certificate`);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw new Error(`--tls-key ${config.tlsKey} holds no PEM private key`);
  return { key, cert };
}

export async function startMaster({ config, log, openStorage }: StartOptions): Promise<RunningMaster> {
  const token = config.tokenFile ? await readTokenFile(config.tokenFile) : null;
  const https = await readTls(config);
  const failpoints = parseFailpoints(process.env.VOLMASTER_FAILPOINTS);
  if (Object.keys(failpoints).length > 0) log.warn({ failpoints }, 'VOLMASTER_FAILPOINTS is set: test-only pauses are active');

  // The metrics endpoint first: a port in use ends the start before anything is connected.
  let app: App | null = null;
  const authorize = metricsAuthorizer({ bootstrapToken: token, scrapeToken: await scrapeTokenAuthorizer(config.metrics), tokens: () => app?.tokens ?? null });
  const metrics = config.metrics.listen ? await startMetricsServer({ daemon: 'volmaster', listen: config.metrics.listen, https, authorize, log }) : null;

  const storage = await openStorage();
  const { store } = await openDaemonState(config, 'volmaster'); // app.ts closes it (closeDependencies)
  app = await createApp({
    store,
    storage,
    token,
    https,
    janitorIntervalMs: config.janitorSeconds * 1000,
    backups: config.backups,
    resizeHostTimeoutMs: config.resizeHostSeconds * 1000,
    failpoints,
    closeDependencies: true,
    logger: log,
  });

  const listen = `${config.host}:${config.port}`;
  if (config.insecure) {
    log.warn(
      { listen },
      '--insecure: the API is open, anyone who can reach this port is admin and can create and DELETE volumes and their data; use --token-file instead (see docs/security.md)',
    );
  } else if (!token) {
    log.info({ listen }, 'the API is open to this machine only (loopback, no --token-file)');
  }
  if (token && !https && !isLoopback(config.host)) {
    log.warn({ listen }, 'tokens cross the network in clear: give --tls-cert and --tls-key (see docs/security.md)');
  }

  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const url =
    address && typeof address === 'object'
      ? `${https ? 'https' : 'http'}://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
      : `${https ? 'https' : 'http'}://${config.host}:${config.port}`;
  log.info({ url, etcd: config.etcd, prefix: config.prefix, backend: config.backend, auth: token ? 'tokens' : 'open', tls: Boolean(https) }, 'volmaster listening');

  let closing: Promise<void> | null = null;
  const running = app;
  return {
    app,
    url,
    metrics,
    close: () => (closing ??= Promise.all([running.close(), metrics?.close()]).then(() => undefined)),
  };
}
