// A simulated reboot of a host: everything a reboot destroys goes (the volplugin process, its
// rbd-fuse clients, the containers' writers, every mount and loop device of the host), the boot id
// changes (VOLPLUGIN_BOOT_ID_FILE, a test hook read instead of /proc/sys/kernel/random/boot_id),
// and volplugin starts again on the same state dir: what survives a reboot on disk.

import type { ChaosHost } from '../hosts.js';
import { cleanupBelow, killAll, processesBelow } from '../proc.js';

/** Power off: processes killed, mounts and loop devices of the host gone. Returns when it happened. */
export async function powerOff(host: ChaosHost): Promise<number> {
  await host.kill9();
  const at = Date.now();
  killAll(await processesBelow('journal-io', host.dir));
  // Only this host's directory: its rbd-fuse clients, the loop devices on their files, its mounts.
  await cleanupBelow(host.dir);
  host.dropRefs();
  return at;
}

/** Power on: a new boot id, volplugin started again on the same state dir. */
export async function powerOn(host: ChaosHost): Promise<void> {
  await host.newBootId();
  await host.restart();
}
