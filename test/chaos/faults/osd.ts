// The OSD stops (a full shutdown) and starts again while clients write: their I/O waits for it,
// nothing acknowledged may be lost, and the mounts must carry on.

import type { ChaosServices } from '../env.js';

export async function restartOsd(services: ChaosServices, downMs: number): Promise<void> {
  await services.restartOsd(downMs);
}
