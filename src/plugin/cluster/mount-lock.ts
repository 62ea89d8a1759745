// The cross-host mount lock of a volume: a record in etcd bound to the host lease (lease.ts). The
// host that holds it may map and mount the volume; any other host gets LOCKED until it is released
// or its holder's lease expires (the taker then fences the old holder first: src/fencing). Every
// acquisition is numbered (src/state/mounts.ts): a host that lost its lock takes it back only when
// no other acquisition came in between.

import type { Lease } from '../../state/kv.js';
import type { MountRecord, VolumeFormat, VolumeRecord } from '../../state/records.js';
import type { MountRefusal, ReleaseOutcome, StateStore } from '../../state/store.js';
import { PluginError } from '../errors.js';
import type { HostIdentity } from '../mounts/host-id.js';
import type { HostLease } from './lease.js';

/** A person-readable description of who holds a lock, for errors and reports. */
export function describeHolder(holder: MountRecord): string {
  const where = holder.host && holder.host !== holder.hostId ? `${holder.host} (host id ${holder.hostId})` : `host id ${holder.hostId}`;
  return `${where} since ${holder.since}`;
}

/**
 * The error a mount gets when the lock is not free (`ttlSeconds`: the lock TTL, for the hint;
 * `asked`: what the holder said when asked to release it).
 */
export function refusalError(name: string, refusal: MountRefusal, ttlSeconds: number, asked?: string): PluginError {
  switch (refusal.reason) {
    case 'held':
      return new PluginError(
        'LOCKED',
        `${name} is mounted on ${describeHolder(refusal.holder)}${asked ? ` (${asked})` : ''}: unmount it there (stop its containers) first. ` +
          `If that host is down, its lock expires within ${ttlSeconds} s and this host may mount it then`,
      );
    case 'excluded': {
      const by = refusal.by ? `${refusal.by.reason} by ${refusal.by.owner} since ${refusal.by.since}` : 'a remove or rollback';
      return new PluginError('LOCKED', `${name} cannot be mounted while ${by} runs on it; try again when it is done`);
    }
    case 'no-volume':
      return new PluginError('VOLUME_NOT_FOUND', `volume ${name} does not exist (removed meanwhile?)`);
  }
}

/** What a lock says about the volume's mount on the holder (the rest: who and under which lease). */
export type LockClaim = Pick<MountRecord, 'tenant' | 'volume' | 'device' | 'mountpoint' | 'mapper' | 'clientAddress' | 'since'>;

/** A lock taken: the record as stored (with its generation) and the lease it is bound to; or why not. */
export type TakenLock = { ok: true; record: MountRecord; lease: Lease } | MountRefusal;

/** A lock taken back, or why not (`acquired-meanwhile`: another host held it since: the volume is lost here). */
export type RetakenLock = TakenLock | { ok: false; reason: 'acquired-meanwhile'; by: string };

/** This host's mount locks: taken under its live lease, with its identity. */
export class MountLocks {
  constructor(
    private readonly store: StateStore,
    readonly lease: HostLease,
    private readonly host: HostIdentity,
  ) {}

  private async recordOf(claim: LockClaim): Promise<{ record: MountRecord; lease: Lease }> {
    const lease = await this.lease.get();
    return { record: { ...claim, host: this.host.label, hostId: this.host.id, lease: lease.id }, lease };
  }

  /**
   * Takes the volume's lock for a first mount. A lock this host holds under another lease (a
   * process of it died in the middle of a mount) is taken over as a new acquisition: the holder
   * note then makes the mount fence whatever that process left.
   */
  async take(claim: LockClaim): Promise<TakenLock> {
    const { record, lease } = await this.recordOf(claim);
    for (let attempt = 0; attempt < 10; attempt++) {
      const result = await this.store.acquireMount(record, lease);
      if (result.ok) return { ok: true, record: result.record, lease };
      if (result.reason !== 'held' || result.holder.hostId !== this.host.id) return result;
      const adopted = await this.store.adoptMount(record, lease);
      if (adopted) return { ok: true, record: adopted, lease };
    }
    throw new PluginError('STATE_UNAVAILABLE', `the mount lock of ${claim.tenant}/${claim.volume} kept changing under volplugin; try again`);
  }

