// Block I/O throttling of one device for the processes of one cgroup.
//
// cgroup v1 (blkio controller): four files, each taking "MAJ:MIN LIMIT" per write; LIMIT 0 removes
// the device's rule:
//   blkio.throttle.read_iops_device  blkio.throttle.write_iops_device
//   blkio.throttle.read_bps_device   blkio.throttle.write_bps_device
// cgroup v2: one file, io.max, taking "MAJ:MIN rbps=N wbps=N riops=N wiops=N" ("max" = no limit;
// keys left out keep their value).
//
// v1 throttling is not hierarchical for these files as measured here (a parent's limit left a
// child's process unthrottled): write the container's own cgroup. Every write goes through a
// writer that makes exactly one write(2) (the kernel takes one line per write); the kernel rejects
// a device it does not know (ENODEV) or a malformed line (EINVAL).

import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

/** Writes `data` into a cgroup file with one write(2). */
export type CgroupWriter = (file: string, data: string) => Promise<void>;

export interface DeviceNumber {
  major: number;
  minor: number;
}

/** Per-device limits in operations or bytes per second; 0 = unlimited, absent = leave as is. */
export interface BlkioLimits {
  readIops?: number;
  writeIops?: number;
  readBps?: number;
  writeBps?: number;
}

const V1_FILES: ReadonlyArray<[keyof BlkioLimits, string]> = [
  ['writeIops', 'blkio.throttle.write_iops_device'],
  ['readIops', 'blkio.throttle.read_iops_device'],
  ['writeBps', 'blkio.throttle.write_bps_device'],
  ['readBps', 'blkio.throttle.read_bps_device'],
];

const V2_KEYS: ReadonlyArray<[keyof BlkioLimits, string]> = [
  ['readBps', 'rbps'],
  ['writeBps', 'wbps'],
  ['readIops', 'riops'],
  ['writeIops', 'wiops'],
];

function checkDevice(dev: DeviceNumber): string {
  for (const key of ['major', 'minor'] as const) {
    const v = dev[key];
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`dev.${key} must be a non-negative integer, got ${v}`);
  }
  return `${dev.major}:${dev.minor}`;
}

function checkLimit(key: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`limits.${key} must be a non-negative integer, got ${v}`);
  return v;
}

/** The cgroup v1 files to write and the line each gets, for the limits given (absent ones: none). */
export function blkioV1Writes(dev: DeviceNumber, limits: BlkioLimits): Array<{ file: string; value: string }> {
  const d = checkDevice(dev);
  const out: Array<{ file: string; value: string }> = [];
  for (const [key, file] of V1_FILES) {
    const v = limits[key];
    if (v !== undefined) out.push({ file, value: `${d} ${checkLimit(key, v)}` });
  }
  return out;
}

/** The cgroup v2 io.max line for the limits given (0 = "max"); null when no limit is given. */
export function ioMaxLine(dev: DeviceNumber, limits: BlkioLimits): string | null {
  const d = checkDevice(dev);
  const parts: string[] = [];
  for (const [key, word] of V2_KEYS) {
    const v = limits[key];
    if (v !== undefined) parts.push(`${word}=${checkLimit(key, v) > 0 ? v : 'max'}`);
  }
  return parts.length ? `${d} ${parts.join(' ')}` : null;
}

/** Writes the limits into a v1 blkio cgroup directory, one file per limit. */
export async function applyBlkioV1(cgroupDir: string, dev: DeviceNumber, limits: BlkioLimits, write: CgroupWriter): Promise<void> {
  for (const { file, value } of blkioV1Writes(dev, limits)) await write(path.join(cgroupDir, file), value);
}

/** Writes the limits into a v2 cgroup directory's io.max. */
export async function applyIoMax(cgroupDir: string, dev: DeviceNumber, limits: BlkioLimits, write: CgroupWriter): Promise<void> {
  const line = ioMaxLine(dev, limits);
  if (line !== null) await write(path.join(cgroupDir, 'io.max'), line);
}

/** Parses a v1 throttle file ("MAJ:MIN N" lines) into limit per "MAJ:MIN". */
export function parseV1Throttle(content: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of content.split('\n')) {
    const m = /^(\d+:\d+)\s+(\d+)$/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Parses io.max ("MAJ:MIN rbps=.. wbps=.. riops=.. wiops=.." lines; "max" = 0 = unlimited). */
export function parseIoMax(content: string): Map<string, Required<BlkioLimits>> {
  const out = new Map<string, Required<BlkioLimits>>();
  for (const line of content.split('\n')) {
    const [dev, ...kvs] = line.trim().split(/\s+/);
    if (!dev || !/^\d+:\d+$/.test(dev)) continue;
    const limits: Required<BlkioLimits> = { readIops: 0, writeIops: 0, readBps: 0, writeBps: 0 };
    for (const kv of kvs) {
      const [word, value] = kv.split('=');
      const key = V2_KEYS.find(([, w]) => w === word)?.[0];
      if (key && value !== undefined) limits[key] = value === 'max' ? 0 : Number(value);
    }
    out.set(dev, limits);
  }
  return out;
}

/** The current v1 limits of a device in a cgroup directory (0 = none). */
export async function readBlkioV1(cgroupDir: string, dev: DeviceNumber): Promise<Required<BlkioLimits>> {
  const d = checkDevice(dev);
  const out: Required<BlkioLimits> = { readIops: 0, writeIops: 0, readBps: 0, writeBps: 0 };
  for (const [key, file] of V1_FILES) {
    out[key] = parseV1Throttle(await readFile(path.join(cgroupDir, file), 'utf8')).get(d) ?? 0;
  }
  return out;
}

/** major:minor of a block device node (Linux's dev_t encoding). */
export async function deviceNumberOf(devicePath: string): Promise<DeviceNumber> {
  const st = await stat(devicePath, { bigint: true });
  if (!st.isBlockDevice()) throw new TypeError(`${devicePath} is not a block device`);
  return decodeDev(st.rdev);
}

/** Splits a Linux dev_t (glibc's gnu_dev_major/minor layout) into major and minor. */
export function decodeDev(rdev: bigint): DeviceNumber {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}
