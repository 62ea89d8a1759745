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
export async function withMountsExcluded<T>(
  db: RecordKV,
  owner: string,
  tenant: string,
  volume: string,
  options: ExclusionOptions,
  fn: (signal: AbortSignal) => Promise<T>,
  askRelease?: (holder: MountRecord) => Promise<ReleaseOutcome>,
): Promise<T> {
  const job = { db, owner, tenant, volume, options, fn };
  try {
    return await excluding(job);
  } catch (err) {
    // Only a refusal before anything ran: StateMountedError is thrown before `fn` starts.
    if (!askRelease || !(err instanceof StateMountedError) || !err.holder || !err.beforeStart) throw err;
    if (!(await askRelease(err.holder)).released) throw err;
    return excluding(job);
  }
}

/** One try of withMountsExcluded (its arguments). */
async function excluding<T>(job: {
  db: RecordKV;
  owner: string;
  tenant: string;
  volume: string;
  options: ExclusionOptions;
  fn: (signal: AbortSignal) => Promise<T>;
}): Promise<T> {
  const { db, owner, tenant, volume, options, fn } = job;
  const lease = await db.kv.lease(options.ttlSeconds ?? 10);
  try {
    const record: ExclusionRecord = { reason: options.reason, owner, since: new Date().toISOString(), lease: lease.id };
    const mountKey = db.keys.mount(tenant, volume);
    const key = db.keys.exclusive(tenant, volume);
    const ok = await db.kv.transaction({ absent: [mountKey, key], put: [{ key, value: JSON.stringify(record), lease }] });
    if (!ok) {
      const mount = await db.kv.get(mountKey);
      const holder = mount && db.parseOrNull<MountRecord>(mount);
      if (mount) throw new StateMountedError(tenant, volume, holder, true);
      const other = await db.kv.get(key);
      throw new StateBusyError(tenant, volume, other && db.parseOrNull<ExclusionRecord>(other));
    }
    const controller = new AbortController();
    lease.onLost((err) => controller.abort(err));
    return await fn(controller.signal);
  } finally {
    await lease.revoke().catch(() => undefined);
  }
}
