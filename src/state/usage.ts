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

/** One attempt's writes together with the tenant's new usage, conditioned on the usage as read. */
function withUsage(db: RecordKV, tenant: string, entry: Entry | null, ops: TransactionOps, next: TenantUsage): TransactionOps {
  const key = db.keys.tenantUsage(tenant);
  return {
    absent: [...(ops.absent ?? []), ...(entry ? [] : [key])],
    present: ops.present ?? [],
    unchanged: [...(ops.unchanged ?? []), ...(entry ? [{ key, modRevision: entry.modRevision }] : [])],
    equal: ops.equal ?? [],
    put: [...(ops.put ?? []), { key, value: JSON.stringify(next) }],
    delete: ops.delete ?? [],
  };
}

const applyDelta = (tenant: string, usage: TenantUsage, delta: UsageDelta): TenantUsage => ({
  tenant,
  volumes: Math.max(0, usage.volumes + delta.volumes),
  bytes: Math.max(0, usage.bytes + delta.bytes),
});

/** One change alone: `attempt` and the usage write in one transaction, tried again on a lost race (usageRetry). */
function changeAlone<T>(db: RecordKV, tenant: string, what: string, attempt: () => Promise<UsageAttempt<T>>): Promise<T> {
  return db.cas(
    what,
    async () => {
      const [{ usage, entry }, decided] = await Promise.all([readUsage(db, tenant), attempt()]);
      if ('skip' in decided) return decided.skip;
      const { ops, delta, quota, result } = decided;
      checkQuota(tenant, usage, delta, quota);
      return (await db.kv.transaction(withUsage(db, tenant, entry, ops, applyDelta(tenant, usage, delta)))) ? result : CONFLICT;
    },
    usageRetry,
  );
}

/** A change waiting for its tenant's next batch. */
interface Queued {
  what: string;
  attempt: () => Promise<UsageAttempt<unknown>>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** etcd allows 128 operations in each part of a transaction; a batch stays below. */
const MAX_BATCH_OPS = 120;

/**
 * The changes of one tenant's usage made by this process at the same moment, written together:
 * every create and delete of a tenant contends for its usage key, and transactions that each read
 * and condition on it mostly lose to each other (eight parallel creates of one tenant took three
 * or four tries each). A batch reads the usage once (with the attempts' own reads, in the same
 * etcd request), decides each change in turn against the running count (one beyond the quota is
 * refused alone), and writes them all in one transaction. A batch whose transaction did not apply
 * (another master changed the usage, or one change's condition failed) is redone change by change
 * (changeAlone), so no change depends on another's conditions. One batch per tenant at a time; the
 * next holds whatever arrived meanwhile.
 */
class UsageBatches {
  private readonly queues = new Map<string, { items: Queued[]; running: boolean }>();

  constructor(private readonly db: RecordKV) {}

  add<T>(tenant: string, what: string, attempt: () => Promise<UsageAttempt<T>>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let queue = this.queues.get(tenant);
      if (!queue) this.queues.set(tenant, (queue = { items: [], running: false }));
      queue.items.push({ what, attempt, resolve: resolve as (v: unknown) => void, reject });
      if (!queue.running) {
        queue.running = true;
        setImmediate(() => void this.drain(tenant));
      }
    });
  }

  private async drain(tenant: string): Promise<void> {
    const queue = this.queues.get(tenant)!;
    while (queue.items.length > 0) {
      const items = queue.items.splice(0, queue.items.length);
      const later = await this.batch(tenant, items);
      queue.items.unshift(...later);
    }
    queue.running = false;
    this.queues.delete(tenant);
  }

  /** Writes what it can of `items` in one transaction; returns the ones for the next batch. */
  private async batch(tenant: string, items: Queued[]): Promise<Queued[]> {
    const { db } = this;
    if (items.length === 1) {
      const [item] = items as [Queued];
      await changeAlone(db, tenant, item.what, item.attempt).then(item.resolve, item.reject);
      return [];
    }
    let read: Awaited<ReturnType<typeof readUsage>>;
    let decisions: Array<PromiseSettledResult<UsageAttempt<unknown>>>;
    try {
      [read, decisions] = await Promise.all([readUsage(db, tenant), Promise.allSettled(items.map((item) => item.attempt()))]);
    } catch (err) {
      for (const item of items) item.reject(err);
      return [];
    }
    let usage = read.usage;
    const later: Queued[] = [];
    const accepted: Array<{ item: Queued; result: unknown }> = [];
    const ops: Required<Omit<TransactionOps, 'read'>> = { absent: [], present: [], unchanged: [], equal: [], put: [], delete: [] };
    const written = new Set<string>();
    for (const [i, item] of items.entries()) {
      const decided = decisions[i]!;
      if (decided.status === 'rejected') {
        item.reject(decided.reason);
        continue;
      }
      if ('skip' in decided.value) {
        item.resolve(decided.value.skip);
        continue;
      }
      const { ops: own, delta, quota, result } = decided.value;
      const keys = [...(own.put ?? []).map((p) => p.key), ...(own.delete ?? [])];
      const conditions = (own.absent?.length ?? 0) + (own.present?.length ?? 0) + (own.unchanged?.length ?? 0) + (own.equal?.length ?? 0);
      const full = ops.put.length + ops.delete.length + keys.length >= MAX_BATCH_OPS || ops.absent.length + ops.present.length + ops.unchanged.length + ops.equal.length + conditions >= MAX_BATCH_OPS;
      if (full || keys.some((k) => written.has(k))) {
        later.push(item); // decided on reads from before another change of the same key: decide again
        continue;
      }
      try {
        checkQuota(tenant, usage, delta, quota);
      } catch (err) {
        item.reject(err);
        continue;
      }
      usage = applyDelta(tenant, usage, delta);
      for (const k of keys) written.add(k);
      ops.absent.push(...(own.absent ?? []));
      ops.present.push(...(own.present ?? []));
      ops.unchanged.push(...(own.unchanged ?? []));
      ops.equal.push(...(own.equal ?? []));
      ops.put.push(...(own.put ?? []));
      ops.delete.push(...(own.delete ?? []));
      accepted.push({ item, result });
    }
    if (accepted.length === 0) return later;
    let applied = false;
    try {
      applied = await db.kv.transaction(withUsage(db, tenant, read.entry, ops, usage));
    } catch (err) {
      for (const { item } of accepted) item.reject(err);
      return later;
    }
    if (applied) {
      for (const { item, result } of accepted) item.resolve(result);
      return later;
    }
    // Someone else got there first, or one change's condition failed: each on its own, in order.
    for (const { item } of accepted) await changeAlone(db, tenant, item.what, item.attempt).then(item.resolve, item.reject);
    return later;
  }
}

const batchesOf = new WeakMap<RecordKV, UsageBatches>();

/**
 * Runs `attempt` (which reads what it needs and says what to write) and writes its ops together with
 * the tenant's new usage in one transaction, conditioned on the usage key being unchanged; concurrent
 * changes of the same tenant go in one transaction (UsageBatches). A lost race runs `attempt` again
 * on fresh reads (usageRetry). Refuses with QuotaExceededError when the change would take the tenant
 * beyond `quota`.
 */
export function changeUsage<T>(db: RecordKV, tenant: string, what: string, attempt: () => Promise<UsageAttempt<T>>): Promise<T> {
  let batches = batchesOf.get(db);
  if (!batches) batchesOf.set(db, (batches = new UsageBatches(db)));
  return batches.add(tenant, what, attempt);
}
