#!/usr/bin/env node
// volsupervisor: scheduled snapshots and background flattening, led by one elected process.
//   volsupervisor --etcd http://127.0.0.1:2379 --ceph-conf /etc/ceph/ceph.conf
// SIGTERM/SIGINT: resign leadership at once, finish (bounded: see src/common/daemon.ts), exit.
// SIGUSR1: log the status.

import { daemonLogger, openDaemonState, openDaemonStorage, runDaemon, stopOnSignals } from '../common/daemon.js';
import { readFlags } from '../common/flags.js';
import { afterExportHook, parseBackupFailpoints } from '../backups/failpoints.js';
import { trackSupervisor } from '../metrics/families.js';
import { startDaemonMetrics } from '../metrics/server.js';
import { buildCommand, configFromOptions } from './config.js';
import { Supervisor } from './supervisor.js';

const CLOSE_TIMEOUT_MS = 5_000;

runDaemon('volsupervisor', async () => {
  const config = readFlags('volsupervisor', buildCommand(), configFromOptions);
  const log = daemonLogger('volsupervisor', config);
  log.info(
    { etcd: config.etcd, prefix: config.prefix, backend: config.backend, cephConf: config.cephConf, electionTtl: config.electionTtl },
    'volsupervisor starting',
  );

  const failpoints = parseBackupFailpoints(process.env.VOLSUPERVISOR_FAILPOINTS);
  if (Object.keys(failpoints).length > 0) log.warn({ failpoints }, 'VOLSUPERVISOR_FAILPOINTS is set: test-only pauses are active');
  // The metrics endpoint first: a port in use ends the start before anything is connected.
  const metrics = await startDaemonMetrics('volsupervisor', config.metrics, log);
  const storage = await openDaemonStorage(config);
  const state = await openDaemonState(config, 'volsupervisor');
  const supervisor = new Supervisor({
    store: state.store,
    storage,
    logger: log,
    electionTtlSeconds: config.electionTtl,
    scheduler: { tickMs: config.tickMs, concurrency: config.concurrency },
    backups: {
      config: config.backups,
      tickMs: config.backupTickMs,
      afterExport: afterExportHook(failpoints, () => log.warn('failpoint backup-after-export: pausing after the export')),
    },
  });

  trackSupervisor(() => ({ leader: supervisor.isLeader, scheduled: supervisor.scheduled() }));
  stopOnSignals({
    log,
    steps: [
      { what: 'resigning and waiting for running jobs', run: () => supervisor.stop() },
      { what: 'closing the Ceph connection', run: () => storage.close(), timeoutMs: CLOSE_TIMEOUT_MS },
      { what: 'closing the etcd client', run: () => state.close(), timeoutMs: CLOSE_TIMEOUT_MS },
      { what: 'closing the metrics endpoint', run: async () => metrics?.close(), timeoutMs: CLOSE_TIMEOUT_MS },
    ],
  });
  process.on('SIGUSR1', () => {
    supervisor
      .status()
      .then((status) => log.info({ status }, 'status'))
      .catch((err: unknown) => log.warn({ err }, 'status failed'));
  });

  await supervisor.start();
});
