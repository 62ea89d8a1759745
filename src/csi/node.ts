// The CSI Node service: the host agent (src/plugin/app.ts startHost, the same one Docker's
// protocol uses) does the work; this maps CSI's calls onto it.
//
//   NodeStageVolume    the volume must be attached to this node (ControllerPublishVolume); the
//                      mount manager maps it, formats it once, takes its cross-host mount lock
//                      (fencing a previous holder that did not let go) and mounts it under the mount
//                      root, holding one reference `csi:stage`; that mount is bind-mounted at the
//                      staging path
//   NodePublishVolume  a bind mount of the staging path at the target path (nosuid, nodev; `ro`
//                      when readonly or the access mode is SINGLE_NODE_READER_ONLY)
//   NodeUnpublish/Unstage  undo those; the last reference tears the mount down and frees the lock
//   NodeExpandVolume   grows the mounted filesystem to the image's size: the host agent's
//                      MountManager.growFilesystem, what a resize's `resize-fs` request runs
//
// What is staged and published is kept in <state-dir>/csi.json (node-state.ts) and checked
// against the host's mount table before it is trusted.

import { rmdir, statfs } from 'node:fs/promises';
import type { Logger } from 'pino';
import { bindMount, mountsAt, unmountAll } from '../mapper/fs.js';
import { GROW_SLACK_BYTES, mountedBytes } from '../mapper/grow.js';
import type { RunningHost } from '../plugin/app.js';
import { isPluginError } from '../plugin/errors.js';
import type { VolumeRecord } from '../state/records.js';
import { NODE_CAPABILITIES, allowsSeveralTargets, capabilityProblem, modeOf, readOnlyMode } from './capabilities.js';
import { parseRange } from './capacity.js';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, outOfRange, requireField } from './errors.js';
import { parseVolumeId } from './ids.js';
import type { NodeState } from './node-state.js';
import type { NodeExpandVolumeRequest, NodePublishVolumeRequest, NodeStageVolumeRequest, VolumeCapability } from './proto.js';
import { InFlight, type Handlers } from './server.js';

/** The mount manager's reference a staged volume holds (one stage per volume per node). */
export const STAGE_REF = 'csi:stage';

export interface NodeDeps {
  agent: RunningHost;
  state: NodeState;
  log: Logger;
}

/** The volume's tenant/volume; NOT_FOUND for an id volplugin never made. */
function refOf(id: string): { tenant: string; volume: string } {
  const ref = parseVolumeId(id);
  if (!ref) throw notFound(`volume ${id} does not exist (volplugin's volume ids are TENANT.VOLUME)`);
  return ref;
}

function checkCapability(cap: VolumeCapability | null, field: string, fs?: string): VolumeCapability {
  const problem = capabilityProblem(cap, field, fs);
  if (problem) throw invalidArgument(problem.message);
  return cap!;
}

export class CsiNode {
  private readonly busy = new InFlight();

  constructor(private readonly deps: NodeDeps) {}

  private get agent(): RunningHost {
    return this.deps.agent;
  }

  private async record(tenant: string, volume: string, id: string, signal: AbortSignal): Promise<VolumeRecord> {
    try {
      return await this.agent.master.getVolume(tenant, volume, signal);
    } catch (err) {
      if (isPluginError(err, 'VOLUME_NOT_FOUND')) throw notFound(`volume ${id} does not exist`);
      throw err;
    }
  }

  nodeGetInfo(): object {
    return { node_id: this.agent.host.id, max_volumes_per_node: '0' };
  }

  // ---- stage -----------------------------------------------------------------------------------

  async nodeStageVolume(req: NodeStageVolumeRequest, signal: AbortSignal): Promise<object> {
    const id = requireField(req.volume_id, 'volume_id');
    const staging = requireField(req.staging_target_path, 'staging_target_path');
    checkCapability(req.volume_capability, 'volume_capability');
    const { tenant, volume } = refOf(id);
    return this.busy.run(`volume:${id}`, `volume ${id}`, async () => {
      const cap = req.volume_capability!;
      const staged = this.deps.state.stage(id);
      if (staged && (await mountsAt(staged.stagingPath)) > 0 && this.agent.local.get(tenant, volume)?.refs.includes(STAGE_REF)) {
        if (staged.stagingPath !== staging) throw failedPrecondition(`volume ${id} is staged at ${staged.stagingPath} on this node already; unstage it there first`);
        if (staged.mode !== modeOf(cap)) throw alreadyExists(`volume ${id} is staged at ${staging} with access mode ${staged.mode}, not ${modeOf(cap)}`);
        return {};
      }
      const record = await this.record(tenant, volume, id, signal);
      checkCapability(cap, 'volume_capability', record.options.filesystem);
      const attachment = await this.agent.store.getAttachment(tenant, volume);
      if (attachment?.hostId !== this.agent.host.id) {
        throw failedPrecondition(
          attachment
            ? `volume ${id} is published to node ${attachment.hostId} (${attachment.host}), not this one (${this.agent.host.id}): ControllerPublishVolume it here first`
            : `volume ${id} is not published to this node (${this.agent.host.id}): ControllerPublishVolume it first`,
        );
      }
      // Mounted under the mount root with the lock (fencing a previous holder), then bound at the staging path.
      const mountpoint = await this.agent.manager.mount(tenant, volume, STAGE_REF, signal);
      try {
        await unmountAll(staging); // a bind left by a stage this process forgot (a crash before saving)
        await bindMount(mountpoint, staging, { readonly: false });
      } catch (err) {
        await unmountAll(staging).catch(() => undefined);
        await this.agent.manager.unmount(tenant, volume, STAGE_REF, new AbortController().signal).catch(() => undefined);
        throw err;
      }
      if (record.source) await this.growCopy(record, mountpoint);
      this.deps.state.setStage({ volumeId: id, stagingPath: staging, mode: modeOf(cap), fsType: record.options.filesystem, since: new Date().toISOString() });
      await this.deps.state.save();
      this.deps.log.info({ volume: `${tenant}/${volume}`, staging, mountpoint }, 'volume staged');
      return {};
    });
  }

