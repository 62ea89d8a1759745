// etcd crashes (kill -9) and comes back after `downMs` on the same data dir, as a restarted
// member does: every daemon loses its connection, leases and watches for that long.

import type { ChaosServices } from '../env.js';
import { sleep } from '../wait.js';

export async function etcdCrash(services: ChaosServices, downMs: number): Promise<void> {
  await services.killEtcd();
  await sleep(downMs);
  await services.startEtcd();
}
