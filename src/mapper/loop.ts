// Loop devices (losetup from util-linux): the block device in front of an rbd-fuse image file.
// Direct I/O is on so that O_DIRECT in the container reaches rbd-fuse without the page cache.

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

export async function listLoopDevices(): Promise<LoopDevice[]> {
  const { stdout } = await run('losetup', ['--json', '--list', '--output', 'NAME,BACK-FILE,DIO'], { timeoutMs: 10_000 });
  return parseLosetupJson(stdout);
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
