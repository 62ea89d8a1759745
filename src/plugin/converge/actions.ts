// Performing the planner's actions (plan.ts), each under the volume's mutex (but apply-limits, see
// act) and only if the host's mount table still calls for it (a Mount or Unmount may have run since
// the round observed); and what a lost host lease means for the mounted volumes (leaseLost).

import { rmdir } from 'node:fs/promises';
import type { Fencing } from '../../fencing/index.js';
import { unmountAll } from '../../mapper/fs.js';
import { hostLeaseLosses, volumesLost } from '../../metrics/families.js';
import type { Mapping } from '../../mapper/types.js';
import { describeHolder, refusalError, type LockClaim, type MountLocks } from '../cluster/mount-lock.js';
import { messageOf } from '../errors.js';
import { isIdle } from '../mounts/idle.js';
import type { KeyedMutex } from '../mounts/keyed-mutex.js';
import { splitVolumeKey, volumeKey, type LocalState, type LocalVolume } from '../mounts/local-state.js';
import type { MountManager } from '../mounts/manager.js';
import type { Action } from './plan.js';

export interface ActionLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What the lock of a mounted volume claims, from its entry. */
function claimOf(entry: LocalVolume): LockClaim {
  return {
    tenant: entry.tenant,
    volume: entry.volume,
    device: entry.mapping.device ?? '',
    mountpoint: entry.mountpoint,
    mapper: entry.mapping.kind,
    clientAddress: entry.mapping.clientAddress,
    since: entry.since,
  };
}

export interface ActionParts {
  locks: MountLocks;
  manager: Pick<MountManager, 'teardown' | 'letGo' | 'applyLimits' | 'cleanupMapping'>;
  fencing: Fencing;
  local: LocalState;
  mutex: KeyedMutex;
  /** The mappings of first mounts in progress (Mounter.mappingsInFlight). */
  inFlight?: () => Mapping[];
  log: ActionLog;
}

export class ConvergenceActions {
  constructor(private readonly parts: ActionParts) {}

  /** Performs one action; throws when it failed (the next round tries again). */
  async act(action: Action): Promise<void> {
    const [tenant, volume] = splitVolumeKey(action.volume);
    const { local, manager, locks, log } = this.parts;
    if (action.kind === 'apply-limits') {
      // Not under the volume's mutex: applying limits asks dockerd about the volume's containers,
      // and dockerd, which calls our Unmount while it holds a container, answers about that
      // container only once the Unmount is answered; an Unmount waiting for this mutex then
      // stalled `docker run` until the Docker API's timeout (5 s, found by pnpm bench --only
      // docker). Limits are idempotent writes, and the Mount path applies them under the mutex.
      const entry = local.get(tenant, volume);
      if (!entry || entry.lost || entry.refs.length === 0) return;
      const problems = await manager.applyLimits(entry, action.limits);
      if (problems.length > 0) throw new Error(problems.join('; '));
      if (action.changed) log.info({ volume: action.volume, limits: action.limits }, 'rate limits applied');
      return;
    }
    await this.parts.mutex.run(action.volume, async () => {
      const entry = local.get(tenant, volume);
      switch (action.kind) {
        case 'take-lock': {
          if (!entry || entry.lost || entry.refs.length === 0) return;
          if (entry.lockGeneration === null) {
            await this.lost(entry, 'its mount lock vanished and this host\'s table does not say which acquisition it held, so no one can tell whether another host held it since');
            return;
          }
          const result = await locks.retake(claimOf(entry), entry.lockGeneration);
          if (result.ok) {
            entry.lockGeneration = result.record.generation ?? null;
            await local.save();
            log.info({ volume: action.volume, lease: result.lease.id, generation: entry.lockGeneration }, 'mount lock taken back (nobody held it meanwhile)');
            return;
          }
          if (result.reason === 'acquired-meanwhile') return this.lost(entry, `its mount lock vanished and ${result.by}`);
          if (result.reason === 'held') return this.lost(entry, `${describeHolder(result.holder)} holds its mount lock`);
          // A remove or rollback running (it refuses while this host reports the volume), or the record gone: try again later.
          throw refusalError(action.volume, result, locks.lease.ttlSeconds);
        }
        case 'adopt-lock': {
          if (!entry || entry.lost || entry.refs.length === 0) return;
          // A lock still held under an older lease of this host was never free: adopt that very acquisition.
          const adopted = await locks.adopt(claimOf(entry), entry.lockGeneration ?? undefined);
          if (!adopted) throw new Error('the mount lock changed while adopting it; the next round looks again');
          entry.lockGeneration = adopted.record.generation ?? null;
          await local.save();
          log.info({ volume: action.volume, lease: adopted.lease.id, generation: entry.lockGeneration }, 'mount lock adopted');
          return;
        }
        case 'lost-lock':
          if (!entry || entry.lost) return;
          await this.lost(entry, `${describeHolder(action.holder)} holds its mount lock`);
          return;
        case 'teardown':
          if (!entry || entry.refs.length > 0) return;
          await manager.teardown(entry);
          return;
        case 'drop-idle':
          if (!entry || !isIdle(entry)) return;
          if (action.fence) await this.lost(entry, action.why);
          log.info({ volume: action.volume, why: action.why }, 'letting go of an idle volume');
          await manager.letGo(entry);
          return;
        case 'release-lock': {
          if (entry && !entry.lost) return;
          const released = await locks.release(tenant, volume, action.lease);
          if (released) log.info({ volume: action.volume, lost: entry?.lost }, 'released a mount lock this host no longer uses');
          return;
        }
        case 'cleanup-mount':
          if (entry) return;
          await unmountAll(action.mountpoint);
          await rmdir(action.mountpoint).catch(() => undefined);
          log.info({ volume: action.volume, mountpoint: action.mountpoint }, 'unmounted a leftover mount');
          return;
        case 'cleanup-mapping': {
          if (entry && (entry.mapping.device === action.mapping.device || entry.mapping.fuseDir === action.mapping.fuseDir)) return;
          await manager.cleanupMapping(action.mapping);
          // Its client may have died without closing the image (src/fencing: fencing a leftover).
          if (!entry) await this.parts.fencing.releaseLeftover(action.mapping, action.volume);
          log.info({ volume: action.volume, device: action.mapping.device, kind: action.mapping.kind }, 'removed a leftover mapping');
          return;
        }
      }
    });
  }

