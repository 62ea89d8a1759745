// Histories whose keys sort by time: the audit trail (audit.ts) and the long operations
// (progress.ts). Each entry's id starts with the UTC time it was made, to the millisecond
// (`20261130T174823123Z-9f3a1c2b`), so that etcd returns them in time order, a time range is a key
// range ("since 1h" is one range read), and the history is bounded without reading it: entries
// older than the age bound go in one range delete, and beyond the count bound the oldest go the
// same way. Ids from several masters interleave by their clocks; within one process a counter
// keeps the entries of one millisecond in the order they were made (a follower reading after an id
// must not skip a later entry of the same millisecond), and a random tail keeps two masters apart.

import { randomBytes } from 'node:crypto';
import type { Entry, KeyRange } from './kv.js';
import type { RecordKV } from './record-kv.js';

let lastStamp = '';
let sequence = 0;

/** The id of an entry made at `at`. */
export function timeId(at: Date = new Date()): string {
  const stamp = timeStamp(at);
  sequence = stamp === lastStamp ? sequence + 1 : 0;
  lastStamp = stamp;
  return `${stamp}-${(sequence % 0x10000).toString(16).padStart(4, '0')}${randomBytes(2).toString('hex')}`;
}

/** The part of an id that says when: sorts like the time itself. */
function timeStamp(at: Date): string {
  return at.toISOString().replace(/[-:.]/g, '');
}

/** When the entry of `id` was made (null for an id that is not a time id). */
export function timeOfId(id: string): Date | null {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)(\d{3})Z-/.exec(id);
  if (!m) return null;
  const at = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`);
  return Number.isNaN(at.getTime()) ? null : at;
}

/** Every key under `root`. */
export function wholeRange(root: string): KeyRange {
  // '0' follows '/' in ASCII: [root, root-with-its-slash-as-'0') holds every key under root/.
  return { from: root, to: `${root.slice(0, -1)}0` };
}

/** The keys under `root` from time `since` on (inclusive) and, with `until`, before it. */
export function timeRange(root: string, since: Date | null, until?: Date): KeyRange {
  const all = wholeRange(root);
  return { from: since ? `${root}${timeStamp(since)}` : all.from, to: until ? `${root}${timeStamp(until)}` : all.to };
}

/** The keys under `root` after the entry `id` (for following a history). */
export function afterId(root: string, id: string): KeyRange {
  return { from: `${root}${id}\u0000`, to: wholeRange(root).to };
}

export interface HistoryBounds {
  /** Keep at most this many entries (the newest). */
  maxCount: number;
  /** Drop entries older than this. */
  maxAgeMs: number;
}

/**
 * Bounds a history: deletes the entries older than `maxAgeMs`, then the oldest beyond `maxCount`.
 * Two to four etcd calls whatever the history's size; racing another pruner is harmless (both
 * delete the same old keys). Returns how many it deleted.
 */
export async function pruneHistory(db: RecordKV, root: string, bounds: HistoryBounds, now: Date = new Date()): Promise<number> {
  let deleted = await db.kv.deleteRange(timeRange(root, null, new Date(now.getTime() - bounds.maxAgeMs)));
  const all = wholeRange(root);
  const excess = (await db.kv.count(all)) - bounds.maxCount;
  if (excess > 0) {
    const oldest: Entry[] = await db.kv.range(all, { limit: excess });
    const last = oldest.at(-1);
    if (last) deleted += await db.kv.deleteRange({ from: all.from, to: `${last.key}\u0000` });
  }
  return deleted;
}