  /**
   * A volume made from a smaller snapshot holds the snapshot's filesystem: it is grown to fill the
   * image. Best effort: the volume is usable at the snapshot's size, and NodeExpandVolume tries again.
   */
  private async growCopy(record: VolumeRecord, mountpoint: string): Promise<void> {
    const { tenant, volume } = record;
    try {
      // The mount grows a filesystem smaller than its device already (plugin/mounts/grow.ts); this
      // covers a device that did not show the image's size yet then.
      if (record.options.sizeBytes - (await mountedBytes(mountpoint)) < GROW_SLACK_BYTES) return;
      await this.agent.manager.growFilesystem(tenant, volume, record.options.sizeBytes);
    } catch (err) {
      this.deps.log.warn({ volume: `${tenant}/${volume}`, err: (err as Error).message }, 'could not grow the filesystem of a copy to its volume\'s size; it keeps its snapshot\'s size');
    }
  }

  async nodeUnstageVolume(req: { volume_id: string; staging_target_path: string }, signal: AbortSignal): Promise<object> {
    const id = requireField(req.volume_id, 'volume_id');
    const staging = requireField(req.staging_target_path, 'staging_target_path');
    const ref = parseVolumeId(id);
    if (!ref) return {}; // never made by volplugin: nothing staged
    return this.busy.run(`volume:${id}`, `volume ${id}`, async () => {
      const published = this.deps.state.publishesOf(id).filter((p) => p.stagingPath === staging);
      for (const p of published) {
        if ((await mountsAt(p.targetPath)) > 0) throw failedPrecondition(`volume ${id} is still published at ${p.targetPath}: NodeUnpublishVolume it first`);
      }
      await unmountAll(staging);
      if (this.agent.local.get(ref.tenant, ref.volume)?.refs.includes(STAGE_REF)) {
        await this.agent.manager.unmount(ref.tenant, ref.volume, STAGE_REF, signal);
      }
      for (const p of published) this.deps.state.deletePublish(p.targetPath);
      if (this.deps.state.stage(id)?.stagingPath === staging) this.deps.state.deleteStage(id);
      await this.deps.state.save();
      return {};
    });
  }

  // ---- publish ---------------------------------------------------------------------------------

