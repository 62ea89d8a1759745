// Request names: the name a client gives a create so that it can repeat the request safely (CSI's
// CreateVolume and CreateSnapshot `name`). Each name is claimed once, for one target (a volume, or
// a snapshot of a volume), before the target is made: the same name again finds its target; the
// same name for another target is refused, whatever tenant or volume that other target is in.
//
// Two keys per claim, written and deleted together: the claim by the SHA-256 of the name (names are
// any Unicode text), and an index entry by target, so that removing a volume or snapshot releases
// its name without knowing it. A claim whose target is gone (a create that failed, a master that
// died before making it) does not hold its name: `isGone` says so and the new claim replaces it.

import { createHash } from 'node:crypto';
import { CONFLICT, type RecordKV } from './record-kv.js';
import type { RequestNameRecord } from './records.js';

export type RequestKind = RequestNameRecord['kind'];

/** What a name is claimed for. */
export interface RequestTarget {
  tenant: string;
  volume: string;
  /** Set for a snapshot of the volume. */
  snapshot?: string;
}

export type ClaimResult = { ok: true; created: boolean } | { ok: false; holder: RequestNameRecord };

export function nameHash(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest('hex');
}

const sameTarget = (a: RequestTarget, b: RequestTarget) => a.tenant === b.tenant && a.volume === b.volume && a.snapshot === b.snapshot;

function targetKey(db: RecordKV, t: RequestTarget): string {
  return db.keys.requestTarget(t.tenant, t.volume, t.snapshot);
}

/** The claim of `name`, or null. */
export function getRequestName(db: RecordKV, kind: RequestKind, name: string): Promise<RequestNameRecord | null> {
  return db.read<RequestNameRecord>(db.keys.requestName(kind, nameHash(name)));
}

/**
 * Claims `name` for `target`: created when free, kept when it names `target` already, replaced
 * when the target it names is gone (`isGone`), otherwise refused with the holder.
 */
export function claimRequestName(
  db: RecordKV,
  kind: RequestKind,
  name: string,
  target: RequestTarget,
  isGone: (holder: RequestNameRecord) => Promise<boolean>,
): Promise<ClaimResult> {
  const key = db.keys.requestName(kind, nameHash(name));
  const index = targetKey(db, target);
  return db.cas(`request name ${JSON.stringify(name)}`, async () => {
    const entry = await db.kv.get(key);
    const holder = entry ? db.parse<RequestNameRecord>(entry) : null;
    if (holder && sameTarget(holder, target)) return { ok: true as const, created: false };
    if (holder && !(await isGone(holder))) return { ok: false as const, holder };
    const record: RequestNameRecord = { kind, name, ...target, at: new Date().toISOString() };
    const ok = await db.kv.transaction({
      absent: entry ? [] : [key],
      unchanged: entry ? [{ key, modRevision: entry.modRevision }] : [],
      put: [
        { key, value: JSON.stringify(record) },
        { key: index, value: JSON.stringify({ key }) },
      ],
      // The replaced claim's index entry goes with it.
      delete: holder ? [targetKey(db, holder)] : [],
    });
    return ok ? { ok: true as const, created: true } : CONFLICT;
  });
}

/** Releases the name claimed for `target`, if any (both keys, only while they still belong together). */
export function releaseRequestName(db: RecordKV, target: RequestTarget): Promise<boolean> {
  const index = targetKey(db, target);
  return db.cas(`request name of ${target.tenant}/${target.volume}${target.snapshot ? `@${target.snapshot}` : ''}`, async () => {
    const entry = await db.kv.get(index);
    if (!entry) return false;
    const { key } = db.parse<{ key: string }>(entry);
    const claim = await db.kv.get(key);
    const holder = claim ? db.parseOrNull<RequestNameRecord>(claim) : null;
    const ours = claim && holder && sameTarget(holder, target);
    const ok = await db.kv.transaction({
      unchanged: [{ key: index, modRevision: entry.modRevision }, ...(ours ? [{ key, modRevision: claim.modRevision }] : [])],
      delete: ours ? [index, key] : [index],
    });
    return ok ? true : CONFLICT;
  });
}

/** Releases the names claimed for a volume's snapshots (its removal took them along). */
export async function releaseSnapshotNames(db: RecordKV, tenant: string, volume: string): Promise<number> {
  const prefix = db.keys.requestTargetSnapshots(tenant, volume);
  let released = 0;
  for (const entry of await db.kv.list(prefix)) {
    const snapshot = entry.key.slice(prefix.length);
    if (await releaseRequestName(db, { tenant, volume, snapshot })) released++;
  }
  return released;
}
