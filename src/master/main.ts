#!/usr/bin/env node
// volmaster: the control plane's REST API.
//   volmaster --listen 0.0.0.0:9005 --etcd http://127.0.0.1:2379 --ceph-conf /etc/ceph/ceph.conf --token-file /etc/volplugin/token
// SIGTERM/SIGINT: finish in-flight requests, close etcd and Ceph, exit 0 (bounded: see src/common/daemon.ts).

import { daemonLogger, openDaemonStorage, runDaemon, stopOnSignals } from '../common/daemon.js';
import { readFlags } from '../common/flags.js';
import { buildCommand, configFromOptions } from './config.js';
import { startMaster } from './server.js';

runDaemon('volmaster', async () => {
  const config = readFlags('volmaster', buildCommand(), configFromOptions);
  const log = daemonLogger('volmaster', config);
  const master = await startMaster({ config, log, openStorage: () => openDaemonStorage(config) });
  stopOnSignals({ log, steps: [{ what: 'finishing requests in flight and closing etcd and Ceph', run: () => master.close() }] });
});
