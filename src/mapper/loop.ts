// Loop devices (losetup from util-linux): the block device in front of an rbd-fuse image file.
// Direct I/O is on so that O_DIRECT in the container reaches rbd-fuse without the page cache.
// Which devices are attached to what is read from sysfs (what losetup --list reads too), without
// starting a process: the mount path asks several times per Mount and Unmount.

import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { run } from './exec.js';

export interface LoopDevice {
  /** /dev/loopN */
  device: string;
  /** The backing file; a " (deleted)" suffix is removed and reported in `deleted`. */
  backingFile: string;
  deleted: boolean;
  directIo: boolean;
}

interface LosetupJson {
  loopdevices?: Array<{ name?: unknown; 'back-file'?: unknown; dio?: unknown }>;
}

/** Parses `losetup --json --list` (an empty output means no loop device is attached). */
export function parseLosetupJson(text: string): LoopDevice[] {
  if (!text.trim()) return [];
  const parsed = JSON.parse(text) as LosetupJson;
  const out: LoopDevice[] = [];
  for (const entry of parsed.loopdevices ?? []) {
    if (typeof entry.name !== 'string' || typeof entry['back-file'] !== 'string') continue;
    let file = entry['back-file'];
    const deleted = file.endsWith(' (deleted)');
    if (deleted) file = file.slice(0, -' (deleted)'.length);
    out.push({ device: entry.name, backingFile: file, deleted, directIo: entry.dio === true || entry.dio === '1' });
  }
  return out;
}

/** One attached loop device from its sysfs attributes (`backing_file` ends with a newline). */
export function loopFromSysfs(name: string, backingFile: string, dio: string): LoopDevice {
  let file = backingFile.endsWith('\n') ? backingFile.slice(0, -1) : backingFile;
  const deleted = file.endsWith(' (deleted)');
  if (deleted) file = file.slice(0, -' (deleted)'.length);
  return { device: `/dev/${name}`, backingFile: file, deleted, directIo: dio.trim() === '1' };
}

const SYS_BLOCK = '/sys/block';

/**
 * The attached loop devices, from <sysBlock>/loopN/loop/{backing_file,dio} (only attached devices
 * have them). Falls back to `losetup --list` where sysfs shows no block devices at all.
 */
export async function listLoopDevices(sysBlock = SYS_BLOCK): Promise<LoopDevice[]> {
  const names = await readdir(sysBlock).catch(() => null);
  if (names === null) {
    const { stdout } = await run('losetup', ['--json', '--list', '--output', 'NAME,BACK-FILE,DIO'], { timeoutMs: 10_000 });
    return parseLosetupJson(stdout);
  }
  const found = await Promise.all(
    names
      .filter((n) => /^loop\d+$/.test(n))
      .map(async (name) => {
        const dir = path.join(sysBlock, name, 'loop');
        const backing = await readFile(path.join(dir, 'backing_file'), 'utf8').catch(() => null);
        if (backing === null) return null; // not attached (or detached while we looked)
        const dio = await readFile(path.join(dir, 'dio'), 'utf8').catch(() => '0');
        return loopFromSysfs(name, backing, dio);
      }),
  );
  return found.filter((l): l is LoopDevice => l !== null).sort((a, b) => loopNumber(a.device) - loopNumber(b.device));
}

function loopNumber(device: string): number {
  return Number(device.slice('/dev/loop'.length));
}

/** Attaches `file` to the first free loop device with direct I/O; returns /dev/loopN. */
export async function attachLoop(file: string): Promise<string> {
  const { stdout } = await run('losetup', ['--find', '--show', '--direct-io=on', file], { timeoutMs: 20_000 });
  const device = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(device)) throw new Error(`losetup attached ${file} but printed ${JSON.stringify(device)}, not /dev/loopN`);
  return device;
}

/** Makes a loop device take its backing file's size now (after the file grew), in place. */
export async function setLoopCapacity(device: string): Promise<void> {
  await run('losetup', ['--set-capacity', device], { timeoutMs: 20_000 });
}

/** Detaches a loop device; a device that is already free counts as success. */
export async function detachLoop(device: string): Promise<void> {
  const loops = await listLoopDevices();
  if (!loops.some((l) => l.device === device)) return;
  await run('losetup', ['--detach', device], { timeoutMs: 20_000 });
}
