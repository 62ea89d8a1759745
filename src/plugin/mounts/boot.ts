// Reboots. The mount table (mounts.json) survives a reboot, the mounts, mappings and Docker
// references it describes do not. The table records the kernel's boot id; at start, a table of
// another boot is forgotten before volplugin serves Docker, and the locks its entries held are
// released if this host still holds them (they are never adopted: nothing of them is mounted).

import { readFile } from 'node:fs/promises';
import type { LocalState, LocalVolume } from './local-state.js';

/** Where the kernel tells its boot id (VOLPLUGIN_BOOT_ID_FILE replaces it in tests). */
export const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';

export async function readBootId(file: string = BOOT_ID_FILE): Promise<string> {
  const text = (await readFile(file, 'utf8')).trim();
  if (!text) throw new Error(`${file} is empty: cannot tell this boot from the last one`);
  return text;
}

/**
 * Records `bootId` in the table. A table of another boot is emptied first; returns its entries
 * (what the reboot destroyed). A table of no known boot (written before boot ids were kept) is kept.
 */
export async function forgetOtherBoot(local: LocalState, bootId: string): Promise<LocalVolume[]> {
  const forgotten = local.bootId !== null && local.bootId !== bootId ? local.forgetAll() : [];
  if (local.bootId !== bootId || forgotten.length > 0) {
    local.bootId = bootId;
    await local.save();
  }
  return forgotten;
}
