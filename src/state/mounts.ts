// Mount locks: one key per volume while a host has it mounted, bound to that host's lease, so that
// a host that dies loses its locks after the lease TTL. Every change is conditional on who holds
// the lock (host id and lease), checked against the record read in the same attempt.
//
// Every write of a lock under a new lease (acquire, adopt, retake) is an acquisition: in the same
// transaction it rewrites the volume's acquisition record (persistent, not lease-bound) with the
// next generation. A lock is taken only while no remove or rollback excludes mounts (exclusion.ts)
// and the volume record exists, in that same transaction.
//
// Every write of a lock also writes its entry in the holder's index (keys.hostMount), under the
// same lease, and every removal removes it, in the same transaction: a host lists its own locks
// through the index (listHostMounts) at a cost that grows with its mounts, not with the cluster's.

import type { Lease } from './kv.js';
import { CONFLICT, type RecordKV } from './record-kv.js';
import type { AcquisitionRecord, ExclusionRecord, HostMountIndex, MountRecord } from './records.js';

/** Why a lock was not taken: another holder, a remove/rollback in progress, or no such volume. */
export type MountRefusal =
  | { ok: false; reason: 'held'; holder: MountRecord }
  | { ok: false; reason: 'excluded'; by: ExclusionRecord | null }
  | { ok: false; reason: 'no-volume' };

export type AcquireMountResult = { ok: true; record: MountRecord } | MountRefusal;

/** A retake also fails when someone acquired the lock since `expected` (`last`: the latest acquisition). */
export type RetakeMountResult = AcquireMountResult | { ok: false; reason: 'acquired-meanwhile'; last: AcquisitionRecord | null };

interface Holder {
  hostId: string;
  lease: string;
}

const sameHolder = (a: Holder, b: Holder) => a.hostId === b.hostId && a.lease === b.lease;

/** The index entry of `record`'s lock, bound to the lock's lease (written with every write of the lock). */
function indexPut(db: RecordKV, record: MountRecord, lease: Lease) {
  const entry: HostMountIndex = { tenant: record.tenant, volume: record.volume };
  return { key: db.keys.hostMount(record.hostId, record.tenant, record.volume), value: JSON.stringify(entry), lease };
}

function assertLease(record: MountRecord, lease: Lease): void {
  if (record.lease !== lease.id) {
    throw new Error(`mount record of ${record.tenant}/${record.volume} names lease ${record.lease}, not ${lease.id}`);
  }
}

/** The acquisition record as it is now, and the conditions and write that replace it with generation + 1. */
async function nextAcquisition(db: RecordKV, record: MountRecord, lease: Lease, fallbackGeneration = 0) {
  const key = db.keys.acquired(record.tenant, record.volume);
  const entry = await db.kv.get(key);
  const last = entry ? db.parseOrNull<AcquisitionRecord>(entry) : null;
  const generation = (last?.generation ?? fallbackGeneration) + 1;
  const acquisition: AcquisitionRecord = { hostId: record.hostId, host: record.host, lease: lease.id, generation, at: new Date().toISOString() };
  return {
    last,
    generation,
    absent: entry ? [] : [key],
    unchanged: entry ? [{ key, modRevision: entry.modRevision }] : [],
    put: { key, value: JSON.stringify(acquisition) },
  };
}

/** After a lock transaction failed: why (a holder, an exclusion, no volume), or CONFLICT to try again. */
async function refusal(db: RecordKV, record: MountRecord): Promise<AcquireMountResult | typeof CONFLICT> {
  const mount = await db.kv.get(db.keys.mount(record.tenant, record.volume));
  if (mount) {
    const holder = db.parse<MountRecord>(mount);
    return sameHolder(holder, record) ? { ok: true, record: holder } : { ok: false, reason: 'held', holder };
  }
  const exclusion = await db.kv.get(db.keys.exclusive(record.tenant, record.volume));
  if (exclusion) return { ok: false, reason: 'excluded', by: db.parseOrNull<ExclusionRecord>(exclusion) };
  if (!(await db.kv.get(db.keys.volume(record.tenant, record.volume)))) return { ok: false, reason: 'no-volume' };
  return CONFLICT; // released, or acquired and released, meanwhile: try again
}

/** Writes the lock (bound to `lease`) and the next acquisition, if the lock is free, nothing excludes it and the volume exists. */
async function takeFree(
  db: RecordKV,
  record: MountRecord,
  lease: Lease,
  acquisition: Awaited<ReturnType<typeof nextAcquisition>>,
): Promise<AcquireMountResult | typeof CONFLICT> {
  const { tenant, volume } = record;
  const next: MountRecord = { ...record, generation: acquisition.generation };
  const ok = await db.kv.transaction({
    absent: [db.keys.mount(tenant, volume), db.keys.exclusive(tenant, volume), ...acquisition.absent],
    present: [db.keys.volume(tenant, volume)],
    unchanged: acquisition.unchanged,
    put: [{ key: db.keys.mount(tenant, volume), value: JSON.stringify(next), lease }, indexPut(db, next, lease), acquisition.put],
  });
  return ok ? { ok: true, record: next } : refusal(db, record);
}

/**
 * Takes the lock if no one holds it. Holding it already under the same lease counts as success
 * (idempotent; the record returned is the one stored).
 */
export function acquireMount(db: RecordKV, record: MountRecord, lease: Lease): Promise<AcquireMountResult> {
  assertLease(record, lease);
  return db.cas(`mount lock of ${record.tenant}/${record.volume}`, async () => takeFree(db, record, lease, await nextAcquisition(db, record, lease)));
}

