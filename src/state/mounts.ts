// Mount locks: one key per volume while a host has it mounted, bound to that host's lease, so that
// a host that dies loses its locks after the lease TTL. Every change is conditional on who holds
// the lock (host id and lease), checked against the record read in the same attempt.

import type { Lease } from './kv.js';
import { CONFLICT, type RecordKV } from './record-kv.js';
import type { MountRecord } from './records.js';

export type AcquireMountResult = { ok: true; record: MountRecord } | { ok: false; holder: MountRecord };

interface Holder {
  hostId: string;
  lease: string;
}

const sameHolder = (a: Holder, b: Holder) => a.hostId === b.hostId && a.lease === b.lease;

export async function acquireMount(db: RecordKV, record: MountRecord, lease: Lease): Promise<AcquireMountResult> {
  if (record.lease !== lease.id) {
    throw new Error(`mount record of ${record.tenant}/${record.volume} names lease ${record.lease}, not ${lease.id}`);
  }
  const key = db.keys.mount(record.tenant, record.volume);
  return db.cas(`mount lock of ${record.tenant}/${record.volume}`, async () => {
    if (await db.kv.create(key, JSON.stringify(record), { lease })) return { ok: true as const, record };
    const entry = await db.kv.get(key);
    if (!entry) return CONFLICT; // released meanwhile: try again
    const holder = db.parse<MountRecord>(entry);
    if (sameHolder(holder, record)) return { ok: true as const, record: holder };
    return { ok: false as const, holder };
  });
}

export async function adoptMount(db: RecordKV, record: MountRecord, lease: Lease): Promise<boolean> {
  const key = db.keys.mount(record.tenant, record.volume);
  const entry = await db.kv.get(key);
  const holder = entry && db.parseOrNull<MountRecord>(entry);
  if (!entry || !holder || holder.hostId !== record.hostId) return false;
  return db.kv.replace(key, JSON.stringify(record), entry.modRevision, { lease });
}

export function updateMount(db: RecordKV, record: MountRecord, lease: Lease): Promise<boolean> {
  const key = db.keys.mount(record.tenant, record.volume);
  return db.cas(`mount lock of ${record.tenant}/${record.volume}`, async () => {
    const entry = await db.kv.get(key);
    if (!entry) return false;
    const holder = db.parse<MountRecord>(entry);
    if (holder.hostId !== record.hostId || holder.lease !== lease.id || record.lease !== lease.id) return false;
    return (await db.kv.replace(key, JSON.stringify(record), entry.modRevision, { lease })) ? true : CONFLICT;
  });
}

export function releaseMount(db: RecordKV, tenant: string, volume: string, owner: Holder): Promise<boolean> {
  const key = db.keys.mount(tenant, volume);
  return db.cas(`mount lock of ${tenant}/${volume}`, async () => {
    const entry = await db.kv.get(key);
    if (!entry) return false;
    if (!sameHolder(db.parse<MountRecord>(entry), owner)) return false;
    return (await db.kv.deleteIf(key, entry.modRevision)) ? true : CONFLICT;
  });
}

/** Removes the lock whoever holds it; a corrupt lock is removed all the same (and null returned). */
export async function forceRemoveMount(db: RecordKV, tenant: string, volume: string): Promise<MountRecord | null> {
  const key = db.keys.mount(tenant, volume);
  const entry = await db.kv.get(key);
  if (!entry) return null;
  const holder = db.parseOrNull<MountRecord>(entry);
  await db.kv.delete(key);
  return holder;
}
