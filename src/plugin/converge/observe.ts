// What a convergence round looks at: the host's mount table, what is mounted under the mount root,
// the mappings the mapper finds, the host lease, and this host's mount locks and its volumes' rate
// limits in etcd. The planner (plan.ts) turns it into actions.

import { readMountInfo, type MountInfo } from '../../mapper/mountinfo.js';
import type { Mapper } from '../../mapper/types.js';
import type { RateLimit } from '../../policy/types.js';
import type { MountRecord } from '../../state/records.js';
import type { StateStore } from '../../state/store.js';
import type { HostLease } from '../cluster/lease.js';
import { messageOf } from '../errors.js';
import type { KeyedMutex } from '../mounts/keyed-mutex.js';
import { volumeKey, type LocalState, type LocalVolume } from '../mounts/local-state.js';
import { volumeOfMountpoint, type Observation } from './plan.js';

export interface ObserverLog {
  warn(obj: object, msg: string): void;
}

export interface ObserverParts {
  hostId: string;
  mountRoot: string;
  local: LocalState;
  lease: HostLease;
  mapper: Pick<Mapper, 'discover' | 'isMapped'>;
  store: Pick<StateStore, 'listMounts' | 'listHostMounts' | 'getVolume'>;
  /** Volumes with an operation in progress (left alone this round). */
  mutex: KeyedMutex;
  log: ObserverLog;
  /** What is mounted on the host (default /proc/self/mountinfo; fakes in unit tests). */
  readMounts?: () => Promise<MountInfo[]>;
}

export class HostObserver {
  /** Whether a pass has read every lock of the cluster once (the first does; see fromEtcd). */
  private listedAll = false;

  constructor(private readonly parts: ObserverParts) {}

  async observe(): Promise<Observation> {
    const { hostId, mountRoot, local, mapper, mutex } = this.parts;
    const entries = local.all();
    const leaseId = await this.liveLease();
    const mounts = (await (this.parts.readMounts ?? readMountInfo)()).filter((m) => volumeOfMountpoint(mountRoot, m.mountPoint) !== null);
    const mappings = await mapper.discover();
    const broken = new Set<string>();
    for (const e of entries) {
      if (!e.lost && !(await mapper.isMapped(e.mapping).catch(() => true))) broken.add(volumeKey(e.tenant, e.volume));
    }
    const { locks, locksKnown, limits } = await this.fromEtcd(entries);
    return { hostId, leaseId, locksKnown, entries, mounts, mappings, locks, limits, broken, busy: new Set(mutex.keys()), mountRoot, now: Date.now() };
  }

  private async liveLease(): Promise<string | null> {
    try {
      return (await this.parts.lease.get()).id;
    } catch (err) {
      this.parts.log.warn({ err: messageOf(err) }, 'no etcd lease (etcd unreachable?): lock actions wait');
      return null;
    }
  }

  /** The locks of this host and of the volumes in its table, and those volumes' rate limits. */
  private async fromEtcd(entries: LocalVolume[]): Promise<{ locks: MountRecord[]; locksKnown: boolean; limits: Map<string, RateLimit> }> {
    const { store, hostId } = this.parts;
    let locks: MountRecord[] = [];
    let locksKnown = false;
    const limits = new Map<string, RateLimit>();
    try {
      // Through the host's lock index (its cost grows with this host's mounts, not the cluster's),
      // except on the first pass, which lists every lock once: a lock of this host id taken by a
      // volplugin without the index (the version before an upgrade) has no entry in it.
      if (this.listedAll) {
        locks = await store.listHostMounts(hostId, entries);
      } else {
        const ours = new Set(entries.map((e) => volumeKey(e.tenant, e.volume)));
        locks = (await store.listMounts()).filter((l) => l.hostId === hostId || ours.has(volumeKey(l.tenant, l.volume)));
        this.listedAll = true;
      }
      locksKnown = true;
      // All at once: the etcd client sends concurrent gets together (src/state/etcd-reads.ts), so
      // 200 mounted volumes cost two etcd requests, not 200 one after the other.
      const records = await Promise.all(entries.map((e) => store.getVolume(e.tenant, e.volume)));
      for (const record of records) {
        if (record) limits.set(volumeKey(record.tenant, record.volume), record.runtime.rateLimit);
      }
    } catch (err) {
      this.parts.log.warn({ err: messageOf(err) }, 'cannot read mount locks from etcd this round');
    }
    return { locks, locksKnown, limits };
  }
}
