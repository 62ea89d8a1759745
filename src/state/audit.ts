// The audit trail: one entry per change made through the API (the master's hook, src/master/audit.ts)
// or with volcli --etcd, under `audit/<id>` where the id sorts by time (timeline.ts). An entry is
// written as `pending` when the request arrives and completed with its outcome when the answer has
// been sent, so that a master that dies in between leaves a pending entry instead of nothing. The
// history is bounded by count and age (timeline.ts pruneHistory; the master prunes it).

import type { KeyRange } from './kv.js';
import type { RecordKV } from './record-kv.js';
import type { AuditEntry } from './records.js';
import { afterId, timeRange, wholeRange } from './timeline.js';

/** Writes a new entry (a pending one, or one complete at once); false if its id was taken. */
export function writeAudit(db: RecordKV, entry: AuditEntry): Promise<boolean> {
  return db.kv.create(db.keys.auditEntry(entry.id), JSON.stringify(entry));
}

/** Replaces an entry with its completed form. */
export function completeAudit(db: RecordKV, entry: AuditEntry): Promise<void> {
  return db.kv.put(db.keys.auditEntry(entry.id), JSON.stringify(entry));
}

/** Deletes an entry (a request that changed nothing after all, e.g. a create of a volume that existed). */
export async function dropAudit(db: RecordKV, id: string): Promise<void> {
  await db.kv.delete(db.keys.auditEntry(id));
}

export interface AuditQuery {
  /** Entries from this time on, oldest first. */
  since?: Date;
  /** Entries after this one, oldest first (what `volcli audit --follow` asks for again and again). */
  after?: string;
  /** Only entries about this tenant. */
  tenant?: string;
  /** At most this many (default 100). Without `since` and `after`: the newest, still oldest first. */
  limit?: number;
}

/** How many keys one read asks etcd for while looking for entries that match a filter. */
const PAGE = 200;

/** Entries of the trail, oldest first (see AuditQuery). An unreadable entry is skipped. */
export async function listAudit(db: RecordKV, query: AuditQuery = {}): Promise<AuditEntry[]> {
  const limit = query.limit ?? 100;
  const root = db.keys.audit;
  const newest = query.since === undefined && query.after === undefined;
  let range: KeyRange = query.after !== undefined ? afterId(root, query.after) : query.since ? timeRange(root, query.since) : wholeRange(root);
  const out: AuditEntry[] = [];
  for (;;) {
    const page = await db.kv.range(range, { limit: Math.max(limit, PAGE), descending: newest });
    for (const entry of page) {
      const record = db.parseOrNull<AuditEntry>(entry);
      if (!record || (query.tenant !== undefined && record.tenant !== query.tenant)) continue;
      out.push(record);
      if (out.length === limit) break;
    }
    const last = page.at(-1);
    if (out.length === limit || !last || page.length < Math.max(limit, PAGE)) break;
    range = newest ? { from: range.from, to: last.key } : { from: `${last.key}\u0000`, to: range.to };
  }
  return newest ? out.reverse() : out;
}
