// /proc/self/mountinfo, parsed (proc(5)): what is mounted where, from which device, of which type.
// The convergence loop learns the host's real state from it, so it must never guess: every field
// is decoded exactly as the kernel escapes it (space, tab, newline and backslash as \ooo).

import { readFile } from 'node:fs/promises';

export interface MountInfo {
  id: number;
  parentId: number;
  /** "MAJ:MIN" of the filesystem's device (0:N for fuse and other virtual filesystems). */
  devNumber: string;
  major: number;
  minor: number;
  /** Root of the mount inside its filesystem (a bind mount of a subdirectory shows it). */
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  /** The mount source, e.g. /dev/loop3, or "rbd-fuse". */
  source: string;
  superOptions: string;
}

/** Undoes the kernel's octal escapes (`\040` is a space). */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Parses one line; null for a line that does not have mountinfo's shape. */
export function parseMountInfoLine(line: string): MountInfo | null {
  const fields = line.trim().split(' ');
  const dash = fields.indexOf('-');
  if (dash < 6 || fields.length < dash + 3) return null;
  const [id, parentId, devNumber, root, mountPoint, options] = fields;
  const [major, minor] = (devNumber ?? '').split(':').map((n) => Number(n));
  if (!id || !parentId || !devNumber || root === undefined || mountPoint === undefined || options === undefined) return null;
  if (!Number.isInteger(major) || !Number.isInteger(minor)) return null;
  return {
    id: Number(id),
    parentId: Number(parentId),
    devNumber,
    major: major!,
    minor: minor!,
    root: unescapeMountField(root),
    mountPoint: unescapeMountField(mountPoint),
    options,
    fsType: fields[dash + 1] ?? '',
    source: unescapeMountField(fields[dash + 2] ?? ''),
    superOptions: fields[dash + 3] ?? '',
  };
}

export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const entry = parseMountInfoLine(line);
    if (entry) out.push(entry);
  }
  return out;
}

export async function readMountInfo(path = '/proc/self/mountinfo'): Promise<MountInfo[]> {
  return parseMountInfo(await readFile(path, 'utf8'));
}

/** True when `child` is `parent` or below it (both absolute, normalised paths). */
export function isBelow(child: string, parent: string): boolean {
  const p = parent.endsWith('/') ? parent : `${parent}/`;
  return child === parent || child.startsWith(p);
}
