// Filesystems on mapped devices: probe (blkid), format (the tenant's command), mount, unmount,
// and the device number the blkio cgroup wants.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_MKFS_ALLOW, formatArgv, type FormatArgv } from '../policy/filesystem.js';
import { run } from './exec.js';
import { readMountInfo } from './mountinfo.js';

/**
 * The filesystem type blkid finds on `device`, or null when the device carries no signature at all
 * (a fresh image: "first use"). Low-level probing (-p) reads the device itself, not blkid's cache.
 */
export async function probeFilesystem(device: string): Promise<string | null> {
  // blkid exits 2 when it finds nothing to report.
  const { stdout, exitCode } = await run('blkid', ['-p', '-o', 'export', device], { okCodes: [2], timeoutMs: 30_000 });
  if (exitCode === 2) return null;
  const fields = parseBlkidExport(stdout);
  return fields.TYPE ?? fields.PTTYPE ?? 'unknown';
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