  /**
   * Takes back the lock of a volume this host has mounted (acquisition `generation`) that vanished,
   * only if nobody acquired it since (see StateStore.retakeMount).
   */
  async retake(claim: LockClaim, generation: number): Promise<RetakenLock> {
    const { record, lease } = await this.recordOf(claim);
    const result = await this.store.retakeMount(record, lease, { hostId: this.host.id, generation });
    if (result.ok) return { ok: true, record: result.record, lease };
    if (result.reason === 'acquired-meanwhile') {
      const last = result.last;
      const by = last ? `${last.host} (host id ${last.hostId}) took it at ${last.at} (acquisition ${last.generation})` : 'its acquisition record is gone';
      return { ok: false, reason: 'acquired-meanwhile', by };
    }
    return result;
  }

  /**
   * Moves the lock of a volume this host has mounted (acquisition `generation`) from an older lease
   * of this host (a restart) to the live one. Null when it is no longer that acquisition.
   */
  async adopt(claim: LockClaim, generation?: number): Promise<{ record: MountRecord; lease: Lease } | null> {
    const { record, lease } = await this.recordOf(claim);
    const adopted = await this.store.adoptMount(record, lease, generation);
    return adopted ? { record: adopted, lease } : null;
  }

  /** Rewrites a lock this host holds under `lease` (device and client known after mapping); false when it is no longer held. */
  update(record: MountRecord, lease: Lease): Promise<boolean> {
    return this.store.updateMount(record, lease);
  }

  /** Releases the volume's lock if this host holds it under `leaseId`. */
  release(tenant: string, volume: string, leaseId: string): Promise<boolean> {
    return this.store.releaseMount(tenant, volume, { hostId: this.host.id, lease: leaseId });
  }

  /**
   * True when this host holds the volume's lock under its live lease, as acquisition `generation`
   * (when known): what a kept (idle) mount needs before it is handed out again.
   */
  async heldNow(tenant: string, volume: string, generation: number | null): Promise<boolean> {
    const live = this.lease.currentId;
    if (!live) return false;
    const holder = await this.store.getMount(tenant, volume);
    return !!holder && holder.hostId === this.host.id && holder.lease === live && (generation === null || holder.generation === generation);
  }

  /** Asks another host that holds the volume's lock to let go of it if it only keeps it idle (state/release.ts). */
  askRelease(holder: MountRecord): Promise<ReleaseOutcome> {
    return this.store.askRelease(holder);
  }

  /** Releases the volume's lock if this host holds it (under any of its leases). */
  async releaseIfOurs(tenant: string, volume: string): Promise<boolean> {
    const holder = await this.store.getMount(tenant, volume);
    if (!holder || holder.hostId !== this.host.id) return false;
    return this.store.releaseMount(tenant, volume, { hostId: holder.hostId, lease: holder.lease });
  }

  /** The volume's record and format marks as etcd has them now (read under the lock, for the format decision). */
  async volume(tenant: string, volume: string): Promise<(VolumeRecord & VolumeFormat) | null> {
    const [record, format] = await Promise.all([this.store.getVolume(tenant, volume), this.store.getVolumeFormat(tenant, volume)]);
    return record && { ...record, ...format };
  }

  /** Records a step of the volume's one format, only while this host holds its lock under `lease`. */
  async markFormat(tenant: string, volume: string, lease: Lease, stage: 'started' | 'done'): Promise<VolumeFormat> {
    const result = await this.store.markFormat(tenant, volume, { hostId: this.host.id, lease }, stage);
    if (result.ok) return result.format;
    if (result.reason === 'no-volume') throw new PluginError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} was removed while mounting it`);
    throw new PluginError('LOCKED', `lost the mount lock of ${tenant}/${volume} while formatting it (etcd lease expired?); try again`);
  }
}
