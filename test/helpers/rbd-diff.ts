// Test helpers for the `rbd export-diff` format (v1) and the real `rbd` tool: build a stream from
// records (written here independently of native/diff_stream.cc, so the two check each other),
// checksum an image or snapshot through `rbd export`, list every snapshot namespace.

import { createHash, randomBytes } from 'node:crypto';
import { execa } from 'execa';

export type DiffRecord = { w: [offset: number, data: Buffer] } | { z: [offset: number, length: number] };

export interface DiffSpec {
  from?: string;
  to?: string;
  size: number;
  records: DiffRecord[];
  /** Leave out the end record (a truncated stream). */
  noEnd?: boolean;
}

function le32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}

function le64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}

/** An `rbd diff v1` stream. */
export function diffStream(spec: DiffSpec): Buffer {
  const parts: Buffer[] = [Buffer.from('rbd diff v1\n')];
  const name = (tag: string, value: string) => parts.push(Buffer.from(tag), le32(Buffer.byteLength(value)), Buffer.from(value));
  if (spec.from) name('f', spec.from);
  if (spec.to) name('t', spec.to);
  parts.push(Buffer.from('s'), le64(spec.size));
  for (const r of spec.records) {
    if ('w' in r) parts.push(Buffer.from('w'), le64(r.w[0]), le64(r.w[1].length), r.w[1]);
    else parts.push(Buffer.from('z'), le64(r.z[0]), le64(r.z[1]));
  }
  if (!spec.noEnd) parts.push(Buffer.from('e'));
  return Buffer.concat(parts);
}

export const random = (n: number): Buffer => randomBytes(n);

/** The `rbd` CLI with the test cluster's CEPH_CONF (from the environment). */
export async function rbd(...args: string[]): Promise<string> {
  const r = await execa('rbd', args, { timeout: 120_000 });
  return r.stdout;
}

/** rbd import-diff of a stream given as bytes, through stdin. */
export async function rbdImportDiff(stream: Buffer, spec: string): Promise<void> {
  await execa('rbd', ['import-diff', '--no-progress', '-', spec], { input: stream, timeout: 120_000 });
}

/** sha256 of `rbd export` of POOL/IMAGE[@SNAP]: the bytes the image (or snapshot) reads as. */
export async function imageDigest(spec: string): Promise<string> {
  const child = execa('rbd', ['export', '--no-progress', spec, '-'], { encoding: 'buffer', buffer: false, timeout: 120_000 });
  const hash = createHash('sha256');
  for await (const chunk of child.stdout!) hash.update(chunk as Buffer);
  await child;
  return hash.digest('hex');
}

export interface SnapAll {
  id: number;
  name: string;
  namespace: { type: string; group?: string; 'group snap'?: string; pool?: string };
}

/** `rbd snap ls --all`: snapshots of every namespace (group snapshots included). */
export async function snapsAll(spec: string): Promise<SnapAll[]> {
  return JSON.parse(await rbd('snap', 'ls', '--all', '--format', 'json', spec)) as SnapAll[];
}

/** User snapshot names of an image, in order. */
export async function userSnaps(spec: string): Promise<string[]> {
  return (JSON.parse(await rbd('snap', 'ls', '--format', 'json', spec)) as { name: string }[]).map((s) => s.name);
}
