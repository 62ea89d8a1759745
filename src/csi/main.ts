// `volplugin csi`: the CSI driver (src/plugin/main.ts hands `csi` over to this).
//   volplugin csi --endpoint unix:///csi/csi.sock --mode node --master 127.0.0.1:9005 --etcd ...
// SIGTERM/SIGINT: stop serving and exit; staged volumes stay mounted (as with volplugin), and a
// `volplugin csi` started again within --lock-ttl seconds takes their locks back.

import { daemonLogger, openDaemonStorage, runDaemon, stopOnSignals } from '../common/daemon.js';
import { readFlags } from '../common/flags.js';
import { VERSION } from '../plugin/app.js';
import { parsePluginFailpoints } from '../plugin/failpoints.js';
import type { Storage } from '../storage/types.js';
import { startCsi, type RunningCsi } from './app.js';
import { buildCsiCommand, csiConfigFromOptions } from './config.js';

const CLOSE_TIMEOUT_MS = 5_000;

/** Runs the driver with the flags in process.argv (src/plugin/main.ts removed the `csi` word). */
export function runCsi(): void {
  runDaemon('volplugin csi', async () => {
    const command = buildCsiCommand().version(VERSION);
    const config = readFlags('volplugin csi', command, csiConfigFromOptions);
    const log = daemonLogger('volplugin-csi', config, { pid: process.pid, host: config.hostLabel, mode: config.mode });
    log.info({ version: VERSION, config: { ...config } }, 'volplugin csi starting');
    const failpoints = parsePluginFailpoints(process.env.VOLPLUGIN_FAILPOINTS);
    const bootIdFile = process.env.VOLPLUGIN_BOOT_ID_FILE || undefined;
    // The controller is an API client only: Ceph is opened for the Node service.
    const storage: Storage | null = config.mode === 'controller' ? null : await openDaemonStorage(config);
    let csi: RunningCsi | null = null;
    const onFatal = () => void (csi?.stop() ?? Promise.resolve()).finally(() => process.exit(1));
    csi = await startCsi(config, { storage: storage as Storage, log, failpoints, bootIdFile, onFatal });
    const running = csi;
    stopOnSignals({
      log,
      steps: [
        { what: 'stopping the CSI socket and the host agent', run: () => running.stop() },
        ...(storage ? [{ what: 'closing the Ceph connection', run: () => storage.close(), timeoutMs: CLOSE_TIMEOUT_MS }] : []),
      ],
    });
  });
}
