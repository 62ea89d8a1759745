// Tenant usage: how many volumes a tenant has and their sizes added up, so that its limits
// (limits.volumes, limits.total-size) hold however many creates run at once, on however many
// masters.
//
// One key per tenant (keys.tenantUsage) holds {volumes, bytes}: the volume records plus the create
// intents (a create reserves its share when it writes its intent, before it makes an image, and
// keeps it when the intent becomes the record). Every write that adds or removes a tenant's record
// or intent goes through changeUsage: in the same etcd transaction it requires the usage key to be
// unchanged since it was read and writes the new count, so two creates cannot both take the last
// slot (one of them fails its condition, reads again, and finds the quota full). A tenant whose key
// was never written (volumes made before usage was counted) gets it computed from its records and
// intents; that is safe because every writer conditions on the key's absence then, so no write can
// slip in between the listing and the first count.

import { ExponentialBackoff, handleWhenResult, retry } from 'cockatiel';
import type { Quota } from '../policy/limits.js';
import { formatSize } from '../policy/units.js';
import { QuotaExceededError } from './errors.js';
import type { Entry, TransactionOps } from './kv.js';
import { CONFLICT, type RecordKV } from './record-kv.js';
import type { TenantUsage } from './records.js';

export interface UsageDelta {
  volumes: number;
  bytes: number;
}

/** What an attempt of changeUsage decided: nothing to write (`skip`), or these ops with this change. */
export type UsageAttempt<T> = { skip: T } | { ops: TransactionOps; delta: UsageDelta; quota?: Quota; result: T };

/**
 * usageRetry: an attempt that lost the race for the usage key is tried again after a short,
 * jittered backoff (5 ms doubling to 100 ms), up to 100 attempts: every create and delete of one
 * tenant contends for that key, so many parallel creates need more rounds than casRetry's.
 */
const usageRetry = retry(
  handleWhenResult((result) => result === CONFLICT),
  { maxAttempts: 99, backoff: new ExponentialBackoff({ initialDelay: 5, maxDelay: 100 }) },
);

function sizeOf(value: string): number {
  try {
    const size = (JSON.parse(value) as { options?: { sizeBytes?: unknown }; sizeBytes?: unknown }) ?? {};
    const bytes = size.options?.sizeBytes ?? size.sizeBytes;
    return typeof bytes === 'number' && Number.isSafeInteger(bytes) && bytes > 0 ? bytes : 0;
  } catch {
    return 0; // a corrupt record still counts as a volume, of no size
  }
}

/** The tenant's usage as stored, or computed from its records and intents when never stored. */
export async function readUsage(db: RecordKV, tenant: string): Promise<{ usage: TenantUsage; entry: Entry | null }> {
  const entry = await db.kv.get(db.keys.tenantUsage(tenant));
  if (entry) return { usage: db.parse<TenantUsage>(entry), entry };
  const [records, intents] = await Promise.all([db.kv.list(db.keys.tenantVolumes(tenant)), db.kv.list(`${db.keys.intents}${tenant}/`)]);
  const all = [...records, ...intents];
  return { usage: { tenant, volumes: all.length, bytes: all.reduce((sum, e) => sum + sizeOf(e.value), 0) }, entry: null };
}

function checkQuota(tenant: string, usage: TenantUsage, delta: UsageDelta, quota: Quota | undefined): void {
  if (!quota) return;
  if (delta.volumes > 0 && quota.volumes !== undefined && usage.volumes + delta.volumes > quota.volumes) {
    throw new QuotaExceededError(
      'limits.volumes',
      `tenant ${tenant} has ${usage.volumes} volume(s) (creates in progress included), as many as its limit of ${quota.volumes} (limits.volumes); remove a volume or raise the limit`,
    );
  }
  if (delta.bytes > 0 && quota.bytes !== undefined && usage.bytes + delta.bytes > quota.bytes) {
    throw new QuotaExceededError(
      'limits.total-size',
      `tenant ${tenant} uses ${formatSize(usage.bytes)} of its ${formatSize(quota.bytes)} (limits.total-size); ${formatSize(delta.bytes)} more does not fit: ` +
        `ask for at most ${formatSize(Math.max(0, quota.bytes - usage.bytes))}, remove a volume or raise the limit`,
    );
  }
}

/**
 * Runs `attempt` (which reads what it needs and says what to write) and writes its ops together with
 * the tenant's new usage in one transaction, conditioned on the usage key being unchanged. A lost
 * race runs `attempt` again on fresh reads (usageRetry). Refuses with QuotaExceededError when the
 * change would take the tenant beyond `quota`.
 */
export async function changeUsage<T>(db: RecordKV, tenant: string, what: string, attempt: (usage: TenantUsage) => Promise<UsageAttempt<T>>): Promise<T> {
  return db.cas(
    what,
    async () => {
      const { usage, entry } = await readUsage(db, tenant);
      const decided = await attempt(usage);
      if ('skip' in decided) return decided.skip;
      const { ops, delta, quota, result } = decided;
      checkQuota(tenant, usage, delta, quota);
      const key = db.keys.tenantUsage(tenant);
      const next: TenantUsage = { tenant, volumes: Math.max(0, usage.volumes + delta.volumes), bytes: Math.max(0, usage.bytes + delta.bytes) };
      const ok = await db.kv.transaction({
        absent: [...(ops.absent ?? []), ...(entry ? [] : [key])],
        unchanged: [...(ops.unchanged ?? []), ...(entry ? [{ key, modRevision: entry.modRevision }] : [])],
        put: [...(ops.put ?? []), { key, value: JSON.stringify(next) }],
        delete: ops.delete ?? [],
      });
      return ok ? result : CONFLICT;
    },
    usageRetry,
  );
}
