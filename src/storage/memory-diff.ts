// The memory twin's export-diff and apply-diff: real `rbd export-diff` v1 files (diff-format.ts)
// from and into its block maps (memory-data.ts), with the addon's rules and errors: no overwrite
// (EEXIST, op open), mode 0600, the start snapshot must exist and the end one must not, a file is
// checked whole before the image changes, cancellation through the signal (ECANCELED). Progress is
// reported once, at the end. Only for the small images of unit tests: streams are held in memory.

import { open, rm } from 'node:fs/promises';
import { encodeDiff, readDiffFile, summarize } from './diff-format.js';
import { RbdError } from './errors.js';
import { applyRecords, diffRecords, truncateBlocks } from './memory-data.js';
import type { MemImage, MemoryPools } from './memory-pools.js';
import type { DiffExport, DiffOptions, DiffSummary, ExportDiffOptions } from './types.js';

export async function exportMemoryDiff(
  pools: MemoryPools,
  pool: string,
  image: string,
  range: { from: string | null; to: string },
  file: string,
  options: ExportDiffOptions,
): Promise<DiffExport> {
  const img = pools.image('rbd_open_read_only', pool, image);
  const to = img.snapshots.get(range.to);
  if (!to) throw pools.err('ENOENT', { op: 'rbd_open_read_only', pool, image, snapshot: range.to, detail: `no snapshot ${range.to}` });
  const from = range.from === null ? null : img.snapshots.get(range.from);
  if (from === undefined) {
    throw pools.err('ENOENT', { op: 'rbd_snap_exists', pool, image, snapshot: range.from!, detail: `the start snapshot ${range.from} does not exist` });
  }
  if (options.signal?.aborted) throw pools.err('ECANCELED', { op: 'rbd_diff_iterate2', pool, image, detail: 'cancelled' });
  const stream = encodeDiff({ from: range.from, to: range.to, size: to.size, records: diffRecords(from?.data ?? null, to.data, to.size) });
  let handle;
  try {
    handle = await open(file, 'wx', 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new RbdError({ errno: e.errno ?? -5, op: 'open', detail: `${e.code}: ${file}` });
  }
  try {
    await handle.writeFile(stream);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(file, { force: true });
    const e = err as NodeJS.ErrnoException;
    throw new RbdError({ errno: e.errno ?? -5, op: 'write', detail: `${e.code}: ${file}` });
  }
  await handle.close();
  options.onProgress?.(to.size, to.size);
  return { ...(await summarize(stream)), wholeObject: false };
}

export async function applyMemoryDiff(
  pools: MemoryPools,
  pool: string,
  image: string,
  file: string,
  options: DiffOptions,
  snapshot: (img: MemImage, name: string) => void,
): Promise<DiffSummary> {
  // Checked whole before the image is touched.
  const { summary, records } = await readDiffFile(file).catch((err: unknown) => {
    throw err instanceof RbdError ? new RbdError({ errno: err.errno, op: err.op, pool, image, detail: err.detail }) : err;
  });
  const img = pools.image('rbd_open', pool, image);
  if (summary.fromSnapshot !== null && !img.snapshots.has(summary.fromSnapshot)) {
    const detail = `the diff starts at snapshot ${summary.fromSnapshot}, which the image does not have`;
    throw pools.err('ENOENT', { op: 'rbd_snap_exists', pool, image, snapshot: summary.fromSnapshot, detail });
  }
  if (summary.toSnapshot !== null && img.snapshots.has(summary.toSnapshot)) {
    const detail = `the diff ends at snapshot ${summary.toSnapshot}, which the image already has`;
    throw pools.err('EEXIST', { op: 'rbd_snap_exists', pool, image, snapshot: summary.toSnapshot, detail });
  }
  if (options.signal?.aborted) throw pools.err('ECANCELED', { op: 'rbd_diff_v1', pool, image, detail: 'cancelled' });
  truncateBlocks(img.data, summary.size);
  img.size = summary.size;
  applyRecords(img.data, records);
  if (summary.toSnapshot !== null) snapshot(img, summary.toSnapshot);
  options.onProgress?.(summary.streamBytes, summary.streamBytes);
  return summary;
}