  async nodePublishVolume(req: NodePublishVolumeRequest): Promise<object> {
    const id = requireField(req.volume_id, 'volume_id');
    const staging = requireField(req.staging_target_path, 'staging_target_path');
    const target = requireField(req.target_path, 'target_path');
    const cap = checkCapability(req.volume_capability, 'volume_capability');
    refOf(id);
    const readonly = req.readonly || readOnlyMode(cap);
    const flags = cap.mount?.mount_flags ?? [];
    return this.busy.run(`volume:${id}`, `volume ${id}`, async () => {
      const stage = this.deps.state.stage(id);
      if (!stage || stage.stagingPath !== staging || (await mountsAt(staging)) === 0) {
        throw failedPrecondition(`volume ${id} is not staged at ${staging} on this node: NodeStageVolume it first`);
      }
      checkCapability(cap, 'volume_capability', stage.fsType);
      const existing = this.deps.state.publish(target);
      if (existing && (await mountsAt(target)) > 0) {
        if (existing.volumeId !== id) throw alreadyExists(`${target} has volume ${existing.volumeId} published at it`);
        if (existing.readonly !== readonly || existing.mode !== modeOf(cap) || existing.flags.join(',') !== flags.join(',')) {
          throw alreadyExists(`volume ${id} is published at ${target} already with readonly=${String(existing.readonly)}, mode ${existing.mode}, flags [${existing.flags.join(',')}]`);
        }
        return {};
      }
      const others = [];
      for (const p of this.deps.state.publishesOf(id)) if (p.targetPath !== target && (await mountsAt(p.targetPath)) > 0) others.push(p);
      if (others.length > 0 && !(allowsSeveralTargets(cap) && others.every((p) => p.mode === modeOf(cap)))) {
        throw failedPrecondition(`volume ${id} is published at ${others[0]!.targetPath} already and access mode ${modeOf(cap)} allows one target; unpublish it there first`);
      }
      try {
        await bindMount(staging, target, { readonly, flags });
      } catch (err) {
        if (/not one a volume's bind mount may have/.test((err as Error).message)) throw invalidArgument((err as Error).message);
        throw err;
      }
      this.deps.state.setPublish({ volumeId: id, targetPath: target, stagingPath: staging, mode: modeOf(cap), readonly, flags: [...flags], since: new Date().toISOString() });
      await this.deps.state.save();
      return {};
    });
  }

  async nodeUnpublishVolume(req: { volume_id: string; target_path: string }): Promise<object> {
    const id = requireField(req.volume_id, 'volume_id');
    const target = requireField(req.target_path, 'target_path');
    return this.busy.run(`volume:${id}`, `volume ${id}`, async () => {
      const existing = this.deps.state.publish(target);
      if (existing && existing.volumeId !== id) throw failedPrecondition(`${target} has volume ${existing.volumeId} published at it, not ${id}`);
      if (existing) await unmountAll(target);
      // The SP removes the target it created; a directory with something in it is the CO's.
      await rmdir(target).catch(() => undefined);
      if (existing) {
        this.deps.state.deletePublish(target);
        await this.deps.state.save();
      }
      return {};
    });
  }

  // ---- stats, expansion ------------------------------------------------------------------------

  /** The volume's entry in the host's table when `path` is its staging path or one of its targets. */
  private mountedAt(id: string, path: string): { tenant: string; volume: string } {
    const { tenant, volume } = refOf(id);
    const known = this.deps.state.stage(id)?.stagingPath === path || this.deps.state.publish(path)?.volumeId === id;
    if (!known || !this.agent.local.get(tenant, volume)) throw notFound(`volume ${id} is not staged or published at ${path} on this node`);
    return { tenant, volume };
  }

  async nodeGetVolumeStats(req: { volume_id: string; volume_path: string }): Promise<object> {
    const id = requireField(req.volume_id, 'volume_id');
    const at = requireField(req.volume_path, 'volume_path');
    const { tenant, volume } = this.mountedAt(id, at);
    if ((await mountsAt(at)) === 0) throw notFound(`nothing is mounted at ${at}`);
    const s = await statfs(at);
    const entry = this.agent.local.get(tenant, volume);
    return {
      usage: [
        { unit: 'BYTES', total: String(s.blocks * s.bsize), available: String(s.bavail * s.bsize), used: String((s.blocks - s.bfree) * s.bsize) },
        { unit: 'INODES', total: String(s.files), available: String(s.ffree), used: String(s.files - s.ffree) },
      ],
      ...(entry?.lost ? { volume_condition: { abnormal: true, message: entry.lost } } : {}),
    };
  }

  async nodeExpandVolume(req: NodeExpandVolumeRequest, signal: AbortSignal): Promise<object> {
    const id = requireField(req.volume_id, 'volume_id');
    const at = requireField(req.volume_path, 'volume_path');
    const range = parseRange(req.capacity_range);
    if (req.volume_capability) checkCapability(req.volume_capability, 'volume_capability');
    const { tenant, volume } = this.mountedAt(id, at);
    return this.busy.run(`volume:${id}`, `volume ${id}`, async () => {
      // The record's size is the truth (ControllerExpandVolume grew it): the device is refreshed and
      // waited for up to it, then the filesystem grown, under the volume's mutex.
      const record = await this.record(tenant, volume, id, signal);
      const grown = await this.agent.manager.growFilesystem(tenant, volume, record.options.sizeBytes).catch((err: unknown) => {
        if (isPluginError(err, 'NOT_MOUNTED')) throw notFound(`volume ${id} is not mounted on this node`);
        throw err;
      });
      if (range.required > grown.deviceBytes) {
        throw outOfRange(`volume ${id} is ${grown.deviceBytes} bytes, less than required_bytes ${range.required}: ControllerExpandVolume it first`);
      }
      return { capacity_bytes: String(grown.deviceBytes) };
    });
  }

  /** The RPC handlers, by method name. */
  handlers(): Handlers {
    return {
      NodeStageVolume: (r: NodeStageVolumeRequest, s: AbortSignal) => this.nodeStageVolume(r, s),
      NodeUnstageVolume: (r: { volume_id: string; staging_target_path: string }, s: AbortSignal) => this.nodeUnstageVolume(r, s),
      NodePublishVolume: (r: NodePublishVolumeRequest) => this.nodePublishVolume(r),
      NodeUnpublishVolume: (r: { volume_id: string; target_path: string }) => this.nodeUnpublishVolume(r),
      NodeGetVolumeStats: (r: { volume_id: string; volume_path: string }) => this.nodeGetVolumeStats(r),
      NodeExpandVolume: (r: NodeExpandVolumeRequest, s: AbortSignal) => this.nodeExpandVolume(r, s),
      NodeGetCapabilities: async () => ({ capabilities: NODE_CAPABILITIES }),
      NodeGetInfo: async () => this.nodeGetInfo(),
    } as Handlers;
  }
}
