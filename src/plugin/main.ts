#!/usr/bin/env node
// volplugin: runs on every container host as root and serves Docker's volume plugin protocol.
//   volplugin --master 127.0.0.1:9005 --etcd http://127.0.0.1:2379 --ceph-conf /etc/ceph/ceph.conf
// SIGTERM/SIGINT: stop serving and exit (bounded: see src/common/daemon.ts); mounted volumes stay
// mounted for their containers, and a volplugin started again within --lock-ttl seconds takes their
// locks and references back.

import { daemonLogger, openDaemonStorage, runDaemon, stopOnSignals } from '../common/daemon.js';
import { readFlags } from '../common/flags.js';
import { startPlugin, VERSION } from './app.js';
import { buildCommand, configFromOptions } from './config.js';

const CLOSE_TIMEOUT_MS = 5_000;

runDaemon('volplugin', async () => {
  const config = readFlags('volplugin', buildCommand().version(VERSION), configFromOptions);
  const log = daemonLogger('volplugin', config, { pid: process.pid, host: config.hostLabel });
  log.info({ version: VERSION, config: { ...config } }, 'volplugin starting');

  const storage = await openDaemonStorage(config);
  const plugin = await startPlugin(config, { storage, log });
  stopOnSignals({
    log,
    steps: [
      { what: 'stopping the Docker socket and the convergence loop', run: () => plugin.stop() },
      { what: 'closing the Ceph connection', run: () => storage.close(), timeoutMs: CLOSE_TIMEOUT_MS },
    ],
  });
});
