// Excluding mounts: a remove or a rollback of a volume must never run while a host has it mounted,
// nor a host mount it while one runs. The operation creates the volume's exclusion key in a
// transaction conditioned on the mount lock being absent, and a mount lock is only taken in a
// transaction conditioned on the exclusion key being absent (mounts.ts): whichever comes first
// wins, atomically, in etcd. The key is bound to a lease of its own, so a master that dies in the
// middle blocks mounts for at most its TTL.

import { StateBusyError, StateMountedError } from './errors.js';
import type { RecordKV } from './record-kv.js';
import type { ExclusionRecord, MountRecord } from './records.js';
import type { ReleaseOutcome } from './release.js';

export interface ExclusionOptions {
  /** "remove", "snapshot rollback": shown to a host whose mount is refused meanwhile. */
  reason: string;
  /** TTL of the exclusion's lease (default 10 s). */
  ttlSeconds?: number;
}

/**
 * Runs `fn` while no host may take the volume's mount lock. Throws StateMountedError (nothing
 * done) when a host holds it now, StateBusyError when another remove or rollback excludes it.
 * `signal` aborts if the exclusion's lease is lost. With `askRelease`, a holder is first asked to
 * let go of the volume if it only keeps it idle (release.ts), and the exclusion tried once more.
 */
export function withMountsExcluded<T>(
  db: RecordKV,
  owner: string,
  tenant: string,
  volume: string,
  options: ExclusionOptions,
  fn: (signal: AbortSignal) => Promise<T>,
  askRelease?: (holder: MountRecord) => Promise<ReleaseOutcome>,
): Promise<T> {
  return withMountsExcludedAll(db, owner, tenant, [volume], options, fn, askRelease);
}

/**
 * withMountsExcluded for several volumes of a tenant at once (a group rollback), all or nothing:
 * one transaction creates every exclusion key, on one lease, only if none of the volumes is
 * mounted or excluded; otherwise none is created and the first such volume is named in the error.
 * Each holder that only keeps its volume idle is asked to release it, and the exclusion tried again.
 * The transaction has 3 operations per volume: a group's 32 at most stay within etcd's default
 * --max-txn-ops (128).
 */
export async function withMountsExcludedAll<T>(
  db: RecordKV,
  owner: string,
  tenant: string,
  volumes: readonly string[],
  options: ExclusionOptions,
  fn: (signal: AbortSignal) => Promise<T>,
  askRelease?: (holder: MountRecord) => Promise<ReleaseOutcome>,
): Promise<T> {
  const job = { db, owner, tenant, volumes, options, fn };
  const asked = new Set<string>();
  for (;;) {
    try {
      return await excluding(job);
    } catch (err) {
      // Only a refusal before anything ran: StateMountedError is thrown before `fn` starts. Each
      // volume's holder is asked once.
      if (!askRelease || !(err instanceof StateMountedError) || !err.holder || !err.beforeStart || asked.has(err.volume)) throw err;
      asked.add(err.volume);
      if (!(await askRelease(err.holder)).released) throw err;
    }
  }
}

/** One try of withMountsExcludedAll (its arguments). */
async function excluding<T>(job: {
  db: RecordKV;
  owner: string;
  tenant: string;
  volumes: readonly string[];
  options: ExclusionOptions;
  fn: (signal: AbortSignal) => Promise<T>;
}): Promise<T> {
  const { db, owner, tenant, volumes, options, fn } = job;
  const lease = await db.kv.lease(options.ttlSeconds ?? 10);
  try {
    const record: ExclusionRecord = { reason: options.reason, owner, since: new Date().toISOString(), lease: lease.id };
    const mountKeys = volumes.map((v) => db.keys.mount(tenant, v));
    const keys = volumes.map((v) => db.keys.exclusive(tenant, v));
    const value = JSON.stringify(record);
    const ok = await db.kv.transaction({ absent: [...mountKeys, ...keys], put: keys.map((key) => ({ key, value, lease })) });
    if (!ok) {
      for (const [i, volume] of volumes.entries()) {
        const mount = await db.kv.get(mountKeys[i]!);
        if (mount) throw new StateMountedError(tenant, volume, db.parseOrNull<MountRecord>(mount), true);
      }
      for (const [i, volume] of volumes.entries()) {
        const other = await db.kv.get(keys[i]!);
        if (other) throw new StateBusyError(tenant, volume, db.parseOrNull<ExclusionRecord>(other));
      }
      // Both gone again by now: report it busy rather than loop.
      throw new StateBusyError(tenant, volumes[0]!, null);
    }
    const controller = new AbortController();
    lease.onLost((err) => controller.abort(err));
    return await fn(controller.signal);
  } finally {
    await lease.revoke().catch(() => undefined);
  }
}
