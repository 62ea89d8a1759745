// volmaster killed in the middle of a request. VOLMASTER_FAILPOINTS (src/master/failpoints.ts)
// pauses a create at a named step, so that the kill lands exactly there; a remove has no such
// point and is killed after a random delay instead.

import type { TestMaster } from '../../helpers/plugin-harness.js';

/** A create pauses `ms` after writing its intent and again after creating its image. */
export function createFailpoints(ms: number): Record<string, string> {
  return { VOLMASTER_FAILPOINTS: `after-intent=${ms},after-image-create=${ms}` };
}

export async function killMaster(master: TestMaster): Promise<void> {
  await master.proc.kill9();
}

export async function restartMaster(master: TestMaster): Promise<void> {
  await master.restart();
}
