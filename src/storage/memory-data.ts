// The memory twin's image contents, so that its export-diff and apply-diff are the real thing in
// small: sparse blocks of 4 KiB (a block that was never written, or was discarded, is absent and
// reads as zeros), copied into each snapshot when it is taken. A diff between two block maps is
// what librbd's diff iteration reports: blocks whose contents or presence differ; a block that is
// gone, or reads as zeros, becomes a 'z' record, as the addon writes it.

import type { DiffRecord } from './diff-format.js';

export const BLOCK = 4096;

/** Block index -> its 4 KiB; Buffers are never changed in place (a snapshot shares them). */
export type BlockMap = Map<number, Buffer>;

function isZero(buf: Buffer): boolean {
  for (const byte of buf) if (byte !== 0) return false;
  return true;
}

/** Writes `data` at `offset` (within the image: the caller checks). */
export function writeBlocks(blocks: BlockMap, offset: number, data: Buffer): void {
  let done = 0;
  while (done < data.length) {
    const at = offset + done;
    const index = Math.floor(at / BLOCK);
    const within = at % BLOCK;
    const n = Math.min(BLOCK - within, data.length - done);
    const block = Buffer.from(blocks.get(index) ?? Buffer.alloc(BLOCK));
    data.copy(block, within, done, done + n);
    blocks.set(index, block);
    done += n;
  }
}

/** Zeroes `length` bytes at `offset`: whole blocks are dropped (deallocated), partial ones zeroed. */
export function zeroBlocks(blocks: BlockMap, offset: number, length: number): void {
  let done = 0;
  while (done < length) {
    const at = offset + done;
    const index = Math.floor(at / BLOCK);
    const within = at % BLOCK;
    const n = Math.min(BLOCK - within, length - done);
    if (n === BLOCK) blocks.delete(index);
    else if (blocks.has(index)) {
      const block = Buffer.from(blocks.get(index)!);
      block.fill(0, within, within + n);
      blocks.set(index, block);
    }
    done += n;
  }
}

/** Drops what lies beyond `size` (a shrink). */
export function truncateBlocks(blocks: BlockMap, size: number): void {
  for (const index of [...blocks.keys()]) {
    const start = index * BLOCK;
    if (start >= size) blocks.delete(index);
    else if (start + BLOCK > size) zeroBlocks(blocks, size, start + BLOCK - size);
  }
}

/** The first `size` bytes the blocks read as. */
export function readBlocks(blocks: BlockMap, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (const [index, block] of blocks) {
    const start = index * BLOCK;
    if (start < size) block.copy(out, start, 0, Math.min(BLOCK, size - start));
  }
  return out;
}

/**
 * The records of a diff from `from` (null: nothing, a full export) to `to` of an image of `size`
 * bytes, in offset order, adjacent ones of a kind merged. A full export lists only what exists.
 */
export function diffRecords(from: BlockMap | null, to: BlockMap, size: number): DiffRecord[] {
  const indexes = new Set([...to.keys(), ...(from ? from.keys() : [])]);
  const out: DiffRecord[] = [];
  for (const index of [...indexes].sort((a, b) => a - b)) {
    const start = index * BLOCK;
    if (start >= size) continue;
    const length = Math.min(BLOCK, size - start);
    const now = to.get(index);
    const before = from?.get(index);
    if (now !== undefined && before !== undefined && now.equals(before)) continue;
    const last = out.at(-1);
    if (now === undefined || isZero(now.subarray(0, length))) {
      if (from === null && now === undefined) continue;
      if (last?.kind === 'z' && last.offset + last.length === start) last.length += length;
      else out.push({ kind: 'z', offset: start, length });
    } else {
      const data = now.subarray(0, length);
      if (last?.kind === 'w' && last.offset + last.data.length === start) out[out.length - 1] = { kind: 'w', offset: last.offset, data: Buffer.concat([last.data, data]) };
      else out.push({ kind: 'w', offset: start, data: Buffer.from(data) });
    }
  }
  return out;
}

/** Applies records to the blocks (as import-diff writes them to the head). */
export function applyRecords(blocks: BlockMap, records: readonly DiffRecord[]): void {
  for (const r of records) {
    if (r.kind === 'w') writeBlocks(blocks, r.offset, r.data);
    else zeroBlocks(blocks, r.offset, r.length);
  }
}
