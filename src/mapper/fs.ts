// Filesystems on mapped devices: probe (blkid), format (the tenant's command), mount, unmount,
// and the device number the blkio cgroup wants.

import { mkdir } from 'node:fs/promises';
import { renderFormatCommand } from '../policy/filesystem.js';
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

/**
 * Runs the tenant's filesystem command for `device` in a POSIX shell: every `%` becomes the
 * single-quoted device path, `%%` a literal `%`.
 */
export async function formatDevice(command: string, device: string, options: { timeoutMs?: number } = {}): Promise<void> {
  if (!/%/.test(command.replace(/%%/g, ''))) {
    throw new Error(`the filesystem command ${JSON.stringify(command)} has no % for the device: fix the tenant policy`);
  }
  const line = renderFormatCommand(command, device);
  await run('sh', ['-c', line], { timeoutMs: options.timeoutMs ?? 600_000 });
}

/** Mounts `device` on `dir` (created if missing). */
export async function mountDevice(device: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await run('mount', [device, dir], { timeoutMs: 60_000 });
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
