// Long operations and their progress (a resize, a remove of a large image, a copy that flattens):
// one record per operation under `progress/<id>`, which the master running it rewrites as it goes,
// and a liveness mark `progress-alive/<id>` bound to a lease of that master, written together with
// the record in one transaction. The record outlives its master; the mark does not: a record still
// `running` whose mark is gone belongs to a master that stopped (killed, crashed, cut off from etcd
// past its lease), and the first reader records it as `interrupted`. The history is bounded by
// timeline.ts (the master prunes it).
//
// Only the master that started an operation changes it while it runs (the writes are
// compare-and-swap, conditioned on the record still being `running` and its own): once a reader
// has marked it interrupted, a master that comes back cannot overwrite that.

import type { Lease } from './kv.js';
import { CONFLICT, type RecordKV } from './record-kv.js';
import type { OperationRecord } from './records.js';
import { afterId, wholeRange } from './timeline.js';

/** Writes a new operation record (state running) and its liveness mark bound to `lease`; false if the id is taken. */
export function startOperation(db: RecordKV, record: OperationRecord, lease: Lease): Promise<boolean> {
  const key = db.keys.progressRecord(record.id);
  const alive = db.keys.progressAlive(record.id);
  return db.kv.transaction({
    absent: [key, alive],
    put: [
      { key, value: JSON.stringify(record) },
      { key: alive, value: JSON.stringify({ owner: record.owner }), lease },
    ],
  });
}

/**
 * Changes a running operation of `owner` with `change` (compare-and-swap); null when it is no
 * longer running or not ours (a reader marked it interrupted, or the history dropped it).
 */
export function updateOperation(db: RecordKV, id: string, owner: string, change: (current: OperationRecord) => OperationRecord): Promise<OperationRecord | null> {
  const key = db.keys.progressRecord(id);
  return db.cas(`update of operation ${id}`, async () => {
    const entry = await db.kv.get(key);
    if (!entry) return null;
    const current = db.parse<OperationRecord>(entry);
    if (current.state !== 'running' || current.owner !== owner) return null;
    const next = { ...change(current), id, owner, updatedAt: new Date().toISOString() };
    return (await db.kv.replace(key, JSON.stringify(next), entry.modRevision)) ? next : CONFLICT;
  });
}

/** What a reader records for an operation whose master stopped before it finished. */
function interrupted(record: OperationRecord): OperationRecord {
  const at = new Date().toISOString();
  return {
    ...record,
    state: 'interrupted',
    updatedAt: at,
    finishedAt: at,
    error: {
      code: 'INTERRUPTED',
      message:
        `${record.owner}, which ran this ${record.kind}, stopped before it finished (at "${record.message}"); what it did so far stays. ` +
        'Run it again: a resize to the same size finishes it, a remove removes what is left, and volsupervisor flattens a copy by itself',
    },
  };
}

/** A running record whose master is gone becomes interrupted (stored, so that every reader agrees). */
async function settle(db: RecordKV, record: OperationRecord): Promise<OperationRecord> {
  if (record.state !== 'running') return record;
  if (await db.kv.get(db.keys.progressAlive(record.id))) return record;
  const key = db.keys.progressRecord(record.id);
  return db.cas(`interruption of operation ${record.id}`, async () => {
    const entry = await db.kv.get(key);
    if (!entry) return record;
    const current = db.parse<OperationRecord>(entry);
    if (current.state !== 'running') return current;
    const next = interrupted(current);
    return (await db.kv.replace(key, JSON.stringify(next), entry.modRevision)) ? next : CONFLICT;
  });
}

/** The operation, or null; one whose master stopped is reported (and recorded) as interrupted. */
export async function getOperation(db: RecordKV, id: string): Promise<OperationRecord | null> {
  const record = await db.read<OperationRecord>(db.keys.progressRecord(id));
  return record ? settle(db, record) : null;
}

export interface OperationQuery {
  /** At most this many (default 50), newest first. */
  limit?: number;
  /** Only operations started after this one (oldest first then). */
  after?: string;
}

/** The newest operations first (or, with `after`, those started after it, oldest first). */
export async function listOperations(db: RecordKV, query: OperationQuery = {}): Promise<OperationRecord[]> {
  const limit = query.limit ?? 50;
  const range = query.after ? afterId(db.keys.progress, query.after) : wholeRange(db.keys.progress);
  const entries = await db.kv.range(range, { limit, descending: !query.after });
  const records: OperationRecord[] = [];
  for (const entry of entries) {
    const record = db.parseOrNull<OperationRecord>(entry);
    if (record) records.push(await settle(db, record));
  }
  return records;
}
