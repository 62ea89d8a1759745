// Runs volmaster: connects to etcd and Ceph, listens, and closes gracefully (in-flight requests
// finish, new ones get 503, then etcd and Ceph connections close). Everything else is app.ts.

import type { Logger } from 'pino';
import { readTokenFile } from '../api/client.js';
import { openDaemonState } from '../common/daemon.js';
import type { Storage } from '../storage/types.js';
import { createApp, type App } from './app.js';
import { isLoopback, type MasterConfig } from './config.js';
import { parseFailpoints } from './failpoints.js';

export interface RunningMaster {
  app: App;
  /** The address it listens on, e.g. http://127.0.0.1:9005. */
  url: string;
  close(): Promise<void>;
}

export interface StartOptions {
  config: MasterConfig;
  log: Logger;
  /** Opens the Ceph connection (main.ts passes openStorage with a timeout). */
  openStorage: () => Promise<Storage>;
}

export async function startMaster({ config, log, openStorage }: StartOptions): Promise<RunningMaster> {
  const token = config.tokenFile ? await readTokenFile(config.tokenFile) : null;
  const failpoints = parseFailpoints(process.env.VOLMASTER_FAILPOINTS);
  if (Object.keys(failpoints).length > 0) log.warn({ failpoints }, 'VOLMASTER_FAILPOINTS is set: test-only pauses are active');

  const storage = await openStorage();
  const { store } = await openDaemonState(config, 'volmaster'); // app.ts closes it (closeDependencies)
  const app = await createApp({
    store,
    storage,
    token,
    janitorIntervalMs: config.janitorSeconds * 1000,
    failpoints,
    closeDependencies: true,
    logger: log,
  });

  if (!token && !isLoopback(config.host)) {
    log.warn(
      { listen: `${config.host}:${config.port}` },
      'the API is open: anyone who can reach this port can create and DELETE volumes and their data; start volmaster with --token-file (see README, Security)',
    );
  }

  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const url =
    address && typeof address === 'object'
      ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
      : `http://${config.host}:${config.port}`;
  log.info({ url, etcd: config.etcd, prefix: config.prefix, backend: config.backend, auth: token ? 'bearer token' : 'open' }, 'volmaster listening');

  let closing: Promise<void> | null = null;
  return {
    app,
    url,
    close: () => (closing ??= app.close()),
  };
}
