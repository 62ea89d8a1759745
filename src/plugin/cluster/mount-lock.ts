// The cross-host mount lock of a volume: a record in etcd bound to the host lease (lease.ts). The
// host that holds it may map and mount the volume; any other host gets LOCKED until it is released
// or its holder's lease expires (the taker then fences the old holder first: src/fencing).

import type { Lease } from '../../state/kv.js';
import type { MountRecord } from '../../state/records.js';
import type { StateStore } from '../../state/store.js';
import { PluginError } from '../errors.js';
import type { HostIdentity } from '../mounts/host-id.js';
import type { HostLease } from './lease.js';

export type LockResult = { ok: true; record: MountRecord; adopted: boolean } | { ok: false; holder: MountRecord };

/**
 * Takes the volume's mount lock for this host. A lock that this host (same host id) holds under
 * an older lease — the process was restarted, or its lease was lost and renewed — is taken over
 * with compare-and-swap; a lock of another host is reported as its holder.
 */
export async function takeMountLock(store: StateStore, record: MountRecord, lease: Lease): Promise<LockResult> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const result = await store.acquireMount(record, lease);
    if (result.ok) return { ok: true, record: result.record, adopted: false };
    if (result.holder.hostId !== record.hostId) return { ok: false, holder: result.holder };
    if (await store.adoptMount(record, lease)) return { ok: true, record, adopted: true };
  }
  throw new PluginError('STATE_UNAVAILABLE', `the mount lock of ${record.tenant}/${record.volume} kept changing under volplugin; try again`);
}

/** A person-readable description of who holds a lock, for errors and reports. */
export function describeHolder(holder: MountRecord): string {
  const where = holder.host && holder.host !== holder.hostId ? `${holder.host} (host id ${holder.hostId})` : `host id ${holder.hostId}`;
  return `${where} since ${holder.since}`;
}

/** What a lock says about the volume's mount on the holder (the rest: who and under which lease). */
export type LockClaim = Pick<MountRecord, 'tenant' | 'volume' | 'device' | 'mountpoint' | 'mapper' | 'clientAddress' | 'since'>;

/** A lock taken: the record as this host wrote it and the lease it is bound to; or who holds it. */
export type TakenLock = { ok: true; record: MountRecord; adopted: boolean; lease: Lease } | { ok: false; holder: MountRecord };

/** This host's mount locks: taken under its live lease, with its identity. */
export class MountLocks {
  constructor(
    private readonly store: StateStore,
    readonly lease: HostLease,
    private readonly host: HostIdentity,
  ) {}

  /** Takes (or adopts, see takeMountLock) the volume's lock under the live lease. */
  async take(claim: LockClaim): Promise<TakenLock> {
    const lease = await this.lease.get();
    const record: MountRecord = { ...claim, host: this.host.label, hostId: this.host.id, lease: lease.id };
    const result = await takeMountLock(this.store, record, lease);
    return result.ok ? { ok: true, record, adopted: result.adopted, lease } : result;
  }

  /** Rewrites a lock this host holds under `lease` (device and client known after mapping); false when it is no longer held. */
  update(record: MountRecord, lease: Lease): Promise<boolean> {
    return this.store.updateMount(record, lease);
  }

  /** Releases the volume's lock if this host holds it under `leaseId`. */
  release(tenant: string, volume: string, leaseId: string): Promise<boolean> {
    return this.store.releaseMount(tenant, volume, { hostId: this.host.id, lease: leaseId });
  }

  /** Releases the volume's lock if this host holds it (under any of its leases). */
  async releaseIfOurs(tenant: string, volume: string): Promise<boolean> {
    const holder = await this.store.getMount(tenant, volume);
    if (!holder || holder.hostId !== this.host.id) return false;
    return this.store.releaseMount(tenant, volume, { hostId: holder.hostId, lease: holder.lease });
  }
}