/**
 * Takes back a lock that vanished (its lease expired, or an operator removed it) only if the last
 * acquisition is still this host's `expected` one: then nobody held the lock in between. Otherwise
 * `acquired-meanwhile` (or why it is not free).
 */
export function retakeMount(db: RecordKV, record: MountRecord, lease: Lease, expected: { hostId: string; generation: number }): Promise<RetakeMountResult> {
  assertLease(record, lease);
  return db.cas(`mount lock of ${record.tenant}/${record.volume}`, async () => {
    const acquisition = await nextAcquisition(db, record, lease);
    const last = acquisition.last;
    if (!last || last.hostId !== expected.hostId || last.generation !== expected.generation) {
      const mount = await db.kv.get(db.keys.mount(record.tenant, record.volume));
      const holder = mount && db.parseOrNull<MountRecord>(mount);
      if (holder && sameHolder(holder, record)) return { ok: true as const, record: holder };
      return { ok: false as const, reason: 'acquired-meanwhile' as const, last };
    }
    return takeFree(db, record, lease, acquisition);
  });
}

/**
 * Moves a lock that the same host holds under another lease (a restarted volplugin) to `lease`,
 * as a new acquisition, if the stored lock is unchanged since it was read and, with
 * `expectedGeneration`, is that acquisition. The stored record, or null when the lock is gone, is
 * another host's or another acquisition's, or is unreadable.
 */
export function adoptMount(db: RecordKV, record: MountRecord, lease: Lease, expectedGeneration?: number): Promise<MountRecord | null> {
  assertLease(record, lease);
  const key = db.keys.mount(record.tenant, record.volume);
  return db.cas(`mount lock of ${record.tenant}/${record.volume}`, async () => {
    const entry = await db.kv.get(key);
    const holder = entry && db.parseOrNull<MountRecord>(entry);
    if (!entry || !holder || holder.hostId !== record.hostId) return null;
    if (expectedGeneration !== undefined && holder.generation !== expectedGeneration) return null;
    if (holder.lease === lease.id) return holder;
    const acquisition = await nextAcquisition(db, record, lease, holder.generation ?? 0);
    const next: MountRecord = { ...record, generation: acquisition.generation };
    const ok = await db.kv.transaction({
      absent: acquisition.absent,
      unchanged: [{ key, modRevision: entry.modRevision }, ...acquisition.unchanged],
      put: [{ key, value: JSON.stringify(next), lease }, indexPut(db, next, lease), acquisition.put],
    });
    return ok ? next : CONFLICT;
  });
}

/**
 * The mount locks `hostId` holds (found through its index) and those of `volumes` whoever holds
 * them; each read from its own key, all at once (concurrent gets go to etcd together).
 */
export async function listHostMounts(db: RecordKV, hostId: string, volumes: ReadonlyArray<{ tenant: string; volume: string }>): Promise<MountRecord[]> {
  const indexed = await db.readAll<HostMountIndex>(db.keys.hostMounts(hostId));
  const named = new Set(volumes.map((v) => db.keys.mount(v.tenant, v.volume)));
  const wanted = new Set([...named, ...indexed.map((v) => db.keys.mount(v.tenant, v.volume))]);
  const locks = await Promise.all([...wanted].map(async (key) => ({ key, lock: await db.read<MountRecord>(key) })));
  return locks.filter(({ key, lock }) => lock !== null && (lock.hostId === hostId || named.has(key))).map(({ lock }) => lock!);
}

export function updateMount(db: RecordKV, record: MountRecord, lease: Lease): Promise<boolean> {
  const key = db.keys.mount(record.tenant, record.volume);
  return db.cas(`mount lock of ${record.tenant}/${record.volume}`, async () => {
    const entry = await db.kv.get(key);
    if (!entry) return false;
    const holder = db.parse<MountRecord>(entry);
    if (holder.hostId !== record.hostId || holder.lease !== lease.id || record.lease !== lease.id) return false;
    return (await db.kv.replace(key, JSON.stringify({ ...record, generation: holder.generation }), entry.modRevision, { lease })) ? true : CONFLICT;
  });
}

export function releaseMount(db: RecordKV, tenant: string, volume: string, owner: Holder): Promise<boolean> {
  const key = db.keys.mount(tenant, volume);
  return db.cas(`mount lock of ${tenant}/${volume}`, async () => {
    const entry = await db.kv.get(key);
    if (!entry) return false;
    const holder = db.parse<MountRecord>(entry);
    if (!sameHolder(holder, owner)) return false;
    const removed = await db.kv.transaction({
      unchanged: [{ key, modRevision: entry.modRevision }],
      delete: [key, db.keys.hostMount(holder.hostId, tenant, volume)],
    });
    return removed ? true : CONFLICT;
  });
}

/**
 * Removes the lock whoever holds it; a corrupt lock is removed all the same (and null returned).
 * The acquisition record stays: the host that held the lock may take it back only if nobody
 * acquired it since.
 */
export async function forceRemoveMount(db: RecordKV, tenant: string, volume: string): Promise<MountRecord | null> {
  const key = db.keys.mount(tenant, volume);
  const entry = await db.kv.get(key);
  if (!entry) return null;
  const holder = db.parseOrNull<MountRecord>(entry);
  // A corrupt lock names no host: its index entry (if any) stays until that host's lease ends.
  await db.kv.transaction({ delete: holder ? [key, db.keys.hostMount(holder.hostId, tenant, volume)] : [key] });
  return holder;
}
