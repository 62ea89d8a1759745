// Filesystems on mapped devices: probe what a device holds (its first and last bytes, and blkid),
// format (the tenant's command), mount, unmount, and the device number the blkio cgroup wants.

import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_MKFS_ALLOW, formatArgv, type FormatArgv } from '../policy/filesystem.js';
import { run } from './exec.js';
import { filesystemBytes } from './superblock.js';
import { readMountInfo } from './mountinfo.js';

/**
 * What a device holds, as far as formatting is concerned: a filesystem blkid knows; nothing (it
 * reads as zeros where every signature lives); or data blkid does not recognise.
 */
export type DeviceContents =
  | {
      kind: 'filesystem';
      type: string;
      /** Its size by its superblock (null: unknown or a type volplugin does not grow), and the device's: a resize grew the device. */
      sizeBytes?: number | null;
      deviceBytes?: number;
    }
  | { kind: 'empty' }
  | { kind: 'data'; detail: string };

/** The device could not be read (an I/O error, a hung client, a short read): nothing can be decided about it. */
export class DeviceReadError extends Error {
  readonly code = 'DEVICE_UNREADABLE';
  constructor(
    readonly device: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${device} cannot be read: ${detail}`, options);
    this.name = 'DeviceReadError';
  }
}

/**
 * How much of each end of a device must read as zeros for it to count as empty: 1 MiB. Every
 * signature blkid looks for lies there: at the start partition tables (MBR, GPT), the ext2/3/4,
 * XFS, btrfs (64 KiB), LUKS, LVM and swap headers and ZFS's front labels (first 512 KiB); at the
 * end GPT's backup header, MD RAID 0.90/1.0 superblocks (last 64-128 KiB) and ZFS's back labels
 * (last 512 KiB). A fresh thin RBD image reads as zeros everywhere, and reading 2 MiB of it costs
 * a few unallocated objects, which Ceph answers without touching a disk.
 */
export const EDGE_BYTES = 1 << 20;

/** The first bytes that hold the superblocks whose size volplugin reads (btrfs's is at 64 KiB): src/mapper/superblock.ts. */
const SUPERBLOCK_BYTES = 128 * 1024;

/** Alignment of the reads (direct I/O needs whole logical blocks). */
const BLOCK = 4096;

/**
 * The size of a block device in bytes: from sysfs (/sys/class/block/NAME/size, in 512-byte
 * sectors, no process), else `blockdev --getsize64` (an ioctl). Neither does I/O to the device.
 */
export async function deviceSize(device: string): Promise<number> {
  const sectors = await readFile(`/sys/class/block/${path.basename(device)}/size`, 'utf8').then(
    (text) => Number(text.trim()),
    () => Number.NaN,
  );
  if (Number.isSafeInteger(sectors) && sectors > 0) return sectors * 512;
  try {
    const { stdout } = await run('blockdev', ['--getsize64', device], { timeoutMs: 10_000 });
    const size = Number(stdout.trim());
    if (!Number.isSafeInteger(size) || size <= 0) throw new Error(`blockdev printed ${JSON.stringify(stdout.trim())}`);
    return size;
  } catch (err) {
    throw new DeviceReadError(device, `its size is unknown (${(err as Error).message})`, { cause: err });
  }
}

/**
 * Reads `length` bytes at `offset` with direct I/O (no stale page cache), in a child process with a
 * deadline: a device whose client hangs must not block this process. A failed or short read is a
 * DeviceReadError.
 */
async function readRange(device: string, offset: number, length: number): Promise<Buffer> {
  let bytes: Buffer;
  try {
    const { stdoutBytes } = await run(
      'dd',
      [`if=${device}`, 'iflag=direct,skip_bytes,count_bytes', `bs=${64 * 1024}`, `skip=${offset}`, `count=${length}`, 'status=none'],
      { timeoutMs: 60_000, binary: true },
    );
    bytes = Buffer.from(stdoutBytes ?? new Uint8Array());
  } catch (err) {
    throw new DeviceReadError(device, (err as Error).message, { cause: err });
  }
  if (bytes.length !== length) throw new DeviceReadError(device, `read ${bytes.length} of ${length} bytes at offset ${offset}`);
  return bytes;
}

function allZero(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * Reads the device's first EDGE_BYTES (and, when they are zeros, its last): `zeros` when both read
 * as zeros, with the device's size and its first bytes (where superblocks are). Throws
 * DeviceReadError when either cannot be read.
 */
async function readEdges(device: string): Promise<{ zeros: boolean; size: number; head: Buffer }> {
  const size = await deviceSize(device);
  const head = await readRange(device, 0, Math.min(size, EDGE_BYTES));
  if (!allZero(head)) return { zeros: false, size, head };
  if (size <= head.length) return { zeros: true, size, head };
  const tailStart = Math.max(head.length, Math.floor((size - EDGE_BYTES) / BLOCK) * BLOCK);
  return { zeros: allZero(await readRange(device, tailStart, size - tailStart)), size, head };
}

/**
 * True when the first and the last EDGE_BYTES of the device read as zeros; false when they hold
 * anything else. Throws DeviceReadError when either cannot be read.
 */
export async function readsAsZeros(device: string): Promise<boolean> {
  return (await readEdges(device)).zeros;
}

/** blkid's low-level probe (-p: the device itself, not blkid's cache). */
async function blkidProbe(device: string): Promise<Awaited<ReturnType<typeof run>>> {
  try {
    // 2: nothing found, or the device could not be opened; 8: ambivalent (several signatures).
    return await run('blkid', ['-p', '-o', 'export', device], { okCodes: [2, 8], timeoutMs: 30_000 });
  } catch (err) {
    throw new DeviceReadError(device, `blkid failed: ${(err as Error).message}`, { cause: err });
  }
}

/** The filesystem blkid found (exit 0 with a TYPE or PTTYPE), else null. */
function blkidType(result: Awaited<ReturnType<typeof run>>): string | null {
  if (result.exitCode !== 0) return null;
  const fields = parseBlkidExport(result.stdout);
  return fields.TYPE ?? fields.PTTYPE ?? null;
}

export interface ProbeOptions {
  /**
   * The volume is recorded as formatted, so a filesystem is what the device should hold: blkid
   * alone, and when it names one that settles it (blkid read its superblock, so the device can be
   * read). Only when it does not are the device's ends read too, to tell an empty or unreadable
   * device from other data.
   */
  expectFilesystem?: boolean;
}

/**
 * What the device holds. It is read first (both ends, see readsAsZeros), so an unreadable device
 * throws DeviceReadError instead of looking empty; blkid's low-level probe then names a
 * filesystem. blkid exits 2 both for "no signature" and for a device it cannot open: its exit
 * status never decides alone. With `expectFilesystem`, a filesystem blkid finds is the answer at
 * once (see ProbeOptions).
 */
export async function probeDevice(device: string, options: ProbeOptions = {}): Promise<DeviceContents> {
  if (options.expectFilesystem) {
    const type = blkidType(await blkidProbe(device));
    if (type) {
      // Only the superblocks (for a resize the filesystem has not followed yet), not the edges.
      const size = await deviceSize(device);
      const head = await readRange(device, 0, Math.min(size, SUPERBLOCK_BYTES));
      return { kind: 'filesystem', type, sizeBytes: filesystemBytes(type, head), deviceBytes: size };
    }
  }
  // Both only read the device: at once (the edges go through rbd-fuse, blkid is a process start).
  const [{ zeros, size, head }, result] = await Promise.all([readEdges(device), blkidProbe(device)]);
  const type = blkidType(result);
  if (type) return { kind: 'filesystem', type, sizeBytes: filesystemBytes(type, head), deviceBytes: size };
  if (result.exitCode === 0) {
    return { kind: 'data', detail: `blkid finds a signature without a type (${result.stdout.trim().replace(/\n/g, ' ')})` };
  }
  if (result.exitCode === 8) return { kind: 'data', detail: 'blkid finds several conflicting signatures' };
  if (zeros) return { kind: 'empty' };
  return { kind: 'data', detail: `its first or last ${EDGE_BYTES >> 20} MiB are not zeros and blkid finds no filesystem` };
}

/**
 * Removes every signature blkid knows from the device (`wipefs -a`): before formatting again after
 * a first format that did not finish, so that mkfs (mkfs.xfs without -f) does not refuse its own
 * half-written filesystem.
 */
export async function wipeSignatures(device: string): Promise<void> {
  await run('wipefs', ['-a', '-q', device], { timeoutMs: 60_000 });
}

/** `blkid -o export` output (KEY=value lines) as an object. */
export function parseBlkidExport(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

export interface FormatOptions {
  /** The programs this host lets a filesystem command run (volplugin --mkfs-allow). */
  allowed?: readonly string[];
  timeoutMs?: number;
}

/** formatArgv, with what to do when this host refuses the command. */
function hostArgv(command: string, device: string, allowed: readonly string[]): FormatArgv {
  try {
    return formatArgv(command, device, allowed);
  } catch (err) {
    throw new Error(
      `${(err as Error).message}. This host refuses to run it (volplugin --mkfs-allow). The volume was never formatted, so it holds ` +
        'no data: fix the tenant policy (volcli tenant upload), then remove the volume and create it again',
    );
  }
}

/**
 * Runs the tenant's filesystem command for `device`, without a shell: the command is checked
 * again against this host's allowlist (a record in etcd is not trusted), split into program and
 * arguments, `%` replaced by the device (`%%` by `%`), and run in an empty directory of its own so
 * that a relative name in an argument finds nothing (src/policy/filesystem.ts has the rules).
 * A refused command runs nothing.
 */
export async function formatDevice(command: string, device: string, options: FormatOptions = {}): Promise<void> {
  const argv = hostArgv(command, device, options.allowed ?? DEFAULT_MKFS_ALLOW);
  const cwd = await mkdtemp(path.join(tmpdir(), 'volplugin-mkfs-'));
  try {
    await run(argv.program, argv.args, { cwd, timeoutMs: options.timeoutMs ?? 600_000 });
  } finally {
    await rm(cwd, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The options every volume is mounted with. */
export const MOUNT_OPTIONS = 'nosuid,nodev';

/**
 * Mounts `device` on `dir` (created if missing) with nosuid and nodev: a tenant's filesystem may
 * hold set-uid programs or device nodes made elsewhere, which must not work on this host or in
 * the containers (a bind mount of it keeps both flags).
 */
export async function mountDevice(device: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await run('mount', ['-o', MOUNT_OPTIONS, device, dir], { timeoutMs: 60_000 });
}

/** The mounts at exactly `dir` (several when stacked), innermost last. */
/**
 * Writes what the filesystem mounted at `dir` holds in memory to its device and commits its
 * journal (syncfs(2), through coreutils' `sync --file-system`): what an unmount does first.
 */
export async function syncFilesystem(dir: string): Promise<void> {
  await run('sync', ['--file-system', dir], { timeoutMs: 120_000 });
}

export async function mountsAt(dir: string): Promise<number> {
  return (await readMountInfo()).filter((m) => m.mountPoint === dir).length;
}

/** Unmounts everything stacked on `dir`; nothing mounted there counts as success. */
export async function unmountAll(dir: string): Promise<void> {
  for (let i = 0; i < 8 && (await mountsAt(dir)) > 0; i++) {
    await run('umount', [dir], { timeoutMs: 60_000 });
  }
  if ((await mountsAt(dir)) > 0) throw new Error(`${dir} is still mounted after 8 unmounts`);
}

/**
 * The mount flags a bind mount of a volume may be given (the CSI CO's mount_flags): flags of the
 * mount point, which a bind remount can set, and none that would lift nosuid or nodev.
 */
export const BIND_FLAGS: readonly string[] = ['ro', 'noexec', 'noatime', 'nodiratime', 'relatime', 'strictatime', 'nosuid', 'nodev'];

/**
 * Bind-mounts `source` (a volume's mount, or a bind of it) on `target` (created if missing), then
 * sets its flags: always nosuid and nodev (a bind remount clears what it is not given), `ro` when
 * read-only, and `flags` (from BIND_FLAGS). A failure leaves nothing mounted on `target`.
 */
export async function bindMount(source: string, target: string, options: { readonly: boolean; flags?: readonly string[] }): Promise<void> {
  const flags = options.flags ?? [];
  const refused = flags.filter((f) => !BIND_FLAGS.includes(f));
  if (refused.length > 0) throw new Error(`mount flag ${JSON.stringify(refused[0])} is not one a volume's bind mount may have (${BIND_FLAGS.join(', ')})`);
  await mkdir(target, { recursive: true });
  await run('mount', ['--bind', source, target], { timeoutMs: 60_000 });
  const set = new Set(['remount', 'bind', ...MOUNT_OPTIONS.split(','), options.readonly ? 'ro' : 'rw', ...flags.filter((f) => f !== 'ro')]);
  if (options.readonly || flags.includes('ro')) set.delete('rw');
  try {
    await run('mount', ['-o', [...set].join(','), target], { timeoutMs: 60_000 });
  } catch (err) {
    await run('umount', [target], { timeoutMs: 60_000 }).catch(() => undefined);
    throw err;
  }
}
