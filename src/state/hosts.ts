// The host-alive record: one live volplugin process per host id. It is created if absent, bound to
// the host lease, when volplugin starts (and again under each new lease); a second process with
// the same host id (a copied state dir, a cloned VM) finds it held. Taking it over from a
// predecessor that is known dead is a compare-and-swap on the record it found.

import type { Lease } from './kv.js';
import { CONFLICT, type RecordKV } from './record-kv.js';
import type { HostAliveRecord } from './records.js';

/** Claimed; or held by `holder` (null: unreadable), whose record has `modRevision`. */
export type HostAliveClaim = { ok: true } | { ok: false; holder: HostAliveRecord | null; modRevision: string };

export function claimHostAlive(db: RecordKV, record: HostAliveRecord, lease: Lease): Promise<HostAliveClaim> {
  const key = db.keys.hostAlive(record.hostId);
  return db.cas(`host-alive record of ${record.hostId}`, async () => {
    if (await db.kv.create(key, JSON.stringify(record), { lease })) return { ok: true as const };
    const entry = await db.kv.get(key);
    if (!entry) return CONFLICT; // lapsed meanwhile: try again
    return { ok: false as const, holder: db.parseOrNull<HostAliveRecord>(entry), modRevision: entry.modRevision };
  });
}

/** Replaces the record found at `modRevision` (a dead predecessor's) with ours; false if it changed. */
export function takeOverHostAlive(db: RecordKV, record: HostAliveRecord, lease: Lease, modRevision: string): Promise<boolean> {
  return db.kv.replace(db.keys.hostAlive(record.hostId), JSON.stringify(record), modRevision, { lease });
}
