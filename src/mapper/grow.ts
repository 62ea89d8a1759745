// Growing the filesystem of a mounted volume after its image grew: the block device is made to
// show the image's new size, then the filesystem's own tool grows it to fill the device, online.
// What the CSI node's NodeExpandVolume (and a stage of a volume made larger than its snapshot)
// runs; issue 15's resize work may take it over.
//
// - krbd follows an image's size by itself (the kernel watches the header); rbd-nbd does too.
//   rbd-fuse shows the image file at its new size, but the loop device in front of it keeps its
//   old size until told (losetup --set-capacity).
// - ext2/3/4: resize2fs DEVICE (online resize needs CAP_SYS_RESOURCE: a container without it gets
//   "Permission denied"); xfs: xfs_growfs MOUNTPOINT; btrfs: btrfs filesystem resize max MOUNTPOINT.

import { run } from './exec.js';
import { readMountInfo } from './mountinfo.js';
import type { Mapping } from './types.js';

export interface GrowResult {
  /** The device's size now, in bytes. */
  deviceBytes: number;
  filesystem: string;
}

async function sizeOf(device: string): Promise<number> {
  const { stdout } = await run('blockdev', ['--getsize64', device], { timeoutMs: 10_000 });
  const size = Number(stdout.trim());
  if (!Number.isSafeInteger(size) || size <= 0) throw new Error(`blockdev --getsize64 ${device} printed ${JSON.stringify(stdout.trim())}`);
  return size;
}

/** The command that grows a mounted filesystem of `type` to its device's size; null for a type volplugin cannot grow. */
export function growCommand(type: string, device: string, mountpoint: string): { program: string; args: string[] } | null {
  if (/^ext[234]$/.test(type)) return { program: 'resize2fs', args: [device] };
  if (type === 'xfs') return { program: 'xfs_growfs', args: [mountpoint] };
  if (type === 'btrfs') return { program: 'btrfs', args: ['filesystem', 'resize', 'max', mountpoint] };
  return null;
}

/** Makes `mapping`'s device show its image's size now (see the top of this file); its size in bytes. */
export async function refreshDevice(mapping: Mapping): Promise<number> {
  const device = mapping.device;
  if (!device) throw new Error(`${mapping.pool}/${mapping.image} has no device`);
  if (mapping.kind === 'fuse') await run('losetup', ['--set-capacity', device], { timeoutMs: 20_000 });
  return sizeOf(device);
}

/** Grows the filesystem mounted at `mountpoint` (on `mapping`'s device) to fill the device, after refreshDevice. */
export async function growMounted(mapping: Mapping, mountpoint: string): Promise<GrowResult> {
  const deviceBytes = await refreshDevice(mapping);
  const mount = (await readMountInfo()).find((m) => m.mountPoint === mountpoint);
  if (!mount) throw new Error(`${mountpoint} is not mounted: nothing to grow`);
  const command = growCommand(mount.fsType, mapping.device!, mountpoint);
  if (!command) throw new Error(`cannot grow a ${mount.fsType} filesystem (volplugin grows ext2/3/4, xfs and btrfs)`);
  try {
    await run(command.program, command.args, { timeoutMs: 600_000 });
  } catch (err) {
    const message = (err as Error).message;
    if (command.program === 'resize2fs' && /Permission denied/.test(message)) {
      throw new Error(`${message}: growing a mounted ext4 filesystem needs CAP_SYS_RESOURCE; run volplugin with it (privileged)`, { cause: err });
    }
    throw err;
  }
  return { deviceBytes, filesystem: mount.fsType };
}
