#!/usr/bin/env node
// volsupervisor: scheduled snapshots and background flattening, led by one elected process.
//   volsupervisor --etcd http://127.0.0.1:2379 --ceph-conf /etc/ceph/ceph.conf
// SIGTERM/SIGINT: resign leadership at once, finish (bounded), exit. SIGUSR1: log the status.

import { hostname } from 'node:os';
import { readFlags } from '../common/flags.js';
import pino from 'pino';
import { EtcdKV } from '../state/etcd.js';
import { StateStore } from '../state/store.js';
import { withTimeout } from '../common/timeout.js';
import { connectStorage } from '../storage/index.js';
import { buildCommand, configFromOptions } from './config.js';
import { Supervisor } from './supervisor.js';

const CLOSE_TIMEOUT_MS = 5_000;

async function main(): Promise<void> {
  const config = readFlags('volsupervisor', buildCommand(), configFromOptions);
  const log = pino({ name: 'volsupervisor', level: config.debug ? 'debug' : 'info' });
  log.info(
    { etcd: config.etcd, prefix: config.prefix, backend: config.backend, cephConf: config.cephConf, electionTtl: config.electionTtl },
    'volsupervisor starting',
  );

  const storage = await connectStorage(config.backend, {
    confPath: config.cephConf ?? undefined,
    keyring: config.cephKeyring ?? undefined,
    clientId: config.cephId,
  });
  const kv = new EtcdKV({ endpoints: config.etcd });
  const store = new StateStore(kv, { prefix: config.prefix, owner: `volsupervisor@${hostname()}:${process.pid}` });
  const supervisor = new Supervisor({
    store,
    storage,
    logger: log,
    electionTtlSeconds: config.electionTtl,
    scheduler: { tickMs: config.tickMs, concurrency: config.concurrency },
  });

  let stopping: Promise<void> | null = null;
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ signal }, 'stopping');
    stopping = (async () => {
      await supervisor.stop();
      await withTimeout(storage.close(), CLOSE_TIMEOUT_MS, 'closing the Ceph connection').catch((err: unknown) =>
        log.warn({ err }, 'closing the Ceph connection failed'),
      );
      await withTimeout(store.close(), CLOSE_TIMEOUT_MS, 'closing the etcd client').catch((err: unknown) => log.warn({ err }, 'closing the etcd client failed'));
      log.info('stopped');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGUSR1', () => {
    supervisor
      .status()
      .then((status) => log.info({ status }, 'status'))
      .catch((err: unknown) => log.warn({ err }, 'status failed'));
  });

  await supervisor.start();
}

main().catch((err: unknown) => {
  process.stderr.write(`volsupervisor: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
