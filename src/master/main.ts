#!/usr/bin/env node
// volmaster: the control plane's REST API.
//   volmaster --listen 0.0.0.0:9005 --etcd http://127.0.0.1:2379 --ceph-conf /etc/ceph/ceph.conf --token-file /etc/volplugin/token
// SIGTERM/SIGINT: finish in-flight requests (at most 30 s), close etcd and Ceph, exit 0.

import { readFlags } from '../common/flags.js';
import pino from 'pino';
import { connectStorage } from '../storage/index.js';
import { buildCommand, configFromOptions } from './config.js';
import { startMaster } from './server.js';

const SHUTDOWN_TIMEOUT_MS = 30_000;

async function main(): Promise<void> {
  const config = readFlags('volmaster', buildCommand(), configFromOptions);
  const log = pino({ name: 'volmaster', level: config.debug ? 'debug' : 'info' });
  const master = await startMaster({
    config,
    log,
    openStorage: () =>
      connectStorage(config.backend, {
        confPath: config.cephConf ?? undefined,
        keyring: config.cephKeyring ?? undefined,
        clientId: config.cephId,
      }),
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping: finishing requests in flight');
    const timer = setTimeout(() => {
      log.error('requests did not finish within 30 s: exiting anyway');
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS);
    timer.unref();
    master
      .close()
      .then(() => {
        log.info('stopped');
        process.exit(0);
      })
      .catch((err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`volmaster: ${message}\n`);
  process.exit(1);
});