  /**
   * This host lost a volume it still has mounted (`why`): stop its I/O and fence this host's own
   * client (src/fencing), and keep the mount, marked lost, only until Docker unmounts it. It never
   * takes the lock again.
   */
  private async lost(entry: LocalVolume, why: string): Promise<void> {
    const name = volumeKey(entry.tenant, entry.volume);
    entry.lost = `${why}; noticed ${new Date().toISOString()}`;
    volumesLost.inc({ reason: 'lock' });
    await this.parts.fencing.fenceSelf(entry.mapping, name);
    await this.parts.local.save();
    this.parts.log.error(
      { volume: name, why, address: entry.mapping.clientAddress },
      'this host lost the volume: it stopped writing to it (fenced) and keeps it only until its containers stop',
    );
  }

  /**
   * The host lease was lost (not renewed in time, or expired at etcd): every lock of this host may
   * be gone, or about to be, and another host may take the volumes over. Every volume is marked
   * lost at once and its I/O cut (also of mounts still in progress), before anything that needs
   * the cluster; then this host's own clients are blocklisted where the cluster answers. Runs
   * without the volumes' mutexes: it must not wait for a Mount in progress.
   */
  async leaseLost(err: Error): Promise<void> {
    const { local, fencing, log } = this.parts;
    const at = new Date().toISOString();
    const entries = local.all().filter((e) => !e.lost);
    for (const entry of entries) entry.lost = `the host lease was not renewed in time (${messageOf(err)}); I/O stopped at ${at}`;
    hostLeaseLosses.inc();
    volumesLost.inc({ reason: 'lease' }, entries.length);
    const inFlight = this.parts.inFlight?.() ?? [];
    await Promise.all([
      ...entries.map((e) => fencing.stopIo(e.mapping, volumeKey(e.tenant, e.volume))),
      ...inFlight.map((m) => fencing.stopIo(m, volumeKey(m.tenant, m.volume))),
    ]);
    if (entries.length > 0 || inFlight.length > 0) {
      log.error(
        { volumes: entries.map((e) => volumeKey(e.tenant, e.volume)), inFlight: inFlight.map((m) => volumeKey(m.tenant, m.volume)), err: messageOf(err) },
        'host lease lost: stopped I/O on every volume of this host before another host can take them over; they stay mounted, lost, until their containers stop',
      );
    }
    await local.save().catch((saveErr: unknown) => log.error({ err: messageOf(saveErr) }, 'could not save the mount table'));
    await Promise.all(entries.map((e) => fencing.blocklistOwn(e.mapping, volumeKey(e.tenant, e.volume))));
  }
}
