// Performing the planner's actions (plan.ts), each under the volume's mutex and only if the host's
// mount table still calls for it (a Mount or Unmount may have run since the round observed).

import { rmdir } from 'node:fs/promises';
import type { Fencing } from '../../fencing/index.js';
import { unmountAll } from '../../mapper/fs.js';
import type { MountRecord } from '../../state/records.js';
import { describeHolder, type MountLocks } from '../cluster/mount-lock.js';
import type { KeyedMutex } from '../mounts/keyed-mutex.js';
import { splitVolumeKey, volumeKey, type LocalState, type LocalVolume } from '../mounts/local-state.js';
import type { MountManager } from '../mounts/manager.js';
import type { Action } from './plan.js';

export interface ActionLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ActionParts {
  locks: MountLocks;
  manager: Pick<MountManager, 'teardown' | 'applyLimits' | 'cleanupMapping'>;
  fencing: Fencing;
  local: LocalState;
  mutex: KeyedMutex;
  log: ActionLog;
}

export class ConvergenceActions {
  constructor(private readonly parts: ActionParts) {}

  /** Performs one action; throws when it failed (the next round tries again). */
  async act(action: Action): Promise<void> {
    const [tenant, volume] = splitVolumeKey(action.volume);
    const { local, manager, locks, log } = this.parts;
    await this.parts.mutex.run(action.volume, async () => {
      const entry = local.get(tenant, volume);
      switch (action.kind) {
        case 'take-lock':
        case 'adopt-lock': {
          if (!entry || entry.lost || entry.refs.length === 0) return;
          const result = await locks.take({
            tenant,
            volume,
            device: entry.mapping.device ?? '',
            mountpoint: entry.mountpoint,
            mapper: entry.mapping.kind,
            clientAddress: entry.mapping.clientAddress,
            since: entry.since,
          });
          if (result.ok) {
            log.info({ volume: action.volume, lease: result.lease.id }, action.kind === 'take-lock' ? 'mount lock taken back' : 'mount lock adopted');
            return;
          }
          await this.lost(entry, result.holder);
          return;
        }
        case 'lost-lock':
          if (!entry || entry.lost) return;
          await this.lost(entry, action.holder);
          return;
        case 'teardown':
          if (!entry || entry.refs.length > 0) return;
          await manager.teardown(entry);
          return;
        case 'release-lock': {
          if (entry) return;
          const released = await locks.release(tenant, volume, action.lease);
          if (released) log.info({ volume: action.volume }, 'released a mount lock this host no longer uses');
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
          if (action.mapping.pool && action.mapping.image && !entry) {
            await this.parts.fencing.clearHolder(action.mapping.pool, action.mapping.image, action.mapping.clientAddress).catch(() => undefined);
          }
          log.info({ volume: action.volume, device: action.mapping.device, kind: action.mapping.kind }, 'removed a leftover mapping');
          return;
        }
        case 'apply-limits': {
          if (!entry || entry.lost || entry.refs.length === 0) return;
          const problems = await manager.applyLimits(entry, action.limits);
          if (problems.length > 0) throw new Error(problems.join('; '));
          if (action.changed) log.info({ volume: action.volume, limits: action.limits }, 'rate limits applied');
          return;
        }
      }
    });
  }

  /**
   * Another host holds the lock of a volume this host still has mounted: fence this host's own
   * client (src/fencing) and keep the mount, marked lost, only until Docker unmounts it.
   */
  private async lost(entry: LocalVolume, holder: MountRecord): Promise<void> {
    const name = volumeKey(entry.tenant, entry.volume);
    await this.parts.fencing.fenceSelf(entry.mapping, name);
    entry.lost = `${describeHolder(holder)}; noticed ${new Date().toISOString()}`;
    await this.parts.local.save();
    this.parts.log.error(
      { volume: name, holder: holder.host, holderId: holder.hostId, address: entry.mapping.clientAddress },
      'another host took this volume over: this host stopped writing to it (fenced) and keeps it only until its containers stop',
    );
  }
}
