// Growing a filesystem to the size of its (grown) device: the commands that grow each kind
// (argument vectors, never a shell) and whether this process may grow a mounted ext filesystem at
// all. No policy: src/plugin/mounts/mounter.ts decides when (online on a resize-fs request; at the
// next mount for a growth that could not happen online).
//
//   ext2/3/4  resize2fs DEVICE: online while mounted (the kernel's EXT4_IOC_RESIZE_FS, which needs
//             CAP_SYS_RESOURCE), or offline before a mount (after e2fsck -f -p, which resize2fs
//             requires of an unmounted filesystem; no capability needed);
//   xfs       xfs_growfs -d MOUNTPOINT: online only (XFS grows while mounted, never unmounted);
//   btrfs     btrfs filesystem resize max MOUNTPOINT: online only.

import { readFile, statfs } from 'node:fs/promises';
import { run } from './exec.js';
import { deviceSize } from './fs.js';
import { readMountInfo } from './mountinfo.js';
import { growableKind, type GrowableKind } from './superblock.js';

/**
 * A filesystem that could not grow. GROW_FAILED: the tool failed or the type is not one volplugin
 * grows; GROW_DEFERRED: it cannot grow while mounted here, and grows at the volume's next mount.
 */
export class GrowError extends Error {
  constructor(
    message: string,
    readonly code: 'GROW_FAILED' | 'GROW_DEFERRED' = 'GROW_FAILED',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'GrowError';
  }
}

function kindOf(type: string): GrowableKind {
  const kind = growableKind(type);
  if (!kind) throw new GrowError(`volplugin cannot grow a ${type} filesystem (only ext2/3/4, xfs and btrfs): the device is larger, the filesystem stays as it is`);
  return kind;
}

/** The command that grows the filesystem on `device`, mounted at `mountpoint`, to the device's size. */
export function growArgv(type: string, device: string, mountpoint: string): { program: string; args: string[] } {
  switch (kindOf(type)) {
    case 'ext':
      return { program: 'resize2fs', args: [device] };
    case 'xfs':
      return { program: 'xfs_growfs', args: ['-d', mountpoint] };
    case 'btrfs':
      return { program: 'btrfs', args: ['filesystem', 'resize', 'max', mountpoint] };
  }
}

/** How long growing may take: online growth writes new group descriptors and bitmaps. */
const GROW_TIMEOUT_MS = 600_000;

/** Grows the mounted filesystem (see growArgv); a failure is a GrowError quoting the tool. */
export async function growMounted(type: string, device: string, mountpoint: string): Promise<void> {
  const { program, args } = growArgv(type, device, mountpoint);
  if (kindOf(type) === 'ext' && !(await mayResizeExtOnline())) {
    throw new GrowError(
      `growing a mounted ${type} filesystem needs the CAP_SYS_RESOURCE capability, which this volplugin lacks ` +
        '(a container started without it?): it grows at the volume\'s next mount (offline, before mounting), or give volplugin the capability',
      'GROW_DEFERRED',
    );
  }
  try {
    await run(program, args, { timeoutMs: GROW_TIMEOUT_MS });
  } catch (err) {
    throw new GrowError(`${program} could not grow the ${type} filesystem on ${device}: ${(err as Error).message}`, 'GROW_FAILED', { cause: err });
  }
}

/** Whether a filesystem of `type` grows before it is mounted (ext) rather than after (xfs, btrfs). */
export function growsUnmounted(type: string): boolean {
  return growableKind(type) === 'ext';
}

/**
 * Grows an unmounted ext filesystem to its device: `e2fsck -f -p` first (resize2fs refuses an
 * unmounted filesystem not checked since its last mount; -p repairs only what is safe, exit 1 when
 * it did), then `resize2fs DEVICE`. Needs no capability beyond writing the device.
 */
export async function growUnmounted(type: string, device: string): Promise<void> {
  if (!growsUnmounted(type)) throw new GrowError(`a ${type} filesystem grows only while mounted`);
  try {
    await run('e2fsck', ['-f', '-p', device], { timeoutMs: GROW_TIMEOUT_MS, okCodes: [1] });
    await run('resize2fs', [device], { timeoutMs: GROW_TIMEOUT_MS });
  } catch (err) {
    throw new GrowError(`could not grow the ${type} filesystem on ${device} before mounting it: ${(err as Error).message}`, 'GROW_FAILED', { cause: err });
  }
}

/** CAP_SYS_RESOURCE's bit in /proc/PID/status CapEff (linux/capability.h). */
const CAP_SYS_RESOURCE = 24n;

/** Whether this process may grow a mounted ext filesystem (the kernel checks CAP_SYS_RESOURCE). */
export async function mayResizeExtOnline(status = '/proc/self/status'): Promise<boolean> {
  const text = await readFile(status, 'utf8').catch(() => '');
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(text);
  return m ? ((BigInt(`0x${m[1]}`) >> CAP_SYS_RESOURCE) & 1n) === 1n : true;
}

/**
 * A filesystem this much smaller than its device is grown: less is the tail that no filesystem
 * uses (a partial block; XFS leaves a last allocation group under 64 blocks unused).
 */
export const GROW_SLACK_BYTES = 1 << 20;

/** What growing a mounted filesystem did: its type, the device's size, the filesystem's before and after (statfs). */
export interface GrowReport {
  type: string;
  deviceBytes: number;
  beforeBytes: number;
  afterBytes: number;
}

/** The size of the filesystem mounted at `dir` as df shows it (statfs: blocks times block size). */
export async function mountedBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.blocks * s.bsize;
}

/**
 * Grows the filesystem mounted at `mountpoint` from `device` to the device's size: its type is the
 * one the kernel mounted (mountinfo), so a custom format command changes nothing here.
 */
export async function growMountedFilesystem(device: string, mountpoint: string): Promise<GrowReport> {
  const mount = (await readMountInfo()).find((m) => m.mountPoint === mountpoint);
  if (!mount) throw new GrowError(`nothing is mounted at ${mountpoint}: the filesystem grows when the volume is next mounted`, 'GROW_DEFERRED');
  const deviceBytes = await deviceSize(device);
  const beforeBytes = await mountedBytes(mountpoint);
  await growMounted(mount.fsType, device, mountpoint);
  return { type: mount.fsType, deviceBytes, beforeBytes, afterBytes: await mountedBytes(mountpoint) };
}
