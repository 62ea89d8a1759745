#!/usr/bin/env node
// volplugin: runs on every container host as root and serves Docker's volume plugin protocol
// (`volplugin csi`: the CSI driver instead, src/csi/main.ts).
//   volplugin --master 127.0.0.1:9005 --etcd http://127.0.0.1:2379 --ceph-conf /etc/ceph/ceph.conf
// SIGTERM/SIGINT: stop serving and exit (bounded: see src/common/daemon.ts); mounted volumes stay
// mounted for their containers, and a volplugin started again within --lock-ttl seconds takes their
// locks and references back.
// Test-only environment (production never sets them): VOLPLUGIN_FAILPOINTS (src/plugin/failpoints.ts)
// and VOLPLUGIN_BOOT_ID_FILE (read the boot id from that file, to simulate a reboot).

import { runCsi } from '../csi/main.js';
import { daemonLogger, openDaemonStorage, runDaemon, stopOnSignals } from '../common/daemon.js';
import { readFlags } from '../common/flags.js';
import { trackMounts } from '../metrics/families.js';
import { startDaemonMetrics } from '../metrics/server.js';
import { startPlugin, VERSION, type RunningPlugin } from './app.js';
import { buildCommand, configFromOptions } from './config.js';
import { parsePluginFailpoints } from './failpoints.js';

const CLOSE_TIMEOUT_MS = 5_000;

// `volplugin csi ...` is the CSI driver (src/csi/main.ts).
// The word is dropped so that its flags parse as the driver's own.
if (process.argv[2] === 'csi') {
  process.argv.splice(2, 1);
  runCsi();
}
else runDaemon('volplugin', async () => {
  const config = readFlags('volplugin', buildCommand().version(VERSION), configFromOptions);
  const log = daemonLogger('volplugin', config, { pid: process.pid, host: config.hostLabel });
  log.info({ version: VERSION, config: { ...config } }, 'volplugin starting');
  const failpoints = parsePluginFailpoints(process.env.VOLPLUGIN_FAILPOINTS);
  const bootIdFile = process.env.VOLPLUGIN_BOOT_ID_FILE || undefined;
  if (Object.keys(failpoints).length > 0 || bootIdFile) {
    log.warn({ failpoints, bootIdFile }, 'VOLPLUGIN_FAILPOINTS or VOLPLUGIN_BOOT_ID_FILE is set: test-only faults are active');
  }

  // The metrics endpoint first: a port in use ends the start before anything is claimed.
  const metrics = await startDaemonMetrics('volplugin', config.metrics, log);
  const storage = await openDaemonStorage(config);
  let plugin: RunningPlugin | null = null;
  const onFatal = () => {
    // Another process has this host id now: stop serving (mounts stay) and exit non-zero.
    void (plugin?.stop() ?? Promise.resolve()).finally(() => process.exit(1));
  };
  plugin = await startPlugin(config, { storage, log, failpoints, bootIdFile, onFatal });
  const running = plugin;
  trackMounts(() => {
    const entries = running.local.all();
    const lost = entries.filter((e) => e.lost).length;
    return { held: entries.length - lost, lost, references: entries.reduce((n, e) => n + e.refs.length, 0) };
  });
  stopOnSignals({
    log,
    steps: [
      { what: 'stopping the Docker socket and the convergence loop', run: () => running.stop() },
      { what: 'closing the Ceph connection', run: () => storage.close(), timeoutMs: CLOSE_TIMEOUT_MS },
      { what: 'closing the metrics endpoint', run: async () => metrics?.close(), timeoutMs: CLOSE_TIMEOUT_MS },
    ],
  });
});
